/**
 * `--split F1 F2 ...`: one dump written as several kdump-compressed files, each holding the pages of one
 * pfn range (kdump-reference.md 2.3, 4.8; makedumpfile's prepare_splitblock_table,
 * get_num_dumpable_cyclic_withsplit, calculate_end_pfn_by_splitblock, setup_splitting and
 * write_kdump_pages_cyclic).
 *
 * Every file has the full main header, sub header (split = 1, start_pfn/end_pfn = the range clamped to
 * 32 bits like makedumpfile's MIN(pfn, UINT_MAX), start_pfn_64/end_pfn_64 = [start, end)), the notes and
 * the FULL-range bitmaps 1 and 2. Its descriptor array starts at data_offset as usual but holds only the
 * dumpable pfns of its range; its page data still starts after num_dumpable(total) * 24 bytes (the unused
 * tail of the descriptor array is a hole), with the shared zero page first when dump_level & 1 — so a
 * reassembled file (reassemble.ts) is byte-identical to the direct one.
 *
 * Ranges: a table of dumpable-page counts per splitblock (default 1 GiB of pfns) where, as in makedumpfile,
 * only COMPLETE blocks get their count (the last partial block counts 0). File i (all but the last) takes
 * whole blocks from where file i-1 ended until it has at least num_dumpable / nfiles pages; the last file
 * ends at max_mapnr. With dumps smaller than one block (or few blocks) this gives empty ranges to the last
 * files, exactly like makedumpfile (--splitblock-size makes blocks smaller).
 *
 * The input is read once: the pages are walked in pfn order and each goes to the file whose range holds it.
 * With --config/--erase each file ends with the ERASEINFO of what was erased in its range (as each of
 * makedumpfile's split processes writes it), its own offset_eraseinfo/size_eraseinfo in its sub header.
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import { SH } from "./header.ts";
import {
  type KdumpSource,
  type KdumpWriteOptions,
  type KdumpWriteResult,
  storeRunPages,
  withUnreadable,
} from "./writer.ts";
import { drive, driveAsync, DumpInterrupted, readRunChecked, UnreadablePages } from "../incomplete.ts";
import type { KdumpLayout } from "./layout.ts";
import type { Sink } from "../../io/sink.ts";
import { bitmapRuns, readPageLenient, readRun } from "./pageRuns.ts";
import { finishIncomplete, PagePairWriter } from "./pagePairWriter.ts";
import { writeKdumpHead } from "./headWriter.ts";

/** makedumpfile's DEFAULT_SPLITBLOCK_SIZE: 1 GiB. */
const DEFAULT_SPLITBLOCK_SIZE = 1 << 30;

/** One split file's pfn range [startPfn, endPfn). */
export interface SplitRange {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
}

/** Options of {@link writeKdumpSplit}: the writer's options without the sink, plus the splitblock size. */
export interface KdumpSplitOptions extends Omit<KdumpWriteOptions, "sink"> {
  /** Bytes of pfn space per splitblock (--splitblock-size KiB << 10); a multiple of the page size. */
  splitblockSize?: number;
}

/** What {@link writeKdumpSplit} wrote. */
export interface KdumpSplitResult {
  ranges: SplitRange[];
  /** Per file, in the order of `sinks`. */
  files: KdumpWriteResult[];
  /** Sums over the files (fileSize = sum of the file sizes). */
  total: KdumpWriteResult;
}

/**
 * Dumpable pages per splitblock of `pagesPerBlock` pfns, makedumpfile style: ceil(maxMapnr / pagesPerBlock)
 * entries, of which only the complete blocks are filled (a last partial block stays 0).
 */
export function splitblockTable(bitmap2: PfnBitmap, maxMapnr: number, pagesPerBlock: number): Float64Array {
  if (!(Number.isInteger(pagesPerBlock) && pagesPerBlock > 0)) {
    throw new RangeError(`pages per splitblock must be a positive integer, got ${pagesPerBlock}`);
  }
  const n = Math.ceil(maxMapnr / pagesPerBlock);
  const table = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const start = i * pagesPerBlock;
    const end = start + pagesPerBlock;
    if (end > maxMapnr) break; // partial block: never written into the table by makedumpfile
    table[i] = bitmap2.popcount(start, end);
  }
  return table;
}

/**
 * The pfn ranges of `nFiles` split files (setup_splitting / calculate_end_pfn_by_splitblock): contiguous,
 * starting at 0 and ending at maxMapnr; a range may be empty.
 */
