/**
 * A plain buffered Sink over a Deno.FsFile. Contiguous writes are gathered in one buffer (default 1 MiB)
 * and written with one positional write; a write elsewhere flushes first. The file is created with mode
 * 0600 and must not exist unless `overwrite` is set; `abort()` removes it.
 */
import { VmsiftError } from "../core/errors.ts";
import { OutputFullError } from "./outputFull.ts";
import { IntervalSet } from "./intervalSet.ts";
import type { Sink } from "./sink.ts";

/** Options of {@link FileSink.create}. */
export interface FileSinkOptions {
  /** Replace an existing file (makedumpfile -f). Default false: an existing file is an error. */
  overwrite?: boolean;
  /** Bytes gathered before a write (default 1 MiB). */
  bufferSize?: number;
}

/** Buffered positional writer implementing Sink. */
export class FileSink implements Sink {
  readonly label: string;
  #file: Deno.FsFile | null;
  #buf: Uint8Array;
  /** File offset of #buf[0]. */
  #bufStart = 0;
  #bufLen = 0;
  /** Bytes handed to the OS so far. */
  bytesWritten = 0;
  /** Byte ranges written successfully. */
  readonly writtenRanges: IntervalSet = new IntervalSet();

  private constructor(path: string, file: Deno.FsFile, bufferSize: number) {
    this.label = path;
    this.#file = file;
    this.#buf = new Uint8Array(bufferSize);
  }

  /** Create the output file (0600). Throws VmsiftError if it exists and `overwrite` is not set. */
  static create(path: string, opts: FileSinkOptions = {}): FileSink {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, {
        write: true,
        read: false,
        create: true,
        createNew: !opts.overwrite,
        truncate: !!opts.overwrite,
        mode: 0o600,
      });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new VmsiftError("output file already exists (use -f to overwrite)", { file: path });
      }
      throw new VmsiftError(`cannot create: ${(e as Error).message}`, { file: path });
    }
    return new FileSink(path, file, opts.bufferSize ?? (1 << 20));
  }

  #f(): Deno.FsFile {
    if (this.#file === null) throw new VmsiftError("write after close", { file: this.label });
    return this.#file;
  }

  #pwrite(offset: number, bytes: Uint8Array): void {
    const f = this.#f();
    let done = 0;
    try {
      f.seekSync(offset, Deno.SeekMode.Start);
      while (done < bytes.length) done += f.writeSync(bytes.subarray(done));
    } catch (e) {
      if (done > 0) this.writtenRanges.add(offset, offset + done);
      this.bytesWritten += done;
      const m = (e as Error).message;
      if ((e as { code?: string }).code === "ENOSPC" || /No space left|os error 28\b/.test(m)) {
        throw new OutputFullError("no-space", `write error: ${m}`, this.label, offset + done);
      }
      throw new VmsiftError(`write error: ${m}`, { file: this.label, offset: offset + done });
    }
    this.writtenRanges.add(offset, offset + done);
    this.bytesWritten += done;
  }

  /** Forget buffered bytes in [from, to) (after ENOSPC); bytes cut out in the middle become zeros. */
  dropPending(from = 0, to = Infinity): void {
    const bs = this.#bufStart, be = bs + this.#bufLen;
    const a = Math.max(from, bs), b = Math.min(to, be);
    if (this.#bufLen === 0 || b <= a) return;
    if (b === be) this.#bufLen = a - bs;
    else this.#buf.fill(0, a - bs, b - bs);
  }

  /** Set the file size now (frees room on a full file system). */
  truncate(size: number): void {
    try {
      this.#f().truncateSync(size);
    } catch (e) {
      throw new VmsiftError(`cannot set file size: ${(e as Error).message}`, { file: this.label });
    }
  }

  /** Write out the gathered bytes. */
  flush(): void {
    if (this.#bufLen > 0) {
      this.#pwrite(this.#bufStart, this.#buf.subarray(0, this.#bufLen));
      this.#bufLen = 0;
    }
  }

  write(offset: number, bytes: Uint8Array): void {
    if (this.#bufLen > 0 && offset !== this.#bufStart + this.#bufLen) this.flush();
    if (this.#bufLen === 0) this.#bufStart = offset;
    if (this.#bufLen + bytes.length > this.#buf.length) {
      this.flush();
      if (bytes.length >= this.#buf.length) {
        this.#pwrite(offset, bytes);
        return;
      }
      this.#bufStart = offset;
    }
    this.#buf.set(bytes, this.#bufLen);
    this.#bufLen += bytes.length;
  }

  rewrite(offset: number, bytes: Uint8Array): void {
    this.flush();
    this.#pwrite(offset, bytes);
  }

  finish(size: number): void {
    this.flush();
    try {
      this.#f().truncateSync(size);
    } catch (e) {
      throw new VmsiftError(`cannot set file size: ${(e as Error).message}`, { file: this.label });
    }
  }

  close(): void {
    if (this.#file !== null) {
      try {
        this.flush();
      } finally {
        this.#file.close();
        this.#file = null;
      }
    }
  }

  abort(): void {
    if (this.#file !== null) {
      try {
        this.#file.close();
      } catch { /* already broken */ }
      this.#file = null;
    }
    this.#bufLen = 0;
    try {
      Deno.removeSync(this.label);
    } catch { /* gone already */ }
  }
}
