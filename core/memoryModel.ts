/**
 * The memory model of a dump: physical memory + VMCOREINFO → page-table translator, sparse sections
 * (struct page locations), max_mapnr, struct-page scheme and the kernel image range. Built once and passed
 * down to the scan (core/scan.ts), the dmesg reader and the writers.
 */
import { VmsiftError } from "./errors.ts";
import {
  GUARD_SYMBOLS,
  liveImageSections,
  mappedImagePfns,
  mergePfns,
  type PfnRange,
  sectionPfns,
} from "./imageGuard.ts";
import { kallsymsLocations, readKallsyms } from "./kallsyms.ts";
import type { PhysicalMemory } from "./physMem.ts";
import { KERNEL_IMAGE_WINDOW, kernelImagePa, START_KERNEL_MAP, X86Translator } from "./pageTable.ts";
import { type Arch, selectArch } from "./arch/arch.ts";
import type { KernelTranslator } from "./arch/walk.ts";
import { detectPageScheme, type PageScheme } from "./pageTypes.ts";
import { readSparseMem, type SparseMem } from "./sparsemem.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Physical pfns of the kernel image never excluded by the scan. */
export interface KernelImageRange {
  /** First pfn of the first protected range. */
  startPfn: number;
  /** Exclusive end of the last protected range. */
  endPfn: number;
  /** Which symbols gave it, e.g. "_stext.._end". */
  source: string;
  /**
   * The protected ranges, sorted and disjoint, inside [startPfn, endPfn); absent = the whole of it. The
   * kallsyms guard leaves out the parts the kernel freed (core/imageGuard.ts).
   */
  ranges?: PfnRange[];
}

/** The crashed kernel's memory as vmsift models it (built by {@link buildMemoryModel}). */
export interface MemoryModel {
  /** The dump's physical memory. */
  mem: PhysicalMemory;
  /** The VMCOREINFO the model was built from. */
  info: VmcoreInfo;
  /** The dump's architecture (core/arch/arch.ts). */
  arch: Arch;
  /** Kernel address translation (arch.vm). */
  vm: KernelTranslator;
  /** The kdump header's phys_base: x86_64 NUMBER(phys_base), arm64 NUMBER(PHYS_OFFSET) (signed; 0 when absent). */
  physBase: bigint;
  /** Bytes per page (PAGESIZE). */
  pageSize: number;
  /** log2 of the page size. */
  pageShift: number;
  /** max_mapnr from the PT_LOADs (pfn past the highest byte), before lowering. */
  maxMapnrLoads: number;
  /** max_mapnr lowered to the end of the last section with a mem_map (the dump's "Total pages"). */
  maxMapnr: number;
  /** The sparsemem sections and their mem_map addresses. */
  sparse: SparseMem;
  /** How this kernel marks page types (buddy, slab, offline, ...), from VMCOREINFO. */
  scheme: PageScheme;
  /** Kernel image pfns protected from exclusion, when the symbols needed are present. */
  kernelImage: KernelImageRange | undefined;
  /** Non-fatal oddities (for --debug / verbose output). */
  warnings: string[];
}

/** Options of buildMemoryModel. */
export interface MemoryModelOptions {
  /** Protect the kernel image pages (default true). */
  kernelImageGuard?: boolean;
  /** ELF e_machine of the input, when known (else VMCOREINFO tells the architecture). */
  elfMachine?: number;
}

