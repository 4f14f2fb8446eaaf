/**
 * zlib page codec (descriptor flag 0x1) over the system libz through Deno FFI (needs --allow-ffi).
 *
 * makedumpfile compresses each page with `compress2(out, &len, page, page_size, Z_BEST_SPEED)`, i.e.
 * deflateInit(level 1) + deflate(Z_FINISH) + deflateEnd. Here one z_stream is initialised once with
 * deflateInit_(level 1) and reset per page with deflateReset, which gives the same bytes (tests compare both
 * with compress2 and with makedumpfile's own output) without the per-page allocation of the deflate state.
 * Decoding mirrors crash's `uncompress()` + "exactly one page" check with a reused inflate stream: a page is
 * good only when the zlib stream ends (adler32 checked) having produced exactly one page.
 *
 * Deno's node:zlib level 1 is a different deflate (bigger output, never byte-identical to makedumpfile), so
 * this is the codec to use whenever libz can be loaded; see registry.ts for the fallback.
 */
import { FLAG_ZLIB, type PageCodec } from "./codec.ts";
import {
  type CodecLibrary,
  cString,
  freeWhenCollected,
  loadCodecLibrary,
  type NativeLibraryOptions,
  pointerAt,
  requireLibrary,
  SizeCell,
} from "./ffiLib.ts";

/** Library names tried in order (Debian/Ubuntu/Fedora: libz.so.1). */
export const LIBZ_NAMES: readonly string[] = ["libz.so.1", "libz.so"];

const SYMBOLS = {
  zlibVersion: { parameters: [], result: "pointer" },
  compressBound: { parameters: ["usize"], result: "usize" },
  compress2: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  compress2_nb: {
    name: "compress2",
    parameters: ["buffer", "buffer", "buffer", "usize", "i32"],
    result: "i32",
    nonblocking: true,
  },
  uncompress: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "i32" },
  deflateInit_: { parameters: ["pointer", "i32", "buffer", "i32"], result: "i32" },
  deflateReset: { parameters: ["pointer"], result: "i32" },
  deflate: { parameters: ["pointer", "i32"], result: "i32" },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  deflate_nb: { name: "deflate", parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  deflateEnd: { parameters: ["pointer"], result: "i32" },
  inflateInit_: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  inflateReset: { parameters: ["pointer"], result: "i32" },
  inflate: { parameters: ["pointer", "i32"], result: "i32" },
  inflateEnd: { parameters: ["pointer"], result: "i32" },
} as const;

type ZlibLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_FINISH = 4;
/** makedumpfile's level: Z_BEST_SPEED. */
const ZLIB_LEVEL = 1;

/** struct z_stream_s on LP64 (x86_64, aarch64): field offsets and size. */
const ZS_NEXT_IN = 0;
const ZS_AVAIL_IN = 8;
const ZS_NEXT_OUT = 24;
const ZS_AVAIL_OUT = 32;
const ZS_MSG = 48;
const Z_STREAM_SIZE = 112;

/** Loads libz; returns the symbols and version, or the reason it cannot be used. */
export function loadLibz(names: readonly string[] = LIBZ_NAMES): CodecLibrary<typeof SYMBOLS> {
  return loadCodecLibrary("zlib", names, SYMBOLS, (lib) => {
    const version = cString(lib.zlibVersion());
    return version.startsWith("1.") ? { version } : { reason: `unsupported zlib version ${version}` };
  });
}

/**
 * Ends both z_streams of a collected codec. `streams` (the memory they live in) is held here, so it outlives
 * the codec; the function is built outside the class so that it holds no reference to the codec.
 */
function endStreams(
  lib: ZlibLib,
  streams: Uint8Array,
  def: Deno.PointerObject,
  inf: Deno.PointerObject,
): () => void {
  return () => {
    lib.deflateEnd(def);
    lib.inflateEnd(inf);
    void streams;
  };
}

/** Options of NativeZlibCodec. */
export interface NativeZlibOptions extends NativeLibraryOptions {
  /** Compress with compress2() per page (makedumpfile's exact call) instead of a reused stream. */
  perPageCompress2?: boolean;
}

/**
 * PageCodec over libz. Not re-entrant (one instance per worker / reader). The constructor throws an Error
 * saying why when libz cannot be loaded; use `loadLibz` to probe.
 */
export class NativeZlibCodec implements PageCodec {
  readonly name = "zlib";
  readonly flag = FLAG_ZLIB;
  readonly engine = "libz";
  /** e.g. "libz 1.2.13 (FFI)". */
  readonly impl: string;
  readonly #lib: ZlibLib;
  readonly #perPage: boolean;
  /** Both z_streams (deflate at 0, inflate at 128); never reallocated: zlib keeps a pointer to them. */
  readonly #streams = new Uint8Array(new ArrayBuffer(256));
  readonly #sv = new DataView(this.#streams.buffer);
  readonly #def: Deno.PointerObject;
  readonly #inf: Deno.PointerObject;
  /** Work buffer: input page | output (bound) | compress2 length word. */
  #work = new Uint8Array(new ArrayBuffer(0));
  #pageSize = 0;
  #outCap = 0;
  #inPtr = 0n;
  #outPtr = 0n;
  #inView = new Uint8Array(0);
  #outView = new Uint8Array(0);
  readonly #len = new SizeCell();

