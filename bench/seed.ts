/**
 * Measure Cliff Wickman's four seed propositions (issue "The four propositions of the seed") on real and
 * synthetic idle vmcores, vmsift against makedumpfile in the same run:
 *
 *   deno run -A bench/seed.ts [--sizes 64G,256G,1T] [--real PATH|none] [--dir /var/tmp/vmsift-bench]
 *     [--out results.json] [--keep 64G,256G] [--mdf-e-max 1T] [--full-max 256G] [--timeout 1800] [--no-probe]
 *
 * For every input (the real dump, then synthetic idle machines `--mem S --content zero --mix free=0.9`,
 * generated into --dir when missing and removed afterwards unless their size is in --keep), sequentially,
 * each run on a cold input (its page cache dropped with `dd iflag=nocache count=0` before the run):
 *   vmsift -c -d 31 (O_DIRECT, default), vmsift --no-direct-io, makedumpfile -c -d 31,
 *   vmsift -e, makedumpfile -e --work-dir (inputs up to --mdf-e-max). Synthetic inputs above --full-max
 *   get only vmsift, makedumpfile and vmsift -e (the others take long and add nothing new there).
 * Per run: wall time, peak RSS (GNU time %M), growth of Cached: in /proc/meminfo minus the input's own
 * pages (fincore), fincore of the output, output size, the open descriptors seen while it ran (unlinked
 * files, their directories, O_DIRECT from fdinfo flags, anything under /tmp or /dev/shm) and the tmpfs use
 * of /dev/shm. Proposition 3 (one struct-page pass) comes from --stats-json `vmemmap_bytes_read` when the CLI
 * writes it, and from a probe (`--scan-probe VMCORE`, run in a child process) that wraps the input's
 * readPhys during the scan: bytes read in the vmemmap's physical pages, bytes read twice, bytes read by -e.
 * Prints a table and writes JSON. Times are reported only as ratios vmsift / makedumpfile.
 */
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { basename, dirname, join, resolve } from "node:path";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const GEN = fileURLToPath(new URL("../fixtures/synthetic/cli.ts", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const O_DIRECT = 0o40000; // x86_64
/** The deno to run children with: this one, or the one on PATH when this binary was replaced meanwhile. */
function denoBin(): string {
  try {
    Deno.statSync(Deno.execPath());
    return Deno.execPath();
  } catch {
    return "deno";
  }
}
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------------------
// Small system helpers

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  const mul: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  return Math.round(Number(m[1]) * mul[m[2].toUpperCase()]);
}

function run(cmd: string, args: string[]): { code: number; out: string; err: string } {
  try {
    const o = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
  } catch (e) {
    return { code: -1, out: "", err: `cannot run ${cmd}: ${(e as Error).message}` };
  }
}

function meminfoKiB(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(Deno.readTextFileSync("/proc/meminfo"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Bytes of `path` resident in the page cache (util-linux fincore). */
function fincore(path: string): number {
  const r = run("fincore", ["--bytes", "--noheadings", "--output", "RES", path]);
  if (r.code !== 0) return NaN;
  return Number(r.out.trim());
}

/** Drop the page cache of one file (POSIX_FADV_DONTNEED over the whole file, via GNU dd). */
function evict(path: string): void {
  run("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
}

/** Used bytes of the file system holding `path`. */
function dfUsed(path: string): number {
  const r = run("df", ["-B1", "--output=used", path]);
  return Number(r.out.trim().split("\n").pop());
}

function dfAvail(path: string): number {
  const r = run("df", ["-B1", "--output=avail", path]);
  return Number(r.out.trim().split("\n").pop());
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return NaN;
  }
}

function rm(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* absent */ }
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    let kids = "";
    try {
      for (const t of Deno.readDirSync(`/proc/${p}/task`)) {
        kids += Deno.readTextFileSync(`/proc/${p}/task/${t.name}/children`) + " ";
      }
    } catch { /* gone */ }
    for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
      out.push(k);
      stack.push(k);
    }
  }
  return out;
}

/** One open descriptor seen while a run was going. */
interface FdSeen {
  path: string;
  deleted: boolean;
  direct: boolean;
  flags: string;
}

// ---------------------------------------------------------------------------------------------------------
// One measured run

interface RunResult {
  label: string;
  argv: string[];
  exitCode: number;
  timedOut: boolean;
  wallSeconds: number;
  peakRssKiB: number;
  /** Highest VmHWM seen by polling (cross-check of peakRssKiB). */
  polledHwmKiB: number;
  outputBytes: number;
  /** fincore of the output right after the run. */
  outputCachedBytes: number;
  outputCachedPct: number;
  /** Cached: after - before, bytes. */
  cachedGrowth: number;
  /** Highest Cached: during the run - before. */
  cachedGrowthPeak: number;
  /** fincore of the (evicted before) input after the run. */
  inputCachedBytes: number;
  /** cachedGrowth - inputCachedBytes, as % of the bytes written. */
  netCachedGrowthPct: number;
  /** Open descriptors seen (deduplicated by path). */
  fds: FdSeen[];
  /** Unlinked files the process held open, with their directories. */
  deletedFiles: string[];
  /** Files under /tmp or /dev/shm that the process held open or mapped. */
  tmpUse: string[];
  /** /dev/shm used bytes: highest during the run - before. */
  shmGrowth: number;
  /** O_DIRECT on the output's descriptor per fdinfo (undefined if never seen). */
  outputDirect: boolean | undefined;
  bitmapLine: string | undefined;
  outputLine: string | undefined;
  scanLine: string | undefined;
  statsJson: Record<string, number> | undefined;
  stderrTail: string;
}

async function measured(
  label: string,
  argv: string[],
  input: string,
  output: string,
  timeoutSec: number,
  statsFile?: string,
): Promise<RunResult> {
  rm(output);
  if (statsFile) rm(statsFile);
  evict(input);
  const rssFile = await Deno.makeTempFile({ dir: dirname(output), prefix: "seed-rss-" });
  const cached0 = meminfoKiB("Cached");
  const shm0 = dfUsed("/dev/shm");
  let cachedPeak = cached0, shmPeak = shm0, hwm = 0;
  const fds = new Map<string, FdSeen>();
  const tmpUse = new Set<string>();
  const t0 = performance.now();
  const child = new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", "-o", rssFile, ...argv],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let done = false;
  let timedOut = false;
  const outP = child.output().then((o) => {
    done = true;
    return o;
  });
  const outputAbs = resolve(output);
  while (!done) {
    for (const pid of descendants(child.pid)) {
      try {
        const st = Deno.readTextFileSync(`/proc/${pid}/status`);
        const m = /VmHWM:\s+(\d+)/.exec(st);
        if (m) hwm = Math.max(hwm, Number(m[1]));
        for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
          let target: string;
          try {
            target = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
          } catch {
            continue;
          }
          if (!target.startsWith("/")) continue;
          let flags = "";
          try {
            flags = /flags:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`))?.[1] ?? "";
          } catch { /* closed meanwhile */ }
          const deleted = target.endsWith(" (deleted)");
          const path = deleted ? target.slice(0, -" (deleted)".length) : target;
          const key = `${path}|${flags}`;
          if (!fds.has(key)) {
            fds.set(key, {
              path,
              deleted,
              flags,
              direct: flags !== "" && (parseInt(flags, 8) & O_DIRECT) !== 0,
            });
          }
          if (/^\/(tmp|dev\/shm)\//.test(path)) tmpUse.add(path);
        }
        for (const line of Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")) {
          const p = line.split(/\s+/).slice(5).join(" ");
          if (/^\/(tmp|dev\/shm)\//.test(p)) tmpUse.add(p);
        }
      } catch { /* process gone */ }
    }
    cachedPeak = Math.max(cachedPeak, meminfoKiB("Cached"));
    shmPeak = Math.max(shmPeak, dfUsed("/dev/shm"));
    if (!timedOut && (performance.now() - t0) / 1000 > timeoutSec) {
      timedOut = true;
      for (const pid of descendants(child.pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const o = await outP;
  const wall = (performance.now() - t0) / 1000;
  const cached1 = meminfoKiB("Cached");
  const outBytes = fileSize(output);
  const outCached = fincore(output);
  const inCached = fincore(input);
  const rssText = Deno.readTextFileSync(rssFile).trim().split("\n");
  rm(rssFile);
  const peak = Number(rssText[rssText.length - 1]);
  const text = dec.decode(o.stdout) + "\n" + dec.decode(o.stderr);
  const lines = text.split(/[\r\n]/);
  const find = (re: RegExp) => lines.find((l) => re.test(l));
  let stats: Record<string, number> | undefined;
  if (statsFile) {
    try {
      stats = JSON.parse(Deno.readTextFileSync(statsFile));
    } catch { /* not written */ }
    rm(statsFile);
  }
  const fdList = [...fds.values()];
  const outFd = fdList.filter((f) => f.path === outputAbs);
  const growth = cached1 - cached0;
  return {
    label,
    argv,
    exitCode: o.code,
    timedOut,
    wallSeconds: wall,
    peakRssKiB: Number.isFinite(peak) ? peak : hwm,
    polledHwmKiB: hwm,
    outputBytes: outBytes,
    outputCachedBytes: outCached,
    outputCachedPct: (100 * outCached) / outBytes,
    cachedGrowth: growth,
    cachedGrowthPeak: cachedPeak - cached0,
    inputCachedBytes: inCached,
    netCachedGrowthPct: (100 * (growth - inCached)) / outBytes,
    fds: fdList,
    deletedFiles: fdList.filter((f) => f.deleted).map((f) => f.path),
    tmpUse: [...tmpUse],
    shmGrowth: shmPeak - shm0,
    outputDirect: outFd.length > 0 ? outFd.some((f) => f.direct) : undefined,
    bitmapLine: find(/^bitmaps in /),
    outputLine: find(/^output: /),
    scanLine: find(/^Struct page scan:/),
    statsJson: stats,
    stderrTail: o.code !== 0 ? text.slice(-2000) : "",
  };
}

// ---------------------------------------------------------------------------------------------------------
// Scan probe (runs in a child process: `bench/seed.ts --scan-probe VMCORE --dir DIR`)

interface ProbeResult {
  seconds: number;
  sections: number;
  /** Struct pages described by the sections with a mem_map (Σ pfnEnd - pfnStart). */
  structPages: number;
  pageStructSize: number;
  /** Physical bytes of the vmemmap (distinct, after translation). */
  vmemmapPhysBytes: number;
  /** ScanResult fields. */
  vmemmapBytesRead: number;
  pagesScanned: number;
  /** readPhys during the scan: all bytes, bytes inside the vmemmap, bytes of the vmemmap read more than once. */
  scanReadBytes: number;
  scanReadCalls: number;
  scanVmemmapBytes: number;
  scanRereadBytes: number;
  /** readPhys during -e: all bytes and bytes inside the vmemmap (struct pages read again). */
  eReadBytes: number;
  eVmemmapBytes: number;
  ePagesExcluded: number;
  bitmaps: string;
}

async function scanProbe(vmcore: string, dir: string): Promise<ProbeResult> {
  const { openElfInput } = await import("../dump/input.ts");
  const { buildMemoryModel } = await import("../core/memoryModel.ts");
  const { createBitmaps } = await import("../io/fileBitmap.ts");
  const { markPresentPages } = await import("../core/presentPages.ts");
  const { excludeUnnecessaryPages } = await import("../core/scan.ts");
  const { excludeVmemmapPages } = await import("../core/vmemmapExclude.ts");
  const t0 = performance.now();
  const input = openElfInput(vmcore);
  const core = input.core;
  let phase: "other" | "scan" | "e" = "other";
  const reads = { scan: [] as number[], e: [] as number[] };
  const orig = core.readPhys.bind(core);
  core.readPhys = (paddr: number, out: Uint8Array): boolean => {
    if (phase !== "other") reads[phase].push(paddr, out.length);
    return orig(paddr, out);
  };
  try {
    const model = buildMemoryModel(core, input.info, { kernelImageGuard: true });
    const size = model.sparse.pageStructSize;
    // Physical extents of the vmemmap, merged.
    const ext: [number, number][] = [];
    let structPages = 0;
    for (const s of model.sparse.sections) {
      structPages += s.pfnEnd - s.pfnStart;
      for (const p of model.vm.mapRun(s.memMap, (s.pfnEnd - s.pfnStart) * size)) {
        if (p.paddr !== undefined) ext.push([p.paddr, p.paddr + p.len]);
      }
    }
    const vm = merge(ext);
    const bm = createBitmaps(model.maxMapnr, { budgetBytes: 8 * MiB, dir, direct: true });
    try {
      markPresentPages(core.segments, model.pageSize, model.maxMapnr, bm.bitmap1);
      markPresentPages(core.segments, model.pageSize, model.maxMapnr, bm.bitmap2);
      phase = "scan";
      const scan = excludeUnnecessaryPages(model, 31, bm.bitmap1, bm.bitmap2);
      phase = "e";
      const e = excludeVmemmapPages(model, bm.bitmap1, bm.bitmap2);
      phase = "other";
      const s = tally(reads.scan, vm);
      const ee = tally(reads.e, vm);
      return {
        seconds: (performance.now() - t0) / 1000,
        sections: model.sparse.sections.length,
        structPages,
        pageStructSize: size,
        vmemmapPhysBytes: vm.reduce((a, [x, y]) => a + y - x, 0),
        vmemmapBytesRead: scan.vmemmapBytesRead,
        pagesScanned: scan.pagesScanned,
        scanReadBytes: s.total,
        scanReadCalls: reads.scan.length / 2,
        scanVmemmapBytes: s.inside,
        scanRereadBytes: s.reread,
        eReadBytes: ee.total,
        eVmemmapBytes: ee.inside,
        ePagesExcluded: e.pagesExcluded,
        bitmaps: bm.description,
      };
    } finally {
      bm.close();
    }
  } finally {
    core.close();
  }
}

function merge(iv: [number, number][]): [number, number][] {
  iv.sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of iv) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Bytes read (flat [paddr, len] pairs): in all, inside the merged extents, and read more than once. */
function tally(flat: number[], ext: [number, number][]): { total: number; inside: number; reread: number } {
  const iv: [number, number][] = [];
  let total = 0;
  for (let i = 0; i < flat.length; i += 2) {
    iv.push([flat[i], flat[i] + flat[i + 1]]);
    total += flat[i + 1];
  }
  iv.sort((a, b) => a[0] - b[0]);
  let inside = 0, reread = 0, covered = -Infinity, j = 0;
  for (const [a, b] of iv) {
    if (a < covered) reread += Math.min(b, covered) - a;
    covered = Math.max(covered, b);
    while (j < ext.length && ext[j][1] <= a) j++;
    for (let k = j; k < ext.length && ext[k][0] < b; k++) {
      inside += Math.min(b, ext[k][1]) - Math.max(a, ext[k][0]);
    }
  }
  return { total, inside, reread };
}

// ---------------------------------------------------------------------------------------------------------
// The benchmark

interface InputResult {
  name: string;
  path: string;
  kind: "real" | "synthetic";
  memBytes: number;
  vmcoreDiskBytes: number;
  generated: boolean;
  manifestPresentSections?: number;
  runs: Record<string, RunResult>;
  /** vmsift (O_DIRECT) and makedumpfile outputs byte-identical (cmp). */
  identicalToMakedumpfile?: boolean;
  probe?: ProbeResult;
  summary: Record<string, number | string | boolean | null>;
}

/** What runs as vmsift: the shipped bundle, built by main() into the work directory (main.ts if that fails). */
const shipped = { path: MAIN };

function vmsiftArgv(extra: string[], input: string, output: string): string[] {
  return [
    denoBin(),
    "run",
    V8_FLAGS_ARG, // as shipped (scripts/runtimeFlags.ts)
    "-A",
    shipped.path,
    "-c",
    "-d",
    "31",
    "--message-level",
    "31",
    ...extra,
    input,
    output,
  ];
}

async function benchInput(
  inp: Omit<InputResult, "runs" | "summary">,
  dir: string,
  opts: { mdfEMax: number; fullMax: number; timeout: number; probe: boolean },
): Promise<InputResult> {
  const res: InputResult = { ...inp, runs: {}, summary: {} };
  const o = (n: string) => join(dir, `${inp.name}.${n}.kdump`);
  const stats = join(dir, `${inp.name}.stats.json`);
  const log = (r: RunResult) =>
    console.error(
      `  ${r.label.padEnd(14)} exit ${r.exitCode}${r.timedOut ? " (timeout)" : ""}  ${
        r.wallSeconds.toFixed(1)
      } s  ${(r.peakRssKiB / 1024).toFixed(1)} MiB RSS  ${(r.outputBytes / MiB).toFixed(1)} MiB out, ${
        r.outputCachedPct.toFixed(2)
      }% cached`,
    );
  const go = async (key: string, argv: string[], out: string, statsFile?: string, keep = false) => {
    const r = await measured(key, argv, inp.path, out, opts.timeout, statsFile);
    res.runs[key] = r;
    log(r);
    if (!keep) rm(out);
    return r;
  };
  console.error(`== ${inp.name} (${inp.path})`);
  await go("vmsift", vmsiftArgv(["--stats-json", stats], inp.path, o("vmsift")), o("vmsift"), stats, true);
  await go("mdf", ["makedumpfile", "-c", "-d", "31", inp.path, o("mdf")], o("mdf"), undefined, true);
  res.identicalToMakedumpfile = run("cmp", ["-s", o("vmsift"), o("mdf")]).code === 0;
  rm(o("vmsift"));
  rm(o("mdf"));
  const full = inp.memBytes <= opts.fullMax;
  if (full) {
    await go("vmsift-buffered", vmsiftArgv(["--no-direct-io"], inp.path, o("buffered")), o("buffered"));
  }
  await go("vmsift-e", vmsiftArgv(["-e", "--stats-json", stats], inp.path, o("e")), o("e"), stats);
  if (full && inp.memBytes <= opts.mdfEMax) {
    const wd = await Deno.makeTempDir({ dir, prefix: `${inp.name}.mdf-work-` });
    try {
      await go(
        "mdf-e",
        ["makedumpfile", "-c", "-d", "31", "-e", "--work-dir", wd, inp.path, o("mdf-e")],
        o("mdf-e"),
      );
    } finally {
      Deno.removeSync(wd, { recursive: true });
    }
  }
  if (opts.probe) {
    evict(inp.path);
    const p = run(denoBin(), ["run", "-A", SELF, "--scan-probe", inp.path, "--dir", dir]);
    if (p.code === 0) res.probe = JSON.parse(p.out);
    else console.error(`  scan probe failed: ${p.err.slice(-500)}`);
    evict(inp.path);
  }
  summarize(res);
  return res;
}

function summarize(r: InputResult): void {
  const v = r.runs["vmsift"], b = r.runs["vmsift-buffered"], m = r.runs["mdf"];
  const ve = r.runs["vmsift-e"], me = r.runs["mdf-e"];
  const ratio = (a?: RunResult, c?: RunResult) =>
    a && c && a.exitCode === 0 && c.exitCode === 0 ? +(a.wallSeconds / c.wallSeconds).toFixed(3) : null;
  const s = r.summary;
  s.time_vmsift_over_mdf = ratio(v, m);
  s.time_vmsift_buffered_over_mdf = ratio(b, m);
  s.time_vmsift_e_over_mdf_e = ratio(ve, me);
  s.time_vmsift_e_over_mdf = ratio(ve, m);
  s.peak_rss_mib_vmsift = +(v.peakRssKiB / 1024).toFixed(1);
  s.peak_rss_mib_vmsift_e = ve ? +(ve.peakRssKiB / 1024).toFixed(1) : null;
  s.peak_rss_mib_mdf = +(m.peakRssKiB / 1024).toFixed(1);
  s.bitmap_line = v.bitmapLine ?? null;
  s.bitmap_files_seen = v.deletedFiles.join(", ") || "(none)";
  s.bitmap_files_direct = v.fds.filter((f) => f.deleted).every((f) => f.direct);
  s.tmp_or_shm_used = [
    ...new Set(
      Object.values(r.runs).filter((x) => x.label.startsWith("vmsift"))
        .flatMap((x) => x.tmpUse),
    ),
  ].join(", ") || "(none)";
  s.shm_growth_bytes = Math.max(
    ...Object.values(r.runs).filter((x) => x.label.startsWith("vmsift"))
      .map((x) => x.shmGrowth),
  );
  s.output_o_direct_fdinfo = v.outputDirect ?? null;
  const sj = v.statsJson;
  s.stats_vmemmap_bytes_read = sj?.vmemmap_bytes_read ?? null;
  if (r.probe) {
    const p = r.probe;
    s.struct_pages = p.structPages;
    s.struct_pages_x_size = p.structPages * p.pageStructSize;
    s.scan_vmemmap_bytes_read = p.vmemmapBytesRead;
    s.scan_read_over_struct_bytes = +(p.vmemmapBytesRead / (p.structPages * p.pageStructSize)).toFixed(4);
    s.scan_reread_bytes = p.scanRereadBytes;
    s.e_pass_vmemmap_bytes_read = p.eVmemmapBytes;
  }
  if (ve && ve.exitCode === 0) {
    s.e_out_bytes = ve.outputBytes;
    s.e_ratio_vmsift = +(v.outputBytes / ve.outputBytes).toFixed(2);
    s.e_vmemmap_pages_excluded = ve.statsJson?.vmemmap_pages_excluded ?? r.probe?.ePagesExcluded ?? null;
  }
  if (me) {
    s.mdf_e_exit = me.exitCode;
    s.e_ratio_mdf = me.exitCode === 0 ? +(m.outputBytes / me.outputBytes).toFixed(2) : null;
  }
}

function fmtMiB(n: number): string {
  return Number.isFinite(n) ? (n / MiB).toFixed(1) : "-";
}

function printTable(results: InputResult[]): void {
  const rows: string[][] = [[
    "input",
    "run",
    "exit",
    "t/t(mdf)",
    "RSS MiB",
    "out MiB",
    "out cached %",
    "Cached +MiB",
    "input cached MiB",
    "O_DIRECT(fd)",
  ]];
  for (const r of results) {
    const m = r.runs["mdf"];
    for (const [k, x] of Object.entries(r.runs)) {
      const base = k.endsWith("-e") ? r.runs["mdf-e"] ?? m : m;
      rows.push([
        r.name,
        k,
        `${x.exitCode}${x.timedOut ? "T" : ""}`,
        (x.wallSeconds / base.wallSeconds).toFixed(2) + (k.endsWith("-e") && !r.runs["mdf-e"] ? "*" : ""),
        (x.peakRssKiB / 1024).toFixed(1),
        fmtMiB(x.outputBytes),
        x.outputCachedPct.toFixed(2),
        fmtMiB(x.cachedGrowth),
        fmtMiB(x.inputCachedBytes),
        x.outputDirect === undefined ? "?" : x.outputDirect ? "yes" : "no",
      ]);
    }
  }
  printRows(rows);
  console.log(
    "(t/t(mdf): wall time over makedumpfile -c -d 31 on the same input; -e runs over makedumpfile -e,",
  );
  console.log(
    " * = over plain makedumpfile when its -e was not run. Cached +MiB: growth of Cached: in meminfo",
  );
  console.log(
    " over the run (machine-wide: includes the input's pages, next column, and other processes').)\n",
  );
  const rows2: string[][] = [[
    "input",
    "struct pages",
    "x64 MiB",
    "scan read MiB",
    "read/x64",
    "reread",
    "-e reread",
    "-e ratio",
    "mdf -e ratio",
    "same bytes as mdf",
    "bitmaps",
  ]];
  for (const r of results) {
    const s = r.summary;
    rows2.push([
      r.name,
      `${s.struct_pages ?? "-"}`,
      typeof s.struct_pages_x_size === "number" ? fmtMiB(s.struct_pages_x_size) : "-",
      typeof s.scan_vmemmap_bytes_read === "number" ? fmtMiB(s.scan_vmemmap_bytes_read) : "-",
      `${s.scan_read_over_struct_bytes ?? "-"}`,
      `${s.scan_reread_bytes ?? "-"}`,
      `${s.e_pass_vmemmap_bytes_read ?? "-"}`,
      `${s.e_ratio_vmsift ?? "-"}`,
      `${s.e_ratio_mdf ?? "-"}`,
      `${r.identicalToMakedumpfile}`,
      `${(s.bitmap_line as string | null)?.replace(/ \(.*/, "") ?? "-"}`,
    ]);
  }
  printRows(rows2);
  for (const r of results) {
    console.log(`${r.name}: ${r.summary.bitmap_line}`);
    console.log(
      `  unlinked files held open by vmsift: ${r.summary.bitmap_files_seen} (O_DIRECT: ${r.summary.bitmap_files_direct}); under /tmp or /dev/shm: ${r.summary.tmp_or_shm_used}; /dev/shm growth ${r.summary.shm_growth_bytes} B`,
    );
  }
}

function printRows(rows: string[][]): void {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  "));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "64G,256G,1T" },
      real: { type: "string" },
      dir: { type: "string", default: "/var/tmp/vmsift-bench" },
      out: { type: "string", default: "seed-results.json" },
      keep: { type: "string", default: "64G,256G" },
      "mdf-e-max": { type: "string", default: "1T" },
      "full-max": { type: "string", default: "256G" },
      "disk-budget": { type: "string", default: "40G" },
      timeout: { type: "string", default: "1800" },
      "no-probe": { type: "boolean", default: false },
      "scan-probe": { type: "string" },
    },
  });
  const dir = resolve(values.dir!);
  if (values["scan-probe"]) {
    console.log(JSON.stringify(await scanProbe(values["scan-probe"], dir)));
    return;
  }
  for (const tool of ["makedumpfile", "fincore", "/usr/bin/time", "dd", "cmp"]) {
    if (run("sh", ["-c", `command -v ${tool}`]).code !== 0) throw new Error(`${tool} is needed`);
  }
  Deno.mkdirSync(dir, { recursive: true });
  const keep = new Set(values.keep!.split(",").filter(Boolean).map(parseSize));
  const budget = parseSize(values["disk-budget"]!);
  const opts = {
    mdfEMax: parseSize(values["mdf-e-max"]!),
    fullMax: parseSize(values["full-max"]!),
    timeout: Number(values.timeout),
    probe: !values["no-probe"],
  };
  const bundle = join(dir, `vmsift-seed-${Deno.pid}.js`);
  if (run(denoBin(), ["bundle", "--platform=deno", "-o", bundle, MAIN]).code === 0) shipped.path = bundle;
  else console.error("deno bundle failed: measuring main.ts (RSS is then a few MiB higher than shipped)");
  const baseline = await measured(
    "deno -h",
    [denoBin(), "run", V8_FLAGS_ARG, "-A", shipped.path, "-h"],
    shipped.path,
    join(dir, "none"),
    60,
  );
  const results: InputResult[] = [];
  /** Written after every input, so a late failure keeps what was measured. */
  const save = () => {
    const doc = {
      date: new Date().toISOString(),
      deno: Deno.version.deno,
      makedumpfile: run("makedumpfile", ["-v"]).out.split("\n")[0].trim(),
      host: { cpus: navigator.hardwareConcurrency, memTotal: meminfoKiB("MemTotal") },
      baselineDenoRssKiB: baseline.peakRssKiB,
      inputs: results,
    };
    Deno.writeTextFileSync(values.out!, JSON.stringify(doc, null, 1) + "\n");
  };
  let real = values.real;
  if (real === undefined) {
    real = ["/var/tmp/vmcore/vmcore-4G.elf", "/var/tmp/vmcore/vmcore-1G.elf"].find((p) =>
      !isNaN(fileSize(p))
    );
  }
  if (real && real !== "none") {
    const st = Deno.statSync(real);
    results.push(
      await benchInput(
        {
          name: basename(real).replace(/\.elf$/, ""),
          path: real,
          kind: "real",
          memBytes: st.size,
          vmcoreDiskBytes: st.size,
          generated: false,
        },
        dir,
        opts,
      ),
    );
    save();
  }
  for (const sz of values.sizes!.split(",").filter(Boolean)) {
    const mem = parseSize(sz);
    const name = `idle-${sz}`;
    const path = join(dir, `${name}.vmcore`);
    let generated = false;
    if (isNaN(fileSize(path))) {
      // Struct pages are real data (16 GiB per TiB); outputs are kept two at a time (~15% of that each).
      const need = (mem / 64) * 1.4 + GiB;
      const ours = [...Deno.readDirSync(dir)].reduce((a, e) => a + diskBytes(join(dir, e.name)), 0);
      if (ours + need > budget || dfAvail(dir) - need < 10 * GiB) {
        console.error(
          `== ${name}: skipped, needs ~${(need / GiB).toFixed(1)} GiB of disk (budget ${
            values["disk-budget"]
          })`,
        );
        continue;
      }
      console.error(`== generating ${path}`);
      const g = run(denoBin(), [
        "run",
        "-A",
        GEN,
        "--mem",
        sz,
        "--content",
        "zero",
        "--mix",
        "free=0.9",
        "--out",
        path,
      ]);
      if (g.code !== 0) throw new Error(`generator failed: ${g.err}`);
      generated = true;
    }
    let present: number | undefined;
    try {
      present = JSON.parse(Deno.readTextFileSync(`${path}.manifest.json`)).present_sections;
    } catch { /* no manifest */ }
    try {
      results.push(
        await benchInput(
          {
            name,
            path,
            kind: "synthetic",
            memBytes: mem,
            vmcoreDiskBytes: diskBytes(path),
            generated,
            manifestPresentSections: present,
          },
          dir,
          opts,
        ),
      );
      save();
    } finally {
      if (generated && !keep.has(mem)) {
        rm(path);
        rm(`${path}.manifest.json`);
      }
    }
  }
  save();
  if (shipped.path === bundle) rm(bundle);
  console.log(
    `\nvmsift measured as ${
      shipped.path === bundle ? "the shipped bundle" : "main.ts"
    } with ${V8_FLAGS_ARG}; ` +
      `baseline: its -h peaks at ${(baseline.peakRssKiB / 1024).toFixed(1)} MiB RSS\n`,
  );
  printTable(results);
  console.log(`\nresults: ${values.out}`);
}

function diskBytes(path: string): number {
  try {
    const st = Deno.statSync(path);
    return (st.blocks ?? 0) * 512;
  } catch {
    return 0;
  }
}

if (import.meta.main) await main();
