/**
 * The struct-page scan: ONE pass over the struct pages of every section with a mem_map, read through the
 * page tables in large physically contiguous chunks (mapRun), classified in place (core/pageClass.ts), with
 * excluded pfns cleared in bitmap 2. Counts follow makedumpfile's __exclude_unnecessary_pages exactly:
 * - a pfn is examined only when it is present (bitmap 1: inside a PT_LOAD, below max_mapnr);
 * - an excluded head counts every pfn of its 2^order range below max_mapnr (makedumpfile counts each pfn
 *   it "clears", whether or not its bit was set), and the scan resumes after the range;
 * - a range running past its section is finished there; the next section starts at its first pfn again
 *   (its pages are tails or unclassified, so nothing is counted twice).
 * Differences, by design: struct pages that cannot be translated or read are kept and counted
 * (makedumpfile stops with an error); live kernel image pages (when known: core/imageGuard.ts) are never
 * excluded and are counted as keptKernelImage.
 */
import type { PfnBitmap } from "./bitmap.ts";
import type { MemoryModel } from "./memoryModel.ts";
import {
  PageClassifier,
  PC_BAD_ORDER,
  PC_CACHE,
  PC_CACHE_PRIVATE,
  PC_FREE,
  PC_HWPOISON,
  PC_OFFLINE,
  PC_USER,
  PGMM_CACHED,
  scanNeeded,
} from "./pageClass.ts";
import type { ClassCounts } from "./stats.ts";

/**
 * Pages excluded per class, and pages kept for a reason of ours: ClassCounts (keptKernelImage = pages the
 * rules would exclude but that lie in the kernel image; keptUnreadable = present pages whose struct page
 * could not be translated or read), plus:
 */
export interface ExclusionCounts extends ClassCounts {
  /** Present pages below max_mapnr in sections without a mem_map (not examined; makedumpfile keeps them). */
  keptNoMemMap: number;
  /** Buddy pages with an order ≥ LENGTH(zone.free_area) (kept; makedumpfile warns). */
  badBuddyOrder: number;
}

/** What {@link excludeUnnecessaryPages} did. */
export interface ScanResult {
  /** Pages excluded per class. */
  counts: ExclusionCounts;
  /** Whether the scan ran (makedumpfile skips it e.g. at -d 0/1 without PG_hwpoison). */
  ran: boolean;
  /** Struct pages classified. */
  pagesScanned: number;
  /** Wall-clock seconds of the scan. */
  seconds: number;
  /** Bytes of struct pages read from the dump (one pass: ≈ present pages × SIZE(page)). */
  vmemmapBytesRead: number;
  /** Size of one struct page (SIZE(page)), so vmemmapBytesRead / structPageSize = struct pages read. */
  structPageSize: number;
  /** -d 16 asked but free pages are not findable in mem_map (needs the free-list walk, not done here). */
  freeListWalkNeeded: boolean;
}

/** Options of the scan. */
export interface ScanOptions {
  /** Struct pages per read (multiple of 512; default 4096 = 256 KiB of 64-byte struct pages). */
  chunkPages?: number;
}

/** Slots of the per-scan counters (a Float64Array, no keyed property access in the loop): classes by code. */
const K_KERNEL_IMAGE = 9;
const K_UNREADABLE = 10;
const K_BAD_ORDER = 11;
const K_SCANNED = 12;
const K_SLOTS = 13;

/** The classes that exclude pages, and their counter in ExclusionCounts. */
const COUNTED: ReadonlyArray<[number, "free" | "cache" | "cachePrivate" | "user" | "hwpoison" | "offline"]> =
  [
    [PC_FREE, "free"],
    [PC_CACHE, "cache"],
    [PC_CACHE_PRIVATE, "cachePrivate"],
    [PC_USER, "user"],
    [PC_HWPOISON, "hwpoison"],
    [PC_OFFLINE, "offline"],
  ];

/** 1 for the class codes that exclude. */
const EXCLUDES = (() => {
  const t = new Uint8Array(256);
  for (const [c] of COUNTED) t[c] = 1;
  return t;
})();

