/**
 * LZO1X page codec (descriptor flag 0x2): a raw LZO1X stream without header, as written by makedumpfile's
 * `lzo1x_1_compress` and read by crash with `lzo1x_decompress_safe`.
 *
 * The compressor is a port of liblzo2's LZO1X-1 (D_BITS 14, multiplicative hash, 8-byte match extension as
 * on 64-bit little-endian builds), so for a page it emits the same bytes as the system library. The
 * decompressor mirrors `lzo1x_decompress_safe`, including its input/output/look-behind checks: it accepts a
 * stream exactly when liblzo2 returns LZO_E_OK with the page size as output length.
 */
import { FLAG_LZO, type PageCodec } from "./codec.ts";

const D_BITS = 14;
const D_SIZE = 1 << D_BITS;
const D_MASK = D_SIZE - 1;
const M2_MAX_LEN = 8;
const M2_MAX_OFFSET = 0x0800;
const M3_MAX_LEN = 33;
const M3_MAX_OFFSET = 0x4000;
const M4_MAX_LEN = 9;
const M4_MAX_OFFSET = 0xbfff;
const M3_MARKER = 32;
const M4_MARKER = 16;

/** Worst-case LZO1X-1 output size for `n` input bytes (lzo docs: n + n/16 + 64 + 3). */
export function lzoCompressBound(n: number): number {
  return n + (n >>> 4) + 64 + 3;
}

/**
 * Reusable LZO1X-1 compressor/decompressor state. Not re-entrant: one instance per worker.
 */
export class LzoCodec implements PageCodec {
  readonly name = "lzo";
  readonly flag = FLAG_LZO;
  readonly engine = "builtin";
  readonly impl = "vmsift (TypeScript)";
  /** Hash table of input offsets (liblzo2's lzo_dict_t array, cleared per 48 KiB block). */
  #dict = new Uint16Array(D_SIZE);
  #out: Uint8Array;
  #view: DataView | null = null;

  constructor(pageSize = 4096) {
    this.#out = new Uint8Array(lzoCompressBound(pageSize));
  }

