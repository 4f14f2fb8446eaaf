/**
 * Every output form through the CLI on the real fixture: -F then -R (ours and makedumpfile's) and --split
 * then --reassemble give the direct file byte for byte; -E is read back; a kdump input re-filtered gives the
 * direct file; crash opens a split set.
 */
import assert from "node:assert/strict";
import { ElfCore } from "../formats/elfCore.ts";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { haveProgram, MAIN, runVmsift, withTempDir } from "./support/run.ts";

async function sha(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Run vmsift with stdout to a file (for -F). */
function runToFile(args: string[], out: string): { code: number; stderr: string } {
  const f = Deno.openSync(out, { write: true, create: true, truncate: true });
  const r = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .outputSync();
  f.writeSync(r.stdout);
  f.close();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

/** Run a program with a file on stdin. */
async function runFromFileAsync(cmd: string, args: string[], input: string) {
  const child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
  const w = child.stdin.getWriter();
  await w.write(Deno.readFileSync(input));
  await w.close();
  const out = await child.output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name: "cli forms: -F/-R, --split/--reassemble, re-filter reproduce the direct -c -d 31 file byte for byte",
  ignore: !haveReal(),
  async fn(t) {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const direct = `${dir}/direct.kdump`;
      assert.equal((await runVmsift(["-c", "-d", "31", vmcore, direct])).code, 0);
      const want = await sha(direct);

      const flat = `${dir}/flat.bin`;
      const f = runToFile(["-F", "-c", "-d", "31", vmcore], flat);
      assert.equal(f.code, 0, f.stderr);
      assert.match(f.stderr, /vmsift Completed/, "messages go to stderr with -F");
      const head = Deno.readFileSync(flat).subarray(0, 12);
      assert.equal(new TextDecoder().decode(head), "makedumpfile");
      const r = await runFromFileAsync(
        Deno.execPath(),
        ["run", "-A", MAIN, "-R", `${dir}/rebuilt.kdump`],
        flat,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha(`${dir}/rebuilt.kdump`), want, "-R of our stream");
      await t.step({
        name: "makedumpfile -R rebuilds our -F stream",
        ignore: !haveProgram("makedumpfile"),
        fn: async () => {
          const m = await runFromFileAsync("makedumpfile", ["-R", `${dir}/mdf.kdump`], flat);
          assert.equal(m.code, 0, m.stderr);
          assert.equal(await sha(`${dir}/mdf.kdump`), want, "makedumpfile -R of our stream");
        },
      });

      const parts = [1, 2, 3].map((i) => `${dir}/part${i}`);
      const s = await runVmsift(["--split", "-c", "-d", "31", "--splitblock-size", "4096", vmcore, ...parts]);
      assert.equal(s.code, 0, s.stderr);
      const ra = await runVmsift(["--reassemble", ...parts, `${dir}/reassembled.kdump`]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(await sha(`${dir}/reassembled.kdump`), want, "--reassemble of --split");
      await t.step({
        name: "crash --osrelease reads our --split set",
        ignore: !haveProgram("crash"),
        fn: () => {
          const c = new Deno.Command("crash", {
            args: ["--osrelease", ...parts],
            stdout: "piped",
            stderr: "piped",
          })
            .outputSync();
          assert.equal(new TextDecoder().decode(c.stdout).trim(), "6.1.0-56-amd64");
        },
      });

      const d1 = `${dir}/d1.kdump`;
      assert.equal((await runVmsift(["-d", "1", vmcore, d1])).code, 0);
      const rf = await runVmsift(["-c", "-d", "31", d1, `${dir}/refiltered.kdump`]);
      assert.equal(rf.code, 0, rf.stderr);
      assert.equal(await sha(`${dir}/refiltered.kdump`), want, "re-filter -d 1 → -c -d 31");
    });
  },
});

Deno.test({
  name: "cli forms: -E writes an ELF core that reads back page for page; -E with -c is refused",
  ignore: !haveReal(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const out = `${dir}/e.elf`;
      const r = await runVmsift(["-E", "-d", "31", vmcore, out]);
      assert.equal(r.code, 0, r.stderr);
      const e = ElfCore.open(out);
      const src = ElfCore.open(vmcore);
      try {
        assert.equal(e.notes.length, src.notes.length);
        assert.deepEqual(e.noteSegment.bytes, src.noteSegment.bytes);
        const a = new Uint8Array(4096), b = new Uint8Array(4096);
        let compared = 0;
        for (const seg of e.segments) {
          for (let p = seg.paddr; p + 4096 <= seg.paddr + seg.fileSize; p += 4096 * 7) {
            assert.ok(e.readPhys(p, a) && src.readPhys(p, b));
            assert.deepEqual(a, b, `page at 0x${p.toString(16)}`);
            compared++;
          }
        }
        assert.ok(compared > 1000);
      } finally {
        e.close();
        src.close();
      }
      const bad = await runVmsift(["-E", "-c", vmcore, `${dir}/x.elf`]);
      assert.equal(bad.code, 1);
    });
  },
});
