/**
 * `vmsift [options] VMCORE DUMPFILE`: checks the output, picks codec and output backend, runs the dump with
 * progress and messages.
 */
import { VmsiftError } from "../core/errors.ts";
import { formatReport, statsJson } from "../core/stats.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { createCodecAsync } from "../formats/codecs/registry.ts";
import { openOutput } from "./output.ts";
import { FlatSink } from "../formats/flatSink.ts";
import { sniffDumpFormat } from "../formats/kdump/inputKdump.ts";
import { refilterKdump } from "../formats/kdump/refilter.ts";
import { type DumpResult, runDump } from "./dump.ts";
import type { CliOptions } from "./options.ts";
import { pathExists } from "./input.ts";
import { type Messages, ML_PROGRESS } from "./messages.ts";
import { Progress } from "./progress.ts";
import type { Sink } from "../io/sink.ts";

/**
 * Default memory budget for the two bitmaps together (KiB): 1 MiB holds both bitmaps of a 16 GiB machine;
 * beyond that they go to a file beside DUMPFILE with a block cache of the same size, so the process stays
 * near 64 MiB RSS at any memory size (measured: 4 MiB here cost 3-4 MiB of peak RSS from 64 GiB up, and
 * the bitmap files are read and written sequentially, once each).
 */
export const DEFAULT_BITMAP_BUDGET_KIB = 1024;

/**
 * -F streams records in the order they are written, headers first: crash reads a flattened file only when
 * the main header's record comes first (it does not find it at the end of the stream), and nothing is
 * rewritten in flattened mode (makedumpfile never marks a flattened dump incomplete either).
 */
const FLAT_OPTIONS = { holdBytes: 0 };

/** What the dump command reports on (a direct dump or a re-filter). */
type CommandResult = Pick<DumpResult, "stats" | "scan" | "write" | "vmemmap"> & { dumpLevel?: number };

/** Signals that interrupt a dump: the file is finished as incomplete (flag set, bitmap files removed). */
const STOP_SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT"];

/**
 * Run `body` with SIGTERM/SIGINT listeners that only record the signal (the writers poll it between runs of
 * pages and finish an incomplete file); the listeners are removed afterwards.
 */
