/**
 * Whole dumps of a vmcore in kexec's /proc/vmcore shape: the real 6.1 fixture re-laid out with a kernel-image
 * PT_LOAD nested in System RAM (a second copy of the same bytes), a first load ending mid-page (0x9fc00), and
 * a 16 MiB hole where a crash kernel's reservation would be (tests/support/kexecVmcore.ts). vmsift and
 * makedumpfile 1.7.2 run on the SAME file: the uncompressed -d 31 and -d 0 files and the -E -d 31 file are
 * byte-identical, every page count is equal except "Original pages", which makedumpfile counts once per
 * PT_LOAD (the 0x3430 image pages twice) and vmsift once, saying so in its report.
 */
import assert from "node:assert/strict";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { haveProgram, runVmsift, withTempDir } from "./support/run.ts";
import { realFixtureKexecShape, writeKexecVmcore } from "./support/kexecVmcore.ts";

const IMAGE_PAGES = 0x3430;
/** Pages of the System RAM loads: pfn 1-0x9e (0x9f holds the partial end: left out), 0x100-0x4fff, 0x6000-0x7fdf. */
const RAM_PAGES = 0x9e + 0x4f00 + 0x1fe0;

async function kexecVmcore(dir: string): Promise<string> {
  const out = `${dir}/kexec.elf`;
  assert.equal(writeKexecVmcore(await realVmcore(), out, realFixtureKexecShape()), 4);
  return out;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** The report lines "Name : 0x..." as numbers. */
function report(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^\s*([A-Za-z][A-Za-z -]*?)\s*: (0x[0-9a-f]{16})$/gm)) {
    out[m[1]] = Number(BigInt.asIntN(64, BigInt(m[2])));
  }
  return out;
}

Deno.test({
  name: "kexec real: the kexec-shaped fixture dumps, verifies, and counts each page once",
  ignore: !haveReal(),
  async fn() {
    await withTempDir(async (dir) => {
      const vmcore = await kexecVmcore(dir);
      const json = `${dir}/s.json`;
      const r = await runVmsift([
        "-c",
        "-d",
        "31",
        "--message-level",
        "16",
        "--stats-json",
        json,
        vmcore,
        `${dir}/o`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(Deno.readTextFileSync(json));
      assert.equal(s.original, RAM_PAGES);
      assert.equal(s.total, 0x7fe0);
      assert.equal(s.memory_hole, 0x7fe0 - RAM_PAGES);
      assert.equal(s.overlap_pages, IMAGE_PAGES);
      assert.match(
        r.stdout,
        /its Original pages would be 0x0*a3ae, 13360 more than vmsift, which counts each page once\)/,
      );
      const v = await runVmsift(["verify", `${dir}/o`, vmcore]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /all correct/);
    });
  },
});

Deno.test({
  name:
    "kexec real: -d 31, -d 0 and -E -d 31 are byte-identical to makedumpfile's on the same kexec-shaped file",
  ignore: !haveReal() || !haveProgram("makedumpfile"),
  async fn() {
    await withTempDir(async (dir) => {
      const vmcore = await kexecVmcore(dir);
      for (const args of [["-d", "31"], ["-d", "0"], ["-E", "-d", "31"]]) {
        const ref = `${dir}/ref`, ours = `${dir}/ours`;
        // --cyclic-buffer: makedumpfile's cyclic mode, which it uses on /proc/vmcore whenever max_mapnr * 2
        // is not a multiple of 8 or the bitmaps pass 4 MiB (every machine above 64 GiB); in its one-cycle
        // mode it also marks the partial page 0x9f present in bitmap 1 (docs/launcher.md).
        const mdf = new Deno.Command("makedumpfile", {
          args: ["--message-level", "16", "--cyclic-buffer", "1024", ...args, vmcore, ref],
          stdout: "piped",
          stderr: "piped",
        }).outputSync();
        const mdfOut = new TextDecoder().decode(mdf.stdout) + new TextDecoder().decode(mdf.stderr);
        assert.equal(mdf.code, 0, mdfOut);
        const r = await runVmsift(["--no-image-guard", "--message-level", "16", ...args, vmcore, ours]);
        assert.equal(r.code, 0, r.stderr);
        const a = Deno.readFileSync(ref), b = Deno.readFileSync(ours);
        const at = firstDiff(a, b);
        assert.equal(at, -1, `${args.join(" ")}: first differing byte at 0x${at.toString(16)}`);
        const m = report(mdfOut), v = report(r.stdout);
        // vmsift counts each page once and its report line states makedumpfile's count (the image twice;
        // -E also counts the partial page 0x9f).
        const said = r.stdout.match(/its Original pages would be (0x[0-9a-f]{16}),/);
        assert.ok(said, r.stdout);
        assert.equal(m["Original pages"], Number(BigInt(said[1])), `${args.join(" ")}: makedumpfile's count`);
        const partial = args.includes("-E") ? 1 : 0;
        assert.equal(m["Original pages"], v["Original pages"] + IMAGE_PAGES + partial);
        assert.equal(m["Memory Hole"], v["Memory Hole"] - IMAGE_PAGES - partial);
        // makedumpfile's -E in its cyclic mode counts the classes again for each PT_LOAD holding a page (the
        // image's pages twice, and per cycle): only its Original pages is compared there.
        const classes = ["Excluded pages", "Pages filled with zero", "Free pages", "User process data pages"];
        for (const k of args.includes("-E") ? [] : classes) {
          assert.equal(v[k], m[k], `${args.join(" ")}: ${k}`);
        }
        Deno.removeSync(ref);
        Deno.removeSync(ours);
      }
    });
  },
});
