/**
 * Every codec × form that crash reads: crash --osrelease opens each; with the debug vmlinux, `sys` and
 * `log | wc -l` agree with crash.txt for the lzo, snappy and zstd dumps (zlib is in crash_test.ts);
 * makedumpfile reads vmsift's -E output and re-filters it.
 */
import assert from "node:assert/strict";
import { haveReal, haveVmlinux, REAL_DIR, realVmcore, VMLINUX } from "./support/fixture.ts";
import { haveProgram, MAIN, runVmsift, tempDir } from "./support/run.ts";

function osrelease(files: string[]): string {
  const c = new Deno.Command("crash", { args: ["--osrelease", ...files], stdout: "piped", stderr: "piped" })
    .outputSync();
  return new TextDecoder().decode(c.stdout).trim();
}

async function crashSession(files: string[], commands: string): Promise<string> {
  const child = new Deno.Command("crash", {
    args: ["-s", VMLINUX, ...files],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(commands + "\nquit\n"));
  await w.close();
  const out = await child.output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test({
  name: "crash forms: zlib/lzo/snappy/zstd, flattened (-F) and split dumps all open in crash",
  ignore: !haveReal() || !haveProgram("crash"),
  async fn(t) {
    const vmcore = await realVmcore();
    const dir = tempDir();
    try {
      for (const c of ["-c", "-l", "-p", "-z"]) {
        const out = `${dir}/d${c}.kdump`;
        const r = await runVmsift([c, "-d", "31", vmcore, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(osrelease([out]), "6.1.0-56-amd64", c);
      }
      const flat = `${dir}/flat.bin`;
      const f = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "-F", "-l", "-d", "31", vmcore],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      assert.equal(f.code, 0);
      Deno.writeFileSync(flat, f.stdout);
      assert.equal(osrelease([flat]), "6.1.0-56-amd64", "crash reads the flattened stream directly");
      await t.step({
        name: "crash with the debug vmlinux: sys and log of the -l/-p/-z dumps",
        ignore: !haveVmlinux(),
        fn: async () => {
          const want = Deno.readTextFileSync(`${REAL_DIR}/crash.txt`);
          const release = /RELEASE: .*/.exec(want)![0];
          for (const c of ["-l", "-p", "-z"]) {
            const got = await crashSession([`${dir}/d${c}.kdump`], "sys\nlog | wc -l");
            assert.ok(got.includes(release), `${c}: ${got.slice(0, 400)}`);
            assert.ok(got.includes("\n384\n"), `${c}: log has 384 lines`);
            assert.doesNotMatch(got, /page excluded|uncompress failed|read error/i, c);
          }
        },
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "crash forms: makedumpfile reads vmsift's -E output (dmesg and a re-filter)",
  ignore: !haveReal() || !haveProgram("makedumpfile"),
  async fn() {
    const vmcore = await realVmcore();
    const dir = tempDir();
    try {
      const elf = `${dir}/e.elf`;
      assert.equal((await runVmsift(["-E", "-d", "31", vmcore, elf])).code, 0);
      const m = new Deno.Command("makedumpfile", {
        args: ["--dump-dmesg", elf, `${dir}/dmesg.txt`],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      assert.equal(m.code, 0, new TextDecoder().decode(m.stdout));
      assert.deepEqual(Deno.readFileSync(`${dir}/dmesg.txt`), Deno.readFileSync(`${REAL_DIR}/dmesg.txt`));
      const r = new Deno.Command("makedumpfile", {
        args: ["-c", "-d", "31", elf, `${dir}/re.kdump`],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stdout));
      const v = await runVmsift(["verify", `${dir}/re.kdump`, vmcore]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