async function withStopSignals<T>(body: (interrupted: () => string | null) => Promise<T>): Promise<T> {
  let got: string | null = null;
  const handlers: Array<[Deno.Signal, () => void]> = [];
  for (const sig of STOP_SIGNALS) {
    const h = () => {
      got ??= sig;
    };
    try {
      Deno.addSignalListener(sig, h);
      handlers.push([sig, h]);
    } catch { /* not supported here (e.g. Windows): the default action applies */ }
  }
  try {
    const r = await body(() => got);
    // A signal during a phase that does not poll (re-filtering a kdump input): the output is complete, but
    // the run was still interrupted.
    if (got !== null) throw new VmsiftError(`interrupted by ${got} (the output was already complete)`);
    return r;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}

/** Run the dump command; returns the result for the report. Throws VmsiftError. */
export function runDumpCommand(
  vmcore: string,
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
  splitFiles?: string[],
): Promise<CommandResult> {
  return withStopSignals((interrupted) => dumpCommand(vmcore, dumpfile, opts, msg, interrupted, splitFiles));
}

async function dumpCommand(
  vmcore: string,
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
  interrupted: () => string | null,
  splitFiles?: string[],
): Promise<CommandResult> {
  const outputs = splitFiles ?? (opts.flat ? [] : [dumpfile]);
  for (const out of outputs) {
    if (!opts.force && !opts.dryRun && pathExists(out)) {
      throw new VmsiftError("DUMPFILE already exists (use -f to overwrite)", { file: out });
    }
  }
  const codec: PageCodec | null = opts.codec
    ? await createCodecAsync(opts.codec, 4096, { impl: opts.codecEngine })
    : null;
  if (codec !== null) {
    msg.debug(`codec: ${codec.name} (${codec.impl})`);
    const fallback = (codec as { fallback?: string }).fallback;
    if (fallback) msg.common(`warning: ${fallback}`);
  }
  const progress = new Progress("Copying data", msg.enabled(ML_PROGRESS));
  const openSink = opts.flat
    ? (): Sink => new FlatSink(Deno.stdout, "stdout", FLAT_OPTIONS)
    : (): Sink => openOutput(dumpfile, opts, msg);
  const openSplitSinks = (): Sink[] => {
    const sinks: Sink[] = [];
    try {
      for (const f of splitFiles ?? []) sinks.push(openOutput(f, opts, msg));
    } catch (e) {
      for (const s of sinks) s.abort();
      throw e;
    }
    return sinks;
  };
  // Bitmap files go beside the dump (seed proposition 2); with -F there is no dump file: --work-dir.
  const bitmapDir = opts.workDir ?? (opts.flat ? undefined : directoryOf(outputs[0]));
  const bitmapBudget = (opts.cyclicBufferKiB ?? DEFAULT_BITMAP_BUDGET_KIB) * 1024;
  const common = {
    dumpLevel: opts.dumpLevels[0],
    vmcoreinfoFile: opts.vmcoreinfoFile,
    codec,
    onProgress: (done: number, total: number, bytes: number) => progress.update(done, total, bytes),
    debug: (t: string) => msg.debug(t),
    notice: (t: string) => msg.common(t),
    bitmapBudget,
    directIo: opts.directIo,
    imageGuard: opts.imageGuard,
    excludeVmemmap: opts.excludeVmemmap,
    splitblockSize: opts.splitblockKiB !== undefined ? opts.splitblockKiB * 1024 : undefined,
  };
  let result: CommandResult;
  const format = sniffDumpFormat(vmcore);
  if (format === "kdump" || format === "flattened") {
    if (opts.elf) throw new VmsiftError("-E cannot re-filter a kdump-compressed input", { file: vmcore });
    if (opts.sizeLimit !== undefined || opts.dumpLevels.length > 1) {
      throw new VmsiftError(
        "-L and fallback dump levels are not supported when re-filtering a kdump-compressed input",
        { file: vmcore },
      );
    }
    msg.debug(`input: ${format === "kdump" ? "kdump-compressed" : "flattened kdump"} file: re-filtering`);
    result = refilterKdump({
      ...common,
      input: vmcore,
      bitmapDir,
      openSink: splitFiles ? undefined : openSink,
      openSplitSinks: splitFiles ? openSplitSinks : undefined,
    });
  } else {
    result = await runDump({
      ...common,
      vmcore,
      bitmapDir,
      openSink,
      openSplitSinks,
      form: opts.elf ? "elf" : splitFiles ? "split" : "kdump",
      mmap: !opts.nonMmap,
      threads: opts.numThreads,
      fallbackLevels: opts.dumpLevels.slice(1),
      control: { sizeLimit: opts.sizeLimit, interrupted, markIncomplete: !opts.flat },
      onRetry: (level, why) => {
        msg.common(`\n${why}`);
        msg.common(`Retry to create a dumpfile by dump_level(${level}).`);
      },
    });
  }
  const done = result.write.incomplete?.pagesWritten ?? result.write.dumpablePages;
  progress.finish(done, result.write.incomplete?.pagesTotal ?? done, result.write.fileSize);
  if (result.scan.ran) {
    // Struct pages read (the whole vmemmap of present memory, once) and how many were classified one by one
    // (a free buddy block or a compound page is decided by its head, its tails are skipped).
    const s = result.scan;
    const structPages = Math.round(s.vmemmapBytesRead / s.structPageSize);
    const rate = s.seconds > 0 ? (structPages / s.seconds / 1e6).toFixed(1) : "-";
    msg.report(
      `Struct page scan: ${structPages} struct pages (${s.vmemmapBytesRead} bytes, read once; ${s.pagesScanned} ` +
        `classified one by one) in ${s.seconds.toFixed(3)} s (${rate} M struct pages/s)`,
    );
  }
  if (result.vmemmap !== undefined) {
    const v = result.vmemmap;
    msg.report(`Excluded ${v.pagesExcluded} unused vmemmap pages (of ${v.vmemmapPagesExamined} examined)`);
  }
  if (result.stats.keptUnreadable > 0) {
    msg.common(`${result.stats.keptUnreadable} pages kept because their struct page could not be read.`);
  }
  if (result.stats.keptKernelImage > 0) {
    msg.common(
      `${result.stats.keptKernelImage} kernel-image pages kept although their struct page said exclude.`,
    );
  }
  msg.report(formatReport(result.stats).trimEnd());
  if (opts.statsJson) {
    try {
      Deno.writeTextFileSync(
        opts.statsJson,
        JSON.stringify(
          {
            ...statsJson(result.stats),
            struct_pages_scanned: result.scan.pagesScanned,
            scan_seconds: result.scan.seconds,
            vmemmap_bytes_read: result.scan.vmemmapBytesRead,
            vmemmap_pages_excluded: result.vmemmap?.pagesExcluded ?? 0,
            dumpable_pages: result.write.dumpablePages,
            file_size: result.write.fileSize,
          },
          null,
          1,
        ) + "\n",
      );
    } catch (e) {
      throw new VmsiftError(`cannot write: ${(e as Error).message}`, { file: opts.statsJson });
    }
  }
  const inc = result.write.incomplete;
  if (inc !== undefined) {
    const u = result.write.unreadable;
    if (u !== undefined) {
      msg.error(`${u.pages} pages could not be read from ${vmcore} (${u.firstError}): pfns ${u.describe()}`);
    }
    if (!opts.flat && !opts.dryRun) msg.common("This is an incomplete dumpfile, but might analyzable.");
    const why = inc.reason === "interrupted"
      ? `interrupted by ${inc.signal}`
      : inc.reason === "size-limit"
      ? `size limit ${opts.sizeLimit} reached`
      : inc.reason === "no-space"
      ? "no space left on device"
      : `${u?.pages ?? 0} pages unreadable`;
    throw new VmsiftError(
      `incomplete: ${inc.pagesWritten} of ${inc.pagesTotal} pages written (${why})`,
      { file: opts.flat ? "stdout" : outputs.join(", ") },
    );
  }
  if (opts.dryRun) msg.common("\nThe dry run is finished.");
  else if (opts.flat) msg.common("\nThe dumpfile is written to stdout (flattened format).");
  else msg.common(`\nThe dumpfile${outputs.length > 1 ? "s are" : " is"} saved to ${outputs.join(", ")}.`);
  msg.common("\nvmsift Completed.");
  return result;
}

/**
 * The directory holding `path`, made absolute against the current directory. (Not node:path: any node:
 * import starts Deno's Node compatibility layer, about 5 MiB of RSS in the crash kernel.)
 */
export function directoryOf(path: string): string {
  const abs = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  const parts: string[] = [];
  for (const p of abs.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  parts.pop();
  return "/" + parts.join("/");
}
