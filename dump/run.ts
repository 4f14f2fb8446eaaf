/**
 * Running a dump plan: for each level (the requested one, then the fallback levels while the output is
 * full) filter the input into fresh bitmaps and write the planned form; the report carries the counts.
 * The same path for an ELF vmcore and a kdump file being re-filtered.
 */
import { createBitmaps } from "../io/fileBitmap.ts";
import { asOutputFull } from "../io/outputFull.ts";
import { openSinks, type Sink, useSinks } from "../io/sink.ts";
import { countPagesPerLoad } from "../core/presentPages.ts";
import { pageStatsOf } from "../core/stats.ts";
import { excludeZeroPages } from "../core/zeroPages.ts";
import { type ErasePlan, ErasingMemory } from "../core/eraseApply.ts";
import type { MemoryModel } from "../core/memoryModel.ts";
import { prepareErase } from "./erase.ts";
import {
  type ElfDumpSource,
  elfFilePages,
  inputElfHeaders,
  planElfDump,
  writeElfDumpAsync,
} from "../formats/elfWriter.ts";
import { SH } from "../formats/kdump/header.ts";
import { DumpInterrupted, type WriteControl } from "../formats/incomplete.ts";
import { usesLanes, writeKdumpParallel } from "../formats/kdump/parallelWriter.ts";
import { splitRanges, writeKdumpSplitAsync } from "../formats/kdump/split.ts";
import {
  type KdumpSource,
  type KdumpWriteOptions,
  type KdumpWriteResult,
  writeKdumpAsync,
} from "../formats/kdump/writer.ts";
import { effectiveLevel, filterInput } from "./filter.ts";
import { type ElfDumpInput, openInput, type OpenInputOptions } from "./input.ts";
import { checkOutputsFree, directoryOf, openOutputFile } from "./outputs.ts";
import { type DumpOptions, type DumpPlan, planDump } from "./plan.ts";
import type { DumpReport } from "./report.ts";

/** Where the dump goes and who hears about it. */
export interface RunOptions {
  /**
   * The output file (form "split": one per part), created with mode 0600 (O_DIRECT when the plan says so)
   * and refused when it exists unless `overwrite`; removed again when the dump fails.
   */
  output?: string | readonly string[];
  /** Replace existing output files. */
  overwrite?: boolean;
  /**
   * Instead of `output`: opens the sinks (one; form "split": one per part). Called after the input has been
   * filtered, once per attempt (a retry at a fallback level rewrites the output). `needs` says which bytes
   * will be rewritten after the page data (a sink that cannot seek back, -F, holds them until it finishes).
   */
  openSinks?: (needs: SinkNeeds) => Sink[];
  /** Called after each run of pages. */
  onProgress?: (done: number, total: number, bytes: number) => void;
  /** Details a maintainer may want (max_mapnr, where the bitmaps are, the input's read mode). */
  debug?: (text: string) => void;
  /** Messages an operator should see (bitmap files, O_DIRECT fallbacks, a changed dump level). */
  notice?: (text: string) => void;
  /** Called before each retry at a fallback level, with the level and why. */
  onRetry?: (level: number, why: string) => void;
  /** Polled between runs of pages: a signal name stops the dump, finished as incomplete (withStopSignals). */
  interrupted?: () => string | null;
}

/** What a sink must allow beyond writing forward (RunOptions.openSinks). */
export interface SinkNeeds {
  /**
   * Bytes [offset, offset + length) rewritten after the page data: the sub header's offset_eraseinfo and
   * size_eraseinfo when the dump gets an ERASEINFO (--config/--erase, or a re-filtered input that has one).
   */
  lateRewrite?: { offset: number; length: number };
}

/**
 * Carry out `plan`: write the dump and return its report. Throws VmsiftError on failure (the outputs are
 * removed); a dump finished as incomplete (size limit, interrupt, unreadable pages) returns normally with
 * `report.write.incomplete` set.
 *
 * @example Dump a vmcore as a kdump-compressed file and check it
 * ```ts
 * import { openInput, planDump, runDump, verifyDump } from "@vmsift/vmsift";
 *
 * const [vmcore, out] = Deno.args;
 * if (vmcore !== undefined && out !== undefined) {
 *   const input = openInput(vmcore);
 *   try {
 *     const plan = await planDump(input, { dumpLevel: 31, codec: "zlib" });
 *     const report = await runDump(plan, { output: out });
 *     console.log(`${report.write.dumpablePages} pages, ${report.write.fileSize} bytes`);
 *   } finally {
 *     input.close();
 *   }
 *   console.log(verifyDump(out, vmcore).ok);
 * }
 * ```
 */
