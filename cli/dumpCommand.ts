/**
 * `vmsift [options] VMCORE DUMPFILE`: checks the output, picks codec and output backend, runs the dump with
 * progress and messages.
 */
import { dirname, resolve } from "node:path";
import { VmsiftError } from "../core/errors.ts";
import { formatReport, statsJson } from "../core/stats.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { createCodec } from "../formats/codecs/registry.ts";
import type { Sink } from "../formats/sink.ts";
import { openOutput } from "./output.ts";
import { type DumpResult, runDump } from "./dump.ts";
import type { CliOptions } from "./options.ts";
import { type Messages, ML_PROGRESS } from "./messages.ts";
import { Progress } from "./progress.ts";

/**
 * Default memory budget for the two bitmaps together (KiB): 8 MiB holds both bitmaps of a 128 GiB machine;
 * beyond that they go to a file beside DUMPFILE, so the process stays well under 64 MiB RSS at any size.
 */
export const DEFAULT_BITMAP_BUDGET_KIB = 8192;

/** Run the dump command; returns the result for the report. Throws VmsiftError. */
export async function runDumpCommand(
  vmcore: string,
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
): Promise<DumpResult> {
  if (!opts.force && !opts.dryRun && exists(dumpfile)) {
    throw new VmsiftError("DUMPFILE already exists (use -f to overwrite)", { file: dumpfile });
  }
  const codec: PageCodec | null = opts.codec ? createCodec(opts.codec) : null;
  if (codec !== null) {
    msg.debug(`codec: ${codec.name} (${codec.impl})`);
    const fallback = (codec as { fallback?: string }).fallback;
    if (fallback) msg.common(`warning: ${fallback}`);
  }
  const progress = new Progress("Copying data", msg.enabled(ML_PROGRESS));
  const result = await runDump({
    vmcore,
    vmcoreinfoFile: opts.vmcoreinfoFile,
    dumpLevel: opts.dumpLevels[0],
    codec,
    openSink: (): Sink => openOutput(dumpfile, opts, msg),
    onProgress: (done, total, bytes) => progress.update(done, total, bytes),
    debug: (t) => msg.debug(t),
    notice: (t) => msg.common(t),
    bitmapDir: opts.workDir ?? dirname(resolve(dumpfile)),
    bitmapBudget: (opts.cyclicBufferKiB ?? DEFAULT_BITMAP_BUDGET_KIB) * 1024,
    directIo: opts.directIo,
    imageGuard: opts.imageGuard,
    threads: opts.numThreads,
    excludeVmemmap: opts.excludeVmemmap,
  });
  progress.finish(result.write.dumpablePages, result.write.dumpablePages, result.write.fileSize);
  if (result.scan.ran) {
    const s = result.scan;
    const rate = s.seconds > 0 ? Math.round(s.pagesScanned / s.seconds) : 0;
    msg.report(`Struct page scan: ${s.pagesScanned} pages in ${s.seconds.toFixed(3)} s (${rate} pages/s)`);
  }
  if (result.vmemmap !== undefined) {
    const v = result.vmemmap;
    msg.report(`Excluded ${v.pagesExcluded} unused vmemmap pages (of ${v.vmemmapPagesExamined} examined)`);
  }
  if (result.stats.keptUnreadable > 0) {
    msg.common(`${result.stats.keptUnreadable} pages kept because their struct page could not be read.`);
  }
  if (result.stats.keptKernelImage > 0) {
    msg.common(`${result.stats.keptKernelImage} kernel-image pages kept although their struct page said exclude.`);
  }
  msg.report(formatReport(result.stats).trimEnd());
  if (opts.statsJson) {
    try {
      Deno.writeTextFileSync(opts.statsJson, JSON.stringify(statsJson(result.stats), null, 1) + "\n");
    } catch (e) {
      throw new VmsiftError(`cannot write: ${(e as Error).message}`, { file: opts.statsJson });
    }
  }
  msg.common(opts.dryRun ? "\nThe dry run is finished." : `\nThe dumpfile is saved to ${dumpfile}.`);
  msg.common("\nvmsift Completed.");
  return result;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
