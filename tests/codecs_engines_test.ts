/**
 * The codec engines added for speed (formats/codecs/engines.ts): liblzo2 for lzo and libsnappy for snappy
 * through FFI, and the registry's order and fallbacks (libdeflate for zlib: tests/codecs_libdeflate_test.ts).
 * Oracles: the TypeScript LZO1X-1 port (byte identity, same accepted streams); the TypeScript snappy codec and
 * libsnappy called directly (tests/support/refCodecs.ts). Each test is skipped when its library is absent.
 */
import assert from "node:assert/strict";
import { NativeLzoCodec } from "../formats/codecs/nativeLzo.ts";
import { NativeSnappyCodec } from "../formats/codecs/nativeSnappy.ts";
import { LzoCodec } from "../formats/codecs/lzo.ts";
import { SnappyCodec } from "../formats/codecs/snappy.ts";
import { CODEC_ENGINES, enginesFor } from "../formats/codecs/engines.ts";
import { CODEC_NAMES, createCodec } from "../formats/codecs/registry.ts";
import { workerEngineOf } from "../formats/codecs/codecWorker.ts";
import { VmsiftError } from "../core/errors.ts";
import { refSnappy } from "./support/refCodecs.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";
import {
  copyOrNull,
  HAVE_LIBDEFLATE,
  HAVE_LIBZ,
  HAVE_LZO,
  HAVE_SNAPPY,
  PAGE,
  pages,
  realPages,
  sameAcceptance,
} from "./support/codecPages.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

Deno.test({
  name: "liblzo2: byte-identical to the TypeScript LZO1X-1 on constructed, random and real pages, all sizes",
  ignore: !HAVE_LZO,
  fn() {
    const n = new NativeLzoCodec(PAGE);
    const t = new LzoCodec(PAGE);
    assert.match(n.impl, /^liblzo2 2\.\d+ \(FFI\)$/);
    const out = new Uint8Array(PAGE);
    let compressed = 0;
    for (const [i, p] of [...pages(2000, PAGE, 11), ...realPages(1000)].entries()) {
      const a = copyOrNull(n.compress(p));
      assert.deepEqual(a, copyOrNull(t.compress(p)), `page ${i}`);
      if (a === null) continue;
      compressed++;
      assert.ok(n.decompress(a, out.fill(0)), `page ${i} decodes`);
      assert.deepEqual(out, p);
    }
    assert.ok(compressed > 1500, `${compressed} pages compressed`);
    // page sizes beyond LZO1X-1's 48 KiB block, and odd sizes
    for (const size of [1, 17, 100, 8192, 16384, 49152, 49153, 65536, 70000]) {
      const nn = new NativeLzoCodec(size);
      const tt = new LzoCodec(size);
      for (const [i, p] of pages(8, size, size).entries()) {
        const a = copyOrNull(nn.compress(p));
        assert.deepEqual(a, copyOrNull(tt.compress(p)), `size ${size} page ${i}`);
        if (a === null) continue;
        const back = new Uint8Array(size);
        assert.ok(tt.decompress(a, back), `size ${size} page ${i}: TypeScript decodes`);
        assert.deepEqual(back, p);
      }
    }
    // page slots of a batch buffer and a shared buffer
    const set = pages(6, PAGE, 3);
    const batch = new Uint8Array(PAGE * set.length);
    set.forEach((p, k) => batch.set(p, k * PAGE));
    const shared = new Uint8Array(new SharedArrayBuffer(PAGE));
    for (const [k, p] of set.entries()) {
      const want = copyOrNull(t.compress(p));
      assert.deepEqual(copyOrNull(n.compress(batch.subarray(k * PAGE, (k + 1) * PAGE))), want, `slot ${k}`);
      shared.set(p);
      assert.deepEqual(copyOrNull(n.compress(shared)), want, `shared ${k}`);
    }
  },
});

