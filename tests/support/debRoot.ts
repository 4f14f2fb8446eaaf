/**
 * A fresh Debian root in a directory, for package tests: merged /usr, an empty dpkg database, and the given
 * packages with everything they depend on copied from this (Debian) machine, their files from `dpkg -L` and
 * their status stanzas from `dpkg-query -s`, so that `dpkg --root` sees them installed and a chroot into the
 * directory runs their programs. Nothing else of the host is visible inside.
 */

function query(args: string[]): { code: number; out: string } {
  const r = new Deno.Command("dpkg-query", { args, stdout: "piped", stderr: "null" }).outputSync();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) };
}

function installed(pkg: string): boolean {
  const r = query(["-W", "-f=${db:Status-Status}", pkg]);
  return r.code === 0 && r.out === "installed";
}

/** Names in a Depends/Pre-Depends value (first installed alternative, versions and arch qualifiers off). */
function dependsOf(pkg: string): string[] {
  const r = query(["-W", "-f=${Depends}, ${Pre-Depends}", pkg]);
  const out: string[] = [];
  for (const clause of r.out.split(",")) {
    const alts = clause.split("|").map((a) => a.trim().split(/[\s(:]/)[0]).filter((a) => a !== "");
    const pick = alts.find(installed);
    if (pick !== undefined) out.push(pick);
  }
  return out;
}

/** `packages` and their dependency closure among the installed packages (sorted). */
export function dependencyClosure(packages: string[]): string[] {
  const seen = new Set<string>();
  const todo = [...packages];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    if (!installed(p)) throw new Error(`${p} is not installed on this machine`);
    seen.add(p);
    todo.push(...dependsOf(p));
  }
  return [...seen].sort();
}

/** Make the root in `dir` holding `packages` (+ dependencies); returns the list of packages copied. */
export function makeDebRoot(dir: string, packages: string[]): string[] {
  for (const d of ["usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "tmp", "var/lib/dpkg/info"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  for (const d of ["var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives", "proc"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  Deno.chmodSync(`${dir}/tmp`, 0o1777);
  for (const l of ["bin", "sbin", "lib", "lib64"]) Deno.symlinkSync(`usr/${l}`, `${dir}/${l}`);
  Deno.writeTextFileSync(`${dir}/var/lib/dpkg/available`, "");
  // what every Debian system has beside its packages: root's account (base-passwd's postinst writes it; Deno
  // needs a home directory to resolve) and, in a running system, /dev/null
  Deno.writeTextFileSync(`${dir}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  Deno.writeTextFileSync(`${dir}/etc/group`, "root:x:0:\n");
  Deno.mkdirSync(`${dir}/root`, { mode: 0o700 });
  devNull(dir);
  const pkgs = dependencyClosure(packages);
  const stanzas: string[] = [];
  for (const p of pkgs) {
    stanzas.push(query(["-s", p]).out.trim());
    const files = query(["-L", p]).out.split("\n").filter((f) => f.startsWith("/"));
    const list: string[] = [];
    for (const f of files) {
      let st;
      try {
        st = Deno.lstatSync(f);
      } catch {
        continue; // listed but not on disk (e.g. excluded docs)
      }
      list.push(f);
      if (st.isDirectory) {
        Deno.mkdirSync(`${dir}${f}`, { recursive: true });
        continue;
      }
      const target = `${dir}${f}`;
      Deno.mkdirSync(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      try {
        Deno.lstatSync(target);
        continue; // already there (a file listed by two packages, or through a merged-/usr link)
      } catch { /* copy */ }
      if (st.isSymlink) Deno.symlinkSync(Deno.readLinkSync(f), target);
      else {
        Deno.copyFileSync(f, target);
        Deno.chmodSync(target, st.mode! & 0o7777);
      }
    }
    Deno.writeTextFileSync(`${dir}/var/lib/dpkg/info/${p.split(":")[0]}.list`, list.join("\n") + "\n");
  }
  Deno.writeTextFileSync(`${dir}/var/lib/dpkg/status`, stanzas.join("\n\n") + "\n\n");
  return pkgs;
}

/** Make `dir`/dev/null (a character device: needs root; a test chroot without it misbehaves). */
export function devNull(dir: string): void {
  Deno.mkdirSync(`${dir}/dev`, { recursive: true });
  try {
    Deno.lstatSync(`${dir}/dev/null`);
    return;
  } catch { /* make it */ }
  const r = new Deno.Command("mknod", {
    args: ["-m", "666", `${dir}/dev/null`, "c", "1", "3"],
    stderr: "piped",
  })
    .outputSync();
  if (r.code !== 0) throw new Error(`mknod ${dir}/dev/null: ${new TextDecoder().decode(r.stderr)}`);
}
