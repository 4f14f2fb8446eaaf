/**
 * Test-only builders: an in-memory PhysicalMemory, x86_64 page tables written into it (4- or 5-level,
 * 4 KiB / 2 MiB / 1 GiB leaves), and small VMCOREINFO texts for several kernel eras. The page-table encoding
 * here follows the Intel SDM directly (present bit 0, PSE bit 7, address bits 12-51), independently of
 * core/pageTable.ts.
 */
import type { PhysicalMemory, PhysSegment } from "../../core/physMem.ts";

/** Physical memory backed by one Uint8Array; `holes` are byte ranges left out of the segments. */
export class FakePhys implements PhysicalMemory {
  readonly label = "fake";
  readonly segments: PhysSegment[];
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  reads = 0;

  constructor(size: number, holes: [number, number][] = []) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
    this.segments = [];
    let at = 0;
    for (const [hs, he] of [...holes].sort((a, b) => a[0] - b[0])) {
      if (hs > at) this.segments.push(seg(at, hs - at));
      at = he;
    }
    if (at < size) this.segments.push(seg(at, size - at));
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    this.reads++;
    const end = paddr + out.length;
    const inside = this.segments.some((s) => paddr >= s.paddr && end <= s.paddr + s.memSize);
    if (!inside) return false;
    out.set(this.bytes.subarray(paddr, end));
    return true;
  }

  u64(pa: number, v: bigint): void {
    this.dv.setBigUint64(pa, BigInt.asUintN(64, v), true);
  }

  u32(pa: number, v: number): void {
    this.dv.setUint32(pa, v >>> 0, true);
  }
}

function seg(paddr: number, size: number): PhysSegment {
  return { paddr, memSize: size, fileSize: size, fileOffset: paddr, vaddr: 0n };
}

const PRESENT_RW = 0x63n; // present, rw, accessed, dirty
const PSE = 0x80n;

/** Page tables written into FakePhys, tables allocated from a bump pointer. */
export class FakePageTables {
  readonly phys: FakePhys;
  readonly levels: 4 | 5;
  readonly root: number;
  /** Bits OR-ed into every entry written (e.g. an SME C-bit). */
  extraBits: bigint;
  #next: number;

  constructor(phys: FakePhys, levels: 4 | 5, tablesAt: number, extraBits = 0n) {
    this.phys = phys;
    this.levels = levels;
    this.#next = tablesAt;
    this.extraBits = extraBits;
    this.root = this.alloc();
  }

  /** A zeroed 4 KiB table. */
  alloc(): number {
    const pa = this.#next;
    this.#next += 4096;
    this.phys.bytes.fill(0, pa, pa + 4096);
    return pa;
  }

  /** Indices top-down for the configured depth. */
  indices(va: bigint): number[] {
    const i = (shift: bigint) => Number((va >> shift) & 0x1ffn);
    const four = [i(39n), i(30n), i(21n), i(12n)];
    return this.levels === 5 ? [i(48n), ...four] : four;
  }

  /** Walk/create non-leaf tables down to `depth` (0 = root) and return that table's PA. */
  #tableAt(va: bigint, depth: number): number {
    let t = this.root;
    const idx = this.indices(va);
    for (let d = 0; d < depth; d++) {
      const ea = t + idx[d] * 8;
      const e = this.phys.dv.getBigUint64(ea, true);
      if ((e & 1n) === 0n) {
        const nt = this.alloc();
        this.phys.u64(ea, BigInt(nt) | PRESENT_RW | this.extraBits);
        t = nt;
      } else {
        t = Number(e & 0x000ffffffffff000n & ~this.extraBits);
      }
    }
    return t;
  }

  /** Map a 4 KiB page. */
  map4k(va: bigint, pa: number): void {
    const depth = this.levels - 1;
    const t = this.#tableAt(va, depth);
    this.phys.u64(t + this.indices(va)[depth] * 8, BigInt(pa) | PRESENT_RW | this.extraBits);
  }

  /** Map a 2 MiB page (PMD leaf). */
  map2m(va: bigint, pa: number): void {
    const depth = this.levels - 2;
    const t = this.#tableAt(va, depth);
    this.phys.u64(t + this.indices(va)[depth] * 8, BigInt(pa) | PRESENT_RW | PSE | this.extraBits);
  }

  /** Map a 1 GiB page (PUD leaf). */
  map1g(va: bigint, pa: number): void {
    const depth = this.levels - 3;
    const t = this.#tableAt(va, depth);
    this.phys.u64(t + this.indices(va)[depth] * 8, BigInt(pa) | PRESENT_RW | PSE | this.extraBits);
  }

  /** Write a raw entry at `depth` for va (creating the tables above it). */
  rawEntry(va: bigint, depth: number, entry: bigint): void {
    const t = this.#tableAt(va, depth);
    this.phys.u64(t + this.indices(va)[depth] * 8, entry);
  }
}

