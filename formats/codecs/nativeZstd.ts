/**
 * zstd page codec (descriptor flag 0x20) over the system libzstd through Deno FFI (needs --allow-ffi):
 * makedumpfile's `ZSTD_compressCCtx(cctx, out, bound, page, page_size, 1)` with one context created once,
 * and crash's `ZSTD_decompressDCtx(dctx, page, block_size, data, size)` + "exactly one page" check.
 *
 * node:zlib's zstd creates a context per call (about half the speed); registry.ts prefers this codec when
 * libzstd loads. Like the node:zlib codec, decoding accepts exactly one standard frame and nothing else
 * (makedumpfile writes one frame per page), so both implementations accept the same inputs.
 */
import { FLAG_ZSTD, type PageCodec } from "./codec.ts";
import {
  allocPair,
  type CodecLibrary,
  freeWhenCollected,
  loadCodecLibrary,
  type NativeLibraryOptions,
  requireLibrary,
} from "./ffiLib.ts";
import { ZSTD_LEVEL, zstdFrameLength } from "./zstd.ts";

/** Library names tried in order. */
export const LIBZSTD_NAMES: readonly string[] = ["libzstd.so.1", "libzstd.so"];

const SYMBOLS = {
  ZSTD_versionString: { parameters: [], result: "pointer" },
  ZSTD_versionNumber: { parameters: [], result: "u32" },
  ZSTD_compressBound: { parameters: ["usize"], result: "usize" },
  ZSTD_createCCtx: { parameters: [], result: "pointer" },
  ZSTD_freeCCtx: { parameters: ["pointer"], result: "usize" },
  ZSTD_compressCCtx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32"],
    result: "usize",
  },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  ZSTD_compressCCtx_nb: {
    name: "ZSTD_compressCCtx",
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32"],
    result: "usize",
    nonblocking: true,
  },
  ZSTD_createDCtx: { parameters: [], result: "pointer" },
  ZSTD_freeDCtx: { parameters: ["pointer"], result: "usize" },
  ZSTD_decompressDCtx: { parameters: ["pointer", "buffer", "usize", "buffer", "usize"], result: "usize" },
} as const;

type ZstdLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Loads libzstd; returns the symbols and version, or the reason it cannot be used. */
export function loadLibzstd(names: readonly string[] = LIBZSTD_NAMES): CodecLibrary<typeof SYMBOLS> {
  return loadCodecLibrary("zstd", names, SYMBOLS, (lib) => {
    const v = lib.ZSTD_versionNumber();
    // ZSTD_compressCCtx / ZSTD_decompressDCtx are stable API since 1.0; frame format since 0.8
    if (v < 10000) return { reason: `libzstd ${v} is too old` };
    return { version: `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}` };
  });
}

/** Frees both contexts (built outside the class so that it holds no reference to the codec). */
function freeContexts(lib: ZstdLib, c: Deno.PointerObject, d: Deno.PointerObject): () => void {
  return () => {
    lib.ZSTD_freeCCtx(c);
    lib.ZSTD_freeDCtx(d);
  };
}

/** Options of NativeZstdCodec. */
export interface NativeZstdOptions extends NativeLibraryOptions {
  /** Compression level (makedumpfile: 1). */
  level?: number;
}

/**
 * PageCodec over libzstd with contexts reused across pages. Not re-entrant (one instance per worker /
 * reader). The constructor throws an Error saying why when libzstd cannot be loaded.
 */
export class NativeZstdCodec implements PageCodec {
  readonly name = "zstd";
  readonly flag = FLAG_ZSTD;
  readonly engine = "libzstd";
  /** e.g. "libzstd 1.5.4 (FFI)". */
  readonly impl: string;
  readonly #lib: ZstdLib;
  readonly #level: number;
  readonly #cctx: Deno.PointerObject;
  readonly #dctx: Deno.PointerObject;
  #pageSize = 0;
  #cap = 0;
  #capBig = 0n;
  #sizeBig = 0n;
  #in = new Uint8Array(new ArrayBuffer(0));
  #out = new Uint8Array(new ArrayBuffer(0));

  constructor(pageSize = 4096, opts: NativeZstdOptions = {}) {
    const { lib, version } = requireLibrary("libzstd", loadLibzstd(opts.libraryNames));
    this.#lib = lib;
    this.impl = `libzstd ${version} (FFI)`;
    this.#level = opts.level ?? ZSTD_LEVEL;
    const [c, d] = allocPair(
      "ZSTD_createCCtx/ZSTD_createDCtx",
      () => lib.ZSTD_createCCtx(),
      () => lib.ZSTD_createDCtx(),
      (c) => lib.ZSTD_freeCCtx(c),
      (d) => lib.ZSTD_freeDCtx(d),
    );
    this.#cctx = c;
    this.#dctx = d;
    freeWhenCollected(this, freeContexts(lib, c, d));
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#capBig = BigInt(this.#lib.ZSTD_compressBound(BigInt(n)));
    this.#cap = Number(this.#capBig);
    this.#sizeBig = BigInt(n);
    this.#in = new Uint8Array(new ArrayBuffer(Math.max(n, this.#cap)));
    this.#out = new Uint8Array(new ArrayBuffer(this.#cap));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    this.#in.set(page);
    const lib = this.#lib;
    return this.#result(
      n,
      lib.ZSTD_compressCCtx(this.#cctx, this.#out, this.#capBig, this.#in, this.#sizeBig, this.#level),
    );
  }

  async compressAsync(page: Uint8Array): Promise<Uint8Array | null> {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    this.#in.set(page);
    const lib = this.#lib;
    return this.#result(
      n,
      await lib.ZSTD_compressCCtx_nb(
        this.#cctx,
        this.#out,
        this.#capBig,
        this.#in,
        this.#sizeBig,
        this.#level,
      ),
    );
  }

  #result(n: number, r: number | bigint): Uint8Array | null {
    // error codes are (size_t)-code, far above the bound
    const len = Number(r);
    if (len > this.#cap) throw new Error(`ZSTD_compressCCtx failed (${r})`);
    return len < n ? this.#out.subarray(0, len) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    const n = out.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    if (data.length > this.#in.length || zstdFrameLength(data) !== data.length) return false;
    this.#in.set(data);
    const r = this.#lib.ZSTD_decompressDCtx(
      this.#dctx,
      this.#out,
      this.#sizeBig,
      this.#in,
      BigInt(data.length),
    );
    if (Number(r) !== n) return false;
    out.set(this.#out.subarray(0, n));
    return true;
  }
}
