/**
 * zlib page codec (descriptor flag 0x1) over the system libdeflate (libdeflate.so.0, Debian libdeflate0)
 * through Deno FFI (needs --allow-ffi): the fastest zlib engine, and registry.ts's first choice for -c.
 *
 * Compression is `libdeflate_zlib_compress` at level 1, and again at level 2 for the pages level 1 leaves
 * between 0.45 and 0.65 of a page (the smaller result is kept), with compressors allocated once per codec
 * instance. Level 1 alone was about 2x faster per page than makedumpfile's compress2(Z_BEST_SPEED) but wrote
 * up to 2.5 % more (the real fixture), most of it from the pages it leaves between 1/2 and 3/4 of a page,
 * where libdeflate's fastest match finder does worse than zlib's level 1; level 2 on the band keeps six real
 * dumps between 0.94 % smaller and 0.68 % larger than makedumpfile's file (issue 16's target: at most 1 %
 * larger) for 12-37 % more CPU per page than level 1 alone (docs/symbols.md "Output size": the band is
 * the one with the fewest level-2 calls that keeps five of them no larger than makedumpfile's; level 2 on
 * every page costs 40-55 % more). The output is a valid zlib (RFC 1950) stream that crash's uncompress() decodes, but
 * libdeflate parses and encodes differently from zlib, so it is NOT byte-identical to makedumpfile's file
 * (`--codec-engine libz` gives those bytes). libdeflate's output depends on its version (1.14 in Debian 12),
 * not on the CPU, and the choice depends only on the page, so every worker of one run writes the same bytes
 * for a page.
 *
 * The output buffer holds libdeflate's bound for a page (libdeflate returns 0 when the result comes within 8
 * bytes of the buffer's end), so compressed data is kept exactly when strictly smaller than the page, the
 * same rule as the other codecs.
 *
 * Decoding is `libdeflate_zlib_decompress_ex` with the acceptance rules of NativeZlibCodec.decompress (libz
 * inflate, i.e. crash's uncompress() + "exactly one page"): the data must hold a zlib header without preset
 * dictionary, a deflate stream that ends, and a matching adler32, producing exactly one page; bytes after the
 * adler32 are ignored (as uncompress() ignores them); data longer than zlib's compressBound(page) is refused.
 * libdeflate 1.14 accepts exactly four kinds of stream that zlib refuses (tests/support/inflate.ts
 * LIBDEFLATE_EXTRAS, pinned by tests/codecs_libdeflate_test.ts, listed in docs/testing.md): literal/length
 * symbols 286/287 in a fixed-Huffman block, a code-length repeat past HLIT + HDIST, more than 286
 * literal/length or 30 distance codes declared, a one-codeword code sent as bit 1. No encoder writes those; a
 * page is still accepted only with the right adler32. vmsift's readers decode zlib pages with libz whenever
 * it loads (formats/kdump/reader.ts), so verify and re-filtering accept exactly what crash's uncompress() does.
 */
import { FLAG_ZLIB, type PageCodec } from "./codec.ts";
import {
  allocPair,
  type CodecLibrary,
  ffiInput,
  freeWhenCollected,
  loadCodecLibrary,
  type NativeLibraryOptions,
  PrefixViews,
  requireLibrary,
} from "./ffiLib.ts";

/** Library names tried in order (Debian/Ubuntu libdeflate0, Fedora libdeflate). */
export const LIBDEFLATE_NAMES: readonly string[] = ["libdeflate.so.0", "libdeflate.so"];

const SYMBOLS = {
  libdeflate_alloc_compressor: { parameters: ["i32"], result: "pointer" },
  libdeflate_zlib_compress_bound: { parameters: ["pointer", "usize"], result: "usize" },
  libdeflate_zlib_compress: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "usize",
  },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  libdeflate_zlib_compress_nb: {
    name: "libdeflate_zlib_compress",
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "usize",
    nonblocking: true,
  },
  libdeflate_free_compressor: { parameters: ["pointer"], result: "void" },
  libdeflate_alloc_decompressor: { parameters: [], result: "pointer" },
  libdeflate_zlib_decompress_ex: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "pointer", "pointer"],
    result: "i32",
  },
  libdeflate_free_decompressor: { parameters: ["pointer"], result: "void" },
} as const;

type DeflateLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** libdeflate's fastest level, used for every page (makedumpfile uses zlib's Z_BEST_SPEED, 1). */
export const LIBDEFLATE_LEVEL = 1;

/** The level a page is compressed at again when level 1 leaves it in RECOMPRESS_FROM..RECOMPRESS_TO. */
export const LIBDEFLATE_RETRY_LEVEL = 2;

/**
 * Level 1 results in [page * RECOMPRESS_FROM, page * RECOMPRESS_TO) are compressed again at level 2. On the
 * real dumps measured, level 1 wrote less than zlib's level 1 for most pages it compressed below 0.45 of a
 * page, about as much above 3/4 of one (few pages), and 4-12 % more for the pages in between; of the bands
 * tried (0.025 steps), [0.45, 0.65) is the one with the fewest level-2 calls (12 % of the compressed pages on
 * average, against 19 % for [1/2, 3/4)) that keeps five real dumps no larger than makedumpfile's file
 * (docs/symbols.md "Output size").
 */
export const RECOMPRESS_FROM = 0.45;
/** The end of the recompressed band (exclusive), as a fraction of the page. */
export const RECOMPRESS_TO = 0.65;

/** LIBDEFLATE_SUCCESS of enum libdeflate_result. */
const LIBDEFLATE_SUCCESS = 0;

/** zlib 1.2.13's compressBound(n): the largest data NativeZlibCodec.decompress considers. */
export function zlibCompressBound(n: number): number {
  return n + Math.floor(n / 4096) + Math.floor(n / 16384) + Math.floor(n / 33554432) + 13;
}

/** Loads libdeflate; returns the symbols, or the reason it cannot be used. */
export function loadLibdeflate(names: readonly string[] = LIBDEFLATE_NAMES): CodecLibrary<typeof SYMBOLS> {
  return loadCodecLibrary("libdeflate", names, SYMBOLS);
}

/** Frees the compressor and decompressor (built outside the class: it holds no reference to the codec). */
function freeContexts(
  lib: DeflateLib,
  c: Deno.PointerObject,
  c2: Deno.PointerObject,
  d: Deno.PointerObject,
): () => void {
  return () => {
    lib.libdeflate_free_compressor(c);
    lib.libdeflate_free_compressor(c2);
    lib.libdeflate_free_decompressor(d);
  };
}

/** Options of LibdeflateCodec. */
export type LibdeflateOptions = NativeLibraryOptions;

/**
 * PageCodec over libdeflate. Not re-entrant (one instance per worker / reader). The constructor throws an
 * Error saying why when libdeflate cannot be loaded; use `loadLibdeflate` to probe.
 */
export class LibdeflateCodec implements PageCodec {
  readonly name = "zlib";
  readonly flag = FLAG_ZLIB;
  readonly engine = "libdeflate";
  /** libdeflate 1.14's ABI has no version function (LIBDEFLATE_VERSION_STRING is a header macro). */
  readonly impl = "libdeflate (FFI)";
  readonly #lib: DeflateLib;
  readonly #c: Deno.PointerObject;
  /** The level-2 compressor for the pages of the recompressed band. */
  readonly #c2: Deno.PointerObject;
  readonly #d: Deno.PointerObject;
  #pageSize = 0;
  #pageBig = 0n;
  #outBig = 0n;
  /** Largest compressed data accepted: zlib's compressBound(page). */
  #maxIn = 0;
  #in = new Uint8Array(new ArrayBuffer(0));
  #out = new Uint8Array(new ArrayBuffer(0));
  #outPrefix = new PrefixViews(this.#out);
  #out2 = new Uint8Array(new ArrayBuffer(0));
  #out2Prefix = new PrefixViews(this.#out2);
  #page = new Uint8Array(new ArrayBuffer(0));
  /** Level 1 results in [#retryFrom, #retryTo) bytes are compressed again at level 2. */
  #retryFrom = 0;
  #retryTo = 0;

