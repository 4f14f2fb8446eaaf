/**
 * The dump command: VMCORE → memory model → bitmaps → classification → kdump-compressed DUMPFILE.
 * Everything is passed explicitly; the result carries the counts for the report.
 */
import { createBitmaps } from "../io/fileBitmap.ts";
import type { PfnBitmap } from "../core/bitmap.ts";
import { buildMemoryModel, type MemoryModel } from "../core/memoryModel.ts";
import { markPresentPages } from "../core/presentPages.ts";
import { excludeUnnecessaryPages, type ScanResult } from "../core/scan.ts";
import { excludeVmemmapPages, type VmemmapExcludeResult } from "../core/vmemmapExclude.ts";
import { type PageStats, pageStatsOf } from "../core/stats.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import {
  type KdumpSource,
  type KdumpWriteOptions,
  type KdumpWriteResult,
  writeKdumpAsync,
} from "../formats/kdump/writer.ts";
import { DumpInterrupted, type WriteControl } from "../formats/incomplete.ts";
import { CodecWorkers, workersFor, writeKdumpParallel } from "../formats/kdump/parallelWriter.ts";
import { inputElfHeaders, writeElfDumpAsync } from "../formats/elfWriter.ts";
import { writeKdumpSplitAsync } from "../formats/kdump/split.ts";
import { excludeZeroPages } from "../core/zeroPages.ts";
import { type DumpInput, openDumpInput } from "./input.ts";
import { readUtsname } from "./utsname.ts";
import { asOutputFull } from "../io/outputFull.ts";
import type { Sink } from "../io/sink.ts";

/** What to dump and how. */
export interface DumpRequest {
  vmcore: string;
  vmcoreinfoFile?: string;
  dumpLevel: number;
  codec: PageCodec | null;
  /** Opens the output; called only after the input has been validated. */
  openSink: () => Sink;
  onProgress?: (done: number, total: number, bytes: number) => void;
  debug?: (text: string) => void;
  /** Messages a maintainer should see (bitmap file location, O_DIRECT fallback). */
  notice?: (text: string) => void;
  /** Directory for the bitmap file when the bitmaps exceed the budget (seed 2: the dump's own device). */
  bitmapDir?: string;
  /** Memory budget for both bitmaps together, bytes. */
  bitmapBudget: number;
  /** O_DIRECT for the bitmap file (seed 3). */
  directIo: boolean;
  /** Keep kernel-image pages whatever their struct page says (default true). */
  imageGuard?: boolean;
  /** -e: also exclude vmemmap pages that describe only excluded pages (header status 0x10). */
  excludeVmemmap?: boolean;
  /** --num-threads: compressing threads (default 1; > 1 uses Web Workers, same output). */
  threads?: number;
  /** With threads > 1: workers already started (runDump starts them itself when absent). */
  codecWorkers?: CodecWorkers;
  /** Read the vmcore through mmap (default true; makedumpfile's --non-mmap turns it off). */
  mmap?: boolean;
  /** Output form: kdump-compressed (default), ELF (-E), or several split kdump files (--split). */
  form?: "kdump" | "elf" | "split";
  /** --split: opens all outputs (used instead of openSink). */
  openSplitSinks?: () => Sink[];
  /** --splitblock-size in bytes. */
  splitblockSize?: number;
  /**
   * `-d L1,L2,...`: levels to retry with, in order, when the output is full (-L or ENOSPC); the dump is
   * redone from the start at the next level and the output rewritten (makedumpfile's create_dumpfile).
   */
  fallbackLevels?: number[];
  /** -L and interruption (keepIncomplete is decided here: true for the last level). */
  control?: Omit<WriteControl, "keepIncomplete">;
  /** Called before each retry at a fallback level, with the level and why. */
  onRetry?: (level: number, why: string) => void;
}

