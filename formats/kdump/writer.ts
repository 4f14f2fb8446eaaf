/**
 * The kdump-compressed writer (kdump-reference.md 2.3, 4.x), following makedumpfile's rules:
 * num_dumpable = popcount(bitmap2) (zero pages keep their bit), descriptors at data_offset in pfn order,
 * page data right after them (shared zero page first when dump_level & 1), compressed data kept only when
 * strictly smaller than a page, and descriptors and data written through two caches of
 * page_size << 4 bytes that are flushed together (data first), so an interrupted write leaves only
 * descriptors that point at written data.
 */
import { VmsiftError } from "../../core/errors.ts";
import { findSegment, type PhysicalMemory } from "../../core/physMem.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import type { PageCodec } from "../codecs/codec.ts";
import {
  DUMP_DH_COMPRESSED_INCOMPLETE,
  encodeMainHeader,
  encodeSubHeader,
  KDUMP_HEADER_VERSION,
  KDUMP_SIGNATURE,
  MH,
} from "./header.ts";
import { type KdumpLayout, kdumpLayout, PAGE_DESC_SIZE } from "./layout.ts";
import {
  drive,
  driveAsync,
  DumpInterrupted,
  type IncompleteInfo,
  readRunChecked,
  UnreadablePages,
  type WriteControl,
} from "../incomplete.ts";
import { asOutputFull, OutputFullError } from "../../io/outputFull.ts";
import type { Sink } from "../../io/sink.ts";

/** What the writer needs to know about the input. */
export interface KdumpSource {
  mem: PhysicalMemory;
  /** Pages present (inside some PT_LOAD), at least maxMapnr bits. */
  bitmap1: PfnBitmap;
  /** Pages written (subset of bitmap1; zero pages keep their bit). */
  bitmap2: PfnBitmap;
  maxMapnr: number;
  pageSize: number;
  /** The input PT_NOTE copied verbatim. */
  noteBytes: Uint8Array;
  /** Offset of the VMCOREINFO desc text inside noteBytes, or -1. */
  vmcoreinfoOffsetInNotes: number;
  vmcoreinfoSize: number;
  /** 390 bytes (6 x 65) from the kernel's init_uts_ns. */
  utsname: Uint8Array;
  /** CRASHTIME or 0. */
  crashTime: number;
  nrCpus: number;
  physBase: bigint;
  dumpLevel: number;
}

/** Writer options. */
export interface KdumpWriteOptions {
  /** Page codec, or null for an uncompressed dump. */
  codec: PageCodec | null;
  sink: Sink;
  /** Extra header status bits (e.g. 0x10 excluded vmemmap). */
  extraStatus?: number;
  /** Called after each run of pages. */
  onProgress?: (pagesDone: number, pagesTotal: number, bytesOut: number) => void;
  /** Cache size for descriptors and for data each (default pageSize << 4 = makedumpfile's -b 4). */
  cacheSize?: number;
  /** -L size limit, interruption, and what to do when the output is full (formats/incomplete.ts). */
  control?: WriteControl;
}

/** Counts of what was written. */
export interface KdumpWriteResult {
  dumpablePages: number;
  zeroPages: number;
  rawPages: number;
  compressedPages: number;
  fileSize: number;
  /** Set when the file was finished as INCOMPLETE (header status 0x8 / ELF e_flags bit 0). */
  incomplete?: IncompleteInfo;
  /** Pages of the vmcore that could not be read (they have never-written descriptors). */
  unreadable?: UnreadablePages;
}

/** Pages read (or viewed in the mmap window) at once, at most: 512 KiB, half the input window. */
const RUN_BYTES = 512 << 10;

/** Compute the layout of the file writeKdump would produce for `src`. */
export function layoutFor(src: KdumpSource): KdumpLayout {
  return kdumpLayout({
    maxMapnr: src.maxMapnr,
    noteSize: src.noteBytes.length,
    blockSize: src.pageSize,
    numDumpable: src.bitmap2.popcount(0, Math.min(src.maxMapnr, src.bitmap2.nbits)),
  });
}

