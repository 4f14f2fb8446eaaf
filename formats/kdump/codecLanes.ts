/**
 * `--num-threads N` without a V8 isolate per thread: compression lanes for the FFI codec engines (libdeflate,
 * libz, liblzo2, libsnappy, libzstd).
 *
 * A lane is one codec instance (its own library context) whose per-page library call is a Deno FFI
 * `nonblocking` call ({@link PageCodec.compressAsync}): Deno runs it on its blocking thread pool and resolves a
 * promise on the main thread, which meanwhile reads pages and writes the file. N lanes keep up to N library
 * calls running at once, on N threads. The same library function with the same context gets the same input,
 * so the bytes are those of the single-threaded writer.
 *
 * Why not Web Workers (formats/codecs/codecWorker.ts, still used for the engines without FFI, node:zlib and
 * the TypeScript codecs): every worker is a V8 isolate with Deno's runtime; measured with the shipped bundle
 * and its V8 flag, a worker running the bundle added 10-15 MiB of peak RSS and an empty one 6 MiB of anonymous
 * memory, while the single-threaded dump already peaks at 55-61 MiB of the 64 MiB budget (docs/performance.md,
 * "Threads and memory"). A lane costs its codec context, its share of the batch buffers and a pool thread's
 * stack pages.
 */
import type { PageCodec } from "../codecs/codec.ts";
import { type CodecName, createCodec } from "../codecs/registry.ts";
import { isZeroPage, storeCompressed, ZERO_PAGE } from "../codecs/codecWorker.ts";

/** True when `codec` can run in lanes: an FFI engine with {@link PageCodec.compressAsync}. */
export function lanesSupported(codec: PageCodec): boolean {
  return typeof codec.compressAsync === "function" && codec.engine !== undefined;
}

/**
 * Compress `count` pages of `pages` into `out` / `sizes`, as compressBatch (codecWorker.ts) does: sizes[i] =
 * ZERO_PAGE for a zero page when `zero`, pageSize for a page stored raw, else its compressed size, the
 * compressed bytes packed in `out` in page order. The library calls run off this thread, one at a time.
 */
export async function compressBatchAsync(
  codec: PageCodec,
  pageSize: number,
  pages: Uint8Array,
  count: number,
  zero: boolean,
  out: Uint8Array,
  sizes: Uint32Array,
): Promise<void> {
  const words = new Int32Array(pages.buffer, pages.byteOffset, (count * pageSize) >>> 2);
  const wpp = pageSize >>> 2;
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (zero && isZeroPage(words, i * wpp, wpp)) {
      sizes[i] = ZERO_PAGE;
      continue;
    }
    const c = await codec.compressAsync!(pages.subarray(i * pageSize, (i + 1) * pageSize));
    off = storeCompressed(c, pageSize, i, off, out, sizes);
  }
}

/** One lane: a codec instance and the batches queued on it, compressed one after the other. */
export class CodecLane {
  readonly codec: PageCodec;
  #tail: Promise<void> = Promise.resolve();

  constructor(codec: PageCodec) {
    this.codec = codec;
  }

  /**
   * Compress a batch after the ones already queued (see {@link compressBatchAsync}); settles when this batch
   * is done. The buffers must stay untouched until then.
   */
  run(
    pageSize: number,
    pages: Uint8Array,
    count: number,
    zero: boolean,
    out: Uint8Array,
    sizes: Uint32Array,
  ): Promise<void> {
    const c = this.codec;
    const p = this.#tail.then(() => compressBatchAsync(c, pageSize, pages, count, zero, out, sizes));
    this.#tail = p.catch(() => {});
    return p;
  }

  /** Settles when every batch queued so far has been compressed or has failed. */
  idle(): Promise<void> {
    return this.#tail;
  }

  /**
   * `count` lanes for `codec`: the first is `codec` itself (the main thread does not compress when lanes do),
   * the others new instances of the same engine, so every lane writes the same bytes.
   */
  static create(codec: PageCodec, count: number, pageSize: number): CodecLane[] {
    if (!lanesSupported(codec)) throw new Error(`codec ${codec.impl} has no off-thread compression`);
    const lanes = [new CodecLane(codec)];
    for (let i = 1; i < count; i++) {
      lanes.push(new CodecLane(createCodec(codec.name as CodecName, pageSize, { impl: codec.engine })));
    }
    return lanes;
  }
}