Deno.test({
  name: "liblzo2: accepts exactly the streams the TypeScript decoder accepts (lzo1x_decompress_safe rules)",
  ignore: !HAVE_LZO,
  fn() {
    const n = new NativeLzoCodec(PAGE);
    const t = new LzoCodec(PAGE);
    const p = pages(2)[1];
    const z = n.compress(p)!.slice();
    const out = new Uint8Array(PAGE);
    for (
      const [what, data, ok] of [
        ["good", z, true],
        ["trailing byte (LZO_E_INPUT_NOT_CONSUMED)", new Uint8Array([...z, 0]), false],
        ["truncated", z.subarray(0, z.length - 1), false],
        ["empty", new Uint8Array(0), false],
        ["short page", n.compress(p.subarray(0, 2048))!.slice(), false],
      ] as const
    ) {
      assert.equal(n.decompress(data, out), ok, `liblzo2: ${what}`);
      assert.equal(t.decompress(data, out), ok, `TypeScript: ${what}`);
    }
    assert.equal(n.decompress(z, new Uint8Array(PAGE * 2)), false, "one page into two");
    const seeds = [...pages(40, PAGE, 5), ...realPages(40)].map((q) => n.compress(q)?.slice())
      .filter((q): q is Uint8Array<ArrayBuffer> => q !== undefined);
    assert.ok(sameAcceptance(n, t, seeds, 20000, 0x120) > 0);
  },
});

// ---------------------------------------------------------------------------------------------------------
// libsnappy

Deno.test({
  name: "libsnappy: makedumpfile's snappy_compress bytes; decodes the TypeScript codec's pages and back",
  ignore: !HAVE_SNAPPY,
  fn() {
    const n = new NativeSnappyCodec(PAGE);
    const t = new SnappyCodec(PAGE);
    const ref = refSnappy()!;
    const out = new Uint8Array(PAGE);
    let differ = 0;
    for (const [i, p] of [...pages(500, PAGE, 13), ...realPages(300)].entries()) {
      const a = copyOrNull(n.compress(p));
      const r = ref.compress(p);
      assert.deepEqual(a, r.length < PAGE ? r : null, `page ${i}: snappy_compress bytes`);
      const b = copyOrNull(t.compress(p));
      if (JSON.stringify(a && [...a]) !== JSON.stringify(b && [...b])) differ++;
      if (a !== null) {
        assert.ok(t.decompress(a, out.fill(0)), `page ${i}: TypeScript decodes`), assert.deepEqual(out, p);
      }
      if (b !== null) {
        assert.ok(n.decompress(b, out.fill(0)), `page ${i}: libsnappy decodes`), assert.deepEqual(out, p);
      }
    }
    // documented in nativeSnappy.ts: the engines write different (valid) bytes for some pages
    console.log(`  libsnappy and the TypeScript snappy differ on ${differ} of 800 pages`);
  },
});

Deno.test({
  name: "libsnappy: accepts exactly the streams the TypeScript decoder accepts",
  ignore: !HAVE_SNAPPY,
  fn() {
    const n = new NativeSnappyCodec(PAGE);
    const t = new SnappyCodec(PAGE);
    const seeds: Uint8Array[] = [];
    for (const p of [...pages(40, PAGE, 9), ...realPages(40)]) {
      for (const c of [n.compress(p), t.compress(p)]) if (c !== null) seeds.push(c.slice());
    }
    const z = seeds[0];
    const out = new Uint8Array(PAGE);
    assert.equal(n.decompress(new Uint8Array([...z, 0]), out), false, "trailing byte");
    assert.equal(t.decompress(new Uint8Array([...z, 0]), out), false, "trailing byte");
    assert.equal(n.decompress(new Uint8Array(0), out), false, "empty");
    assert.ok(sameAcceptance(n, t, seeds, 20000, 0x5a9) > 0);
  },
});

// ---------------------------------------------------------------------------------------------------------
// The registry's engines

