/**
 * SPARSEMEM (x86_64: SPARSEMEM_EXTREME + VMEMMAP) — where the struct pages of each memory section are
 * (kdump-reference.md section 7.1; makedumpfile get_mm_sparsemem / validate_mem_section / get_mem_map).
 *
 * For section n: root = roots[n / SECTIONS_PER_ROOT] (0 → no memory), entry = root + (n % SECTIONS_PER_ROOT)
 * * SIZE(mem_section), coded = entry.section_mem_map; present iff bit 0; mem_map (vaddr of the struct page
 * of the section's first pfn) = (coded & ~flagMask) + firstPfn * SIZE(page).
 *
 * Flag mask: makedumpfile masks the low 5 bits (SECTION_MAP_LAST_BIT = 1 << 5). Kernels with
 * CONFIG_SPARSEMEM_VMEMMAP_PREINIT use bit 5 as a flag too; on x86_64 the coded value is the vmemmap base
 * (at least page aligned), so we mask the low 6 bits, which decodes the same as makedumpfile whenever bit 5
 * is a flag bit or zero. Sections whose decoded bases disagree are reported in `warnings`.
 */
import { VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** A memory section that has a mem_map. */
export interface MemSection {
  /** Section number. */
  nr: number;
  /** First pfn of the section. */
  pfnStart: number;
  /** End pfn (exclusive), clipped to the max_mapnr the sections were read for. */
  pfnEnd: number;
  /** Kernel virtual address of the struct page of pfnStart. */
  memMap: bigint;
  /** The flag bits of section_mem_map (bit 0 present, 1 has-mem-map, 2 online, 3 early, ...). */
  flags: number;
}

/** What the sparse memory model tells about the dump. */
export interface SparseMem {
  /** SECTION_SIZE_BITS. */
  sectionSizeBits: number;
  /** Pages per memory section. */
  pagesPerSection: number;
  /** SIZE(page). */
  pageStructSize: number;
  /** Sections with a mem_map, ascending. */
  sections: MemSection[];
  /** Sections looked at: ceil(maxMapnrIn / pagesPerSection). */
  sectionsExamined: number;
  /** max_mapnr lowered to the end of the last section with a mem_map (makedumpfile get_mem_map). */
  maxMapnr: number;
  /** True when SYMBOL(mem_section) had to be dereferenced once (the -x vmlinux form). */
  dereferenced: boolean;
  /** Oddities met (inconsistent vmemmap bases, unreadable roots); the sections are still usable. */
  warnings: string[];
}

const SECTION_MARKED_PRESENT = 1;
/** Low flag bits masked off section_mem_map (see the file comment). */
const FLAG_BITS = 6;
const FLAG_MASK = (1n << BigInt(FLAG_BITS)) - 1n;
/**
 * Lowest kernel virtual address: the canonical upper half with 5-level paging (57-bit addresses, direct map
 * at 0xff11000000000000). With 4-level paging kernel addresses start at 0xffff800000000000, also above it.
 */
const KERNEL_SPACE = 0xff00000000000000n;

/**
 * Read the sections below `maxMapnrIn` (pfns, from the PT_LOADs) and lower max_mapnr. Throws the VmcoreInfo
 * missing-key error when a needed key is absent. Returns no sections (and maxMapnr unchanged) when the
 * mem_section array cannot be validated.
 */
export function readSparseMem(
  vm: VirtualMemory,
  info: VmcoreInfo,
  maxMapnrIn: number,
  pageShift = 12,
): SparseMem {
  const memSectionSym = info.requireSymbol("mem_section");
  const sizeSection = info.requireSize("mem_section");
  const offMap = info.requireOffset("mem_section.section_mem_map");
  const pageStructSize = info.requireSize("page");
  const sectionSizeBits = Number(info.number("SECTION_SIZE_BITS") ?? 27n);
  const maxPhysmemBits = Number(info.number("MAX_PHYSMEM_BITS") ?? 46n);
  const pageSize = 2 ** pageShift;
  // Bound every layout number taken from VMCOREINFO before it sizes a loop or a buffer.
  const bad = (what: string) =>
    new VmsiftError(`VMCOREINFO ${what} is implausible for x86_64 SPARSEMEM`, { file: info.source });
  if (!Number.isInteger(maxPhysmemBits) || maxPhysmemBits < 32 || maxPhysmemBits > 52) {
    throw bad(`NUMBER(MAX_PHYSMEM_BITS)=${maxPhysmemBits}`);
  }
  if (!Number.isInteger(sectionSizeBits) || sectionSizeBits < pageShift || sectionSizeBits > maxPhysmemBits) {
    throw bad(`NUMBER(SECTION_SIZE_BITS)=${sectionSizeBits}`);
  }
  if (sizeSection < 8 || sizeSection > pageSize || offMap < 0 || offMap + 8 > sizeSection) {
    throw bad(`SIZE(mem_section)=${sizeSection} / OFFSET(mem_section.section_mem_map)=${offMap}`);
  }
  if (pageStructSize < 8 || pageStructSize > pageSize) throw bad(`SIZE(page)=${pageStructSize}`);
  const pfnSectionShift = sectionSizeBits - pageShift;
  const pagesPerSection = 2 ** pfnSectionShift;
  const nrMemSections = 2 ** (maxPhysmemBits - sectionSizeBits);
  const sectionsPerRootExtreme = Math.floor(pageSize / sizeSection);
  const rootsLen = info.length("mem_section");
  const extreme = rootsLen === undefined || rootsLen === nrMemSections / sectionsPerRootExtreme;
  const sectionsPerRoot = extreme ? sectionsPerRootExtreme : 1;
  const numSection = Math.ceil(maxMapnrIn / pagesPerSection);
  const warnings: string[] = [];

  const attempt = (base: bigint): MemSection[] | undefined => {
    const roots = extreme ? readRoots(vm, base, Math.ceil(numSection / sectionsPerRoot)) : undefined;
    if (extreme && roots === undefined) return undefined;
    const out: MemSection[] = [];
    const buf = new Uint8Array(8);
    const dv = new DataView(buf.buffer);
    for (let nr = 0; nr < numSection; nr++) {
      let entry: bigint;
      if (roots !== undefined) {
        const root = roots[Math.floor(nr / sectionsPerRoot)];
        if (root === 0n) continue;
        entry = root + BigInt((nr % sectionsPerRoot) * sizeSection);
      } else {
        entry = base + BigInt(nr * sizeSection);
      }
      if (entry < KERNEL_SPACE) continue;
      // makedumpfile stops when a mem_section cannot be read; we treat the section as absent.
      if (!vm.readVirt(entry + BigInt(offMap), buf)) continue;
      const coded = dv.getBigUint64(0, true);
      const flags = Number(coded & FLAG_MASK);
      if ((flags & SECTION_MARKED_PRESENT) === 0) continue;
      const pfnStart = nr * pagesPerSection;
      const memMap = BigInt.asUintN(64, (coded & ~FLAG_MASK) + BigInt(pfnStart) * BigInt(pageStructSize));
      if (memMap < KERNEL_SPACE) return undefined; // not a kernel address: validation fails
      out.push({
        nr,
        pfnStart,
        pfnEnd: Math.min(pfnStart + pagesPerSection, maxMapnrIn),
        memMap,
        flags,
      });
    }
    return out.length > 0 ? out : undefined;
  };

  let dereferenced = false;
  let sections = attempt(memSectionSym);
  if (sections === undefined && extreme) {
    const p = new Uint8Array(8);
    if (vm.readVirt(memSectionSym, p)) {
      const ptr = new DataView(p.buffer).getBigUint64(0, true);
      if (ptr >= KERNEL_SPACE) {
        sections = attempt(ptr);
        dereferenced = sections !== undefined;
      }
    }
  }
  if (sections === undefined) {
    warnings.push("could not validate mem_section: no section has a mem_map");
    sections = [];
  }

  // On vmemmap kernels every section decodes to the same base (mem_map - pfnStart * SIZE(page)).
  if (sections.length > 0) {
    const base0 = sections[0].memMap - BigInt(sections[0].pfnStart * pageStructSize);
    const odd = sections.filter((s) => s.memMap - BigInt(s.pfnStart * pageStructSize) !== base0).length;
    if (odd > 0) warnings.push(`${odd} sections decode to a different vmemmap base than section 0`);
  }

  let maxMapnr = maxMapnrIn;
  if (sections.length > 0) {
    let maxPfn = 0;
    for (const s of sections) maxPfn = Math.max(maxPfn, s.pfnEnd);
    maxMapnr = Math.min(maxMapnrIn, maxPfn);
  }
  return {
    sectionSizeBits,
    pagesPerSection,
    pageStructSize,
    sections,
    sectionsExamined: numSection,
    maxMapnr,
    dereferenced,
    warnings,
  };
}

/** Read `count` root pointers from the root array at `base`; undefined when unreadable. */
function readRoots(vm: VirtualMemory, base: bigint, count: number): bigint[] | undefined {
  if (base < KERNEL_SPACE) return undefined;
  const buf = new Uint8Array(count * 8);
  if (!vm.readVirt(base, buf)) return undefined;
  const dv = new DataView(buf.buffer);
  const out: bigint[] = [];
  for (let i = 0; i < count; i++) out.push(dv.getBigUint64(i * 8, true));
  return out;
}

/** Kernel virtual address of the struct page of `pfn`, or undefined when its section has no mem_map. */
export function pfnToPage(sm: SparseMem, pfn: number): bigint | undefined {
  const nr = Math.floor(pfn / sm.pagesPerSection);
  // Sections are sorted: binary search.
  let lo = 0, hi = sm.sections.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = sm.sections[mid];
    if (s.nr < nr) lo = mid + 1;
    else if (s.nr > nr) hi = mid - 1;
    else return pfn < s.pfnEnd ? s.memMap + BigInt((pfn - s.pfnStart) * sm.pageStructSize) : undefined;
  }
  return undefined;
}
