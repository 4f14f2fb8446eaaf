/**
 * A reference zlib (RFC 1950/1951) page decoder for the codec tests, written from the RFCs, with two rule
 * sets: `zlib` (what zlib 1.2.13's inflate, hence crash's `uncompress()`, accepts) and `libdeflate` (what
 * libdeflate 1.14's `libdeflate_zlib_decompress_ex` accepts). The two differ only in the rules listed in
 * `LIBDEFLATE_EXTRAS`; tests/codecs_libdeflate_test.ts checks both rule sets against the real libraries on
 * hand-made and mutated streams, so the list is the exact answer to "which streams does libdeflate accept
 * that crash refuses" (docs/testing.md). Slow (bit by bit, puff-style) and only for tests.
 */

/** Whose acceptance rules to apply. */
export type InflateRules = "zlib" | "libdeflate";

/** Why a stream was refused, or which libdeflate-only rule it needed. */
export type InflateVerdict =
  | { ok: true; page: Uint8Array; extras: Set<LibdeflateExtra> }
  | { ok: false; why: string };

/** The stream features libdeflate 1.14 accepts and zlib refuses (each with zlib's message). */
export const LIBDEFLATE_EXTRAS = {
  fixedLength286:
    "fixed Huffman block using literal/length symbol 286 or 287 (zlib: invalid literal/length " +
    "code; libdeflate: a match of length 258)",
  repeatOverrun:
    "code-length repeat (symbol 16, 17 or 18) running past HLIT + HDIST lengths (zlib: invalid " +
    "bit length repeat; libdeflate drops the excess)",
  tooManyCodes: "dynamic block declaring more than 286 literal/length or 30 distance codes (zlib: too many " +
    "length or distance symbols)",
  oneCodewordBit1: "a literal/length or distance code with one codeword of length 1 sent as bit 1 (zlib: " +
    "invalid literal/length code or invalid distance code; only bit 0 is that codeword)",
} as const;

/** One of LIBDEFLATE_EXTRAS' keys. */
export type LibdeflateExtra = keyof typeof LIBDEFLATE_EXTRAS;

/** Base lengths of the length symbols 257..285 (RFC 1951 3.2.5). */
export const LEN_BASE = [
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  15,
  17,
  19,
  23,
  27,
  31,
  35,
  43,
  51,
  59,
  67,
  83,
  99,
  115,
  131,
  163,
  195,
  227,
  258,
];
/** Extra bits of the length symbols 257..285 (RFC 1951 3.2.5). */
export const LEN_EXTRA = [
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
];
const DIST_BASE = [
  1,
  2,
  3,
  4,
  5,
  7,
  9,
  13,
  17,
  25,
  33,
  49,
  65,
  97,
  129,
  193,
  257,
  385,
  513,
  769,
  1025,
  1537,
  2049,
  3073,
  4097,
  6145,
  8193,
  12289,
  16385,
  24577,
  32769,
  49153,
];
const DIST_EXTRA = [
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
  14,
  14,
];
const ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];

class Fail extends Error {}

/** A canonical Huffman code: codewords per length and symbols in canonical order. */
interface Code {
  count: Int32Array;
  symbol: Int32Array;
  /** Unused code space (0: complete). */
  left: number;
  /** Number of symbols with a codeword. */
  used: number;
}

function code(lengths: ArrayLike<number>): Code {
  const count = new Int32Array(16);
  for (let i = 0; i < lengths.length; i++) count[lengths[i]]++;
  count[0] = 0;
  let left = 1;
  for (let len = 1; len < 16; len++) {
    left = left * 2 - count[len];
    if (left < 0) throw new Fail("over-subscribed code");
  }
  const offs = new Int32Array(16);
  for (let len = 1; len < 15; len++) offs[len + 1] = offs[len] + count[len];
  const symbol = new Int32Array(lengths.length);
  let used = 0;
  for (let s = 0; s < lengths.length; s++) if (lengths[s] !== 0) symbol[offs[lengths[s]]++] = s, used++;
  return { count, symbol, left, used };
}

class Bits {
  pos = 0;
  constructor(readonly data: Uint8Array) {}
  bit(): number {
    const byte = this.pos >>> 3;
    if (byte >= this.data.length) throw new Fail("truncated");
    return (this.data[byte] >>> (this.pos++ & 7)) & 1;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v |= this.bit() << i;
    return v;
  }
  align(): void {
    this.pos = (this.pos + 7) & ~7;
  }
}

function adler32(b: Uint8Array): number {
  let a = 1, s = 0;
  for (let i = 0; i < b.length; i++) a = (a + b[i]) % 65521, s = (s + a) % 65521;
  return ((s << 16) | a) >>> 0;
}

/** zlib's compressBound(n) (1.2.13), the largest stored page data the decoders consider. */
function compressBound(n: number): number {
  return n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 13;
}

/**
 * Decode `data` as one zlib-compressed page of `pageSize` bytes under `rules`, as the vmsift decoders use
 * the libraries: data of 1 to compressBound(page) bytes, exactly one page out, adler32 checked, bytes after
 * the adler32 ignored. For "libdeflate", `extras` lists the rules beyond zlib's that the stream needed.
 */
