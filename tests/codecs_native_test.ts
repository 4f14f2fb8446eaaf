/**
 * Native page codecs (libz, libzstd through FFI) and the registry's choice between them and the built-in
 * (node:zlib) codecs; libdeflate is in codecs_libdeflate_test.ts, liblzo2 and libsnappy in codecs_engines_test.ts. Oracles:
 * makedumpfile's own -c output of the real fixture (byte identity of every recompressed page),
 * compress2()/uncompress() and ZSTD_compress()/ZSTD_decompress() called directly, and the other
 * implementation. Native tests are skipped when the library is absent.
 */
import assert from "node:assert/strict";
import { loadLibz, NativeZlibCodec } from "../formats/codecs/nativeZlib.ts";
import { loadLibdeflate } from "../formats/codecs/libdeflate.ts";
import { loadLibzstd, NativeZstdCodec } from "../formats/codecs/nativeZstd.ts";
import { ZlibCodec } from "../formats/codecs/zlib.ts";
import { ZstdCodec } from "../formats/codecs/zstd.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { createCodec } from "../formats/codecs/registry.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { VmsiftError } from "../core/errors.ts";
import { refZstd, sampleElfPages } from "./support/refCodecs.ts";
import { haveReal, realVmcore, unpackReal } from "./support/fixture.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

const PAGE = 4096;
const HAVE_LIBZ = loadLibz().ok;
const HAVE_LIBDEFLATE = loadLibdeflate().ok;
const HAVE_LIBZSTD = loadLibzstd().ok;

/** Constructed pages: zeros, text, random, half random, struct-like records, a short period. */
function pages(size = PAGE): Uint8Array[] {
  let x = 0x9e3779b9;
  const rnd = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0) & 0xff;
  };
  const text = new TextEncoder().encode("Linux version 6.1.0 SMP PREEMPT_DYNAMIC; ".repeat(size / 16));
  const out = [
    new Uint8Array(size),
    text.slice(0, size),
    new Uint8Array(size).map(rnd),
    new Uint8Array(size).map((_, i) => (i < size / 2 ? rnd() : i & 7)),
    new Uint8Array(size).map((_, i) => (i % 64 < 8 ? (i >> 6) & 0xff : i % 64 === 12 ? 0xff : 0)),
    new Uint8Array(size).map((_, i) => [1, 2, 3, 5, 8][i % 5]),
  ];
  return out;
}

/** The real fixture's vmcore (unpacked into the cache now if needed), or undefined without ../shared. */
const REAL_VMCORE = haveReal() ? await realVmcore() : undefined;

/** Real non-zero pages from the fixture vmcore; none without the fixture (whatever the cache holds). */
function realPages(n: number): Uint8Array[] {
  if (REAL_VMCORE === undefined) return [];
  return sampleElfPages(REAL_VMCORE, n).filter((p) => p.some((b) => b !== 0));
}

function roundTrip(enc: PageCodec, dec: PageCodec, p: Uint8Array, what: string): void {
  const z = enc.compress(p);
  if (z === null) return;
  const out = new Uint8Array(p.length);
  assert.ok(dec.decompress(z.slice(), out), `${what}: ${enc.impl} -> ${dec.impl} decodes`);
  assert.deepEqual(out, p, `${what}: ${enc.impl} -> ${dec.impl} round trip`);
}

