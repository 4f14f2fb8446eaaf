/**
 * --split and --reassemble: range computation against hand-computed makedumpfile semantics, byte identity
 * of reassembled split files with the direct file (our writer), and interoperability with makedumpfile
 * 1.7.2 (--split / --reassemble) and crash 8 on the real fixture (skipped when absent).
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import { openInput } from "../dump/input.ts";
import { filterInput } from "../dump/filter.ts";
import { createCodec } from "../formats/codecs/registry.ts";
import { decodeSubHeader } from "../formats/kdump/header.ts";
import { reassembleKdump } from "../formats/kdump/reassemble.ts";
import { splitblockTable, splitRanges, writeKdumpSplit } from "../formats/kdump/split.ts";
import { type KdumpSource, writeKdump } from "../formats/kdump/writer.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { FileSink } from "../io/fileSink.ts";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { sha256File } from "./support/compare.ts";

function have(cmd: string, args: string[]): boolean {
  try {
    new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
}

function subHeaderOf(path: string) {
  const f = Deno.openSync(path);
  const b = new Uint8Array(4096 + 104);
  f.readSync(b);
  f.close();
  return decodeSubHeader(b.subarray(4096));
}

Deno.test("splitRanges: makedumpfile's splitblock rule (whole blocks, last partial block counts 0)", () => {
  const ps = 4096;
  // 10 blocks of 8 pfns + a partial block of 4; dumpable counts per block 8,0,8,8,0,0,8,8,8,8 and 4.
  const bm = new MemBitmap(84);
  for (const b of [0, 2, 3, 6, 7, 8, 9]) bm.setRange(b * 8, b * 8 + 8);
  bm.setRange(80, 84);
  const table = splitblockTable(bm, 84, 8);
  assert.deepEqual(Array.from(table), [8, 0, 8, 8, 0, 0, 8, 8, 8, 8, 0]);
  // total 60: 2 files need 30 each → blocks until ≥ 30: 8+0+8+8+0+0+8 = 32 after 7 blocks → end 56.
  assert.deepEqual(splitRanges(bm, 84, 2, ps, 8 * ps), [{ startPfn: 0, endPfn: 56 }, {
    startPfn: 56,
    endPfn: 84,
  }]);
  // 3 files need 20: [0,32) (24 pages), then 8+8 = 16 < 20 → +8 → [32,72), last [72,84).
  assert.deepEqual(splitRanges(bm, 84, 3, ps, 8 * ps), [
    { startPfn: 0, endPfn: 32 },
    { startPfn: 32, endPfn: 72 },
    { startPfn: 72, endPfn: 84 },
  ]);
  // One block bigger than the dump: its entry is 0 (partial), so file 1 takes everything, file 2 nothing.
  assert.deepEqual(splitRanges(bm, 84, 2, ps, 1 << 30), [{ startPfn: 0, endPfn: 84 }, {
    startPfn: 84,
    endPfn: 84,
  }]);
  assert.throws(() => splitRanges(bm, 84, 1, ps), RangeError);
  assert.throws(() => splitRanges(bm, 84, 2, ps, 1000), RangeError);
});

/** The dump layer's filter (ELF → model → bitmaps → scan) as a KdumpSource. */
function elfSource(
  vmcore: string,
  level: number,
  kernelImageGuard = true,
): { src: KdumpSource; close: () => void } {
  const input = openInput(vmcore);
  try {
    const f = filterInput(
      input,
      { dumpLevel: level, imageGuard: kernelImageGuard },
      (n) => ({ bitmap1: new MemBitmap(n), bitmap2: new MemBitmap(n) }),
    );
    return { src: f.source, close: () => input.close() };
  } catch (e) {
    input.close();
    throw e;
  }
}

function writeDirect(src: KdumpSource, path: string): void {
  const sink = FileSink.create(path, { overwrite: true });
  writeKdump(src, { codec: createCodec("zlib"), sink });
  sink.close();
}

function writeSplit(src: KdumpSource, paths: string[], splitblockSize?: number) {
  const sinks = paths.map((p) => FileSink.create(p, { overwrite: true }));
  const r = writeKdumpSplit(src, sinks, { codec: createCodec("zlib"), splitblockSize });
  for (const s of sinks) s.close();
  return r;
}

function reassemble(parts: string[], out: string) {
  const sink = FileSink.create(out, { overwrite: true });
  const r = reassembleKdump(parts, sink);
  sink.close();
  return r;
}