/**
 * Write a kdump-compressed file to `opts.sink` (the caller finishes/closes or aborts the sink). With
 * `opts.control` a full output or an interruption either throws (the caller aborts the sink) or finishes an
 * incomplete file (`result.incomplete`), see formats/incomplete.ts.
 */
export function writeKdump(src: KdumpSource, opts: KdumpWriteOptions): KdumpWriteResult {
  return drive(writePages(src, opts));
}

/** {@link writeKdump} letting the event loop turn between runs of pages, so that signals can interrupt it. */
export function writeKdumpAsync(src: KdumpSource, opts: KdumpWriteOptions): Promise<KdumpWriteResult> {
  return driveAsync(writePages(src, opts), opts.control);
}

/**
 * Check the source and write everything before the page descriptors (headers, notes, both bitmaps); returns
 * the layout. Shared by {@link writeKdump} and the parallel writer (formats/kdump/parallelWriter.ts).
 */
export function writeKdumpHead(
  src: KdumpSource,
  codecFlag: number,
  opts: Pick<KdumpWriteOptions, "sink" | "extraStatus" | "control">,
): KdumpLayout {
  const ps = src.pageSize;
  const sink = opts.sink;
  if (src.bitmap1.nbits < src.maxMapnr || src.bitmap2.nbits < src.maxMapnr) {
    throw new VmsiftError(`bitmaps cover fewer than max_mapnr (${src.maxMapnr}) pfns`, { file: sink.label });
  }
  const L = layoutFor(src);
  const limit = opts.control?.sizeLimit;
  const headEnd = L.pageDataOffset + ((src.dumpLevel & 1) !== 0 ? ps : 0);
  if (limit !== undefined && headEnd > limit) {
    // Nothing useful fits: no incomplete file can be made at this level (the caller may retry at the next).
    throw new OutputFullError(
      "size-limit",
      `size limit ${limit} is smaller than the headers, bitmaps and page descriptors (${headEnd} bytes)`,
      sink.label,
    );
  }
  const status = (codecFlag | (opts.extraStatus ?? 0)) >>> 0;

  // Header area: block 0, sub header, notes, padding up to the 1st bitmap.
  const head = new Uint8Array(L.offsetBitmap1);
  head.set(
    encodeMainHeader({
      signature: KDUMP_SIGNATURE,
      headerVersion: KDUMP_HEADER_VERSION,
      utsname: src.utsname,
      timestampSec: src.crashTime,
      timestampUsec: 0,
      status,
      blockSize: ps,
      subHdrSize: L.subHdrSize,
      bitmapBlocks: L.bitmapBlocks,
      maxMapnr: src.maxMapnr,
      totalRamBlocks: 0,
      deviceBlocks: 0,
      writtenBlocks: 0,
      currentCpu: 0,
      nrCpus: src.nrCpus,
    }),
    0,
  );
  const hasVmcoreinfo = src.vmcoreinfoOffsetInNotes >= 0 && src.vmcoreinfoSize > 0;
  head.set(
    encodeSubHeader({
      physBase: src.physBase,
      dumpLevel: src.dumpLevel,
      split: 0,
      startPfn: 0,
      endPfn: 0,
      offsetVmcoreinfo: hasVmcoreinfo ? L.offsetNote + src.vmcoreinfoOffsetInNotes : 0,
      sizeVmcoreinfo: hasVmcoreinfo ? src.vmcoreinfoSize : 0,
      offsetNote: L.offsetNote,
      sizeNote: src.noteBytes.length,
      offsetEraseinfo: 0,
      sizeEraseinfo: 0,
      startPfn64: 0,
      endPfn64: 0,
      maxMapnr64: src.maxMapnr,
    }),
    L.offsetSubHeader,
  );
  head.set(src.noteBytes, L.offsetNote);
  sink.write(0, head);

  writeBitmap(sink, src.bitmap1, L.offsetBitmap1, L.bitmapBytes, src.maxMapnr);
  writeBitmap(sink, src.bitmap2, L.offsetBitmap2, L.bitmapBytes, src.maxMapnr);
  return L;
}

