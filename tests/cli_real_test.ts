/**
 * The CLI on the real 6.1 fixture against makedumpfile 1.7.2's answers (expected.json, and makedumpfile's
 * own output when it is installed).
 */
import assert from "node:assert/strict";
import { haveReal, realExpected, realVmcore, realVmcoreQemuLayout } from "./support/fixture.ts";
import { assertVerifies, haveProgram, MDF_C31_ARGS, runVmsift, withTempDir } from "./support/run.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { loadLibdeflate } from "../formats/codecs/libdeflate.ts";
import { loadLibz, NativeZlibCodec } from "../formats/codecs/nativeZlib.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";
import { assertCounts, sha256File } from "./support/compare.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

const LEVELS = ["0", "1", "2", "4", "8", "16", "31"];

Deno.test({
  name: "cli real: page counts at every dump level equal makedumpfile's, and every output verifies",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    const exp = realExpected();
    await withTempDir(async (dir) => {
      for (const level of LEVELS) {
        const out = `${dir}/d${level}.kdump`;
        const json = `${dir}/d${level}.json`;
        const r = await runVmsift([
          "-c",
          "-d",
          level,
          "--no-image-guard",
          "--message-level",
          "16",
          "--stats-json",
          json,
          vmcore,
          out,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const got = JSON.parse(Deno.readTextFileSync(json));
        assertCounts(got, exp.dump_levels[level], `-d ${level}`);
        assert.match(r.stdout, /Original pages {2}: 0x0000000000007fe0/);
        await assertVerifies(out, vmcore);
        Deno.removeSync(out);
      }
    });
  },
});

Deno.test({
  name: "cli real: QEMU 7.2's original ELF layout (phdrs at 192) dumps to the same file as the fixed layout",
  ignore: !haveReal(),
  async fn() {
    await withTempDir(async (dir) => {
      const a = await runVmsift(["-d", "31", await realVmcore(), `${dir}/a.kdump`]);
      const b = await runVmsift(["-d", "31", await realVmcoreQemuLayout(), `${dir}/b.kdump`]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const fa = Deno.readFileSync(`${dir}/a.kdump`);
      const fb = Deno.readFileSync(`${dir}/b.kdump`);
      // Only the copied notes' file offsets could differ; they do not, since QEMU's notes did not move.
      assert.deepEqual(fa, fb);
    });
  },
});

Deno.test({
  name: "cli real: -d 31 without compression is byte-identical to makedumpfile -d 31",
  ignore: !haveReal() || !haveProgram("makedumpfile"),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      for (const level of ["31", "1", "0"]) {
        const ref = `${dir}/ref-${level}.kdump`;
        const mdf = new Deno.Command("makedumpfile", {
          args: ["--message-level", "0", "-d", level, vmcore, ref],
          stdout: "null",
          stderr: "piped",
        }).outputSync();
        assert.equal(mdf.code, 0, new TextDecoder().decode(mdf.stderr));
        const ours = `${dir}/ours-${level}.kdump`;
        const r = await runVmsift(["-d", level, "--no-image-guard", vmcore, ours]);
        assert.equal(r.code, 0, r.stderr);
        const a = Deno.readFileSync(ref);
        const b = Deno.readFileSync(ours);
        assert.equal(b.length, a.length, `-d ${level} size`);
        let first = -1;
        for (let i = 0; i < a.length; i++) {
          if (a[i] !== b[i]) {
            first = i;
            break;
          }
        }
        assert.equal(first, -1, `-d ${level}: first differing byte at 0x${first.toString(16)}`);
        Deno.removeSync(ref);
        Deno.removeSync(ours);
      }
    });
  },
});