/** Outcome of a dump. */
export interface DumpResult {
  stats: PageStats;
  scan: ScanResult;
  write: KdumpWriteResult;
  /** -e: what the vmemmap pass did (undefined without -e). */
  vmemmap?: VmemmapExcludeResult;
  seconds: number;
  /** The dump level the file was written at (a fallback level after retries). */
  dumpLevel: number;
}

/** Run one dump. Throws VmsiftError on failure; the sink is aborted (partial output removed) on error. */
export async function runDump(req: DumpRequest): Promise<DumpResult> {
  // --num-threads: start the compression workers first, their start-up overlaps reading and scanning
  if ((req.threads ?? 1) > 1 && req.codec !== null && req.codecWorkers === undefined) {
    const codecWorkers = CodecWorkers.start(workersFor(req.threads!), { warm: req.codec });
    try {
      return await runDump({ ...req, codecWorkers });
    } finally {
      codecWorkers.terminate();
    }
  }
  const levels = [req.dumpLevel, ...(req.fallbackLevels ?? [])];
  for (let i = 0;; i++) {
    const last = i === levels.length - 1;
    try {
      return await runDumpAtLevel({ ...req, dumpLevel: levels[i] }, last);
    } catch (e) {
      const full = asOutputFull(e);
      if (full === null || last) throw e;
      const sig = req.control?.interrupted?.() ?? null;
      if (sig !== null) throw new DumpInterrupted(sig);
      req.onRetry?.(levels[i + 1], full.oneLine());
    }
  }
}

async function runDumpAtLevel(req: DumpRequest, lastLevel: boolean): Promise<DumpResult> {
  const t0 = performance.now();
  const input = openDumpInput(req.vmcore, req.vmcoreinfoFile, { mmap: req.mmap });
  const { core, info } = input;
  req.debug?.(
    core.mapped !== undefined
      ? `input: ${req.vmcore} read through an mmap window`
      : `input: ${req.vmcore} read with read() (${
        req.mmap === false ? "--non-mmap" : "mmap not possible here"
      })`,
  );
  try {
    const model = buildMemoryModel(core, info, { kernelImageGuard: req.imageGuard ?? true });
    const maxMapnr = model.maxMapnr;
    req.debug?.(`max_mapnr    : ${maxMapnr.toString(16)}`);
    for (const line of model.arch.describe()) req.debug?.(line);
    const bitmaps = createBitmaps(maxMapnr, {
      budgetBytes: req.bitmapBudget,
      dir: req.bitmapDir,
      direct: req.directIo,
    });
    const control: WriteControl = { ...req.control, keepIncomplete: lastLevel };
    try {
      return await dumpWithBitmaps(req, control, input, model, bitmaps.bitmap1, bitmaps.bitmap2, t0, () => {
        for (const w of bitmaps.warnings) req.notice?.(`warning: ${w}`);
        if (bitmaps.mode === "memory") req.debug?.(bitmaps.description);
        else req.notice?.(bitmaps.description);
      });
    } finally {
      bitmaps.close();
    }
  } finally {
    core.close();
  }
}

