import { VmsiftError } from "../core/errors.ts";
import { libcAvailable, O_RDONLY, strerror, sysClose, sysFileSize, sysOpen, sysPread } from "./libc.ts";

/**
 * A read-only file read with positional reads into caller buffers. Callers read in large chunks (MiB), never
 * a syscall per page. Not thread-safe; one per reader.
 *
 * With the FFI permission the file is opened and read through libc (open, pread, lseek for the size), not
 * through Deno's file API: Deno 2.9 refuses every path under /proc and /sys (/proc/vmcore included) unless
 * it runs with --allow-all ("Requires all access"), even for stat. Without FFI, Deno's API is used.
 */
export class PositionalFile {
  readonly path: string;
  readonly size: number;
  #file: Deno.FsFile | undefined;
  #fd: number;
  #closed = false;
  /** Bytes read so far (for proofs such as "the struct pages are read once"). */
  bytesRead = 0;

  private constructor(path: string, file: Deno.FsFile | undefined, fd: number, size: number) {
    this.path = path;
    this.#file = file;
    this.#fd = fd;
    this.size = size;
  }

  /** True when reads go through libc (FFI) rather than Deno's file API. */
  get viaLibc(): boolean {
    return this.#file === undefined;
  }

  /**
   * Open `path` for reading: through libc when FFI is granted (`ffi: false` forces Deno's file API), else
   * with Deno.openSync. Throws VmsiftError naming the file.
   */
  static open(path: string, opts: { ffi?: boolean } = {}): PositionalFile {
    if (opts.ffi !== false && libcAvailable()) {
      const fd = sysOpen(path, O_RDONLY);
      if (fd < 0) throw new VmsiftError(`cannot open for reading: ${strerror(fd)}`, { file: path });
      const size = sysFileSize(fd);
      if (size < 0) {
        sysClose(fd);
        throw new VmsiftError(`cannot find the size: ${strerror(size)}`, { file: path });
      }
      return new PositionalFile(path, undefined, fd, size);
    }
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (e) {
      const hint = e instanceof Deno.errors.NotCapable && /^\/(proc|sys)\//.test(path)
        ? " (Deno opens /proc and /sys files only with --allow-all; with --allow-ffi vmsift opens them " +
          "through libc: use the vmsift launcher)"
        : "";
      throw new VmsiftError(`cannot open for reading: ${(e as Error).message}${hint}`, { file: path });
    }
    let size: number;
    try {
      size = file.statSync().size;
    } catch (e) {
      file.close();
      throw new VmsiftError(`cannot stat: ${(e as Error).message}`, { file: path });
    }
    return new PositionalFile(path, file, -1, size);
  }

  /**
   * Read exactly `out.length` bytes at `offset`. Throws VmsiftError naming the file and offset on a short
   * read or an I/O error.
   */
  readExact(offset: number, out: Uint8Array): void {
    const n = this.readAt(offset, out);
    if (n !== out.length) {
      throw new VmsiftError(`short read: wanted ${out.length} bytes, file ends after ${n}`, {
        file: this.path,
        offset,
      });
    }
  }

  /** Read up to `out.length` bytes at `offset`; returns the count (less only at end of file). */
  readAt(offset: number, out: Uint8Array): number {
    let done = 0;
    if (this.#file === undefined) {
      const buf = out as Uint8Array<ArrayBuffer>;
      while (done < out.length) {
        const n = sysPread(this.#fd, done === 0 ? buf : buf.subarray(done), offset + done);
        if (n < 0) {
          throw new VmsiftError(`read error: ${strerror(n)}`, { file: this.path, offset: offset + done });
        }
        if (n === 0) break;
        done += n;
      }
      this.bytesRead += done;
      return done;
    }
    try {
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      while (done < out.length) {
        const n = this.#file.readSync(done === 0 ? out : out.subarray(done));
        if (n === null || n === 0) break;
        done += n;
      }
    } catch (e) {
      throw new VmsiftError(`read error: ${(e as Error).message}`, {
        file: this.path,
        offset: offset + done,
      });
    }
    this.bytesRead += done;
    return done;
  }

  close(): void {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#file !== undefined) this.#file.close();
      else sysClose(this.#fd);
    }
  }
}
