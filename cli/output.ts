/**
 * The output backend of a dump: O_DIRECT file by default (seed proposition 1), buffered with
 * --no-direct-io, nothing with --dry-run.
 */
import { DirectSink } from "../io/directSink.ts";
import { FileSink } from "../io/fileSink.ts";
import { libcAvailable } from "../io/libc.ts";
import type { CliOptions } from "./options.ts";
import type { Messages } from "./messages.ts";
import type { Sink } from "../io/sink.ts";

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
  if (!libcAvailable()) {
    msg.common(
      `warning: ${path}: O_DIRECT needs libc through FFI (--allow-ffi); writing through the page cache`,
    );
    return FileSink.create(path, { overwrite: opts.force });
  }
  const sink = DirectSink.create(path, {
    overwrite: opts.force,
    direct: true,
    // Four 512 KiB windows: one each for the descriptor and data streams being filled, and two data windows
    // written with AIO meanwhile; small, so that the whole process stays near Deno's own RSS (O_DIRECT
    // writes of 512 KiB and 1 MiB run at the same rate on this machine's disk: 689 and 654 MB/s with dd).
    windowBytes: 512 << 10,
    cacheBytes: 2 << 20,
    onWarning: (w) => msg.common(`warning: ${w}`),
  });
  const how = sink.direct ? "O_DIRECT" : "buffered: the filesystem refused O_DIRECT";
  msg.debug(`output: ${path} (${how}, ${sink.usesAio ? "AIO" : "synchronous"} writes)`);
  return sink;
}
