/**
 * `vmsift [options] VMCORE DUMPFILE`: checks the outputs, opens the input, plans and runs the dump (dump/)
 * with progress and messages, prints the report.
 */
import { VmsiftError } from "../core/errors.ts";
import { eraseRequestOf } from "../dump/erase.ts";
import { formatReport } from "../core/stats.ts";
import { FlatSink, type FlatSinkOptions } from "../formats/flatSink.ts";
import { openSinks, type Sink } from "../io/sink.ts";
import { type DumpInput, openInput } from "../dump/input.ts";
import { checkOutputsFree, directoryOf, openOutputFile } from "../dump/outputs.ts";
import { planDump } from "../dump/plan.ts";
import { type DumpReport, reportJson } from "../dump/report.ts";
import { runDump, type SinkNeeds } from "../dump/run.ts";
import { withStopSignals } from "../dump/signals.ts";
import type { CliOptions } from "./options.ts";
import { type Messages, ML_PROGRESS } from "./messages.ts";
import { Progress } from "./progress.ts";

/** Default memory budget for the two bitmaps together (KiB): dump/plan.ts DEFAULT_BITMAP_BUDGET. */
const DEFAULT_BITMAP_BUDGET_KIB = 1024;

/**
 * -F streams records in the order they are written, headers first: crash reads a flattened file only when
 * the main header's record comes first (it does not find it at the end of the stream), and nothing else is
 * rewritten in flattened mode (makedumpfile never marks a flattened dump incomplete either). With ERASEINFO
 * the sub header's offset_eraseinfo/size_eraseinfo are known only after the page data: those 16 bytes are
 * held and sent last (makedumpfile sends a second, overlapping sub header record instead; the rebuilt
 * files are the same, and no two records of ours cover the same byte).
 */
function flatOptions(needs: SinkNeeds): FlatSinkOptions {
  const late = needs.lateRewrite;
  return late === undefined ? { holdBytes: 0 } : { holdAt: late.offset, holdBytes: late.length };
}

/** Run the dump command; returns the report. Throws VmsiftError. */
export function runDumpCommand(
  vmcore: string,
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
  splitFiles?: string[],
): Promise<DumpReport> {
  return withStopSignals((interrupted) => dumpCommand(vmcore, dumpfile, opts, msg, interrupted, splitFiles));
}

async function dumpCommand(
  vmcore: string,
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
  interrupted: () => string | null,
  splitFiles?: string[],
): Promise<DumpReport> {
  const outputs = splitFiles ?? (opts.flat ? [] : [dumpfile]);
  if (!opts.force && !opts.dryRun) checkOutputsFree(outputs);
  const input = openInput(vmcore, { vmcoreinfoFile: opts.vmcoreinfoFile, mmap: !opts.nonMmap });
  let result: DumpReport;
  try {
    result = await dumpInput(input, outputs, splitFiles !== undefined, opts, msg, interrupted);
  } finally {
    input.close();
  }
  printReport(result, vmcore, outputs, opts, msg);
  return result;
}

async function dumpInput(
  input: DumpInput,
  outputs: string[],
  split: boolean,
  opts: CliOptions,
  msg: Messages,
  interrupted: () => string | null,
): Promise<DumpReport> {
  const vmcore = input.path;
  const erase = eraseRequestOf(opts.filterConfig, opts.erase ?? [], opts.vmlinux, opts.eraseSecrets);
  const plan = await planDump(input, {
    dumpLevel: opts.dumpLevels[0],
    fallbackLevels: opts.dumpLevels.slice(1),
    codec: opts.codec ?? null,
    codecEngine: opts.codecEngine,
    form: opts.elf ? "elf" : split ? "split" : "kdump",
    splitblockSize: opts.splitblockKiB !== undefined ? opts.splitblockKiB * 1024 : undefined,
    bitmapBudget: (opts.cyclicBufferKiB ?? DEFAULT_BITMAP_BUDGET_KIB) * 1024,
    // Bitmap files go beside the dump (seed proposition 2); with -F there is no dump file: --work-dir.
    bitmapDir: opts.workDir ?? (opts.flat ? undefined : directoryOf(outputs[0])),
    directIo: opts.directIo,
    imageGuard: opts.imageGuard,
    erase,
    excludeVmemmap: opts.excludeVmemmap,
    sizeLimit: opts.sizeLimit,
    markIncomplete: !opts.flat,
    threads: opts.numThreads,
  });
  const codec = plan.codec;
  if (codec !== null) {
    msg.debug(`codec: ${codec.name} (${codec.impl})`);
    const fallback = (codec as { fallback?: string }).fallback;
    if (fallback) msg.common(`warning: ${fallback}`);
  }
  if (input.format === "elf") {
    msg.debug(
      input.core.mapped !== undefined
        ? `input: ${vmcore} read through an mmap window`
        : `input: ${vmcore} read with read() (${opts.nonMmap ? "--non-mmap" : "mmap not possible here"})`,
    );
  } else {
    msg.debug(
      `input: ${input.format === "kdump" ? "kdump-compressed" : "flattened kdump"} file: re-filtering`,
    );
  }
  const progress = new Progress("Copying data", msg.enabled(ML_PROGRESS));
  const fileOptions = {
    dryRun: opts.dryRun,
    directIo: opts.directIo,
    overwrite: opts.force,
    debug: (t: string) => msg.debug(t),
    notice: (t: string) => msg.common(t),
  };
  const result = await runDump(plan, {
    openSinks: opts.flat
      ? (needs): Sink[] => [new FlatSink(Deno.stdout, "stdout", flatOptions(needs))]
      : () => openSinks(outputs.map((f) => () => openOutputFile(f, fileOptions))),
    onProgress: (done: number, total: number, bytes: number) => progress.update(done, total, bytes),
    debug: (t: string) => msg.debug(t),
    notice: (t: string) => msg.common(t),
    interrupted,
    onRetry: (level, why) => {
      msg.common(`\n${why}`);
      msg.common(`Retry to create a dumpfile by dump_level(${level}).`);
    },
  });
  const done = result.write.incomplete?.pagesWritten ?? result.write.dumpablePages;
  progress.finish(done, result.write.incomplete?.pagesTotal ?? done, result.write.fileSize);
  return result;
}

/** The report after a dump: scan, counts, --stats-json, and the final lines (an incomplete dump throws). */
function printReport(
  result: DumpReport,
  vmcore: string,
  outputs: string[],
  opts: CliOptions,
  msg: Messages,
): void {
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
  // makedumpfile's last report line: the dump's size (also what a --dry-run would write)
  msg.report(`Write bytes     : ${result.write.fileSize}`);
  if (opts.statsJson) {
    try {
      Deno.writeTextFileSync(
        opts.statsJson,
        JSON.stringify(
          reportJson(result),
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
}