Deno.test({
  name: "cli real: --dump-dmesg equals makedumpfile's dmesg.txt byte for byte; --vtop walks to init_uts_ns",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const log = `${dir}/dmesg.txt`;
      const r = await runVmsift(["--dump-dmesg", vmcore, log]);
      assert.equal(r.code, 0, r.stderr);
      const { REAL_DIR } = await import("./support/fixture.ts");
      assert.deepEqual(Deno.readFileSync(log), Deno.readFileSync(`${REAL_DIR}/dmesg.txt`));
      const again = await runVmsift(["--dump-dmesg", vmcore, log]);
      assert.equal(again.code, 1, "existing LOGFILE without -f is refused");
      const v = await runVmsift(["--vtop", "ffffffff9effb000", vmcore]);
      assert.equal(v.code, 0, v.stderr);
      // init_uts_ns is in the kernel image: PA = VA - __START_KERNEL_map + phys_base.
      const pa = (0xffffffff9effb000n - 0xffffffff80000000n + BigInt(realExpected().phys_base as number)) &
        ((1n << 64n) - 1n);
      assert.match(v.stdout, new RegExp(`ffffffff9effb000 +${pa.toString(16)}\\n`));
    });
  },
});

/** sha256 of makedumpfile 1.7.2's -c -d 31 file (expected.json). */
function mdfC31Sha256(): string {
  return (realExpected().outputs_d31 as Record<string, { sha256: string }>)["makedumpfile-c-d31.kdump"]
    .sha256;
}

Deno.test({
  name: "cli real: -c -d 31 --codec-engine libz is byte-identical to makedumpfile's -c -d 31 file",
  ignore: !haveReal() || !loadLibz().ok,
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const out = `${dir}/c31.kdump`;
      const r = await runVmsift([
        ...MDF_C31_ARGS,
        "--no-image-guard",
        "-D",
        vmcore,
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /codec: zlib \(libz 1\.\d+\.\d+ \(FFI\)\)/);
      assert.equal(await sha256File(out), mdfC31Sha256());
    });
  },
});

Deno.test({
  name:
    "cli real: -c -d 31 by default (libdeflate): pages uncompress() with libz, verify, 1 and 2 threads same",
  ignore: !haveReal() || !loadLibdeflate().ok || !loadLibz().ok,
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const one = `${dir}/t1.kdump`, two = `${dir}/t2.kdump`;
      const r = await runVmsift(["-c", "-d", "31", "--no-image-guard", "-D", vmcore, one]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /codec: zlib \(libdeflate \(FFI\)\)/);
      assert.doesNotMatch(r.stderr + r.stdout, /warning/);
      // valid zlib, but not makedumpfile's bytes (that is --codec-engine libz)
      assert.notEqual(await sha256File(one), mdfC31Sha256());
      // every compressed page decodes with zlib's own uncompress() (crash's call) to exactly one page
      const k = KdumpFile.open(one);
      const libz = new NativeZlibCodec(4096);
      let zlibPages = 0;
      try {
        assert.equal(k.header.status & 0x1, 0x1);
        for (let i = 0; i < k.numDumpable; i++) {
          const d = k.desc(i);
          if (d.flags === 0) continue;
          assert.equal(d.flags, 1, `descriptor ${i}`);
          const data = new Uint8Array(d.size);
          k.file.readExact(d.offset, data);
          assert.equal(libz.uncompress(data, new Uint8Array(4096)), 4096, `descriptor ${i}: uncompress()`);
          zlibPages++;
        }
      } finally {
        k.close();
      }
      assert.ok(zlibPages > 10000, `${zlibPages} zlib pages`);
      await assertVerifies(one, vmcore);
      const t = await runVmsift(["-c", "-d", "31", "--no-image-guard", "--num-threads", "2", vmcore, two]);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(await sha256File(two), await sha256File(one), "--num-threads 2 = one thread");
    });
  },
});

Deno.test({
  name: "cli real: -l -d 31 is byte-identical to makedumpfile -l -d 31 with both lzo engines",
  ignore: !haveReal() || !haveProgram("makedumpfile"),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const ref = `${dir}/mdf-l.kdump`;
      const mdf = new Deno.Command("makedumpfile", {
        args: ["--message-level", "0", "-l", "-d", "31", vmcore, ref],
        stdout: "null",
        stderr: "piped",
      }).outputSync();
      assert.equal(mdf.code, 0, new TextDecoder().decode(mdf.stderr));
      const want = await sha256File(ref);
      for (const engine of ["auto", "builtin"]) {
        const out = `${dir}/l-${engine}.kdump`;
        const r = await runVmsift([
          "-l",
          "--codec-engine",
          engine,
          "-d",
          "31",
          "--no-image-guard",
          vmcore,
          out,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(out), want, `--codec-engine ${engine}`);
      }
    });
  },
});
