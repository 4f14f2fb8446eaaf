/**
 * The outputs of a dump: an O_DIRECT file by default (seed proposition 1), buffered without O_DIRECT,
 * nothing on a dry run; and the check that an output does not exist yet.
 */
import { VmsiftError } from "../core/errors.ts";
import { DirectSink } from "../io/directSink.ts";
import { FileSink } from "../io/fileSink.ts";
import { libcAvailable } from "../io/libc.ts";
import type { Sink } from "../io/sink.ts";
import { pathExists } from "./input.ts";

/** A Sink that only counts (for --dry-run). */
export class NullSink implements Sink {
  /** Shown in messages. */
  readonly label = "(dry run)";
  /** Bytes written so far. */
  bytes = 0;
  /** Count `bytes`. */
  write(_offset: number, bytes: Uint8Array): void {
    this.bytes += bytes.length;
  }
  /** Nothing to do. */
  rewrite(): void {}
  /** Nothing to do. */
  finish(): void {}
  /** Nothing to do. */
  close(): void {}
  /** Nothing to do. */
  abort(): void {}
}

/** How to open an output file. */
export interface OutputFileOptions {
  /** Count the bytes only, write nothing (--dry-run). */
  dryRun?: boolean;
  /** Write with O_DIRECT (default false; falls back to buffered writes where it cannot). */
  directIo?: boolean;
  /** Replace an existing file (-f). */
  overwrite?: boolean;
  /** Where the output goes and how (debug). */
  debug?: (text: string) => void;
  /** Warnings (no FFI for O_DIRECT, O_DIRECT refused). */
  notice?: (text: string) => void;
}

/** Open the output file `path` (mode 0600) as `opts` say. */
export function openOutputFile(path: string, opts: OutputFileOptions = {}): Sink {
  if (opts.dryRun) return new NullSink();
  const overwrite = opts.overwrite ?? false;
  if (!opts.directIo) {
    opts.debug?.(`output: ${path} (buffered, --no-direct-io)`);
    return FileSink.create(path, { overwrite });
  }
  if (!libcAvailable()) {
    opts.notice?.(
      `warning: ${path}: O_DIRECT needs libc through FFI (--allow-ffi); writing through the page cache`,
    );
    return FileSink.create(path, { overwrite });
  }
  const sink = DirectSink.create(path, {
    overwrite,
    direct: true,
    // Four 512 KiB windows: one each for the descriptor and data streams being filled, and two data windows
    // written with AIO meanwhile; small, so that the whole process stays near Deno's own RSS (O_DIRECT
    // writes of 512 KiB and 1 MiB run at the same rate on this machine's disk: 689 and 654 MB/s with dd).
    windowBytes: 512 << 10,
    cacheBytes: 2 << 20,
    onWarning: (w) => opts.notice?.(`warning: ${w}`),
  });
  const how = sink.direct ? "O_DIRECT" : "buffered: the filesystem refused O_DIRECT";
  opts.debug?.(`output: ${path} (${how}, ${sink.usesAio ? "AIO" : "synchronous"} writes)`);
  return sink;
}

/** VmsiftError when one of `paths` exists (makedumpfile refuses to overwrite without -f). */
export function checkOutputsFree(paths: readonly string[]): void {
  for (const out of paths) {
    if (pathExists(out)) {
      throw new VmsiftError("DUMPFILE already exists (use -f to overwrite)", { file: out });
    }
  }
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