export async function runDump(plan: DumpPlan, opts: RunOptions): Promise<DumpReport> {
  const outputs = opts.output === undefined
    ? []
    : typeof opts.output === "string"
    ? [opts.output]
    : opts.output;
  if (opts.openSinks === undefined) {
    if (outputs.length === 0) throw new TypeError("runDump: give output or openSinks");
    if (!opts.overwrite) checkOutputsFree(outputs);
  }
  const open = opts.openSinks ?? (() =>
    openSinks(outputs.map((path) => () =>
      openOutputFile(path, {
        directIo: plan.directIo,
        overwrite: true, // checked above: a retry rewrites the file this run made
        debug: opts.debug,
        notice: opts.notice,
      })
    )));
  const bitmapDir = plan.bitmapDir ?? (outputs.length > 0 ? directoryOf(outputs[0]) : undefined);
  // --num-threads: FFI engines compress in lanes (formats/kdump/codecLanes.ts: library calls on Deno's
  // thread pool, about 1 MiB per thread). The other engines would need a Web Worker per thread, 10-15 MiB each,
  // which the 64 MiB budget does not leave (docs/performance.md, "Threads and memory"): one thread, said once.
  let threads = plan.threads;
  if (threads > 1 && plan.codec !== null && !usesLanes({ codec: plan.codec })) {
    opts.notice?.(
      `warning: --num-threads ${threads}: ${plan.codec.impl} would need a worker per thread (10-15 MiB ` +
        `each, beyond the 64 MiB memory budget); compressing on one thread (FFI engines run threads)`,
    );
    threads = 1;
  } else if (threads > MAX_LANES && plan.codec !== null) {
    opts.notice?.(
      `warning: --num-threads ${threads}: using ${MAX_LANES} compression threads (each one more costs about ` +
        `0.5 MiB, beyond the 64 MiB memory budget)`,
    );
    threads = MAX_LANES;
  }
  return await runLevels({ ...plan, threads }, opts, open, bitmapDir);
}

/**
 * Most compression lanes a dump uses (`--num-threads`). Measured peak RSS, shipped bundle, real fixture,
 * `-c -d 31`: 59-60 MiB with one thread, 61-62 with 2 lanes, 62-63 with 4, 63-64 with 8, 66 with 16: each
 * lane costs about 0.5 MiB (its batch buffers, its codec context, pool threads' stacks), so 4 is what the
 * 64 MiB budget leaves room for (docs/performance.md, "Threads and memory").
 */
export const MAX_LANES = 4;

async function runLevels(
  plan: DumpPlan,
  opts: RunOptions,
  open: (needs: SinkNeeds) => Sink[],
  bitmapDir: string | undefined,
): Promise<DumpReport> {
  const levels = plan.levels;
  for (let i = 0;; i++) {
    const last = i === levels.length - 1;
    try {
      return await runLevel(plan, opts, levels[i], last, open, bitmapDir);
    } catch (e) {
      const full = asOutputFull(e);
      if (full === null || last) throw e;
      const sig = opts.interrupted?.() ?? null;
      if (sig !== null) throw new DumpInterrupted(sig);
      opts.onRetry?.(levels[i + 1], full.oneLine());
    }
  }
}