Deno.test("engines: order, generic choices, and choices that do not fit the codec", () => {
  assert.deepEqual(CODEC_ENGINES.zlib, ["libdeflate", "libz", "node"]);
  assert.deepEqual(CODEC_ENGINES.lzo, ["liblzo2", "builtin"]);
  assert.deepEqual(CODEC_ENGINES.snappy, ["libsnappy", "builtin"]);
  assert.deepEqual(CODEC_ENGINES.zstd, ["libzstd", "node"]);
  assert.deepEqual(enginesFor("zlib", "native"), ["libdeflate", "libz"]);
  assert.deepEqual(enginesFor("zlib", "builtin"), ["node"]);
  assert.deepEqual(enginesFor("lzo", "builtin"), ["builtin"]);
  assert.deepEqual(enginesFor("zstd", "libzstd"), ["libzstd"]);
  assert.match(enginesFor("lzo", "libz") as string, /"libz" is not an engine of lzo \(liblzo2, builtin/);
  assert.match(enginesFor("zlib", "node:zlib") as string, /unknown codec engine/);
  assert.throws(() => createCodec("lzo", PAGE, { impl: "libz" }), VmsiftError);
  assert.throws(() => createCodec("zlib", PAGE, { impl: "liblzo2" }), /not an engine of zlib/);
  assert.throws(() => createCodec("snappy", PAGE, { impl: "fast" as "auto" }), /unknown codec engine "fast"/);
});

Deno.test({
  name: "engines: auto takes the first that loads, says why it skipped one; forced engines fail loudly",
  ignore: !HAVE_LIBDEFLATE || !HAVE_LIBZ || !HAVE_LZO || !HAVE_SNAPPY,
  fn() {
    for (const name of CODEC_NAMES) {
      const c = createCodec(name, PAGE);
      assert.equal(c.engine, CODEC_ENGINES[name][0], `${name}: first engine`);
      assert.equal(c.fallback, undefined);
      assert.equal(workerEngineOf(c), c.engine, "workers make the same engine");
      for (const e of CODEC_ENGINES[name]) {
        const f = createCodec(name, PAGE, { impl: e });
        assert.equal(f.engine, e);
        assert.equal(workerEngineOf(f), e);
      }
    }
    const noDeflate = { libraryNames: { libdeflate: ["libvmsift-no-such-deflate.so.0"] } };
    const z = createCodec("zlib", PAGE, noDeflate);
    assert.equal(z.engine, "libz");
    assert.match(z.impl, /^libz 1\.\d+\.\d+ \(FFI\)$/);
    assert.match(z.fallback!, /^zlib: libdeflate not usable: libvmsift-no-such-deflate\.so\.0: /);
    assert.match(z.fallback!, /; using libz 1\.\d+\.\d+ \(FFI\) instead, slower \(and byte-identical/);
    const l = createCodec("lzo", PAGE, { libraryNames: { liblzo2: ["libvmsift-no-such-lzo.so"] } });
    assert.equal(l.impl, "vmsift (TypeScript)");
    assert.match(l.fallback!, /^lzo: liblzo2 not usable: libvmsift-no-such-lzo\.so: .*; using vmsift/);
    const s = createCodec("snappy", PAGE, { libraryNames: ["libvmsift-no-such-snappy.so"] });
    assert.equal(s.engine, "builtin");
    assert.match(s.fallback!, /libsnappy not usable: libvmsift-no-such-snappy\.so/);
    // forced: the library and the reason in a VmsiftError
    assert.throws(
      () => createCodec("zlib", PAGE, { ...noDeflate, impl: "libdeflate" }),
      (e: Error) =>
        e instanceof VmsiftError && /libdeflate.*libvmsift-no-such-deflate\.so\.0/.test(e.message),
    );
    assert.throws(
      () => createCodec("lzo", PAGE, { impl: "liblzo2", libraryNames: ["libvmsift-none.so"] }),
      /lzo engine liblzo2: liblzo2 is not available: libvmsift-none\.so/,
    );
    // native: the first FFI engine that loads
    assert.equal(createCodec("zlib", PAGE, { ...noDeflate, impl: "native" }).engine, "libz");
    assert.equal(createCodec("lzo", PAGE, { impl: "native" }).engine, "liblzo2");
    // an ad-hoc codec without an engine: workers use the built-in one
    assert.equal(
      workerEngineOf({ name: "lzo", flag: 2, impl: "test", compress: () => null, decompress: () => false }),
      "builtin",
    );
  },
});
