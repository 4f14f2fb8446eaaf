/** Run the vmsift CLI (main.ts) as a subprocess, as users and kdump scripts do. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** Absolute path of main.ts. */
export const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A main.ts ...args` (`opts.permissions` replaces -A, e.g. to run without --allow-ffi). */
export async function runVmsift(
  args: string[],
  opts: { cwd?: string; stdin?: Uint8Array; permissions?: string[] } = {},
): Promise<RunResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...(opts.permissions ?? ["-A"]), MAIN, ...args],
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: opts.stdin ? "piped" : "null",
  });
  const child = cmd.spawn();
  if (opts.stdin) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * `vmsift verify DUMPFILE VMCORE` (with `opts` as runVmsift's) exits 0 and reports every page correct.
 */
export async function assertVerifies(
  dump: string,
  vmcore: string,
  opts: { permissions?: string[] } = {},
): Promise<void> {
  const v = await runVmsift(["verify", dump, vmcore], opts);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /ok: \d+ pages, all correct/);
}

/** `-c --codec-engine libz -d 31`: the options whose file is byte-identical to makedumpfile -c -d 31's. */
export const MDF_C31_ARGS: readonly string[] = ["-c", "--codec-engine", "libz", "-d", "31"];

/** Build the shipped single-file vmsift.js at `out` (`deno bundle --platform=deno`); asserts it succeeded. */
export function bundleVmsift(out: string): void {
  const b = new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform=deno", "-o", out, MAIN],
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  assert.equal(b.code, 0, new TextDecoder().decode(b.stderr));
}

/** Whether a program is on PATH (for reference tools such as makedumpfile and crash). */
export function haveProgram(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch { /* keep looking */ }
  }
  return false;
}

/** A fresh temporary directory for one test's outputs (removed by the caller). */
export function tempDir(prefix = "vmsift-test-"): string {
  return Deno.makeTempDirSync({ dir: Deno.env.get("VMSIFT_TEST_TMP") ?? "/var/tmp", prefix });
}

/** Run `fn` with a fresh temporary directory (see tempDir), removed afterwards, pass or fail. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>, prefix?: string): Promise<T> {
  const dir = tempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * A `tmp(name)` that makes a fresh temporary directory per call and a `test()` (Deno.test's signature) that
 * removes every directory `tmp` made during the test, pass or fail. Tests in one file run one at a time
 * unless told otherwise, so the shared list is safe.
 */
export function tempDirTests(prefix: string): {
  tmp: (name: string) => string;
  test: (def: Deno.TestDefinition | string, fn?: () => void | Promise<void>) => void;
} {
  const dirs: string[] = [];
  const tmp = (name: string) => {
    const d = Deno.makeTempDirSync({ prefix });
    dirs.push(d);
    return `${d}/${name}`;
  };
  const test = (def: Deno.TestDefinition | string, fn?: () => void | Promise<void>) => {
    const d: Deno.TestDefinition = typeof def === "string" ? { name: def, fn: fn! } : def;
    Deno.test({
      ...d,
      fn: async (t) => {
        try {
          await d.fn(t);
        } finally {
          for (const dir of dirs.splice(0)) {
            try {
              Deno.removeSync(dir, { recursive: true });
            } catch { /* gone */ }
          }
        }
      },
    });
  };
  return { tmp, test };
}
