/**
 * Shared helpers for the benches: subprocess timing with peak RSS (GNU time `%M`, or /proc polling of
 * VmHWM when /usr/bin/time is absent), an output-size watchdog, medians, machine description, ELF memory
 * size, page-cache warm-up and drop, disk space.
 */

const dec = new TextDecoder();
export const KiB = 1024;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** Run a command to completion, capturing its output as text. */
export function sh(cmd: string, args: string[]): { code: number; out: string; err: string } {
  try {
    const o = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
  } catch (e) {
    return { code: 127, out: "", err: String(e) };
  }
}

export function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

export function fileSize(p: string): number {
  try {
    return Deno.statSync(p).size;
  } catch {
    return NaN;
  }
}

export function rm(p: string): void {
  try {
    Deno.removeSync(p);
  } catch { /* absent */ }
}

/** Median of the finite values (NaN when none). */
export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Parse 4G, 256M, 1.5T (binary units). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  const mul: Record<string, number> = { "": 1, K: KiB, M: MiB, G: GiB, T: 2 ** 40 };
  return Math.round(Number(m[1]) * mul[m[2].toUpperCase()]);
}

/** Available bytes on the file system holding `path`. */
export function dfAvail(path: string): number {
  const r = sh("df", ["-B1", "--output=avail", path]);
  return Number(r.out.trim().split("\n").pop());
}

export function meminfo(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(Deno.readTextFileSync("/proc/meminfo"));
  return m ? Number(m[1]) * KiB : NaN;
}

export function loadavg(): number[] {
  return Deno.readTextFileSync("/proc/loadavg").trim().split(/\s+/).slice(0, 3).map(Number);
}

/** The machine, for the results file. */
export interface Machine {
  hostname: string;
  nproc: number;
  model: string;
  memTotalBytes: number;
  kernel: string;
  deno: string;
  v8: string;
  makedumpfile: string;
  loadavgStart: number[];
}