Deno.test({
  name: "native zlib: recompressing makedumpfile -c pages gives makedumpfile's bytes",
  ignore: !HAVE_LIBZ || !haveReal(),
  async fn() {
    const k = KdumpFile.open(await unpackReal("makedumpfile-c-d31.kdump"));
    try {
      const reused = new NativeZlibCodec(PAGE);
      const perPage = new NativeZlibCodec(PAGE, { perPageCompress2: true });
      const node = new ZlibCodec();
      const page = new Uint8Array(PAGE);
      const check = new Uint8Array(PAGE);
      const step = Math.max(1, Math.floor(k.numDumpable / 600));
      let zlibPages = 0;
      let rawPages = 0;
      for (let i = 0; i < k.numDumpable; i++) {
        const d = k.desc(i);
        if (d.flags === 0) {
          // makedumpfile stored it raw: compress2 did not make it smaller (or it is the shared zero page)
          if (d.offset === k.layout.pageDataOffset) continue;
          const raw = new Uint8Array(d.size);
          k.file.readExact(d.offset, raw);
          assert.equal(reused.compress(raw), null, `raw descriptor ${i} stays raw`);
          rawPages++;
          continue;
        }
        if (i % step !== 0) continue;
        const data = new Uint8Array(d.size);
        k.file.readExact(d.offset, data);
        assert.equal(d.flags, 1);
        assert.ok(reused.decompress(data, page), `descriptor ${i} decodes (libz)`);
        assert.ok(node.decompress(data, check), `descriptor ${i} decodes (node:zlib)`);
        assert.deepEqual(check, page);
        assert.deepEqual(reused.compress(page), data, `descriptor ${i}: deflateReset stream = makedumpfile`);
        assert.deepEqual(perPage.compress(page), data, `descriptor ${i}: compress2 = makedumpfile`);
        zlibPages++;
      }
      assert.ok(zlibPages >= 300, `${zlibPages} zlib pages checked`);
      assert.ok(rawPages >= 20, `${rawPages} raw pages checked`); // 23 in the fixture
    } finally {
      k.close();
    }
  },
});

Deno.test({
  name: "native zlib: deflateReset stream = compress2, decodes with node:zlib and uncompress() and back",
  ignore: !HAVE_LIBZ,
  fn() {
    const a = new NativeZlibCodec(PAGE);
    const b = new NativeZlibCodec(PAGE, { perPageCompress2: true });
    const node = new ZlibCodec();
    assert.match(a.impl, /^libz 1\.\d+\.\d+.* \(FFI\)$/);
    for (const [i, p] of [...pages(), ...realPages(200)].entries()) {
      const z = a.compress(p)?.slice() ?? null;
      assert.deepEqual(b.compress(p)?.slice() ?? null, z, `page ${i}: same bytes as compress2`);
      if (z !== null) {
        assert.equal(z[0], 0x78, "zlib header (deflate, 32K window)");
        assert.equal(a.uncompress(z, new Uint8Array(PAGE)), PAGE, `page ${i}: uncompress() decodes`);
      }
      roundTrip(a, a, p, `page ${i}`);
      roundTrip(a, node, p, `page ${i}`);
      roundTrip(node, a, p, `page ${i}`);
    }
    // other page sizes
    for (const p of pages(16384)) roundTrip(a, node, p, "16K page"), roundTrip(node, a, p, "16K page");
  },
});

Deno.test({
  name: "native zlib: decoding accepts exactly what uncompress() + exact size accepts",
  ignore: !HAVE_LIBZ,
  fn() {
    const c = new NativeZlibCodec(PAGE);
    const node = new ZlibCodec();
    const p = pages()[1];
    const z = c.compress(p)!.slice();
    const out = new Uint8Array(PAGE);
    const cases: [string, Uint8Array, boolean][] = [
      ["good", z, true],
      ["trailing bytes (uncompress ignores them)", new Uint8Array([...z, 1, 2, 3]), true],
      ["truncated", z.subarray(0, z.length - 1), false],
      ["bad adler32", z.map((v, i) => (i === z.length - 1 ? v ^ 1 : v)), false],
      ["bad header", z.map((v, i) => (i === 0 ? 0x79 : v)), false],
      ["empty", new Uint8Array(0), false],
      ["short page", c.compress(p.subarray(0, PAGE - 1))!.slice(), false],
      ["long page", new NativeZlibCodec(PAGE * 2).compress(new Uint8Array(PAGE * 2).fill(7))!.slice(), false],
    ];
    for (const [what, data, ok] of cases) {
      assert.equal(c.decompress(data, out), ok, `libz: ${what}`);
      assert.equal(node.decompress(data, out), ok, `node:zlib: ${what}`);
      const u = new Uint8Array(PAGE);
      assert.equal(c.uncompress(data, u) === PAGE, ok, `uncompress(): ${what}`);
    }
    // after failures the stream is still usable
    assert.ok(c.decompress(z, out));
    assert.deepEqual(out, p);
  },
});

