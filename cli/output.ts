/**
 * The output backend of a dump: O_DIRECT file by default (seed proposition 1), buffered with
 * --no-direct-io, nothing with --dry-run.
 */
import type { Sink } from "../formats/sink.ts";
import { DirectSink } from "../io/directSink.ts";
import { FileSink } from "../io/fileSink.ts";
import type { CliOptions } from "./options.ts";
import type { Messages } from "./messages.ts";

/** A Sink that only counts (for --dry-run). */
export class NullSink implements Sink {
  readonly label = "(dry run)";
  bytes = 0;
  write(_offset: number, bytes: Uint8Array): void {
    this.bytes += bytes.length;
  }
  rewrite(): void {}
  finish(): void {}
  close(): void {}
  abort(): void {}
}

/** Open DUMPFILE for writing as the options say. */
export function openOutput(path: string, opts: CliOptions, msg: Messages): Sink {
  if (opts.dryRun) return new NullSink();
  if (!opts.directIo) {
    msg.debug(`output: ${path} (buffered, --no-direct-io)`);
    return FileSink.create(path, { overwrite: opts.force });
  }
  const sink = DirectSink.create(path, {
    overwrite: opts.force,
    direct: true,
    // Two 1 MiB windows: enough for the descriptor and data streams to go out as whole aligned writes, and
    // small, so that the whole process stays under 64 MiB RSS (Deno itself takes about 47 MiB).
    windowBytes: 1 << 20,
    cacheBytes: 2 << 20,
    onWarning: (w) => msg.common(`warning: ${w}`),
  });
  msg.debug(`output: ${path} (${sink.direct ? "O_DIRECT" : "buffered: the filesystem refused O_DIRECT"})`);
  return sink;
}
