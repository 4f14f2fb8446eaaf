/**
 * --erase in every output form and on re-filtered input, on a synthetic dump (kallsyms + BTF written by
 * fixtures/synthetic; no ../shared needed). The oracle is the plain kdump file made from the ELF vmcore
 * (pinned against makedumpfile 1.7.2 on the real fixture by erase_real_test.ts) and makedumpfile's rules:
 *
 * - -F: the stream rebuilt (`vmsift -R`, and `makedumpfile -R` when installed) is that file, byte for byte;
 * - --split: the reassembled file is that file; ERASEINFO sits in the file whose pfn range holds the data;
 * - re-filtering keeps the input's ERASEINFO and appends its own (write_kdump_eraseinfo: copy_eraseinfo, then
 *   write_eraseinfo), the symbols read from the compressed input itself.
 */
import assert from "node:assert/strict";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { haveProgram, MAIN, runVmsift, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-erase-forms-");
const NODENAME = "erase init_uts_ns.name.nodename size 65\n";
const RELEASE = "erase init_uts_ns.name.release size 8\n";

/** A synthetic vmcore and its -c -d 31 --erase nodename kdump file; returns their paths and the directory. */
async function setup(): Promise<{ dir: string; vmcore: string; kdump: string; nodenameAddr: number }> {
  const dir = tmp("d");
  Deno.mkdirSync(dir);
  const vmcore = `${dir}/vmcore.elf`;
  const g = generate(normalizeParams({ memBytes: 64 * MiB, seed: 5 }), vmcore);
  const kdump = `${dir}/plain.kdump`;
  const r = await runVmsift(["-c", "-d", "31", "--erase", "init_uts_ns.name.nodename", vmcore, kdump]);
  assert.equal(r.code, 0, r.stderr);
  const sym = await runVmsift(["symbols", "--json", vmcore, "init_uts_ns"]);
  assert.equal(sym.code, 0, sym.stderr);
  const va = BigInt(JSON.parse(sym.stdout).symbols[0].address);
  // The image is mapped at __START_KERNEL_map + phys_base (fixtures/synthetic: phys_base in the manifest).
  const pa = Number(va - 0xffffffff80000000n + BigInt(g.manifest.phys_base_int));
  return { dir, vmcore, kdump, nodenameAddr: pa + 65 };
}

function eraseinfoOf(path: string): string {
  const k = KdumpFile.open(path);
  try {
    const { offsetEraseinfo: off, sizeEraseinfo: size } = k.subHeader;
    const b = new Uint8Array(size);
    if (size > 0) k.file.readExact(off, b);
    return new TextDecoder().decode(b);
  } finally {
    k.close();
  }
}

function readPhysText(path: string, paddr: number, len: number): string {
  const k = KdumpFile.open(path);
  try {
    const b = new Uint8Array(len);
    assert.ok(k.readPhys(paddr, b), `0x${paddr.toString(16)} not in ${path}`);
    return new TextDecoder().decode(b);
  } finally {
    k.close();
  }
}

/** The files are equal, but for bytes [skipFrom, skipTo). */
function assertSameFile(a: string, b: string, skipFrom = 0, skipTo = 0): void {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  assert.equal(x.length, y.length, `${a} and ${b}: sizes`);
  const i = x.findIndex((v, k) => v !== y[k] && (k < skipFrom || k >= skipTo));
  assert.equal(i, -1, `${a} and ${b} differ at byte 0x${i.toString(16)}`);
}

/** vmsift with stdout (the -F stream) written to `out`. */
async function vmsiftToFile(args: string[], out: string): Promise<void> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
  Deno.writeFileSync(out, o.stdout);
}

