/**
 * vmsift against makedumpfile, side by side (issue "Performance: faster than makedumpfile, side by side"):
 *
 *   deno task bench [--quick] [--inputs real,4g,64g,256g] [--runs N] [--out bench/results.json] [--cold]
 *     [--no-make-4g] [--synthetic-dir /var/tmp/vmsift-bench] [--work-dir /var/tmp] [--max-output 12G]
 *     [--reserve 8G] [--timeout 1800] [--no-bundle] [--keep-generated] [--single-cpu] [--commands LIST]
 *     [--real-4g /var/tmp/vmcore/vmcore-4G.elf]
 *
 * For every input, the two tools run ALTERNATELY (order swapped from one command and round to the next) on
 * the same input, `--runs` rounds (default 3; --quick: 1 round, inputs real and 64g), with the commands
 *   -c -d 31, -l -d 31, -c -d 1, -d 31 (no compression), -d 0 (no compression),
 *   -c -d 31 --num-threads 2, -l -d 31 --num-threads 2 (both tools; vmsift's ratio is given against
 *   makedumpfile's single-thread run of the same command and against makedumpfile --num-threads 2).
 * vmsift runs as the shipped bundle (built from this tree into the work directory; --no-bundle: main.ts)
 * with --no-image-guard, so that both tools keep the same page set; after every run the dumpable pages of
 * the output (`vmsift info --json`, bitmap 2) are recorded and compared between the tools. Page cache: warm
 * (the input is read once before its runs), or with --cold dropped (`sync; echo 3 > drop_caches`) before
 * every run. Outputs are deleted after every run; a run whose uncompressed output would not fit the disk
 * budget (min(--max-output, free space - --reserve)) is skipped, and a watchdog kills any run whose output
 * grows beyond it.
 *
 * --single-cpu runs both tools pinned to CPU 0 (`taskset -c 0`, as in a crash kernel booted with nr_cpus=1)
 * and leaves out the --num-threads rows; --commands=LIST picks rows by id, separated by ";" (e.g.
 * --commands="-l -d 31;-c -d 31"). CPU time (user + system, GNU time) is recorded for every run and reported per dumped
 * page beside the wall time: on a shared machine it is less disturbed by other load than the wall time.
 *
 * Prints median wall time, vmsift/makedumpfile, the same "on disk" (wall time + `sync OUTPUT` after exit:
 * makedumpfile never fsyncs, so its wall time stops before its dump reaches the disk), peak RSS (GNU time %M), output bytes, MiB/s of input memory
 * (the vmcore's PT_LOAD bytes), vmsift's struct-page scan time per 64 GiB, and the start-up of both vmsift
 * forms; writes all samples and the machine description to the JSON file.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import {
  dfAvail,
  dropCaches,
  elfMemoryBytes,
  ensureGnuTime,
  exists,
  fileSize,
  fincore,
  fmtNum,
  GiB,
  loadavg,
  machine,
  median,
  meminfo,
  MiB,
  parseSize,
  rm,
  sh,
  table,
  timed,
  warmRead,
} from "./lib.ts";
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const GEN = join(ROOT, "fixtures/synthetic/cli.ts");
const MAKE_VMCORE = join(ROOT, "../shared/vmcore/make-vmcore.sh");
const DENO = Deno.execPath();
/**
 * For vmsift's runs: no Deno update check (`deno run` otherwise resolves dl.deno.land from a background
 * thread during runs longer than a moment; a launcher should set it too).
 */
const DENO_ENV = { DENO_NO_UPDATE_CHECK: "1" };
const dec = new TextDecoder();

