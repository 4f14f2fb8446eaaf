/**
 * Page codecs -l (lzo), -p (snappy), -z (zstd): round trips, and cross-checks in both directions against
 * the system libraries crash/libkdumpfile use (liblzo2, libsnappy, libzstd via FFI), plus mutation fuzzing
 * of the decompressors (differential against the libraries for lzo and snappy).
 */
import assert from "node:assert/strict";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { lzo1xCompress, lzo1xDecompressSafe, LzoCodec, lzoCompressBound } from "../formats/codecs/lzo.ts";
import { SnappyCodec, snappyCompress, snappyCompressBound } from "../formats/codecs/snappy.ts";
import { ZstdCodec } from "../formats/codecs/zstd.ts";
import { CODEC_NAMES, codecNameForFlag, createCodec } from "../formats/codecs/registry.ts";
import { VmsiftError } from "../core/errors.ts";
import { type RefCodec, refLzo, refSnappy, refZstd, sampleElfPages } from "./support/refCodecs.ts";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";
import { mutateSeeds, xorshift32 } from "./support/mutate.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

const PAGE = 4096;

function randomBytes(n: number, seed: number): Uint8Array {
  const r = xorshift32(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() & 0xff;
  return b;
}

/** Constructed pages: each exercises a different part of the encoders. */
function syntheticPages(size = PAGE): [string, Uint8Array][] {
  const zeros = new Uint8Array(size);
  const text = new TextEncoder().encode(
    "Linux version 6.1.0 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC; ".repeat(size / 32),
  ).slice(0, size);
  const random = randomBytes(size, 1);
  const mixed = new Uint8Array(size);
  mixed.set(randomBytes(size / 4, 2), 0);
  mixed.set(text.subarray(0, size / 4), size / 2);
  mixed.set(randomBytes(100, 3), size - 100);
  const pattern = (period: number) => {
    const p = randomBytes(period, period);
    return new Uint8Array(size).map((_, i) => p[i % period]);
  };
  // struct-page-like: 64-byte records with a counter and pointers
  const records = new Uint8Array(size);
  const dv = new DataView(records.buffer);
  for (let i = 0; i < size; i += 64) {
    dv.setUint32(i, 0x17ffffc0 + i, true);
    dv.setUint32(i + 8, 0xea000000 + i * 16, true);
    dv.setUint32(i + 12, 0xffffffff, true);
  }
  // long literal runs (> 238 and > 255 + 18) between matches
  const literals = new Uint8Array(size);
  literals.set(randomBytes(600, 4), 0);
  literals.set(randomBytes(300, 5), 1500);
  const single = new Uint8Array(size);
  single[size - 1] = 1;
  return [
    ["zeros", zeros],
    ["text", text],
    ["random", random],
    ["mixed", mixed],
    ["period-1", pattern(1)],
    ["period-3", pattern(3)],
    ["period-7", pattern(7)],
    ["period-64", pattern(64)],
    ["period-1000", pattern(1000)],
    ["records", records],
    ["long-literals", literals],
    ["single-byte", single],
  ];
}

/** Real pages from the fixture vmcore (unpacked into the cache when needed); none without the fixture. */
async function realPages(count: number): Promise<Uint8Array[]> {
  return haveReal() ? sampleElfPages(await realVmcore(), count) : [];
}

const REAL = await realPages(256);
const SYNTH = syntheticPages();
const ALL: [string, Uint8Array][] = [
  ...SYNTH,
  ...REAL.map((p, i) => [`real#${i}`, p] as [string, Uint8Array]),
];

const refs: Record<string, RefCodec | null> = { lzo: refLzo(), snappy: refSnappy(), zstd: refZstd(1) };
const ours: Record<string, () => PageCodec> = {
  lzo: () => new LzoCodec(),
  snappy: () => new SnappyCodec(),
  zstd: () => new ZstdCodec(),
};

for (const name of ["lzo", "snappy", "zstd"]) {
  const ref = refs[name];

  Deno.test(`${name}: round trip, null when not smaller, output buffer reuse`, () => {
    const c = ours[name]();
    const out = new Uint8Array(PAGE);
    for (const [what, p] of ALL) {
      const z = c.compress(p);
      if (z === null) continue;
      assert.ok(z.length < PAGE, what);
      const copy = z.slice();
      out.fill(0xa5);
      assert.ok(c.decompress(copy, out), `${name} ${what}`);
      assert.deepEqual(out, p, `${name} ${what}`);
    }
    // pages that are slots of one big buffer (as a read batch): cached views must follow the slot
    const batch = new Uint8Array(PAGE * 4);
    SYNTH.slice(0, 4).forEach(([, p], k) => batch.set(p, k * PAGE));
    for (const k of [1, 3, 3, 0, 1]) {
      const p = batch.subarray(k * PAGE, (k + 1) * PAGE);
      const z = c.compress(p);
      if (z === null) continue;
      assert.ok(c.decompress(z.slice(), out), `slot ${k}`);
      assert.deepEqual(out, SYNTH[k][1], `slot ${k}`);
    }
    assert.equal(c.compress(SYNTH[2][1]), null, "random page must not compress");
    const z = c.compress(SYNTH[0][1]);
    assert.ok(z !== null && z.length <= 200, "zero page must compress well");
    // a page decompressed into a buffer of another size is not a page
    assert.equal(c.decompress(z!.slice(), new Uint8Array(PAGE * 2)), false);
    assert.equal(c.decompress(z!.slice(), new Uint8Array(PAGE / 2)), false);
    assert.equal(c.decompress(new Uint8Array(0), out), false);
  });

  Deno.test({
    name: `${name}: our pages decode with the system library to the exact page`,
    ignore: ref === null,
    fn() {
      const c = ours[name]();
      const out = new Uint8Array(PAGE);
      let checked = 0;
      for (const [what, p] of ALL) {
        const z = c.compress(p);
        if (z === null) continue;
        out.fill(0x5a);
        assert.equal(ref!.decompress(z, out), PAGE, `${name} ${what}`);
        assert.deepEqual(out, p, `${name} ${what}`);
        checked++;
      }
      assert.ok(checked >= SYNTH.length - 1);
    },
  });

  Deno.test({
    name: `${name}: system library pages decode with ours`,
    ignore: ref === null,
    fn() {
      const c = ours[name]();
      const out = new Uint8Array(PAGE);
      for (const [what, p] of ALL) {
        const z = ref!.compress(p);
        out.fill(0x5a);
        assert.ok(c.decompress(z, out), `${name} ${what}`);
        assert.deepEqual(out, p, `${name} ${what}`);
      }
    },
  });

  Deno.test({
    name: `${name}: other sizes (1..65536+) round trip through the system library`,
    ignore: ref === null,
    fn() {
      for (const size of [1, 4, 17, 21, 100, 8192, 16384, 65536, 70000, 200000]) {
        const p = new Uint8Array(size);
        p.set(new TextEncoder().encode("kernel page ".repeat(Math.ceil(size / 12))).subarray(0, size));
        p.set(randomBytes(Math.min(size, 50), size), size >> 1 > 50 ? size >> 1 : 0);
        const c = ours[name]();
        const z = c.compress(p);
        const enc = z ?? ref!.compress(p);
        const a = new Uint8Array(size);
        assert.equal(ref!.decompress(enc, a), size, `${name} size ${size}`);
        assert.deepEqual(a, p);
        const b = new Uint8Array(size);
        assert.ok(c.decompress(ref!.compress(p), b), `${name} size ${size}`);
        assert.deepEqual(b, p);
      }
    },
  });

  Deno.test({
    name: `${name}: fuzzed compressed data never throws; accepted iff the system library accepts`,
    ignore: ref === null,
    fn() {
      const c = ours[name]();
      const ourOut = new Uint8Array(PAGE);
      const refOut = new Uint8Array(PAGE);
      const seeds: Uint8Array[] = [];
      for (const [, p] of ALL) {
        const z = c.compress(p);
        if (z !== null) seeds.push(z.slice());
      }
      seeds.push(...ALL.slice(0, 12).map(([, p]) => ref!.compress(p)));
      const iterations = name === "zstd" ? 3000 : 20000;
      let accepted = 0;
      mutateSeeds(seeds, iterations, 0x5eed + name.length, (z, i) => {
        ourOut.fill(0);
        let ok: boolean;
        try {
          ok = c.decompress(z, ourOut);
        } catch (err) {
          throw new Error(`${name} decompressor threw on mutated input #${i}: ${err}`);
        }
        const n = ref!.decompress(z, refOut.fill(0));
        if (name === "zstd") {
          // we may be stricter than libzstd (e.g. skippable frames), never laxer
          if (ok) assert.equal(n, PAGE, `zstd accepted what libzstd rejects, #${i}`);
        } else {
          assert.equal(ok, n === PAGE, `${name} accept mismatch with the library on #${i} (lib ${n})`);
        }
        if (ok) {
          accepted++;
          // zstd: node:zlib's bundled zstd and the system libzstd may decode a corrupted (checksum-less)
          // frame differently, both accepting it; only valid frames must agree (tests above)
          if (name !== "zstd") {
            assert.deepEqual(ourOut, refOut, `${name} output differs from the library on #${i}`);
          }
        }
      });
      assert.ok(accepted > 0, "some mutations (e.g. of literal bytes) must stay valid");
    },
  });
}

Deno.test({
  name: "lzo: output is byte-identical to liblzo2 lzo1x_1_compress",
  ignore: refs.lzo === null,
  fn() {
    const dict = new Uint16Array(16384);
    for (
      const [what, p] of [...ALL, [
        "70000",
        randomBytes(70000, 9).map((v, i) => i % 3 ? v & 3 : 0),
      ]] as const
    ) {
      const dst = new Uint8Array(lzoCompressBound(p.length));
      const n = lzo1xCompress(p, dst, dict);
      assert.deepEqual(dst.subarray(0, n), refs.lzo!.compress(p), what);
    }
  },
});

Deno.test("lzo: hostile streams are rejected", () => {
  const out = new Uint8Array(PAGE);
  const reject = (bytes: number[], why: string) =>
    assert.equal(lzo1xDecompressSafe(new Uint8Array(bytes), out), -1, why);
  reject([], "empty");
  reject([0x11, 0, 0, 0], "bytes after the end marker");
  reject([0x11, 0], "truncated end marker");
  reject([0x15, 1, 2, 3, 4], "literals without end marker");
  // 4 literals, then an M2 match reaching 8 bytes back: look-behind overrun
  reject([0x15, 1, 2, 3, 4, 0x7c, 0x00, 0x11, 0, 0], "look-behind overrun");
  // literal run whose length (0 then 255-runs) exceeds the output
  reject([0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "run longer than the input");
  // a valid one: 4 literals + end marker
  assert.equal(lzo1xDecompressSafe(new Uint8Array([0x15, 1, 2, 3, 4, 0x11, 0, 0]), out), 4);
  // exceeding the output buffer
  const small = new Uint8Array(3);
  assert.equal(lzo1xDecompressSafe(new Uint8Array([0x15, 1, 2, 3, 4, 0x11, 0, 0]), small), -1);
});

Deno.test("snappy: hostile streams are rejected", () => {
  const c = new SnappyCodec();
  const out = new Uint8Array(PAGE);
  const reject = (bytes: number[], why: string) =>
    assert.equal(c.decompress(new Uint8Array(bytes), out), false, why);
  const len = [0x80, 0x20]; // varint 4096
  reject([], "empty");
  reject([0x80, 0x80, 0x80, 0x80, 0x80, 0x00], "varint longer than 5 bytes");
  reject([0xff, 0xff, 0xff, 0xff, 0x1f], "varint over 32 bits");
  reject([...len, 0x00, 0x41, 0x01, 0x00], "copy with offset 0");
  reject([...len, 0x00, 0x41, 0x05, 0x02], "copy before the start");
  reject([...len, 0xfc, 0xff, 0xff, 0xff, 0xff], "literal length 2^32");
  reject([...len, 0x00, 0x41], "short output");
  reject([0x01, 0x04, 0x41, 0x42], "literal longer than declared");
  reject([0x80, 0x40, 0x00], "declared length larger than the page");
  // zero page as one literal + copies of 64: valid
  const ok = [...len, 0x00, 0x00];
  for (let i = 0; i < 63; i++) ok.push((63 << 2) | 2, 1, 0);
  assert.equal(c.decompress(new Uint8Array(ok), out), false, "1 + 63 * 64 bytes: 63 short");
  ok.push((62 << 2) | 2, 1, 0);
  assert.ok(c.decompress(new Uint8Array(ok), out), "hand-built zero page");
  assert.ok(out.every((b) => b === 0));
  const dst = new Uint8Array(snappyCompressBound(PAGE));
  assert.ok(snappyCompress(out, dst, new Uint16Array(16384)) < 200);
});

Deno.test("zstd: one single-segment frame, content size = page, no checksum; level-1 libzstd frames decode", () => {
  const c = new ZstdCodec();
  const z = c.compress(SYNTH[1][1])!;
  assert.deepEqual([...z.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  const fhd = z[4];
  assert.equal(fhd & 0x20, 0x20, "single segment");
  assert.equal(fhd & 0x04, 0, "no checksum");
  assert.equal(fhd >> 6, 1, "2-byte frame content size");
  assert.equal(z[5] | (z[6] << 8), PAGE - 256, "frame content size = 4096");
  const out = new Uint8Array(PAGE);
  assert.equal(c.decompress(z.subarray(0, z.length - 1), out), false, "truncated frame");
  const two = new Uint8Array([...z, ...z]);
  assert.equal(c.decompress(two, out), false, "two frames = two pages");
  const wrong = z.slice();
  wrong[0] = 0x29;
  assert.equal(c.decompress(wrong, out), false, "bad magic");
});

Deno.test("registry: names, flags, factories", () => {
  assert.deepEqual([...CODEC_NAMES], ["zlib", "lzo", "snappy", "zstd"]);
  assert.equal(codecNameForFlag(0x2), "lzo");
  assert.equal(codecNameForFlag(0x4), "snappy");
  assert.equal(codecNameForFlag(0x20), "zstd");
  assert.equal(codecNameForFlag(0x1), "zlib");
  assert.equal(codecNameForFlag(0), undefined);
  assert.equal(codecNameForFlag(0x6), undefined);
  for (
    const [which, name, flag] of [["lzo", "lzo", 2], [4, "snappy", 4], ["zstd", "zstd", 0x20], [
      1,
      "zlib",
      1,
    ]] as const
  ) {
    const c = createCodec(which);
    assert.equal(c.name, name);
    assert.equal(c.flag, flag);
    const p = SYNTH[1][1];
    const z = c.compress(p)!.slice();
    const out = new Uint8Array(PAGE);
    assert.ok(c.decompress(z, out));
    assert.deepEqual(out, p);
  }
  const a = createCodec("lzo");
  const b = createCodec("lzo");
  assert.notEqual(a, b, "fresh instance per call");
  assert.throws(() => createCodec(0x8), VmsiftError);
  assert.throws(() => createCodec("toString" as "lzo"), VmsiftError);
  assert.throws(() => createCodec("lz4" as "lzo"), VmsiftError);
});
