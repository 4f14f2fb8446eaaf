/**
 * The kdump-compressed writer (kdump-reference.md 2.3, 4.x), following makedumpfile's rules:
 * num_dumpable = popcount(bitmap2) (zero pages keep their bit), descriptors at data_offset in pfn order,
 * page data right after them (shared zero page first when dump_level & 1), compressed data kept only when
 * strictly smaller than a page, and descriptors and data written through two caches of
 * page_size << 4 bytes that are flushed together (data first), so an interrupted write leaves only
 * descriptors that point at written data.
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PhysicalMemory } from "../../core/physMem.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import { isZeroPage } from "../../core/zeroPages.ts";
import type { PageCodec } from "../codecs/codec.ts";
import {
  drive,
  driveAsync,
  type IncompleteInfo,
  readRunChecked,
  UnreadablePages,
  type WriteControl,
} from "../incomplete.ts";
import type { Sink } from "../../io/sink.ts";
import { ZeroPageTest } from "../../io/libc.ts";
import { markKdumpIncomplete, writeKdumpHead } from "./headWriter.ts";
import { finishIncomplete, PagePairWriter } from "./pagePairWriter.ts";
import { PageViews } from "./pageViews.ts";
import { bitmapRuns, readPageLenient, readRun } from "./pageRuns.ts";

/** What the writer needs to know about the input. */
export interface KdumpSource {
  /** Where page contents are read. */
  mem: PhysicalMemory;
  /** Pages present (inside some PT_LOAD), at least maxMapnr bits. */
  bitmap1: PfnBitmap;
  /** Pages written (subset of bitmap1; zero pages keep their bit). */
  bitmap2: PfnBitmap;
  /** Pages the bitmaps cover (pfns below it). */
  maxMapnr: number;
  /** Bytes per page. */
  pageSize: number;
  /** The input PT_NOTE copied verbatim. */
  noteBytes: Uint8Array;
  /** Offset of the VMCOREINFO desc text inside noteBytes, or -1. */
  vmcoreinfoOffsetInNotes: number;
  /** Length of the VMCOREINFO text inside noteBytes. */
  vmcoreinfoSize: number;
  /** 390 bytes (6 x 65) from the kernel's init_uts_ns. */
  utsname: Uint8Array;
  /** CRASHTIME or 0. */
  crashTime: number;
  /** nr_cpus of the header. */
  nrCpus: number;
  /** phys_base of the sub header. */
  physBase: bigint;
  /** dump_level of the sub header. */
  dumpLevel: number;
  /**
   * ERASEINFO text to append after the page data (--config / --erase, core/eraseApply.ts; a re-filtered
   * input's own ERASEINFO first).
   */
  eraseinfo?: Uint8Array;
  /** --split: the ERASEINFO of each file instead (each holds what was erased in its pfn range). */
  eraseinfoParts?: readonly Uint8Array[];
}

/** Writer options. */
export interface KdumpWriteOptions {
  /** Page codec, or null for an uncompressed dump. */
  codec: PageCodec | null;
  /** Where the file goes (the caller closes or aborts it). */
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
  /** Pages written (zero pages included). */
  dumpablePages: number;
  /** Of those, zero pages (the shared zero page). */
  zeroPages: number;
  /** Of those, stored uncompressed. */
  rawPages: number;
  /** Of those, stored compressed. */
  compressedPages: number;
  /** Size of the file, bytes. */
  fileSize: number;
  /** Set when the file was finished as INCOMPLETE (header status 0x8 / ELF e_flags bit 0). */
  incomplete?: IncompleteInfo;
  /** Pages of the vmcore that could not be read (they have never-written descriptors). */
  unreadable?: UnreadablePages;
}

/** Pages read (or viewed in the mmap window) at once, at most: 512 KiB, half the input window. */
const RUN_BYTES = 512 << 10;

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
  const zeroTest = excludeZero ? ZeroPageTest.open(ps) : null;
  const views = new PageViews(ps);

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
        storeRunPages(out, res, view, w, n, ps, bad, 0, excludeZero, codec, zeroTest, views);
      } else {
        const buf = runBuf.subarray(0, n * ps);
        const nbad = readRunChecked(src.mem, start, ps, buf, bad, unreadable, readRun, readPageLenient);
        storeRunPages(out, res, buf, words, n, ps, bad, nbad, excludeZero, codec, zeroTest, views);
      }
      res.dumpablePages += n;
      opts.onProgress?.(res.dumpablePages, total, out.dataEnd);
      yield;
    }
    finishPages(res, out, total, sink, src.eraseinfo);
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
  eraseinfo?: Uint8Array,
): KdumpWriteResult {
  out.flush();
  if (res.dumpablePages !== total) {
    throw new VmsiftError(`bitmap2 changed while writing: ${res.dumpablePages} pages, expected ${total}`, {
      file: sink.label,
    });
  }
  if (eraseinfo !== undefined) out.appendEraseinfo(eraseinfo);
  res.fileSize = out.dataEnd;
  sink.finish(res.fileSize);
  return res;
}

/**
 * Store the `n` pages of one run (read into `buf`, viewed as `words`) through `out`: unreadable pages get
 * no data (their descriptors stay unwritten), zero pages the shared zero descriptor when `excludeZero`,
 * the rest compressed when that is strictly smaller than a page, else raw. Counts go into `res`.
 * `zeroTest`: libc's memcmp for the zero test (same answers as the JavaScript loop, faster). `views`: page
 * views reused from run to run (no allocation per page).
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
  zeroTest: ZeroPageTest | null = null,
  views: PageViews | null = null,
): void {
  const wordsPerPage = ps >>> 2;
  const native = zeroTest !== null && buf.buffer instanceof ArrayBuffer && !buf.buffer.resizable
    ? zeroTest
    : null;
  for (let k = 0; k < n; k++) {
    if (nbad > 0 && bad[k] !== 0) {
      out.addMissing();
      continue;
    }
    const page = views !== null ? views.page(buf, k) : buf.subarray(k * ps, (k + 1) * ps);
    // The first 64 bytes in JavaScript (most non-zero pages end there), the rest with memcmp when it loads.
    if (
      excludeZero && isZeroPage(words, k * wordsPerPage, 16) &&
      (native !== null
        ? native.isZero(page as Uint8Array<ArrayBuffer>)
        : isZeroPage(words, k * wordsPerPage, wordsPerPage))
    ) {
      out.addZero();
      res.zeroPages++;
      continue;
    }
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
