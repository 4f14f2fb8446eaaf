/**
 * Snappy page codec (descriptor flag 0x4) over the system libsnappy's C API (libsnappy.so.1, Debian
 * libsnappy1v5) through Deno FFI (needs --allow-ffi): makedumpfile's `snappy_compress(page, page_size, out,
 * &len)`, so -p output is makedumpfile's exact bytes, and crash's `snappy_uncompressed_length` +
 * `snappy_uncompress` + "exactly one page" for decoding.
 *
 * The TypeScript codec (snappy.ts) writes valid snappy that is not always byte-identical to libsnappy's (its
 * parser and match heuristics are the classic ones; libsnappy 1.1.9 differs on about half of real pages), so
 * the two engines give different -p files; both decode each other's pages, and they accept the same streams.
 */
import { FLAG_SNAPPY, type PageCodec } from "./codec.ts";
import {
  type CodecLibrary,
  ffiInput,
  loadCodecLibrary,
  type NativeLibraryOptions,
  requireLibrary,
  SizeCell,
} from "./ffiLib.ts";

/** Library names tried in order. */
export const LIBSNAPPY_NAMES: readonly string[] = ["libsnappy.so.1", "libsnappy.so"];

const SYMBOLS = {
  snappy_compress: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  snappy_compress_nb: {
    name: "snappy_compress",
    parameters: ["buffer", "usize", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  snappy_uncompress: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  snappy_uncompressed_length: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  snappy_max_compressed_length: { parameters: ["usize"], result: "usize" },
} as const;

type SnappyLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** SNAPPY_OK of snappy_status. */
const SNAPPY_OK = 0;

/** Loads libsnappy; returns the symbols, or the reason it cannot be used. */
export function loadLibsnappy(names: readonly string[] = LIBSNAPPY_NAMES): CodecLibrary<typeof SYMBOLS> {
  return loadCodecLibrary("snappy", names, SYMBOLS);
}

/** Options of NativeSnappyCodec. */
export type NativeSnappyOptions = NativeLibraryOptions;

/**
 * PageCodec over libsnappy. Not re-entrant (one instance per worker / reader). The constructor throws an
 * Error saying why when libsnappy cannot be loaded.
 */
export class NativeSnappyCodec implements PageCodec {
  readonly name = "snappy";
  readonly flag = FLAG_SNAPPY;
  readonly engine = "libsnappy";
  /** The C API has no version function. */
  readonly impl = "libsnappy (FFI)";
  readonly #lib: SnappyLib;
  /** size_t *length (in: capacity; out: length). */
  readonly #len = new SizeCell();
  #pageSize = 0;
  #pageBig = 0n;
  #capBig = 0n;
  #in = new Uint8Array(new ArrayBuffer(0));
  #out = new Uint8Array(new ArrayBuffer(0));

  constructor(pageSize = 4096, opts: NativeSnappyOptions = {}) {
    this.#lib = requireLibrary("libsnappy", loadLibsnappy(opts.libraryNames)).lib;
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#pageBig = BigInt(n);
    const cap = Number(this.#lib.snappy_max_compressed_length(this.#pageBig));
    this.#capBig = BigInt(cap);
    this.#in = new Uint8Array(new ArrayBuffer(cap));
    this.#out = new Uint8Array(new ArrayBuffer(cap));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    this.#len.word[0] = this.#capBig;
    return this.#result(n, this.#lib.snappy_compress(src, this.#pageBig, this.#out, this.#len.bytes));
  }

  async compressAsync(page: Uint8Array): Promise<Uint8Array | null> {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    this.#len.word[0] = this.#capBig;
    return this.#result(
      n,
      await this.#lib.snappy_compress_nb(src, this.#pageBig, this.#out, this.#len.bytes),
    );
  }

  #result(n: number, rc: number): Uint8Array | null {
    if (rc !== SNAPPY_OK) throw new Error(`snappy_compress failed (${rc})`);
    const len = Number(this.#len.word[0]);
    return len < n ? this.#out.subarray(0, len) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    const n = out.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    if (data.length > this.#in.length) this.#in = new Uint8Array(new ArrayBuffer(data.length));
    const src = this.#in.subarray(0, data.length);
    src.set(data);
    const lib = this.#lib;
    const len = BigInt(data.length);
    // crash: the declared length first (it must be the page), then the data
    if (lib.snappy_uncompressed_length(src, len, this.#len.bytes) !== SNAPPY_OK) return false;
    if (this.#len.word[0] !== this.#pageBig) return false;
    const dst = this.#out.subarray(0, n);
    if (lib.snappy_uncompress(src, len, dst, this.#len.bytes) !== SNAPPY_OK) return false;
    if (this.#len.word[0] !== this.#pageBig) return false;
    out.set(dst);
    return true;
  }
}