Deno.test({
  name: "native zstd: ZSTD_compressCCtx level 1 = ZSTD_compress, decodes with node:zlib and libzstd",
  ignore: !HAVE_LIBZSTD,
  fn() {
    const n = new NativeZstdCodec(PAGE);
    const node = new ZstdCodec(PAGE);
    const ref = refZstd(1)!;
    assert.match(n.impl, /^libzstd 1\.\d+\.\d+ \(FFI\)$/);
    for (const [i, p] of [...pages(), ...realPages(200)].entries()) {
      const z = n.compress(p)?.slice() ?? null;
      const r = ref.compress(p);
      assert.deepEqual(z, r.length < PAGE ? r : null, `page ${i}: bytes of ZSTD_compress level 1`);
      if (z !== null) {
        const out = new Uint8Array(PAGE);
        assert.equal(ref.decompress(z, out), PAGE);
        assert.deepEqual(out, p);
      }
      roundTrip(n, node, p, `page ${i}`);
      roundTrip(node, n, p, `page ${i}`);
      roundTrip(n, n, p, `page ${i}`);
    }
    const z = n.compress(pages()[1])!.slice();
    const out = new Uint8Array(PAGE);
    for (
      const [what, data] of [
        ["truncated", z.subarray(0, z.length - 1)],
        ["two frames", new Uint8Array([...z, ...z])],
        ["trailing byte", new Uint8Array([...z, 0])],
        ["bad magic", z.map((v, i) => (i === 0 ? 0x29 : v))],
        ["short page", n.compress(pages()[1].subarray(0, 2048))!.slice()],
      ] as const
    ) {
      assert.equal(n.decompress(data, out), false, `libzstd: ${what}`);
      assert.equal(node.decompress(data, out), false, `node:zlib: ${what}`);
    }
    assert.ok(n.decompress(z, out));
    assert.deepEqual(out, pages()[1]);
  },
});

Deno.test("registry: auto prefers native, says which, falls back visibly, can be forced", () => {
  const zl = createCodec("zlib");
  const zs = createCodec(0x20, PAGE);
  if (HAVE_LIBDEFLATE) assert.equal(zl.impl, "libdeflate (FFI)"), assert.equal(zl.fallback, undefined);
  else if (HAVE_LIBZ) assert.match(zl.impl, /^libz .* \(FFI\)$/), assert.match(zl.fallback!, /libdeflate/);
  else assert.equal(zl.impl, "node:zlib"), assert.match(zl.fallback!, /node:zlib/);
  if (HAVE_LIBZSTD) assert.match(zs.impl, /^libzstd /), assert.equal(zs.fallback, undefined);

  // libraries that cannot be loaded: auto falls back and says why, a forced engine throws
  const bad = { libraryNames: ["libvmsift-no-such-zlib.so.9"] };
  const fb = createCodec("zlib", PAGE, bad);
  assert.equal(fb.impl, "node:zlib");
  assert.equal(fb.engine, "node");
  assert.equal(fb.name, "zlib");
  assert.match(fb.fallback!, /libvmsift-no-such-zlib\.so\.9/);
  assert.match(fb.fallback!, /libdeflate, libz not usable/);
  assert.match(fb.fallback!, /not byte-identical/);
  const fz = createCodec("zstd", PAGE, bad);
  assert.equal(fz.impl, "node:zlib");
  assert.match(fz.fallback!, /libvmsift-no-such-zlib/);
  assert.throws(() => createCodec("zlib", PAGE, { ...bad, impl: "native" }), VmsiftError);
  assert.throws(() => createCodec("zlib", PAGE, { impl: "fast" as "auto" }), /unknown codec engine "fast"/);

  // forced built-in
  const b = createCodec("zlib", PAGE, { impl: "builtin" });
  assert.equal(b.impl, "node:zlib");
  assert.equal(b.fallback, undefined);
  assert.equal(createCodec("zstd", PAGE, { impl: "builtin" }).impl, "node:zlib");
  if (HAVE_LIBZ) assert.match(createCodec("zlib", PAGE, { impl: "libz" }).impl, /^libz /);

  // both decode each other
  for (const p of pages()) roundTrip(zl, fb, p, "auto/fallback"), roundTrip(fb, zl, p, "fallback/auto");
  for (const p of pages()) roundTrip(zs, fz, p, "auto/fallback"), roundTrip(fz, zs, p, "fallback/auto");
});

