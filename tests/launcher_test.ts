/**
 * The shipped launcher, packaging/vmsift (contract: ../shared notes, docs/launcher.md): in the installed
 * layout (/usr/sbin/vmsift, /usr/lib/vmsift/{vmsift.js,deno}) under `env -i` from `/`, reading its input
 * through a /proc path (Deno 2.9 refuses those to its own file API without --allow-all; vmsift reads them
 * through libc), with the runtime and bundle overrides, the in-repo fallback, a read-only root, and the
 * shipped code cache (libdir/deno-dir, packaging/codeCache.ts) read from a read-only root.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";
import { writeSample } from "../fixtures/sample.ts";
import { bundleVmsift, tempDir } from "./support/run.ts";
import { buildCodeCache, CODE_CACHE_DIR } from "../packaging/codeCache.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAUNCHER = `${ROOT}packaging/vmsift`;
const dec = new TextDecoder();

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** `sh -c SCRIPT` with exactly `env` (nothing inherited) in `cwd`, optionally under `prefix` (unshare -m). */
function sh(script: string, env: Record<string, string> = {}, cwd = "/", prefix: string[] = []): Out {
  const argv = [...prefix, "/bin/sh", "-c", script];
  const o = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    clearEnv: true,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** A temporary installed tree: usr/sbin/vmsift, usr/lib/vmsift/vmsift.js (fresh bundle), usr/lib/vmsift/deno. */
function installTree(dir: string): { root: string; bundle: string; launcher: string } {
  const root = `${dir}/root`;
  Deno.mkdirSync(`${root}/usr/sbin`, { recursive: true });
  Deno.mkdirSync(`${root}/usr/lib/vmsift`, { recursive: true });
  const bundle = `${root}/usr/lib/vmsift/vmsift.js`;
  bundleVmsift(bundle);
  Deno.symlinkSync(Deno.execPath(), `${root}/usr/lib/vmsift/deno`);
  const launcher = `${root}/usr/sbin/vmsift`;
  Deno.copyFileSync(LAUNCHER, launcher);
  Deno.chmodSync(launcher, 0o555);
  Deno.chmodSync(bundle, 0o444);
  for (const d of ["usr/lib/vmsift", "usr/lib", "usr/sbin", "usr"]) Deno.chmodSync(`${root}/${d}`, 0o555);
  return { root, bundle, launcher };
}

function unlock(root: string): void {
  for (const d of ["usr", "usr/sbin", "usr/lib", "usr/lib/vmsift"]) Deno.chmodSync(`${root}/${d}`, 0o755);
}

const canUnshareMount = (() => {
  if (Deno.uid() !== 0) return false;
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"], stdout: "null", stderr: "null" }).outputSync()
      .code === 0;
  } catch {
    return false;
  }
})();

Deno.test("launcher: POSIX sh, executable, --no-prompt, the shipped V8 flag, read/write/ffi and not --allow-all", () => {
  const text = Deno.readTextFileSync(LAUNCHER);
  assert.ok(text.startsWith("#!/bin/sh\n"));
  assert.ok((Deno.statSync(LAUNCHER).mode! & 0o111) === 0o111, "executable");
  const exec = text.slice(text.lastIndexOf("\nexec "));
  for (
    const flag of ["--no-prompt", "--no-config", V8_FLAGS_ARG, "--allow-read", "--allow-write", "--allow-ffi"]
  ) {
    assert.ok(exec.includes(` ${flag} `), `launcher runs deno with ${flag}`);
  }
  assert.doesNotMatch(exec, /--allow-all| -A /);
  // dash -n: the script parses as POSIX sh.
  assert.equal(sh(`/bin/sh -n '${LAUNCHER}'`).code, 0);
});

