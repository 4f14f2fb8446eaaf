/**
 * How low can `-l -d 31` (or `-c -d 31`) go, in C and in Deno? `deno task bench-floor [--codec l|c]
 * [--runs 7] [--tcg] [--work-dir DIR] [--out FILE.json] VMCORE [VMCORE ...]` (default: the fixture cache's
 * vmcore.elf; --codec l, makedumpfile's LZO, or c, its zlib level 1).
 *
 * The counterfactual behind issue 17's `-l -d 31` target (docs/performance.md "The floor"). For each
 * vmcore it runs, pinned to CPU 0 and alternating (order reversed every round), with CPU time (user + sys,
 * GNU time) and wall time:
 *   makedumpfile    `makedumpfile -l -d 31 VMCORE OUT` (the reference; -c with --codec c)
 *   vmsift          the shipped bundle, `--no-image-guard -l -d 31` (so both keep the same pages)
 *   deno-floor      bench/floor/loop.ts: only the zero test, makedumpfile's codec call and write() of the
 *                   pages makedumpfile's output keeps, through Deno FFI, nothing of vmsift loaded
 *   c-floor         bench/floor/loop.c: the same loop in C (built here with gcc)
 *   deno-empty      `deno run` of an empty script (the runtime's start-up)
 * and prints medians and each one's ratio to makedumpfile's. The two floors do not parse anything, walk
 * no page tables, scan no struct pages, write no headers, bitmaps or page descriptors: every tool's run is
 * above its floor, so a Deno floor above 0.8x makedumpfile's time means no Deno program reaches 0.8x.
 * Checks: both floors write the same bytes, and vmsift's output keeps makedumpfile's page count.
 *
 * --tcg runs every program under qemu-x86_64-static (QEMU's TCG, the engine that runs the kdump test's crash
 * kernel here, where KVM cannot boot the kernel): how the emulation changes the tools' order.
 * Needs makedumpfile, gcc, liblzo2.so.2, taskset, /usr/bin/time (and qemu-user-static for --tcg).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ensureGnuTime,
  exists,
  fmtNum,
  loadavg,
  machine,
  median,
  rm,
  sh,
  table,
  timed,
  warmRead,
} from "./lib.ts";
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { findSegment } from "../core/physMem.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DENO = Deno.execPath();
const ENV = { DENO_NO_UPDATE_CHECK: "1" };
const PROGRAMS = ["makedumpfile", "vmsift", "deno-floor", "c-floor", "deno-empty"] as const;
type Program = typeof PROGRAMS[number];

const { values: opt, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "7" },
    codec: { type: "string", default: "l" },
    tcg: { type: "boolean", default: false },
    "work-dir": { type: "string", default: "/var/tmp" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(Deno.readTextFileSync(fileURLToPath(import.meta.url)).split("*/")[0]);
  Deno.exit(0);
}
const log = (s: string) => console.error(s);
const fail = (s: string): never => {
  log(`bench-floor: ${s}`);
  Deno.exit(1);
};
const runs = Number(opt.runs);
if (opt.codec !== "l" && opt.codec !== "c") fail(`--codec ${opt.codec}: l or c`);
const codecFlag = `-${opt.codec}`;
const loopCodec = opt.codec === "c" ? "zlib" : "lzo";
const vmcores = positionals.length > 0
  ? positionals
  : [join(Deno.env.get("VMSIFT_FIXTURE_CACHE") ?? "/var/tmp/vmsift-fixtures", "vmcore.elf")];
for (const v of vmcores) if (!exists(v)) fail(`${v}: no such vmcore`);

const makedumpfile = ["/usr/bin/makedumpfile", "/usr/sbin/makedumpfile", "/sbin/makedumpfile"].find(exists) ??
  fail("makedumpfile not found (apt-get install makedumpfile)");
const gnuTime = ensureGnuTime() ?? fail("GNU time (/usr/bin/time) not found (apt-get install time)");
const qemu = opt.tcg
  ? (["/usr/bin/qemu-x86_64-static", "/usr/bin/qemu-x86_64"].find(exists) ??
    fail("--tcg: qemu-x86_64-static not found (apt-get install qemu-user-static)"))
  : undefined;

const work = Deno.makeTempDirSync({ dir: opt["work-dir"], prefix: "vmsift-floor-" });
const removeWork = () => Deno.removeSync(work, { recursive: true });
Deno.addSignalListener("SIGINT", () => {
  removeWork();
  Deno.exit(130);
});

// the C floor, the bundle, an empty script
const cLoop = join(work, "loop");
const cc = sh("gcc", [
  "-O2",
  "-o",
  cLoop,
  join(ROOT, "bench/floor/loop.c"),
  "-l:liblzo2.so.2",
  "-l:libz.so.1",
]);
if (cc.code !== 0) fail(`gcc bench/floor/loop.c failed:\n${cc.err}`);
const bundle = join(work, "vmsift.js");
const b = sh(DENO, ["bundle", "--platform=deno", "-o", bundle, join(ROOT, "main.ts")]);
if (b.code !== 0) fail(`deno bundle failed:\n${b.err}`);
const empty = join(work, "empty.ts");
Deno.writeTextFileSync(empty, "\n");
const vmsiftCmd = [DENO, "run", V8_FLAGS_ARG, "--allow-read", "--allow-write", "--allow-ffi", bundle];
const denoLoopCmd = [DENO, "run", V8_FLAGS_ARG, "--allow-read", "--allow-write", "--allow-ffi"];

/**
 * File offsets (float64) of the pages bitmap 2 of `dump` keeps, read from `vmcore`'s memory view; the pages
 * not backed by file data in full are left out and counted; `dumpable` is bitmap 2's page count.
 */