const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    inputs: { type: "string" },
    runs: { type: "string" },
    out: { type: "string", default: join(ROOT, "bench/results.json") },
    cold: { type: "boolean", default: false },
    "no-make-4g": { type: "boolean", default: false },
    "synthetic-dir": { type: "string", default: "/var/tmp/vmsift-bench" },
    "work-dir": { type: "string", default: "/var/tmp" },
    "max-output": { type: "string", default: "12G" },
    reserve: { type: "string", default: "8G" },
    timeout: { type: "string", default: "1800" },
    "no-bundle": { type: "boolean", default: false },
    "keep-generated": { type: "boolean", default: false },
    "single-cpu": { type: "boolean", default: false },
    commands: { type: "string" },
    "real-4g": { type: "string", default: "/var/tmp/vmcore/vmcore-4G.elf" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(dec.decode(Deno.readFileSync(fileURLToPath(import.meta.url))).split("*/")[0]);
  Deno.exit(0);
}
const runs = Number(opt.runs ?? (opt.quick ? 1 : 3));
const inputNames = (opt.inputs ?? (opt.quick ? "real,64g" : "real,4g,64g,256g")).split(",").filter(Boolean);
const maxOutput = parseSize(opt["max-output"]!);
const reserve = parseSize(opt.reserve!);
const timeoutSeconds = Number(opt.timeout);
const log = (s: string) => console.error(s);
/** --single-cpu: both tools pinned to CPU 0. */
const cpus = opt["single-cpu"] ? "0" : undefined;

const makedumpfile = ["/usr/bin/makedumpfile", "/usr/sbin/makedumpfile", "/sbin/makedumpfile"].find(exists);
if (!makedumpfile) {
  log("makedumpfile not found (apt-get install makedumpfile)");
  Deno.exit(1);
}
const gnuTime = ensureGnuTime();
if (!gnuTime) log("note: /usr/bin/time unavailable, peak RSS from /proc VmHWM polling");
const mach = machine(makedumpfile);
const work = Deno.makeTempDirSync({ dir: opt["work-dir"], prefix: "vmsift-runbench-" });
const cleanup: string[] = [];
const removeWork = () => {
  for (const p of cleanup) rm(p);
  try {
    Deno.removeSync(work, { recursive: true });
  } catch { /* gone */ }
};
Deno.addSignalListener("SIGINT", () => {
  removeWork();
  Deno.exit(130);
});

// ---------------------------------------------------------------------------------------------------------
// vmsift, as shipped (the bundle) or from source

let vmsiftCmd: string[];
if (opt["no-bundle"]) {
  vmsiftCmd = [DENO, "run", "-A", MAIN];
} else {
  const bundle = join(work, "vmsift.js");
  const b = sh(DENO, ["bundle", "--platform=deno", "-o", bundle, MAIN]);
  if (b.code !== 0 || !exists(bundle)) {
    log(`deno bundle failed, using main.ts:\n${b.err}`);
    vmsiftCmd = [DENO, "run", "-A", MAIN];
  } else {
    // as shipped: the permissions and V8 flags that deno task compile bakes in
    vmsiftCmd = [DENO, "run", V8_FLAGS_ARG, "--allow-read", "--allow-write", "--allow-ffi", bundle];
  }
}
const vmsiftForm = vmsiftCmd[2] === "-A" ? "main.ts" : `bundle (${V8_FLAGS_ARG})`;

/** Start-up (median of 5 `--version`) of both vmsift forms and of makedumpfile. */
async function startup(): Promise<Record<string, number>> {
  const forms: Record<string, string[]> = {
    "vmsift main.ts": [DENO, "run", "-A", MAIN, "--version"],
    "makedumpfile": [makedumpfile!, "-v"],
  };
  if (vmsiftForm !== "main.ts") forms["vmsift bundle"] = [...vmsiftCmd, "--version"];
  const res: Record<string, number> = {};
  for (const [k, argv] of Object.entries(forms)) {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      new Deno.Command(argv[0], { args: argv.slice(1), stdout: "null", stderr: "null" }).outputSync();
      xs.push((performance.now() - t0) / 1000);
    }
    res[k] = median(xs);
  }
  return await Promise.resolve(res);
}

