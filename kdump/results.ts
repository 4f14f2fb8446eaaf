/**
 * Reading one kdump boot's results (the run directory kdump/run.sh fills): the boot's settings, each tool
 * run's rc, wall time, peak RSS and memory samples, and the host tools the checks call.
 */

/** One case of kdump/cases.txt: a command line both tools run. */
export interface Case {
  name: string;
  /** The tool writes the flattened format to stdout (-F). */
  flat: boolean;
  args: string[];
}

/** One tool's run of one case in the crash kernel. */
export interface ToolRun {
  tool: "mdf" | "vmsift";
  caseName: string;
  rc: number | undefined;
  wallSeconds: number | undefined;
  peakRssKiB: number | undefined;
  minMemAvailableKiB: number | undefined;
  /** The dump (kdump-compressed, or flattened for -F), undefined when absent. */
  output: string | undefined;
  outputBytes: number | undefined;
  stderrTail: string;
}

/** Parses kdump/cases.txt (NAME FLAT ARGS...; # comments). */
export function readCases(path: string): Case[] {
  return Deno.readTextFileSync(path).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [name, flat, ...args] = l.split(/\s+/);
      return { name, flat: flat === "1", args };
    });
}

/** Reads boot.env (KEY=value lines) of a run directory. */
export function readBootEnv(dir: string): Record<string, string> {
  const env: Record<string, string> = {};
  const text = readText(`${dir}/boot.env`) ?? "";
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Z_0-9]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return env;
}

/** A text file's contents, undefined when it does not exist. */
export function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** A file's size, undefined when it does not exist. */
export function fileSize(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch {
    return undefined;
  }
}

/** The memory samples (uptime MemFree MemAvailable Cached Dirty ...) taken every 0.5 s in the crash kernel. */
export function readMemSamples(dir: string): number[][] {
  const text = readText(`${dir}/res/memsamples.txt`) ?? "";
  return text.split("\n").map((l) => l.trim().split(/\s+/).map(Number)).filter((r) =>
    r.length >= 3 && r.every((x) => Number.isFinite(x))
  );
}

/** The crash kernel's record of one tool run. */
export function readToolRun(dir: string, tool: "mdf" | "vmsift", c: Case, samples: number[][]): ToolRun {
  const base = `${dir}/res/${tool}-${c.name}`;
  const rcText = readText(`${base}.rc`);
  const up = readText(`${base}.uptime`)?.trim().split(/\s+/).map(Number);
  const time = readText(`${base}.time`) ?? "";
  const rss = time.match(/Maximum resident set size \(kbytes\): *(\d+)/);
  let minAvail: number | undefined;
  if (up && up.length === 2) {
    for (const s of samples) {
      if (s[0] >= up[0] && s[0] <= up[1] + 0.5 && (minAvail === undefined || s[2] < minAvail)) {
        minAvail = s[2];
      }
    }
  }
  const output = `${dir}/${tool}-${c.name}.${c.flat ? "flat" : "dump"}`;
  const outputBytes = fileSize(output);
  const err = readText(`${base}.err`) ?? "";
  return {
    tool,
    caseName: c.name,
    rc: rcText === undefined ? undefined : Number(rcText.trim()),
    wallSeconds: up && up.length === 2 ? up[1] - up[0] : undefined,
    // busybox 1.35's `time -v` converts ru_maxrss (KiB already) as if it counted 4 KiB pages: its "kbytes"
    // are 4x the VmHWM (checked against the sampler's VmRSS for both tools: 3.0 MiB for makedumpfile)
    peakRssKiB: rss ? Number(rss[1]) / 4 : undefined,
    minMemAvailableKiB: minAvail,
    output: outputBytes === undefined ? undefined : output,
    outputBytes,
    stderrTail: err.trim().split("\n").slice(-3).join(" | "),
  };
}

/** Result of a host command. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a host command (stdin from a file when given), capturing its output. */
export function run(
  cmd: string[],
  opts: { stdinFile?: string; stdoutFile?: string; cwd?: string } = {},
): Ran {
  if (opts.stdinFile || opts.stdoutFile) {
    // the shell does the redirections; arguments are quoted
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    let line = cmd.map(q).join(" ");
    if (opts.stdinFile) line += ` < ${q(opts.stdinFile)}`;
    if (opts.stdoutFile) line += ` > ${q(opts.stdoutFile)}`;
    cmd = ["bash", "-c", line];
  }
  try {
    const out = new Deno.Command(cmd[0], { args: cmd.slice(1), cwd: opts.cwd, stdin: "null" }).outputSync();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
}

/** makedumpfile's page report (message level 16), in pages; undefined when absent. */
export function parseMdfReport(text: string): Record<string, number> | undefined {
  const fields: [string, RegExp][] = [
    ["original", /^\s*Original pages\s*:\s*(0x[0-9a-f]+)/im],
    ["excluded", /^\s*Excluded pages\s*:\s*(0x[0-9a-f]+)/im],
    ["zero", /^\s*Pages filled with zero\s*:\s*(0x[0-9a-f]+)/im],
    ["cache", /^\s*Non-private cache pages\s*:\s*(0x[0-9a-f]+)/im],
    ["cache_private", /^\s*Private cache pages\s*:\s*(0x[0-9a-f]+)/im],
    ["user", /^\s*User process data pages\s*:\s*(0x[0-9a-f]+)/im],
    ["free", /^\s*Free pages\s*:\s*(0x[0-9a-f]+)/im],
    ["hwpoison", /^\s*Hwpoison pages\s*:\s*(0x[0-9a-f]+)/im],
    ["offline", /^\s*Offline pages\s*:\s*(0x[0-9a-f]+)/im],
    ["remaining", /^\s*Remaining pages\s*:\s*(0x[0-9a-f]+)/im],
    ["memory_hole", /^\s*Memory Hole\s*:\s*(0x[0-9a-f]+)/im],
    ["total", /^\s*Total pages\s*:\s*(0x[0-9a-f]+)/im],
  ];
  const r: Record<string, number> = {};
  for (const [k, re] of fields) {
    const m = text.match(re);
    if (!m) return undefined;
    r[k] = parseInt(m[1], 16);
  }
  return r;
}

/** The PT_LOADs of an ELF64 little-endian header (the saved first 64 KiB of /proc/vmcore). */
export function elfLoads(
  head: Uint8Array,
): { vaddr: bigint; paddr: number; filesz: number; memsz: number }[] {
  if (head.length < 64) return [];
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0, false) !== 0x7f454c46 || head[4] !== 2) return [];
  const phoff = Number(dv.getBigUint64(32, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const loads = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 56 > head.length) break;
    if (dv.getUint32(o, true) !== 1) continue;
    loads.push({
      vaddr: dv.getBigUint64(o + 16, true),
      paddr: Number(dv.getBigUint64(o + 24, true)),
      filesz: Number(dv.getBigUint64(o + 32, true)),
      memsz: Number(dv.getBigUint64(o + 40, true)),
    });
  }
  return loads;
}
