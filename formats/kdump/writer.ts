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
import type { Sink } from "../sink.ts";
import { encodeMainHeader, encodeSubHeader, KDUMP_HEADER_VERSION, KDUMP_SIGNATURE } from "./header.ts";
import { type KdumpLayout, kdumpLayout, PAGE_DESC_SIZE } from "./layout.ts";

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
}

/** Counts of what was written. */
export interface KdumpWriteResult {
  dumpablePages: number;
  zeroPages: number;
  rawPages: number;
  compressedPages: number;
  fileSize: number;
}

/** Pages read from memory in one readPhys call at most (4 MiB of 4 KiB pages). */
const RUN_BYTES = 4 << 20;

/** Compute the layout of the file writeKdump would produce for `src`. */
export function layoutFor(src: KdumpSource): KdumpLayout {
  return kdumpLayout({
    maxMapnr: src.maxMapnr,
    noteSize: src.noteBytes.length,
    blockSize: src.pageSize,
    numDumpable: src.bitmap2.popcount(0, Math.min(src.maxMapnr, src.bitmap2.nbits)),
  });
}

/** Write a kdump-compressed file to `opts.sink` (the caller finishes/closes or aborts the sink). */
export function writeKdump(src: KdumpSource, opts: KdumpWriteOptions): KdumpWriteResult {
  const L = writeKdumpHead(src, opts.codec?.flag ?? 0, opts);
  return writePages(src, opts, L);
}

/**
 * Check the source and write everything before the page descriptors (headers, notes, both bitmaps); returns
 * the layout. Shared by {@link writeKdump} and the parallel writer (formats/kdump/parallelWriter.ts).
 */
export function writeKdumpHead(
  src: KdumpSource,
  codecFlag: number,
  opts: Pick<KdumpWriteOptions, "sink" | "extraStatus">,
): KdumpLayout {
  const ps = src.pageSize;
  const sink = opts.sink;
  if (src.bitmap1.nbits < src.maxMapnr || src.bitmap2.nbits < src.maxMapnr) {
    throw new VmsiftError(`bitmaps cover fewer than max_mapnr (${src.maxMapnr}) pfns`, { file: sink.label });
  }
  const L = layoutFor(src);
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

/**
 * Descriptors and page data through two caches flushed together, data first (kdump-reference.md 2.3, 4.7):
 * an interrupted write leaves only descriptors that point at written data. With dump_level & 1 the shared
 * zero page is the first page of data.
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

  constructor(sink: Sink, L: KdumpLayout, pageSize: number, cacheSize: number, excludeZero: boolean) {
    this.#sink = sink;
    this.#pageSize = pageSize;
    this.#descCache = new Uint8Array(Math.max(cacheSize, PAGE_DESC_SIZE));
    this.#descView = new DataView(this.#descCache.buffer);
    this.#descPos = L.dataOffset;
    this.#dataCache = new Uint8Array(Math.max(cacheSize, pageSize));
    this.#dataPos = L.pageDataOffset;
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

  /** Write both caches (data first) and empty them. */
  flush(): void {
    if (this.#dataLen > 0) this.#sink.write(this.#dataPos, this.#dataCache.subarray(0, this.#dataLen));
    this.#dataPos += this.#dataLen;
    this.#dataLen = 0;
    if (this.#descLen > 0) this.#sink.write(this.#descPos, this.#descCache.subarray(0, this.#descLen));
    this.#descPos += this.#descLen;
    this.#descLen = 0;
  }

  /** A descriptor pointing at the shared zero page. */
  addZero(): void {
    this.#add(this.zeroPageOffset, this.#pageSize, 0, null);
  }

  /** A descriptor and `data` (size bytes, flags 0 = raw or a codec flag) at the end of the page data. */
  addData(data: Uint8Array, flags: number): void {
    const size = data.length;
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

function writePages(src: KdumpSource, opts: KdumpWriteOptions, L: KdumpLayout): KdumpWriteResult {
  const ps = src.pageSize;
  const sink = opts.sink;
  const codec = opts.codec;
  const wordsPerPage = ps >>> 2;
  const excludeZero = (src.dumpLevel & 1) !== 0;
  const out = new PagePairWriter(sink, L, ps, opts.cacheSize ?? ps << 4, excludeZero);

  const runPages = Math.max(1, Math.floor(RUN_BYTES / ps));
  const runBuf = new Uint8Array(runPages * ps);
  const words = new Uint32Array(runBuf.buffer);
  const res: KdumpWriteResult = {
    dumpablePages: 0,
    zeroPages: 0,
    rawPages: 0,
    compressedPages: 0,
    fileSize: 0,
  };
  const total = L.numDumpable;

  for (const [start, n] of bitmapRuns(src.bitmap2, src.maxMapnr, runPages)) {
    const buf = runBuf.subarray(0, n * ps);
    readRun(src.mem, start, ps, buf);
    for (let k = 0; k < n; k++) {
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
    res.dumpablePages += n;
    opts.onProgress?.(res.dumpablePages, total, out.dataEnd);
  }
  return finishPages(res, out, total, sink);
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
