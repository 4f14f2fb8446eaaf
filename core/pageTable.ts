/**
 * x86_64 kernel virtual → physical translation by walking the kernel page tables (kdump-reference.md
 * section 9; makedumpfile arch/x86_64.c __vtop4_x86_64). The root is SYMBOL(init_top_pgt) (older
 * init_level4_pgt) at PA = sym - __START_KERNEL_map + phys_base (mod 2^64). 4-level or 5-level paging
 * (NUMBER(pgtable_l5_enabled)), 1 GiB and 2 MiB leaves (PSE, bit 7), next-table address = entry bits 12-51
 * with NUMBER(sme_mask) cleared.
 *
 * Hot-path arithmetic uses numbers only: 64-bit entries are read as two u32 halves and physical addresses
 * (< 2^52) are plain numbers. A walk has a fixed depth, so a looping or corrupt table can never hang it; a
 * table outside the dump gives `undefined`.
 */
import { VmsiftError } from "./errors.ts";
import type { PhysicalMemory } from "./physMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";
import {
  appendPiece,
  type KernelTranslator,
  type LevelName,
  type MappedPiece,
  readPieces,
  type WalkResult,
  type WalkStep,
  walkStopReason,
} from "./arch/walk.ts";

export { formatVtop, type LevelName, type MappedPiece, type WalkResult, type WalkStep } from "./arch/walk.ts";

/** __START_KERNEL_map: start of the kernel-image window. */
export const START_KERNEL_MAP = 0xffffffff80000000n;
/** Size of the kernel-image window that may be translated linearly (KERNEL_IMAGE_SIZE with KASLR). */
export const KERNEL_IMAGE_WINDOW = 1n << 30n;
const MASK64 = (1n << 64n) - 1n;
const TWO32 = 0x1_0000_0000;
/** Page-table pages kept in the cache (4 KiB each). */
const DEFAULT_CACHE_TABLES = 2048;
/** Level names and the bytes one entry covers, indexed 0 (5-level PGD) .. 4 (PTE). */
const LEVEL_NAME: readonly LevelName[] = ["PGD", "P4D", "PUD", "PMD", "PTE"];
const LEVEL_SPAN: readonly number[] = [2 ** 48, 2 ** 39, 2 ** 30, 2 ** 21, 4096];

/** Options of the translator, normally derived from VMCOREINFO with `X86Translator.fromVmcoreInfo`. */
export interface TranslatorOptions {
  /** Physical address of the top-level table. */
  rootPa: number;
  /** NUMBER(phys_base), signed. */
  physBase: bigint;
  /** 4 or 5 levels. */
  levels: 4 | 5;
  /** NUMBER(sme_mask) (0 when absent). */
  smeMask?: bigint;
  /** Translate the kernel-image window linearly (default true); `walk()` always walks. */
  linearKernelImage?: boolean;
  /** Bound of the page-table page cache, in tables. */
  cacheTables?: number;
}

/** Kernel virtual memory of an x86_64 dump. */
export class X86Translator implements KernelTranslator {
  /** The physical memory the page tables are read from. */
  readonly mem: PhysicalMemory;
  /** Physical address of the top-level page table. */
  readonly rootPa: number;
  /** Where the kernel image was loaded (NUMBER(phys_base)). */
  readonly physBase: bigint;
  /** Paging levels: 4, or 5 with la57. */
  readonly levels: 4 | 5;
  /** AMD SME encryption bit(s) masked out of page-table entries. */
  readonly smeMask: bigint;
  /** True when kernel-image addresses translate linearly (no page-table walk needed). */
  readonly linearKernelImage: boolean;
  /** Entry address mask (bits 12-51 minus sme_mask) as u32 halves. */
  readonly #maskLo: number;
  readonly #maskHi: number;
  readonly #cache = new Map<number, Uint32Array>();
  readonly #cacheMax: number;
  /** Scratch for the last leaf found by #leaf(): [paddr of the leaf page, size of the leaf]. */
  #leafPa = 0;
  #leafSize = 0;
  readonly #idx = new Int32Array(5);
  /** Counters for diagnostics. */
  tableReads = 0;

