/**
 * Test-only: a small constructed x86_64 "dump" — 64 MiB of physical memory with a hole at 0xa0000-0xc0000,
 * kernel page tables, a direct map, a SPARSEMEM_EXTREME mem_section, and a vmemmap of 64-byte struct pages
 * mapped with 4 KiB leaves (one vmemmap page can be left unmapped). Struct pages start as plain kept pages
 * (_mapcount -1, flags 0); tests write the classes they need with `pages`.
 */
import { MemBitmap } from "../../core/bitmap.ts";
import { VmcoreInfo } from "../../core/vmcoreinfo.ts";
import { baseVmcoreinfo, FakePageTables, FakePhys, StructPages } from "./fakeKernel.ts";

export const DIRECT = 0xffff888000000000n;
export const VMEMMAP = 0xffffea0000000000n;
export const MEM_BYTES = 64 << 20;
export const NPFN = MEM_BYTES / 4096;
export const HOLE: [number, number] = [0xa0000, 0xc0000];
/** PA of the struct pages (pfn p at STRUCT_PA + 64 p). */
export const STRUCT_PA = 32 << 20;
const ROOTS_PA = 0x200000;
const SECTIONS_PA = 0x201000;

export interface FakeDump {
  phys: FakePhys;
  pt: FakePageTables;
  pages: StructPages;
  /** VMCOREINFO text; build VmcoreInfo with `info()` after any change. */
  lines: string[];
  info(): VmcoreInfo;
  /** bitmap1 (present pages below maxMapnr) and bitmap2 = copy. */
  bitmaps(maxMapnr: number): { b1: MemBitmap; b2: MemBitmap };
}

/** Build the dump; `unmappedVmemmapPage`: index of a 4 KiB vmemmap page to leave unmapped (64 pfns). */
export function fakeDump(
  eraLines: string[],
  opts: { unmappedVmemmapPage?: number; extra?: string[] } = {},
): FakeDump {
  const phys = new FakePhys(MEM_BYTES, [HOLE]);
  const pt = new FakePageTables(phys, 4, 0x100000);
  pt.map1g(DIRECT, 0);
  const structBytes = NPFN * 64;
  for (let off = 0; off < structBytes; off += 4096) {
    if (off / 4096 === opts.unmappedVmemmapPage) continue;
    pt.map4k(VMEMMAP + BigInt(off), STRUCT_PA + off);
  }
  // mem_section: roots[0] → array of struct mem_section (32 bytes); section 0 present with flag bits.
  phys.u64(ROOTS_PA, DIRECT + BigInt(SECTIONS_PA));
  phys.u64(SECTIONS_PA, VMEMMAP | 0x7n);
  const pages = new StructPages(phys.bytes, STRUCT_PA);
  for (let i = 0; i < NPFN; i++) pages.reset(i);
  const rootSym = 0xffffffff80000000n + BigInt(pt.root);
  const lines = [
    baseVmcoreinfo(rootSym, 0n, [
      "NUMBER(pgtable_l5_enabled)=0",
      `SYMBOL(mem_section)=${(DIRECT + BigInt(ROOTS_PA)).toString(16)}`,
      "LENGTH(mem_section)=4096",
      "SIZE(mem_section)=32",
      "OFFSET(mem_section.section_mem_map)=0",
      "NUMBER(SECTION_SIZE_BITS)=27",
      "NUMBER(MAX_PHYSMEM_BITS)=46",
      ...eraLines,
      ...(opts.extra ?? []),
    ]),
  ];
  return {
    phys,
    pt,
    pages,
    lines,
    info: () => VmcoreInfo.parse(lines.join("\n")),
    bitmaps(maxMapnr: number) {
      const b1 = new MemBitmap(maxMapnr);
      for (const s of phys.segments) {
        const a = Math.floor(s.paddr / 4096), e = Math.min(maxMapnr, Math.ceil((s.paddr + s.memSize) / 4096));
        if (e > a) b1.setRange(a, e);
      }
      const b2 = new MemBitmap(maxMapnr);
      b2.bytes.set(b1.bytes);
      return { b1, b2 };
    },
  };
}

/** Section n's mem_section entry PA (for tests that add sections). */
export function sectionEntryPa(n: number): number {
  return SECTIONS_PA + n * 32;
}
