/**
 * The page-compression worker of `--num-threads` (formats/kdump/parallelWriter.ts) and its message protocol.
 *
 * vmsift ships as one bundled file (and as a `deno compile` binary), so the worker cannot be a separate
 * module file: the parallel writer starts `new Worker(codecWorkerUrl(), { name: CODEC_WORKER_NAME })`, where
 * codecWorkerUrl() is this module's own URL. Run from source (and in a `deno compile` binary) that is this
 * file, the worker's main module, whose top level (below) starts the worker loop. In the bundle every
 * module's `import.meta.url` is the bundle itself, so the worker runs the whole bundle: main.ts checks
 * {@link isCodecWorker} first and starts the loop instead of the CLI.
 *
 * Protocol (all page buffers are transferred, never copied, and come back for reuse):
 * - main → worker `init {codec, impl, pageSize}` once (`impl` is the main thread codec's engine, forced in the
 *   worker so that every thread writes the same bytes), then `batch {seq, count, zero, pages, out, sizes}`:
 *   `pages` holds `count` consecutive dumpable pages back to back;
 * - worker → main `done {seq, pages, out, sizes}`: sizes[i] = {@link ZERO_PAGE} when `zero` was set and page i
 *   is all zero, pageSize when it is to be stored raw (compressed data is kept only when strictly smaller than
 *   a page), else its compressed size, the compressed bytes packed in `out` in page order; or
 *   `error {seq, message}`.
 */
import { type CodecName, createCodecAsync } from "./registry.ts";
import type { PageCodec } from "./codec.ts";
import type { EngineName } from "./engines.ts";

/** The `name` of codec workers (Worker option; `self.name` inside the worker). */
export const CODEC_WORKER_NAME = "vmsift-codec";

/** sizes[i] of a zero page. */
export const ZERO_PAGE = 0xffff_ffff;

/** First message to a worker. */
export interface CodecInitMessage {
  type: "init";
  /** Registry name: zlib, lzo, snappy, zstd. */
  codec: string;
  /**
   * The main thread codec's engine (libdeflate, libz, node, liblzo2, ...): engines of one codec write different
   * bytes, so the worker forces the same one and fails rather than use another.
   */
  impl: EngineName;
  pageSize: number;
}

/**
 * Optional, sent at start-up when the codec is known before the page size: the worker compiles its codec on
 * synthetic pages (with a throwaway instance) while the main thread is still scanning, so the first real
 * batches do not run in the interpreter.
 */
export interface CodecWarmMessage {
  type: "warm";
  codec: string;
  impl: EngineName;
}

/** A batch of pages to compress. */
export interface CodecBatchMessage {
  type: "batch";
  seq: number;
  count: number;
  /** Detect zero pages (dump_level & 1). */
  zero: boolean;
  pages: ArrayBuffer;
  out: ArrayBuffer;
  sizes: ArrayBuffer;
}

/** A compressed batch: the buffers of the request, filled. */
export interface CodecDoneMessage {
  type: "done";
  seq: number;
  pages: ArrayBuffer;
  out: ArrayBuffer;
  sizes: ArrayBuffer;
}

/** The worker could not compress (or start). */
export interface CodecErrorMessage {
  type: "error";
  seq: number;
  message: string;
}

/** What a worker sends back. */
export type CodecReply = CodecDoneMessage | CodecErrorMessage;

/** Makes the worker's codec; the default is the registry's. */
export type WorkerCodecFactory = (
  name: string,
  pageSize: number,
  impl: EngineName,
) => PageCodec | Promise<PageCodec>;

/** True inside a codec worker (a Worker named {@link CODEC_WORKER_NAME}). */
export function isCodecWorker(): boolean {
  return "WorkerGlobalScope" in globalThis && (globalThis as { name?: unknown }).name === CODEC_WORKER_NAME;
}

/**
 * The engine workers must use to produce the same bytes as `codec`: its registry engine (libdeflate, libz,
 * node, liblzo2, builtin, ...); "builtin" for an ad-hoc codec without one.
 */
export function workerEngineOf(codec: PageCodec): EngineName {
  return codec.engine ?? "builtin";
}

/** The module to start codec workers from: this module (the bundle itself when bundled). */
export function codecWorkerUrl(): string {
  return import.meta.url;
}

/**
 * Compress `count` pages of `pages` into `out` / `sizes` (see the protocol above), with `zero` marking zero
 * pages. Used by the workers and, with `mainCompresses`, by the main thread.
 */