  /** A translator over `mem` with the page tables `opts` names. */
  constructor(mem: PhysicalMemory, opts: TranslatorOptions) {
    this.mem = mem;
    this.rootPa = opts.rootPa;
    this.physBase = opts.physBase;
    this.levels = opts.levels;
    this.smeMask = BigInt.asUintN(64, opts.smeMask ?? 0n);
    this.linearKernelImage = opts.linearKernelImage ?? true;
    this.#cacheMax = Math.max(8, opts.cacheTables ?? DEFAULT_CACHE_TABLES);
    const mask = 0x000ffffffffff000n & ~this.smeMask;
    this.#maskLo = Number(mask & 0xffffffffn);
    this.#maskHi = Number(mask >> 32n);
  }

  /**
   * Build from VMCOREINFO: SYMBOL(init_level4_pgt) or SYMBOL(init_top_pgt) (makedumpfile's order),
   * NUMBER(phys_base) (0 when absent), NUMBER(pgtable_l5_enabled), NUMBER(sme_mask).
   */
  static fromVmcoreInfo(
    mem: PhysicalMemory,
    info: VmcoreInfo,
    opts: Partial<TranslatorOptions> = {},
  ): X86Translator {
    const root = info.symbol("init_level4_pgt") ?? info.symbol("init_top_pgt");
    if (root === undefined) throw info.missing("SYMBOL(init_top_pgt)");
    const physBase = info.number("phys_base") ?? 0n;
    const rootPa = kernelImagePa(root, physBase);
    if (rootPa === undefined) {
      throw new VmsiftError("SYMBOL(init_top_pgt) is not in the kernel image window", {
        file: info.source,
        address: root,
      });
    }
    return new X86Translator(mem, {
      rootPa,
      physBase,
      levels: info.number("pgtable_l5_enabled") === 1n ? 5 : 4,
      smeMask: info.number("sme_mask") ?? 0n,
      ...opts,
    });
  }

  /** Translate one address; undefined when unmapped or a table is unreadable. */
  vtop(vaddr: bigint): number | undefined {
    const v = BigInt.asUintN(64, vaddr);
    if (this.linearKernelImage) {
      const lin = this.#linear(v);
      if (lin !== undefined) return lin;
    }
    const hi = Number(v >> 32n);
    const lo = Number(v & 0xffffffffn);
    if (!this.#leaf(hi, lo, undefined)) return undefined;
    return this.#leafPa + (lo & (this.#leafSize - 1));
  }

  /** Walk the tables for `vaddr` and return every step (for --vtop), never using the linear shortcut. */
  walk(vaddr: bigint): WalkResult {
    const v = BigInt.asUintN(64, vaddr);
    const steps: WalkStep[] = [];
    const hi = Number(v >> 32n);
    const lo = Number(v & 0xffffffffn);
    const res: WalkResult = { vaddr: v, steps };
    if (this.#leaf(hi, lo, steps)) {
      res.paddr = this.#leafPa + (lo & (this.#leafSize - 1));
      res.pageSize = this.#leafSize;
    } else {
      res.error = walkStopReason(steps, "not present");
    }
    return res;
  }

  /** Read virtual memory, crossing pages; false when any page is unmapped or outside the dump. */
  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    return readPieces(this.mem, this.mapRun(vaddr, out.length), out);
  }