/** VMCOREINFO lines shared by all eras (x86_64, struct page of 64 bytes as on 6.1). */
export function baseVmcoreinfo(rootSym: bigint, physBase: bigint, extra: string[] = []): string {
  return [
    "OSRELEASE=test",
    "PAGESIZE=4096",
    `SYMBOL(init_top_pgt)=${rootSym.toString(16)}`,
    `NUMBER(phys_base)=${physBase}`,
    "SIZE(page)=64",
    "OFFSET(page.flags)=0",
    "OFFSET(page._refcount)=52",
    "OFFSET(page.mapping)=24",
    "OFFSET(page.lru)=8",
    "OFFSET(page._mapcount)=48",
    "OFFSET(page.private)=40",
    "OFFSET(page.compound_head)=8",
    "OFFSET(list_head.next)=0",
    "OFFSET(list_head.prev)=8",
    "LENGTH(zone.free_area)=11",
    "NUMBER(PG_lru)=4",
    "NUMBER(PG_private)=13",
    "NUMBER(PG_swapcache)=10",
    "NUMBER(PG_swapbacked)=19",
    "NUMBER(PG_hwpoison)=23",
    "NUMBER(PG_head_mask)=65536",
    ...extra,
  ].join("\n") + "\n";
}

/** Era-specific VMCOREINFO lines (page types, compound order/dtor, slab). */
export const ERA: Record<"v4_15" | "v6_1" | "v6_7" | "v6_12", string[]> = {
  // 4.4-4.15: magic -128 buddy, compound dtor/order as unsigned int at 16/20 (read as u16), PG_slab.
  v4_15: [
    "NUMBER(PG_slab)=7",
    "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-128",
    "OFFSET(page.compound_dtor)=16",
    "OFFSET(page.compound_order)=20",
    "NUMBER(HUGETLB_PAGE_DTOR)=2",
  ],
  // 4.18-6.5 style (the 6.1 fixture): ~bit page types, u8 dtor/order at 16/17.
  v6_1: [
    "NUMBER(PG_slab)=9",
    "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129",
    "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257",
    "OFFSET(page.compound_dtor)=16",
    "OFFSET(page.compound_order)=17",
    "NUMBER(HUGETLB_PAGE_DTOR)=2",
  ],
  // 6.6-6.8: order in the first tail's flags low byte, PG_hugetlb in the first tail's flags.
  v6_7: [
    "NUMBER(PG_slab)=7",
    "NUMBER(PG_hugetlb)=8", // a flag above the order byte of _flags_1
    "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129",
    "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257",
  ],
  // 6.12+: top-byte page types, no PG_slab.
  v6_12: [
    `NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=${0xf0000000 | 0}`,
    `NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${0xf1000000 | 0}`,
    `NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=${0xf4000000 | 0}`,
    `NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=${0xf5000000 | 0}`,
    `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)=${0xf7000000 | 0}`,
  ],
};

/** Writes struct page fields into a buffer of 64-byte struct pages (6.1 offsets). */
export class StructPages {
  readonly dv: DataView;
  constructor(readonly bytes: Uint8Array, readonly base = 0) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #at(i: number): number {
    return this.base + i * 64;
  }
  /** Reset page i: flags 0, mapping 0, _mapcount -1, private 0, compound_head = lru.next (even). */
  reset(i: number): this {
    this.bytes.fill(0, this.#at(i), this.#at(i) + 64);
    this.dv.setInt32(this.#at(i) + 48, -1, true);
    return this;
  }
  flags(i: number, v: bigint): this {
    this.dv.setBigUint64(this.#at(i), v, true);
    return this;
  }
  mapping(i: number, v: bigint): this {
    this.dv.setBigUint64(this.#at(i) + 24, v, true);
    return this;
  }
  mapcount(i: number, v: number): this {
    this.dv.setInt32(this.#at(i) + 48, v | 0, true);
    return this;
  }
  private(i: number, v: bigint): this {
    this.dv.setBigUint64(this.#at(i) + 40, v, true);
    return this;
  }
  compoundHead(i: number, v: bigint): this {
    this.dv.setBigUint64(this.#at(i) + 8, v, true);
    return this;
  }
  byte(i: number, off: number, v: number): this {
    this.bytes[this.#at(i) + off] = v;
    return this;
  }
  u32(i: number, off: number, v: number): this {
    this.dv.setUint32(this.#at(i) + off, v >>> 0, true);
    return this;
  }
}