/** Build the model; throws VmsiftError (missing VMCOREINFO keys, no page tables) when it cannot. */
export function buildMemoryModel(
  mem: PhysicalMemory,
  info: VmcoreInfo,
  opts: MemoryModelOptions = {},
): MemoryModel {
  const arch = selectArch(mem, info, { elfMachine: opts.elfMachine ?? mem.elfMachine });
  const pageSize = arch.pageSize;
  const pageShift = Math.log2(pageSize);
  const vm = arch.vm;
  const physBase = arch.physBase;
  let maxPaddr = 0;
  for (const s of mem.segments) maxPaddr = Math.max(maxPaddr, s.paddr + s.memSize);
  const maxMapnrLoads = Math.ceil(maxPaddr / pageSize);
  const sparse = readSparseMem(vm, info, maxMapnrLoads, pageShift);
  const scheme = detectPageScheme(info);
  const warnings = [...sparse.warnings];
  const kernelImage = opts.kernelImageGuard === false ? undefined : arch.kernelImage !== undefined
    // arm64: _stext..__init_begin from the arch (kallsyms-bounded sections are x86_64's layout).
    ? arch.kernelImage()
    : (kernelImageFromKallsyms(vm, info, pageSize, warnings) ?? kernelImageRange(info, physBase, pageSize) ??
      reservedOnly(kernelImageFromMapping(mem, info, physBase, pageSize), vm, info, sparse));
  if (opts.kernelImageGuard !== false && kernelImage === undefined) {
    warnings.push(
      "kernel image guard off: no kallsyms in VMCOREINFO (kernels before 6.0), and no page-table mapping of " +
        "the image at _stext (or no PG_private to find PG_reserved by)",
    );
  }
  return {
    mem,
    info,
    arch,
    vm,
    physBase,
    pageSize,
    pageShift,
    maxMapnrLoads,
    maxMapnr: sparse.maxMapnr,
    sparse,
    scheme,
    kernelImage,
    warnings,
  };
}

/**
 * The live kernel image from kallsyms (Linux 6.0+): [_text, _end) without the parts the kernel freed
 * (core/imageGuard.ts). Undefined, with a warning, when kallsyms cannot be decoded.
 */
export function kernelImageFromKallsyms(
  vm: VirtualMemory,
  info: VmcoreInfo,
  pageSize: number,
  warnings: string[],
): KernelImageRange | undefined {
  if (kallsymsLocations(info) === undefined) return undefined;
  let sections;
  try {
    sections = liveImageSections(readKallsyms(vm, info, { only: GUARD_SYMBOLS }), (v) => {
      const b = new Uint8Array(8);
      return vm.readVirt(v, b) ? new DataView(b.buffer).getBigUint64(0, true) : undefined;
    });
  } catch (e) {
    if (!(e instanceof VmsiftError)) throw e;
    warnings.push(`kallsyms not usable for the image guard: ${e.message}`);
    return undefined;
  }
  if (sections === undefined) {
    warnings.push("kallsyms lacks _text/_stext or _end: image guard not built from it");
    return undefined;
  }
  const ranges = sectionPfns(vm, sections, pageSize);
  if (ranges.length === 0) return undefined;
  return {
    startPfn: ranges[0].startPfn,
    endPfn: ranges[ranges.length - 1].endPfn,
    source: `kallsyms: ${
      sections.map((s) => `${s.name} ${s.start.toString(16)}-${s.end.toString(16)}`).join(", ")
    }`,
    ranges,
  };
}

/**
 * The kernel image from the kernel's own page tables, for kernels without kallsyms in VMCOREINFO: the pages
 * mapped in the __START_KERNEL_map alias at the linear offset, from _stext to the end of the window
 * (cleanup_highmap() removed every 2 MiB entry past the image; with PTI, free_kernel_image_pages() also
 * unmapped the freed parts). This still holds freed pages (without PTI all of them); buildMemoryModel keeps
 * only the PG_reserved ones ({@link reservedOnly}).
 */
export function kernelImageFromMapping(
  mem: PhysicalMemory,
  info: VmcoreInfo,
  physBase: bigint,
  pageSize: number,
): KernelImageRange | undefined {
  const start = info.symbol("_stext") ?? info.symbol("_text");
  if (start === undefined) return undefined;
  let walker: X86Translator;
  try {
    walker = X86Translator.fromVmcoreInfo(mem, info, { linearKernelImage: false });
  } catch {
    return undefined;
  }
  // KERNEL_IMAGE_SIZE is at most the 1 GiB window; a larger (corrupt) value would walk far beyond it.
  const imageSize = info.number("KERNEL_IMAGE_SIZE") ?? KERNEL_IMAGE_WINDOW;
  const windowEnd = START_KERNEL_MAP +
    (imageSize > 0n && imageSize < KERNEL_IMAGE_WINDOW ? imageSize : KERNEL_IMAGE_WINDOW);
  if (start < START_KERNEL_MAP || start >= windowEnd) return undefined;
  const pieces = walker.mapRun(start, Number(windowEnd - start));
  const first = pieces[0];
  if (first === undefined || first.paddr === undefined) return undefined;
  if (kernelImagePa(start, physBase) !== first.paddr) return undefined; // tables and phys_base disagree
  const ranges = mappedImagePfns(pieces, (v) => kernelImagePa(v, physBase), pageSize);
  if (ranges === undefined) return undefined;
  return {
    startPfn: ranges[0].startPfn,
    endPfn: ranges[ranges.length - 1].endPfn,
    source: `${
      info.symbol("_stext") !== undefined ? "_stext" : "_text"
    }.. the pages mapped in the image window`,
    ranges,
  };
}

