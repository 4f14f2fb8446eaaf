/**
 * LZO page codec (descriptor flag 0x2) over the system liblzo2 (liblzo2.so.2, Debian liblzo2-2) through Deno
 * FFI (needs --allow-ffi): makedumpfile's `lzo1x_1_compress(page, page_size, out, &len, wrkmem)` and crash's
 * `lzo1x_decompress_safe(data, size, page, &len, NULL)` + "LZO_E_OK and exactly one page".
 *
 * The bytes are the same as the TypeScript port's (lzo.ts, a port of the same LZO1X-1), and so are the
 * streams each accepts; this engine is several times faster and is registry.ts's first choice for -l.
 *
 * lzo_init() is a header macro: `__lzo_init_v2(LZO_VERSION, sizeof(short), sizeof(int), sizeof(long),
 * sizeof(lzo_uint32_t), sizeof(lzo_uint), lzo_sizeof_dict_t, sizeof(char *), sizeof(lzo_voidp),
 * sizeof(lzo_callback_t))`, called here with the LP64 sizes (x86_64, aarch64; checked against lzoconf.h 2.10
 * compiled with gcc: lzo_callback_t is 48 bytes, lzo_sizeof_dict_t 8). The work memory is
 * LZO1X_1_MEM_COMPRESS = 16384 * lzo_sizeof_dict_t = 131072 bytes.
 */
import { FLAG_LZO, type PageCodec } from "./codec.ts";
import {
  type CodecLibrary,
  cString,
  ffiInput,
  loadCodecLibrary,
  type NativeLibraryOptions,
  PrefixViews,
  requireLibrary,
  SizeCell,
} from "./ffiLib.ts";
import { lzoCompressBound } from "./lzo.ts";

/** Library names tried in order. */
export const LIBLZO2_NAMES: readonly string[] = ["liblzo2.so.2", "liblzo2.so"];

const SYMBOLS = {
  __lzo_init_v2: {
    parameters: ["u32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lzo_version: { parameters: [], result: "u32" },
  lzo_version_string: { parameters: [], result: "pointer" },
  lzo1x_1_compress: { parameters: ["buffer", "usize", "buffer", "buffer", "buffer"], result: "i32" },
  /** The same function, run on Deno's blocking thread pool (--num-threads lanes). */
  lzo1x_1_compress_nb: {
    name: "lzo1x_1_compress",
    parameters: ["buffer", "usize", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  lzo1x_decompress_safe: { parameters: ["buffer", "usize", "buffer", "buffer", "pointer"], result: "i32" },
} as const;

type LzoLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const LZO_E_OK = 0;
/** LZO1X_1_MEM_COMPRESS on LP64: 16384 * sizeof(lzo_bytep). */
export const LZO1X_1_MEM_COMPRESS = 16384 * 8;
/** The LP64 sizes lzo_init() passes (see the module comment). */
const LZO_INIT_SIZES = [2, 4, 8, 4, 8, 8, 8, 8, 48] as const;

/** Loads liblzo2 and runs lzo_init(); returns the symbols and version, or the reason it cannot be used. */
export function loadLiblzo2(names: readonly string[] = LIBLZO2_NAMES): CodecLibrary<typeof SYMBOLS> {
  return loadCodecLibrary("lzo", names, SYMBOLS, (s) => {
    const v = s.lzo_version();
    // LZO1X-1's format and lzo_init's argument list are those of the 2.x series
    if (v < 0x2000) return { reason: `liblzo2 0x${v.toString(16)} is too old` };
    const rc = s.__lzo_init_v2(v, ...LZO_INIT_SIZES);
    if (rc !== LZO_E_OK) return { reason: `lzo_init() failed (${rc})` };
    return { version: cString(s.lzo_version_string(), 32) };
  });
}

/** Options of NativeLzoCodec. */
export type NativeLzoOptions = NativeLibraryOptions;

/**
 * PageCodec over liblzo2. Not re-entrant (one instance per worker / reader: it owns its work memory). The
 * constructor throws an Error saying why when liblzo2 cannot be loaded.
 */
export class NativeLzoCodec implements PageCodec {
  readonly name = "lzo";
  readonly flag = FLAG_LZO;
  readonly engine = "liblzo2";
  /** e.g. "liblzo2 2.10 (FFI)". */
  readonly impl: string;
  readonly #lib: LzoLib;
  readonly #wrk = new Uint8Array(new ArrayBuffer(LZO1X_1_MEM_COMPRESS));
  /** lzo_uint *dst_len (in: capacity for decompression; out: length). */
  readonly #len = new SizeCell();
  #pageSize = 0;
  #pageBig = 0n;
  #in = new Uint8Array(new ArrayBuffer(0));
  #out = new Uint8Array(new ArrayBuffer(0));
  #outPrefix = new PrefixViews(this.#out);

  constructor(pageSize = 4096, opts: NativeLzoOptions = {}) {
    const { lib, version } = requireLibrary("liblzo2", loadLiblzo2(opts.libraryNames));
    this.#lib = lib;
    this.impl = `liblzo2 ${version} (FFI)`;
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#pageBig = BigInt(n);
    const bound = lzoCompressBound(n);
    this.#in = new Uint8Array(new ArrayBuffer(bound));
    this.#out = new Uint8Array(new ArrayBuffer(bound));
    this.#outPrefix = new PrefixViews(this.#out);
  }

  compress(page: Uint8Array): Uint8Array | null {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    return this.#result(
      n,
      this.#lib.lzo1x_1_compress(src, this.#pageBig, this.#out, this.#len.bytes, this.#wrk),
    );
  }

  async compressAsync(page: Uint8Array): Promise<Uint8Array | null> {
    const n = page.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    const src = ffiInput(page, this.#in);
    const lib = this.#lib;
    return this.#result(
      n,
      await lib.lzo1x_1_compress_nb(src, this.#pageBig, this.#out, this.#len.bytes, this.#wrk),
    );
  }

  #result(n: number, rc: number): Uint8Array | null {
    if (rc !== LZO_E_OK) throw new Error(`lzo1x_1_compress failed (${rc})`);
    const len = Number(this.#len.word[0]);
    return len < n ? this.#outPrefix.get(len) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    const n = out.length;
    if (n !== this.#pageSize) this.#setPageSize(n);
    if (data.length > this.#in.length) this.#in = new Uint8Array(new ArrayBuffer(data.length));
    const src = this.#in.subarray(0, data.length);
    src.set(data);
    const dst = this.#out.subarray(0, n);
    this.#len.word[0] = this.#pageBig;
    const rc = this.#lib.lzo1x_decompress_safe(src, BigInt(data.length), dst, this.#len.bytes, null);
    if (rc !== LZO_E_OK || this.#len.word[0] !== this.#pageBig) return false;
    out.set(dst);
    return true;
  }
}
