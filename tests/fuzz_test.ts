/**
 * The fuzzer in CI: every kept input in fuzz/corpus/ must now end in success or a VmsiftError with a place
 * (replayed in worker subprocesses with the hang watchdog), and a short fuzz run must find nothing. The
 * harness pieces are checked against constructed inputs so that a broken harness cannot pass silently.
 */
import { tempDir } from "./support/run.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VmsiftError } from "../core/errors.ts";
import { applyPatches, encode, OverlayMem, PatchedFile, Rng } from "../fuzz/mutators.ts";
import { BadErrorReport, checkError } from "../fuzz/targets.ts";
import type { PhysicalMemory } from "../core/physMem.ts";

const RUN = fileURLToPath(new URL("../fuzz/run.ts", import.meta.url));

/** Run the fuzzer with its seeds in a fresh directory (no seeds from an earlier run or another test). */
async function fuzz(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = tempDir("vmsift-fuzz-seeds-");
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", RUN, "--dir", dir, ...args] })
      .output();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("fuzz: Rng is deterministic and spreads", () => {
  const a = new Rng("x:1"), b = new Rng("x:1"), c = new Rng("x:2");
  const sa = Array.from({ length: 8 }, () => a.u32());
  assert.deepEqual(sa, Array.from({ length: 8 }, () => b.u32()));
  assert.notDeepEqual(sa, Array.from({ length: 8 }, () => c.u32()));
  const hist = new Array(10).fill(0);
  for (let i = 0; i < 10000; i++) hist[a.int(10)]++;
  for (const h of hist) assert.ok(h > 800 && h < 1200, `int(10) histogram ${hist}`);
});

Deno.test("fuzz: encode is little-endian by default, big-endian on request, modulo the size", () => {
  assert.deepEqual(encode(0x0102n, 4), [2, 1, 0, 0]);
  assert.deepEqual(encode(0x0102n, 4, true), [0, 0, 1, 2]);
  assert.deepEqual(encode(-1n, 2), [0xff, 0xff]);
});

Deno.test("fuzz: OverlayMem lays patches over the base without touching it", () => {
  const bytes = new Uint8Array(8192).map((_, i) => i & 0xff);
  const base: PhysicalMemory = {
    label: "base",
    segments: [{ paddr: 0, memSize: 8192, fileSize: 8192, fileOffset: 0, vaddr: 0n }],
    readPhys(pa, out) {
      if (pa < 0 || pa + out.length > 8192) return false;
      out.set(bytes.subarray(pa, pa + out.length));
      return true;
    },
  };
  const m = new OverlayMem(base, [{ at: 4094, bytes: [0xaa, 0xbb, 0xcc, 0xdd] }, { at: 10, bytes: [1] }]);
  const out = new Uint8Array(8);
  assert.ok(m.readPhys(4092, out));
  assert.deepEqual([...out], [0xfc, 0xfd, 0xaa, 0xbb, 0xcc, 0xdd, 0x02, 0x03]);
  assert.ok(m.readPhys(4097, out.subarray(0, 2)));
  assert.deepEqual([...out.subarray(0, 2)], [0xdd, 0x02]);
  assert.equal(bytes[4094], 0xfe, "base unchanged");
  assert.equal(m.readPhys(8190, out), false, "outside the base stays unreadable");
  assert.deepEqual([...applyPatches(bytes.subarray(0, 4), [{ at: 2, bytes: [9, 9, 9] }])], [0, 1, 9, 9]);
});

Deno.test("fuzz: PatchedFile restores the seed after patches and truncation", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-fuzz-test-" });
  try {
    const seed = new Uint8Array(10000).map((_, i) => (i * 7) & 0xff);
    Deno.writeFileSync(`${dir}/seed`, seed);
    const c = new PatchedFile(`${dir}/seed`, `${dir}/copy`, { fresh: true });
    c.apply([{ at: 5, bytes: [1, 2, 3] }, { at: 9998, bytes: [4, 4, 4, 4] }]);
    const patched = Deno.readFileSync(`${dir}/copy`);
    assert.deepEqual([...patched.subarray(5, 8)], [1, 2, 3]);
    assert.equal(patched.length, 10000, "patches past the end are clipped");
    c.restore();
    assert.deepEqual(Deno.readFileSync(`${dir}/copy`), seed);
    c.apply([], 100);
    assert.equal(Deno.statSync(`${dir}/copy`).size, 100);
    c.restore();
    assert.deepEqual(Deno.readFileSync(`${dir}/copy`), seed);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fuzz: the error contract rejects VmsiftErrors without a place or on several lines", () => {
  checkError(new VmsiftError("fine", { file: "x", offset: 3 }));
  checkError(new VmsiftError("fine", { address: 0x1000n }));
  assert.throws(() => checkError(new VmsiftError("where?")), BadErrorReport);
  assert.throws(() => checkError(new VmsiftError("two\nlines", { file: "x" })), BadErrorReport);
});

Deno.test({
  name: "fuzz: every kept corpus input now ends in success or a VmsiftError (replay with watchdog)",
  sanitizeResources: false,
  fn: async () => {
    const r = await fuzz(["--replay", "--quiet", "--hang-ms", "60000"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /replayed \d+ corpus inputs: 0 failures/);
  },
});

Deno.test({
  name: "fuzz: a short structured fuzz run over every target finds nothing",
  sanitizeResources: false,
  fn: async () => {
    const r = await fuzz([
      "--count",
      "400",
      "--seed",
      "ci-1",
      "--no-save",
      "--json",
      "--quiet",
      "--hang-ms",
      "60000",
    ]);
    const line = r.stdout.trim().split("\n").pop() ?? "";
    let summary: { inputs: number; failures: unknown[]; perTarget: Record<string, { inputs: number }> };
    try {
      summary = JSON.parse(line);
    } catch {
      throw new Error(`no summary: ${r.stdout}\n${r.stderr}`);
    }
    assert.deepEqual(summary.failures, [], JSON.stringify(summary.failures, null, 1));
    assert.equal(r.code, 0);
    assert.ok(summary.inputs >= 350, `ran ${summary.inputs} inputs`);
    for (const t of ["elf", "notes", "kdump", "flat", "verify", "oldlog"]) {
      assert.ok((summary.perTarget[t]?.inputs ?? 0) > 0, `target ${t} ran`);
    }
  },
});
