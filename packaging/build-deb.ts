/**
 * `deno task package [--out DIR] [--compress xz|zstd|gzip|none] [--launcher FILE]`: build
 * `vmsift_<version>_amd64.deb` with dpkg-deb (default into dist/).
 *
 * Layout: /usr/sbin/vmsift (the launcher, packaging/vmsift), /usr/lib/vmsift/vmsift.js (`deno bundle` of
 * main.ts), /usr/lib/vmsift/deno (the runtime running this script), /usr/lib/vmsift/deno-dir (the bundle's
 * pre-built V8 code cache, packaging/codeCache.ts), /usr/sbin/vmsift-as-makedumpfile (the
 * kdump-tools diversion helper), the vmsift.8 man page, bash completion, the dracut module
 * /usr/lib/dracut/modules.d/99vmsift, and /usr/share/doc/vmsift/{copyright,changelog.gz,install.md}.
 * Depends: the runtime's libraries (libc6, libgcc-s1) and the codec libraries vmsift loads through FFI.
 */
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { buildCodeCache, CODE_CACHE_DIR } from "./codeCache.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Debian packages vmsift depends on: the runtime's (ldd of deno) and the codec libraries (dlopen). */
export const DEPENDS = [
  "libc6 (>= 2.27)",
  "libgcc-s1",
  "libdeflate0",
  "liblzo2-2",
  "libsnappy1v5",
  "libzstd1",
  "zlib1g",
];

/** Options of buildDeb. */
export interface BuildDebOptions {
  /** Directory for the .deb (default dist/). */
  outDir?: string;
  /** dpkg-deb -Z (default xz; the tests use none to save time). */
  compress?: "xz" | "zstd" | "gzip" | "none";
  /** The launcher to install as /usr/sbin/vmsift (default packaging/vmsift). */
  launcher?: string;
}

function run(cmd: string, args: string[], cwd = ROOT): void {
  const r = new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).outputSync();
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${new TextDecoder().decode(r.stderr)}`);
  }
}

function put(stage: string, path: string, data: Uint8Array | string, mode = 0o644): void {
  const full = `${stage}${path}`;
  Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true, mode: 0o755 });
  if (typeof data === "string") Deno.writeTextFileSync(full, data);
  else Deno.writeFileSync(full, data);
  Deno.chmodSync(full, mode);
}

function file(rel: string): Uint8Array {
  return Deno.readFileSync(`${ROOT}${rel}`);
}

/** Build the package; returns the path of the .deb. */
export function buildDeb(opts: BuildDebOptions = {}): string {
  const version = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version as string;
  const outDir = opts.outDir ?? `${ROOT}dist`;
  const launcher = opts.launcher ?? `${ROOT}packaging/vmsift`;
  try {
    Deno.statSync(launcher);
  } catch {
    throw new Error(`${launcher}: the launcher (packaging/vmsift, contracts.md) is missing`);
  }
  Deno.mkdirSync(outDir, { recursive: true });
  const stage = Deno.makeTempDirSync({ dir: outDir, prefix: ".deb-stage-" });
  Deno.chmodSync(stage, 0o755);
  try {
    run(Deno.execPath(), ["bundle", "--platform=deno", "-o", `${stage}/usr/lib/vmsift/vmsift.js`, "main.ts"]);
    Deno.chmodSync(`${stage}/usr/lib/vmsift/vmsift.js`, 0o644);
    Deno.chmodSync(`${stage}/usr/lib/vmsift`, 0o755);
    Deno.chmodSync(`${stage}/usr/lib`, 0o755);
    Deno.chmodSync(`${stage}/usr`, 0o755);
    put(stage, "/usr/lib/vmsift/deno", Deno.readFileSync(Deno.realPathSync(Deno.execPath())), 0o755);
    buildCodeCache({
      bundle: `${stage}/usr/lib/vmsift/vmsift.js`,
      installedBundle: "/usr/lib/vmsift/vmsift.js",
      outDir: `${stage}/usr/lib/vmsift/${CODE_CACHE_DIR}`,
    });
    Deno.chmodSync(`${stage}/usr/lib/vmsift/${CODE_CACHE_DIR}`, 0o755);
    put(stage, "/usr/sbin/vmsift", Deno.readFileSync(launcher), 0o755);
    put(stage, "/usr/sbin/vmsift-as-makedumpfile", file("packaging/vmsift-as-makedumpfile"), 0o755);
    put(stage, "/usr/share/man/man8/vmsift.8.gz", gzipSync(file("packaging/vmsift.8"), { level: 9 }));
    put(stage, "/usr/share/bash-completion/completions/vmsift", file("packaging/vmsift.bash-completion"));
    put(
      stage,
      "/usr/lib/dracut/modules.d/99vmsift/module-setup.sh",
      file("packaging/dracut/99vmsift/module-setup.sh"),
      0o755,
    );
    put(stage, "/usr/share/doc/vmsift/copyright", file("LICENSE"));
    put(stage, "/usr/share/doc/vmsift/changelog.gz", gzipSync(file("packaging/changelog"), { level: 9 }));
    put(stage, "/usr/share/doc/vmsift/install.md", file("docs/install.md"));
    const installedKiB = Math.ceil(duBytes(stage) / 1024);
    put(stage, "/DEBIAN/control", control(version, installedKiB));
    put(stage, "/DEBIAN/prerm", PRERM, 0o755);
    const deb = `${outDir}/vmsift_${version}_amd64.deb`;
    run("dpkg-deb", ["--root-owner-group", `-Z${opts.compress ?? "xz"}`, "--build", stage, deb]);
    return deb;
  } finally {
    Deno.removeSync(stage, { recursive: true });
  }
}

function duBytes(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) n += duBytes(p);
    else if (e.isFile) n += Deno.statSync(p).size;
  }
  return n;
}

function control(version: string, installedKiB: number): string {
  return `Package: vmsift
Version: ${version}
Architecture: amd64
Maintainer: the vmsift authors <vmsift@localhost>
Installed-Size: ${installedKiB}
Depends: ${DEPENDS.join(", ")}
Suggests: kdump-tools | kdump-utils, crash
Section: admin
Priority: optional
Description: kdump dump filter and compressor (makedumpfile work-alike)
 vmsift reads /proc/vmcore in a kdump crash kernel, leaves out the pages not
 worth keeping (zero, page cache, user data, free) using the crashed kernel's
 own data, and writes a kdump-compressed file that crash opens. It takes
 makedumpfile's options and exit codes. It runs on the Deno runtime shipped
 in /usr/lib/vmsift.
 .
 Fedora-style kdump: a dracut module (99vmsift). Debian kdump-tools:
 vmsift-as-makedumpfile enable.
`;
}

/**
 * Before removal: undo the kdump-tools diversion, and remove the code cache directory with what Deno added to
 * it when root ran vmsift on a writable /usr (npm/, node_compat_bin/), so nothing of vmsift stays behind.
 * (No postrm: a package with one stays known to dpkg after `dpkg -r`.)
 */
const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = deconfigure ]; then
  if [ -L /usr/bin/makedumpfile ] && [ "$(readlink /usr/bin/makedumpfile)" = /usr/sbin/vmsift ]; then
    /usr/sbin/vmsift-as-makedumpfile disable
  fi
fi
if [ "$1" = remove ]; then
  rm -rf /usr/lib/vmsift/${CODE_CACHE_DIR}
fi
exit 0
`;

if (import.meta.main) {
  const args = Deno.args;
  const val = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const deb = buildDeb({
    outDir: val("--out"),
    compress: val("--compress") as BuildDebOptions["compress"],
    launcher: val("--launcher"),
  });
  console.log(deb);
}