/** Write `bytes` bytes of bitmap starting at file offset `at`, clearing bits >= maxMapnr. */
function writeBitmap(sink: Sink, bm: PfnBitmap, at: number, bytes: number, maxMapnr: number): void {
  const chunk = new Uint8Array(Math.min(bytes, 1 << 20));
  const used = Math.ceil(maxMapnr / 8);
  for (let pos = 0; pos < bytes; pos += chunk.length) {
    const n = Math.min(chunk.length, bytes - pos);
    const part = chunk.subarray(0, n);
    if (pos < used) bm.readBytes(pos, part);
    else part.fill(0);
    // Bytes past max_mapnr are zero; the last used byte keeps only bits below max_mapnr.
    if (pos + n > used) {
      const from = Math.max(0, used - pos);
      part.fill(0, from);
      if (maxMapnr % 8 !== 0 && used - 1 >= pos && used - 1 < pos + n) {
        part[used - 1 - pos] &= (1 << (maxMapnr % 8)) - 1;
      }
    }
    sink.write(at + pos, part);
  }
}

/** Read one page that may be partly outside the segments (last partial page of a PT_LOAD): zeros there. */
export function readPageLenient(mem: PhysicalMemory, paddr: number, out: Uint8Array): void {
  out.fill(0);
  const segs = mem.segments;
  const end = paddr + out.length;
  let i = findSegment(segs, paddr);
  if (i < 0) {
    // First segment starting inside the page, if any.
    i = segs.findIndex((s) => s.paddr > paddr && s.paddr < end);
    if (i < 0) return;
  }
  for (; i < segs.length && segs[i].paddr < end; i++) {
    const s = segs[i];
    const a = Math.max(paddr, s.paddr);
    const b = Math.min(end, s.paddr + s.memSize);
    if (b > a) mem.readPhys(a, out.subarray(a - paddr, b - paddr));
  }
}

/** Flush boundaries remembered for {@link PagePairWriter.salvage} (at 64 KiB per flush: 512 MiB of data). */
const BOUNDARY_RING = 8192;

/**
 * Descriptors and page data through two caches flushed together, data first (kdump-reference.md 2.3, 4.7):
 * an interrupted write leaves only descriptors that point at written data. With dump_level & 1 the shared
 * zero page is the first page of data.
 *
 * Full outputs: with `limit` (-L) a page whose data would end beyond it is refused with an OutputFullError
 * before anything of it is cached, so the caches always hold complete pairs that fit ({@link finishPartial}
 * writes them). A sink that fails (ENOSPC) may have written descriptors before their data (it caches and
 * reorders writes): {@link salvage} then uses the sink's `written` ranges and the remembered flush boundaries
 * to zero every descriptor on disk whose data is not, so the file again holds only matched pairs.
 */
export class PagePairWriter {
  readonly #sink: Sink;
  readonly #descCache: Uint8Array;
  readonly #descView: DataView;
  #descLen = 0;
  /** File offset of descCache[0]. */
  #descPos: number;
  readonly #dataCache: Uint8Array;
  #dataLen = 0;
  /** File offset of dataCache[0]. */
  #dataPos: number;
  /** File offset of the shared zero page, or -1 when zero pages are not excluded. */
  readonly zeroPageOffset: number;
  readonly #pageSize: number;
  readonly #limit: number;
  readonly #L: KdumpLayout;
  /** Ring of (descriptor end, data end) file offsets after each completed flush, and the last one dropped. */
  readonly #ringDesc = new Float64Array(BOUNDARY_RING);
  readonly #ringData = new Float64Array(BOUNDARY_RING);
  #ringNext = 0;
  #ringLen = 0;
  #floorDesc: number;
  #floorData: number;
  /** Never-written descriptors added for unreadable pages. */
  missing = 0;