async function runLevel(
  plan: DumpPlan,
  opts: RunOptions,
  level: number,
  lastLevel: boolean,
  open: (needs: SinkNeeds) => Sink[],
  bitmapDir: string | undefined,
): Promise<DumpReport> {
  const t0 = performance.now();
  const input = plan.input;
  const written = effectiveLevel(input, level);
  if (input.format !== "elf" && written !== level) {
    const was = input.kdump.dumpLevel;
    opts.notice?.(
      `dump_level is changed to ${written}, because ${input.path} was created by dump_level(${was}).`,
    );
  }
  let closeBitmaps = () => {};
  try {
    const f = filterInput(
      input,
      {
        dumpLevel: level,
        imageGuard: plan.imageGuard,
        excludeVmemmap: plan.excludeVmemmap,
        debug: opts.debug,
      },
      (maxMapnr) => {
        const b = createBitmaps(maxMapnr, {
          budgetBytes: plan.bitmapBudget,
          dir: bitmapDir,
          direct: plan.directIo,
        });
        closeBitmaps = () => b.close();
        for (const w of b.warnings) opts.notice?.(`warning: ${w}`);
        if (b.mode === "memory") opts.debug?.(b.description);
        else opts.notice?.(b.description);
        return b;
      },
    );
    const control: WriteControl = {
      sizeLimit: plan.sizeLimit,
      interrupted: opts.interrupted,
      markIncomplete: plan.markIncomplete,
      keepIncomplete: lastLevel,
    };
    // -E: zero pages leave bitmap 2 first, read without erasing (makedumpfile's exclude_zero_pages_cyclic
    // reads the vmcore as it is), so that the erase plan sees the pages the ELF file will hold.
    const elfZero = plan.form === "elf" && (f.source.dumpLevel & 1) !== 0
      ? excludeZeroPages(f.source.mem, f.source.bitmap2, f.source.maxMapnr, f.source.pageSize)
      : 0;
    const kept = input.format === "elf" ? new Uint8Array(0) : input.kdump.eraseinfo;
    const late = plan.form !== "elf" && (plan.erase !== undefined || kept.length > 0)
      ? { offset: f.source.pageSize + SH.offsetEraseinfo, length: 16 }
      : undefined;
    const sinks = open({ lateRewrite: late });
    const write = await useSinks(sinks, () => {
      // Inside useSinks: a symbol that cannot be resolved removes the outputs just opened.
      const source = withErasing(plan, f.source, f.model, sinks.length, kept, opts);
      return writeForm(plan, opts, control, source, f.extraStatus, sinks, elfZero);
    });
    // Pages held by two PT_LOADs (kexec's kernel-image load): counted once here, once per load by
    // makedumpfile, whose -E writer also counts each load's partial last page.
    const overlap = input.format === "elf"
      ? countPagesPerLoad(input.core.loads, f.model.pageSize, f.source.maxMapnr, plan.form === "elf") -
        f.original
      : 0;
    if (input.format === "elf" && input.core.mmapFallback !== undefined) {
      opts.debug?.(`input: ${input.core.mmapFallback}`);
    }
    return {
      stats: pageStatsOf(f.original, f.source.maxMapnr, f.scan.counts, write.zeroPages, overlap),
      scan: f.scan,
      write,
      vmemmap: f.vmemmap,
      dumpLevel: written,
      requestedLevel: level,
      inputFormat: input.format,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    closeBitmaps();
  }
}

/**
 * --config / --erase / --erase-secrets: the writer's source reads pages through the erased overlay, and
 * carries the ERASEINFO (kdump: after the page data, after the re-filtered input's own `kept` one; split:
 * per file, for the ranges that start in its pfn range; -E: a note after the input's notes, the ranges
 * that start in the file-backed part of a PT_LOAD, short excluded runs included).
 */
function withErasing(
  plan: DumpPlan,
  src: KdumpSource,
  model: MemoryModel,
  nSinks: number,
  kept: Uint8Array,
  opts: RunOptions,
): KdumpSource {
  const req = plan.erase;
  if (req === undefined) return kept.length > 0 ? { ...src, eraseinfo: kept } : src;
  const planner = prepareErase(req, model, plan.input.path);
  for (const s of req.skipped) opts.notice?.(`warning: ${req.source}: ${s} skipped`);
  for (const f of req.found ?? []) opts.debug?.(`erase: dm-crypt target ${f}`);
  const inBitmap = (pfn: number) => pfn < src.maxMapnr && src.bitmap2.get(pfn);
  let parts: ErasePlan[];
  if (plan.form === "split") {
    const ranges = splitRanges(src.bitmap2, src.maxMapnr, nSinks, src.pageSize, plan.splitblockSize);
    parts = ranges.map((r) => planner((pfn) => pfn >= r.startPfn && pfn < r.endPfn && inBitmap(pfn)));
  } else if (plan.form === "elf") {
    parts = [planner(elfFilePages(planElfDump(elfSourceOf(plan.input as ElfDumpInput, src)), src.pageSize))];
  } else {
    parts = [planner(inBitmap)];
  }
  const overlays = parts.flatMap((p) => p.overlays);
  const erasedBytes = parts.reduce((a, p) => a + p.erasedBytes, 0);
  opts.debug?.(`erase: ${erasedBytes} bytes in ${overlays.length} pieces`);
  const mem = new ErasingMemory(src.mem, overlays);
  const info = parts.map((p) => concatBytes(kept, p.eraseinfo));
  if (plan.form === "split") return { ...src, mem, eraseinfoParts: info };
  const ep = parts[0];
  const noteBytes = plan.form === "elf" && ep.elfNote.length > 0
    ? concatBytes(src.noteBytes, ep.elfNote)
    : src.noteBytes;
  return { ...src, mem, eraseinfo: info[0], noteBytes };
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Write the planned form to `sinks` (the caller closes or aborts them). */
async function writeForm(
  plan: DumpPlan,
  opts: RunOptions,
  control: WriteControl,
  src: KdumpSource,
  extraStatus: number,
  sinks: Sink[],
  elfZero: number,
): Promise<KdumpWriteResult> {
  if (plan.form === "split") {
    const r = await writeKdumpSplitAsync(src, sinks, {
      codec: plan.codec,
      onProgress: opts.onProgress,
      extraStatus,
      splitblockSize: plan.splitblockSize,
      control,
    });
    return r.total;
  }
  const sink = sinks[0];
  if (plan.form === "elf") return await writeElf(plan.input as ElfDumpInput, src, sink, control, elfZero);
  const wopts: KdumpWriteOptions = {
    codec: plan.codec,
    sink,
    onProgress: opts.onProgress,
    extraStatus,
    control,
  };
  // With more than one thread and a codec the parallel writer (--num-threads); same bytes.
  if (plan.threads > 1 && plan.codec !== null) {
    return await writeKdumpParallel(src, {
      ...wopts,
      codec: plan.codec,
      threads: plan.threads,
    });
  }
  return await writeKdumpAsync(src, wopts);
}

/**
 * The -E writer's input: the filtered pages of `src` (read through src.mem: with --config/--erase the erased
 * overlay) in the input's PT_LOADs. Zero pages must already have left bitmap 2.
 */
function elfSourceOf(input: ElfDumpInput, src: KdumpSource): ElfDumpSource {
  const core = input.core;
  return {
    mem: src.mem,
    bitmap1: src.bitmap1,
    bitmap2: src.bitmap2,
    maxMapnr: src.maxMapnr,
    pageSize: src.pageSize,
    noteBytes: src.noteBytes,
    // The input's PT_LOADs in program-header order, overlapping ones included (makedumpfile writes
    // kexec's kernel-image load and the System RAM load holding it, each with its pages).
    segments: core.loads,
    ...inputElfHeaders(core),
    // Pages past max_mapnr (no mem_map: VGA memory, BIOS ROM) are left out, as in the kdump format.
    beyondMaxMapnr: "exclude",
  };
}

/** -E: an ELF dump of the filtered pages (`zero` zero pages already left bitmap 2: runLevel). */
async function writeElf(
  input: ElfDumpInput,
  src: KdumpSource,
  sink: Sink,
  control: WriteControl,
  zero: number,
): Promise<KdumpWriteResult> {
  const r = await writeElfDumpAsync(elfSourceOf(input, src), sink, control);
  return {
    dumpablePages: r.dumpedPages,
    zeroPages: zero,
    rawPages: r.dumpedPages,
    compressedPages: 0,
    fileSize: r.fileSize,
    incomplete: r.incomplete,
    unreadable: r.unreadable,
  };
}

/**
 * Open `vmcore` (any input format), plan and run one dump, close the input: {@link openInput},
 * {@link planDump} and {@link runDump} in one call.
 *
 * @example Re-filter a dump made at level 1 to level 31 with snappy
 * ```ts
 * import { dumpVmcore } from "@vmsift/vmsift";
 *
 * const [dump, out] = Deno.args;
 * if (dump !== undefined && out !== undefined) {
 *   const report = await dumpVmcore(dump, { dumpLevel: 31, codec: "snappy", output: out });
 *   console.log(`written at level ${report.dumpLevel}: ${report.write.fileSize} bytes`);
 * }
 * ```
 */
export async function dumpVmcore(
  vmcore: string,
  opts: DumpOptions & OpenInputOptions & RunOptions,
): Promise<DumpReport> {
  const input = openInput(vmcore, opts);
  try {
    return await runDump(await planDump(input, opts), opts);
  } finally {
    input.close();
  }
}