export function compressBatch(
  codec: PageCodec,
  pageSize: number,
  pages: Uint8Array,
  count: number,
  zero: boolean,
  out: Uint8Array,
  sizes: Uint32Array,
): void {
  const words = new Int32Array(pages.buffer, pages.byteOffset, (count * pageSize) >>> 2);
  const wpp = pageSize >>> 2;
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (zero && isZeroPage(words, i * wpp, wpp)) {
      sizes[i] = ZERO_PAGE;
      continue;
    }
    const c = codec.compress(pages.subarray(i * pageSize, (i + 1) * pageSize));
    off = storeCompressed(c, pageSize, i, off, out, sizes);
  }
}

/**
 * Record page `i`'s codec result `c` in a batch: its bytes packed at `off` in `out` and its length in
 * `sizes[i]` when it is shorter than a page, else `sizes[i] = pageSize` (stored raw). Returns the next offset.
 */
export function storeCompressed(
  c: Uint8Array | null,
  pageSize: number,
  i: number,
  off: number,
  out: Uint8Array,
  sizes: Uint32Array,
): number {
  if (c === null || c.length >= pageSize) {
    sizes[i] = pageSize;
    return off;
  }
  out.set(c, off);
  sizes[i] = c.length;
  return off + c.length;
}

/** Compress a few hundred synthetic pages (text-like, sparse, random) so that V8 optimizes the codec. */
function warmUp(codec: PageCodec, pages = 256): void {
  const ps = 4096;
  const buf = new Uint8Array(ps);
  let x = 0x9e3779b9;
  for (let n = 0; n < pages; n++) {
    const kind = n % 4;
    buf.fill(0);
    for (let i = 0; i < ps; i++) {
      x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0;
      if (kind === 0) buf[i] = x & 0xff; // incompressible
      else if (kind === 1) {
        buf[i] = (i % 64 < 40 ? 0x61 + ((i * 7 + n) % 26) : 0) ^ (x % 97 === 0 ? x & 0xff : 0);
      } else if (kind === 2) buf[i] = x % 31 === 0 ? x & 0xff : 0; // sparse
      else buf[i] = (i >>> 3) & 0xff; // runs
    }
    codec.compress(buf);
  }
}

/** All `n` words from `first` zero (n a multiple of 8): a zero page of `n` 4-byte words. */
export function isZeroPage(w: Int32Array, first: number, n: number): boolean {
  for (let i = first, e = first + n; i < e; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}

let started = false;

/**
 * Run the worker loop in this worker scope (no-op when already started). `factory` replaces the registry
 * (tests use it to make a failing codec).
 */
export function startCodecWorker(
  factory: WorkerCodecFactory = (n, ps, impl) => createCodecAsync(n as CodecName, ps, { impl }),
): void {
  if (started) return;
  started = true;
  const scope = globalThis as unknown as {
    postMessage(msg: unknown, transfer?: Transferable[]): void;
    onmessage: ((e: MessageEvent) => void) | null;
  };
  let codec: Promise<PageCodec> | null = null;
  let pageSize = 4096;
  let failed = false;
  const fail = (seq: number, e: unknown) => {
    failed = true;
    const message = e instanceof Error ? e.message : String(e);
    scope.postMessage({ type: "error", seq, message } satisfies CodecErrorMessage);
  };
  scope.onmessage = async (e: MessageEvent) => {
    const m = e.data as CodecWarmMessage | CodecInitMessage | CodecBatchMessage;
    if (m.type === "warm") {
      try {
        warmUp(await factory(m.codec, 4096, m.impl));
      } catch {
        // the real codec is made at init, and its errors are reported from there
      }
      return;
    }
    if (m.type === "init") {
      pageSize = m.pageSize;
      // an unhandled rejection here would kill the worker before it can report: reported per batch below
      codec = (async () => await factory(m.codec, m.pageSize, m.impl))();
      codec.catch(() => {});
      return;
    }
    if (failed) return;
    try {
      if (codec === null) throw new Error("codec worker: batch before init");
      const c = await codec;
      const sizes = new Uint32Array(m.sizes);
      compressBatch(c, pageSize, new Uint8Array(m.pages), m.count, m.zero, new Uint8Array(m.out), sizes);
      const reply: CodecDoneMessage = {
        type: "done",
        seq: m.seq,
        pages: m.pages,
        out: m.out,
        sizes: m.sizes,
      };
      scope.postMessage(reply, [m.pages, m.out, m.sizes]);
    } catch (err) {
      fail(m.seq, err);
    }
  };
}

// Source runs: this module is the worker's entry. (Bundled, import.meta.main is false here; main.ts starts it.)
if (import.meta.main && isCodecWorker()) startCodecWorker();
