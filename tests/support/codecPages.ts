/**
 * Shared inputs of the codec engine tests (tests/codecs_engines_test.ts, tests/codecs_libdeflate_test.ts):
 * constructed pages over the whole range of entropy, real pages of the fixture, and the acceptance
 * comparison of two decoders on mutated streams.
 */
import assert from "node:assert/strict";
import type { PageCodec } from "../../formats/codecs/codec.ts";
import { loadLibdeflate } from "../../formats/codecs/libdeflate.ts";
import { loadLibz } from "../../formats/codecs/nativeZlib.ts";
import { loadLiblzo2 } from "../../formats/codecs/nativeLzo.ts";
import { loadLibsnappy } from "../../formats/codecs/nativeSnappy.ts";
import { sampleElfPages } from "./refCodecs.ts";
import { haveReal, realVmcore } from "./fixture.ts";
import { mutateSeeds, xorshift32 } from "./mutate.ts";

export const PAGE = 4096;
export const HAVE_LIBDEFLATE = loadLibdeflate().ok;
export const HAVE_LIBZ = loadLibz().ok;
export const HAVE_LZO = loadLiblzo2().ok;
export const HAVE_SNAPPY = loadLibsnappy().ok;

/**
 * `count` constructed pages of `size` bytes over the whole range of entropy: zeros with a few bytes, text,
 * random, runs, struct-like records, short periods, halves of each, literal runs between matches.
 */
export function pages(count: number, size = PAGE, seed = 1): Uint8Array[] {
  const r = xorshift32(seed);
  const text = new TextEncoder().encode("Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) ");
  const out: Uint8Array[] = [new Uint8Array(size)];
  for (let n = 1; n < count; n++) {
    const p = new Uint8Array(size);
    const kind = n % 8;
    const period = 1 + (r() % 300);
    const density = 1 + (r() % 64);
    for (let i = 0; i < size; i++) {
      const x = r();
      if (kind === 0) p[i] = x % density === 0 ? x >>> 24 : 0; // zero-ish
      else if (kind === 1) p[i] = text[(i + n) % text.length] ^ (x % 509 === 0 ? 0x20 : 0); // text
      else if (kind === 2) p[i] = x >>> 24; // random
      else if (kind === 3) p[i] = (i / period) & 0xff; // runs
      else if (kind === 4) p[i] = i % 64 < 8 ? (i >> 6) & 0xff : i % 64 === 12 ? 0xff : 0; // records
      else if (kind === 5) p[i] = p[i - period] ?? x >>> 24; // a random period
      else if (kind === 6) p[i] = i < size / 2 ? x >>> 24 : text[i % text.length]; // half and half
      else p[i] = (i >> 8) % 3 === 0 ? x >>> 24 : p[i - 1 - (x % 40)] ?? 0; // literals between matches
    }
    out.push(p);
  }
  return out;
}

/** The real fixture's vmcore (unpacked into the cache now if needed), or undefined without ../shared. */
export const REAL_VMCORE = haveReal() ? await realVmcore() : undefined;

/** Real non-zero pages from the fixture vmcore; none without the fixture (whatever the cache holds). */
export function realPages(n: number): Uint8Array[] {
  if (REAL_VMCORE === undefined) return [];
  return sampleElfPages(REAL_VMCORE, n).filter((p) => p.some((b) => b !== 0));
}

export function copyOrNull(z: Uint8Array | null): Uint8Array | null {
  return z === null ? null : z.slice();
}

/** Accept/reject of every mutated input must be the same for `a` and `b`, and accepted pages equal. */
export function sameAcceptance(
  a: PageCodec,
  b: PageCodec,
  seeds: Uint8Array[],
  iterations: number,
  seed: number,
) {
  const oa = new Uint8Array(PAGE);
  const ob = new Uint8Array(PAGE);
  let accepted = 0;
  mutateSeeds(seeds, iterations, seed, (z, i) => {
    const ka = a.decompress(z, oa.fill(0));
    const kb = b.decompress(z, ob.fill(0));
    assert.equal(ka, kb, `${a.impl} ${ka} vs ${b.impl} ${kb} on mutation #${i}`);
    if (ka) accepted++, assert.deepEqual(oa, ob, `mutation #${i}: both accept, different pages`);
  });
  return accepted;
}
