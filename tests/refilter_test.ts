/**
 * Re-filtering kdump-compressed inputs: our own -d 1 output, makedumpfile's -c -d 31 file and QEMU's
 * flattened kdump-zlib stream (a 1 GiB guest, /var/tmp/vmcore; skipped when absent), checked against the
 * ORIGINAL vmcore with verifyDump and against a direct dump of that vmcore. Plus the flattened-stream index
 * on constructed streams (unordered and overlapping records, gaps).
 */
import assert from "node:assert/strict";
import { openInput } from "../dump/input.ts";
import { planDump } from "../dump/plan.ts";
import { dumpVmcore, runDump } from "../dump/run.ts";
import { createCodec } from "../formats/codecs/registry.ts";
import { encodeFlatHeader, encodeRecordHeader } from "../formats/flatReader.ts";
import { FlatIndexedFile, openKdumpInput, sniffDumpFormat } from "../formats/kdump/inputKdump.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { FileSink } from "../io/fileSink.ts";
import { haveReal, isFile, realVmcore, unpackReal } from "./support/fixture.ts";

const QEMU_FLAT = "/var/tmp/vmcore/qemu-zlib-1G.kdump";
const QEMU_ELF = "/var/tmp/vmcore/vmcore-1G.elf";

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

function direct(vmcore: string, level: number, out: string, dir: string) {
  return dumpVmcore(vmcore, {
    dumpLevel: level,
    codec: createCodec("zlib"),
    openSinks: () => [FileSink.create(out, { overwrite: true })],
    bitmapDir: dir,
    bitmapBudget: 1 << 30,
  });
}

/** Re-filter through the same dump layer as a direct dump; also returns the input's level and max_mapnr. */
async function refilter(path: string, level: number, out: string) {
  const input = openInput(path);
  try {
    assert.ok(input.format !== "elf");
    const plan = await planDump(input, {
      dumpLevel: level,
      codec: createCodec("zlib"),
      bitmapBudget: 1 << 30,
    });
    const report = await runDump(plan, { openSinks: () => [FileSink.create(out, { overwrite: true })] });
    return { ...report, inputLevel: input.kdump.dumpLevel, input: input.kdump };
  } finally {
    input.close();
  }
}

function bitmap2Of(path: string): Uint8Array {
  const k = KdumpFile.open(path);
  try {
    return k.bitmap2.bytes.slice();
  } finally {
    k.close();
  }
}

