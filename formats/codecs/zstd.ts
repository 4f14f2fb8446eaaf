/**
 * zstd page codec (descriptor flag 0x20): one standard zstd frame per page at level 1, as makedumpfile's
 * `ZSTD_compressCCtx(ctx, ..., 1)`; crash decodes with `ZSTD_decompressDCtx` into a page-sized buffer and
 * libkdumpfile with `ZSTD_decompress`, both requiring exactly one page of output.
 *
 * Uses node:zlib's zstd (libzstd inside Deno). The source size is pledged, so each frame is single-segment
 * with the content size in its header and no checksum, like ZSTD_compressCCtx output.
 */
import type * as NodeZlib from "node:zlib";
import { nodeZlib } from "./nodeZlib.ts";
import { FLAG_ZSTD, type PageCodec } from "./codec.ts";

/** zstd compression level used by makedumpfile -z. */
export const ZSTD_LEVEL = 1;

/** node:zlib accepts `pledgedSrcSize` (Node 23.8+, Deno 2.9) although the bundled typings lack it. */
type ZstdCompressOptions = NodeZlib.ZstdOptions & { pledgedSrcSize?: number };

/** Stateless apart from cached options; node:zlib allocates per call (measured in bench/codecs.ts). */
export class ZstdCodec implements PageCodec {
  readonly name = "zstd";
  readonly flag = FLAG_ZSTD;
  readonly engine = "node";
  readonly impl = "node:zlib";
  #level: number;
  #pageSize = -1;
  #compressOpts: ZstdCompressOptions = {};
  #decompressOpts: NodeZlib.ZstdOptions = {};

  constructor(pageSize = 4096, level = ZSTD_LEVEL) {
    this.#level = level;
    this.#setPageSize(pageSize);
  }

  #setPageSize(n: number): void {
    this.#pageSize = n;
    this.#compressOpts = {
      pledgedSrcSize: n,
      params: {
        [nodeZlib().constants.ZSTD_c_compressionLevel]: this.#level,
        [nodeZlib().constants.ZSTD_c_checksumFlag]: 0,
        [nodeZlib().constants.ZSTD_c_contentSizeFlag]: 1,
      },
    };
    this.#decompressOpts = { maxOutputLength: n };
  }

  compress(page: Uint8Array): Uint8Array | null {
    if (page.length !== this.#pageSize) this.#setPageSize(page.length);
    const c = nodeZlib().zstdCompressSync(page, this.#compressOpts);
    // a plain Uint8Array view: Buffer#slice would share memory where callers expect a copy
    return c.length < page.length ? new Uint8Array(c.buffer, c.byteOffset, c.length) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    if (out.length !== this.#pageSize) this.#setPageSize(out.length);
    // exactly one frame, nothing after it (node:zlib would decode concatenated frames or ignore trailing
    // bytes where ZSTD_decompressDCtx into one page fails); truncated frames give short output below
    if (zstdFrameLength(data) !== data.length) return false;
    let d: Uint8Array;
    try {
      d = nodeZlib().zstdDecompressSync(data, this.#decompressOpts);
    } catch {
      return false;
    }
    if (d.length !== out.length) return false;
    out.set(d);
    return true;
  }
}

/**
 * Length of the zstd frame at the start of `data` from its header and block headers (without decoding),
 * or -1 when it is not a well-formed standard frame or extends past the end of `data`.
 */
export function zstdFrameLength(data: Uint8Array): number {
  const n = data.length;
  if (n < 6 || data[0] !== 0x28 || data[1] !== 0xb5 || data[2] !== 0x2f || data[3] !== 0xfd) return -1;
  const fhd = data[4];
  if (fhd & 0x08) return -1; // reserved bit
  const single = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  const fcsBytes = fcsFlag === 0 ? (single ? 1 : 0) : 1 << fcsFlag;
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  let p = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
  for (;;) {
    if (n - p < 3) return -1;
    const bh = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
    p += 3;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) return -1;
    p += type === 1 ? 1 : size;
    if (p > n) return -1;
    if (bh & 1) break;
  }
  if (fhd & 0x04) p += 4;
  return p <= n ? p : -1;
}
