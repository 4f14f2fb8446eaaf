/**
 * The kdump writer, reader and verifier against the real 6.1 fixture and makedumpfile 1.7.2.
 * Skips when the fixture (../shared) is absent; the byte-identity tests also skip without makedumpfile.
 */
import assert from "node:assert/strict";
import { ElfCore } from "../formats/elfCore.ts";
import type { MemBitmap } from "../core/bitmap.ts";
import { FileSink } from "../io/fileSink.ts";
import { type KdumpSource, writeKdump } from "../formats/kdump/writer.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { describeDump } from "../formats/kdump/info.ts";
import { zlibCodec } from "../formats/codecs/zlib.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { kdumpSourceFromElf } from "./support/elfSource.ts";
import { haveReal, realVmcore, unpackReal } from "./support/fixture.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

/** max_mapnr of the real fixture (makedumpfile lowers it to the last section with a mem_map). */
const REAL_MAX_MAPNR = 0x8000;

function haveMakedumpfile(): boolean {
  try {
    return new Deno.Command("makedumpfile", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

function writeTo(src: KdumpSource, path: string, codec: PageCodec | null) {
  const sink = FileSink.create(path, { overwrite: true });
  try {
    const r = writeKdump(src, { codec, sink });
    sink.close();
    return r;
  } catch (e) {
    sink.abort();
    throw e;
  }
}

function sameFiles(a: string, b: string): string | null {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  if (x.length !== y.length) return `sizes differ: ${x.length} vs ${y.length}`;
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) return `first difference at byte 0x${i.toString(16)}`;
  }
  return null;
}

const real = haveReal();
const mdf = real && haveMakedumpfile();

for (const level of [0, 1]) {
  Deno.test({
    name: `kdump real: our -d ${level} output is byte-identical to makedumpfile -d ${level}`,
    ignore: !mdf,
    async fn() {
      const vmcore = await realVmcore();
      const dir = Deno.makeTempDirSync({ prefix: "vmsift-kdump-" });
      try {
        const theirs = `${dir}/mdf.kdump`, ours = `${dir}/ours.kdump`;
        const out = new Deno.Command("makedumpfile", { args: ["-d", String(level), vmcore, theirs] })
          .outputSync();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
        const core = ElfCore.open(vmcore);
        try {
          const t0 = performance.now();
          const r = writeTo(kdumpSourceFromElf(core, REAL_MAX_MAPNR, { dumpLevel: level }), ours, null);
          const secs = (performance.now() - t0) / 1000;
          console.log(
            `  write -d ${level}: ${(r.fileSize / 1e6 / secs).toFixed(0)} MB/s out (${secs.toFixed(2)} s)`,
          );
          const expected = level === 0 ? 32736 : 32736 - 10738;
          assert.equal(r.dumpablePages, 32736);
          assert.equal(r.dumpablePages - r.zeroPages, expected);
        } finally {
          core.close();
        }
        assert.equal(sameFiles(ours, theirs), null);
        const t1 = performance.now();
        const rep = verifyDump(ours, vmcore);
        const vs = (performance.now() - t1) / 1000;
        console.log(
          `  verify -d ${level}: ${(Deno.statSync(ours).size / 1e6 / vs).toFixed(0)} MB/s (${
            vs.toFixed(2)
          } s)`,
        );
        assert.deepEqual(rep.problems, []);
        assert.ok(rep.ok);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "kdump real: zlib -d 1 round trip verifies",
  ignore: !real,
  async fn() {
    const vmcore = await realVmcore();
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-kdump-" });
    try {
      const core = ElfCore.open(vmcore);
      const t0 = performance.now();
      let r;
      try {
        r = writeTo(kdumpSourceFromElf(core, REAL_MAX_MAPNR, { dumpLevel: 1 }), `${dir}/c.kdump`, zlibCodec);
      } finally {
        core.close();
      }
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `  write -c -d 1: ${(32736 * 4096 / 1e6 / secs).toFixed(0)} MB/s of memory (${secs.toFixed(2)} s)`,
      );
      assert.ok(r.compressedPages > 10000);
      const t1 = performance.now();
      const rep = verifyDump(`${dir}/c.kdump`, vmcore);
      const vs = (performance.now() - t1) / 1000;
      console.log(
        `  verify -c -d 1: ${(32736 * 4096 / 1e6 / vs).toFixed(0)} MB/s of memory (${vs.toFixed(2)} s)`,
      );
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.counts.compressedPages, r.compressedPages);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "kdump real: reader and verify accept makedumpfile -c -d 31",
  ignore: !real,
  async fn() {
    const vmcore = await realVmcore();
    const ref = await unpackReal("makedumpfile-c-d31.kdump");
    const k = KdumpFile.open(ref);
    try {
      assert.equal(k.header.headerVersion, 6);
      assert.equal(k.header.status, 1);
      assert.equal(k.maxMapnr, REAL_MAX_MAPNR);
      assert.equal(k.subHeader.dumpLevel, 31);
      assert.equal(k.subHeader.physBase, 0xffffffffe3c00000n);
      // remaining + zero pages at -d 31 (zero pages keep their bitmap-2 bit and share one descriptor)
      assert.equal(k.numDumpable, 13692 + 5778);
    } finally {
      k.close();
    }
    const t0 = performance.now();
    const rep = verifyDump(ref, vmcore);
    console.log(`  verify makedumpfile -c -d 31: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    assert.deepEqual(rep.problems, []);
    assert.ok(rep.ok);
    assert.equal(rep.counts.descriptors, k.numDumpable);
    const info = describeDump(ref);
    assert.match(info.text, /zlib/);
  },
});

Deno.test({
  name: "kdump real: zlib output with makedumpfile's -c -d 31 bitmaps: same header area, verifies",
  ignore: !real,
  async fn() {
    // Deno's node:zlib is not classic zlib (its level 1 compresses differently), so the page data cannot be
    // byte-identical to makedumpfile -c; everything before the descriptors must be.
    const vmcore = await realVmcore();
    const ref = await unpackReal("makedumpfile-c-d31.kdump");
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-kdump-" });
    const k = KdumpFile.open(ref);
    const core = ElfCore.open(vmcore);
    try {
      const src = kdumpSourceFromElf(core, REAL_MAX_MAPNR, { dumpLevel: 31 });
      assert.deepEqual((src.bitmap1 as MemBitmap).bytes, k.bitmap1.bytes);
      (src.bitmap2 as MemBitmap).bytes.set(k.bitmap2.bytes);
      const t0 = performance.now();
      const r = writeTo(src, `${dir}/ours.kdump`, zlibCodec);
      const secs = (performance.now() - t0) / 1000;
      console.log(`  write -c -d 31: ${(r.dumpablePages * 4096 / 1e6 / secs).toFixed(0)} MB/s of pages`);
      assert.equal(r.zeroPages, 5778);
      assert.equal(r.dumpablePages, k.numDumpable);
      const ours = Deno.readFileSync(`${dir}/ours.kdump`), theirs = Deno.readFileSync(ref);
      const headArea = k.layout.dataOffset;
      assert.deepEqual(ours.subarray(0, headArea), theirs.subarray(0, headArea));
      // The first descriptor of each file is the shared zero page or a page at the same data offset.
      assert.deepEqual(ours.subarray(headArea, headArea + 8), theirs.subarray(headArea, headArea + 8));
      const rep = verifyDump(`${dir}/ours.kdump`, vmcore);
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.counts.zeroPages, 5778);
    } finally {
      k.close();
      core.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
