/**
 * arm64 (AArch64) kernel virtual → physical translation: a walk of the TTBR1 tables from swapper_pg_dir.
 *
 * Geometry (Arm ARM D8 "VMSAv8-64 translation"; Linux arch/arm64/include/asm/pgtable-hwdef.h; makedumpfile
 * arch/arm64.c calculate_plat_config): granule 4, 16 or 64 KiB (pageShift PS = 12, 14, 16); each table
 * level resolves PS - 3 bits; a walk of a `vaBits`-bit address has ceil((vaBits - PS) / (PS - 3)) levels
 * (4K: 39 → 3, 48 → 4, 52 → 5; 16K: 36 → 2, 47 → 3, 48/52 → 4; 64K: 42 → 2, 48/52 → 3), the top table
 * resolving what is left (16K/48: 2 entries; 64K/48: 64). `vaBits` is the size the kernel RUNS with,
 * 64 - TCR_EL1.T1SZ, which is less than CONFIG_ARM64_VA_BITS when a VA_BITS=52 kernel runs on a CPU
 * without LVA/LPA2.
 *
 * Descriptors: bit 0 valid; below the last level bit 1 set = next table, clear = block; at the last level
 * bits[1:0] = 3 = page. Output address: bits [47:PS] ("plain"); with 64 KiB pages and 52-bit physical
 * addresses (FEAT_LPA, MAX_PHYSMEM_BITS=52) bits [15:12] hold PA[51:48]; with 4/16 KiB pages running a
 * 52-bit VA (FEAT_LPA2, TCR_EL1.DS=1) bits [49:PS] and bits [9:8] hold PA[51:50].
 *
 * Only bits below `vaBits` index the tables, so pointer-authentication codes (KERNELPACMASK) and top-byte
 * tags are ignored; bit 55 selects TTBR1 (kernel) and a TTBR0 (user) address is never translated. As on
 * x86_64, numbers only in the walk (entries as two u32 halves), bounded depth, tables cached.
 */
import type { PhysicalMemory } from "../physMem.ts";
import {
  appendPiece,
  type KernelTranslator,
  type LevelName,
  type MappedPiece,
  readPieces,
  type WalkResult,
  type WalkStep,
  walkStopReason,
} from "./walk.ts";

const TWO32 = 0x1_0000_0000;
/** Page-table pages kept in the cache. */
const DEFAULT_CACHE_TABLES = 1024;

/** How a descriptor holds its output address. */
export type Arm64AddressFormat = "plain" | "lpa" | "lpa2";

/** Options of the arm64 translator (normally from VMCOREINFO via core/arch/arm64.ts). */
export interface Arm64TableOptions {
  /** Physical address of swapper_pg_dir. */
  rootPa: number;
  /** 4096, 16384 or 65536. */
  pageSize: number;
  /** The VA size the kernel runs with (36..52). */
  vaBits: number;
  /** Output-address format of the descriptors (default "plain"). */
  addressFormat?: Arm64AddressFormat;
  /** Bound of the page-table page cache, in tables. */
  cacheTables?: number;
}

/** Levels of a walk for a granule and a VA size (see the file comment); throws RangeError when invalid. */
export function arm64Levels(pageSize: number, vaBits: number): number {
  const ps = Math.log2(pageSize);
  if (ps !== 12 && ps !== 14 && ps !== 16) {
    throw new RangeError(`arm64 granule ${pageSize} is not 4K/16K/64K`);
  }
  if (!Number.isInteger(vaBits) || vaBits < 25 || vaBits > 52) {
    throw new RangeError(`arm64 VA size ${vaBits} is not in 25..52`);
  }
  const levels = Math.ceil((vaBits - ps) / (ps - 3));
  if (levels < 2 || levels > 5) {
    throw new RangeError(`arm64 granule ${pageSize} with ${vaBits}-bit VA: ${levels} levels`);
  }
  return levels;
}

