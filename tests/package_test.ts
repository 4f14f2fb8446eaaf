/**
 * The Debian package (`deno task package`, packaging/build-deb.ts): built with dpkg-deb, installed with
 * `dpkg --root` into a fresh root that holds only the package's declared dependencies (and sh, coreutils,
 * dpkg: tests/support/debRoot.ts), then run in a chroot of that root under `env -i`: `vmsift -h`, a dump of
 * the sample with each codec through its system library, verify. Then Debian kdump-tools' command lines with
 * `vmsift-as-makedumpfile enable` (kdump-config 1.8.1's dump_dmesg and kdump_save_core lines, and the real
 * kdump-config from the kdump-tools .deb), the dracut module with the real dracut (dracut-core .deb), and
 * `dpkg -r`, which must leave nothing of vmsift behind and the original makedumpfile in place. Needs root
 * (chroot), dpkg-deb and the dependency packages installed on this machine; skipped (visibly) otherwise.
 * The kdump-tools and dracut-core packages are read from $VMSIFT_DEB_CACHE (default /var/tmp/vmsift-debs,
 * filled by .ci/run with `apt-get download dracut-core kdump-tools`); those two tests skip without them.
 * The tests share one root, in order.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { writeSample } from "../fixtures/sample.ts";
import { buildDeb, DEPENDS } from "../packaging/build-deb.ts";
import { dependencyClosure, devNull, makeDebRoot } from "./support/debRoot.ts";
import { haveProgram, tempDir } from "./support/run.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAUNCHER = `${ROOT}packaging/vmsift`;
const DEP_NAMES = DEPENDS.map((d) => d.split(" ")[0]);
/** The fresh root: the package's dependencies, and what the tests run there (sh, coreutils, dpkg, ldconfig). */
const ROOT_PACKAGES = [...DEP_NAMES, "dash", "coreutils", "dpkg", "libc-bin", "makedumpfile"];
const DEB_CACHE = Deno.env.get("VMSIFT_DEB_CACHE") ?? "/var/tmp/vmsift-debs";

