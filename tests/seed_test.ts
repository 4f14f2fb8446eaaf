/**
 * The four seed propositions, functionally (bench/seed.ts measures them): on a 1 GiB synthetic idle machine
 * with `--cyclic-buffer 4` (4 KiB budget, so the bitmaps must go to files):
 * 1. the dump is written with O_DIRECT (debug message and the descriptor's fdinfo flags), and verifies;
 * 2. the bitmap files are created in the dump's directory (message, and unlinked descriptors of the running
 *    process seen in /proc/PID/fd), nothing under /tmp or /dev/shm, nothing left behind but the dump;
 * 3. the bitmap files are opened with O_DIRECT too (fdinfo);
 * 4. `-e` writes a smaller dump with header status bit 0x10 that verifies.
 * O_DIRECT assertions are made only where `dd oflag=direct` shows the file system takes O_DIRECT.
 * No timing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const GEN = fileURLToPath(new URL("../fixtures/synthetic/cli.ts", import.meta.url));
const O_DIRECT = 0o40000; // x86_64
const O_ACCMODE = 0o3;
const dec = new TextDecoder();

interface Fd {
  deleted: boolean;
  direct: boolean;
  writable: boolean;
}

interface Observed {
  code: number;
  text: string;
  /** Descriptors seen while the process ran: path (without " (deleted)"), unlinked, O_DIRECT, opened to write. */
  fds: Map<string, Fd>;
}

