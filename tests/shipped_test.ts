/**
 * The shipped form that can be built here: `deno bundle` to one JS file, run by a bare `deno` under
 * `env -i` from an empty directory, with an empty DENO_DIR (no cache), no node_modules, no network (a new
 * network namespace via `unshare -n` where allowed, and --no-remote --no-npm) and only the permissions vmsift
 * documents (read, write, ffi).
 */
import assert from "node:assert/strict";
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";
import { writeSample } from "../fixtures/sample.ts";
import { bundleVmsift, tempDir } from "./support/run.ts";

/** `unshare -n` (no network at all) when this machine lets us; plain otherwise. */
const NO_NET: string[] = (() => {
  try {
    const r = new Deno.Command("unshare", { args: ["-n", "true"], stdout: "null", stderr: "null" })
      .outputSync();
    return r.code === 0 ? ["unshare", "-n", "/usr/bin/env"] : ["/usr/bin/env"];
  } catch {
    return ["/usr/bin/env"];
  }
})();

Deno.test("shipped: the bundled vmsift.js dumps and verifies the sample under env -i, no cache", () => {
  const dir = tempDir("vmsift-shipped-");
  try {
    const bundle = `${dir}/vmsift.js`;
    bundleVmsift(bundle);
    const sample = writeSample(`${dir}/sample`);
    const empty = `${dir}/empty`;
    const denoDir = `${dir}/deno-dir`;
    Deno.mkdirSync(empty);
    Deno.mkdirSync(denoDir);
    const run = (args: string[]) => {
      const out = new Deno.Command(NO_NET[0], {
        args: [
          ...NO_NET.slice(1),
          "-i",
          `DENO_DIR=${denoDir}`,
          Deno.execPath(),
          "run",
          "--no-remote",
          "--no-npm",
          "--no-config",
          V8_FLAGS_ARG,
          "--allow-read",
          "--allow-write",
          "--allow-ffi",
          bundle,
          ...args,
        ],
        cwd: empty,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const dump = `${dir}/sample.kdump`;
    const r = run(["-c", "-d", "31", "--show-stats", sample.path, dump]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Total pages {5}: 0x0000000000010000/);
    const v = run(["verify", dump, sample.path]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /all correct/);
    assert.deepEqual([...Deno.readDirSync(empty)], [], "nothing written in the working directory");
    // Without --allow-write the dump is refused with one clear line (permissions are really narrow).
    const noWrite = new Deno.Command("/usr/bin/env", {
      args: [
        "-i",
        `DENO_DIR=${denoDir}`,
        Deno.execPath(),
        "run",
        "--no-prompt",
        "--allow-read",
        bundle,
        "-d",
        "1",
        sample.path,
        `${dir}/x.kdump`,
      ],
      cwd: empty,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.notEqual(noWrite.code, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