function canRun(): string | null {
  if (Deno.uid?.() !== 0) return "not root (chroot and dpkg --root need it)";
  for (const p of ["dpkg-deb", "dpkg", "dpkg-query", "chroot", "cpio"]) if (!haveProgram(p)) return `no ${p}`;
  try {
    Deno.statSync(LAUNCHER);
  } catch {
    return "packaging/vmsift (the launcher) is missing";
  }
  try {
    dependencyClosure(ROOT_PACKAGES);
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}
const SKIP = canRun();

function sh(root: string, script: string): { code: number; out: string } {
  const r = new Deno.Command("/usr/bin/env", {
    args: ["-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "chroot", root, "/bin/sh", "-c", script],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A .deb of `name` in the cache, or undefined. */
function cachedDeb(name: string): string | undefined {
  try {
    for (const e of Deno.readDirSync(DEB_CACHE)) {
      if (e.name.startsWith(`${name}_`) && e.name.endsWith(".deb")) return `${DEB_CACHE}/${e.name}`;
    }
  } catch { /* no cache */ }
  return undefined;
}
const KDUMP_TOOLS_DEB = cachedDeb("kdump-tools");
const DRACUT_DEB = cachedDeb("dracut-core");

function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string> } = {},
): { code: number; out: string } {
  const r = new Deno.Command(cmd, { args, env: opts.env, stdout: "piped", stderr: "piped" }).outputSync();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

/** Shared by the tests of this file, in order (made by the first, removed by the last). */
interface State {
  dir: string;
  root: string;
  deb: string;
  samplePath: string;
  manifest: { dmesg: string };
  original: Uint8Array;
}
let state: State | undefined;
function need(): State {
  if (state === undefined) throw new Error("the install test did not run or failed");
  return state;
}
const why = (reason: string | null | undefined) => reason ? ` (skipped: ${reason})` : "";

Deno.test({
  name: `package: builds, dpkg --root -i into a fresh root checks dependencies, runs under env -i${
    why(SKIP)
  }`,
  ignore: SKIP !== null,
  fn() {
    const dir = tempDir("vmsift-package-");
    try {
      const deb = buildDeb({ outDir: `${dir}/out`, compress: "none" });
      const root = `${dir}/root`;
      makeDebRoot(root, ROOT_PACKAGES);
      // dependencies are checked against the fresh root's database (no --force)
      const inst = run("dpkg", [`--root=${root}`, "-i", deb]);
      assert.equal(inst.code, 0, inst.out);
      for (
        const f of [
          "/usr/sbin/vmsift",
          "/usr/lib/vmsift/vmsift.js",
          "/usr/lib/vmsift/deno",
          "/usr/lib/vmsift/deno-dir/v8_code_cache_v2",
          "/usr/lib/vmsift/deno-dir/v8_code_cache_v2-wal",
          "/usr/lib/vmsift/deno-dir/dep_analysis_cache_v2",
          "/usr/share/man/man8/vmsift.8.gz",
          "/usr/share/bash-completion/completions/vmsift",
          "/usr/lib/dracut/modules.d/99vmsift/module-setup.sh",
          "/usr/share/doc/vmsift/copyright",
          "/usr/share/doc/vmsift/changelog.gz",
        ]
      ) assert.ok(exists(`${root}${f}`), f);

      const help = sh(root, "vmsift -h");
      assert.equal(help.code, 0, help.out);
      assert.match(help.out, /--mem-usage/);

      const sample = writeSample(`${root}/tmp/s`);
      for (
        const [opt, engine] of [["-c", "libdeflate"], ["-l", "liblzo2"], ["-p", "libsnappy"], [
          "-z",
          "libzstd",
        ]]
      ) {
        const r = sh(root, `vmsift ${opt} -d 31 -D -f /tmp/s/sample.vmcore /tmp/out.kdump`);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, new RegExp(`codec: \\w+ \\(${engine}`), `${opt} uses the system library`);
        const v = sh(root, "vmsift verify /tmp/out.kdump /tmp/s/sample.vmcore");
        assert.equal(v.code, 0, v.out);
        assert.match(v.out, /all correct/);
      }
      state = {
        dir,
        root,
        deb,
        samplePath: sample.path,
        manifest: JSON.parse(Deno.readTextFileSync(`${sample.path}.manifest.json`)),
        original: Deno.readFileSync(`${root}/usr/bin/makedumpfile`),
      };
    } finally {
      if (state === undefined) Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `package: kdump-tools' command lines run vmsift after vmsift-as-makedumpfile enable${why(SKIP)}`,
  ignore: SKIP !== null,
  fn() {
    const { root, manifest, original } = need();
    const en = sh(root, "vmsift-as-makedumpfile enable");
    assert.equal(en.code, 0, en.out);
    assert.equal(Deno.readLinkSync(`${root}/usr/bin/makedumpfile`), "/usr/sbin/vmsift");
    assert.deepEqual(Deno.readFileSync(`${root}/usr/bin/makedumpfile.distrib`), original);
    assert.match(sh(root, "makedumpfile -v").out, /^vmsift: version/);
    assert.match(sh(root, "vmsift-as-makedumpfile status").out, /^enabled/);
    // kdump-config 1.8.1: defaults, the -F rule, dump_dmesg, then kdump_save_core (compress = cat) and mv
    const save = sh(
      root,
      `set -e
vmcore_file=/tmp/s/sample.vmcore
MAKEDUMP_ARGS=\${MAKEDUMP_ARGS:="-F -c -d 31"}
[ "\${MAKEDUMP_ARGS#-F*}" != "\${MAKEDUMP_ARGS}" ] || MAKEDUMP_ARGS="\${MAKEDUMP_ARGS} -F"
KDUMP_STAMPDIR=/var/crash/202612062100; mkdir -p "$KDUMP_STAMPDIR"
KDUMP_CORETEMP="$KDUMP_STAMPDIR/dump-incomplete"; KDUMP_COREFILE="$KDUMP_STAMPDIR/dump.202612062100"
makedumpfile --dump-dmesg "$vmcore_file" "$KDUMP_STAMPDIR/dmesg.202612062100"
makedumpfile $MAKEDUMP_ARGS $vmcore_file | cat > "$KDUMP_CORETEMP"
mv "$KDUMP_CORETEMP" "$KDUMP_COREFILE"
# MAKEDUMP_ARGS from /etc/default/kdump-tools without -F: kdump-config appends it
MAKEDUMP_ARGS="-l --message-level 7 -d 31"
[ "\${MAKEDUMP_ARGS#-F*}" != "\${MAKEDUMP_ARGS}" ] || MAKEDUMP_ARGS="\${MAKEDUMP_ARGS} -F"
makedumpfile $MAKEDUMP_ARGS $vmcore_file | cat > /var/crash/l.flat
makedumpfile -R /var/crash/rebuilt.kdump < /var/crash/202612062100/dump.202612062100
vmsift verify /var/crash/rebuilt.kdump /tmp/s/sample.vmcore
makedumpfile -R /var/crash/rebuilt-l.kdump < /var/crash/l.flat
vmsift verify /var/crash/rebuilt-l.kdump /tmp/s/sample.vmcore`,
    );
    assert.equal(save.code, 0, save.out);
    assert.equal(save.out.match(/all correct/g)?.length, 2, save.out);
    assert.equal(Deno.readTextFileSync(`${root}/var/crash/202612062100/dmesg.202612062100`), manifest.dmesg);
  },
});

const KDUMP_CONFIG_SKIP = SKIP ??
  (KDUMP_TOOLS_DEB === undefined
    ? `no kdump-tools .deb in ${DEB_CACHE}`
    : exists("/lib/lsb/init-functions")
    ? null
    : "no /lib/lsb/init-functions");

Deno.test({
  name: `package: kdump-tools' own kdump-config savecore saves dmesg and the dump with vmsift${
    why(KDUMP_CONFIG_SKIP)
  }`,
  ignore: KDUMP_CONFIG_SKIP !== null,
  fn() {
    const { dir, root, samplePath, manifest } = need();
    const kt = `${dir}/kdump-tools`;
    const x = run("dpkg-deb", ["-x", KDUMP_TOOLS_DEB!, kt]);
    assert.equal(x.code, 0, x.out);
    // its own script, pointed at this test's files: PATH (makedumpfile = the installed vmsift, outside the
    // chroot: the launcher finds its runtime relative to itself), defaults file, /proc/vmcore
    const bin = `${dir}/kt-bin`;
    Deno.mkdirSync(bin);
    Deno.symlinkSync(`${root}/usr/sbin/vmsift`, `${bin}/makedumpfile`);
    let script = Deno.readTextFileSync(`${kt}/usr/sbin/kdump-config`);
    for (
      const [from, to] of [
        ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", `PATH=${bin}:/bin:/usr/bin:/sbin:/usr/sbin`],
        ["KDUMP_DEFAULTS=/etc/default/kdump-tools", `KDUMP_DEFAULTS=${dir}/kdump-tools.default`],
        ["vmcore_file=/proc/vmcore", `vmcore_file=${samplePath}`],
      ]
    ) {
      assert.ok(script.includes(from), `kdump-config has "${from}"`);
      script = script.replace(from, to);
    }
    Deno.writeTextFileSync(`${dir}/kdump-config`, script);
    Deno.writeTextFileSync(`${dir}/kdump-tools.default`, `KDUMP_COREDIR="${dir}/crash"\n`);
    const r = run("/bin/sh", [`${dir}/kdump-config`, "savecore"], { env: { DENO_DIR: `${dir}/deno-dir` } });
    assert.equal(r.code, 0, r.out);
    const stamps = [...Deno.readDirSync(`${dir}/crash`)].map((e) => e.name);
    assert.equal(stamps.length, 1, stamps.join(" "));
    const s = `${dir}/crash/${stamps[0]}`;
    assert.deepEqual([...Deno.readDirSync(s)].map((e) => e.name).sort(), [
      `dmesg.${stamps[0]}`,
      `dump.${stamps[0]}`,
    ]);
    assert.equal(Deno.readTextFileSync(`${s}/dmesg.${stamps[0]}`), manifest.dmesg);
    const vm = `${root}/usr/sbin/vmsift`;
    const rb = run("/bin/sh", ["-c", `"${vm}" -R "${dir}/rebuilt.kdump" < "${s}/dump.${stamps[0]}"`]);
    assert.equal(rb.code, 0, rb.out);
    const v = run(vm, ["verify", `${dir}/rebuilt.kdump`, samplePath]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /all correct/);
  },
});

const DRACUT_SKIP = SKIP ?? (DRACUT_DEB === undefined ? `no dracut-core .deb in ${DEB_CACHE}` : null);

Deno.test({
  name: `package: dracut with the installed 99vmsift module makes an initramfs where kdump.sh's line dumps${
    why(DRACUT_SKIP)
  }`,
  ignore: DRACUT_SKIP !== null,
  fn() {
    const { dir, root } = need();
    const dr = `${dir}/dracut`;
    const x = run("dpkg-deb", ["-x", DRACUT_DEB!, dr]);
    assert.equal(x.code, 0, x.out);
    const base = `${dr}/usr/lib/dracut`;
    // the module as the package installed it
    Deno.mkdirSync(`${base}/modules.d/99vmsift`, { recursive: true });
    Deno.copyFileSync(
      `${root}/usr/lib/dracut/modules.d/99vmsift/module-setup.sh`,
      `${base}/modules.d/99vmsift/module-setup.sh`,
    );
    const ld = sh(root, "ldconfig");
    assert.equal(ld.code, 0, ld.out);
    // check(): included by mkdumprd (IN_KDUMP=1) when kdump.conf's core_collector is vmsift, else on request
    const check = (conf: string) => {
      Deno.writeTextFileSync(`${root}/etc/kdump.conf`, conf);
      return run("/bin/bash", [
        "-c",
        `require_binaries() { [ -x "$dracutsysrootdir$1" ]; }; . "${base}/modules.d/99vmsift/module-setup.sh"; check; echo "check=$?"`,
      ], { env: { IN_KDUMP: "1", dracutsysrootdir: root } }).out.trim();
    };
    assert.equal(check("path /var/crash\ncore_collector vmsift -l --message-level 7 -d 31\n"), "check=0");
    assert.equal(check("core_collector /usr/sbin/vmsift -c -d 31\n"), "check=0");
    assert.equal(check("core_collector makedumpfile -l --message-level 7 -d 31\n"), "check=255");
    // the image, with vmsift also standing in for makedumpfile
    Deno.writeTextFileSync(`${dir}/vmsift-dracut.conf`, "vmsift_as_makedumpfile=yes\n");
    Deno.mkdirSync(`${dir}/none`);
    const img = `${dir}/initramfs.img`;
    const b = run("/bin/bash", [
      `${dr}/usr/bin/dracut`,
      "--sysroot",
      root,
      "--conf",
      `${dir}/vmsift-dracut.conf`,
      "--confdir",
      `${dir}/none`,
      "--no-kernel",
      "-m",
      "vmsift",
      // what kdumpbase brings for kdump.sh's lines (it installs more), and root's account as dracut's
      // 99base module writes it
      "--install",
      "mkdir mv",
      "--include",
      `${root}/etc/passwd`,
      "/etc/passwd",
      "--no-compress",
      "--no-hostonly",
      "--tmpdir",
      dir,
      img,
    ], {
      env: {
        dracutbasedir: base,
        DRACUT_INSTALL: `${base}/dracut-install`,
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      },
    });
    assert.equal(b.code, 0, b.out);
    assert.match(b.out, /Including module: vmsift/);
    assert.doesNotMatch(b.out, /not found/, "every codec library was found");
    const unp = `${dir}/initramfs`;
    Deno.mkdirSync(unp);
    const cp = run("/bin/sh", ["-c", `cd "${unp}" && cpio -id --quiet < "${img}"`]);
    assert.equal(cp.code, 0, cp.out);
    for (
      const f of ["v8_code_cache_v2", "v8_code_cache_v2-wal", "v8_code_cache_v2-shm", "dep_analysis_cache_v2"]
    ) {
      assert.ok(exists(`${unp}/usr/lib/vmsift/deno-dir/${f}`), `the code cache's ${f} is in the initramfs`);
    }
    Deno.mkdirSync(`${unp}/tmp`, { recursive: true });
    devNull(unp); // devtmpfs in a booted initramfs
    Deno.copyFileSync(need().samplePath, `${unp}/tmp/sample.vmcore`);
    // kdump.sh dump_fs with core_collector vmsift -l --message-level 7 -d 31, then each codec's engine
    const r = sh(
      unp,
      `mkdir -p /var/crash/d && vmsift -l --message-level 7 -d 31 /tmp/sample.vmcore /var/crash/d/vmcore-incomplete &&
mv /var/crash/d/vmcore-incomplete /var/crash/d/vmcore && vmsift verify /var/crash/d/vmcore /tmp/sample.vmcore &&
for c in -c -l -p -z; do makedumpfile $c -d 31 -D -f /tmp/sample.vmcore /var/crash/x || exit 1; done`,
    );
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /all correct/);
    for (const e of ["libdeflate", "liblzo2", "libsnappy", "libzstd"]) {
      assert.match(r.out, new RegExp(`\\(${e}`), e);
    }
  },
});

Deno.test({
  name: `package: dpkg -r undoes the diversion and leaves nothing of vmsift${why(SKIP)}`,
  ignore: SKIP !== null,
  fn() {
    const { dir, root, original } = need();
    try {
      const rm = run("dpkg", [`--root=${root}`, "-r", "vmsift"]);
      assert.equal(rm.code, 0, rm.out);
      assert.deepEqual(Deno.readFileSync(`${root}/usr/bin/makedumpfile`), original);
      assert.ok(!exists(`${root}/usr/bin/makedumpfile.distrib`));
      for (
        const f of [
          "/usr/sbin/vmsift",
          "/usr/sbin/vmsift-as-makedumpfile",
          "/usr/lib/vmsift",
          "/usr/share/doc/vmsift",
          "/usr/lib/dracut/modules.d/99vmsift",
          "/usr/share/man/man8/vmsift.8.gz",
          "/usr/share/bash-completion/completions/vmsift",
        ]
      ) assert.ok(!exists(`${root}${f}`), `${f} removed`);
      assert.notEqual(
        run("dpkg-query", [`--root=${root}`, "-W", "vmsift"]).code,
        0,
        "dpkg no longer knows vmsift",
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
      state = undefined;
    }
  },
});
