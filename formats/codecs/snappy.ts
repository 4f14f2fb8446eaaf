/**
 * Snappy page codec (descriptor flag 0x4): the raw snappy block format (varint uncompressed length, then
 * literal/copy elements), as written by makedumpfile's `snappy_compress` and read by crash with
 * `snappy_uncompressed_length` + `snappy_uncompress`. Not the framing format.
 *
 * The compressor is the classic snappy algorithm (hash of 4-byte words, skip heuristic, 64 KiB blocks, the
 * element choices of libsnappy's EmitLiteral/EmitCopy); its output is valid snappy but not necessarily
 * byte-identical to libsnappy's. The decompressor applies libsnappy's checks: declared length equal to the
 * page size, copy offsets in 1..bytes produced, no overrun, input consumed exactly.
 */
import { FLAG_SNAPPY, type PageCodec } from "./codec.ts";

const BLOCK_SIZE = 1 << 16;
const MAX_TABLE_BITS = 14;
const INPUT_MARGIN = 15;
const MIN_NON_LITERAL_BLOCK = 1 + 1 + INPUT_MARGIN;
const HASH_MUL = 0x1e35a7bd;

/** Worst-case snappy output size for `n` input bytes (snappy::MaxCompressedLength). */
export function snappyCompressBound(n: number): number {
  return 32 + n + Math.floor(n / 6);
}

function le32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

/** Reusable snappy compressor/decompressor state. Not re-entrant: one instance per worker. */
export class SnappyCodec implements PageCodec {
  readonly name = "snappy";
  readonly flag = FLAG_SNAPPY;
  readonly engine = "builtin";
  readonly impl = "vmsift (TypeScript)";
  #table = new Uint16Array(1 << MAX_TABLE_BITS);
  #out: Uint8Array;
  #view: DataView | null = null;

