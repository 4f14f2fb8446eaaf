import { forBitRange, MemBitmap, type PfnBitmap } from "../core/bitmap.ts";
import { VmsiftError } from "../core/errors.ts";
import { BlockCache, Use } from "./blockCache.ts";
import {
  EEXIST,
  libcAvailable,
  O_CREAT,
  O_EXCL,
  O_RDWR,
  type OpenFn,
  openMaybeDirect,
  sysClose,
  SysError,
  sysOpen,
  sysUnlink,
} from "./libc.ts";

/** Options of FileBitmap.create. */
export interface FileBitmapOptions {
  /** Directory for the bitmap file (next to the dump, not tmpfs: Cliff Wickman's proposal 2). */
  dir: string;
  /** Memory for the block cache (default 4 MiB; at least two blocks are kept). */
  cacheBytes?: number;
  /** Cache block size (default 64 KiB; power of two >= 4096 for O_DIRECT). */
  blockBytes?: number;
  /** Use O_DIRECT (default true). */
  direct?: boolean;
  /** Called once when O_DIRECT was refused (also kept in `warnings`). */
  onWarning?: (message: string) => void;
  /** Test seam: replaces open(2). */
  openFn?: OpenFn;
}

const POP8 = (() => {
  const t = new Uint8Array(256);
  for (let i = 1; i < 256; i++) t[i] = (i & 1) + t[i >> 1];
  return t;
})();

function pop32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/**
 * A PfnBitmap kept in a file (Cliff Wickman's proposals 2 and 3): the file is created in `dir` and unlinked
 * at once, so nothing is left behind whatever happens; it is read and written with O_DIRECT through a
 * BlockCache of bounded size, so neither the bitmap nor the page cache grows with the machine. Same bit
 * order and semantics as MemBitmap (bytes past ceil(nbits/8) are ignored on writes, read as 0). Pfns may go
 * beyond 2^32.
 */
export class FileBitmap implements PfnBitmap {
  readonly nbits: number;
  /** ceil(nbits / 8). */
  readonly nbytes: number;
  /** Name the file had (it is unlinked already). */
  readonly path: string;
  readonly direct: boolean;
  readonly warnings: string[] = [];
  readonly cache: BlockCache;
  #fd: number;
  #B: number;
  /** The cache's memory (fixed until close). */
  #bytes: Uint8Array<ArrayBuffer>;
  /** nbytes * 8: bits past this are ignored (those between nbits and it behave as in MemBitmap). */
  #limit: number;
  /** Bits [rlo, rhi) are in the block last acquired, at #rbase in #bytes; [wlo, whi) the same if dirty. */
  #rlo = 0;
  #rhi = -1;
  #wlo = 0;
  #whi = -1;
  #rbase = 0;
  #closed = false;

  private constructor(nbits: number, path: string, fd: number, direct: boolean, cache: BlockCache) {
    this.nbits = nbits;
    this.nbytes = Math.ceil(nbits / 8);
    this.path = path;
    this.#fd = fd;
    this.direct = direct;
    this.cache = cache;
    this.#B = cache.blockBytes;
    this.#bytes = cache.bytes;
    this.#limit = this.nbytes * 8;
  }

  /** Create an all-zero bitmap of `nbits` bits in a new unlinked file in `options.dir`. */
  static create(nbits: number, options: FileBitmapOptions): FileBitmap {
    const blockBytes = options.blockBytes ?? 64 << 10;
    const cacheBytes = options.cacheBytes ?? 4 << 20;
    const openFn = options.openFn ?? sysOpen;
    const nbytes = Math.ceil(nbits / 8);
    const nblocks = Math.max(1, Math.ceil(nbytes / blockBytes));
    let opened;
    let path = "";
    for (let attempt = 0;; attempt++) {
      const tag = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
      path = `${options.dir.replace(/\/+$/, "") || "/"}/vmsift-bitmap-${Deno.pid}-${tag}`;
      try {
        opened = openMaybeDirect(path, O_RDWR | O_CREAT | O_EXCL, 0o600, options.direct ?? true, openFn);
        break;
      } catch (e) {
        if (e instanceof SysError && e.errno === EEXIST && attempt < 10) continue;
        if (e instanceof SysError) {
          throw new VmsiftError(`cannot create a bitmap file in ${options.dir}: ${e.message}`, {
            file: path,
          });
        }
        throw e;
      }
    }
    // Unlinked at once: the space is freed by close(), or by the kernel if we die.
    sysUnlink(path);
    let cache: BlockCache;
    try {
      cache = new BlockCache(opened.fd, path, nblocks, blockBytes, cacheBytes);
    } catch (e) {
      sysClose(opened.fd);
      throw e;
    }
    const bm = new FileBitmap(nbits, path, opened.fd, opened.direct, cache);
    if (opened.warning !== undefined) {
      bm.warnings.push(opened.warning);
      options.onWarning?.(opened.warning);
    }
    return bm;
  }

