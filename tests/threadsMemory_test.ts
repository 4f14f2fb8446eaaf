/**
 * `--num-threads` within the 64 MiB memory budget (issue 17; docs/performance.md, "Threads and memory"): the
 * shipped form (packaging/vmsift running a fresh bundle with its V8 flag) on the real fixture, `-c -d 31`, peak
 * RSS measured by GNU time (`%M`, the kernel's maximum resident set size of the process and its threads).
 *
 * The oracle is the budget itself and the single-threaded run of the same build: `--num-threads 2` must peak
 * below 64 MiB and threads must add little to the single-threaded peak (with Web Workers they added 10-15 MiB
 * each: 80 MiB with 2 threads, 107 with 4). Each configuration runs twice and the smaller peak counts (V8's
 * garbage collection moves a peak by a MiB or two with the machine's load). The bundle runs once before
 * measuring: the first run of a new bundle file peaks about 10 MiB higher whatever the thread count (Deno
 * analyses the new file and fills its caches; measured, docs/performance.md). Outputs must stay identical.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { haveReal, realVmcore } from "./support/fixture.ts";
import { bundleVmsift, withTempDir } from "./support/run.ts";
import { sha256File } from "./support/compare.ts";

const LAUNCHER = fileURLToPath(new URL("../packaging/vmsift", import.meta.url));
const GNU_TIME = "/usr/bin/time";
const BUDGET_KIB = 64 * 1024;

function haveGnuTime(): boolean {
  try {
    return new Deno.Command(GNU_TIME, { args: ["-f", "%M", "true"], stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "--num-threads 2 and 4 stay within the 64 MiB budget (shipped launcher and bundle, real fixture)",
  ignore: !haveReal() || !haveGnuTime(),
  async fn() {
    const vmcore = await realVmcore();
    await withTempDir(async (dir) => {
      const bundle = `${dir}/vmsift.js`;
      bundleVmsift(bundle);
      const env = {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: dir,
        DENO_DIR: `${dir}/deno-dir`,
        VMSIFT_DENO: Deno.execPath(),
        VMSIFT_BUNDLE: bundle,
      };
      /** Peak RSS in KiB of `vmsift -c -d 31 [--num-threads t]`, its output's sha256 and its messages. */
      const run = async (threads: number) => {
        const out = `${dir}/t${threads}.kdump`;
        const rss = `${dir}/rss`;
        const r = await new Deno.Command(GNU_TIME, {
          args: [
            "-f",
            "%M",
            "-o",
            rss,
            LAUNCHER,
            "-c",
            "-d",
            "31",
            "--num-threads",
            String(threads),
            vmcore,
            out,
          ],
          env,
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const said = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
        assert.equal(r.code, 0, said);
        const kib = Number(Deno.readTextFileSync(rss).trim().split("\n").at(-1));
        assert.ok(kib > 10_000, `GNU time's %M: ${kib}`);
        const sha = await sha256File(out);
        Deno.removeSync(out);
        return { kib, sha, said };
      };
      await run(1); // the first run of a new bundle file (see above)
      const peak = new Map<number, number>();
      let want = "";
      for (let round = 0; round < 2; round++) {
        for (const t of [1, 2, 4]) {
          const r = await run(t);
          if (t === 1) want ||= r.sha;
          assert.equal(r.sha, want, `--num-threads ${t}: the single-threaded file`);
          assert.doesNotMatch(r.said, /warning/, `--num-threads ${t}`);
          peak.set(t, Math.min(peak.get(t) ?? Infinity, r.kib));
        }
      }
      const [p1, p2, p4] = [1, 2, 4].map((t) => peak.get(t)!);
      const mib = (k: number) => `${(k / 1024).toFixed(1)} MiB`;
      console.log(`  peak RSS: 1 thread ${mib(p1)}, 2 threads ${mib(p2)}, 4 threads ${mib(p4)}`);
      assert.ok(p2 < BUDGET_KIB, `--num-threads 2 peaked at ${mib(p2)}, beyond the 64 MiB budget`);
      assert.ok(p4 < BUDGET_KIB, `--num-threads 4 peaked at ${mib(p4)}, beyond the 64 MiB budget`);
      // a worker per thread added 10-15 MiB each (4 threads: 45 MiB more); 4 lanes measured 3.6-4.6 MiB more
      // than one thread in full-suite runs (pool thread stacks, batch buffers; RSS varies by ~1 MiB run to run)
      assert.ok(p4 - p1 < 8 * 1024, `4 threads cost ${mib(p4 - p1)} more than one`);
      // beyond 4 threads: 4 are used, said in one line, same file
      const r8 = await run(8);
      assert.equal(r8.sha, want, "--num-threads 8: the single-threaded file");
      const lines = r8.said.split("\n").filter((l) => /--num-threads/.test(l));
      assert.equal(lines.length, 1, r8.said);
      assert.match(lines[0], /--num-threads 8: using 4 compression threads .*64 MiB memory budget/);
    }, "vmsift-threads-memory-");
  },
});