/** Level names top first, as Linux folds them. */
const LEVEL_NAMES: Record<number, LevelName[]> = {
  2: ["PGD", "PTE"],
  3: ["PGD", "PMD", "PTE"],
  4: ["PGD", "PUD", "PMD", "PTE"],
  5: ["PGD", "P4D", "PUD", "PMD", "PTE"],
};

/** Kernel virtual memory of an arm64 dump. */
export class Arm64Translator implements KernelTranslator {
  /** The physical memory the tables are read from. */
  readonly mem: PhysicalMemory;
  /** Physical address of swapper_pg_dir. */
  readonly rootPa: number;
  /** The granule in bytes. */
  readonly pageSize: number;
  /** log2 of the granule. */
  readonly pageShift: number;
  /** The VA size walked (the running one). */
  readonly vaBits: number;
  /** Table levels of a walk (2-5). */
  readonly levels: number;
  /** How the descriptors hold output addresses. */
  readonly addressFormat: Arm64AddressFormat;
  /** Bytes one entry covers at each level, top first. */
  readonly spans: readonly number[];
  /** Entries of each table, top first (the top table may be shorter than a page). */
  readonly entries: readonly number[];
  /** Level names top first (PGD ... PTE, as Linux folds them). */
  readonly names: readonly LevelName[];
  readonly #loMask: number;
  readonly #hiMask: number;
  readonly #cache = new Map<number, Uint32Array>();
  readonly #cacheMax: number;
  #leafPa = 0;
  #leafSize = 0;
  /** Table reads from the dump (diagnostics). */
  tableReads = 0;

  /** A translator over `mem` with the given geometry (throws RangeError on an impossible one). */
  constructor(mem: PhysicalMemory, opts: Arm64TableOptions) {
    this.mem = mem;
    this.rootPa = opts.rootPa;
    this.pageSize = opts.pageSize;
    this.vaBits = opts.vaBits;
    this.levels = arm64Levels(opts.pageSize, opts.vaBits);
    this.pageShift = Math.log2(opts.pageSize);
    this.addressFormat = opts.addressFormat ?? "plain";
    this.#cacheMax = Math.max(8, opts.cacheTables ?? DEFAULT_CACHE_TABLES);
    const ps = this.pageShift, bits = ps - 3;
    const spans: number[] = [], entries: number[] = [];
    for (let l = 0; l < this.levels; l++) {
      const shift = ps + (this.levels - 1 - l) * bits;
      spans.push(2 ** shift);
      entries.push(l === 0 ? 2 ** (this.vaBits - shift) : 2 ** bits);
    }
    this.spans = spans;
    this.entries = entries;
    this.names = LEVEL_NAMES[this.levels];
    // Low half: bits [31:PS]; high half: bits [47:32], or [49:32] with LPA2.
    this.#loMask = (0xffffffff << ps) >>> 0;
    this.#hiMask = this.addressFormat === "lpa2" ? 0x3ffff : 0xffff;
  }

  /** Translate one address; undefined when unmapped, not a TTBR1 address or a table is unreadable. */
  vtop(vaddr: bigint): number | undefined {
    const va = this.#index(vaddr);
    if (va < 0 || !this.#leaf(va, undefined)) return undefined;
    return this.#leafPa + (va % this.#leafSize);
  }

  /** Walk the tables for `vaddr`, every step recorded (for --vtop). */
  walk(vaddr: bigint): WalkResult {
    const v = BigInt.asUintN(64, vaddr);
    const steps: WalkStep[] = [];
    const res: WalkResult = { vaddr: v, steps };
    const va = this.#index(v);
    if (va < 0) {
      res.error = "not a kernel (TTBR1) address: bit 55 is clear";
    } else if (this.#leaf(va, steps)) {
      res.paddr = this.#leafPa + (va % this.#leafSize);
      res.pageSize = this.#leafSize;
    } else {
      res.error = walkStopReason(steps, "not valid");
    }
    return res;
  }

  /** Read virtual memory, crossing pages; false when any page is unmapped or outside the dump. */
  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    return readPieces(this.mem, this.mapRun(vaddr, out.length), out);
  }