Deno.test("launcher: installed layout, env -i from /, input through a /proc path, output verifies", () => {
  const dir = tempDir("vmsift-launcher-");
  try {
    const t = installTree(dir);
    const sample = writeSample(`${dir}/sample`);
    const out = `${dir}/out`;
    Deno.mkdirSync(out);
    // A symlink to the launcher (as /usr/bin/vmsift -> /usr/sbin/vmsift) still finds its libdir.
    Deno.symlinkSync(t.launcher, `${dir}/vmsift-link`);
    const r = sh(
      `exec 3<'${sample.path}'; exec '${dir}/vmsift-link' -c -d 31 --message-level 31 /proc/self/fd/3 '${out}/a.kdump'`,
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /input: \/proc\/self\/fd\/3 read through an mmap window/);
    const v = sh(`exec '${t.launcher}' verify '${out}/a.kdump' '${sample.path}'`);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /all correct/);
    // What the launcher avoids: Deno's own file API on a /proc path without --allow-all.
    const noFfi = sh(
      `exec 3<'${sample.path}'; exec '${Deno.execPath()}' run --no-prompt --allow-read --allow-write ` +
        `'${t.bundle}' -d 31 /proc/self/fd/3 '${out}/b.kdump'`,
    );
    assert.equal(noFfi.code, 1);
    assert.match(noFfi.stderr, /Requires all access to "\/proc\/self\/fd\/3".*use the vmsift launcher/);
    unlock(t.root);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("launcher: VMSIFT_DENO and VMSIFT_BUNDLE, the in-repo dist/ fallback, and one line when a part is missing", () => {
  const dir = tempDir("vmsift-launcher-");
  try {
    const t = installTree(dir);
    // The launcher alone (as ../shared/kdump/run.sh installs it), told where the runtime and bundle are.
    Deno.mkdirSync(`${dir}/bin`);
    Deno.copyFileSync(LAUNCHER, `${dir}/bin/vmsift`);
    Deno.chmodSync(`${dir}/bin/vmsift`, 0o755);
    // A PATH with the launcher's one tool (readlink) and no deno.
    Deno.mkdirSync(`${dir}/tools`);
    Deno.symlinkSync(sh("command -v readlink").stdout.trim(), `${dir}/tools/readlink`);
    const tools = `${dir}/tools`;
    const alone = { VMSIFT_DENO: Deno.execPath(), VMSIFT_BUNDLE: t.bundle, PATH: tools };
    const h = sh(`exec '${dir}/bin/vmsift' -h`, alone);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^vmsift - a makedumpfile work-alike/);
    const noDeno = sh(`exec '${dir}/bin/vmsift' -h`, { PATH: tools, VMSIFT_BUNDLE: t.bundle });
    assert.equal(noDeno.code, 1);
    assert.match(noDeno.stderr, /^vmsift: no Deno runtime: .* \(set VMSIFT_DENO\)\n$/);
    const noBundle = sh(`exec '${dir}/bin/vmsift' -h`, { PATH: tools, VMSIFT_DENO: Deno.execPath() });
    assert.equal(noBundle.code, 1);
    assert.match(noBundle.stderr, /^vmsift: no bundle: .* \(set VMSIFT_BUNDLE\)\n$/);
    // In a checkout: packaging/vmsift runs ../dist/vmsift.js, deno from PATH.
    Deno.mkdirSync(`${dir}/repo/packaging`, { recursive: true });
    Deno.mkdirSync(`${dir}/repo/dist`);
    Deno.copyFileSync(LAUNCHER, `${dir}/repo/packaging/vmsift`);
    Deno.chmodSync(`${dir}/repo/packaging/vmsift`, 0o755);
    Deno.copyFileSync(t.bundle, `${dir}/repo/dist/vmsift.js`);
    const pathDir = Deno.execPath().slice(0, Deno.execPath().lastIndexOf("/"));
    const repo = sh(`exec '${dir}/repo/packaging/vmsift' -h`, { PATH: pathDir }, `${dir}/repo`);
    assert.equal(repo.code, 0, repo.stderr);
    unlock(t.root);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "launcher: read-only root file system (unshare -m, / remounted read-only, a tmpfs for the dump)",
  ignore: !canUnshareMount,
  fn() {
    const dir = tempDir("vmsift-launcher-");
    try {
      const t = installTree(dir);
      const sample = writeSample(`${dir}/sample`);
      const r = sh(
        "mount --bind -o ro / / && mount -o remount,ro,bind / / && mount -t tmpfs none /tmp || exit 99; " +
          `if touch /vmsift-rw-probe 2>/dev/null; then exit 98; fi; ` +
          `exec 3<'${sample.path}'; '${t.launcher}' -c -d 31 /proc/self/fd/3 /tmp/a.kdump || exit $?; ` +
          `exec '${t.launcher}' verify /tmp/a.kdump '${sample.path}'`,
        {},
        "/",
        ["unshare", "-m"],
      );
      // sh runs inside `unshare -m`: the mounts stay in its namespace.
      assert.notEqual(r.code, 99, "mounts");
      assert.notEqual(r.code, 98, "root still writable");
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /all correct/);
      unlock(t.root);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "launcher: the shipped code cache is DENO_DIR; Deno uses it from a read-only root; the dump verifies",
  ignore: !canUnshareMount,
  fn() {
    const dir = tempDir("vmsift-launcher-");
    try {
      const t = installTree(dir);
      unlock(t.root);
      const cache = `${t.root}/usr/lib/vmsift/${CODE_CACHE_DIR}`;
      const built = buildCodeCache({
        bundle: t.bundle,
        installedBundle: Deno.realPathSync(t.bundle),
        outDir: cache,
      });
      assert.ok(built.bundleCodeBytes > 0 && built.codeEntries >= 1, JSON.stringify(built));
      // Which DENO_DIR the launcher gives the runtime: a stand-in runtime prints it.
      const fake = `${dir}/fake-deno`;
      Deno.writeTextFileSync(fake, '#!/bin/sh\necho "DENO_DIR=$DENO_DIR"\n');
      Deno.chmodSync(fake, 0o755);
      const shipped = `${t.root}/usr/sbin/../lib/vmsift/${CODE_CACHE_DIR}`;
      const mine = { VMSIFT_DENO: fake, HOME: "/root", DENO_DIR: "/elsewhere" };
      assert.equal(sh(`exec '${t.launcher}' -h`, mine).stdout, `DENO_DIR=${shipped}\n`, "shipped cache wins");
      assert.equal(sh(`exec '${t.launcher}' -h`, { VMSIFT_DENO: fake }).stdout, `DENO_DIR=${shipped}\n`);
      // another bundle (VMSIFT_BUNDLE): the cache is not its own, the caller's DENO_DIR stays
      assert.equal(
        sh(`exec '${t.launcher}' -h`, { ...mine, VMSIFT_BUNDLE: `${dir}/other.js` }).stdout,
        "DENO_DIR=/elsewhere\n",
      );
      const files = () =>
        [...Deno.readDirSync(cache)].map((e) => `${e.name}:${Deno.statSync(`${cache}/${e.name}`).size}`)
          .sort();
      const before = files();
      const sample = writeSample(`${dir}/sample`);
      // Read-only root: Deno's debug log names the cache hit for the bundle (and no fallback to an in-memory
      // cache); then the launcher itself dumps and verifies.
      const debugRun =
        `'${Deno.execPath()}' run --log-level=debug --no-prompt --no-config --no-remote --no-npm ` +
        `${V8_FLAGS_ARG} --allow-read --allow-write --allow-ffi '${t.root}/usr/sbin/../lib/vmsift/vmsift.js' -h`;
      const r = sh(
        "mount --bind -o ro / / && mount -o remount,ro,bind / / && mount -t tmpfs none /tmp || exit 99; " +
          `if touch '${cache}/probe' 2>/dev/null; then exit 98; fi; ` +
          `DENO_DIR='${shipped}' ${debugRun} 2>&1 >/dev/null | grep -iE 'code cache|readonly|in-memory' >&2; ` +
          `exec 3<'${sample.path}'; '${t.launcher}' -c -d 31 /proc/self/fd/3 /tmp/a.kdump || exit $?; ` +
          `exec '${t.launcher}' verify /tmp/a.kdump '${sample.path}'`,
        {},
        "/",
        ["unshare", "-m"],
      );
      assert.notEqual(r.code, 99, "mounts");
      assert.notEqual(r.code, 98, "cache directory still writable");
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, /V8 code cache hit for ES module: file:\/\/\/\S*\/usr\/lib\/vmsift\/vmsift\.js/);
      assert.doesNotMatch(r.stderr, /readonly|in-memory/i);
      assert.match(r.stdout, /all correct/);
      assert.deepEqual(files(), before, "the cache directory is unchanged");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const isRoot = Deno.uid() === 0;
const haveSetpriv = (() => {
  try {
    return new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "launcher: a user with no passwd entry, no HOME and no DENO_DIR (a minimal crash root) still dumps",
  ignore: !isRoot || !haveSetpriv,
  fn() {
    const dir = tempDir("vmsift-launcher-");
    try {
      Deno.chmodSync(dir, 0o777);
      const t = installTree(dir);
      const sample = writeSample(`${dir}/sample`);
      Deno.chmodSync(sample.path, 0o644);
      const out = `${dir}/out`;
      Deno.mkdirSync(out);
      Deno.chmodSync(out, 0o777);
      // uid 54321 has no passwd entry: Deno alone stops ("Could not resolve global Deno cache directory").
      const as = ["setpriv", "--reuid", "54321", "--regid", "54321", "--clear-groups"];
      const bare = sh(`exec '${Deno.execPath()}' run --no-prompt --no-config '${t.bundle}' -h`, {}, "/", as);
      assert.notEqual(bare.code, 0, "Deno without a cache directory must fail, or this test proves nothing");
      assert.match(bare.stderr, /Could not resolve global Deno cache directory/);
      const r = sh(`exec '${t.launcher}' -c -d 31 '${sample.path}' '${out}/a.kdump'`, {}, "/", as);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const v = sh(`exec '${t.launcher}' verify '${out}/a.kdump' '${sample.path}'`, {}, "/", as);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /all correct/);
      unlock(t.root);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