  constructor(pageSize = 4096) {
    this.#out = new Uint8Array(snappyCompressBound(pageSize));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const bound = snappyCompressBound(page.length);
    if (this.#out.length < bound) this.#out = new Uint8Array(bound);
    const n = snappyCompress(page, this.#out, this.#table, this.#viewOf(page));
    return n < page.length ? this.#out.subarray(0, n) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    return snappyDecompress(data, out) === out.length;
  }

  /** A DataView over `page`, reused while callers pass the same (slot of a) buffer. */
  #viewOf(page: Uint8Array): DataView {
    const v = this.#view;
    if (v && v.buffer === page.buffer && v.byteOffset === page.byteOffset && v.byteLength === page.length) {
      return v;
    }
    return this.#view = new DataView(page.buffer, page.byteOffset, page.length);
  }
}

function emitLiteral(dst: Uint8Array, op: number, src: Uint8Array, start: number, end: number): number {
  const n = end - start - 1;
  if (n < 60) {
    dst[op++] = n << 2;
  } else if (n < 0x100) {
    dst[op++] = 60 << 2;
    dst[op++] = n;
  } else if (n < 0x10000) {
    dst[op++] = 61 << 2;
    dst[op++] = n & 0xff;
    dst[op++] = n >>> 8;
  } else {
    dst[op++] = 62 << 2;
    dst[op++] = n & 0xff;
    dst[op++] = (n >>> 8) & 0xff;
    dst[op++] = n >>> 16;
  }
  if (end - start <= 16) {
    for (let i = start; i < end; i++) dst[op++] = src[i];
  } else {
    dst.set(src.subarray(start, end), op);
    op += end - start;
  }
  return op;
}

function emitCopy2(dst: Uint8Array, op: number, offset: number, len: number): number {
  dst[op++] = ((len - 1) << 2) | 2;
  dst[op++] = offset & 0xff;
  dst[op++] = offset >>> 8;
  return op;
}

/** Copy element(s) for a match of `len` (>= 4) bytes at distance `offset` (1..65535). */
function emitCopy(dst: Uint8Array, op: number, offset: number, len: number): number {
  while (len >= 68) {
    op = emitCopy2(dst, op, offset, 64);
    len -= 64;
  }
  if (len > 64) {
    op = emitCopy2(dst, op, offset, 60);
    len -= 60;
  }
  if (len >= 12 || offset >= 2048) return emitCopy2(dst, op, offset, len);
  dst[op++] = ((offset >>> 8) << 5) | ((len - 4) << 2) | 1;
  dst[op++] = offset & 0xff;
  return op;
}

/** Compress one block (<= 64 KiB) of `src` [start, end) at `op`; returns the new output position. */
function compressBlock(
  src: Uint8Array,
  dv: DataView,
  start: number,
  end: number,
  dst: Uint8Array,
  op: number,
  table: Uint16Array,
): number {
  const len = end - start;
  if (len < MIN_NON_LITERAL_BLOCK) return len > 0 ? emitLiteral(dst, op, src, start, end) : op;
  let tableSize = 256;
  let shift = 32 - 8;
  while (tableSize < table.length && tableSize < len) {
    tableSize <<= 1;
    shift--;
  }
  table.fill(0, 0, tableSize);
  const sLimit = end - INPUT_MARGIN;
  let nextEmit = start;
  let s = start + 1;
  let nextHash = Math.imul(dv.getUint32(s, true), HASH_MUL) >>> shift;
  outer: for (;;) {
    // look for a 4-byte match, skipping faster through incompressible data
    let skip = 32;
    let nextS = s;
    let candidate = 0;
    do {
      s = nextS;
      const step = skip >>> 5;
      nextS = s + step;
      skip += step;
      if (nextS > sLimit) break outer;
      candidate = start + table[nextHash];
      table[nextHash] = s - start;
      nextHash = Math.imul(dv.getUint32(nextS, true), HASH_MUL) >>> shift;
    } while (dv.getUint32(s, true) !== dv.getUint32(candidate, true));

    op = emitLiteral(dst, op, src, nextEmit, s);

    // emit copies for as long as the next position also matches
    for (;;) {
      const base = s;
      s += 4;
      let i = candidate + 4;
      for (;;) {
        if (s + 4 > end) {
          while (s < end && src[i] === src[s]) {
            i++;
            s++;
          }
          break;
        }
        const x = dv.getUint32(s, true) ^ dv.getUint32(i, true);
        if (x !== 0) {
          s += (31 - Math.clz32(x & -x)) >> 3;
          break;
        }
        s += 4;
        i += 4;
      }
      op = emitCopy(dst, op, base - candidate, s - base);
      nextEmit = s;
      if (s >= sLimit) break outer;
      const prevHash = Math.imul(dv.getUint32(s - 1, true), HASH_MUL) >>> shift;
      table[prevHash] = s - 1 - start;
      const cur = dv.getUint32(s, true);
      const currHash = Math.imul(cur, HASH_MUL) >>> shift;
      candidate = start + table[currHash];
      table[currHash] = s - start;
      if (cur !== dv.getUint32(candidate, true)) {
        nextHash = Math.imul(dv.getUint32(s + 1, true), HASH_MUL) >>> shift;
        s++;
        break;
      }
    }
  }
  if (nextEmit < end) op = emitLiteral(dst, op, src, nextEmit, end);
  return op;
}

/**
 * Snappy compression of `src` into `dst` (at least `snappyCompressBound(src.length)` bytes) using `table`
 * (16384 entries) as work memory; `view` is a DataView over exactly `src`. Returns the compressed length.
 */
export function snappyCompress(
  src: Uint8Array,
  dst: Uint8Array,
  table: Uint16Array,
  view: DataView = new DataView(src.buffer, src.byteOffset, src.byteLength),
): number {
  let op = 0;
  let v = src.length;
  while (v >= 0x80) {
    dst[op++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  dst[op++] = v;
  for (let p = 0; p < src.length; p += BLOCK_SIZE) {
    op = compressBlock(src, view, p, Math.min(p + BLOCK_SIZE, src.length), dst, op, table);
  }
  return op;
}

/**
 * Snappy decompression into `out`. Returns the uncompressed length when `src` is a valid snappy block whose
 * declared length fits `out`, else -1. Never reads or writes outside `src`/`out`.
 */
function snappyDecompress(src: Uint8Array, out: Uint8Array): number {
  const ipEnd = src.length;
  let ip = 0;
  // varint32 preamble (at most 5 bytes, value < 2^32)
  let want = 0;
  for (let shift = 0;; shift += 7) {
    if (ip >= ipEnd || shift > 28) return -1;
    const c = src[ip++];
    if (shift === 28 && c > 15) return -1;
    want += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) break;
  }
  if (want > out.length) return -1;
  let op = 0;
  while (ip < ipEnd) {
    const tag = src[ip++];
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >>> 2) + 1;
      if (len > 60) {
        const extra = len - 60;
        if (ipEnd - ip < extra) return -1;
        len = 0;
        for (let k = extra - 1; k >= 0; k--) len = len * 256 + src[ip + k];
        len += 1;
        ip += extra;
      }
      if (ipEnd - ip < len || want - op < len) return -1;
      if (len <= 16) {
        for (let k = 0; k < len; k++) out[op++] = src[ip++];
      } else {
        out.set(src.subarray(ip, ip + len), op);
        ip += len;
        op += len;
      }
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      if (ip >= ipEnd) return -1;
      len = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | src[ip++];
    } else if (kind === 2) {
      if (ipEnd - ip < 2) return -1;
      len = (tag >>> 2) + 1;
      offset = src[ip] | (src[ip + 1] << 8);
      ip += 2;
    } else {
      if (ipEnd - ip < 4) return -1;
      len = (tag >>> 2) + 1;
      offset = le32(src, ip);
      ip += 4;
    }
    if (offset === 0 || offset > op || want - op < len) return -1;
    let m = op - offset;
    if (offset >= len) {
      if (len <= 16) {
        for (let k = 0; k < len; k++) out[op++] = out[m++];
      } else {
        out.copyWithin(op, m, m + len);
        op += len;
      }
    } else {
      for (let k = 0; k < len; k++) out[op++] = out[m++];
    }
  }
  return op === want ? op : -1;
}