  /** Physically contiguous pieces of [vaddr, vaddr + len), adjacent leaves merged (see KernelTranslator). */
  mapRun(vaddr: bigint, len: number): MappedPiece[] {
    const out: MappedPiece[] = [];
    let v = BigInt.asUintN(64, vaddr);
    let left = len;
    while (left > 0) {
      const va = this.#index(v);
      let pa: number | undefined;
      let step: number;
      if (va < 0) {
        step = left; // a user address: nothing of it is translated
      } else if (this.#leaf(va, undefined)) {
        const off = va % this.#leafSize;
        pa = this.#leafPa + off;
        step = Math.min(left, this.#leafSize - off);
      } else {
        step = Math.min(left, this.#leafSize - (va % this.#leafSize));
      }
      appendPiece(out, v, pa, step);
      v = BigInt.asUintN(64, v + BigInt(step));
      left -= step;
    }
    return out;
  }

  /** The low vaBits of a TTBR1 address as a number (exact: < 2^52), or -1 for a TTBR0 address. */
  #index(vaddr: bigint): number {
    const v = BigInt.asUintN(64, vaddr);
    if (((v >> 55n) & 1n) === 0n) return -1;
    return Number(v & ((1n << BigInt(this.vaBits)) - 1n));
  }

  /**
   * Walk to the leaf for `va` (the low vaBits). On success sets #leafPa (block/page base) and #leafSize; on
   * failure sets #leafSize to the span of the entry that failed.
   */
  #leaf(va: number, steps: WalkStep[] | undefined): boolean {
    let tablePa = this.rootPa;
    const last = this.levels - 1;
    for (let l = 0; l <= last; l++) {
      const span = this.spans[l];
      const index = Math.floor(va / span) % this.entries[l];
      const name = this.names[l];
      const table = this.#table(tablePa, this.entries[l]);
      if (table === undefined) {
        steps?.push({ level: name, tablePa, index, entryPa: tablePa + index * 8, entry: undefined });
        this.#leafSize = span;
        return false;
      }
      const eLo = table[index * 2];
      const eHi = table[index * 2 + 1];
      steps?.push({
        level: name,
        tablePa,
        index,
        entryPa: tablePa + index * 8,
        entry: (BigInt(eHi) << 32n) | BigInt(eLo),
      });
      const type = eLo & 3;
      // A block (type 1) is valid at hardware levels 1 and 2 only (level = 4 - levels + l).
      if ((type & 1) === 0 || (l === last && type !== 3) || (type === 1 && 4 - this.levels + l < 1)) {
        this.#leafSize = span;
        return false;
      }
      const addr = this.#outputAddress(eLo, eHi);
      if (l === last || type === 1) {
        this.#leafPa = addr - (addr % span);
        this.#leafSize = span;
        return true;
      }
      tablePa = addr;
    }
    return false; // not reached
  }

  /** The output address of a descriptor (see the file comment for the three formats). */
  #outputAddress(eLo: number, eHi: number): number {
    let addr = (eHi & this.#hiMask) * TWO32 + ((eLo & this.#loMask) >>> 0);
    if (this.addressFormat === "lpa") addr += ((eLo >>> 12) & 0xf) * 2 ** 48;
    else if (this.addressFormat === "lpa2") addr += ((eLo >>> 8) & 3) * 2 ** 50;
    return addr;
  }

  /** A table of `n` entries as u32 halves (cached); undefined when outside the dump or misaligned. */
  #table(pa: number, n: number): Uint32Array | undefined {
    const hit = this.#cache.get(pa);
    if (hit !== undefined && hit.length >= n * 2) return hit;
    if (pa % Math.min(this.pageSize, n * 8) !== 0) return undefined;
    const buf = new Uint8Array(n * 8);
    this.tableReads++;
    if (!this.mem.readPhys(pa, buf)) return undefined;
    const t = new Uint32Array(buf.buffer);
    if (this.#cache.size >= this.#cacheMax) {
      const first = this.#cache.keys().next().value;
      if (first !== undefined) this.#cache.delete(first);
    }
    this.#cache.set(pa, t);
    return t;
  }
}