Deno.test({
  name:
    "split into 2 and 3 files, reassembled: byte-identical to the direct file (real fixture, -d 31 and -d 1)",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-split-" });
    try {
      for (const level of [31, 1]) {
        const { src, close } = elfSource(vmcore, level);
        try {
          const direct = `${dir}/direct-${level}`;
          writeDirect(src, direct);
          const want = await sha256File(direct);
          const total = src.bitmap2.popcount();
          for (const [n, sb] of [[2, 4 << 20], [3, 4 << 20], [2, undefined], [3, 1 << 20]] as const) {
            const parts = Array.from({ length: n }, (_, i) => `${dir}/p${level}-${n}-${sb}-${i}`);
            const r = writeSplit(src, parts, sb);
            // Ranges tile [0, max_mapnr); headers say so; pages add up.
            assert.equal(r.ranges[0].startPfn, 0);
            assert.equal(r.ranges[n - 1].endPfn, src.maxMapnr);
            assert.equal(r.total.dumpablePages, total);
            parts.forEach((p, i) => {
              const s = subHeaderOf(p);
              assert.equal(s.split, 1);
              assert.equal(s.startPfn64, r.ranges[i].startPfn);
              assert.equal(s.endPfn64, r.ranges[i].endPfn);
              assert.equal(s.startPfn, r.ranges[i].startPfn);
              assert.equal(s.endPfn, r.ranges[i].endPfn);
              assert.equal(
                r.files[i].dumpablePages,
                src.bitmap2.popcount(r.ranges[i].startPfn, r.ranges[i].endPfn),
              );
            });
            if (sb === undefined) {
              // The fixture (128 MiB) is smaller than one 1 GiB splitblock: makedumpfile gives all to file 1.
              assert.equal(r.ranges[0].endPfn, src.maxMapnr);
            } else {
              assert.ok(r.files.every((f) => f.dumpablePages > 0), `${n} parts of ${sb}: all non-empty`);
            }
            const out = `${dir}/re-${level}-${n}-${sb}`;
            // Any order of the parts.
            const rr = reassemble([...parts].reverse(), out);
            assert.equal(rr.numDumpable, total);
            assert.equal(await sha256File(out), want, `level ${level}, ${n} parts, splitblock ${sb}`);
            for (const p of parts) Deno.removeSync(p);
            Deno.removeSync(out);
          }
        } finally {
          close();
        }
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "reassemble rejects gaps, duplicates, non-split files and parts of another dump",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-split-" });
    const { src, close } = elfSource(vmcore, 31);
    try {
      const parts = [0, 1, 2].map((i) => `${dir}/p${i}`);
      writeSplit(src, parts, 4 << 20);
      const direct = `${dir}/direct`;
      writeDirect(src, direct);
      const fails = (inputs: string[], re: RegExp) => {
        const sink = FileSink.create(`${dir}/out`, { overwrite: true });
        try {
          assert.throws(() => reassembleKdump(inputs, sink), re);
        } finally {
          sink.abort();
        }
      };
      fails([parts[0], parts[2]], /no split file holds pfns/);
      fails([parts[0], parts[1]], /no split file holds pfns .* \(max_mapnr\)/);
      fails([parts[0], parts[0], parts[1], parts[2]], /no split file holds/);
      fails([parts[0], direct], /not a split dump file/);
      fails([parts[0]], /at least 2/);
      // A part of a dump at another level: the main headers agree, but the bitmaps differ — makedumpfile
      // does not check bitmaps either; a different utsname/timestamp/status is caught.
      const other = `${dir}/other`;
      Deno.copyFileSync(parts[1], other);
      const f = Deno.openSync(other, { write: true });
      f.seekSync(408, Deno.SeekMode.Start);
      f.writeSync(new Uint8Array([0x55]));
      f.close();
      fails([parts[0], other, parts[2]], /main headers differ/);
    } finally {
      close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const HAVE_MDF = have("makedumpfile", ["-v"]);

Deno.test({
  name: "makedumpfile 1.7.2 interop: same ranges, cross-reassembly, crash accepts our split set",
  ignore: !haveReal() || !HAVE_MDF,
  async fn(t) {
    const vmcore = await realVmcore();
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-split-" });
    // Without our kernel-image guard, bitmap 2 is makedumpfile's exactly, so its ranges must be ours.
    const { src, close } = elfSource(vmcore, 31, false);
    const run = (cmd: string, args: string[]) => {
      const o = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
      return { ok: o.success, out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
    };
    try {
      const ours = [0, 1, 2].map((i) => `${dir}/ours${i}`);
      const theirs = [0, 1, 2].map((i) => `${dir}/mdf${i}`);
      writeSplit(src, ours, 4 << 20);
      const direct = `${dir}/direct`;
      writeDirect(src, direct);
      const m = run("makedumpfile", [
        "--split",
        "-c",
        "-d",
        "31",
        "--splitblock-size",
        "4096",
        vmcore,
        ...theirs,
      ]);
      assert.ok(m.ok, m.out);
      // Same pfn ranges as makedumpfile (same bitmap 2, same splitblock rule).
      for (let i = 0; i < 3; i++) {
        const a = subHeaderOf(ours[i]), b = subHeaderOf(theirs[i]);
        assert.deepEqual([a.startPfn64, a.endPfn64, a.startPfn, a.endPfn], [
          b.startPfn64,
          b.endPfn64,
          b.startPfn,
          b.endPfn,
        ]);
      }
      // makedumpfile --reassemble of OUR split files == our direct file.
      const mdfOfOurs = `${dir}/mdf-of-ours`;
      const r1 = run("makedumpfile", ["--reassemble", ...ours, mdfOfOurs]);
      assert.ok(r1.ok, r1.out);
      assert.equal(await sha256File(mdfOfOurs), await sha256File(direct));
      // Our reassembly of makedumpfile's split files == makedumpfile's own reassembly.
      const mdfOfMdf = `${dir}/mdf-of-mdf`;
      const r2 = run("makedumpfile", ["--reassemble", ...theirs, mdfOfMdf]);
      assert.ok(r2.ok, r2.out);
      const oursOfMdf = `${dir}/ours-of-mdf`;
      reassemble(theirs, oursOfMdf);
      assert.equal(await sha256File(oursOfMdf), await sha256File(mdfOfMdf));
      // The reassembled file reads back and equals the vmcore page for page.
      const v = verifyDump(oursOfMdf, vmcore);
      assert.ok(v.ok, v.summary + "\n" + v.problems.join("\n"));
      // crash opens our split set (several dump files at once).
      await t.step({
        name: "crash opens our split set",
        ignore: !have("crash", ["--version"]),
        fn: () => {
          const c = run("crash", ["--osrelease", ...ours]);
          assert.ok(c.ok, c.out);
          assert.match(c.out, /^6\.1\./m);
        },
      });
    } finally {
      close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