export function inflatePage(data: Uint8Array, pageSize: number, rules: InflateRules): InflateVerdict {
  const lax = rules === "libdeflate";
  const extras = new Set<LibdeflateExtra>();
  const need = (e: LibdeflateExtra, zlibMessage: string) => {
    if (!lax) throw new Fail(zlibMessage);
    extras.add(e);
  };
  try {
    if (data.length === 0 || data.length > compressBound(pageSize)) throw new Fail("size");
    if (data.length < 2) throw new Fail("truncated");
    const cmf = data[0], flg = data[1];
    if (((cmf << 8) | flg) % 31 !== 0) throw new Fail("incorrect header check");
    if ((cmf & 15) !== 8) throw new Fail("unknown compression method");
    if (cmf >>> 4 > 7) throw new Fail("invalid window size");
    if (flg & 0x20) throw new Fail("need dictionary");
    const out = new Uint8Array(pageSize);
    let n = 0;
    const br = new Bits(data.subarray(2));
    const decode = (c: Code, what: string): number => {
      // An incomplete code with a single codeword of length 1 (allowed by both): only bit 0 is that
      // codeword for zlib; libdeflate decodes either bit as it.
      if (c.used === 1 && c.count[1] === 1) {
        if (br.bit() === 1) need("oneCodewordBit1", `invalid ${what} code`);
        return c.symbol[0];
      }
      let cw = 0, first = 0, index = 0;
      for (let len = 1; len < 16; len++) {
        cw |= br.bit();
        const count = c.count[len];
        if (cw - count < first) return c.symbol[index + (cw - first)];
        index += count;
        first = (first + count) * 2;
        cw *= 2;
      }
      throw new Fail(`invalid ${what} code`);
    };
    const codes = (lit: Code, dist: Code, fixed: boolean) => {
      for (;;) {
        const sym = decode(lit, "literal/length");
        if (sym < 256) {
          if (n === pageSize) throw new Fail("more than a page");
          out[n++] = sym;
          continue;
        }
        if (sym === 256) return;
        let li = sym - 257;
        if (li >= 29) {
          // 286 and 287 only exist in the fixed code (a dynamic one has at most 286 codes under zlib)
          need(fixed ? "fixedLength286" : "tooManyCodes", "invalid literal/length code");
          li = 28;
        }
        const len = LEN_BASE[li] + br.bits(LEN_EXTRA[li]);
        const ds = decode(dist, "distance");
        if (ds >= 30) throw new Fail("invalid distance code"); // and too far back for both in pages <= 32K
        const d = DIST_BASE[ds] + br.bits(DIST_EXTRA[ds]);
        if (d > n) throw new Fail("invalid distance too far back");
        if (n + len > pageSize) throw new Fail("more than a page");
        for (let i = 0; i < len; i++, n++) out[n] = out[n - d];
      }
    };
    let final = 0;
    while (!final) {
      final = br.bit();
      const type = br.bits(2);
      if (type === 0) {
        br.align();
        const len = br.bits(16), nlen = br.bits(16);
        if ((len ^ 0xffff) !== nlen) throw new Fail("invalid stored block lengths");
        if (n + len > pageSize) throw new Fail("more than a page");
        for (let i = 0; i < len; i++) out[n++] = br.bits(8);
      } else if (type === 1) {
        const l = new Uint8Array(288);
        l.fill(8, 0, 144), l.fill(9, 144, 256), l.fill(7, 256, 280), l.fill(8, 280, 288);
        codes(code(l), code(new Uint8Array(30).fill(5)), true);
      } else if (type === 2) {
        const nlen = br.bits(5) + 257, ndist = br.bits(5) + 1, ncode = br.bits(4) + 4;
        if (nlen > 286 || ndist > 30) need("tooManyCodes", "too many length or distance symbols");
        const cl = new Uint8Array(19);
        for (let i = 0; i < ncode; i++) cl[ORDER[i]] = br.bits(3);
        const pre = code(cl);
        if (pre.left !== 0) throw new Fail("invalid code lengths set"); // both refuse what this can lead to
        const lengths = new Uint8Array(nlen + ndist + 138);
        let i = 0;
        while (i < nlen + ndist) {
          const sym = decode(pre, "code lengths");
          if (sym < 16) {
            lengths[i++] = sym;
            continue;
          }
          let v = 0, rep: number;
          if (sym === 16) {
            if (i === 0) throw new Fail("invalid bit length repeat");
            v = lengths[i - 1];
            rep = 3 + br.bits(2);
          } else rep = sym === 17 ? 3 + br.bits(3) : 11 + br.bits(7);
          if (i + rep > nlen + ndist) need("repeatOverrun", "invalid bit length repeat");
          lengths.fill(v, i, i + rep);
          i += rep;
        }
        if (lengths[256] === 0) throw new Fail("invalid code -- missing end-of-block");
        const lit = code(lengths.subarray(0, nlen));
        if (lit.left !== 0 && !(lit.used === 1 && lit.count[1] === 1)) {
          throw new Fail("invalid literal/lengths set");
        }
        const dist = code(lengths.subarray(nlen, nlen + ndist));
        if (dist.left !== 0 && dist.used > 0 && !(dist.used === 1 && dist.count[1] === 1)) {
          throw new Fail("invalid distances set");
        }
        codes(lit, dist, false);
      } else throw new Fail("invalid block type");
    }
    if (n !== pageSize) throw new Fail("short page");
    br.align();
    const at = 2 + (br.pos >>> 3);
    if (at + 4 > data.length) throw new Fail("truncated adler32");
    const want = ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
    if (want !== adler32(out)) throw new Fail("incorrect data check");
    return { ok: true, page: out, extras };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, why: e.message };
    throw e;
  }
}