export function splitRanges(
  bitmap2: PfnBitmap,
  maxMapnr: number,
  nFiles: number,
  pageSize: number,
  splitblockSize: number = DEFAULT_SPLITBLOCK_SIZE,
): SplitRange[] {
  if (!(Number.isInteger(nFiles) && nFiles >= 2)) {
    throw new RangeError(`--split needs at least 2 files, got ${nFiles}`);
  }
  if (!(splitblockSize > 0 && splitblockSize % pageSize === 0)) {
    throw new RangeError(`splitblock size ${splitblockSize} must be a positive multiple of ${pageSize}`);
  }
  const perBlock = splitblockSize / pageSize;
  const table = splitblockTable(bitmap2, maxMapnr, perBlock);
  const numDumpable = bitmap2.popcount(0, Math.min(maxMapnr, bitmap2.nbits));
  const needed = Math.floor(numDumpable / nFiles);
  const ranges: SplitRange[] = [];
  let block = 0;
  let end = 0;
  for (let i = 0; i < nFiles - 1; i++) {
    const start = end;
    if (start >= maxMapnr) {
      end = maxMapnr;
    } else {
      let want = needed;
      while (block < table.length && want > 0) want -= table[block++];
      end = Math.min(block * perBlock, maxMapnr);
    }
    ranges.push({ startPfn: start, endPfn: end });
  }
  ranges.push({ startPfn: end, endPfn: maxMapnr });
  return ranges;
}

/** Pages read from memory in one readPhys call at most (4 MiB of 4 KiB pages). */
const RUN_BYTES = 4 << 20;

/** Set the sub header's split fields of a file whose head writeKdumpHead has written. */
function markSplit(sink: Sink, L: KdumpLayout, r: SplitRange): void {
  const at = L.offsetSubHeader;
  const a = new Uint8Array(20); // split (int) at 12, start_pfn at 16, end_pfn at 24
  const av = new DataView(a.buffer);
  av.setInt32(0, 1, true);
  // makedumpfile: kh.start_pfn = MIN(split_start_pfn, UINT_MAX) (obsolete 32-bit copies).
  setU64(av, 4, Math.min(r.startPfn, 0xffff_ffff));
  setU64(av, 12, Math.min(r.endPfn, 0xffff_ffff));
  sink.rewrite(at + SH.split, a);
  const b = new Uint8Array(16);
  const bv = new DataView(b.buffer);
  setU64(bv, 0, r.startPfn);
  setU64(bv, 8, r.endPfn);
  sink.rewrite(at + SH.startPfn64, b);
}

function setU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 0x1_0000_0000, true);
  dv.setUint32(at + 4, Math.floor(v / 0x1_0000_0000), true);
}

function emptyResult(): KdumpWriteResult {
  return { dumpablePages: 0, zeroPages: 0, rawPages: 0, compressedPages: 0, fileSize: 0 };
}

/**
 * Write `src` as `sinks.length` (≥ 2) split files. The input pages are read once, in pfn order. The caller
 * closes (or on error aborts) every sink; sinks are finished here. With `opts.control` (-L per file, full
 * disk, interruption) a file that cannot take more is finished as incomplete and the others go on (as
 * makedumpfile's one process per file does); an interruption finishes every file not yet complete.
 */
export function writeKdumpSplit(src: KdumpSource, sinks: Sink[], opts: KdumpSplitOptions): KdumpSplitResult {
  return drive(splitPages(src, sinks, opts));
}

/** {@link writeKdumpSplit} letting the event loop turn between runs of pages (signals). */
export function writeKdumpSplitAsync(
  src: KdumpSource,
  sinks: Sink[],
  opts: KdumpSplitOptions,
): Promise<KdumpSplitResult> {
  return driveAsync(splitPages(src, sinks, opts), opts.control);
}