  compress(page: Uint8Array): Uint8Array | null {
    const bound = lzoCompressBound(page.length);
    if (this.#out.length < bound) this.#out = new Uint8Array(bound);
    const n = lzo1xCompress(page, this.#out, this.#dict, this.#viewOf(page));
    return n < page.length ? this.#out.subarray(0, n) : null;
  }

  decompress(data: Uint8Array, out: Uint8Array): boolean {
    return lzo1xDecompressSafe(data, out) === out.length;
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

/**
 * One block of LZO1X-1 (liblzo2 lzo1x_1_do_compress); `ti` literals before `start` are still pending.
 * Returns the new output position; the number of literals left pending at the end goes to `state[0]`.
 */
function doCompress(
  src: Uint8Array,
  dv32: DataView,
  start: number,
  len: number,
  dst: Uint8Array,
  op: number,
  ti: number,
  dict: Uint16Array,
  state: Int32Array,
): number {
  const inEnd = start + len;
  const ipEnd = inEnd - 20;
  let ip = start;
  let ii = ip;
  ip += ti < 4 ? 4 - ti : 0;
  // liblzo2's "literal:" step: skip ahead faster the longer the current literal run is
  ip += 1 + ((ip - ii) >> 5);
  for (;;) {
    // "next:"
    if (ip >= ipEnd) break;
    const dv = dv32.getUint32(ip, true);
    const h = (Math.imul(dv, 0x1824429d) >>> (32 - D_BITS)) & D_MASK;
    const mPos = start + dict[h];
    dict[h] = ip - start;
    if (dv !== dv32.getUint32(mPos, true)) {
      ip += 1 + ((ip - ii) >> 5);
      continue;
    }

    // emit the pending literal run [ii - ti, ip)
    ii -= ti;
    ti = 0;
    const t = ip - ii;
    if (t !== 0) {
      if (t <= 3) {
        dst[op - 2] |= t;
      } else if (t <= 18) {
        dst[op++] = t - 3;
      } else {
        let tt = t - 18;
        dst[op++] = 0;
        while (tt > 255) {
          tt -= 255;
          dst[op++] = 0;
        }
        dst[op++] = tt;
      }
      if (t <= 32) {
        for (let k = ii; k < ip; k++) dst[op++] = src[k];
      } else {
        dst.set(src.subarray(ii, ip), op);
        op += t;
      }
    }

    // match length: 8 bytes at a time, stopping once past ipEnd (as liblzo2's 64-bit build)
    let mLen = 4;
    for (;;) {
      const x0 = dv32.getUint32(ip + mLen, true) ^ dv32.getUint32(mPos + mLen, true);
      if (x0 !== 0) {
        mLen += (31 - Math.clz32(x0 & -x0)) >> 3;
        break;
      }
      const x1 = dv32.getUint32(ip + mLen + 4, true) ^ dv32.getUint32(mPos + mLen + 4, true);
      if (x1 !== 0) {
        mLen += 4 + ((31 - Math.clz32(x1 & -x1)) >> 3);
        break;
      }
      mLen += 8;
      if (ip + mLen >= ipEnd) break;
    }

    let mOff = ip - mPos;
    ip += mLen;
    ii = ip;
    if (mLen <= M2_MAX_LEN && mOff <= M2_MAX_OFFSET) {
      mOff -= 1;
      dst[op++] = ((mLen - 1) << 5) | ((mOff & 7) << 2);
      dst[op++] = mOff >>> 3;
    } else if (mOff <= M3_MAX_OFFSET) {
      mOff -= 1;
      if (mLen <= M3_MAX_LEN) {
        dst[op++] = M3_MARKER | (mLen - 2);
      } else {
        mLen -= M3_MAX_LEN;
        dst[op++] = M3_MARKER;
        while (mLen > 255) {
          mLen -= 255;
          dst[op++] = 0;
        }
        dst[op++] = mLen;
      }
      dst[op++] = (mOff << 2) & 0xff;
      dst[op++] = (mOff >>> 6) & 0xff;
    } else {
      mOff -= 0x4000;
      if (mLen <= M4_MAX_LEN) {
        dst[op++] = M4_MARKER | ((mOff >>> 11) & 8) | (mLen - 2);
      } else {
        mLen -= M4_MAX_LEN;
        dst[op++] = M4_MARKER | ((mOff >>> 11) & 8);
        while (mLen > 255) {
          mLen -= 255;
          dst[op++] = 0;
        }
        dst[op++] = mLen;
      }
      dst[op++] = (mOff << 2) & 0xff;
      dst[op++] = (mOff >>> 6) & 0xff;
    }
  }
  state[0] = inEnd - (ii - ti);
  return op;
}

const compressState = new Int32Array(1);

/**
 * LZO1X-1 compression of all of `src` into `dst` (at least `lzoCompressBound(src.length)` bytes) using
 * `dict` (16384 entries) as work memory; `view` is a DataView over exactly `src`. Returns the compressed
 * length.
 */
export function lzo1xCompress(
  src: Uint8Array,
  dst: Uint8Array,
  dict: Uint16Array,
  view: DataView = new DataView(src.buffer, src.byteOffset, src.byteLength),
): number {
  let ip = 0;
  let op = 0;
  let l = src.length;
  let t = 0;
  while (l > 20) {
    const ll = l <= M4_MAX_OFFSET + 1 ? l : M4_MAX_OFFSET + 1;
    dict.fill(0);
    op = doCompress(src, view, ip, ll, dst, op, t, dict, compressState);
    t = compressState[0];
    ip += ll;
    l -= ll;
  }
  t += l;
  if (t > 0) {
    let ii = src.length - t;
    if (op === 0 && t <= 238) {
      dst[op++] = 17 + t;
    } else if (t <= 3) {
      dst[op - 2] |= t;
    } else if (t <= 18) {
      dst[op++] = t - 3;
    } else {
      let tt = t - 18;
      dst[op++] = 0;
      while (tt > 255) {
        tt -= 255;
        dst[op++] = 0;
      }
      dst[op++] = tt;
    }
    while (t-- > 0) dst[op++] = src[ii++];
  }
  dst[op++] = M4_MARKER | 1;
  dst[op++] = 0;
  dst[op++] = 0;
  return op;
}

/**
 * LZO1X decompression with liblzo2's `lzo1x_decompress_safe` checks. Returns the number of bytes written
 * to `out` when the stream is valid (ends with the end marker exactly at the end of `src`), else -1.
 * Never reads or writes outside `src`/`out`.
 */
export function lzo1xDecompressSafe(src: Uint8Array, out: Uint8Array): number {
  const ipEnd = src.length;
  const opEnd = out.length;
  let ip = 0;
  let op = 0;
  let t = 0;
  let mPos = 0;
  // state: 0 = read instruction at top of loop, 1 = first_literal_run, 2 = match (t holds instruction),
  // 3 = match_next (t = 1..3 trailing literals)
  let state = 0;
  if (ipEnd < 1) return -1;
  if (src[0] > 17) {
    t = src[ip++] - 17;
    if (t < 4) {
      state = 3;
    } else {
      if (opEnd - op < t) return -1;
      if (ipEnd - ip < t + 3) return -1;
      out.set(src.subarray(ip, ip + t), op);
      op += t;
      ip += t;
      state = 1;
    }
  }
  for (;;) {
    if (state === 0) {
      if (ipEnd - ip < 3) return -1;
      t = src[ip++];
      if (t >= 16) {
        state = 2;
      } else {
        if (t === 0) {
          while (src[ip] === 0) {
            t += 255;
            ip++;
            if (ipEnd - ip < 1) return -1;
          }
          t += 15 + src[ip++];
        }
        t += 3;
        if (opEnd - op < t) return -1;
        if (ipEnd - ip < t + 3) return -1;
        if (t <= 32) {
          while (t-- > 0) out[op++] = src[ip++];
        } else {
          out.set(src.subarray(ip, ip + t), op);
          op += t;
          ip += t;
        }
        state = 1;
      }
      continue;
    }
    if (state === 1) {
      // first_literal_run: a short instruction here is a 3-byte match at distance 2049..3072
      t = src[ip++];
      if (t >= 16) {
        state = 2;
        continue;
      }
      mPos = op - (1 + M2_MAX_OFFSET) - (t >> 2) - (src[ip++] << 2);
      if (mPos < 0) return -1;
      if (opEnd - op < 3) return -1;
      out[op++] = out[mPos++];
      out[op++] = out[mPos++];
      out[op++] = out[mPos];
    } else if (state === 3) {
      // match_next: t (1..3) literals, then the next instruction
      if (opEnd - op < t) return -1;
      if (ipEnd - ip < t + 3) return -1;
      while (t-- > 0) out[op++] = src[ip++];
      t = src[ip++];
      state = 2;
      continue;
    } else {
      // state 2: match instruction in t
      if (t >= 64) {
        // M2
        mPos = op - 1 - ((t >> 2) & 7) - (src[ip++] << 3);
        t = (t >> 5) - 1;
        if (mPos < 0) return -1;
        if (opEnd - op < t + 2) return -1;
      } else if (t >= 32) {
        // M3
        t &= 31;
        if (t === 0) {
          while (src[ip] === 0) {
            t += 255;
            ip++;
            if (ipEnd - ip < 1) return -1;
          }
          t += 31 + src[ip++];
          if (ipEnd - ip < 2) return -1;
        }
        mPos = op - 1 - ((src[ip] >> 2) + (src[ip + 1] << 6));
        ip += 2;
        if (mPos < 0) return -1;
        if (opEnd - op < t + 2) return -1;
      } else if (t >= 16) {
        // M4 (or end of stream)
        mPos = op - ((t & 8) << 11);
        t &= 7;
        if (t === 0) {
          while (src[ip] === 0) {
            t += 255;
            ip++;
            if (ipEnd - ip < 1) return -1;
          }
          t += 7 + src[ip++];
          if (ipEnd - ip < 2) return -1;
        }
        mPos -= (src[ip] >> 2) + (src[ip + 1] << 6);
        ip += 2;
        if (mPos === op) {
          // eof_found
          return ip === ipEnd ? op : -1;
        }
        mPos -= 0x4000;
        if (mPos < 0) return -1;
        if (opEnd - op < t + 2) return -1;
      } else {
        // M1 after a match: 2 bytes at distance 1..1024
        mPos = op - 1 - (t >> 2) - (src[ip++] << 2);
        if (mPos < 0) return -1;
        if (opEnd - op < 2) return -1;
        out[op++] = out[mPos++];
        out[op++] = out[mPos];
        t = src[ip - 2] & 3;
        if (t === 0) {
          state = 0;
        } else {
          state = 3;
        }
        continue;
      }
      // copy_match: t + 2 bytes, overlapping copies repeat the pattern
      let n = t + 2;
      if (n > 64 && op - mPos >= n) {
        out.copyWithin(op, mPos, mPos + n);
        op += n;
      } else {
        while (n-- > 0) out[op++] = out[mPos++];
      }
    }
    // match_done
    t = src[ip - 2] & 3;
    state = t === 0 ? 0 : 3;
  }
}
