/**
 * --num-threads: `deno run -A bench/threads.ts [vmcore] [--level 31] [--rounds 3] [--codecs c,l,p,z]
 * [--mdf-codecs c] [--threads 2]`.
 *
 * Runs the vmsift CLI (a subprocess, as users run it) with 1 thread and with N threads per codec, and
 * makedumpfile with and without `--num-threads N` (zlib by default: makedumpfile -c), all in the same run,
 * rounds interleaved, and reports the best round of each (the machine is shared: the best round is the least
 * disturbed one) plus the median. Prints wall time, dumpable pages per second, CPU time (user + sys, from
 * /usr/bin/time when present), peak RSS, and the ratios. Also checks that the N-thread output is
 * byte-identical to the 1-thread output.
 *
 * Default vmcore: /var/tmp/vmcore/vmcore-1G.elf (a 1 GiB real dump) if present, else the fixture cache.
 */
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

function arg(name: string, def: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : def;
}
const positional = Deno.args.filter((a, i) => !a.startsWith("--") && !Deno.args[i - 1]?.startsWith("--"));

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}
function onPath(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    if (exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

const vmcore = positional[0] ??
  (exists("/var/tmp/vmcore/vmcore-1G.elf")
    ? "/var/tmp/vmcore/vmcore-1G.elf"
    : `${Deno.env.get("VMSIFT_FIXTURE_CACHE") ?? "/var/tmp/vmsift-fixtures"}/vmcore.elf`);
const level = arg("level", "31");
const rounds = Number(arg("rounds", "3"));
const threads = Number(arg("threads", "2"));
const codecs = arg("codecs", "c,l,p,z").split(",").filter((c) => c !== "");
const mdfCodecs = arg("mdf-codecs", "c").split(",").filter((c) => c !== "");
const CODEC_NAME: Record<string, string> = { c: "zlib", l: "lzo", p: "snappy", z: "zstd" };
const makedumpfile = onPath("makedumpfile");
const gnuTime = exists("/usr/bin/time") ? "/usr/bin/time" : null;
const dir = Deno.makeTempDirSync({
  dir: Deno.env.get("VMSIFT_TEST_TMP") ?? "/var/tmp",
  prefix: "vmsift-bench-",
});

interface Sample {
  wall: number;
  cpu: number;
  rssMiB: number;
}

/** Run `cmd` under /usr/bin/time (when present); wall from here, cpu and rss from time. */
async function timed(cmd: string[]): Promise<Sample> {
  const timeFile = `${dir}/time.txt`;
  const argv = gnuTime ? [gnuTime, "-f", "%U %S %M", "-o", timeFile, ...cmd] : cmd;
  const t0 = performance.now();
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "null", stderr: "piped" })
    .output();
  const wall = (performance.now() - t0) / 1000;
  if (out.code !== 0) {
    throw new Error(`${cmd.join(" ")}: exit ${out.code}\n${new TextDecoder().decode(out.stderr)}`);
  }
  let cpu = NaN, rssMiB = NaN;
  if (gnuTime) {
    const [u, s, m] = Deno.readTextFileSync(timeFile).trim().split("\n").at(-1)!.split(" ").map(Number);
    cpu = u + s;
    rssMiB = m / 1024;
  }
  return { wall, cpu, rssMiB };
}

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function dumpablePages(kdump: string): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "info", "--json", kdump],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).bitmap2Pages;
}

interface Config {
  label: string;
  codec: string;
  tool: "vmsift" | "makedumpfile";
  threads: number;
  cmd: (out: string) => string[];
  samples: Sample[];
  out: string;
}

