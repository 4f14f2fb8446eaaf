import { VmsiftError } from "../core/errors.ts";

/**
 * A read-only file read with positional reads into caller buffers. Callers read in large chunks (MiB), never
 * a syscall per page. Not thread-safe; one per reader.
 */
export class PositionalFile {
  /** The path it was opened from. */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  #file: Deno.FsFile;
  #closed = false;
  /** Bytes read so far (for proofs such as "the struct pages are read once"). */
  bytesRead = 0;

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.size = size;
  }

  /** Open `path` read-only (VmsiftError naming it on failure). */
  static open(path: string): PositionalFile {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (e) {
      throw new VmsiftError(`cannot open for reading: ${(e as Error).message}`, { file: path });
    }
    let size: number;
    try {
      size = file.statSync().size;
    } catch (e) {
      file.close();
      throw new VmsiftError(`cannot stat: ${(e as Error).message}`, { file: path });
    }
    return new PositionalFile(path, file, size);
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

  /** Close the file. */
  close(): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#file.close();
    }
  }
}
