/**
 * The Debian package (`deno task package`, packaging/build-deb.ts): built with dpkg-deb, installed with
 * `dpkg --root` into a fresh root that holds only the package's declared dependencies (and sh, coreutils,
 * dpkg: tests/support/debRoot.ts), then run in a chroot of that root under `env -i`: `vmsift -h`, a dump of
 * the sample with each codec through its system library, verify. Then Debian kdump-tools' command lines with
 * `vmsift-as-makedumpfile enable` (kdump-config 1.8.1's dump_dmesg and kdump_save_core), and `dpkg -r`,
 * which must leave nothing of vmsift behind and the original makedumpfile in place. Needs root (chroot),
 * dpkg-deb and the dependency packages installed on this machine; skipped (visibly) otherwise.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { writeSample } from "../fixtures/sample.ts";
import { buildDeb, DEPENDS } from "../packaging/build-deb.ts";
import { dependencyClosure, makeDebRoot } from "./support/debRoot.ts";
import { haveProgram, tempDir } from "./support/run.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAUNCHER = `${ROOT}packaging/vmsift`;
const DEP_NAMES = DEPENDS.map((d) => d.split(" ")[0]);

function canRun(): string | null {
  if (Deno.uid?.() !== 0) return "not root (chroot and dpkg --root need it)";
  for (const p of ["dpkg-deb", "dpkg", "dpkg-query", "chroot", "cpio"]) if (!haveProgram(p)) return `no ${p}`;
  try {
    Deno.statSync(LAUNCHER);
  } catch {
    return "packaging/vmsift (the launcher) is missing";
  }
  try {
    dependencyClosure([...DEP_NAMES, "dash", "coreutils", "dpkg", "makedumpfile"]);
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

Deno.test({
  name: `package: .deb installs into a fresh root, runs under env -i, works for kdump-tools, removes cleanly${
    SKIP ? ` (skipped: ${SKIP})` : ""
  }`,
  ignore: SKIP !== null,
  fn() {
    const dir = tempDir("vmsift-package-");
    try {
      const deb = buildDeb({ outDir: `${dir}/out`, compress: "none" });
      const root = `${dir}/root`;
      makeDebRoot(root, [...DEP_NAMES, "dash", "coreutils", "dpkg", "makedumpfile"]);
      const dpkg = (args: string[]) => {
        const r = new Deno.Command("dpkg", {
          args: [`--root=${root}`, ...args],
          stdout: "piped",
          stderr: "piped",
        })
          .outputSync();
        return { code: r.code, err: new TextDecoder().decode(r.stderr) };
      };
      // dependencies are checked against the fresh root's database (no --force)
      const inst = dpkg(["-i", deb]);
      assert.equal(inst.code, 0, inst.err);
      for (
        const f of [
          "/usr/sbin/vmsift",
          "/usr/lib/vmsift/vmsift.js",
          "/usr/lib/vmsift/deno",
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
      assert.ok(sample.path.startsWith(root));
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

      // Debian kdump-tools: makedumpfile is vmsift after the diversion
      const original = Deno.readFileSync(`${root}/usr/bin/makedumpfile`);
      const en = sh(root, "vmsift-as-makedumpfile enable");
      assert.equal(en.code, 0, en.out);
      assert.equal(Deno.readLinkSync(`${root}/usr/bin/makedumpfile`), "/usr/sbin/vmsift");
      assert.deepEqual(Deno.readFileSync(`${root}/usr/bin/makedumpfile.distrib`), original);
      assert.match(sh(root, "makedumpfile -v").out, /^vmsift: version/);
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
      const manifest = JSON.parse(Deno.readTextFileSync(`${sample.path}.manifest.json`));
      const dmesg = Deno.readTextFileSync(`${root}/var/crash/202612062100/dmesg.202612062100`);
      assert.equal(dmesg, manifest.dmesg);

      // dpkg -r: the diversion is undone (the original makedumpfile is back) and nothing of vmsift stays
      const rm = dpkg(["-r", "vmsift"]);
      assert.equal(rm.code, 0, rm.err);
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
      const q = new Deno.Command("dpkg-query", { args: [`--root=${root}`, "-W", "vmsift"], stderr: "null" })
        .outputSync();
      assert.notEqual(q.code, 0, "vmsift is no longer known to dpkg");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
