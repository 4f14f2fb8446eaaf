/**
 * `-R DUMPFILE` (rebuild a normal file from a flattened stream on stdin) and `--reassemble F1 ... DUMPFILE`
 * (merge --split files).
 */
import { VmsiftError } from "../core/errors.ts";
import { rebuildFlatToFile } from "../formats/flatRebuild.ts";
import { reassembleKdump } from "../formats/kdump/reassemble.ts";
import { FileSink } from "../io/fileSink.ts";
import { useSinks } from "../io/sink.ts";
import type { Messages } from "./messages.ts";
import type { CliOptions } from "./options.ts";

/** -R DUMPFILE < stream. */
export function runRebuildCommand(dumpfile: string, opts: CliOptions, msg: Messages): number {
  if (Deno.stdin.isTerminal()) {
    throw new VmsiftError("-R reads the flattened stream from stdin, which is a terminal", { file: "stdin" });
  }
  const r = rebuildFlatToFile(Deno.stdin, "stdin", dumpfile, { overwrite: opts.force });
  msg.debug(`${r.records} records, ${r.payloadBytes} bytes, ${r.overlapping} overlapping`);
  msg.common(`\nThe dumpfile is saved to ${dumpfile}.`);
  msg.common("\nvmsift Completed.");
  return 0;
}

/** --reassemble SPLITFILE... DUMPFILE. */
export function runReassembleCommand(
  inputs: string[],
  dumpfile: string,
  opts: CliOptions,
  msg: Messages,
): number {
  const sink = FileSink.create(dumpfile, { overwrite: opts.force });
  useSinks([sink], () => reassembleKdump(inputs, sink));
  msg.common(`\nThe dumpfile is saved to ${dumpfile}.`);
  msg.common("\nvmsift Completed.");
  return 0;
}
