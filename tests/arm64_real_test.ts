/**
 * arm64 on the real fixture (../shared/fixtures/real-arm64-6.1) against makedumpfile 1.7.2's arm64 build
 * (expected.json, its report tables, dmesg.txt, its -c/-l files and the sha256 of its -d 31 and -E files).
 */
import assert from "node:assert/strict";
import { ElfCore } from "../formats/elfCore.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { loadLibz } from "../formats/codecs/nativeZlib.ts";
import {
  ARM64_DIR,
  ARM64_MDF_SHA256,
  arm64Expected,
  arm64Vmcore,
  haveArm64,
} from "./support/arm64Fixture.ts";
import { assertCounts, sha256File } from "./support/compare.ts";
import { assertVerifies, MAIN, MDF_C31_ARGS, runVmsift, withTempDir } from "./support/run.ts";

const LEVELS = ["0", "1", "2", "4", "8", "16", "31"];

Deno.test({
  name: "arm64 real: page counts at every dump level equal makedumpfile's; -d 0 and -d 31 verify",
  ignore: !haveArm64(),
  async fn() {
    const vmcore = await arm64Vmcore();
    const exp = arm64Expected();
    await withTempDir(async (dir) => {
      for (const level of LEVELS) {
        const out = `${dir}/d${level}.kdump`;
        const json = `${dir}/d${level}.json`;
        const r = await runVmsift(["-l", "-d", level, "--no-image-guard", "--stats-json", json, vmcore, out]);
        assert.equal(r.code, 0, r.stderr);
        const got = JSON.parse(Deno.readTextFileSync(json));
        assertCounts(got, exp.dump_levels[level], `-d ${level}`);
        if (level === "0" || level === "31") {
          await assertVerifies(out, vmcore);
        }
        Deno.removeSync(out);
      }
    });
  },
});

Deno.test({
  name: "arm64 real: -d 31, -E -d 31 and -l -d 31 are byte-identical to makedumpfile's",
  ignore: !haveArm64(),
  async fn() {
    const vmcore = await arm64Vmcore();
    await withTempDir(async (dir) => {
      const cases: [string[], string, string][] = [
        [["-d", "31"], "raw.kdump", ARM64_MDF_SHA256.rawD31],
        [["-E", "-d", "31"], "d31.elf", ARM64_MDF_SHA256.elfD31],
        [["-l", "-d", "31"], "lzo.kdump", arm64Expected().outputs_d31["makedumpfile -l -d 31"].sha256],
      ];
      for (const [args, name, want] of cases) {
        const r = await runVmsift([...args, "--no-image-guard", vmcore, `${dir}/${name}`]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(`${dir}/${name}`), want, args.join(" "));
      }
      // The -E file is an arm64 core: e_machine EM_AARCH64 (183).
      const eh = new DataView(Deno.readFileSync(`${dir}/d31.elf`).buffer);
      assert.equal(eh.getUint16(18, true), 183);
    });
  },
});

Deno.test({
  name: "arm64 real: -c -d 31 --codec-engine libz is byte-identical to makedumpfile's -c -d 31",
  ignore: !haveArm64() || !loadLibz().ok,
  async fn() {
    const vmcore = await arm64Vmcore();
    await withTempDir(async (dir) => {
      const out = `${dir}/c.kdump`;
      const r = await runVmsift([
        ...MDF_C31_ARGS,
        "--no-image-guard",
        vmcore,
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(out), arm64Expected().outputs_d31["makedumpfile -c -d 31"].sha256);
      const info = await runVmsift(["info", out]);
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, / aarch64 /); // the header's utsname machine
      assert.match(info.stdout, /phys_base +0xffff9df100000000 /); // NUMBER(PHYS_OFFSET), negative
    });
  },
});