  /**
   * Split virtual [vaddr, vaddr + len) into physically contiguous pieces, in order, covering it exactly.
   * Adjacent leaves that are also physically adjacent are merged, so a vmemmap mapped with 2 MiB leaves
   * gives pieces of at least 2 MiB. Unmapped parts come back with paddr undefined.
   */
  mapRun(vaddr: bigint, len: number): MappedPiece[] {
    const out: MappedPiece[] = [];
    let v = BigInt.asUintN(64, vaddr);
    let left = len;
    while (left > 0) {
      let pa: number | undefined;
      let step: number; // bytes until the end of this leaf (or unmapped region)
      const lin = this.linearKernelImage ? this.#linear(v) : undefined;
      const hi = Number(v >> 32n);
      const lo = Number(v & 0xffffffffn);
      if (lin !== undefined) {
        pa = lin;
        const winEnd = START_KERNEL_MAP + KERNEL_IMAGE_WINDOW;
        step = Number(winEnd - v > BigInt(left) ? BigInt(left) : winEnd - v);
      } else if (this.#leaf(hi, lo, undefined)) {
        const off = lo & (this.#leafSize - 1); // leaves are at most 1 GiB
        pa = this.#leafPa + off;
        step = Math.min(left, this.#leafSize - off);
      } else {
        // #leafSize holds the size of the region the failing entry covers.
        const span = this.#leafSize;
        const off = span > TWO32 ? (hi % (span / TWO32)) * TWO32 + lo : lo % span;
        step = Math.min(left, span - off);
      }
      appendPiece(out, v, pa, step);
      v = BigInt.asUintN(64, v + BigInt(step));
      left -= step;
    }
    return out;
  }

  /** Linear translation of the kernel-image window, undefined outside it. */
  #linear(v: bigint): number | undefined {
    if (v < START_KERNEL_MAP || v >= START_KERNEL_MAP + KERNEL_IMAGE_WINDOW) return undefined;
    return kernelImagePa(v, this.physBase);
  }

  /**
   * Walk to the leaf for (hi, lo). On success sets #leafPa (leaf page base) and #leafSize. On failure sets
   * #leafSize to the span covered by the entry that failed (so mapRun can skip the whole hole).
   */
  #leaf(hi: number, lo: number, steps: WalkStep[] | undefined): boolean {
    let tablePa = this.rootPa;
    const idx = this.#idx;
    idx[0] = (hi >>> 16) & 0x1ff; // 5-level PGD: bits 48-56
    idx[1] = (hi >>> 7) & 0x1ff; // PGD (4-level) / P4D: bits 39-47
    idx[2] = ((hi & 0x7f) << 2) | (lo >>> 30); // PUD: bits 30-38
    idx[3] = (lo >>> 21) & 0x1ff; // PMD: bits 21-29
    idx[4] = (lo >>> 12) & 0x1ff; // PTE: bits 12-20
    for (let l = this.levels === 5 ? 0 : 1; l < 5; l++) {
      const index = idx[l];
      const span = LEVEL_SPAN[l];
      const name: LevelName = this.levels === 4 && l === 1 ? "PGD" : LEVEL_NAME[l];
      const table = this.#table(tablePa);
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
      if ((eLo & 1) === 0) {
        this.#leafSize = span;
        return false;
      }
      const addr = (eHi & this.#maskHi) * TWO32 + ((eLo & this.#maskLo) >>> 0);
      if (l === 4 || ((l === 2 || l === 3) && (eLo & 0x80) !== 0)) {
        // Leaf: clear the offset bits below the leaf size (makedumpfile: entry & mask & PUD/PMD_MASK).
        this.#leafPa = addr - (addr % span);
        this.#leafSize = span;
        return true;
      }
      tablePa = addr;
    }
    return false; // not reached
  }

  /** A page-table page as 1024 u32 halves (cached); undefined when outside the dump. */
  #table(pa: number): Uint32Array | undefined {
    const hit = this.#cache.get(pa);
    if (hit !== undefined) return hit;
    if (pa % 4096 !== 0) return undefined;
    const buf = new Uint8Array(4096);
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

/**
 * PA of a kernel-image-window address: vaddr - __START_KERNEL_map + phys_base modulo 2^64 (phys_base may be
 * negative). Undefined when the result is not a plausible physical address (≥ 2^52).
 */
export function kernelImagePa(vaddr: bigint, physBase: bigint): number | undefined {
  const pa = (vaddr - START_KERNEL_MAP + physBase) & MASK64;
  if (pa >= 1n << 52n) return undefined;
  return Number(pa);
}