test("erase forms: -F carries ERASEINFO; the rebuilt stream is the kdump file", async () => {
  const s = await setup();
  assert.equal(eraseinfoOf(s.kdump), NODENAME);
  assert.equal(readPhysText(s.kdump, s.nodenameAddr, 65), "X".repeat(65));
  const flat = `${s.dir}/f.flat`;
  await vmsiftToFile(["-F", "-c", "-d", "31", "--erase", "init_uts_ns.name.nodename", s.vmcore], flat);
  const rebuilt = `${s.dir}/rebuilt.kdump`;
  const r = await runVmsift(["-R", rebuilt], { stdin: Deno.readFileSync(flat) });
  assert.equal(r.code, 0, r.stderr);
  assertSameFile(rebuilt, s.kdump);
  // Re-filtering straight from the stream (read in place) keeps the ERASEINFO.
  const again = `${s.dir}/again.kdump`;
  const a = await runVmsift(["-c", "-d", "31", flat, again]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(eraseinfoOf(again), NODENAME);
});

test({
  name: "erase forms: makedumpfile -R rebuilds vmsift's -F stream with ERASEINFO into the kdump file",
  ignore: !haveProgram("makedumpfile"),
  fn: async () => {
    const s = await setup();
    const flat = `${s.dir}/f.flat`;
    await vmsiftToFile(["-F", "-c", "-d", "31", "--erase", "init_uts_ns.name.nodename", s.vmcore], flat);
    const rebuilt = `${s.dir}/mdf-rebuilt.kdump`;
    const child = new Deno.Command("makedumpfile", {
      args: ["-R", rebuilt],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    })
      .spawn();
    const w = child.stdin.getWriter();
    await w.write(Deno.readFileSync(flat));
    await w.close();
    const o = await child.output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    assertSameFile(rebuilt, s.kdump);
  },
});

test("erase forms: --split puts ERASEINFO in the file holding the data; reassembled = the kdump file", async () => {
  const s = await setup();
  const parts = [`${s.dir}/s1`, `${s.dir}/s2`, `${s.dir}/s3`];
  const r = await runVmsift([
    "-c",
    "-d",
    "31",
    "--erase",
    "init_uts_ns.name.nodename",
    "--split",
    "--splitblock-size",
    "1024",
    s.vmcore,
    ...parts,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const infos = parts.map(eraseinfoOf);
  const holder = parts.findIndex((p) => {
    const k = KdumpFile.open(p);
    try {
      const pfn = Math.floor(s.nodenameAddr / 4096);
      return pfn >= k.subHeader.startPfn64 && pfn < k.subHeader.endPfn64;
    } finally {
      k.close();
    }
  });
  assert.ok(holder >= 0);
  assert.deepEqual(infos, parts.map((_, i) => i === holder ? NODENAME : ""));
  const whole = `${s.dir}/whole.kdump`;
  const m = await runVmsift(["--reassemble", ...parts, whole]);
  assert.equal(m.code, 0, m.stderr);
  assertSameFile(whole, s.kdump);
});

test("erase forms: re-filtering keeps the input's ERASEINFO and appends its own", async () => {
  const s = await setup();
  const kept = `${s.dir}/kept.kdump`;
  const k = await runVmsift(["-c", "-d", "31", s.kdump, kept]);
  assert.equal(k.code, 0, k.stderr);
  assert.equal(eraseinfoOf(kept), NODENAME);
  // kallsyms and BTF come from the compressed input's pages.
  const more = `${s.dir}/more.kdump`;
  const m = await runVmsift(["-c", "-d", "31", "--erase", "init_uts_ns.name.release:8", s.kdump, more]);
  assert.equal(m.code, 0, m.stderr);
  assert.equal(eraseinfoOf(more), NODENAME + RELEASE);
  const release = s.nodenameAddr + 65; // new_utsname: sysname, nodename, release, ...
  assert.equal(readPhysText(more, release, 8), "X".repeat(8));
  assert.notEqual(readPhysText(more, release + 8, 1), "X");
  assert.equal(readPhysText(more, s.nodenameAddr, 65), "X".repeat(65));
  // The same from the ELF in one go gives the same file, but for the main header's utsname.nodename (read
  // from the dump's init_uts_ns, as makedumpfile does: the re-filtered input has Xs there).
  const direct = `${s.dir}/direct.kdump`;
  const d = await runVmsift([
    "-c",
    "-d",
    "31",
    "--erase",
    "init_uts_ns.name.nodename",
    "--erase",
    "init_uts_ns.name.release:8",
    s.vmcore,
    direct,
  ]);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(eraseinfoOf(direct), NODENAME + RELEASE);
  const NODENAME_IN_HEADER = 12 + 65; // signature, header_version, utsname.sysname
  assertSameFile(more, direct, NODENAME_IN_HEADER, NODENAME_IN_HEADER + 65);
});

test("erase forms: --split, a range crossing into the next file stops at its file's end", async () => {
  // makedumpfile's split processes each apply the ranges that start in their own pfn range, up to its end:
  // the next process never sees a range starting before its range.
  const s = await setup();
  const n = 40;
  const split = async (size: number, dir: string) => {
    Deno.mkdirSync(dir);
    const parts = Array.from({ length: n }, (_, i) => `${dir}/s${i}`);
    const arg = `init_uts_ns:${size}`;
    const r = await runVmsift([
      "-c",
      "-d",
      "31",
      "--erase",
      arg,
      "--split",
      "--splitblock-size",
      "4",
      s.vmcore,
      ...parts,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return parts;
  };
  // Where the file holding init_uts_ns ends (one-page splitblocks: files end anywhere).
  const probe = await split(1, `${s.dir}/probe`);
  const pfn = Math.floor(s.nodenameAddr / 4096);
  const holder = probe.findIndex((p) => {
    const k = KdumpFile.open(p);
    try {
      return pfn >= k.subHeader.startPfn64 && pfn < k.subHeader.endPfn64;
    } finally {
      k.close();
    }
  });
  const k = KdumpFile.open(probe[holder]);
  const end = k.subHeader.endPfn64 * 4096;
  k.close();
  const start = s.nodenameAddr - 65; // init_uts_ns
  const size = end - start + 64;
  const parts = await split(size, `${s.dir}/cross`);
  const one = `${s.dir}/one.kdump`;
  const r = await runVmsift(["-c", "-d", "31", "--erase", `init_uts_ns:${size}`, s.vmcore, one]);
  assert.equal(r.code, 0, r.stderr);
  // One file: the whole range (its pages are all written); split: cut at the holder's end.
  assert.equal(eraseinfoOf(one), `erase init_uts_ns size ${size}\n`);
  assert.equal(readPhysText(one, end, 64), "X".repeat(64));
  assert.deepEqual(
    parts.map(eraseinfoOf),
    parts.map((_, i) => i === holder ? `erase init_uts_ns size ${size - 64}\n` : ""),
  );
  const whole = `${s.dir}/whole.kdump`;
  const m = await runVmsift(["--reassemble", ...parts, whole]);
  assert.equal(m.code, 0, m.stderr);
  assert.equal(readPhysText(whole, end - 8, 8), "X".repeat(8));
  assert.equal(readPhysText(whole, end, 64), readPhysText(s.kdump, end, 64)); // as without this erase
  assert.notEqual(readPhysText(whole, end, 64), "X".repeat(64));
});