Deno.test({
  name:
    "arm64 real: --dump-dmesg equals makedumpfile's; --vtop walks the 4-level tables to init_uts_ns (a 2 MiB PMD block)",
  ignore: !haveArm64(),
  async fn() {
    const vmcore = await arm64Vmcore();
    await withTempDir(async (dir) => {
      const r = await runVmsift(["--dump-dmesg", vmcore, `${dir}/dmesg.txt`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(Deno.readFileSync(`${dir}/dmesg.txt`), Deno.readFileSync(`${ARM64_DIR}/dmesg.txt`));
      const uts = 0xffffadaec691c030n; // SYMBOL(init_uts_ns)
      const v = await runVmsift(["--vtop", uts.toString(16), vmcore]);
      assert.equal(v.code, 0, v.stderr);
      const levels = [...v.stdout.matchAll(/^ {2}(\w+) :/gm)].map((m) => m[1]);
      assert.deepEqual(levels, ["PGD", "PUD", "PMD"]);
      // A kernel-image address: PA = VA - kimage_voffset.
      const pa = uts - BigInt(arm64Expected().kimage_voffset as string);
      assert.match(v.stdout, new RegExp(`${uts.toString(16)} +${pa.toString(16)}\\n`));
    });
  },
});

/** Run main.ts with stdout to a file (binary). */
async function runToFile(args: string[], outFile: string): Promise<number> {
  const f = await Deno.open(outFile, { write: true, create: true, truncate: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  await child.stdout.pipeTo(f.writable);
  return (await child.status).code;
}

Deno.test({
  name:
    "arm64 real: -F | -R, --split + --reassemble and re-filtering a -d 1 dump give the -d 31 file's pages",
  ignore: !haveArm64(),
  async fn() {
    const vmcore = await arm64Vmcore();
    await withTempDir(async (dir) => {
      const direct = `${dir}/direct.kdump`;
      assert.equal((await runVmsift(["-l", "-d", "31", "--no-image-guard", vmcore, direct])).code, 0);
      const want = await sha256File(direct);
      assert.equal(await runToFile(["-F", "-l", "-d", "31", "--no-image-guard", vmcore], `${dir}/flat`), 0);
      const flat = Deno.readFileSync(`${dir}/flat`);
      const r = await runVmsift(["-R", `${dir}/rebuilt.kdump`], { stdin: flat });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(`${dir}/rebuilt.kdump`), want, "-F | -R");
      const parts = [`${dir}/s.1`, `${dir}/s.2`];
      const s = await runVmsift(["--split", "-l", "-d", "31", "--no-image-guard", vmcore, ...parts]);
      assert.equal(s.code, 0, s.stderr);
      const ra = await runVmsift(["--reassemble", ...parts, `${dir}/joined.kdump`]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(await sha256File(`${dir}/joined.kdump`), want, "--split + --reassemble");
      const d1 = `${dir}/d1.kdump`;
      assert.equal((await runVmsift(["-l", "-d", "1", "--no-image-guard", vmcore, d1])).code, 0);
      const json = `${dir}/rf.json`;
      const rf = await runVmsift([
        "-l",
        "-d",
        "31",
        "--no-image-guard",
        "--stats-json",
        json,
        d1,
        `${dir}/rf.kdump`,
      ]);
      assert.equal(rf.code, 0, rf.stderr);
      const exp = arm64Expected().dump_levels["31"];
      const got = JSON.parse(Deno.readTextFileSync(json));
      for (const k of ["cache", "cache_private", "user", "free", "remaining"]) {
        assert.equal(got[k], exp[k], k);
      }
      const v = await runVmsift(["verify", `${dir}/rf.kdump`, vmcore]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    });
  },
});

Deno.test({
  name:
    "arm64 real: the image guard is [_stext, __init_begin) of the -dbg vmlinux and keeps nothing makedumpfile drops; -e excludes vmemmap pages and verifies",
  ignore: !haveArm64(),
  async fn() {
    const vmcore = await arm64Vmcore();
    const core = ElfCore.open(vmcore);
    try {
      assert.equal(core.elfMachine, 183);
      const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc));
      const m = buildMemoryModel(core, info);
      assert.equal(m.arch.name, "arm64");
      assert.equal(m.physBase, -0x620f00000000n); // NUMBER(PHYS_OFFSET)=0xffff9df100000000, signed
      // nm vmlinux-6.1.0-57-arm64: _stext ffff800008010000, __init_begin ffff800009660000 (unmapped and
      // freed after boot, so the mapped run of the image ends there).
      const stextPa = Number(info.symbol("_stext")! - BigInt.asUintN(64, info.number("kimage_voffset")!));
      assert.equal(stextPa, 0x40210000);
      assert.deepEqual([m.kernelImage?.startPfn, m.kernelImage?.endPfn], [
        stextPa / 4096,
        (stextPa + 0x1650000) / 4096,
      ]);
    } finally {
      core.close();
    }
    await withTempDir(async (dir) => {
      const json = `${dir}/e.json`;
      const out = `${dir}/e.kdump`;
      const r = await runVmsift([
        "-l",
        "-d",
        "31",
        "-e",
        "--stats-json",
        json,
        vmcore,
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(Deno.readTextFileSync(json));
      // With the guard on (the default) the counts are still makedumpfile's: the guarded pages are live.
      assert.equal(got.kept_kernel_image, 0);
      assertCounts(got, arm64Expected().dump_levels["31"], "-d 31");
      // 65536 struct pages of 64 bytes = 1024 vmemmap pages; most describe only free/excluded pfns.
      assert.ok(
        got.vmemmap_pages_excluded > 512 && got.vmemmap_pages_excluded <= 1024,
        String(got.vmemmap_pages_excluded),
      );
      const v = await runVmsift(["verify", out, vmcore]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    });
  },
});