/** Dumpable pages (bitmap 2) of a kdump file, via vmsift info --json. */
function dumpablePages(kdump: string): number {
  const r = sh(vmsiftCmd[0], [...vmsiftCmd.slice(1), "info", "--json", kdump]);
  if (r.code !== 0) return NaN;
  try {
    return Number(JSON.parse(r.out).bitmap2Pages);
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

interface Input {
  name: string;
  path: string;
  /** The file we run on (a hard link into the work dir for shared synthetic files). */
  runPath: string;
  memBytes: number;
  fileBytes: number;
  generated: boolean;
  cache: string;
}

async function realInput(): Promise<string | null> {
  try {
    const { realVmcore } = await import("../tests/support/fixture.ts");
    return await realVmcore();
  } catch (e) {
    log(`real fixture unavailable: ${e}`);
    return null;
  }
}

function make4g(): string | null {
  const p = opt["real-4g"]!;
  if (exists(p)) return p;
  if (opt["no-make-4g"]) {
    log("4g: /var/tmp/vmcore/vmcore-4G.elf absent and --no-make-4g: skipped");
    return null;
  }
  if (!exists(MAKE_VMCORE)) {
    log(`4g: ${MAKE_VMCORE} absent: skipped`);
    return null;
  }
  if (dfAvail("/var/tmp") < 6 * GiB + reserve) {
    log("4g: not enough disk to make the 4 GiB dump: skipped");
    return null;
  }
  log("4g: making /var/tmp/vmcore/vmcore-4G.elf with make-vmcore.sh (QEMU, several minutes)");
  const r = new Deno.Command("bash", {
    args: [MAKE_VMCORE, "MEM=4G", "FILL_MB=256", `OUT=${p.slice(0, p.lastIndexOf("/"))}`],
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  return r.code === 0 && exists(p) ? p : null;
}

function synthetic(size: string): { path: string; generated: boolean } | null {
  const path = join(opt["synthetic-dir"]!, `idle-${size}.vmcore`);
  if (exists(path) && exists(`${path}.manifest.json`)) return { path, generated: false };
  const mem = parseSize(size);
  // An idle zero-content machine is sparse: about 1/60 of its memory is allocated on disk.
  const need = mem / 48 + reserve;
  if (dfAvail(opt["work-dir"]!) < need) {
    log(`${size}: not enough disk to generate (${(need / GiB).toFixed(1)} GiB needed): skipped`);
    return null;
  }
  const out = join(work, `idle-${size}.vmcore`);
  log(`${size}: generating ${out}`);
  const r = new Deno.Command(DENO, {
    args: ["run", "-A", GEN, "--mem", size, "--content", "zero", "--mix", "free=0.9", "--out", out],
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  if (r.code !== 0) return null;
  cleanup.push(out, `${out}.manifest.json`);
  return { path: out, generated: true };
}

async function resolveInput(name: string): Promise<Input | null> {
  let path: string | null = null;
  let generated = false;
  if (name === "real") path = await realInput();
  else if (name === "4g") path = make4g();
  else if (/^\d+[gt]$/i.test(name)) {
    const s = synthetic(name.toUpperCase());
    if (s) ({ path, generated } = s);
  } else log(`unknown input ${name}: skipped`);
  if (!path) return null;
  // Shared files may be removed by other benches while we run: hold our own hard link.
  let runPath = path;
  if (!generated && path.startsWith(opt["synthetic-dir"]!)) {
    const link = join(work, `in-${name}.vmcore`);
    try {
      Deno.linkSync(path, link);
      runPath = link;
      cleanup.push(link);
    } catch { /* other file system: use it in place */ }
  }
  return {
    name,
    path,
    runPath,
    memBytes: elfMemoryBytes(runPath),
    fileBytes: fileSize(runPath),
    generated,
    cache: "",
  };
}

// ---------------------------------------------------------------------------------------------------------
// Commands and runs

interface Cmd {
  id: string;
  args: string[];
  threads: number;
  level: number;
  compressed: boolean;
  /** For threaded rows: the single-thread row whose makedumpfile run is the baseline. */
  base?: string;
}

const ALL_CMDS: Cmd[] = [
  { id: "-c -d 31", args: ["-c", "-d", "31"], threads: 1, level: 31, compressed: true },
  { id: "-l -d 31", args: ["-l", "-d", "31"], threads: 1, level: 31, compressed: true },
  { id: "-c -d 1", args: ["-c", "-d", "1"], threads: 1, level: 1, compressed: true },
  { id: "-d 31", args: ["-d", "31"], threads: 1, level: 31, compressed: false },
  { id: "-d 0", args: ["-d", "0"], threads: 1, level: 0, compressed: false },
  {
    id: "-c -d 31 --num-threads 2",
    args: ["-c", "-d", "31"],
    threads: 2,
    level: 31,
    compressed: true,
    base: "-c -d 31",
  },
  {
    id: "-l -d 31 --num-threads 2",
    args: ["-l", "-d", "31"],
    threads: 2,
    level: 31,
    compressed: true,
    base: "-l -d 31",
  },
];

/** The rows run: --commands, else all (without the threaded ones in single-CPU mode). */
const CMDS: Cmd[] = opt.commands !== undefined
  ? opt.commands.split(";").map((id) => id.trim()).filter(Boolean).map((id) => {
    const c = ALL_CMDS.find((x) => x.id === id);
    if (c === undefined) {
      throw new Error(`unknown command ${id}: one of ${ALL_CMDS.map((x) => x.id).join("; ")}`);
    }
    return c;
  })
  : ALL_CMDS.filter((c) => cpus === undefined || c.threads === 1);

type Tool = "vmsift" | "makedumpfile";

interface Sample {
  round: number;
  code: number;
  wallSeconds: number;
  /** `sync OUTPUT` (fsync of the output) right after the tool exits: its dirty pages reaching the disk. */
  syncSeconds: number;
  peakRssKiB: number;
  /** CPU seconds (user + system, all threads; GNU time). */
  cpuSeconds: number;
  outputBytes: number;
  dumpablePages: number;
  /** vmsift only: from --stats-json. */
  scanSeconds?: number;
  structPagesScanned?: number;
  skipped?: string;
  error?: string;
  loadavg1: number;
}

interface Row {
  input: string;
  cmd: Cmd;
  samples: Record<Tool, Sample[]>;
}

function threadArgs(c: Cmd): string[] {
  return c.threads > 1 ? ["--num-threads", String(c.threads)] : [];
}

async function runOne(
  tool: Tool,
  c: Cmd,
  inp: Input,
  round: number,
  known: Map<number, number>,
): Promise<Sample> {
  const out = join(work, `${inp.name}-${tool}.kdump`);
  const stats = join(work, `${inp.name}-stats.json`);
  rm(out);
  rm(stats);
  const limit = Math.min(maxOutput, dfAvail(work) - reserve);
  const base: Sample = {
    round,
    code: -1,
    wallSeconds: NaN,
    syncSeconds: NaN,
    peakRssKiB: NaN,
    cpuSeconds: NaN,
    outputBytes: NaN,
    dumpablePages: NaN,
    loadavg1: loadavg()[0],
  };
  // Uncompressed output is ~ dumpable pages * 4 KiB: skip what cannot fit.
  if (!c.compressed) {
    const pages = c.level === 0 ? inp.memBytes / 4096 : known.get(c.level) ?? inp.memBytes / 4096;
    const est = pages * 4096;
    if (est > limit) {
      return {
        ...base,
        skipped: `output ~${(est / GiB).toFixed(1)} GiB > budget ${(limit / GiB).toFixed(1)} GiB`,
      };
    }
  }
  if (limit <= 0) return { ...base, skipped: "disk budget exhausted" };
  if (opt.cold && !dropCaches()) log("warning: cannot drop caches (not root?)");
  const argv = tool === "vmsift"
    ? [...vmsiftCmd, ...c.args, ...threadArgs(c), "--no-image-guard", "--stats-json", stats, inp.runPath, out]
    : [makedumpfile!, ...c.args, ...threadArgs(c), inp.runPath, out];
  const r = await timed(argv, {
    gnuTime,
    timeFile: join(work, "time.txt"),
    watchFile: out,
    maxOutputBytes: limit,
    timeoutSeconds,
    cpus,
    env: tool === "vmsift" ? DENO_ENV : undefined,
  });
  const s: Sample = {
    ...base,
    code: r.code,
    wallSeconds: r.wallSeconds,
    peakRssKiB: r.peakRssKiB,
    cpuSeconds: r.userSeconds + r.sysSeconds,
  };
  if (r.killed) s.error = `killed: ${r.killed}`;
  else if (r.code !== 0) s.error = (r.stderr + r.stdout).trim().split("\n").slice(-3).join(" | ");
  if (r.code === 0 && !r.killed) {
    const t0 = performance.now();
    sh("sync", [out]);
    s.syncSeconds = (performance.now() - t0) / 1000;
    s.outputBytes = fileSize(out);
    s.dumpablePages = dumpablePages(out);
    if (Number.isFinite(s.dumpablePages)) known.set(c.level, s.dumpablePages);
    if (tool === "vmsift") {
      try {
        const j = JSON.parse(Deno.readTextFileSync(stats));
        s.scanSeconds = Number(j.scan_seconds);
        s.structPagesScanned = Number(j.struct_pages_scanned);
      } catch { /* no stats */ }
    }
  }
  rm(out);
  rm(stats);
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Main

const startLoad = loadavg();
log(
  `vmsift bench: ${mach.model}, ${mach.nproc} CPUs, ${(mach.memTotalBytes / GiB).toFixed(1)} GiB, ` +
    `load ${startLoad.join(" ")}; deno ${mach.deno}; ${mach.makedumpfile}; vmsift as ${vmsiftForm}`,
);
const start = await startup();
log(
  `start-up (--version, median of 5): ${
    Object.entries(start).map(([k, v]) => `${k} ${v.toFixed(3)} s`).join(", ")
  }`,
);

const inputs: Input[] = [];
const rows: Row[] = [];
try {
  for (const name of inputNames) {
    const inp = await resolveInput(name);
    if (!inp) continue;
    inputs.push(inp);
    if (opt.cold) {
      inp.cache = "cold (caches dropped before every run)";
    } else {
      const secs = warmRead(inp.runPath);
      const cached = fincore(inp.runPath);
      const avail = meminfo("MemAvailable");
      inp.cache = inp.fileBytes > 0.8 * avail
        ? `warm attempted (read once, ${secs.toFixed(1)} s) but file ${
          (inp.fileBytes / GiB).toFixed(1)
        } GiB > ` +
          `80% of available memory: ${(cached / GiB).toFixed(1)} GiB cached`
        : `warm (read once before, ${secs.toFixed(1)} s; ${(cached / MiB).toFixed(0)} MiB cached)`;
    }
    log(
      `== ${name}: ${inp.path} (${(inp.memBytes / GiB).toFixed(2)} GiB memory, ` +
        `${(inp.fileBytes / GiB).toFixed(2)} GiB file) ${inp.cache}`,
    );
    const mine: Row[] = CMDS.map((cmd) => ({ input: name, cmd, samples: { vmsift: [], makedumpfile: [] } }));
    rows.push(...mine);
    const known = new Map<number, number>();
    for (let round = 0; round < runs; round++) {
      for (const [i, row] of mine.entries()) {
        const order: Tool[] = (i + round) % 2 === 0 ? ["vmsift", "makedumpfile"] : ["makedumpfile", "vmsift"];
        for (const tool of order) {
          const s = await runOne(tool, row.cmd, inp, round, known);
          row.samples[tool].push(s);
          const what = s.skipped
            ? `skipped: ${s.skipped}`
            : s.error
            ? `FAILED ${s.error}`
            : `${s.wallSeconds.toFixed(2)} s (cpu ${s.cpuSeconds.toFixed(2)} s), ${
              (s.peakRssKiB / 1024).toFixed(1)
            } MiB RSS, ${(s.outputBytes / MiB).toFixed(1)} MiB out, ${s.dumpablePages} pages`;
          log(`  [${round + 1}/${runs}] ${tool.padEnd(12)} ${row.cmd.id.padEnd(24)} ${what}`);
        }
      }
    }
    if (inp.generated && !opt["keep-generated"]) {
      rm(inp.runPath);
      rm(`${inp.runPath}.manifest.json`);
    }
  }
} finally {
  removeWork();
}

// ---------------------------------------------------------------------------------------------------------
// Summary

interface Summary {
  input: string;
  command: string;
  vmsiftSeconds: number;
  makedumpfileSeconds: number;
  ratio: number;
  /** Median over rounds of the two tools' wall-time ratio within the round (the runs next to each other). */
  pairedRatio: number;
  /** CPU time (user + system, all threads) medians, their ratio, and per dumped page (µs). */
  vmsiftCpuSeconds: number;
  makedumpfileCpuSeconds: number;
  cpuRatio: number;
  vmsiftCpuUsPerPage: number;
  makedumpfileCpuUsPerPage: number;
  /** Wall time plus the fsync of the output after exit (the dump on disk), and their ratio. */
  vmsiftDurableSeconds: number;
  makedumpfileDurableSeconds: number;
  durableRatio: number;
  makedumpfileThreadedSeconds?: number;
  ratioVsThreaded?: number;
  vmsiftRssMiB: number;
  makedumpfileRssMiB: number;
  vmsiftOutputBytes: number;
  makedumpfileOutputBytes: number;
  vmsiftMiBps: number;
  makedumpfileMiBps: number;
  vmsiftPages: number;
  makedumpfilePages: number;
  pagesEqual: boolean | null;
  note: string;
}

const ok = (xs: Sample[]) => xs.filter((s) => s.code === 0 && !s.error && !s.skipped);
const med = (xs: Sample[], f: (s: Sample) => number) => median(ok(xs).map(f));
const summaries: Summary[] = [];
for (const row of rows) {
  const inp = inputs.find((i) => i.name === row.input)!;
  const baseRow = row.cmd.base ? rows.find((r) => r.input === row.input && r.cmd.id === row.cmd.base)! : row;
  const vm = row.samples.vmsift;
  const md = baseRow.samples.makedumpfile;
  const vs = med(vm, (s) => s.wallSeconds);
  const ms = med(md, (s) => s.wallSeconds);
  const vd = med(vm, (s) => s.wallSeconds + s.syncSeconds);
  const mdur = med(md, (s) => s.wallSeconds + s.syncSeconds);
  const vp = ok(vm).map((s) => s.dumpablePages);
  const mp = ok(row.samples.makedumpfile).map((s) => s.dumpablePages);
  const all = [...vp, ...mp];
  const notes = [...vm, ...row.samples.makedumpfile].map((s) => s.skipped ?? s.error).filter(Boolean);
  const sum: Summary = {
    input: row.input,
    command: row.cmd.id,
    vmsiftSeconds: vs,
    makedumpfileSeconds: ms,
    ratio: vs / ms,
    pairedRatio: median(vm.map((s, i) => {
      const m = md[i];
      return m !== undefined && ok([s]).length && ok([m]).length ? s.wallSeconds / m.wallSeconds : NaN;
    })),
    vmsiftCpuSeconds: med(vm, (s) => s.cpuSeconds),
    makedumpfileCpuSeconds: med(md, (s) => s.cpuSeconds),
    cpuRatio: med(vm, (s) => s.cpuSeconds) / med(md, (s) => s.cpuSeconds),
    vmsiftCpuUsPerPage: med(vm, (s) => s.cpuSeconds / s.dumpablePages) * 1e6,
    makedumpfileCpuUsPerPage: med(md, (s) => s.cpuSeconds / s.dumpablePages) * 1e6,
    vmsiftDurableSeconds: vd,
    makedumpfileDurableSeconds: mdur,
    durableRatio: vd / mdur,
    vmsiftRssMiB: med(vm, (s) => s.peakRssKiB) / 1024,
    makedumpfileRssMiB: med(md, (s) => s.peakRssKiB) / 1024,
    vmsiftOutputBytes: med(vm, (s) => s.outputBytes),
    makedumpfileOutputBytes: med(md, (s) => s.outputBytes),
    vmsiftMiBps: inp.memBytes / MiB / vs,
    makedumpfileMiBps: inp.memBytes / MiB / ms,
    vmsiftPages: median(vp),
    makedumpfilePages: median(mp),
    pagesEqual: vp.length && mp.length ? all.every((p) => p === all[0]) : null,
    note: [...new Set(notes)].join("; "),
  };
  if (row.cmd.base) {
    sum.makedumpfileThreadedSeconds = med(row.samples.makedumpfile, (s) => s.wallSeconds);
    sum.ratioVsThreaded = vs / sum.makedumpfileThreadedSeconds;
    sum.makedumpfileRssMiB = med(row.samples.makedumpfile, (s) => s.peakRssKiB) / 1024;
    sum.makedumpfileOutputBytes = med(row.samples.makedumpfile, (s) => s.outputBytes);
  }
  summaries.push(sum);
}

const scan: Record<string, { seconds: number; structPages: number; secondsPer64GiB: number }> = {};
for (const inp of inputs) {
  const ss = rows.filter((r) => r.input === inp.name && r.cmd.threads === 1)
    .flatMap((r) => ok(r.samples.vmsift)).filter((s) => Number.isFinite(s.scanSeconds));
  const secs = median(ss.map((s) => s.scanSeconds!));
  const pages = median(ss.map((s) => s.structPagesScanned!));
  // Scaled by the input's memory (the scan covers all of it, skipping what the buddy lists show free).
  scan[inp.name] = { seconds: secs, structPages: pages, secondsPer64GiB: secs * 64 * GiB / inp.memBytes };
}

const mib = (b: number) => fmtNum(b / MiB, 1);
const pair = (a: string, b: string) => `${a} / ${b}`;
const head = [
  "input",
  "command",
  "vmsift s",
  "mdf s",
  "vms/mdf",
  "paired",
  "CPU s vms / mdf",
  "cpu ratio",
  "CPU µs/page vms / mdf",
  "on disk: vms / mdf s",
  "ratio",
  "mdf -t2 s",
  "vms/mdf-t2",
  "RSS MiB vms / mdf",
  "out MiB vms / mdf",
  "MiB/s vms / mdf",
  "pages equal",
];
const body = summaries.map((s) => [
  s.input,
  s.command,
  fmtNum(s.vmsiftSeconds),
  fmtNum(s.makedumpfileSeconds),
  fmtNum(s.ratio),
  fmtNum(s.pairedRatio),
  pair(fmtNum(s.vmsiftCpuSeconds), fmtNum(s.makedumpfileCpuSeconds)),
  fmtNum(s.cpuRatio),
  pair(fmtNum(s.vmsiftCpuUsPerPage, 1), fmtNum(s.makedumpfileCpuUsPerPage, 1)),
  pair(fmtNum(s.vmsiftDurableSeconds), fmtNum(s.makedumpfileDurableSeconds)),
  fmtNum(s.durableRatio),
  s.makedumpfileThreadedSeconds !== undefined ? fmtNum(s.makedumpfileThreadedSeconds) : "",
  s.ratioVsThreaded !== undefined ? fmtNum(s.ratioVsThreaded) : "",
  pair(fmtNum(s.vmsiftRssMiB, 1), fmtNum(s.makedumpfileRssMiB, 1)),
  pair(mib(s.vmsiftOutputBytes), mib(s.makedumpfileOutputBytes)),
  pair(fmtNum(s.vmsiftMiBps, 0), fmtNum(s.makedumpfileMiBps, 0)),
  s.pagesEqual === null
    ? "-"
    : s.pagesEqual
    ? `yes ${s.vmsiftPages}`
    : `NO ${s.vmsiftPages}/${s.makedumpfilePages}`,
]);
const endLoad = loadavg();
const lines = [
  "",
  `vmsift (${vmsiftForm}, --no-image-guard so both keep the same pages; O_DIRECT output) vs makedumpfile ` +
  `(${mach.makedumpfile}); median of ${runs} run(s), run alternately.`,
  `Machine: ${mach.model}, ${mach.nproc} CPUs, ${(mach.memTotalBytes / GiB).toFixed(1)} GiB; ` +
  `deno ${mach.deno}; load average ${startLoad.join(" ")} at start, ${endLoad.join(" ")} at end.`,
  ...inputs.map((i) =>
    `Input ${i.name}: ${i.path}, ${(i.memBytes / GiB).toFixed(2)} GiB memory; page cache: ${i.cache}`
  ),
  "Rows with --num-threads 2: 'mdf s' is makedumpfile's single-thread run of the same command, " +
  "'mdf -t2 s' its --num-threads 2 run; RSS and output columns then show makedumpfile --num-threads 2.",
  "MiB/s = input memory (PT_LOAD bytes) / wall time. vms/mdf < 1: vmsift faster; 'paired' = median over " +
  "rounds of the ratio of the two runs of a round (next to each other).",
  "CPU = user + system time of all threads (GNU time); per page = per dumped page (bitmap 2 of the output).",
  cpus !== undefined ? "Single-CPU mode: both tools ran under `taskset -c 0`." : "",
  "'on disk': wall time + `sync OUTPUT` right after exit. makedumpfile leaves its output in the page cache " +
  "(no fsync); vmsift writes with O_DIRECT and fsyncs, so its wall time already includes the disk.",
  "",
  table(head, body),
  "",
  ...summaries.filter((s) => s.note).map((s) => `note ${s.input} ${s.command}: ${s.note}`),
  ...Object.entries(scan).map(([k, v]) =>
    `struct page scan ${k}: ${fmtNum(v.seconds, 3)} s for ${v.structPages} struct pages = ` +
    `${fmtNum(v.secondsPer64GiB, 2)} s per 64 GiB of input memory`
  ),
  `start-up (--version, median of 5): ${
    Object.entries(start).map(([k, v]) => `${k} ${v.toFixed(3)} s`).join(", ")
  }`,
];
console.log(lines.join("\n"));

const result = {
  date: new Date().toISOString(),
  machine: { ...mach, loadavgEnd: endLoad },
  options: {
    runs,
    inputs: inputNames,
    cold: opt.cold,
    singleCpu: cpus !== undefined,
    commands: CMDS.map((c) => c.id),
    vmsiftForm,
    vmsiftArgs: "--no-image-guard (same page set as makedumpfile)",
    cache: opt.cold
      ? "cold: sync; echo 3 > /proc/sys/vm/drop_caches before every run"
      : "warm: input read once before",
  },
  startupSeconds: start,
  inputs: inputs.map(({ name, path, memBytes, fileBytes, cache }) => ({
    name,
    path,
    memBytes,
    fileBytes,
    cache,
  })),
  summary: summaries,
  structPageScan: scan,
  rows: rows.map((r) => ({ input: r.input, command: r.cmd.id, threads: r.cmd.threads, samples: r.samples })),
  table: lines.join("\n"),
};
Deno.writeTextFileSync(opt.out!, JSON.stringify(result, null, 1) + "\n");
log(`results written to ${opt.out}`);