Deno.test("registry: without --allow-ffi, auto falls back without prompting and says so", async () => {
  const url = new URL("../formats/codecs/registry.ts", import.meta.url).href;
  const code = `// @ts-nocheck: test script
    import { createCodec, createCodecAsync } from ${JSON.stringify(url)};
    const out = [];
    for (const n of ["zlib", "zstd"]) {
      // node:zlib is imported on demand (by the async form): before that, the sync form cannot use it
      if (n === "zlib") {
        let unloaded = "";
        try { createCodec(n); } catch (e) { unloaded = e.message; }
        if (!/node:zlib is not loaded/.test(unloaded)) throw new Error("sync createCodec: " + unloaded);
      }
      const c = await createCodecAsync(n);
      const z = c.compress(new Uint8Array(4096).fill(3));
      const back = new Uint8Array(4096);
      out.push({ impl: c.impl, fallback: c.fallback, ok: c.decompress(z.slice(), back) && back[4095] === 3 });
    }
    let forced = "";
    try { createCodec("zlib", 4096, { impl: "native" }); } catch (e) { forced = e.message; }
    console.log(JSON.stringify({ out, forced }));`;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code);
  let r: Deno.CommandOutput;
  try {
    // read and env only (the fixture-free registry needs nothing else); no ffi, no prompt
    r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-check", "--allow-read", "--allow-env", file],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(file);
  }
  const stderr = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, stderr);
  const res = JSON.parse(new TextDecoder().decode(r.stdout));
  for (const o of res.out) {
    assert.equal(o.impl, "node:zlib");
    assert.match(o.fallback, /--allow-ffi/);
    assert.equal(o.ok, true);
  }
  assert.match(res.forced, /--allow-ffi/);
});

Deno.test({
  name: "registry: createCodec works in a Web Worker (own instance, native when allowed)",
  async fn() {
    const url = new URL("../formats/codecs/registry.ts", import.meta.url).href;
    const src = `// @ts-nocheck: test worker
      import { createCodec } from ${JSON.stringify(url)};
      self.onmessage = (e) => {
        const c = createCodec(e.data);
        const page = new Uint8Array(4096).map((_, i) => i % 251);
        const z = c.compress(page).slice();
        const back = new Uint8Array(4096);
        self.postMessage({ impl: c.impl, fallback: c.fallback, z, ok: c.decompress(z, back) });
      };`;
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    await Deno.writeTextFile(file, src);
    const w = new Worker(new URL(`file://${file}`).href, { type: "module" });
    try {
      for (const name of ["zlib", "lzo", "snappy", "zstd"] as const) {
        const got = await new Promise<{ impl: string; fallback?: string; z: Uint8Array; ok: boolean }>(
          (res, rej) => {
            w.onmessage = (e) => res(e.data);
            w.onerror = (e) => {
              e.preventDefault();
              rej(new Error(`worker: ${e.message}`));
            };
            w.postMessage(name);
          },
        );
        const here = createCodec(name);
        assert.equal(got.impl, here.impl, `${name}: same choice as the main thread`);
        assert.equal(got.ok, true);
        const back = new Uint8Array(PAGE);
        assert.ok(here.decompress(got.z, back));
        assert.equal(back[300], 300 % 251);
      }
    } finally {
      w.terminate();
      await Deno.remove(file);
    }
  },
});