function pageOffsets(
  vmcore: string,
  dump: string,
): { offsets: Float64Array; left: number; dumpable: number } {
  const core = ElfCore.open(vmcore, { mmap: false });
  const kf = KdumpFile.open(dump);
  const page = kf.blockSize;
  const offsets: number[] = [];
  let left = 0;
  for (let pfn = 0; pfn < kf.maxMapnr; pfn++) {
    if (!kf.bitmap2.get(pfn)) continue;
    const pa = pfn * page;
    const seg = core.segments[findSegment(core.segments, pa)];
    if (seg === undefined || pa + page > seg.paddr + seg.fileSize) {
      left++; // a partial page, a zero-filled tail: left to the tools
      continue;
    }
    offsets.push(seg.fileOffset + (pa - seg.paddr));
  }
  const dumpable = kf.numDumpable;
  kf.close();
  core.close();
  return { offsets: new Float64Array(offsets), left, dumpable };
}

function commandOf(p: Program, vmcore: string, offsets: string, out: string): string[] {
  const argv = {
    "makedumpfile": [makedumpfile, codecFlag, "-d", "31", vmcore, out],
    "vmsift": [...vmsiftCmd, "--no-image-guard", codecFlag, "-d", "31", vmcore, out],
    "deno-floor": [...denoLoopCmd, join(ROOT, "bench/floor/loop.ts"), vmcore, offsets, out, loopCodec],
    "c-floor": [cLoop, vmcore, offsets, out, loopCodec],
    "deno-empty": [DENO, "run", empty],
  }[p];
  return qemu ? [qemu, ...argv] : argv;
}

const mach = machine(makedumpfile);
log(`machine: ${mach.model}, ${mach.nproc} CPUs; ${opt.tcg ? "under QEMU TCG (qemu-user)" : "native"}`);
log(`load average at start: ${loadavg().join(" ")}`);
const rows: string[][] = [];
const results: Record<string, Record<Program, { wall: number; cpu: number }>> = {};
for (const vmcore of vmcores) {
  const ref = join(work, "ref.kdump");
  const r = sh(makedumpfile, [codecFlag, "-d", "31", vmcore, ref]);
  if (r.code !== 0) fail(`makedumpfile on ${vmcore} failed:\n${r.err}`);
  const { offsets, left, dumpable: refPages } = pageOffsets(vmcore, ref);
  rm(ref);
  const offsetsPath = join(work, "offsets.f64");
  Deno.writeFileSync(offsetsPath, new Uint8Array(offsets.buffer));
  log(`${vmcore}: ${offsets.length} pages for the floors (${left} partial pages left out), ${runs} rounds`);
  warmRead(vmcore); // both tools read a warm input

  const samples = Object.fromEntries(
    PROGRAMS.map((p) => [p, [] as { wall: number; cpu: number }[]]),
  ) as Record<
    Program,
    { wall: number; cpu: number }[]
  >;
  for (let round = 0; round < runs; round++) {
    const order = round % 2 === 0 ? PROGRAMS : [...PROGRAMS].reverse();
    for (const p of order) {
      const out = join(work, `${p}.out`);
      rm(out);
      const t = await timed(commandOf(p, vmcore, offsetsPath, out), {
        gnuTime,
        timeFile: join(work, "time.txt"),
        cpus: "0",
        env: ENV,
        timeoutSeconds: 3600,
      });
      if (t.code !== 0) fail(`${p} on ${vmcore} failed (${t.code}):\n${t.stderr}`);
      samples[p].push({ wall: t.wallSeconds, cpu: t.userSeconds + t.sysSeconds });
      if (round === 0 && p === "vmsift") {
        const kf = KdumpFile.open(out);
        const pages = kf.numDumpable;
        kf.close();
        if (pages !== refPages) fail(`vmsift kept ${pages} pages, makedumpfile ${refPages}`);
      }
    }
    const c = Deno.readFileSync(join(work, "c-floor.out")),
      d = Deno.readFileSync(join(work, "deno-floor.out"));
    if (c.length !== d.length || !c.every((x, i) => x === d[i])) fail("the two floors wrote different bytes");
    for (const p of PROGRAMS) rm(join(work, `${p}.out`));
  }
  const med = Object.fromEntries(PROGRAMS.map((p) => [p, {
    wall: median(samples[p].map((x) => x.wall)),
    cpu: median(samples[p].map((x) => x.cpu)),
  }])) as Record<Program, { wall: number; cpu: number }>;
  results[vmcore] = med;
  for (const p of PROGRAMS) {
    rows.push([
      vmcore.split("/").at(-1)!,
      p,
      fmtNum(med[p].wall, 3),
      fmtNum(med[p].cpu, 3),
      fmtNum(med[p].wall / med.makedumpfile.wall),
      fmtNum(med[p].cpu / med.makedumpfile.cpu),
    ]);
  }
}
log(`load average at end: ${loadavg().join(" ")}`);
console.log(
  `${codecFlag} -d 31, pinned to CPU 0, median of ${runs} alternating rounds${
    opt.tcg ? ", every program under QEMU TCG" : ""
  }`,
);
console.log(table(["vmcore", "program", "wall s", "CPU s", "wall / mdf", "CPU / mdf"], rows));
const record = {
  date: new Date().toISOString(),
  tcg: opt.tcg,
  runs,
  machine: mach,
  loadavgEnd: loadavg(),
  results,
};
if (opt.out) Deno.writeTextFileSync(opt.out, JSON.stringify(record, null, 1) + "\n");
console.log(JSON.stringify(record));
removeWork();