/**
 * The page-table image without the pages whose struct page lacks PG_reserved. The kernel frees some image
 * parts without unmapping them (the SMP lock table, the unused decrypted bss, the brk tail, and the 2 MiB
 * mapping runs past _end); a freed page loses PG_reserved (free_reserved_area), a live image page keeps it
 * (memblock-reserved at boot). PG_reserved is the page flag just before PG_private in every kernel since
 * 2.6 (enum pageflags); VMCOREINFO exports NUMBER(PG_private) only. A struct page that cannot be read keeps
 * its page in the guard.
 */
export function reservedOnly(
  image: KernelImageRange | undefined,
  vm: VirtualMemory,
  info: VmcoreInfo,
  sparse: SparseMem,
): KernelImageRange | undefined {
  const pgPrivate = info.number("PG_private");
  const pageSize = info.size("page");
  if (image?.ranges === undefined || pgPrivate === undefined || pageSize === undefined) return image;
  const bit = Number(pgPrivate) - 1;
  const CHUNK = 512; // struct pages read at once
  const buf = new Uint8Array(CHUNK * pageSize);
  const keep: number[] = [];
  for (const r of image.ranges) {
    for (let pfn = r.startPfn; pfn < r.endPfn;) {
      const sec = sparse.sections.find((s) => pfn >= s.pfnStart && pfn < s.pfnEnd);
      const n = Math.min(CHUNK, r.endPfn - pfn, sec === undefined ? CHUNK : sec.pfnEnd - pfn);
      const view = buf.subarray(0, n * pageSize);
      const ok = sec !== undefined && vm.readVirt(sec.memMap + BigInt((pfn - sec.pfnStart) * pageSize), view);
      for (let i = 0; i < n; i++) {
        if (!ok || (view[i * pageSize + (bit >> 3)] & (1 << (bit & 7))) !== 0) keep.push(pfn + i);
      }
      pfn += n;
    }
  }
  const ranges = mergePfns(keep);
  if (ranges.length === 0) return undefined;
  return {
    startPfn: ranges[0].startPfn,
    endPfn: ranges[ranges.length - 1].endPfn,
    source: `${image.source}, PG_reserved`,
    ranges,
  };
}

/**
 * The kernel image pfns: [_stext, _end) when VMCOREINFO exports both (physical via phys_base). Kernels
 * export SYMBOL(_stext) but not SYMBOL(_end) in VMCOREINFO (6.1 does not), so with VMCOREINFO alone the
 * range is usually unknown; see the scan's keptKernelImage count.
 */
export function kernelImageRange(
  info: VmcoreInfo,
  physBase: bigint,
  pageSize: number,
): KernelImageRange | undefined {
  const start = info.symbol("_stext") ?? info.symbol("_text");
  const end = info.symbol("_end");
  if (start === undefined || end === undefined || end <= start) return undefined;
  const ps = kernelImagePa(start, physBase);
  const pe = kernelImagePa(end - 1n, physBase);
  if (ps === undefined || pe === undefined || pe < ps) return undefined;
  return {
    startPfn: Math.floor(ps / pageSize),
    endPfn: Math.floor(pe / pageSize) + 1,
    source: `${info.symbol("_stext") !== undefined ? "_stext" : "_text"}.._end`,
  };
}