function* splitPages(
  src: KdumpSource,
  sinks: Sink[],
  opts: KdumpSplitOptions,
): Generator<void, KdumpSplitResult, undefined> {
  const ps = src.pageSize;
  const ranges = splitRanges(src.bitmap2, src.maxMapnr, sinks.length, ps, opts.splitblockSize);
  const codec = opts.codec;
  const control = opts.control;
  const excludeZero = (src.dumpLevel & 1) !== 0;
  const cacheSize = opts.cacheSize ?? ps << 4;
  const status = ((codec?.flag ?? 0) | (opts.extraStatus ?? 0)) >>> 0;

  let L: KdumpLayout | undefined;
  const writers: PagePairWriter[] = [];
  const expected: number[] = [];
  sinks.forEach((sink, i) => {
    L = writeKdumpHead(src, codec?.flag ?? 0, { sink, extraStatus: opts.extraStatus, control });
    markSplit(sink, L, ranges[i]);
    writers.push(new PagePairWriter(sink, L, ps, cacheSize, excludeZero, control?.sizeLimit));
    expected.push(src.bitmap2.popcount(ranges[i].startPfn, ranges[i].endPfn));
  });
  const total = L!.numDumpable;
  const files = sinks.map(() => emptyResult());
  const unreadable = sinks.map(() => new UnreadablePages());
  /** Files finished early (incomplete): their remaining pages are skipped. */
  const stopped = sinks.map(() => false);
  const stop = (i: number, e: unknown) => {
    const r = finishIncomplete(e, writers[i], sinks[i], status, expected[i], control);
    files[i].incomplete = r.info;
    files[i].fileSize = r.fileSize;
    stopped[i] = true;
  };

  const runPages = Math.max(1, Math.floor(RUN_BYTES / ps));
  const runBuf = new Uint8Array(runPages * ps);
  const words = new Uint32Array(runBuf.buffer);
  const bad = new Uint8Array(runPages);
  let f = 0;
  let done = 0;
  let bytesBefore = 0; // data bytes of the files already finished (for progress)
  try {
    for (const [runStart, runLen] of bitmapRuns(src.bitmap2, src.maxMapnr, runPages)) {
      let start = runStart;
      let n = runLen;
      while (n > 0) {
        while (start >= ranges[f].endPfn) {
          bytesBefore += writers[f].dataEnd;
          f++;
        }
        const take = Math.min(n, ranges[f].endPfn - start);
        const out = writers[f];
        const res = files[f];
        if (!stopped[f]) {
          const buf = runBuf.subarray(0, take * ps);
          const nbad = readRunChecked(src.mem, start, ps, buf, bad, unreadable[f], readRun, readPageLenient);
          try {
            storeRunPages(out, res, buf, words, take, ps, bad, nbad, excludeZero, codec);
          } catch (e) {
            if (e instanceof DumpInterrupted) throw e;
            stop(f, e); // this file is full; the others go on
          }
          res.dumpablePages += take;
        }
        done += take;
        start += take;
        n -= take;
        opts.onProgress?.(done, total, bytesBefore + out.dataEnd);
      }
      yield;
    }
  } catch (e) {
    if (!(e instanceof DumpInterrupted)) throw e;
    for (let i = 0; i < sinks.length; i++) if (!stopped[i]) stop(i, e);
  }

  const sum = emptyResult();
  sinks.forEach((sink, i) => {
    const out = writers[i];
    const res = files[i];
    if (!stopped[i]) {
      try {
        out.flush();
        if (res.dumpablePages !== expected[i]) {
          throw new VmsiftError(
            `bitmap2 changed while writing: ${res.dumpablePages} pages, expected ${expected[i]}`,
            { file: sink.label },
          );
        }
        const eraseinfo = src.eraseinfoParts?.[i] ?? src.eraseinfo;
        if (eraseinfo !== undefined) out.appendEraseinfo(eraseinfo);
        res.fileSize = out.dataEnd;
        sink.finish(res.fileSize);
      } catch (e) {
        stop(i, e);
      }
    }
    withUnreadable(res, unreadable[i], out, sink, status, expected[i], control);
    sum.dumpablePages += res.dumpablePages;
    sum.zeroPages += res.zeroPages;
    sum.rawPages += res.rawPages;
    sum.compressedPages += res.compressedPages;
    sum.fileSize += res.fileSize;
    if (res.incomplete !== undefined) {
      const t = sum.incomplete ??= { ...res.incomplete, pagesWritten: 0, pagesTotal: 0 };
      t.pagesWritten += res.incomplete.pagesWritten;
    }
  });
  if (sum.incomplete !== undefined) {
    // pages of complete files count as written
    sum.incomplete.pagesTotal = total;
    sum.incomplete.pagesWritten += files.reduce((a, r) => a + (r.incomplete ? 0 : r.dumpablePages), 0);
    const u = new UnreadablePages();
    for (const x of unreadable) for (const [a, n] of x.ranges) u.add(a, n, x.firstError);
    if (u.pages > 0) sum.unreadable = u;
  }
  return { ranges, files, total: sum };
}
