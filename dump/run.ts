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
import { ErasingMemory } from "../core/eraseApply.ts";
import type { MemoryModel } from "../core/memoryModel.ts";
import { prepareErase } from "./erase.ts";
import { inputElfHeaders, writeElfDumpAsync } from "../formats/elfWriter.ts";
import { DumpInterrupted, type WriteControl } from "../formats/incomplete.ts";
import { usesLanes, writeKdumpParallel } from "../formats/kdump/parallelWriter.ts";
import { writeKdumpSplitAsync } from "../formats/kdump/split.ts";
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
   * filtered, once per attempt (a retry at a fallback level rewrites the output).
   */
  openSinks?: () => Sink[];
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
  open: () => Sink[],
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
  open: () => Sink[],
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
    const source = plan.erase === undefined ? f.source : withErasing(plan, f.source, f.model, opts);
    const control: WriteControl = {
      sizeLimit: plan.sizeLimit,
      interrupted: opts.interrupted,
      markIncomplete: plan.markIncomplete,
      keepIncomplete: lastLevel,
    };
    const sinks = open();
    const write = await useSinks(
      sinks,
      () => writeForm(plan, opts, control, source, f.extraStatus, sinks),
    );
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
 * carries the ERASEINFO (kdump: after the page data; -E: a note after the input's notes).
 */
function withErasing(plan: DumpPlan, src: KdumpSource, model: MemoryModel, opts: RunOptions): KdumpSource {
  const req = plan.erase!;
  const ep = prepareErase(req, model, src.bitmap2, src.maxMapnr, plan.input.path);
  for (const s of req.skipped) opts.notice?.(`warning: ${req.source}: ${s} skipped`);
  opts.debug?.(`erase: ${ep.erasedBytes} bytes in ${ep.overlays.length} pieces`);
  const noteBytes = plan.form === "elf" && ep.elfNote.length > 0
    ? concatBytes(src.noteBytes, ep.elfNote)
    : src.noteBytes;
  return { ...src, mem: new ErasingMemory(src.mem, ep.overlays), eraseinfo: ep.eraseinfo, noteBytes };
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
  if (plan.form === "elf") return await writeElf(plan.input as ElfDumpInput, src, sink, control);
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

/** -E: an ELF dump of the filtered pages. */
async function writeElf(
  input: ElfDumpInput,
  src: KdumpSource,
  sink: Sink,
  control: WriteControl,
): Promise<KdumpWriteResult> {
  const core = input.core;
  // ELF has no shared zero page: zero pages leave bitmap 2 first (makedumpfile's pre-pass).
  // Pages are read through src.mem: with --config/--erase it overlays the erased bytes (zero check included).
  const zero = (src.dumpLevel & 1) !== 0
    ? excludeZeroPages(src.mem, src.bitmap2, src.maxMapnr, src.pageSize)
    : 0;
  const r = await writeElfDumpAsync(
    {
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
    },
    sink,
    control,
  );
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
