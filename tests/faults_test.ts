/**
 * Faults mid-dump: -L size limit and -d fallback levels, a full file system (ENOSPC), SIGTERM/SIGINT, and
 * read errors of the vmcore. The oracles: the kdump header's status bit 0x8 / ELF e_flags bit 0 read back
 * from the file, `verifyDump` comparing every present page with the vmcore, a direct dump at the fallback
 * level (byte-identical), and crash itself (its incomplete-dump warning).
 * Uses the real 6.1 fixture (ignored without it); ENOSPC tests need root for a small tmpfs (ignored without).
 */
import assert from "node:assert/strict";
import { ElfCore } from "../formats/elfCore.ts";
import { VmsiftError } from "../core/errors.ts";
import type { PhysicalMemory } from "../core/physMem.ts";
import { FileSink } from "../io/fileSink.ts";
import { writeKdump } from "../formats/kdump/writer.ts";
import { writeKdumpParallel } from "../formats/kdump/parallelWriter.ts";
import { writeElfDump } from "../formats/elfWriter.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { zlibCodec } from "../formats/codecs/zlib.ts";
import { parseCommandLine, parseSizeLimit, UsageError } from "../cli/options.ts";
import { kdumpSourceFromElf } from "./support/elfSource.ts";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { haveReal, haveVmlinux, realVmcore, VMLINUX } from "./support/fixture.ts";
import { haveProgram, MAIN, runVmsift, tempDir } from "./support/run.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

/** Whether a small tmpfs can be mounted here (root with mount permission): the ENOSPC tests need one. */
const CAN_MOUNT_TMPFS = (() => {
  if (Deno.uid() !== 0 || !haveProgram("mount")) return false;
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-mount-probe-" });
  try {
    const r = new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir] })
      .outputSync();
    if (r.success) new Deno.Command("umount", { args: [dir] }).outputSync();
    return r.success;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();
const PS = 4096;

function status(path: string): number {
  const b = new Uint8Array(428);
  const f = Deno.openSync(path);
  f.readSync(b);
  f.close();
  return new DataView(b.buffer).getUint32(424, true);
}

function elfFlags(path: string): number {
  const b = new Uint8Array(64);
  const f = Deno.openSync(path);
  f.readSync(b);
  f.close();
  return new DataView(b.buffer).getUint32(48, true);
}

