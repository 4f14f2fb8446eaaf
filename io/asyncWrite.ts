/**
 * Writes that run while the caller goes on: POSIX AIO (aio_write) from glibc through Deno FFI. glibc runs
 * each request as a pwrite(2) on a thread of its own pool (requests on one descriptor in order), so an
 * O_DIRECT write of one cache window proceeds while the main thread reads, classifies and compresses the
 * next one. Waiting is a blocking aio_suspend(3) for one request, so callers stay synchronous.
 *
 * x86_64 glibc layout of struct aiocb (the same with and without _FILE_OFFSET_BITS=64), read off
 * `offsetof` with gcc on Debian 12: size 168, aio_fildes 0, aio_buf 16, aio_nbytes 24, aio_sigevent 32
 * (sigev_notify at 44), aio_offset 128. EINPROGRESS is 115, SIGEV_NONE 1.
 */

import { memalign, memfree } from "./libc.ts";

const AIOCB_SIZE = 168;
const CB_FILDES = 0;
const CB_BUF = 16;
const CB_NBYTES = 24;
const CB_SIGEV_NOTIFY = 44;
const CB_OFFSET = 128;
const SIGEV_NONE = 1;
const EINPROGRESS = 115;
const EINTR = 4;

const SYMBOLS = {
  aio_write: { parameters: ["pointer"], result: "i32" },
  aio_error: { parameters: ["pointer"], result: "i32" },
  aio_return: { parameters: ["pointer"], result: "isize" },
  aio_suspend: { parameters: ["buffer", "i32", "pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type AioLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** glibc ≥ 2.34 has AIO in libc.so.6; older ones in librt.so.1. */
const LIBRARIES = ["libc.so.6", "librt.so.1"];

/** The outcome of one write: bytes written (possibly short) or an errno. */
export interface AioResult {
  /** Bytes written (≥ 0) when `errno` is 0. */
  written: number;
  /** 0, or the errno the write failed with. */
  errno: number;
}

/**
 * A fixed number of write slots, each one request at a time. `submit(slot, …)` starts a write; `wait(slot)`
 * blocks until it ends and says how it went. The buffer handed to `submit` must stay untouched until then.
 * `AsyncWriter.open()` returns null when AIO is not there (no glibc AIO, no FFI): callers write synchronously.
 */
export class AsyncWriter {
  readonly slots: number;
  #lib: AioLib;
  #errnoView: Deno.UnsafePointerView;
  #cbPtr: Deno.PointerObject | null;
  #cbs: DataView;
  #cbAt: Deno.PointerObject[] = [];
  #busy: Uint8Array;
  #list = new BigUint64Array(1);

  private constructor(lib: AioLib, slots: number) {
    this.#lib = lib;
    this.slots = slots;
    this.#errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
    this.#cbPtr = memalign(64, slots * AIOCB_SIZE);
    this.#cbs = new DataView(Deno.UnsafePointerView.getArrayBuffer(this.#cbPtr, slots * AIOCB_SIZE));
    new Uint8Array(this.#cbs.buffer).fill(0);
    for (let s = 0; s < slots; s++) this.#cbAt.push(Deno.UnsafePointer.offset(this.#cbPtr, s * AIOCB_SIZE)!);
    this.#busy = new Uint8Array(slots);
  }

  /** An AsyncWriter with `slots` slots, or null when glibc AIO cannot be loaded (the reason is not needed). */
  static open(slots: number): AsyncWriter | null {
    for (const name of LIBRARIES) {
      try {
        return new AsyncWriter(Deno.dlopen(name, SYMBOLS).symbols, slots);
      } catch {
        // next library; none: no AIO
      }
    }
    return null;
  }

  /** True while slot `s` has a write that has not been waited for. */
  busy(s: number): boolean {
    return this.#busy[s] === 1;
  }

  /** Any slot busy. */
  get anyBusy(): boolean {
    return this.#busy.includes(1);
  }

  /**
   * Start writing `len` bytes at address `buf` to `fd` at `offset`. Returns 0, or -errno when the request
   * could not even be queued (EAGAIN: the caller then writes synchronously).
   */
  submit(s: number, fd: number, buf: Deno.PointerObject, len: number, offset: number): number {
    if (this.#busy[s]) throw new Error(`aio slot ${s} is busy`);
    const at = s * AIOCB_SIZE;
    const cb = this.#cbs;
    for (let i = 0; i < AIOCB_SIZE; i += 8) cb.setBigUint64(at + i, 0n, true);
    cb.setInt32(at + CB_FILDES, fd, true);
    cb.setBigUint64(at + CB_BUF, BigInt(Deno.UnsafePointer.value(buf)), true);
    cb.setBigUint64(at + CB_NBYTES, BigInt(len), true);
    cb.setInt32(at + CB_SIGEV_NOTIFY, SIGEV_NONE, true);
    cb.setBigInt64(at + CB_OFFSET, BigInt(offset), true);
    if (this.#lib.aio_write(this.#cbAt[s]) !== 0) return -this.#errnoView.getInt32(0);
    this.#busy[s] = 1;
    return 0;
  }

  /** Block until slot `s`'s write ends (returns at once for an idle slot: written 0). */
  wait(s: number): AioResult {
    if (!this.#busy[s]) return { written: 0, errno: 0 };
    const cb = this.#cbAt[s];
    let e: number;
    this.#list[0] = BigInt(Deno.UnsafePointer.value(cb));
    const list = new Uint8Array(this.#list.buffer);
    while ((e = this.#lib.aio_error(cb)) === EINPROGRESS) {
      if (this.#lib.aio_suspend(list, 1, null) !== 0) {
        const err = this.#errnoView.getInt32(0);
        if (err !== EINTR && err !== EINPROGRESS && err !== 11 /* EAGAIN: timeout, none given */) {
          throw new Error(`aio_suspend failed: errno ${err}`);
        }
      }
    }
    const n = Number(this.#lib.aio_return(cb));
    this.#busy[s] = 0;
    if (e !== 0) return { written: 0, errno: e };
    return { written: n, errno: 0 };
  }

  /** Wait for every slot (used before the memory or the descriptor goes away). */
  waitAll(): void {
    for (let s = 0; s < this.slots; s++) this.wait(s);
  }

  /** Wait for everything, then release the control blocks (idempotent). */
  close(): void {
    if (this.#cbPtr === null) return;
    this.waitAll();
    memfree(this.#cbPtr);
    this.#cbPtr = null;
  }
}
