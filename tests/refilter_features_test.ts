/**
 * Re-filtering goes through the same dump path as an ELF vmcore (dump/): -L, fallback levels,
 * --num-threads, interruption and the OSRELEASE check of -i work on a kdump input, and give the same file as
 * the same options on the ELF vmcore (the synthetic sample: 256 MiB, made in a temporary directory); and
 * --dump-dmesg / --vtop read a kdump input like the ELF vmcore.
 */
import assert from "node:assert/strict";
import { writeSample } from "../fixtures/sample.ts";
import { openInput } from "../dump/input.ts";
import { NullSink } from "../dump/outputs.ts";
import { planDump } from "../dump/plan.ts";
import { runDump } from "../dump/run.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { runVmsift, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-refilter-features-");

async function sha(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The sample vmcore and its -d 1 kdump (the input to re-filter), in a fresh directory. */
async function sampleAndD1(): Promise<{ dir: string; vmcore: string; d1: string }> {
  const dir = tmp("x").slice(0, -2);
  const vmcore = writeSample(dir).path;
  const d1 = `${dir}/d1.kdump`;
  const r = await runVmsift(["-d", "1", vmcore, d1]);
  assert.equal(r.code, 0, r.stderr);
  return { dir, vmcore, d1 };
}

function headerStatus(path: string): number {
  const k = KdumpFile.open(path);
  try {
    return k.header.status;
  } finally {
    k.close();
  }
}

test("re-filter: -L and fallback levels, as for the ELF vmcore (same retry, same file)", async () => {
  const { dir, vmcore, d1 } = await sampleAndD1();
  // Sizes at -d 1 and -d 31: a limit between them makes -d 1 fail and -d 31 fit.
  const s1 = `${dir}/s1`, s31 = `${dir}/s31`;
  assert.equal((await runVmsift(["-c", "-d", "1", vmcore, s1])).code, 0);
  assert.equal((await runVmsift(["-c", "-d", "31", vmcore, s31])).code, 0);
  const size1 = Deno.statSync(s1).size, size31 = Deno.statSync(s31).size;
  assert.ok(size31 < size1, `${size31} < ${size1}`);
  const limit = String(Math.floor((size1 + size31) / 2));
  const elf = `${dir}/elf.kdump`, re = `${dir}/re.kdump`;
  const a = await runVmsift(["-c", "-d", "1,31", "-L", limit, "--message-level", "6", vmcore, elf]);
  const b = await runVmsift(["-c", "-d", "1,31", "-L", limit, "--message-level", "6", d1, re]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  for (const r of [a, b]) assert.match(r.stdout + r.stderr, /Retry to create a dumpfile by dump_level\(31\)/);
  assert.equal(await sha(re), await sha(elf));
  assert.equal(await sha(re), await sha(s31));

  // One level that does not fit: an INCOMPLETE file (status 0x8), the same as from the ELF vmcore.
  const small = String(Math.floor(size31 * 0.6));
  const ei = `${dir}/elf-inc.kdump`, ri = `${dir}/re-inc.kdump`;
  const c = await runVmsift(["-c", "-d", "31", "-L", small, vmcore, ei]);
  const d = await runVmsift(["-c", "-d", "31", "-L", small, d1, ri]);
  assert.notEqual(c.code, 0);
  assert.equal(d.code, c.code, d.stderr);
  assert.match(d.stderr + d.stdout, /incomplete: \d+ of \d+ pages written \(size limit/);
  assert.ok((headerStatus(ri) & 0x8) !== 0);
  assert.ok(Deno.statSync(ri).size <= Number(small));
  assert.equal(await sha(ri), await sha(ei));
});

test("re-filter: --num-threads 2 writes the single-thread file", async () => {
  const { dir, d1 } = await sampleAndD1();
  const one = `${dir}/one.kdump`, two = `${dir}/two.kdump`;
  assert.equal((await runVmsift(["-c", "-d", "31", d1, one])).code, 0);
  const r = await runVmsift(["-c", "-d", "31", "--num-threads", "2", "--message-level", "31", d1, two]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await sha(two), await sha(one));
});

test("re-filter: an interrupt finishes an incomplete file (flag set), as for an ELF vmcore", async () => {
  const { dir, d1 } = await sampleAndD1();
  const out = `${dir}/int.kdump`;
  const input = openInput(d1);
  try {
    const plan = await planDump(input, { dumpLevel: 31, codec: "zlib" });
    const report = await runDump(plan, { output: out, interrupted: () => "SIGTERM" });
    assert.equal(report.write.incomplete?.reason, "interrupted");
    assert.equal(report.write.incomplete?.signal, "SIGTERM");
    assert.ok(report.write.incomplete!.pagesWritten < report.write.incomplete!.pagesTotal);
  } finally {
    input.close();
  }
  assert.ok((headerStatus(out) & 0x8) !== 0);
  // A dry run through the same path is not marked (NullSink), but still reports the interruption.
  const again = openInput(d1);
  try {
    const plan = await planDump(again, { dumpLevel: 31 });
    const r = await runDump(plan, { openSinks: () => [new NullSink()], interrupted: () => "SIGINT" });
    assert.equal(r.write.incomplete?.signal, "SIGINT");
  } finally {
    again.close();
  }
});

test("re-filter: -i FILE must carry the dump's OSRELEASE (exit 2 otherwise), used when it does", async () => {
  const { dir, d1 } = await sampleAndD1();
  const k = KdumpFile.open(d1);
  const text = k.vmcoreinfo!;
  k.close();
  const release = /^OSRELEASE=(.*)$/m.exec(text)![1];
  const good = `${dir}/good.info`, bad = `${dir}/bad.info`;
  Deno.writeTextFileSync(good, text);
  Deno.writeTextFileSync(bad, text.replace(/^OSRELEASE=.*$/m, "OSRELEASE=9.9.9-other"));
  const r = await runVmsift(["-c", "-d", "31", "-i", bad, d1, `${dir}/bad.kdump`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`OSRELEASE 9\\.9\\.9-other does not match the vmcore's ${release}`));
  const plain = `${dir}/plain.kdump`, withI = `${dir}/with-i.kdump`;
  assert.equal((await runVmsift(["-c", "-d", "31", d1, plain])).code, 0);
  const g = await runVmsift(["-c", "-d", "31", "-i", good, d1, withI]);
  assert.equal(g.code, 0, g.stderr);
  assert.equal(await sha(withI), await sha(plain));
});

test("--dump-dmesg and --vtop read a kdump input as they read the ELF vmcore", async () => {
  const { dir, vmcore, d1 } = await sampleAndD1();
  const d31 = `${dir}/d31.kdump`;
  assert.equal((await runVmsift(["-c", "-d", "31", vmcore, d31])).code, 0);
  const want = `${dir}/elf.log`;
  assert.equal((await runVmsift(["--dump-dmesg", vmcore, want])).code, 0);
  const manifest = JSON.parse(Deno.readTextFileSync(`${vmcore}.manifest.json`));
  assert.equal(Deno.readTextFileSync(want), manifest.dmesg);
  for (const input of [d1, d31]) {
    const log = `${input}.log`;
    const r = await runVmsift(["--dump-dmesg", input, log]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(log), manifest.dmesg, input);
  }
  const k = KdumpFile.open(d31);
  const sym = /^SYMBOL\(init_uts_ns\)=([0-9a-f]+)$/m.exec(k.vmcoreinfo!)![1];
  k.close();
  const a = await runVmsift(["--vtop", sym, vmcore]);
  const b = await runVmsift(["--vtop", sym, d31]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.stdout + b.stderr, a.stdout + a.stderr);
});