async function dumpWithBitmaps(
  req: DumpRequest,
  control: WriteControl,
  input: DumpInput,
  model: MemoryModel,
  bitmap1: PfnBitmap,
  bitmap2: PfnBitmap,
  t0: number,
  announce: () => void,
): Promise<DumpResult> {
  const { core, info } = input;
  const { maxMapnr, pageSize } = model;
  announce();
  {
    const original = markPresentPages(core.segments, pageSize, maxMapnr, bitmap1);
    markPresentPages(core.segments, pageSize, maxMapnr, bitmap2);
    // The scan itself decides whether this level needs struct pages (hwpoison/offline need them at any level).
    const scan: ScanResult = excludeUnnecessaryPages(model, req.dumpLevel, bitmap1, bitmap2);
    const vmemmap = req.excludeVmemmap ? excludeVmemmapPages(model, bitmap1, bitmap2) : undefined;
    for (const w of model.warnings) req.debug?.(`warning: ${w}`);
    const utsname = readUtsname(model.vm, info);
    const src: KdumpSource = {
      mem: core,
      bitmap1,
      bitmap2,
      maxMapnr,
      pageSize,
      noteBytes: core.noteSegment.bytes,
      vmcoreinfoOffsetInNotes: input.vmcoreinfoOffsetInNotes,
      vmcoreinfoSize: input.vmcoreinfoSize,
      utsname,
      crashTime: info.crashTime ?? 0,
      nrCpus: core.nrCpus,
      physBase: model.physBase,
      dumpLevel: req.dumpLevel,
    };
    const extraStatus = vmemmap !== undefined && vmemmap.pagesExcluded > 0 ? 0x10 : 0;
    const write = await writeForm(req, control, src, extraStatus, core);
    const stats = pageStatsOf(original, maxMapnr, scan.counts, write.zeroPages);
    return {
      stats,
      scan,
      write,
      vmemmap,
      seconds: (performance.now() - t0) / 1000,
      dumpLevel: req.dumpLevel,
    };
  }
}

/**
 * Write the chosen output form; the sinks are closed (an incomplete file is kept: `result.incomplete`), or
 * aborted (removed) on error.
 */
async function writeForm(
  req: DumpRequest,
  control: WriteControl,
  src: KdumpSource,
  extraStatus: number,
  core: DumpInput["core"],
): Promise<KdumpWriteResult> {
  if (req.form === "split") {
    const sinks = req.openSplitSinks!();
    try {
      const r = await writeKdumpSplitAsync(src, sinks, {
        codec: req.codec,
        onProgress: req.onProgress,
        extraStatus,
        splitblockSize: req.splitblockSize,
        control,
      });
      for (const s of sinks) s.close();
      return r.total;
    } catch (e) {
      for (const s of sinks) s.abort();
      throw e;
    }
  }
  const sink = req.openSink();
  try {
    let write: KdumpWriteResult;
    if (req.form === "elf") {
      // ELF has no shared zero page: zero pages leave bitmap 2 first (makedumpfile's pre-pass).
      const zero = (req.dumpLevel & 1) !== 0
        ? excludeZeroPages(core, src.bitmap2, src.maxMapnr, src.pageSize)
        : 0;
      const r = await writeElfDumpAsync(
        {
          mem: core,
          bitmap1: src.bitmap1,
          bitmap2: src.bitmap2,
          maxMapnr: src.maxMapnr,
          pageSize: src.pageSize,
          noteBytes: src.noteBytes,
          segments: core.segments,
          ...inputElfHeaders(core),
          // Pages past max_mapnr (no mem_map: VGA memory, BIOS ROM) are left out, as in the kdump format.
          beyondMaxMapnr: "exclude",
        },
        sink,
        control,
      );
      write = {
        dumpablePages: r.dumpedPages,
        zeroPages: zero,
        rawPages: r.dumpedPages,
        compressedPages: 0,
        fileSize: r.fileSize,
        incomplete: r.incomplete,
        unreadable: r.unreadable,
      };
    } else {
      write = await writeDump(req, src, {
        codec: req.codec,
        sink,
        onProgress: req.onProgress,
        extraStatus,
        control,
      });
    }
    sink.close();
    return write;
  } catch (e) {
    sink.abort();
    throw e;
  }
}

/** writeKdump, or with more than one thread and a codec the parallel writer (--num-threads); same bytes. */
async function writeDump(
  req: DumpRequest,
  src: KdumpSource,
  opts: KdumpWriteOptions,
): Promise<KdumpWriteResult> {
  const threads = req.threads ?? 1;
  if (threads > 1 && opts.codec !== null) {
    return await writeKdumpParallel(src, { ...opts, codec: opts.codec, threads, workers: req.codecWorkers });
  }
  return await writeKdumpAsync(src, opts);
}
