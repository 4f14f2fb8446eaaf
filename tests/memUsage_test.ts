/**
 * --mem-usage on kcore look-alikes (tests/support/fakeKcore.ts) made from the sample and the real 6.1
 * vmcore: with makedumpfile's rules (--no-image-guard) the classes must equal makedumpfile's -d 31 counts for
 * the same memory (the sample's manifest, the real fixture's expected.json); a crashkernel= range in
 * /proc/iomem becomes a hole; VMCOREINFO is found through /sys/kernel/vmcoreinfo when kcore has no note.
 * The real guest comparison (makedumpfile --mem-usage /proc/kcore in the same QEMU guest) is
 * `deno task memusage-test` (packaging/test/memusage.sh).
 */
import assert from "node:assert/strict";
import { formatMemUsage, measureMemUsage } from "../cli/memUsage.ts";
import { writeSample } from "../fixtures/sample.ts";
import { compareTables, parseMemUsage } from "../packaging/test/compareMemUsage.ts";
import { findVmcoreinfoNote, writeFakeKcore } from "./support/fakeKcore.ts";
import { haveReal, realExpected, realVmcore } from "./support/fixture.ts";
import { runVmsift, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-memusage-");
const NO_CRASH = "00000000-0009fbff : System RAM\n00100000-0fffffff : System RAM\n";

function expectCounts(u: ReturnType<typeof measureMemUsage>, e: Record<string, number>): void {
  const s = u.stats;
  assert.deepEqual(
    {
      zero: s.zero,
      cache: s.cache,
      cachePrivate: s.cachePrivate,
      user: s.user,
      free: s.free,
      kern: s.original - (s.zero + s.cache + s.cachePrivate + s.user + s.free + s.hwpoison + s.offline),
      total: s.original,
    },
    {
      zero: e.zero,
      cache: e.cache,
      cachePrivate: e.cache_private,
      user: e.user,
      free: e.free,
      kern: e.remaining,
      total: e.original,
    },
  );
}

test("mem-usage: sample kcore gives makedumpfile's -d 31 classes; a crash kernel range becomes a hole", () => {
  const dir = tmp("sample");
  Deno.mkdirSync(dir);
  const sample = writeSample(`${dir}/s`);
  const manifest = JSON.parse(Deno.readTextFileSync(`${sample.path}.manifest.json`));
  const kcore = `${dir}/kcore`;
  writeFakeKcore(sample.path, kcore);
  Deno.writeTextFileSync(`${dir}/iomem`, NO_CRASH);
  const u = measureMemUsage({ kcore, iomem: `${dir}/iomem`, imageGuard: false });
  expectCounts(u, manifest.dump_levels["31"]);
  assert.deepEqual(u.crashKernel, []);
  // the fake kcore maps 16 MiB of "kernel text" a second time: skipped, and reported
  assert.equal(u.kernelImageMappedTwice, 4096);
  // bitmaps beyond the budget go to files in the work directory (big machines): same counts
  const f = measureMemUsage({
    kcore,
    iomem: `${dir}/iomem`,
    imageGuard: false,
    bitmapBudget: 4096,
    workDir: dir,
  });
  assert.deepEqual(f.stats, u.stats);
  // the printed table parses back to the same numbers (makedumpfile's layout)
  const t = parseMemUsage(formatMemUsage(u))!;
  assert.equal(t.FREE, manifest.dump_levels["31"].free);
  assert.equal(t.TOTAL, manifest.dump_levels["31"].original);
  // the -d 31 size estimate covers at least the kept pages
  assert.ok(u.dumpBytesUncompressed > t.KERN_DATA * 4096);

  // 16 MiB reserved at 64 MiB: 4096 pages fewer, every class still adds up
  Deno.writeTextFileSync(`${dir}/iomem`, NO_CRASH + "  04000000-04ffffff : Crash kernel\n");
  const c = measureMemUsage({ kcore, iomem: `${dir}/iomem`, imageGuard: false });
  assert.deepEqual(c.crashKernel, [{ start: 0x4000000, end: 0x5000000 }]);
  assert.equal(c.stats.original, u.stats.original - 4096);
  assert.match(formatMemUsage(c), /Crash kernel reserved:\t16777216 +Byte \(16 MiB/);

  // hidden addresses (not root) are refused, not silently taken as "nothing reserved"
  Deno.writeTextFileSync(`${dir}/iomem`, "00000000-00000000 : Crash kernel\n");
  assert.throws(() => measureMemUsage({ kcore, iomem: `${dir}/iomem` }), /run as root/);
});

test("mem-usage: the CLI prints makedumpfile's table; one KCORE only", async () => {
  const dir = tmp("cli");
  Deno.mkdirSync(dir);
  const sample = writeSample(`${dir}/s`);
  const kcore = `${dir}/kcore`;
  writeFakeKcore(sample.path, kcore);
  // The CLI reads this machine's /proc/iomem: compare with the library on the same file.
  const lib = measureMemUsage({ kcore, imageGuard: false });
  // with the launcher's permissions: /proc/iomem and /proc/self/status are read through libc (FFI)
  const r = await runVmsift(["--mem-usage", "--no-image-guard", kcore], {
    permissions: ["--allow-read", "--allow-write", "--allow-ffi"],
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION$/m);
  assert.equal(parseMemUsage(r.stdout)!.TOTAL, lib.stats.original);
  assert.match(r.stdout, /^vmsift's own memory:\t\d+/m);
  const bad = await runVmsift(["--mem-usage", kcore, `${dir}/x`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--mem-usage takes exactly one KCORE/);
  const check = await runVmsift(["--check-params", "--mem-usage", "/proc/kcore"]);
  assert.equal(check.code, 0, check.stderr);
});

test({
  name:
    "mem-usage: real 6.1 memory as kcore, with and without the VMCOREINFO note, equals makedumpfile -d 31",
  ignore: !haveReal(),
  fn: async () => {
    const dir = tmp("real");
    Deno.mkdirSync(dir);
    const vmcore = await realVmcore();
    const expected = realExpected().dump_levels["31"];
    Deno.writeTextFileSync(`${dir}/iomem`, NO_CRASH);
    const kcore = `${dir}/kcore`;
    writeFakeKcore(vmcore, kcore);
    const u = measureMemUsage({ kcore, iomem: `${dir}/iomem`, imageGuard: false });
    expectCounts(u, expected);
    assert.match(u.vmcoreinfoSource, /VMCOREINFO note/);
    // vmsift's default guard keeps the live image sections (kallsyms): on this kernel none of their pages is
    // one the rules exclude, so the counts stay makedumpfile's (docs/symbols.md)
    const g = measureMemUsage({ kcore, iomem: `${dir}/iomem` });
    assert.equal(g.stats.original, u.stats.original);
    assert.equal(g.stats.keptKernelImage, 0);
    expectCounts(g, expected);

    // kernels before 4.19: no note in kcore; /sys/kernel/vmcoreinfo names the kernel's note in memory
    const note = findVmcoreinfoNote(vmcore);
    assert.ok(note, "the kernel's VMCOREINFO note is in the real vmcore's memory");
    const old = `${dir}/kcore-nonote`;
    writeFakeKcore(vmcore, old, { withoutVmcoreinfo: true });
    Deno.writeTextFileSync(`${dir}/vmcoreinfo`, `${note.paddr.toString(16)} ${note.size.toString(16)}\n`);
    const f = measureMemUsage({
      kcore: old,
      iomem: `${dir}/iomem`,
      sysVmcoreinfo: `${dir}/vmcoreinfo`,
      imageGuard: false,
    });
    assert.match(f.vmcoreinfoSource, /vmcoreinfo -> /);
    expectCounts(f, expected);
    Deno.writeTextFileSync(`${dir}/vmcoreinfo`, `${(note.paddr + 64).toString(16)} 400\n`);
    assert.throws(
      () => measureMemUsage({ kcore: old, iomem: `${dir}/iomem`, sysVmcoreinfo: `${dir}/vmcoreinfo` }),
      /no VMCOREINFO note at physical/,
    );
  },
});

test("mem-usage: the guest comparison accepts a recorded QEMU run and rejects real disagreements", () => {
  // 1 GiB guest, Debian 6.1, crashkernel=192M (packaging/test/memusage.sh, 2026-12-06): makedumpfile before,
  // vmsift --no-image-guard, makedumpfile after; vmsift's own RssAnon 7465 pages, image mapped twice 13360
  const t = (zero: number, cache: number, user: number, free: number, kern: number, total: number) => ({
    ZERO: zero,
    NON_PRI_CACHE: cache,
    PRI_CACHE: 0,
    USER: user,
    FREE: free,
    KERN_DATA: kern,
    TOTAL: total,
  });
  const m1 = t(6765, 37433, 114, 145903, 36007, 226222);
  const v = t(6855, 37483, 6448, 143324, 18752, 212862);
  const m2 = t(8074, 37495, 114, 142757, 37782, 226222);
  const extras = { own: 7465, twice: 13360 };
  assert.ok(compareTables(m1, v, m2, extras).every((c) => c.ok));
  const bad = (w: ReturnType<typeof t>) =>
    compareTables(m1, w, m2, extras).filter((c) => !c.ok).map((c) => c.name);
  assert.deepEqual(bad({ ...v, TOTAL: v.TOTAL - 1 }), ["TOTAL"]);
  assert.deepEqual(bad({ ...v, USER: 114 + 7465 + 1065 + 1 }), ["USER"]);
  assert.deepEqual(bad({ ...v, NON_PRI_CACHE: 37433 - 1065 - 1 }), ["NON_PRI_CACHE"]);
  assert.deepEqual(bad({ ...v, FREE: 142757 - 1065 - 7465 - 1 }), ["FREE"]);
  // without the image correction makedumpfile's Total cannot match
  assert.deepEqual(
    compareTables(m1, v, m2, { own: 7465, twice: 0 }).filter((c) => !c.ok).map((c) => c.name),
    [
      "KERN_DATA",
      "TOTAL",
    ],
  );
});