Deno.test("FlatIndexedFile: records out of order, overlapping (later wins) and gaps (zeros)", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-flatidx-" });
  try {
    const path = `${dir}/s.flat`;
    const parts: Uint8Array[] = [encodeFlatHeader()];
    const rec = (offset: number, bytes: number[]) => {
      const h = new Uint8Array(16);
      encodeRecordHeader(h, 0, offset, bytes.length);
      parts.push(h, new Uint8Array(bytes));
    };
    rec(10, [1, 2, 3, 4]); // [10,14)
    rec(0, [9, 9]); // [0,2)
    rec(12, [7, 7, 7]); // overlaps [12,14) and extends to 15
    rec(20, [5]); // gap [15,20)
    rec(0, [8]); // overwrites byte 0
    const end = new Uint8Array(16);
    encodeRecordHeader(end, 0, -1, -1);
    parts.push(end);
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    Deno.writeFileSync(path, all);
    assert.equal(sniffDumpFormat(path), "flattened");
    const f = FlatIndexedFile.open(path);
    try {
      assert.equal(f.size, 21);
      assert.equal(f.records, 5);
      const out = new Uint8Array(24).fill(0xee);
      assert.equal(f.readAt(0, out), 21);
      assert.deepEqual(
        Array.from(out.subarray(0, 21)),
        [8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 7, 7, 7, 0, 0, 0, 0, 0, 5],
      );
      const mid = new Uint8Array(4);
      f.readExact(11, mid);
      assert.deepEqual(Array.from(mid), [2, 7, 7, 7]);
      assert.throws(() => f.readExact(19, new Uint8Array(4)), /short read/);
    } finally {
      f.close();
    }
    // Truncated stream and missing end marker are errors with the stream offset.
    Deno.writeFileSync(path, all.subarray(0, all.length - 16));
    assert.throws(() => FlatIndexedFile.open(path), /without the end marker/);
    Deno.writeFileSync(path, all.subarray(0, 4096 + 16 + 2));
    assert.throws(() => FlatIndexedFile.open(path), /truncated/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "refilter our -d 1 output to -d 31: same counts and bytes as a direct -d 31, verifies vs the vmcore",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-refilter-" });
    try {
      const d1 = `${dir}/d1`, d31 = `${dir}/d31`, re = `${dir}/re31`;
      await direct(vmcore, 1, d1, dir);
      const want = await direct(vmcore, 31, d31, dir);
      const inp = openKdumpInput(d1);
      assert.equal(inp.format, "kdump");
      assert.equal(inp.dumpLevel, 1);
      inp.close();
      const got = await refilter(d1, 31, re);
      assert.equal(got.inputLevel, 1);
      assert.equal(got.dumpLevel, 31);
      for (const k of ["cache", "cachePrivate", "user", "free", "zero", "original", "total"] as const) {
        assert.equal(got.stats[k], want.stats[k], k);
      }
      assert.equal(got.write.dumpablePages, want.write.dumpablePages);
      assert.deepEqual(bitmap2Of(re), bitmap2Of(d31));
      // Same header (utsname, crash time, nr_cpus, phys_base), notes, bitmaps and data.
      assert.equal(await sha256(re), await sha256(d31));
      const v = verifyDump(re, vmcore);
      assert.ok(v.ok, v.summary + "\n" + v.problems.join("\n"));
      // Re-filtering a -d 31 file at a lower level keeps the input's level (31 | 1).
      const again = await refilter(re, 1, `${dir}/again`);
      assert.equal(again.dumpLevel, 31);
      assert.deepEqual(bitmap2Of(`${dir}/again`), bitmap2Of(d31));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "refilter makedumpfile's -c -d 31 file at -d 31: exactly its pages, verifies vs the vmcore",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    const mdf = await unpackReal("makedumpfile-c-d31.kdump");
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-refilter-" });
    try {
      const re = `${dir}/re31`;
      const got = await refilter(mdf, 31, re);
      assert.equal(got.dumpLevel, 31);
      assert.deepEqual(bitmap2Of(re), bitmap2Of(mdf));
      const a = KdumpFile.open(re), b = KdumpFile.open(mdf);
      try {
        assert.equal(a.maxMapnr, b.maxMapnr);
        assert.equal(a.numDumpable, b.numDumpable);
        assert.deepEqual(a.bitmap1.bytes, b.bitmap1.bytes);
        assert.deepEqual(a.notes, b.notes);
        assert.equal(a.vmcoreinfo, b.vmcoreinfo);
        assert.equal(a.subHeader.physBase, b.subHeader.physBase);
        assert.equal(a.header.nrCpus, b.header.nrCpus);
        assert.deepEqual(a.header.utsname, b.header.utsname);
      } finally {
        a.close();
        b.close();
      }
      const v = verifyDump(re, vmcore);
      assert.ok(v.ok, v.summary + "\n" + v.problems.join("\n"));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "refilter QEMU's flattened kdump-zlib (1 GiB guest) to -d 31: counts of a direct -d 31, verifies",
  ignore: !isFile(QEMU_FLAT) || !isFile(QEMU_ELF),
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "vmsift-refilter-qemu-" });
    try {
      const d31 = `${dir}/d31`, re = `${dir}/re31`;
      const want = await direct(QEMU_ELF, 31, d31, dir);
      const got = await refilter(QEMU_FLAT, 31, re);
      assert.equal(got.input.format, "flattened");
      assert.equal(got.inputLevel, 1);
      assert.equal(got.input.maxMapnr, 0x100000); // QEMU: pfn space up to the highest guest block
      assert.equal(got.stats.total, want.stats.total); // lowered to the last mem_map section like direct
      for (const k of ["cache", "cachePrivate", "user", "free", "zero", "original"] as const) {
        assert.equal(got.stats[k], want.stats[k], k);
      }
      assert.equal(got.write.dumpablePages, want.write.dumpablePages);
      assert.deepEqual(bitmap2Of(re), bitmap2Of(d31));
      // phys_base from VMCOREINFO (QEMU's sub header value is wrong), notes, nr_cpus, utsname: all agree,
      // so the re-filtered file is the direct file byte for byte.
      assert.equal(await sha256(re), await sha256(d31));
      const v = verifyDump(re, QEMU_ELF);
      assert.ok(v.ok, v.summary + "\n" + v.problems.join("\n"));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
