/**
 * Reads of a large file (the vmcore) through a sliding mmap window, as makedumpfile reads /proc/vmcore
 * (mmap support in /proc/vmcore since Linux 3.11 exists because read() of it copies page by page). Copying
 * out of the window costs no system call. Holes of sparse files are read as page-cache pages of zeros; the
 * window is MADV_RANDOM and the pages to be read are asked for with MADV_WILLNEED, so that only those are read
 * (docs/performance.md). The window is unmapped before the next one is mapped, so resident memory stays
 * bounded by the window size. Needs --allow-ffi (libc mmap/munmap); `open` returns undefined when mmap is
 * not possible (no FFI permission, a file that cannot be mapped), and callers then use read().
 *
 * The window always sits at the same addresses: a reservation made once (anonymous, reading as zeros) that
 * every window replaces with mmap(MAP_FIXED). One ArrayBuffer views it for the life of the file, so moving
 * the window costs one system call (no munmap, no new ArrayBuffer: V8 counts each new buffer over foreign
 * memory as external memory, and a new 1 MiB one per window made it start a full garbage collection every few
 * dozen windows; issue 17).
 */
import { VmsiftError } from "../core/errors.ts";
import {
  libcAvailable,
  MADV_RANDOM,
  MADV_WILLNEED,
  strerror,
  sysClose,
  sysMadvise,
  sysMmapReadFixed,
  sysMmapReserve,
  sysMunmap,
  sysOpen,
} from "./libc.ts";

/**
 * Default window: 1 MiB (makedumpfile maps 4 MiB): mapped pages count in RSS, and a smaller window costs only
 * more mmap calls (a few per MiB of input, measured no slower).
 */
const DEFAULT_WINDOW = 1 << 20;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const PAGE = 4096;

/** A read-only file read through an mmap window. */
export class MappedFile {
  /** The path it was opened from. */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  readonly #fd: number;
  readonly #window: number;
  /** The reserved window addresses, or null before the first map / after close. */
  #ptr: Deno.PointerObject | null = null;
  #mapStart = 0;
  #mapLen = 0;
  #view: Uint8Array = new Uint8Array(0);
  /** mmap calls made (for tests and benchmarks). */
  maps = 0;

  private constructor(path: string, fd: number, size: number, window: number) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
    this.#window = window;
  }

  /** Open `path` for mapped reads; undefined when mmap cannot be used here (the caller falls back). */
  static open(path: string, size: number, window = DEFAULT_WINDOW): MappedFile | undefined {
    if (size === 0 || !libcAvailable()) return undefined;
    const fd = sysOpen(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return undefined;
    const f = new MappedFile(path, fd, size, Math.max(PAGE, window - (window % PAGE)));
    // Probe: some files (pipes, some /proc files on old kernels) refuse mmap.
    if (!f.#map(0)) {
      f.close();
      return undefined;
    }
    return f;
  }

  /** Copy file bytes [offset, offset + out.length) into out; the range must lie inside the file. */
  readExact(offset: number, out: Uint8Array): void {
    if (!this.tryReadExact(offset, out)) {
      throw new VmsiftError(`mmap of the file failed: ${this.lastError}`, { file: this.path, offset });
    }
  }

  /**
   * As readExact, but false when a window cannot be mapped (`lastError` says why): the caller reads with
   * read() instead, as makedumpfile does when mmap of /proc/vmcore fails.
   */
  tryReadExact(offset: number, out: Uint8Array): boolean {
    let done = 0;
    while (done < out.length) {
      const at = offset + done;
      if (at < this.#mapStart || at >= this.#mapStart + this.#mapLen) {
        if (!this.#map(at)) return false;
      }
      const n = Math.min(out.length - done, this.#mapStart + this.#mapLen - at);
      this.#willNeed(at, n);
      out.set(this.#view.subarray(at - this.#mapStart, at - this.#mapStart + n), done);
      done += n;
    }
    return true;
  }

  /**
   * The file bytes [offset, offset + len) as a view of the window (mapped there if needed), or null when len
   * exceeds the window or the mapping fails. Valid until the next readExact/view/close: the window moves.
   */
  view(offset: number, len: number): Uint8Array | null {
    if (len > this.#window - PAGE || offset < 0 || offset + len > this.size) return null;
    if (offset < this.#mapStart || offset + len > this.#mapStart + this.#mapLen) {
      if (!this.#map(offset)) return null;
    }
    this.#willNeed(offset, len);
    return this.#view.subarray(offset - this.#mapStart, offset - this.#mapStart + len);
  }

  /**
   * Ask the kernel for file bytes [offset, offset + len) of the current window (madvise MADV_WILLNEED:
   * readahead of exactly those pages). With the window's MADV_RANDOM, a fault reads only what was asked
   * for: on a sparse file a fault used to read around it (32 pages), and so does makedumpfile's read(); on
   * the idle 64 GiB synthetic machine that was 10.8 million page-cache pages of zeros for both tools. The
   * result is ignored: it is advice (and /proc/vmcore, which has no page cache, may refuse it).
   */
  #willNeed(offset: number, len: number): void {
    const a = offset - this.#mapStart;
    const a0 = a - (a % PAGE);
    sysMadvise(this.#ptr!, a0, a + len - a0, MADV_WILLNEED);
  }

  #map(at: number): boolean {
    const start = at - (at % PAGE);
    const len = Math.min(this.#window, this.size - start);
    this.#mapLen = 0;
    if (len <= 0) {
      this.lastError = `offset 0x${at.toString(16)} is past the end of the file`;
      return false;
    }
    if (this.#ptr === null) {
      const r = sysMmapReserve(this.#window);
      if (typeof r === "number") {
        this.lastError = strerror(r);
        return false;
      }
      this.#ptr = r;
      this.#view = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(r, this.#window));
    }
    const e = sysMmapReadFixed(this.#ptr, len, this.#fd, start);
    if (e !== 0) {
      this.lastError = strerror(e);
      return false;
    }
    // No read-around on faults: the pages needed are asked for exactly (#willNeed)
    sysMadvise(this.#ptr, 0, len, MADV_RANDOM);
    this.#mapStart = start;
    this.#mapLen = len;
    this.maps++;
    return true;
  }

  /** The error of the last failed mmap, for messages. */
  lastError = "";

  close(): void {
    if (this.#ptr !== null) {
      this.#view = new Uint8Array(0);
      sysMunmap(this.#ptr, this.#window);
      this.#ptr = null;
      this.#mapLen = 0;
    }
    sysClose(this.#fd);
  }
}