export function machine(makedumpfile: string): Machine {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const mdf = sh(makedumpfile, ["-v"]);
  return {
    hostname: Deno.hostname(),
    nproc: Number(sh("nproc", []).out.trim()) || navigator.hardwareConcurrency,
    model,
    memTotalBytes: meminfo("MemTotal"),
    kernel: sh("uname", ["-r"]).out.trim(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    makedumpfile: (mdf.out + mdf.err).split("\n")[0].trim(),
    loadavgStart: loadavg(),
  };
}

/** Memory bytes an ELF64 vmcore describes: the sum of its PT_LOAD p_memsz (not its file size). */
export function elfMemoryBytes(path: string): number {
  const f = Deno.openSync(path, { read: true });
  try {
    const eh = new Uint8Array(64);
    f.readSync(eh);
    const dv = new DataView(eh.buffer);
    if (dv.getUint32(0) !== 0x7f454c46 || eh[4] !== 2) return NaN;
    const phoff = Number(dv.getBigUint64(32, true));
    const phentsize = dv.getUint16(54, true);
    const phnum = dv.getUint16(56, true);
    const ph = new Uint8Array(phentsize * phnum);
    f.seekSync(phoff, Deno.SeekMode.Start);
    let got = 0;
    while (got < ph.length) {
      const n = f.readSync(ph.subarray(got));
      if (n === null) break;
      got += n;
    }
    const pv = new DataView(ph.buffer);
    let sum = 0;
    for (let i = 0; i < phnum; i++) {
      if (pv.getUint32(i * phentsize, true) === 1) sum += Number(pv.getBigUint64(i * phentsize + 40, true));
    }
    return sum;
  } finally {
    f.close();
  }
}

/** Read a file once into the page cache (GNU dd); returns seconds. */
export function warmRead(path: string): number {
  const t0 = performance.now();
  sh("dd", [`if=${path}`, "of=/dev/null", "bs=4M", "status=none"]);
  return (performance.now() - t0) / 1000;
}

/** Bytes of `path` in the page cache (util-linux fincore), NaN when fincore is absent. */
export function fincore(path: string): number {
  const r = sh("fincore", ["--bytes", "--noheadings", "--output", "RES", path]);
  return r.code === 0 ? Number(r.out.trim()) : NaN;
}

/** `sync; echo 3 > /proc/sys/vm/drop_caches` (needs root); false when not permitted. */
export function dropCaches(): boolean {
  sh("sync", []);
  try {
    Deno.writeTextFileSync("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}

/** GNU time at /usr/bin/time, installing the Debian package `time` when absent (root, apt). */
export function ensureGnuTime(): string | null {
  if (exists("/usr/bin/time")) return "/usr/bin/time";
  sh("apt-get", ["install", "-y", "--no-install-recommends", "time"]);
  return exists("/usr/bin/time") ? "/usr/bin/time" : null;
}

export interface TimedResult {
  code: number;
  wallSeconds: number;
  /** Peak RSS of the measured process, KiB (GNU time %M, else the highest VmHWM polled). */
  peakRssKiB: number;
  /** CPU seconds in user and system mode of the measured process and its threads (GNU time %U %S; NaN without it). */
  userSeconds: number;
  sysSeconds: number;
  stdout: string;
  stderr: string;
  /** Killed by the watchdog (output grew beyond the limit). */
  killed: string | null;
}

export interface TimedOptions {
  /** GNU time binary or null (then VmHWM is polled from /proc). */
  gnuTime: string | null;
  /** Scratch file for GNU time's report. */
  timeFile: string;
  /** Kill the run when this file grows beyond maxOutputBytes. */
  watchFile?: string;
  maxOutputBytes?: number;
  /** Kill the run after this many seconds. */
  timeoutSeconds?: number;
  /** Run pinned to these CPUs (`taskset -c LIST` inside GNU time, e.g. "0"): the single-CPU mode. */
  cpus?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

function vmHwmKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Direct children of a pid (the process GNU time runs). */
function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).split(/\s+/).filter(Boolean).map(
      Number,
    );
  } catch {
    return [];
  }
}

/**
 * Run argv, wall time from here (spawn to exit), peak RSS from GNU time (or polling). stdout and stderr
 * are captured. A watchdog polls the output file's size and kills the process group beyond the limit.
 */
export async function timed(argv: string[], o: TimedOptions): Promise<TimedResult> {
  rm(o.timeFile);
  const pinned = o.cpus !== undefined ? ["taskset", "-c", o.cpus, ...argv] : argv;
  const full = o.gnuTime ? [o.gnuTime, "-f", "%M %U %S", "-o", o.timeFile, ...pinned] : pinned;
  const t0 = performance.now();
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    stdout: "piped",
    stderr: "piped",
    env: o.env,
  })
    .spawn();
  let killed: string | null = null;
  let polledHwm = 0;
  const timer = setInterval(() => {
    const pids = o.gnuTime ? childrenOf(child.pid) : [child.pid];
    for (const p of pids) polledHwm = Math.max(polledHwm, vmHwmKiB(p));
    if (o.watchFile && o.maxOutputBytes !== undefined && !killed) {
      const sz = fileSize(o.watchFile);
      if (sz > o.maxOutputBytes) {
        killed = `output ${sz} bytes > limit ${o.maxOutputBytes}`;
        for (const p of pids) {
          try {
            Deno.kill(p, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    }
    if (o.timeoutSeconds && !killed && (performance.now() - t0) / 1000 > o.timeoutSeconds) {
      killed = `timeout ${o.timeoutSeconds} s`;
      for (const p of pids) {
        try {
          Deno.kill(p, "SIGKILL");
        } catch { /* gone */ }
      }
    }
  }, 100);
  const out = await child.output();
  const wallSeconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  let peakRssKiB = polledHwm || NaN;
  let userSeconds = NaN, sysSeconds = NaN;
  if (o.gnuTime) {
    try {
      const last = Deno.readTextFileSync(o.timeFile).trim().split("\n").at(-1) ?? "";
      const m = /^(\d+) (\d+\.\d+) (\d+\.\d+)$/.exec(last);
      if (m) [peakRssKiB, userSeconds, sysSeconds] = [Number(m[1]), Number(m[2]), Number(m[3])];
    } catch { /* killed before time wrote it */ }
  }
  rm(o.timeFile);
  return {
    code: out.code,
    wallSeconds,
    peakRssKiB,
    userSeconds,
    sysSeconds,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    killed,
  };
}

/** Fixed-width text table. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < 2 ? (c ?? "").padEnd(w[i]) : (c ?? "").padStart(w[i]))).join("  ").trimEnd();
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

export function fmtNum(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "-";
}

/** libdeflate's compressor calls (libdeflate.so.0), for the codec studies (zlibSize.ts, deflateBand.ts). */
export function libdeflateCompressor() {
  return Deno.dlopen("libdeflate.so.0", {
    libdeflate_alloc_compressor: { parameters: ["i32"], result: "pointer" },
    libdeflate_zlib_compress: {
      parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
      result: "usize",
    },
  }).symbols;
}