const configs: Config[] = [];
for (const c of codecs) {
  for (const t of [1, threads]) {
    const out = `${dir}/vmsift-${c}-${t}.kdump`;
    const extra = t > 1 ? ["--num-threads", String(t)] : [];
    configs.push({
      label: `vmsift -${c} (${CODEC_NAME[c] ?? c}) ${t > 1 ? `--num-threads ${t}` : "(1 thread)"}`,
      codec: c,
      tool: "vmsift",
      threads: t,
      out,
      samples: [],
      cmd: (
        o,
      ) => [
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "-f",
        "--message-level",
        "0",
        `-${c}`,
        "-d",
        level,
        ...extra,
        vmcore,
        o,
      ],
    });
  }
}
if (makedumpfile) {
  for (const c of mdfCodecs) {
    for (const t of [1, threads]) {
      const extra = t > 1 ? ["--num-threads", String(t)] : [];
      configs.push({
        label: `makedumpfile -${c} (${CODEC_NAME[c] ?? c}) ${
          t > 1 ? `--num-threads ${t}` : "(no --num-threads)"
        }`,
        codec: c,
        tool: "makedumpfile",
        threads: t,
        out: `${dir}/mdf-${c}-${t}.kdump`,
        samples: [],
        cmd: (o) => [makedumpfile, "-f", "--message-level", "0", `-${c}`, "-d", level, ...extra, vmcore, o],
      });
    }
  }
}

const cores = navigator.hardwareConcurrency;
console.log(
  `vmcore ${vmcore} (${(Deno.statSync(vmcore).size / 2 ** 20).toFixed(0)} MiB), -d ${level}, ` +
    `${rounds} rounds, ${cores} CPUs, load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`,
);
try {
  // warm the page cache and Deno's module cache
  await timed(configs[0].cmd(configs[0].out));
  for (let r = 0; r < rounds; r++) {
    for (const c of configs) {
      c.samples.push(await timed(c.cmd(c.out)));
      Deno.stdout.writeSync(new TextEncoder().encode("."));
    }
  }
  console.log();
  const best = (c: Config) => c.samples.reduce((a, b) => (b.wall < a.wall ? b : a));
  const median = (c: Config) =>
    [...c.samples].map((s) => s.wall).sort((a, b) => a - b)[c.samples.length >> 1];
  const pages = new Map<string, number>();
  for (const c of configs) {
    if (c.tool === "vmsift" && c.threads === 1) pages.set(c.codec, await dumpablePages(c.out));
  }
  if (!pages.size && configs.length) pages.set("", await dumpablePages(configs[0].out));
  const anyPages = [...pages.values()][0] ?? NaN;

  console.log(
    "\n| run | best wall s | median wall s | pages/s (best) | CPU s | peak RSS MiB | vs 1 thread | output |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const c of configs) {
    const b = best(c);
    const n = pages.get(c.codec) ?? anyPages;
    const one = configs.find((x) => x.tool === c.tool && x.codec === c.codec && x.threads === 1)!;
    const ratio = c.threads === 1 ? "" : `${(best(one).wall / b.wall).toFixed(2)}x`;
    let same = "";
    if (c.threads > 1 && c.tool === "vmsift") {
      same = (await sha256(c.out)) === (await sha256(one.out)) ? "identical" : "DIFFERENT";
    }
    console.log(
      `| ${c.label} | ${b.wall.toFixed(2)} | ${median(c).toFixed(2)} | ${Math.round(n / b.wall)} | ` +
        `${b.cpu.toFixed(2)} | ${b.rssMiB.toFixed(0)} | ${ratio} | ${same} |`,
    );
  }
  // vmsift vs makedumpfile for the codecs both ran
  const rows: string[] = [];
  for (const c of mdfCodecs) {
    for (const t of [1, threads]) {
      const v = configs.find((x) => x.tool === "vmsift" && x.codec === c && x.threads === t);
      const m = configs.find((x) => x.tool === "makedumpfile" && x.codec === c && x.threads === t);
      if (v && m) {
        rows.push(
          `| -${c} ${t > 1 ? `--num-threads ${t}` : "1 thread"} | ${best(v).wall.toFixed(2)} | ` +
            `${best(m).wall.toFixed(2)} | ${(best(m).wall / best(v).wall).toFixed(2)}x |`,
        );
      }
    }
  }
  if (rows.length) {
    console.log("\n| same options | vmsift s | makedumpfile s | vmsift faster by |");
    console.log("| --- | ---: | ---: | ---: |");
    for (const r of rows) console.log(r);
  } else if (!makedumpfile) {
    console.log("\n(makedumpfile not on PATH: no comparison)");
  }
  console.log(`\nload average after: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  Deno.removeSync(dir, { recursive: true });
}
