/**
 * --num-threads (formats/kdump/parallelWriter.ts): the file must be byte-identical to the single-threaded
 * writer's (the oracle: writeKdump, whose format is tested against the spec in kdump_format_test.ts) for every
 * codec and thread count, on a constructed vmcore (zero, incompressible and compressible pages, holes, a
 * partial last page, tiny batches so every pool and ordering path runs), in lanes (FFI engines) and in
 * workers, and on the real fixture through the CLI; worker and lane failures become VmsiftError and leave no
 * DUMPFILE; workers never keep the process alive; the single bundled file works with --num-threads.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import { VmsiftError } from "../core/errors.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { makeUtsname } from "../formats/kdump/header.ts";
import { type KdumpSource, type KdumpWriteResult, writeKdump } from "../formats/kdump/writer.ts";
import { type ParallelWriteOptions, usesLanes, writeKdumpParallel } from "../formats/kdump/parallelWriter.ts";
import { lanesSupported } from "../formats/kdump/codecLanes.ts";
import { CODEC_ENGINES } from "../formats/codecs/engines.ts";
import { CODEC_NAMES, createCodec } from "../formats/codecs/registry.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { FileSink } from "../io/fileSink.ts";
import { dumpVmcore } from "../dump/run.ts";
import { parseCommandLine, UsageError } from "../cli/options.ts";
import { buildElfCore } from "../fixtures/miniElf.ts";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { bundleVmsift, runVmsift, tempDir, withTempDir } from "./support/run.ts";
import { sha256File } from "./support/compare.ts";

const PS = 4096;
const codecWorkerModule = new URL("../formats/codecs/codecWorker.ts", import.meta.url).href;

// ---------------------------------------------------------------------------------------------------------
// Constructed vmcore: segment A = pfns 0..39, hole 40..47, segment B = pfns 48..71 + half a page (pfn 72).

const A_PAGES = 40;
const B_START = 48;
const B_BYTES = 24 * PS + 2048;
const MAX_MAPNR = 73;

function pageContent(pfn: number): Uint8Array {
  const p = new Uint8Array(PS);
  const kind = (pfn * 7) % 5;
  if (kind === 0 || pfn === 13 || pfn === 14) return p; // zero
  let x = (pfn + 1) * 2654435761 >>> 0;
  const rnd = () => (x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0, x & 0xff);
  if (kind === 1) {
    for (let i = 0; i < PS; i++) p[i] = rnd(); // incompressible: raw with every codec
    return p;
  }
  // compressible: text-like with some noise; kind 4 only one non-zero byte at the end
  if (kind === 4) {
    p[PS - 1] = pfn;
    return p;
  }
  const words = ["page ", `pfn=${pfn} `, "struct ", "kernel ", "\0\0\0\0"];
  for (let i = 0; i < PS;) {
    const w = new TextEncoder().encode(words[rnd() % words.length]);
    p.set(w.subarray(0, PS - i), i);
    i += w.length;
    if (kind === 3 && rnd() < 40) p[i - 1] = rnd();
  }
  return p;
}

function buildVmcore(dir: string): string {
  const a = new Uint8Array(A_PAGES * PS);
  for (let pfn = 0; pfn < A_PAGES; pfn++) a.set(pageContent(pfn), pfn * PS);
  const b = new Uint8Array(B_BYTES);
  for (let pfn = B_START; pfn < MAX_MAPNR; pfn++) {
    b.set(pageContent(pfn).subarray(0, Math.min(PS, B_BYTES - (pfn - B_START) * PS)), (pfn - B_START) * PS);
  }
  const vmcoreinfo = new TextEncoder().encode("OSRELEASE=6.1.0-test\nPAGESIZE=4096\n");
  const bytes = buildElfCore(
    [{ paddr: 0, data: a }, { paddr: B_START * PS, data: b }],
    [{ name: "CORE", type: 1, desc: new Uint8Array(336) }, { name: "VMCOREINFO", type: 0, desc: vmcoreinfo }],
  );
  const path = `${dir}/mini.vmcore`;
  Deno.writeFileSync(path, bytes);
  return path;
}

function miniSource(core: ElfCore, dumpLevel: number): KdumpSource {
  const bitmap1 = new MemBitmap(MAX_MAPNR);
  bitmap1.setRange(0, A_PAGES);
  bitmap1.setRange(B_START, MAX_MAPNR);
  const bitmap2 = new MemBitmap(MAX_MAPNR);
  bitmap2.bytes.set(bitmap1.bytes);
  for (const p of [5, 6, 30, 50]) bitmap2.clear(p); // "excluded" pages: runs are cut
  const vi = core.vmcoreinfoNote!;
  return {
    mem: core,
    bitmap1,
    bitmap2,
    maxMapnr: MAX_MAPNR,
    pageSize: PS,
    noteBytes: core.noteSegment.bytes,
    vmcoreinfoOffsetInNotes: vi.descFileOffset - core.noteSegment.fileOffset,
    vmcoreinfoSize: vi.desc.length,
    utsname: makeUtsname(["Linux", "mini", "6.1.0-test", "#1 SMP", "x86_64", "(none)"]),
    crashTime: 1700000000,
    nrCpus: 1,
    physBase: 0x1000000n,
    dumpLevel,
  };
}

interface Mini {
  dir: string;
  core: ElfCore;
  [Symbol.dispose](): void;
}

function mini(): Mini {
  const dir = tempDir("vmsift-parallel-");
  const core = ElfCore.open(buildVmcore(dir));
  return {
    dir,
    core,
    [Symbol.dispose]() {
      core.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

/** Write with writeKdump (threads 0) or the parallel writer; the sink is aborted on error as dump.ts does. */
async function writeTo(
  path: string,
  src: KdumpSource,
  codec: PageCodec,
  threads: number,
  extra: Partial<ParallelWriteOptions> = {},
): Promise<KdumpWriteResult> {
  const sink = FileSink.create(path, { overwrite: true });
  try {
    const r = threads === 0
      ? writeKdump(src, { codec, sink, cacheSize: extra.cacheSize })
      : await writeKdumpParallel(src, { codec, sink, threads, ...extra });
    sink.close();
    return r;
  } catch (e) {
    sink.abort();
    throw e;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------

Deno.test("parallel writer: byte-identical to writeKdump for every codec, 1-3 threads, levels 0 and 1", async () => {
  using m = mini();
  // workers must use the main thread's engine (libdeflate, libz and node:zlib write different bytes; so do
  // libsnappy and the TypeScript snappy): every engine of every codec, forced, plus auto
  const variants = [
    ...CODEC_NAMES.map((n) => [n, "auto"] as const),
    ...CODEC_NAMES.flatMap((n) => CODEC_ENGINES[n].map((e) => [n, e] as const)),
  ];
  for (const [name, impl] of variants) {
    let codec: PageCodec;
    try {
      codec = createCodec(name, PS, { impl });
    } catch (e) {
      if (impl === "auto") throw e;
      console.log(`  ${name} ${impl} not tested: ${(e as Error).message}`);
      continue;
    }
    for (const level of [0, 1]) {
      const src = miniSource(m.core, level);
      const ref = `${m.dir}/ref-${name}-${impl}-${level}.kdump`;
      const r0 = await writeTo(ref, src, codec, 0, { cacheSize: 2 * PS });
      // the constructed input covers what it should
      assert.equal(r0.dumpablePages, MAX_MAPNR - 8 - 4);
      assert.ok(r0.rawPages > 0 && r0.compressedPages > 0, `${name}: raw and compressed pages`);
      if (level & 1) assert.ok(r0.zeroPages > 0);
      const want = await sha256File(ref);
      // [threads, batchPages, inflightPerWorker, mainCompresses, lanes]: one-page batches, tiny pools, the
      // main thread compressing too, all pages in one batch; FFI engines in lanes (the default) and in workers
      const configs: [number, number, number, boolean, boolean][] = [
        [1, 3, 2, false, true],
        [2, 1, 1, false, true],
        [2, 3, 2, true, true],
        [2, 512, 2, false, true],
        [3, 2, 1, false, true],
        [2, 3, 2, true, false],
        [3, 2, 1, false, false],
      ];
      if (!lanesSupported(codec)) {
        assert.ok(codec.engine === "node" || codec.engine === "builtin", codec.impl);
      }
      for (const [threads, batchPages, inflightPerWorker, mainCompresses, lanes] of configs) {
        const out = `${m.dir}/p.kdump`;
        const r = await writeTo(out, src, codec, threads, {
          cacheSize: 2 * PS,
          batchPages,
          inflightPerWorker,
          mainCompresses,
          lanes,
        });
        const how = usesLanes({ codec, lanes }) ? "lanes" : "workers";
        const what = `${name} (${codec.impl}) -d ${level}, ${threads} threads in ${how}, batches of ` +
          `${batchPages}` + (mainCompresses ? ", main compresses" : "");
        assert.deepEqual(r, r0, what);
        assert.equal(await sha256File(out), want, what);
      }
    }
  }
});

Deno.test("parallel writer: progress is reported in pfn order up to the total", async () => {
  using m = mini();
  const src = miniSource(m.core, 1);
  const seen: number[] = [];
  const sink = FileSink.create(`${m.dir}/p.kdump`);
  const r = await writeKdumpParallel(src, {
    codec: createCodec("lzo", PS),
    sink,
    threads: 2,
    batchPages: 4,
    onProgress: (done, total) => {
      assert.equal(total, 61);
      seen.push(done);
    },
  });
  sink.close();
  assert.equal(r.dumpablePages, 61);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  assert.equal(seen.at(-1), 61);
});

/** A worker module that compresses with a codec failing at page `failAt` (throws, or posts nothing). */
function failingWorker(dir: string, failAt: number, how: "throw" | "crash"): string {
  const path = `${dir}/failing-worker-${how}.ts`;
  const body = how === "throw"
    ? `import { startCodecWorker } from ${JSON.stringify(codecWorkerModule)};
let n = 0;
startCodecWorker(() => ({
  name: "lzo", flag: 2, impl: "test",
  compress(page) { if (++n >= ${failAt}) throw new Error("disk on fire"); return page.subarray(0, 100); },
  decompress() { return false; },
}));`
    : `let n = 0;
self.onmessage = (e) => { if (e.data.type === "batch" && ++n >= ${failAt}) throw new Error("worker crashed"); };`;
  Deno.writeTextFileSync(path, body);
  return new URL(`file://${path}`).href;
}

Deno.test("parallel writer: worker errors become VmsiftError, the DUMPFILE is removed", async () => {
  using m = mini();
  const src = miniSource(m.core, 1);
  const lzo = createCodec("lzo", PS);
  const cases: [string, Partial<ParallelWriteOptions>, RegExp][] = [
    ["codec throws", { workerUrl: failingWorker(m.dir, 5, "throw") }, /compression worker: disk on fire/],
    [
      "worker crashes",
      { workerUrl: failingWorker(m.dir, 2, "crash") },
      /compression worker failed:.*worker crashed/,
    ],
  ];
  for (const [what, extra, re] of cases) {
    // (Deno also prints the crashed worker's uncaught error on stderr)
    for (const threads of what === "worker crashes" ? [2] : [1, 2, 3]) {
      const out = `${m.dir}/fail.kdump`;
      await assert.rejects(
        () => writeTo(out, src, lzo, threads, { batchPages: 2, ...extra }),
        (e: unknown) => e instanceof VmsiftError && re.test(e.message) && e.place.file === out,
        `${what}, ${threads} threads`,
      );
      assert.ok(!exists(out), `${what}: no partial DUMPFILE`);
    }
  }
  // a codec the workers cannot make (not in the registry): fails at the first batch
  const odd: PageCodec = {
    name: "nosuch",
    flag: 2,
    impl: "test",
    compress: () => null,
    decompress: () => false,
  };
  await assert.rejects(
    () => writeTo(`${m.dir}/odd.kdump`, src, odd, 2),
    (e: unknown) => e instanceof VmsiftError && /compression worker:.*nosuch/.test(e.message),
  );
  assert.ok(!exists(`${m.dir}/odd.kdump`));
  await assert.rejects(() => writeTo(`${m.dir}/zero.kdump`, src, lzo, 0.5), VmsiftError);
});

Deno.test("parallel writer: lane errors become VmsiftError, the DUMPFILE is removed, no call left running", async () => {
  using m = mini();
  const src = miniSource(m.core, 1);
  const real = createCodec("zlib", PS, { impl: "auto" });
  assert.ok(lanesSupported(real), `${real.impl}: an FFI engine (libdeflate or libz) runs in lanes`);
  for (const threads of [1, 2, 3]) {
    let n = 0, running = 0;
    // the first lane is this codec itself; the others are new instances of its engine
    const failing: PageCodec = {
      name: real.name,
      flag: real.flag,
      impl: "test",
      engine: real.engine,
      compress: (p) => real.compress(p),
      decompress: (d, o) => real.decompress(d, o),
      async compressAsync(p) {
        if (++n >= 5) throw new Error("disk on fire");
        running++;
        try {
          return await real.compressAsync!(p);
        } finally {
          running--;
        }
      },
    };
    const out = `${m.dir}/lane-fail.kdump`;
    await assert.rejects(
      () => writeTo(out, src, failing, threads, { batchPages: 2 }),
      (e: unknown) =>
        e instanceof VmsiftError && /compression: disk on fire/.test(e.message) && e.place.file === out,
      `${threads} threads`,
    );
    assert.equal(running, 0, "the writer returns only when no lane has a library call running");
    assert.ok(!exists(out), "no partial DUMPFILE");
  }
});

Deno.test("parallel writer: workers are terminated, the process exits by itself", async () => {
  using m = mini();
  // a script without Deno.exit: it only ends when no worker is left (success and failure)
  const script = `${m.dir}/run.ts`;
  const writer = new URL("../formats/kdump/parallelWriter.ts", import.meta.url).href;
  const registry = new URL("../formats/codecs/registry.ts", import.meta.url).href;
  const elf = new URL("../formats/elfCore.ts", import.meta.url).href;
  const bitmap = new URL("../core/bitmap.ts", import.meta.url).href;
  Deno.writeTextFileSync(
    script,
    `import { writeKdumpParallel } from ${JSON.stringify(writer)};
import { createCodec } from ${JSON.stringify(registry)};
import { ElfCore } from ${JSON.stringify(elf)};
import { MemBitmap } from ${JSON.stringify(bitmap)};
const core = ElfCore.open(${JSON.stringify(`${m.dir}/mini.vmcore`)});
const b = new MemBitmap(${A_PAGES});
b.setRange(0, ${A_PAGES});
const src = { mem: core, bitmap1: b, bitmap2: b, maxMapnr: ${A_PAGES}, pageSize: 4096, noteBytes: new Uint8Array(8),
  vmcoreinfoOffsetInNotes: -1, vmcoreinfoSize: 0, utsname: new Uint8Array(390), crashTime: 0, nrCpus: 1,
  physBase: 0n, dumpLevel: 1 };
let bytes = 0;
const sink = { label: "mem", write(_o, d) { bytes += d.length; }, rewrite() {}, finish() {}, close() {}, abort() {} };
const r = await writeKdumpParallel(src, { codec: createCodec("zstd"), sink, threads: 3, batchPages: 4 });
console.log("pages", r.dumpablePages);
const bad = { name: "nosuch", flag: 2, impl: "t", compress: () => null, decompress: () => false };
await writeKdumpParallel(src, { codec: bad, sink, threads: 2 }).catch((e) => console.log("failed", e.name));
core.close();
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /pages 40\nfailed VmsiftError\n/);
});

Deno.test("--num-threads: N >= 1, not with --split or -E (makedumpfile's constraints)", () => {
  const dump = (args: string[]) => parseCommandLine([...args, "vmcore", "dumpfile"]);
  assert.equal(dump(["-c", "--num-threads", "2"]).numThreads, 2);
  assert.equal(dump(["-c", "--num-threads=3", "-d", "31"]).numThreads, 3);
  assert.equal(dump(["-l", "--num-threads", "1"]).numThreads, 1);
  assert.equal(dump(["-c"]).numThreads, undefined);
  assert.throws(() => dump(["-c", "--num-threads", "0"]), UsageError);
  assert.throws(() => dump(["-c", "--num-threads", "two"]), UsageError);
  assert.throws(() => dump(["-c", "--num-threads"]), UsageError);
  assert.throws(
    () => dump(["-c", "--num-threads", "2", "--split"]),
    /--num-threads cannot be used with --split/,
  );
  assert.throws(() => dump(["--num-threads", "2", "-E"]), /--num-threads cannot be used with ELF/);
});

// ---------------------------------------------------------------------------------------------------------
// The real fixture through the CLI.

Deno.test({
  name: "parallel writer: real fixture, --num-threads 1/2/3 = single-threaded output for every codec",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      for (const [opt, level] of [["-c", "31"], ["-l", "31"], ["-z", "31"], ["-p", "31"], ["-l", "1"]]) {
        const base = ["--message-level", "0", "--no-direct-io", opt, "-d", level, vmcore];
        const ref = `${dir}/ref.kdump`;
        const r0 = await runVmsift([...base, ref]);
        assert.equal(r0.code, 0, r0.stderr);
        const want = await sha256File(ref);
        const outs = [1, 2, 3].map((t) => `${dir}/t${t}.kdump`);
        const runs = await Promise.all(
          [1, 2, 3].map((t) => runVmsift(["--num-threads", String(t), ...base, outs[t - 1]])),
        );
        for (let i = 0; i < 3; i++) {
          assert.equal(runs[i].code, 0, runs[i].stderr);
          assert.equal(await sha256File(outs[i]), want, `${opt} -d ${level} --num-threads ${i + 1}`);
        }
        for (const f of [ref, ...outs]) Deno.removeSync(f);
      }
    }, "vmsift-parallel-real-");
  },
});

Deno.test({
  name: "parallel writer: real fixture, a failing lane leaves no DUMPFILE (runDump)",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const out = `${dir}/broken.kdump`;
      // an FFI engine's codec (so --num-threads runs lanes) whose library call fails
      const odd: PageCodec = {
        name: "zlib",
        flag: 1,
        impl: "test",
        engine: "libdeflate",
        compress: () => null,
        decompress: () => false,
        compressAsync: () => Promise.reject(new Error("library call failed")),
      };
      await assert.rejects(
        () =>
          dumpVmcore(vmcore, {
            dumpLevel: 31,
            codec: odd,
            threads: 2,
            openSinks: () => [FileSink.create(out)],
            bitmapDir: dir,
            bitmapBudget: 8 << 20,
          }),
        /compression: library call failed/,
      );
      assert.ok(!exists(out));
    }, "vmsift-parallel-real-");
  },
});

Deno.test({
  name:
    "parallel writer: the single bundled file runs --num-threads 2 (empty dir, no cache); no worker without FFI",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const bundle = `${dir}/vmsift.js`;
      bundleVmsift(bundle);
      const empty = `${dir}/cwd`;
      Deno.mkdirSync(empty);
      const run = async (extra: string[], out: string, level = "0") => {
        const r = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-read",
            "--allow-write",
            "--allow-ffi",
            bundle,
            ...extra,
            "--message-level",
            level,
            "-c",
            "-d",
            "31",
            vmcore,
            out,
          ],
          cwd: empty,
          clearEnv: true,
          env: { DENO_DIR: `${dir}/deno-dir` },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
        return new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      };
      await run([], `${dir}/t1.kdump`);
      await run(["--num-threads", "2"], `${dir}/t2.kdump`);
      assert.equal(await sha256File(`${dir}/t2.kdump`), await sha256File(`${dir}/t1.kdump`));
      // libdeflate above runs in lanes; node:zlib would need workers, which the memory budget does not leave:
      // one thread, and one line saying so
      const said = await run(["--codec-engine", "builtin", "--num-threads", "2"], `${dir}/b2.kdump`, "6");
      const warnings = said.split("\n").filter((l) => /--num-threads/.test(l));
      assert.equal(warnings.length, 1, said);
      assert.match(
        warnings[0],
        /node:zlib would need a worker per thread.*64 MiB.*compressing on one thread/,
      );
    }, "vmsift-parallel-bundle-");
  },
});