/**
 * bitmap1 = pages present (set by the caller from the PT_LOADs, pfn < maxMapnr); bitmap2 starts as a copy
 * of bitmap1; clears excluded pfns in bitmap2 and returns the counts.
 */
export function excludeUnnecessaryPages(
  model: MemoryModel,
  dumpLevel: number,
  bitmap1: PfnBitmap,
  bitmap2: PfnBitmap,
  opts: ScanOptions = {},
): ScanResult {
  const t0 = performance.now();
  const counts: ExclusionCounts = {
    cache: 0,
    cachePrivate: 0,
    user: 0,
    free: 0,
    hwpoison: 0,
    offline: 0,
    keptKernelImage: 0,
    keptUnreadable: 0,
    keptNoMemMap: 0,
    badBuddyOrder: 0,
  };
  const scheme = model.scheme;
  const result: ScanResult = {
    counts,
    ran: false,
    pagesScanned: 0,
    seconds: 0,
    vmemmapBytesRead: 0,
    structPageSize: scheme.pageStructSize,
    freeListWalkNeeded: (dumpLevel & 16) !== 0 && !scheme.pageIsBuddy,
  };
  if (!scanNeeded(scheme, dumpLevel)) return result;
  result.ran = true;

  const maxMapnr = Math.min(model.maxMapnr, bitmap1.nbits, bitmap2.nbits);
  const size = scheme.pageStructSize;
  const chunkPages = Math.max(
    PGMM_CACHED,
    Math.floor((opts.chunkPages ?? 4096) / PGMM_CACHED) * PGMM_CACHED,
  );
  const buf = new Uint8Array(chunkPages * size);
  const u32 = new Uint32Array(buf.buffer);
  const readable = new Uint8Array(chunkPages);
  const pass = new ChunkPass(
    new PageClassifier(scheme),
    u32,
    buf,
    readable,
    new Uint8Array(chunkPages / 8 + 1),
    bitmap1,
    bitmap2,
    maxMapnr,
    model.kernelImage?.startPfn ?? 0,
    model.kernelImage?.endPfn ?? 0,
    model.kernelImage?.ranges ??
      [{ startPfn: model.kernelImage?.startPfn ?? 0, endPfn: model.kernelImage?.endPfn ?? 0 }],
    dumpLevel,
  );
  const vm = model.vm;
  const mem = model.mem;

  let covered = 0; // pfns below maxMapnr inside sections with a mem_map, for keptNoMemMap
  for (const sec of model.sparse.sections) {
    const secEnd = Math.min(sec.pfnEnd, maxMapnr);
    if (secEnd <= sec.pfnStart) continue;
    covered += bitmap1.popcount(sec.pfnStart, secEnd);
    let nextPfn = sec.pfnStart; // first pfn not yet swallowed by an excluded range (within this section)
    for (let cs = sec.pfnStart; cs < secEnd; cs += chunkPages) {
      const ce = Math.min(cs + chunkPages, secEnd);
      if (nextPfn >= ce) continue;
      const first = Math.max(cs, nextPfn);
      // Skip chunks without any present page.
      if (bitmap1.popcount(first, ce) === 0) continue;
      const nPages = ce - cs;
      readable.fill(1, 0, nPages);
      const vaddr = sec.memMap + BigInt((cs - sec.pfnStart) * size);
      let off = 0;
      for (const piece of vm.mapRun(vaddr, nPages * size)) {
        const ok = piece.paddr !== undefined && mem.readPhys(piece.paddr, buf.subarray(off, off + piece.len));
        if (ok) result.vmemmapBytesRead += piece.len;
        else readable.fill(0, Math.floor(off / size), Math.ceil((off + piece.len) / size));
        off += piece.len;
      }
      nextPfn = pass.chunk(cs, first, ce, nextPfn);
    }
  }
  const k = pass.counts;
  for (const [c, name] of COUNTED) counts[name] = k[c];
  counts.keptKernelImage = k[K_KERNEL_IMAGE];
  counts.keptUnreadable = k[K_UNREADABLE];
  counts.badBuddyOrder = k[K_BAD_ORDER];
  result.pagesScanned = k[K_SCANNED];
  counts.keptNoMemMap = bitmap1.popcount(0, maxMapnr) - covered;
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

/**
 * The classification of one chunk of struct pages (read into `u32`/`buf`, `readable` per struct page), in a
 * method of its own so that it is optimized as a whole function (not re-entered through on-stack replacement
 * of one large loop nest), with the chunk's bitmap 1 bits copied out once and the counters in a typed array.
 */
class ChunkPass {
  readonly counts = new Float64Array(K_SLOTS);

  constructor(
    readonly classifier: PageClassifier,
    readonly u32: Uint32Array,
    readonly buf: Uint8Array,
    readonly readable: Uint8Array,
    /** bitmap 1 bytes of the chunk, from the byte holding its first pfn. */
    readonly present: Uint8Array,
    readonly bitmap1: PfnBitmap,
    readonly bitmap2: PfnBitmap,
    readonly maxMapnr: number,
    /** Hull of the protected kernel-image ranges (start..end of `kRanges`). */
    readonly kStart: number,
    readonly kEnd: number,
    /** The protected ranges, sorted (imageGuard.ts: live sections of the kernel image). */
    readonly kRanges: readonly { startPfn: number; endPfn: number }[],
    readonly level: number,
  ) {}

  /** Classify pfns [first, ce) of the chunk starting at pfn `cs`; returns the next pfn not swallowed. */
  chunk(cs: number, first: number, ce: number, nextPfn: number): number {
    const nPages = ce - cs;
    const base = cs - (cs % 8);
    const present = this.present;
    this.bitmap1.readBytes(base / 8, present.subarray(0, Math.ceil((ce - base) / 8)));
    const readable = this.readable;
    const counts = this.counts;
    const classifier = this.classifier;
    const size = classifier.scheme.pageStructSize;
    for (let p = first; p < ce; p++) {
      const j = p - base;
      if ((present[j >>> 3] & (1 << (j & 7))) === 0) continue;
      const i = p - cs;
      if (readable[i] === 0) {
        counts[K_UNREADABLE]++;
        continue;
      }
      counts[K_SCANNED]++;
      const nextOk = p % PGMM_CACHED !== PGMM_CACHED - 1 && i + 1 < nPages && readable[i + 1] === 1;
      const r = classifier.classify(this.u32, this.buf, i * size, p, nextOk, this.level);
      const cls = r & 0xff;
      if (EXCLUDES[cls] === 0) {
        if (cls === PC_BAD_ORDER) counts[K_BAD_ORDER]++;
        continue;
      }
      const ord = r >>> 8;
      const n = ord < 31 ? 1 << ord : 2 ** ord;
      this.exclude(p, n, cls);
      if (n > 1) {
        p += n - 1;
        nextPfn = p + 1;
      }
    }
    return nextPfn;
  }

  /** Exclude [p, p + n) (clipped to max_mapnr) into class `cls`'s counter, sparing the kernel image. */
  exclude(p: number, n: number, cls: number): void {
    const end = Math.min(p + n, this.maxMapnr);
    if (end <= p) return;
    const bitmap2 = this.bitmap2;
    const counts = this.counts;
    if (Math.min(end, this.kEnd) <= Math.max(p, this.kStart)) {
      if (n === 1) bitmap2.clear(p);
      else bitmap2.clearRange(p, end);
      counts[cls] += end - p;
      return;
    }
    // Inside the image hull: clear what lies between its protected ranges.
    let at = p;
    for (const r of this.kRanges) {
      const gs = Math.max(at, r.startPfn), ge = Math.min(end, r.endPfn);
      if (ge <= gs) continue;
      if (gs > at) {
        bitmap2.clearRange(at, gs);
        counts[cls] += gs - at;
      }
      counts[K_KERNEL_IMAGE] += ge - gs;
      at = ge;
    }
    if (end > at) {
      bitmap2.clearRange(at, end);
      counts[cls] += end - at;
    }
  }
}