  constructor(
    sink: Sink,
    L: KdumpLayout,
    pageSize: number,
    cacheSize: number,
    excludeZero: boolean,
    limit = Infinity,
  ) {
    this.#sink = sink;
    this.#pageSize = pageSize;
    this.#L = L;
    this.#limit = limit;
    this.#descCache = new Uint8Array(Math.max(cacheSize, PAGE_DESC_SIZE));
    this.#descView = new DataView(this.#descCache.buffer);
    this.#descPos = L.dataOffset;
    this.#dataCache = new Uint8Array(Math.max(cacheSize, pageSize));
    this.#dataPos = L.pageDataOffset;
    this.#floorDesc = L.dataOffset;
    this.#floorData = L.pageDataOffset;
    this.zeroPageOffset = -1;
    if (excludeZero) {
      this.zeroPageOffset = L.pageDataOffset;
      this.#dataCache.fill(0, 0, pageSize);
      this.#dataLen = pageSize;
    }
  }

  /** File offset where the next page data goes. */
  get dataEnd(): number {
    return this.#dataPos + this.#dataLen;
  }

  /** Descriptors handed to the sink or cached so far. */
  get descriptors(): number {
    return (this.#descPos + this.#descLen - this.#L.dataOffset) / PAGE_DESC_SIZE;
  }

  /** Write both caches (data first) and empty them. */
  flush(): void {
    if (this.#dataLen > 0) this.#sink.write(this.#dataPos, this.#dataCache.subarray(0, this.#dataLen));
    this.#dataPos += this.#dataLen;
    this.#dataLen = 0;
    if (this.#descLen > 0) this.#sink.write(this.#descPos, this.#descCache.subarray(0, this.#descLen));
    this.#descPos += this.#descLen;
    this.#descLen = 0;
    this.#remember(this.#descPos, this.#dataPos);
  }

  #remember(desc: number, data: number): void {
    const i = this.#ringNext;
    if (this.#ringLen === BOUNDARY_RING) {
      this.#floorDesc = this.#ringDesc[i];
      this.#floorData = this.#ringData[i];
    } else this.#ringLen++;
    this.#ringDesc[i] = desc;
    this.#ringData[i] = data;
    this.#ringNext = (i + 1) % BOUNDARY_RING;
  }

  /** The end of the descriptors of the last flush whose data ended at or before `dataEnd`. */
  #descCut(dataEnd: number): number {
    for (let k = 1; k <= this.#ringLen; k++) {
      const i = (this.#ringNext - k + BOUNDARY_RING) % BOUNDARY_RING;
      if (this.#ringData[i] <= dataEnd) return this.#ringDesc[i];
    }
    return this.#floorData <= dataEnd ? this.#floorDesc : this.#L.dataOffset;
  }

  /** A descriptor pointing at the shared zero page. */
  addZero(): void {
    this.#add(this.zeroPageOffset, this.#pageSize, 0, null);
  }

  /** A never-written descriptor (all zeros: offset 0) for a page that could not be read. */
  addMissing(): void {
    this.#add(0, 0, 0, null);
    this.missing++;
  }

  /** A descriptor and `data` (size bytes, flags 0 = raw or a codec flag) at the end of the page data. */
  addData(data: Uint8Array, flags: number): void {
    const size = data.length;
    if (this.dataEnd + size > this.#limit) {
      throw new OutputFullError(
        "size-limit",
        `size limit (${this.#limit}) reached`,
        this.#sink.label,
        this.dataEnd,
      );
    }
    if (this.#dataLen + size > this.#dataCache.length) this.flush();
    this.#add(this.#dataPos + this.#dataLen, size, flags, data);
  }

  #add(offset: number, size: number, flags: number, data: Uint8Array | null): void {
    if (this.#descLen + PAGE_DESC_SIZE > this.#descCache.length) this.flush();
    const dv = this.#descView;
    const at = this.#descLen;
    dv.setUint32(at, offset % 0x1_0000_0000, true);
    dv.setUint32(at + 4, Math.floor(offset / 0x1_0000_0000), true);
    dv.setUint32(at + 8, size, true);
    dv.setUint32(at + 12, flags, true);
    dv.setUint32(at + 16, 0, true);
    dv.setUint32(at + 20, 0, true);
    this.#descLen += PAGE_DESC_SIZE;
    if (data !== null) {
      this.#dataCache.set(data, this.#dataLen);
      this.#dataLen += size;
    }
  }

  /**
   * Finish an incomplete file after an interruption or the size limit (the caches hold matched pairs that
   * fit): write them, finish the sink. Falls back to {@link salvage} when a write fails. Returns the pages
   * written.
   */
  finishPartial(): { pagesWritten: number; fileSize: number } {
    try {
      this.flush();
      const fileSize = this.dataEnd;
      this.#sink.finish(fileSize);
      return { pagesWritten: this.descriptors - this.missing, fileSize };
    } catch (e) {
      if (asOutputFull(e) === null) throw e;
      return this.salvage();
    }
  }

  /**
   * After a failed write (ENOSPC): forget what the sink could not write, zero every descriptor on disk whose
   * data is not (wholly) on disk, and finish the sink at the size it has. Returns the pages kept.
   */
  salvage(): { pagesWritten: number; fileSize: number } {
    const sink = this.#sink;
    const L = this.#L;
    this.#descLen = 0;
    this.#dataLen = 0;
    const W = sink.writtenRanges;
    if (W === undefined) {
      // A sink that does not say what it wrote (dry run, stream): assume the completed flushes.
      sink.dropPending?.();
      const fileSize = this.#dataPos;
      sink.finish(fileSize);
      const pages = (this.#descPos - L.dataOffset) / PAGE_DESC_SIZE;
      return { pagesWritten: Math.max(0, pages - this.missing), fileSize };
    }
    const first = L.dataOffset, tableEnd = L.pageDataOffset;
    const zero = (a: number, b: number) => {
      if (b > a) sink.rewrite(a, new Uint8Array(b - a));
    };
    const onDiskEnd = () => {
      let d = L.pageDataOffset;
      for (const [a, b] of W.ranges()) if (a <= d && b > d) d = b;
      return d;
    };
    // Page data handed to the sink: on disk or still cached (finish() writes the cached part).
    let D = this.#dataPos;
    for (;;) {
      // Keep the head, the descriptors whose data is kept, and that data; drop the rest of the cache.
      const cut = this.#descCut(D);
      sink.dropPending?.(cut, tableEnd);
      sink.dropPending?.(D);
      // On-disk descriptor bytes past the cut: their data may be missing.
      for (const [a, b] of W.ranges()) zero(Math.max(a, cut), Math.min(b, tableEnd));
      try {
        sink.truncate?.(D); // frees the blocks of data given up, before the cached bytes are written
        sink.finish(D);
      } catch (e) {
        // Still no room for what is cached: give up the last MiB of data and try again.
        if (asOutputFull(e) === null || D <= L.pageDataOffset) throw e;
        D = Math.max(L.pageDataOffset, D - (1 << 20));
        continue;
      }
      // Everything kept must really be on disk now (a failed write may have lost cached blocks).
      const d = onDiskEnd();
      if (d < D) {
        D = d;
        continue;
      }
      // Descriptors below the cut that are only partly on disk (a write cut between two blocks) are zeroed;
      // the whole ones are the pages written.
      let whole = 0;
      for (const [a, b] of W.ranges()) {
        const lo = Math.max(a, first), hi = Math.min(b, cut);
        if (hi <= lo) continue;
        const d0 = first + Math.ceil((lo - first) / PAGE_DESC_SIZE) * PAGE_DESC_SIZE;
        const d1 = first + Math.floor((hi - first) / PAGE_DESC_SIZE) * PAGE_DESC_SIZE;
        if (d0 > lo) zero(lo, Math.min(d0, hi));
        if (d1 < hi && d1 >= d0) zero(d1, hi);
        if (d1 > d0) whole += (d1 - d0) / PAGE_DESC_SIZE;
      }
      return { pagesWritten: Math.max(0, whole - this.missing), fileSize: D };
    }
  }
}

/** Set the incomplete flag (status 0x8) in a kdump header written with `status`. */
export function markKdumpIncomplete(sink: Sink, status: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, (status | DUMP_DH_COMPRESSED_INCOMPLETE) >>> 0, true);
  sink.rewrite(MH.status, b);
}

/**
 * What a writer does when writing stops early (`e`): an OutputFullError without `keepIncomplete` and any
 * other error are rethrown (the caller aborts the sink); otherwise the file is finished as incomplete with
 * matched pairs only and the header flag set. Returns the description.
 */
export function finishIncomplete(
  e: unknown,
  out: PagePairWriter,
  sink: Sink,
  status: number,
  total: number,
  control: WriteControl | undefined,
): { info: IncompleteInfo; fileSize: number } {
  const full = asOutputFull(e);
  const intr = e instanceof DumpInterrupted ? e : null;
  if (intr === null && (full === null || !control?.keepIncomplete)) throw full ?? e;
  const r = full?.reason === "no-space" ? out.salvage() : out.finishPartial();
  if (control?.markIncomplete ?? true) markKdumpIncomplete(sink, status);
  const info: IncompleteInfo = {
    reason: intr !== null ? "interrupted" : full!.reason,
    pagesWritten: r.pagesWritten,
    pagesTotal: total,
    signal: intr?.signal,
    detail: (intr ?? full)!.message,
  };
  return { info, fileSize: r.fileSize };
}

/**
 * The runs of contiguous set bits of `bitmap` below `maxMapnr` as [start, n], in pfn order, runs cut at
 * `maxRun` pages.
 */
export function* bitmapRuns(
  bitmap: PfnBitmap,
  maxMapnr: number,
  maxRun: number,
): Generator<[start: number, n: number], void, undefined> {
  const chunkBytes = 1 << 16;
  const bm = new Uint8Array(chunkBytes);
  let runStart = -1, runLen = 0;
  for (let base = 0; base < maxMapnr; base += chunkBytes * 8) {
    const nb = Math.min(chunkBytes, Math.ceil((maxMapnr - base) / 8));
    bitmap.readBytes(base >>> 3, bm.subarray(0, nb));
    for (let i = 0; i < nb; i++) {
      const byte = bm[i];
      const pfn0 = base + i * 8;
      if (byte === 0) {
        if (runLen > 0) {
          yield [runStart, runLen];
          runLen = 0;
        }
        continue;
      }
      for (let bit = 0; bit < 8; bit++) {
        const pfn = pfn0 + bit;
        if (pfn >= maxMapnr) break;
        if ((byte >>> bit) & 1) {
          if (runLen > 0 && (runStart + runLen !== pfn || runLen === maxRun)) {
            yield [runStart, runLen];
            runLen = 0;
          }
          if (runLen === 0) runStart = pfn;
          runLen++;
        } else if (runLen > 0) {
          yield [runStart, runLen];
          runLen = 0;
        }
      }
    }
  }
  if (runLen > 0) yield [runStart, runLen];
}

/** Read pages start..start+buf.length/ps into `buf`, zero-filling what no segment holds. */
export function readRun(mem: PhysicalMemory, start: number, ps: number, buf: Uint8Array): void {
  if (!mem.readPhys(start * ps, buf)) {
    for (let k = 0, n = buf.length / ps; k < n; k++) {
      readPageLenient(mem, (start + k) * ps, buf.subarray(k * ps, (k + 1) * ps));
    }
  }
}

/** True when the `wordsPerPage` (a multiple of 8) 32-bit words of `words` from `first` are all zero. */
export function isZeroPage(words: Uint32Array, first: number, wordsPerPage: number): boolean {
  const w = words;
  for (let i = first, e = first + wordsPerPage; i < e; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}

function* writePages(
  src: KdumpSource,
  opts: KdumpWriteOptions,
): Generator<void, KdumpWriteResult, undefined> {
  const ps = src.pageSize;
  const sink = opts.sink;
  const codec = opts.codec;
  const control = opts.control;
  const status = ((codec?.flag ?? 0) | (opts.extraStatus ?? 0)) >>> 0;
  const L = writeKdumpHead(src, codec?.flag ?? 0, opts);
  const excludeZero = (src.dumpLevel & 1) !== 0;
  const cacheSize = opts.cacheSize ?? ps << 4;
  const out = new PagePairWriter(sink, L, ps, cacheSize, excludeZero, control?.sizeLimit);

  const runPages = Math.max(1, Math.floor(RUN_BYTES / ps));
  const runBuf = new Uint8Array(runPages * ps);
  const words = new Uint32Array(runBuf.buffer);
  const bad = new Uint8Array(runPages);
  const unreadable = new UnreadablePages();
  const res: KdumpWriteResult = {
    dumpablePages: 0,
    zeroPages: 0,
    rawPages: 0,
    compressedPages: 0,
    fileSize: 0,
  };
  const total = L.numDumpable;

  try {
    for (const [start, n] of bitmapRuns(src.bitmap2, src.maxMapnr, runPages)) {
      // Straight from the input's mmap window when it can (no copy; zero check and codec read it there).
      const view = src.mem.viewPhys?.(start * ps, n * ps) ?? null;
      if (view !== null && view.byteOffset % 4 === 0) {
        const w = new Uint32Array(view.buffer, view.byteOffset, view.length >>> 2);
        storeRunPages(out, res, view, w, n, ps, bad, 0, excludeZero, codec);
      } else {
        const buf = runBuf.subarray(0, n * ps);
        const nbad = readRunChecked(src.mem, start, ps, buf, bad, unreadable, readRun, readPageLenient);
        storeRunPages(out, res, buf, words, n, ps, bad, nbad, excludeZero, codec);
      }
      res.dumpablePages += n;
      opts.onProgress?.(res.dumpablePages, total, out.dataEnd);
      yield;
    }
    finishPages(res, out, total, sink);
  } catch (e) {
    const r = finishIncomplete(e, out, sink, status, total, control);
    res.incomplete = r.info;
    res.fileSize = r.fileSize;
  }
  return withUnreadable(res, unreadable, out, sink, status, total, control);
}

/** Record unreadable pages in `res`; a dump that has some is marked incomplete (once). */
export function withUnreadable(
  res: KdumpWriteResult,
  unreadable: UnreadablePages,
  out: PagePairWriter,
  sink: Sink,
  status: number,
  total: number,
  control: WriteControl | undefined,
): KdumpWriteResult {
  if (unreadable.pages === 0) return res;
  res.unreadable = unreadable;
  if (res.incomplete === undefined) {
    if (control?.markIncomplete ?? true) markKdumpIncomplete(sink, status);
    res.incomplete = {
      reason: "read-error",
      pagesWritten: out.descriptors - out.missing,
      pagesTotal: total,
      detail: unreadable.firstError,
    };
  }
  return res;
}

/** Flush, check the page count, set the file size (shared with the parallel writer). */
export function finishPages(
  res: KdumpWriteResult,
  out: PagePairWriter,
  total: number,
  sink: Sink,
): KdumpWriteResult {
  out.flush();
  if (res.dumpablePages !== total) {
    throw new VmsiftError(`bitmap2 changed while writing: ${res.dumpablePages} pages, expected ${total}`, {
      file: sink.label,
    });
  }
  res.fileSize = out.dataEnd;
  sink.finish(res.fileSize);
  return res;
}

/**
 * Store the `n` pages of one run (read into `buf`, viewed as `words`) through `out`: unreadable pages get
 * no data (their descriptors stay unwritten), zero pages the shared zero descriptor when `excludeZero`,
 * the rest compressed when that is strictly smaller than a page, else raw. Counts go into `res`.
 */
export function storeRunPages(
  out: PagePairWriter,
  res: KdumpWriteResult,
  buf: Uint8Array,
  words: Uint32Array,
  n: number,
  ps: number,
  bad: Uint8Array,
  nbad: number,
  excludeZero: boolean,
  codec: PageCodec | null,
): void {
  const wordsPerPage = ps >>> 2;
  for (let k = 0; k < n; k++) {
    if (nbad > 0 && bad[k] !== 0) {
      out.addMissing();
      continue;
    }
    if (excludeZero && isZeroPage(words, k * wordsPerPage, wordsPerPage)) {
      out.addZero();
      res.zeroPages++;
      continue;
    }
    const page = buf.subarray(k * ps, (k + 1) * ps);
    const c = codec !== null ? codec.compress(page) : null;
    if (c !== null && c.length < ps) {
      out.addData(c, codec!.flag);
      res.compressedPages++;
    } else {
      out.addData(page, 0);
      res.rawPages++;
    }
  }
}
