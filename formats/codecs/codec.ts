import type { EngineName } from "./engines.ts";

/** Per-page compression, as stored in kdump page descriptors (flags field) and header status. */
export interface PageCodec {
  /** Name used in messages: zlib, lzo, snappy, zstd. */
  readonly name: string;
  /** Descriptor flag / header status bit: 0x1 zlib, 0x2 lzo, 0x4 snappy, 0x20 zstd. */
  readonly flag: number;
  /**
   * Which implementation this is, for messages: "libz 1.2.13 (FFI)", "node:zlib", "libzstd 1.5.4 (FFI)",
   * "vmsift (TypeScript)", "libdeflate (FFI)".
   */
  readonly impl: string;
  /**
   * The registry engine this is (engines.ts: "libdeflate", "libz", "node", "liblzo2", "builtin", ...), so that
   * codec workers can make the same one. Absent on ad-hoc codecs (tests); workers then use "builtin".
   */
  readonly engine?: EngineName;
  /**
   * Compress one page. Returns the compressed bytes when strictly smaller than the page, else null (the
   * caller stores the page raw). The returned array may be reused by the next call: copy or write it first.
   */
  compress(page: Uint8Array): Uint8Array | null;
  /**
   * {@link compress} with the library call run off the JavaScript thread (a Deno FFI `nonblocking` call, on
   * Deno's blocking thread pool): the same bytes. Only the FFI engines have it (the `--num-threads` lanes,
   * formats/kdump/codecLanes.ts). One call at a time per instance; `page` must stay untouched until it settles.
   */
  compressAsync?(page: Uint8Array): Promise<Uint8Array | null>;
  /** Decompress into `out` (exactly one page); returns false when the data is corrupt or not page-sized. */
  decompress(data: Uint8Array, out: Uint8Array): boolean;
}

export const FLAG_ZLIB = 0x1;
export const FLAG_LZO = 0x2;
export const FLAG_SNAPPY = 0x4;
export const FLAG_ZSTD = 0x20;