/** Run vmsift, polling its /proc/PID/fd and fdinfo until it exits. */
async function observe(args: string[]): Promise<Observed> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let done = false;
  const outP = child.output().then((o) => {
    done = true;
    return o;
  });
  const fds = new Map<string, Fd>();
  while (!done) {
    try {
      for (const e of Deno.readDirSync(`/proc/${child.pid}/fd`)) {
        try {
          const target = Deno.readLinkSync(`/proc/${child.pid}/fd/${e.name}`);
          if (!target.startsWith("/")) continue;
          const flags = /flags:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${child.pid}/fdinfo/${e.name}`))
            ?.[1];
          const deleted = target.endsWith(" (deleted)");
          const path = deleted ? target.slice(0, -" (deleted)".length) : target;
          const bits = flags === undefined ? 0 : parseInt(flags, 8);
          const direct = (bits & O_DIRECT) !== 0;
          const writable = (bits & O_ACCMODE) !== 0; // O_WRONLY or O_RDWR
          const prev = fds.get(path);
          fds.set(path, {
            deleted: deleted || (prev?.deleted ?? false),
            direct: direct || (prev?.direct ?? false),
            writable: writable || (prev?.writable ?? false),
          });
        } catch { /* closed meanwhile */ }
      }
    } catch { /* exited */ }
    await new Promise((r) => setTimeout(r, 2));
  }
  const o = await outP;
  return { code: o.code, text: dec.decode(o.stdout) + dec.decode(o.stderr), fds };
}

function vmsift(args: string[]): { code: number; text: string } {
  const o = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .outputSync();
  return { code: o.code, text: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

function line(text: string, re: RegExp): string | undefined {
  return text.split(/[\r\n]/).find((l) => re.test(l));
}

/** Whether the file system of `dir` takes O_DIRECT writes (independent of vmsift: GNU dd). */
function takesODirect(dir: string): boolean {
  const probe = `${dir}/.odirect-probe`;
  try {
    return new Deno.Command("dd", {
      args: ["if=/dev/zero", `of=${probe}`, "oflag=direct", "bs=4096", "count=1", "status=none"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  } finally {
    try {
      Deno.removeSync(probe);
    } catch { /* absent */ }
  }
}

/** Deno's cache directory (DENO_DIR), where `deno run` keeps its own databases open for writing. */
function denoCacheDir(): string | undefined {
  const o = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped", stderr: "null" })
    .outputSync();
  if (!o.success) return undefined;
  const dir = (JSON.parse(dec.decode(o.stdout)) as { denoDir?: string }).denoDir;
  try {
    return dir === undefined ? undefined : Deno.realPathSync(dir);
  } catch {
    return dir;
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** status of the kdump disk_dump_header: offset 424 (kdump-reference.md: signature[8], header_version,
 * utsname 6 x 65, padding to 8, struct timeval timestamp, then status). */
function headerStatus(path: string): number {
  const b = new Uint8Array(4096);
  const f = Deno.openSync(path);
  try {
    f.readSync(b);
  } finally {
    f.close();
  }
  return new DataView(b.buffer).getUint32(424, true);
}

Deno.test("seed propositions: O_DIRECT dump, bitmap files beside the dump, -e smaller (1 GiB synthetic)", async () => {
  let base = "/var/tmp";
  try {
    Deno.statSync(base);
  } catch {
    base = Deno.makeTempDirSync();
  }
  const root = Deno.makeTempDirSync({ dir: base, prefix: "vmsift-seed-test-" });
  try {
    const inDir = `${root}/in`, outDir = `${root}/out`;
    Deno.mkdirSync(inDir);
    Deno.mkdirSync(outDir);
    const vmcore = `${inDir}/idle-1G.vmcore`;
    const g = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", GEN, "--mem", "1G", "--content", "zero", "--mix", "free=0.9", "--out", vmcore],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.equal(g.code, 0, dec.decode(g.stderr));
    const direct = takesODirect(outDir);

    // 1-3: plain -c -d 31 with a 4 KiB bitmap budget.
    const dump = `${outDir}/dump`;
    const r = await observe([
      "-c",
      "-d",
      "31",
      "--cyclic-buffer",
      "4",
      "--message-level",
      "31",
      vmcore,
      dump,
    ]);
    assert.equal(r.code, 0, r.text);
    const bm = line(r.text, /^bitmaps in /);
    assert.ok(bm?.startsWith(`bitmaps in files in ${outDir} `), `bitmap line: ${bm}`);
    const out = line(r.text, /^output: /);
    if (direct) {
      assert.equal(out, `output: ${dump} (O_DIRECT, AIO writes)`);
      assert.match(bm!, /, O_DIRECT,/);
    }
    // The descriptors the process held: the bitmap files are unlinked files in outDir, nothing in tmpfs.
    const bitmapFds = [...r.fds].filter(([p, f]) => f.deleted && p.startsWith(`${outDir}/vmsift-bitmap-`));
    assert.ok(
      bitmapFds.length >= 1,
      `no unlinked bitmap file seen in ${outDir}: ${[...r.fds.keys()].join(" ")}`,
    );
    // Files vmsift writes (opened to write, or unlinked) are all in outDir: nothing under /tmp or /dev/shm.
    // Files only read (the repository's own source, wherever the clone is) and Deno's own cache do not count.
    const denoDir = denoCacheDir();
    for (const [p, f] of r.fds) {
      if (!(f.writable || f.deleted) || p.startsWith(`${outDir}/`) || p === dump) continue;
      if (denoDir !== undefined && p.startsWith(`${denoDir}/`)) continue;
      if (/^\/(dev|proc)\//.test(p) && !p.startsWith("/dev/shm/")) continue; // terminals, /dev/null
      assert.ok(!/^\/(tmp|dev\/shm)\//.test(p), `file written under tmpfs: ${p}`);
      assert.fail(`vmsift wrote a file outside the dump's directory: ${p}`);
    }
    if (direct) {
      for (const [p, f] of bitmapFds) assert.ok(f.direct, `bitmap file ${p} opened without O_DIRECT`);
      const d = r.fds.get(dump);
      if (d !== undefined) assert.ok(d.direct, "dump opened without O_DIRECT");
    }
    assert.deepEqual(names(outDir), ["dump"]);
    const v = vmsift(["verify", dump, vmcore]);
    assert.equal(v.code, 0, v.text);
    assert.equal(headerStatus(dump) & 0x10, 0);

    // --no-direct-io: buffered output and bitmap files, same bytes.
    const dumpB = `${outDir}/dump-buffered`;
    const rb = await observe([
      "-c",
      "-d",
      "31",
      "--cyclic-buffer",
      "4",
      "--message-level",
      "31",
      "--no-direct-io",
      vmcore,
      dumpB,
    ]);
    assert.equal(rb.code, 0, rb.text);
    assert.equal(line(rb.text, /^output: /), `output: ${dumpB} (buffered, --no-direct-io)`);
    assert.match(line(rb.text, /^bitmaps in /) ?? "", /, buffered,/);
    for (const [p, f] of rb.fds) {
      if (p === dumpB || f.deleted) assert.ok(!f.direct, `${p} opened with O_DIRECT`);
    }
    assert.deepEqual(Deno.readFileSync(dumpB), Deno.readFileSync(dump));
    Deno.removeSync(dumpB);

    // 4: -e, same budget.
    const dumpE = `${outDir}/dump-e`;
    const re = await observe([
      "-c",
      "-d",
      "31",
      "-e",
      "--cyclic-buffer",
      "4",
      "--message-level",
      "31",
      vmcore,
      dumpE,
    ]);
    assert.equal(re.code, 0, re.text);
    const excluded = /Excluded (\d+) unused vmemmap pages/.exec(re.text);
    assert.ok(excluded && Number(excluded[1]) > 0, re.text);
    assert.ok(Deno.statSync(dumpE).size < Deno.statSync(dump).size, "-e output is not smaller");
    assert.equal(headerStatus(dumpE) & 0x10, 0x10);
    assert.deepEqual(names(outDir), ["dump", "dump-e"]);
    const ve = vmsift(["verify", dumpE, vmcore]);
    assert.equal(ve.code, 0, ve.text);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