  constructor(pageSize = 4096, opts: NativeZlibOptions = {}) {
    const l = requireLibrary("libz", loadLibz(opts.libraryNames));
    this.#lib = l.lib;
    this.impl = `libz ${l.version} (FFI)`;
    this.#perPage = !!opts.perPageCompress2;
    this.#def = pointerAt(this.#streams, 0);
    this.#inf = pointerAt(this.#streams, 128);
    const ver = new TextEncoder().encode(`${l.version}\0`);
    let rc = this.#lib.deflateInit_(this.#def, ZLIB_LEVEL, ver, Z_STREAM_SIZE);
    if (rc !== Z_OK) throw new Error(`deflateInit failed: ${rc}`);
    rc = this.#lib.inflateInit_(this.#inf, ver, Z_STREAM_SIZE);
    if (rc !== Z_OK) {
      this.#lib.deflateEnd(this.#def);
      throw new Error(`inflateInit failed: ${rc}`);
    }
    freeWhenCollected(this, endStreams(this.#lib, this.#streams, this.#def, this.#inf));
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#outCap = Number(this.#lib.compressBound(BigInt(n)));
    this.#work = new Uint8Array(new ArrayBuffer(n + this.#outCap));
    this.#inView = this.#work.subarray(0, n);
    this.#outView = this.#work.subarray(n, n + this.#outCap);
    this.#inPtr = BigInt(Deno.UnsafePointer.value(pointerAt(this.#work, 0)));
    this.#outPtr = BigInt(Deno.UnsafePointer.value(pointerAt(this.#work, n)));
  }

  /** Last zlib message of a stream (for errors). */
  #msg(at: number): string {
    return cString(Deno.UnsafePointer.create(this.#sv.getBigUint64(at + ZS_MSG, true)));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const n = this.#prepare(page);
    const lib = this.#lib;
    if (this.#perPage) {
      return this.#compress2Result(
        n,
        lib.compress2(this.#outView, this.#len.bytes, this.#inView, BigInt(n), ZLIB_LEVEL),
      );
    }
    return this.#deflateResult(n, lib.deflate(this.#def, Z_FINISH));
  }

  async compressAsync(page: Uint8Array): Promise<Uint8Array | null> {
    const n = this.#prepare(page);
    const lib = this.#lib;
    if (this.#perPage) {
      const rc = await lib.compress2_nb(this.#outView, this.#len.bytes, this.#inView, BigInt(n), ZLIB_LEVEL);
      return this.#compress2Result(n, rc);
    }
    return this.#deflateResult(n, await lib.deflate_nb(this.#def, Z_FINISH));
  }

  /** Copies the page in and sets up compress2's length or the reset deflate stream; returns the page size. */
  #prepare(page: Uint8Array): number {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    this.#inView.set(page);
    if (this.#perPage) {
      this.#len.word[0] = BigInt(this.#outCap);
      return n;
    }
    const sv = this.#sv;
    const rc = this.#lib.deflateReset(this.#def);
    if (rc !== Z_OK) throw new Error(`deflateReset failed: ${rc} ${this.#msg(0)}`);
    sv.setBigUint64(ZS_NEXT_IN, this.#inPtr, true);
    sv.setUint32(ZS_AVAIL_IN, n, true);
    sv.setBigUint64(ZS_NEXT_OUT, this.#outPtr, true);
    sv.setUint32(ZS_AVAIL_OUT, this.#outCap, true);
    return n;
  }

  #compress2Result(n: number, rc: number): Uint8Array | null {
    if (rc !== Z_OK) throw new Error(`compress2 failed: ${rc}`);
    const len = Number(this.#len.word[0]);
    return len < n ? this.#outView.subarray(0, len) : null;
  }

  #deflateResult(n: number, rc: number): Uint8Array | null {
    // the output buffer holds compressBound(n) bytes, so one deflate(Z_FINISH) always completes
    if (rc !== Z_STREAM_END) throw new Error(`deflate failed: ${rc} ${this.#msg(0)}`);
    const len = this.#outCap - this.#sv.getUint32(ZS_AVAIL_OUT, true);
    return len < n ? this.#outView.subarray(0, len) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    const n = out.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    // stored data never exceeds a page (crash rejects such descriptors before decoding)
    if (data.length === 0 || data.length > this.#outCap) return false;
    const src = this.#outView;
    src.set(data);
    const sv = this.#sv;
    if (this.#lib.inflateReset(this.#inf) !== Z_OK) return false;
    sv.setBigUint64(128 + ZS_NEXT_IN, this.#outPtr, true);
    sv.setUint32(128 + ZS_AVAIL_IN, data.length, true);
    sv.setBigUint64(128 + ZS_NEXT_OUT, this.#inPtr, true);
    sv.setUint32(128 + ZS_AVAIL_OUT, n, true);
    const rc = this.#lib.inflate(this.#inf, Z_FINISH);
    // as uncompress(): Z_OK only at the end of the stream; then exactly one page
    if (rc !== Z_STREAM_END || sv.getUint32(128 + ZS_AVAIL_OUT, true) !== 0) return false;
    out.set(this.#inView);
    return true;
  }

  /** uncompress() itself (crash's call), for tests: bytes produced, or -1 unless it returns Z_OK. */
  uncompress(data: Uint8Array, out: Uint8Array<ArrayBuffer>): number {
    this.#len.word[0] = BigInt(out.length);
    const rc = this.#lib.uncompress(out, this.#len.bytes, new Uint8Array(data), BigInt(data.length));
    return rc === Z_OK ? Number(this.#len.word[0]) : -1;
  }
}