Deno.test({
  name: "reader: decodes by flag with its own codec instances; native and built-in agree",
  ignore: !haveReal(),
  async fn() {
    const path = await unpackReal("makedumpfile-c-d31.kdump");
    const a = KdumpFile.open(path);
    const b = KdumpFile.open(path, { codecImpl: "builtin" });
    try {
      assert.equal(a.codecsInUse.length, 0, "made on first use");
      const pa = new Uint8Array(PAGE);
      const pb = new Uint8Array(PAGE);
      let n = 0;
      for (let pfn = 0; pfn < a.maxMapnr && n < 300; pfn += 97) {
        if (a.descIndex(pfn) < 0) continue;
        a.readPage(pfn, pa);
        b.readPage(pfn, pb);
        assert.deepEqual(pa, pb, `pfn ${pfn}`);
        n++;
      }
      assert.ok(n >= 100);
      assert.deepEqual(b.codecsInUse.map((c) => c.impl), ["node:zlib"]);
      assert.equal(a.codecsInUse.length, 1);
      // decoding checks what crash reads, so libz (crash's uncompress) comes before libdeflate
      if (HAVE_LIBZ) assert.match(a.codecsInUse[0].impl, /^libz /);
      else if (HAVE_LIBDEFLATE) assert.equal(a.codecsInUse[0].impl, "libdeflate (FFI)");
      assert.equal(a.codecForFlag(0x1), a.codecsInUse[0], "one instance per flag");
      assert.equal(a.codecForFlag(0), undefined);
      assert.equal(a.codecForFlag(0x3), undefined);
      assert.equal(a.codecForFlag(0x8), undefined);
      const other = KdumpFile.open(path);
      try {
        assert.notEqual(other.codecForFlag(0x1), a.codecForFlag(0x1), "per file, not shared");
      } finally {
        other.close();
      }
    } finally {
      a.close();
      b.close();
    }
  },
});

Deno.test({
  name:
    "compressAsync (the --num-threads lanes' nonblocking call) writes compress()'s bytes, every FFI engine",
  ignore: !(HAVE_LIBZ || HAVE_LIBDEFLATE || HAVE_LIBZSTD),
  fn: async () => {
    // the oracle: the same engine's synchronous call, whose bytes the tests above pin against the references
    const engines = [
      ["zlib", "libdeflate"],
      ["zlib", "libz"],
      ["lzo", "liblzo2"],
      ["snappy", "libsnappy"],
      ["zstd", "libzstd"],
    ] as const;
    let tested = 0;
    for (const [name, impl] of engines) {
      let a: PageCodec, b: PageCodec;
      try {
        a = createCodec(name, PAGE, { impl });
        b = createCodec(name, PAGE, { impl });
      } catch (e) {
        console.log(`  ${impl} not tested: ${(e as Error).message}`);
        continue;
      }
      assert.equal(typeof a.compressAsync, "function", `${impl} has compressAsync`);
      const ps = pages();
      const want = ps.map((p) => a.compress(p)?.slice() ?? null);
      // two instances with calls in flight at once (two pool threads), each page compressed once per instance
      const got = await Promise.all([a, b].map(async (c) => {
        const out: (Uint8Array | null)[] = [];
        for (const p of ps) out.push((await c.compressAsync!(p))?.slice() ?? null);
        return out;
      }));
      for (const g of got) assert.deepEqual(g, want, impl);
      // and it still decodes to the page
      for (let i = 0; i < ps.length; i++) {
        if (want[i] === null) continue;
        const back = new Uint8Array(PAGE);
        assert.ok(a.decompress(want[i]!, back), `${impl} page ${i}`);
        assert.deepEqual(back, ps[i]);
      }
      tested++;
    }
    assert.ok(tested > 0, "no FFI engine could be loaded");
  },
});