function sameBytes(a: string, b: string): boolean {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function realOnly(name: string, fn: (t: Deno.TestContext) => Promise<void> | void, needsRoot = false) {
  Deno.test({ name, ignore: !haveReal() || (needsRoot && !CAN_MOUNT_TMPFS), fn });
}

Deno.test("options: -L SIZE is parsed like makedumpfile's memparse; fallback levels are accepted", () => {
  assert.equal(parseSizeLimit("4096"), 4096);
  assert.equal(parseSizeLimit("64K"), 64 << 10);
  assert.equal(parseSizeLimit("3m"), 3 << 20);
  assert.equal(parseSizeLimit("2G"), 2 * 2 ** 30);
  assert.equal(parseSizeLimit("1t"), 2 ** 40);
  assert.equal(parseSizeLimit("0x1000"), 4096);
  assert.equal(parseSizeLimit("010"), 8);
  for (const bad of ["0", "", "1x", "M", "1.5G", "-1", "1KB"]) {
    assert.throws(() => parseSizeLimit(bad), UsageError, bad);
  }
  const o = parseCommandLine(["-c", "-d", "31,1", "-L", "10M", "a", "b"]);
  assert.deepEqual(o.dumpLevels, [31, 1]);
  assert.equal(o.sizeLimit, 10 << 20);
  assert.throws(() => parseCommandLine(["-F", "-d", "31,1", "a"]), UsageError);
});

realOnly(
  "-L with one level: INCOMPLETE file kept, status 0x8, below the limit, present pages correct",
  async () => {
    const vmcore = await realVmcore();
    const dir = tempDir("vmsift-faults-");
    try {
      const out = `${dir}/dump`;
      const limit = 5 << 20;
      const r = await runVmsift(["-c", "-d", "31", "-L", "5M", "--message-level", "4", vmcore, out]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`${out}: incomplete: \\d+ of 19470 pages written \\(size limit`));
      assert.ok(Deno.statSync(out).size <= limit);
      assert.equal(status(out) & 0x8, 0x8);
      assert.equal(status(out) & 0x1, 0x1); // zlib still recorded
      const v = verifyDump(out, vmcore);
      assert.deepEqual(v.problems, []);
      assert.ok(v.incomplete);
      assert.ok(v.counts.pagesPresent > 100 && v.counts.pagesNotWritten > 0, v.summary);
      assert.equal(v.counts.pagesPresent + v.counts.pagesNotWritten, 19470);
      assert.match(r.stderr, new RegExp(`: incomplete: ${v.counts.pagesPresent} of 19470 pages written`));
      // -E: the same limit gives an ELF file with e_flags bit 0
      const elf = `${dir}/dump.elf`;
      const e = await runVmsift(["-E", "-d", "31", "-L", "5M", "--message-level", "4", vmcore, elf]);
      assert.equal(e.code, 1, e.stderr);
      assert.ok(Deno.statSync(elf).size <= limit);
      assert.equal(elfFlags(elf) & 1, 1);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

realOnly("-L with a fallback level: redone at the next level, same file as a direct dump at it", async () => {
  const vmcore = await realVmcore();
  const dir = tempDir("vmsift-faults-");
  try {
    const direct = `${dir}/direct`, fb = `${dir}/fallback`;
    const d = await runVmsift(["-c", "-d", "31", "--message-level", "0", vmcore, direct]);
    assert.equal(d.code, 0, d.stderr);
    // level 0 needs ~46 MB, level 31 ~26 MB: 30M forces the retry at 31
    const r = await runVmsift(["-c", "-d", "0,31", "-L", "30M", "--message-level", "6", vmcore, fb]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Retry to create a dumpfile by dump_level\(31\)/);
    assert.equal(status(fb) & 0x8, 0);
    assert.ok(sameBytes(fb, direct), "fallback file differs from the direct -d 31 file");
    const k = KdumpFile.open(fb);
    assert.equal(k.subHeader.dumpLevel, 31);
    k.close();
    // both levels too big: incomplete at the last level
    const both = `${dir}/both`;
    const r2 = await runVmsift(["-c", "-d", "0,31", "-L", "8M", "--message-level", "6", vmcore, both]);
    assert.equal(r2.code, 1);
    // 19470 = level 31's count: makedumpfile's remaining + zero pages (the guard keeps none of its own here)
    assert.match(r2.stderr, /incomplete: \d+ of 19470 pages written/);
    assert.equal(status(both) & 0x8, 0x8);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Mount a tmpfs of `size` on a fresh directory (throws when mount fails). */
function mountTmpfs(size: string): string {
  const dir = tempDir("vmsift-enospc-");
  const r = new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir] })
    .outputSync();
  if (!r.success) {
    Deno.removeSync(dir, { recursive: true });
    throw new Error(`mount -t tmpfs failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  return dir;
}

function umount(dir: string) {
  new Deno.Command("umount", { args: [dir] }).outputSync();
  Deno.removeSync(dir, { recursive: true });
}

for (const direct of [true, false]) {
  realOnly(
    `ENOSPC (${direct ? "O_DIRECT" : "--no-direct-io"}): incomplete file kept, matched pairs only`,
    async () => {
      const vmcore = await realVmcore();
      const mnt = mountTmpfs("8m");
      try {
        const out = `${mnt}/dump`;
        const args = [
          "-c",
          "-d",
          "0",
          "--message-level",
          "4",
          ...(direct ? [] : ["--no-direct-io"]),
          vmcore,
          out,
        ];
        const r = await runVmsift(args);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`${out}: incomplete: \\d+ of \\d+ pages written \\(no space left`));
        assert.equal(status(out) & 0x8, 0x8);
        const v = verifyDump(out, vmcore);
        assert.deepEqual(v.problems, [], v.summary);
        assert.ok(v.incomplete && v.counts.pagesPresent > 0, v.summary);
        assert.match(r.stderr, new RegExp(`incomplete: ${v.counts.pagesPresent} of `));
      } finally {
        umount(mnt);
      }
    },
    true,
  );
}

realOnly("ENOSPC with a fallback level: the next level fits", async () => {
  const vmcore = await realVmcore();
  const mnt = mountTmpfs("32m");
  try {
    const out = `${mnt}/dump`;
    const r = await runVmsift(["-c", "-d", "0,31", "--message-level", "6", vmcore, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Retry to create a dumpfile by dump_level\(31\)/);
    const v = verifyDump(out, vmcore);
    assert.ok(v.ok && !v.incomplete, v.summary);
    assert.equal(v.counts.descriptors, 19470);
  } finally {
    umount(mnt);
  }
}, true);

/**
 * Start a dump, wait until `out` holds some MiB (the writer is copying pages), send `signal`; returns the
 * exit code, stderr, and whether the signal was sent before the dump ended.
 */
async function interrupt(
  args: string[],
  out: string,
  signal: Deno.Signal,
): Promise<{ code: number; stderr: string; sent: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let sent = false;
  while (!exited && !sent) {
    await new Promise((r) => setTimeout(r, 5));
    let size = 0;
    try {
      size = Deno.statSync(out).size;
    } catch { /* not yet */ }
    if (size >= 3 << 20) {
      child.kill(signal);
      sent = true;
    }
  }
  return { code: (await status).code, stderr: await stderr, sent };
}

realOnly(
  "SIGTERM mid-dump: incomplete DUMPFILE that crash opens with its warning, no bitmap file left",
  async (t) => {
    const vmcore = await realVmcore();
    const dir = tempDir("vmsift-faults-");
    try {
      const out = `${dir}/dump`;
      // --cyclic-buffer 1: the bitmaps go to files in the dump's directory
      const args = ["-c", "-d", "0", "--cyclic-buffer", "1", "--message-level", "4", vmcore, out];
      const r = await interrupt(args, out, "SIGTERM");
      assert.ok(r.sent, "the dump ended before it could be interrupted");
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        new RegExp(`${out}: incomplete: \\d+ of 32736 pages written \\(interrupted by SIGTERM\\)`),
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["dump"]);
      assert.equal(status(out) & 0x8, 0x8);
      const v = verifyDump(out, vmcore);
      assert.deepEqual(v.problems, []);
      assert.ok(v.incomplete && v.counts.pagesNotWritten > 0, v.summary);
      assert.match(v.summary, /^incomplete, \d+ pages present, all correct/);
      await t.step({
        name: "crash --osrelease opens the incomplete dump",
        ignore: !haveProgram("crash"),
        fn: () => {
          const c = new Deno.Command("crash", { args: ["--osrelease", out], stdout: "piped" }).outputSync();
          assert.equal(new TextDecoder().decode(c.stdout).trim(), "6.1.0-56-amd64");
        },
      });
      await t.step({
        name: "crash with the debug vmlinux warns that the dumpfile is incomplete",
        ignore: !haveProgram("crash") || !haveVmlinux(),
        fn: async () => {
          const s = new Deno.Command("crash", {
            args: ["-s", VMLINUX, out],
            stdin: "piped",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const w = s.stdin.getWriter();
          await w.write(new TextEncoder().encode("quit\n"));
          await w.close();
          const o = await s.output();
          const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
          assert.match(text, /This dumpfile is incomplete/);
        },
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

realOnly("SIGINT mid-dump with --num-threads 2 and with -E: incomplete flag set", async () => {
  const vmcore = await realVmcore();
  const dir = tempDir("vmsift-faults-");
  try {
    const out = `${dir}/dump`;
    const r = await interrupt(
      ["-c", "-d", "0", "--num-threads", "2", "--message-level", "4", vmcore, out],
      out,
      "SIGINT",
    );
    assert.ok(r.sent, "the dump ended before it could be interrupted");
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /interrupted by SIGINT/);
    assert.equal(status(out) & 0x8, 0x8);
    const v = verifyDump(out, vmcore);
    assert.deepEqual(v.problems, []);
    assert.ok(v.incomplete, v.summary);
    // -E: a 512 MiB synthetic machine (sparse, zero content) so that the ELF dump writes 512 MiB and still
    // runs well after the signal is seen (within YIELD_INTERVAL_MS): the real fixture's 134 MB went out with
    // AIO in about the time the signal takes to be noticed, and the dump sometimes finished first.
    const big = `${dir}/big.vmcore`;
    generate(
      normalizeParams({ memBytes: 512 * MiB, seed: 3, content: "zero", scheme: "4.18", levels: 4 }),
      big,
    );
    const elf = `${dir}/dump.elf`;
    const e = await interrupt(["-E", "-d", "0", "--message-level", "4", big, elf], elf, "SIGINT");
    assert.ok(e.sent, "the ELF dump ended before it could be interrupted");
    assert.notEqual(e.code, 0, e.stderr);
    assert.match(e.stderr, /interrupted by SIGINT/);
    assert.equal(elfFlags(elf) & 1, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A PhysicalMemory whose reads touching [badStart, badEnd) fail like an EIO of /proc/vmcore. */
class FailingMemory implements PhysicalMemory {
  readonly label: string;
  constructor(readonly inner: ElfCore, readonly badStart: number, readonly badEnd: number) {
    this.label = inner.label;
  }
  get segments() {
    return this.inner.segments;
  }
  readPhys(paddr: number, out: Uint8Array): boolean {
    if (paddr < this.badEnd && paddr + out.length > this.badStart) {
      throw new VmsiftError("read error: Input/output error (os error 5)", {
        file: this.label,
        offset: paddr,
      });
    }
    return this.inner.readPhys(paddr, out);
  }
}

realOnly(
  "vmcore read errors: the dump goes on, the range is recorded, its pages are never-written",
  async () => {
    const vmcore = await realVmcore();
    const core = ElfCore.open(vmcore);
    const dir = tempDir("vmsift-faults-");
    // pfns 0x1234-0x1300 (inside RAM) and one page 0x5000 fail
    const bad: Array<[number, number]> = [[0x1234, 0xcd], [0x5000, 1]];
    const mem = new FailingMemory(core, 0x1234 * PS, 0x1301 * PS);
    const mem2: PhysicalMemory = {
      label: mem.label,
      segments: mem.segments,
      readPhys: (p, o) => {
        if (p < 0x5001 * PS && p + o.length > 0x5000 * PS) throw new VmsiftError("read error: EIO");
        return mem.readPhys(p, o);
      },
    };
    try {
      for (const threads of [1, 2]) {
        const out = `${dir}/dump${threads}`;
        const sink = FileSink.create(out);
        const src = kdumpSourceFromElf(core, 0x8000, { mem: mem2 });
        const r = threads === 1
          ? writeKdump(src, { codec: zlibCodec, sink })
          : await writeKdumpParallel(src, { codec: zlibCodec, sink, threads });
        sink.close();
        assert.deepEqual(r.unreadable?.ranges, bad);
        assert.equal(r.incomplete?.reason, "read-error");
        assert.equal(r.incomplete?.pagesWritten, r.dumpablePages - 0xce);
        assert.equal(status(out) & 0x8, 0x8);
        const v = verifyDump(out, vmcore);
        assert.deepEqual(v.problems, [], v.summary);
        assert.equal(v.counts.pagesNotWritten, 0xce);
        const k = KdumpFile.open(out);
        assert.throws(() => k.readPage(0x1240, new Uint8Array(PS)), /not written/);
        const page = new Uint8Array(PS), ref = new Uint8Array(PS);
        k.readPage(0x1301, page);
        core.readPhys(0x1301 * PS, ref);
        assert.deepEqual(page, ref);
        k.close();
      }
      // ELF: zeros for the unreadable pages, e_flags bit 0
      const src = kdumpSourceFromElf(core, 0x8000, { mem });
      const elfOut = `${dir}/dump.elf`;
      const sink = FileSink.create(elfOut);
      const e = writeElfDump({ ...src, segments: core.segments, beyondMaxMapnr: "exclude" }, sink);
      sink.close();
      assert.deepEqual(e.unreadable?.ranges, [[0x1234, 0xcd]]);
      assert.equal(elfFlags(elfOut) & 1, 1);
    } finally {
      core.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