  constructor(pageSize = 4096, opts: LibdeflateOptions = {}) {
    const lib = requireLibrary("libdeflate", loadLibdeflate(opts.libraryNames)).lib;
    this.#lib = lib;
    const [c, d] = allocPair(
      "libdeflate_alloc_compressor/libdeflate_alloc_decompressor",
      () => lib.libdeflate_alloc_compressor(LIBDEFLATE_LEVEL),
      () => lib.libdeflate_alloc_decompressor(),
      (c) => lib.libdeflate_free_compressor(c),
      (d) => lib.libdeflate_free_decompressor(d),
    );
    const c2 = lib.libdeflate_alloc_compressor(LIBDEFLATE_RETRY_LEVEL);
    if (c2 === null) {
      lib.libdeflate_free_compressor(c);
      lib.libdeflate_free_decompressor(d);
      throw new Error("libdeflate_alloc_compressor failed");
    }
    this.#c = c;
    this.#c2 = c2;
    this.#d = d;
    freeWhenCollected(this, freeContexts(lib, c, c2, d));
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#pageBig = BigInt(n);
    this.#maxIn = zlibCompressBound(n);
    const bound = Number(this.#lib.libdeflate_zlib_compress_bound(this.#c, this.#pageBig));
    this.#outBig = BigInt(bound);
    this.#in = new Uint8Array(new ArrayBuffer(Math.max(n, this.#maxIn)));
    this.#out = new Uint8Array(new ArrayBuffer(bound));
    this.#outPrefix = new PrefixViews(this.#out);
    this.#out2 = new Uint8Array(new ArrayBuffer(bound));
    this.#out2Prefix = new PrefixViews(this.#out2);
    // len >= n * FROM and len < n * TO for an integer len, whatever the fractions' products
    this.#retryFrom = Math.ceil(n * RECOMPRESS_FROM);
    this.#retryTo = Math.ceil(n * RECOMPRESS_TO);
    this.#page = new Uint8Array(new ArrayBuffer(n));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    const lib = this.#lib;
    const len = Number(lib.libdeflate_zlib_compress(this.#c, src, this.#pageBig, this.#out, this.#outBig));
    if (len < this.#retryFrom || len >= this.#retryTo) return this.#result(n, len);
    return this.#retried(
      len,
      lib.libdeflate_zlib_compress(this.#c2, src, this.#pageBig, this.#out2, this.#outBig),
    );
  }

  /** compress() with the library calls on Deno's thread pool (a lane): the same bytes. */
  async compressAsync(page: Uint8Array): Promise<Uint8Array | null> {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    const lib = this.#lib;
    const len = Number(
      await lib.libdeflate_zlib_compress_nb(this.#c, src, this.#pageBig, this.#out, this.#outBig),
    );
    if (len < this.#retryFrom || len >= this.#retryTo) return this.#result(n, len);
    return this.#retried(
      len,
      await lib.libdeflate_zlib_compress_nb(this.#c2, src, this.#pageBig, this.#out2, this.#outBig),
    );
  }

  /** The level 2 result when it is smaller than level 1's `len`, else level 1's. */
  #retried(len: number, r2: number | bigint): Uint8Array {
    const len2 = Number(r2);
    return len2 > 0 && len2 < len ? this.#out2Prefix.get(len2) : this.#outPrefix.get(len);
  }

  #result(n: number, len: number): Uint8Array | null {
    // 0: did not fit libdeflate's own bound, which cannot happen; treat it as incompressible
    return len > 0 && len < n ? this.#outPrefix.get(len) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    const n = out.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    // as NativeZlibCodec: stored data never exceeds a page (crash rejects such descriptors before decoding)
    if (data.length === 0 || data.length > this.#maxIn) return false;
    const src = this.#in.subarray(0, data.length);
    src.set(data);
    // actual_out NULL: exactly n bytes or an error. libdeflate's zlib wrapper always lets bytes after the
    // adler32 through (it decodes the deflate stream to its end and reads the adler32 right after it).
    const rc = this.#lib.libdeflate_zlib_decompress_ex(
      this.#d,
      src,
      BigInt(data.length),
      this.#page,
      this.#pageBig,
      null,
      null,
    );
    if (rc !== LIBDEFLATE_SUCCESS) return false;
    out.set(this.#page);
    return true;
  }
}