  /** The file descriptor (for diagnostics such as /proc/self/fdinfo). */
  get fd(): number {
    return this.#fd;
  }

  get(pfn: number): boolean {
    if (pfn >= this.#rlo && pfn < this.#rhi) {
      const i = pfn - this.#rlo;
      return (this.#bytes[this.#rbase + (i >>> 3)] & (1 << (i & 7))) !== 0;
    }
    if (pfn >= this.#limit) return false;
    const i = this.#window(pfn, Use.Read);
    return (this.#bytes[this.#rbase + (i >>> 3)] & (1 << (i & 7))) !== 0;
  }

  set(pfn: number): void {
    let i;
    if (pfn >= this.#wlo && pfn < this.#whi) i = pfn - this.#wlo;
    else if (pfn >= this.#limit) return;
    else i = this.#window(pfn, Use.Write);
    this.#bytes[this.#rbase + (i >>> 3)] |= 1 << (i & 7);
  }

  clear(pfn: number): void {
    let i;
    if (pfn >= this.#wlo && pfn < this.#whi) i = pfn - this.#wlo;
    else if (pfn >= this.#limit) return;
    else i = this.#window(pfn, Use.Write);
    this.#bytes[this.#rbase + (i >>> 3)] &= ~(1 << (i & 7));
  }

  /** Acquire the block holding `pfn`; returns the bit index of pfn inside it. */
  #window(pfn: number, use: Use): number {
    const bitsPer = this.#B * 8;
    const block = Math.floor(pfn / bitsPer);
    this.#acquire(block, use);
    return pfn - block * bitsPer;
  }

  /**
   * All block access goes through here. It points the fast-path windows of get/set/clear at this block
   * only (a later acquire may evict it); the write window only when the block was marked dirty.
   */
  #acquire(block: number, use: Use): number {
    const base = this.cache.acquire(block, use);
    const bitsPer = this.#B * 8;
    this.#rlo = block * bitsPer;
    this.#rhi = Math.min(this.#rlo + bitsPer, this.#limit);
    this.#rbase = base;
    if (use === Use.Read) {
      this.#wlo = 0;
      this.#whi = -1;
    } else {
      this.#wlo = this.#rlo;
      this.#whi = this.#rhi;
    }
    return base;
  }

  #resetWindows(): void {
    this.#rlo = this.#wlo = 0;
    this.#rhi = this.#whi = -1;
  }

  setRange(start: number, end: number): void {
    this.#range(start, Math.min(end, this.nbits), true);
  }

  clearRange(start: number, end: number): void {
    this.#range(start, Math.min(end, this.nbits), false);
  }

  #range(start: number, end: number, on: boolean): void {
    forBitRange(
      start,
      end,
      (p) => on ? this.set(p) : this.clear(p),
      (a, b) => this.#fillBytes(a, b, on ? 0xff : 0),
    );
  }

  /** Fill bytes [from, to) with v; blocks covered entirely are not read first. */
  #fillBytes(from: number, to: number, v: number): void {
    const B = this.#B;
    const bytes = this.cache.bytes;
    let pos = from;
    while (pos < to) {
      const block = Math.floor(pos / B);
      const stop = Math.min(to, (block + 1) * B);
      const whole = pos === block * B && (stop === (block + 1) * B || stop >= this.nbytes);
      const base = this.#acquire(block, whole ? Use.Overwrite : Use.Write);
      if (whole) bytes.fill(v, base, base + B);
      else bytes.fill(v, base + (pos - block * B), base + (stop - block * B));
      pos = stop;
    }
  }

  readBytes(byteOffset: number, out: Uint8Array): void {
    const B = this.#B;
    const avail = Math.max(0, Math.min(out.length, this.nbytes - byteOffset));
    let done = 0;
    while (done < avail) {
      const pos = byteOffset + done;
      const block = Math.floor(pos / B);
      const n = Math.min(avail - done, (block + 1) * B - pos);
      const base = this.#acquire(block, Use.Read) + (pos - block * B);
      out.set(this.cache.bytes.subarray(base, base + n), done);
      done += n;
    }
    if (avail < out.length) out.fill(0, avail);
  }

  popcount(start = 0, end = this.nbits): number {
    let n = 0;
    forBitRange(start, Math.min(end, this.nbytes * 8), (p) => {
      if (this.get(p)) n++;
    }, (a, b) => n += this.#popBytes(a, b));
    return n;
  }

  #popBytes(from: number, to: number): number {
    const B = this.#B;
    const bytes = this.cache.bytes;
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
    let n = 0;
    let pos = from;
    while (pos < to) {
      const block = Math.floor(pos / B);
      const stop = Math.min(to, (block + 1) * B);
      const base = this.#acquire(block, Use.Read) - block * B;
      let i = base + pos;
      const e = base + stop;
      while (i < e && (i & 3) !== 0) n += POP8[bytes[i++]];
      const we = e & ~3;
      for (let w = i >>> 2; w < we >>> 2; w++) n += pop32(words[w]);
      for (i = Math.max(i, we); i < e; i++) n += POP8[bytes[i]];
      pos = stop;
    }
    return n;
  }

  /** Write dirty cache blocks to the file (not needed for correctness; for measurements). */
  flush(): void {
    this.#resetWindows();
    this.cache.flush();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#resetWindows();
    this.#bytes = new Uint8Array(0);
    this.cache.free();
    sysClose(this.#fd);
  }
}

/** Options of createBitmaps. */
export interface BitmapBudget {
  /** Memory the two bitmaps may use, bytes. */
  budgetBytes: number;
  /** Directory for bitmap files when they do not fit (required then). */
  dir?: string;
  /** Use O_DIRECT for bitmap files (default true). */
  direct?: boolean;
  /** Block size of the file caches (default 64 KiB). */
  blockBytes?: number;
  /** Test seam: replaces open(2). */
  openFn?: OpenFn;
}

/** The two bitmaps of a run (1st: page exists, 2nd: page is dumped) and how they are kept. */
export interface BitmapPair {
  bitmap1: PfnBitmap;
  bitmap2: PfnBitmap;
  mode: "memory" | "file";
  /** One line for messages, e.g. "bitmaps in memory (2 x 4.0 MiB)". */
  description: string;
  /** O_DIRECT fallback messages (file mode). */
  warnings: string[];
  /** Close both. */
  close(): void;
}

function mib(n: number): string {
  return n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * Two bitmaps of `nbits` bits: in memory when 2*ceil(nbits/8) fits `budgetBytes`, else FileBitmaps in `dir`
 * sharing the budget as block caches (each gets half, rounded down to whole blocks, at least two blocks).
 */
export function createBitmaps(nbits: number, budget: BitmapBudget): BitmapPair {
  const nbytes = Math.ceil(nbits / 8);
  if (2 * nbytes <= budget.budgetBytes) {
    const b1 = new MemBitmap(nbits);
    const b2 = new MemBitmap(nbits);
    return {
      bitmap1: b1,
      bitmap2: b2,
      mode: "memory",
      description: `bitmaps in memory (2 x ${mib(nbytes)})`,
      warnings: [],
      close() {},
    };
  }
  if (budget.dir === undefined) {
    throw new VmsiftError(
      `the bitmaps need 2 x ${mib(nbytes)}, more than the memory budget of ${
        mib(budget.budgetBytes)
      }; give a work directory for bitmap files`,
    );
  }
  if (!libcAvailable()) {
    throw new VmsiftError(
      `the bitmaps need 2 x ${mib(nbytes)}, more than the memory budget of ${
        mib(budget.budgetBytes)
      }, and bitmap files are written through libc (FFI): run with --allow-ffi, or raise --cyclic-buffer`,
    );
  }
  const blockBytes = budget.blockBytes ?? 64 << 10;
  const each = Math.max(2 * blockBytes, Math.floor(budget.budgetBytes / 2 / blockBytes) * blockBytes);
  const opts = {
    dir: budget.dir,
    cacheBytes: each,
    blockBytes,
    direct: budget.direct,
    openFn: budget.openFn,
  };
  const b1 = FileBitmap.create(nbits, opts);
  let b2: FileBitmap;
  try {
    b2 = FileBitmap.create(nbits, opts);
  } catch (e) {
    b1.close();
    throw e;
  }
  const warnings = b1.direct && b2.direct || budget.direct === false
    ? []
    : [`${budget.dir}: the file system refuses O_DIRECT; the bitmap files go through the page cache`];
  const how = b1.direct && b2.direct ? "O_DIRECT" : "buffered";
  return {
    bitmap1: b1,
    bitmap2: b2,
    mode: "file",
    description: `bitmaps in files in ${budget.dir} (2 x ${mib(nbytes)}, ${how}, cache 2 x ${
      mib(b1.cache.cacheBytes)
    } of ${blockBytes >> 10} KiB blocks; budget ${mib(budget.budgetBytes)})`,
    warnings,
    close() {
      b1.close();
      b2.close();
    },
  };
}
