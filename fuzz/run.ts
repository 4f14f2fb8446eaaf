/**
 * Structured fuzzing of vmsift's parsers.
 *
 *   deno task fuzz [--count N | --seconds S] [--seed X] [--target NAME[,NAME]] [--jobs J]
 *   deno task fuzz --replay [FILE.json ...]        (default: every fuzz/corpus/*.json)
 *
 * The parent process prepares the seeds (fuzz/targets.ts prepareSeeds) and runs the inputs in batches in
 * worker subprocesses (`--worker`) with a limited V8 heap (--max-old-space-size, default 256 MiB). A worker
 * announces each input before running it, so when it stops making progress for --hang-ms the parent kills
 * it, knows the exact input, re-runs that input alone to tell a hang from a slow input, and goes on with
 * the next. A worker that dies (out of memory, abort) is handled the same way. Inside a worker, each input
 * must end in success or a VmsiftError naming a place; any other exception, a VmsiftError without a place,
 * an input slower than --slow-ms or a buffer allocation above --alloc-mb is a finding. Findings are
 * minimised (patches dropped while the same failure remains) and kept in fuzz/corpus/ with a note.
 */
import { fileURLToPath } from "node:url";
import { VmsiftError } from "../core/errors.ts";
import { Rng } from "./mutators.ts";
import {
  BadErrorReport,
  FuzzContext,
  type FuzzInput,
  generateInput,
  pickTarget,
  prepareSeeds,
  runInput,
  SkipInput,
  TARGET_NAMES,
  type TargetName,
} from "./targets.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const SELF = `${HERE}run.ts`;
export const CORPUS_DIR = `${HERE}corpus`;
const DEFAULT_DIR = Deno.env.get("VMSIFT_FUZZ_DIR") ?? `${Deno.env.get("TMPDIR") ?? "/tmp"}/vmsift-fuzz`;

/** A finding. */
export interface Failure {
  index: number;
  target: string;
  kind: "crash" | "bad-error" | "slow" | "hang" | "alloc" | "abort";
  /** Stable signature for de-duplication: kind, error name and the first project frame. */
  sig: string;
  message: string;
  where?: string;
  ms?: number;
  input?: FuzzInput;
}

interface Args {
  count?: number;
  seconds?: number;
  seed: string;
  targets: TargetName[];
  jobs: number;
  batch: number;
  hangMs: number;
  slowMs: number;
  allocMb: number;
  heapMb: number;
  dir: string;
  save: boolean;
  corpus: string;
  replay?: string[];
  worker: boolean;
  from: number;
  to: number;
  until: number;
  job: number;
  /** First input index (to re-run a reported one: --start I --count I+1). */
  start: number;
  json: boolean;
  quiet: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    seed: `s${Date.now().toString(36)}`,
    targets: [],
    jobs: 1,
    batch: 4000,
    hangMs: 20000,
    slowMs: 5000,
    allocMb: 1100,
    heapMb: 256,
    dir: DEFAULT_DIR,
    save: true,
    corpus: CORPUS_DIR,
    worker: false,
    from: 0,
    to: 0,
    until: 0,
    job: 0,
    start: 0,
    json: false,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const n = () => {
      const x = Number(v());
      if (!Number.isFinite(x) || x < 0) throw new Error(`${k}: not a number`);
      return x;
    };
    switch (k) {
      case "--count":
        a.count = Math.floor(n());
        break;
      case "--seconds":
        a.seconds = n();
        break;
      case "--seed":
        a.seed = v();
        break;
      case "--target":
        for (const t of v().split(",")) {
          if (!(TARGET_NAMES as readonly string[]).includes(t)) {
            throw new Error(`unknown target ${t} (${TARGET_NAMES.join(", ")})`);
          }
          a.targets.push(t as TargetName);
        }
        break;
      case "--jobs":
        a.jobs = Math.max(1, Math.floor(n()));
        break;
      case "--batch":
        a.batch = Math.max(1, Math.floor(n()));
        break;
      case "--hang-ms":
        a.hangMs = n();
        break;
      case "--slow-ms":
        a.slowMs = n();
        break;
      case "--alloc-mb":
        a.allocMb = n();
        break;
      case "--heap-mb":
        a.heapMb = n();
        break;
      case "--dir":
        a.dir = v();
        break;
      case "--no-save":
        a.save = false;
        break;
      case "--corpus":
        a.corpus = v();
        break;
      case "--json":
        a.json = true;
        break;
      case "--quiet":
        a.quiet = true;
        break;
      case "--replay":
        a.replay = [];
        while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) a.replay.push(argv[++i]);
        break;
      // worker-only
      case "--worker":
        a.worker = true;
        break;
      case "--from":
        a.from = n();
        break;
      case "--to":
        a.to = n();
        break;
      case "--until":
        a.until = n();
        break;
      case "--job":
        a.job = n();
        break;
      case "--start":
        a.start = Math.floor(n());
        break;
      case "-h":
      case "--help":
        console.log(
          "usage: deno task fuzz [--count N | --seconds S] [--seed X] [--target NAME[,NAME]] [--jobs J]\n" +
            "       [--batch N] [--hang-ms MS] [--slow-ms MS] [--alloc-mb MB] [--heap-mb MB] [--dir DIR]\n" +
            "       [--start I] [--no-save] [--corpus DIR] [--json] [--quiet]\n" +
            "       deno task fuzz --replay [FILE.json ...]\n" +
            `targets: ${TARGET_NAMES.join(", ")}`,
        );
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  if (a.count === undefined && a.seconds === undefined && a.replay === undefined) a.count = 1000;
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// Worker

const enc = new TextEncoder();
function emit(line: string): void {
  const b = enc.encode(line + "\n");
  let done = 0;
  while (done < b.length) done += Deno.stdout.writeSync(b.subarray(done));
}

/** First stack frame inside the project but outside fuzz/ (file:line), for signatures. */
function projectFrame(stack: string | undefined): string | undefined {
  const root = fileURLToPath(new URL("..", import.meta.url));
  for (const line of (stack ?? "").split("\n").slice(1)) {
    const m = /(?:file:\/\/)?(\/[^\s()]+):(\d+):\d+/.exec(line);
    if (!m) continue;
    const f = m[1];
    if (!f.startsWith(root) || f.startsWith(`${root}fuzz/`)) continue;
    return `${f.slice(root.length)}:${m[2]}`;
  }
  return undefined;
}

/** Classify what running `input` did: undefined = fine. */
export function tryInput(
  ctx: FuzzContext,
  input: FuzzInput,
  limits: { slowMs: number; allocBytes: number },
): Omit<Failure, "index"> | undefined {
  const t0 = performance.now();
  let fail: Omit<Failure, "index"> | undefined;
  try {
    runInput(ctx, input);
  } catch (e) {
    if (e instanceof SkipInput) return undefined;
    const err = e as Error;
    const bad = e instanceof BadErrorReport;
    const where = projectFrame(err?.stack);
    const name = bad ? "BadErrorReport" : err?.name ?? typeof e;
    fail = {
      target: input.target,
      kind: bad ? "bad-error" : "crash",
      sig: `${bad ? "bad-error" : "crash"}:${name}@${where ?? "?"}`,
      message: String(err?.message ?? e).slice(0, 500),
      where,
    };
  }
  const ms = performance.now() - t0;
  if (fail === undefined && ms > limits.slowMs) {
    fail = {
      target: input.target,
      kind: "slow",
      sig: `slow:${input.target}`,
      message: `took ${ms.toFixed(0)} ms`,
      ms,
    };
  }
  if (fail === undefined && limits.allocBytes > 0) {
    const ext = Deno.memoryUsage().external;
    if (ext > limits.allocBytes) {
      fail = {
        target: input.target,
        kind: "alloc",
        sig: `alloc:${input.target}`,
        message: `external (ArrayBuffer) memory ${Math.round(ext / 2 ** 20)} MiB after the input`,
      };
    }
  }
  if (fail?.kind === "alloc" || fail?.kind === "crash") (globalThis as { gc?: () => void }).gc?.();
  if (fail !== undefined) fail.ms = ms;
  return fail;
}

/** Drop patches one by one while the failure keeps its signature (cheap greedy minimisation). */
function minimize(
  ctx: FuzzContext,
  input: FuzzInput,
  sig: string,
  limits: { slowMs: number; allocBytes: number },
): FuzzInput {
  let cur: FuzzInput = structuredClone(input);
  let budget = 60;
  for (const key of ["phys", "file"] as const) {
    let i = 0;
    while (budget > 0 && i < (cur[key]?.length ?? 0)) {
      const cand: FuzzInput = structuredClone(cur);
      cand[key]!.splice(i, 1);
      budget--;
      const f = tryInput(ctx, cand, limits);
      if (f?.sig === sig) cur = cand;
      else i++;
    }
  }
  if (budget > 0 && cur.text !== undefined && cur.target !== "vmcoreinfo") {
    const cand = structuredClone(cur);
    delete cand.text;
    if (tryInput(ctx, cand, limits)?.sig === sig) cur = cand;
  }
  if (budget > 0 && cur.truncate !== undefined) {
    const cand = structuredClone(cur);
    delete cand.truncate;
    if (tryInput(ctx, cand, limits)?.sig === sig) cur = cand;
  }
  return cur;
}

async function worker(a: Args): Promise<void> {
  const seeds = await prepareSeeds(a.dir);
  const ctx = new FuzzContext(seeds, a.job);
  const limits = { slowMs: a.slowMs, allocBytes: a.allocMb * 2 ** 20 };
  const perTarget: Record<string, { n: number; ms: number }> = {};
  let done = 0, skipped = 0;
  const inputs: FuzzInput[] | undefined = a.replay?.map((f) => JSON.parse(Deno.readTextFileSync(f)).input);
  const end = inputs ? inputs.length : a.to;
  for (let i = inputs ? 0 : a.from; i < end; i++) {
    if (a.until > 0 && Date.now() > a.until) break;
    let input: FuzzInput;
    if (inputs) input = inputs[i];
    else {
      const rng = new Rng(`${a.seed}:${i}`);
      const target = pickTarget(rng, a.targets);
      try {
        input = generateInput(ctx, target, rng);
      } catch (e) {
        if (e instanceof SkipInput) {
          skipped++;
          continue;
        }
        throw e;
      }
    }
    emit(`R ${i}`);
    const t0 = performance.now();
    let fail = tryInput(ctx, input, limits);
    const ms = performance.now() - t0;
    const pt = perTarget[input.target] ??= { n: 0, ms: 0 };
    pt.n++;
    pt.ms += ms;
    done++;
    if (fail !== undefined) {
      const small = fail.kind === "slow" || inputs ? input : minimize(ctx, input, fail.sig, limits);
      if (small !== input) fail = tryInput(ctx, small, limits) ?? fail;
      emit(`F ${JSON.stringify({ ...fail, index: i, input: small })}`);
    }
  }
  emit(`E ${JSON.stringify({ done, skipped, perTarget, harnessSkips: Object.fromEntries(ctx.skipped) })}`);
  ctx.close();
}

// ---------------------------------------------------------------------------------------------------------
// Parent

interface BatchResult {
  done: number;
  skipped: number;
  perTarget: Record<string, { n: number; ms: number }>;
  harnessSkips: Record<string, number>;
  failures: Failure[];
  /** Index after the last input handled (for resuming after a kill). */
  next: number;
  /** The worker was killed or died at input `lost`. */
  lost?: { index: number; kind: "hang" | "abort"; message: string };
}

function workerCommand(a: Args, extra: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=--max-old-space-size=${a.heapMb},--expose-gc`,
      SELF,
      "--worker",
      "--seed",
      a.seed,
      "--dir",
      a.dir,
      "--slow-ms",
      String(a.slowMs),
      "--alloc-mb",
      String(a.allocMb),
      ...(a.targets.length ? ["--target", a.targets.join(",")] : []),
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
  });
}

/** Run one worker over [from, to) (or the replay files) with the hang watchdog. */
async function runBatch(
  a: Args,
  from: number,
  to: number,
  job: number,
  replay?: string[],
): Promise<BatchResult> {
  const extra = replay ? ["--job", String(job), "--replay", ...replay] : [
    "--from",
    String(from),
    "--to",
    String(to),
    "--job",
    String(job),
    ...(a.until ? ["--until", String(a.until)] : []),
  ];
  const child = workerCommand(a, extra).spawn();
  const res: BatchResult = { done: 0, skipped: 0, perTarget: {}, harnessSkips: {}, failures: [], next: from };
  let current = -1;
  let since = Date.now();
  let ended = false;
  let killed = false;
  const timer = setInterval(() => {
    if (!ended && current >= 0 && Date.now() - since > a.hangMs) {
      killed = true;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
  }, 250);
  const stderrP = new Response(child.stderr).text();
  const dec = new TextDecoderStream();
  let buf = "";
  for await (const chunk of child.stdout.pipeThrough(dec)) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith("R ")) {
        current = Number(line.slice(2));
        since = Date.now();
      } else if (line.startsWith("F ")) {
        res.failures.push(JSON.parse(line.slice(2)));
      } else if (line.startsWith("E ")) {
        const e = JSON.parse(line.slice(2));
        res.done = e.done;
        res.skipped = e.skipped;
        res.perTarget = e.perTarget;
        res.harnessSkips = e.harnessSkips;
        ended = true;
      }
    }
  }
  const status = await child.status;
  clearInterval(timer);
  const stderr = await stderrP;
  if (ended && status.success) {
    res.next = to;
    return res;
  }
  // Killed or died at `current`: count what ran before it from the R lines.
  res.done = current < 0 ? 0 : (replay ? current : current - from);
  res.next = current < 0 ? to : current + 1;
  const tail = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 400);
  res.lost = {
    index: current,
    kind: killed ? "hang" : "abort",
    message: killed
      ? `no progress for ${a.hangMs} ms`
      : `worker died (${status.code}${status.signal ? " " + status.signal : ""}): ${tail}`,
  };
  return res;
}

async function hashOf(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", enc.encode(s));
  return [...new Uint8Array(d).slice(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function existingSigs(dir: string): Set<string> {
  const out = new Set<string>();
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (!e.name.endsWith(".json")) continue;
      try {
        out.add(JSON.parse(Deno.readTextFileSync(`${dir}/${e.name}`)).note.sig);
      } catch { /* not ours */ }
    }
  } catch { /* no corpus yet */ }
  return out;
}

async function main(): Promise<number> {
  const a = parseArgs(Deno.args);
  if (a.worker) {
    await worker(a);
    return 0;
  }
  const log = (s: string) => {
    if (!a.quiet) console.error(s);
  };
  const notes: string[] = [];
  const tPrep = performance.now();
  const seeds = await prepareSeeds(a.dir, notes);
  for (const n of notes) log(`note: ${n}`);
  log(
    `seeds ready in ${((performance.now() - tPrep) / 1000).toFixed(1)} s: elf ${
      Object.keys(seeds.elf).join(",")
    }; ` +
      `kdump ${Object.keys(seeds.kdump).join(",")}; flat ${Object.keys(seeds.flat).join(",")}`,
  );

  const t0 = performance.now();
  const failures: Failure[] = [];
  const perTarget: Record<string, { n: number; ms: number }> = {};
  const harnessSkips: Record<string, number> = {};
  let done = 0, skipped = 0;
  let lastLog = Date.now();
  const merge = (r: BatchResult) => {
    done += r.done;
    skipped += r.skipped;
    for (const [k, v] of Object.entries(r.perTarget)) {
      const p = perTarget[k] ??= { n: 0, ms: 0 };
      p.n += v.n;
      p.ms += v.ms;
    }
    for (const [k, v] of Object.entries(r.harnessSkips)) harnessSkips[k] = (harnessSkips[k] ?? 0) + v;
    failures.push(...r.failures);
    if (!a.quiet && Date.now() - lastLog > 10000) {
      lastLog = Date.now();
      const s = (performance.now() - t0) / 1000;
      log(`${done} inputs in ${s.toFixed(0)} s (${(done / s).toFixed(0)}/s), ${failures.length} findings`);
    }
  };

  /** Replay one lost input alone: still stuck → hang/abort; else slow. */
  let genCtx: FuzzContext | undefined;
  const confirmLost = async (
    lost: NonNullable<BatchResult["lost"]>,
    replayFile?: string,
  ): Promise<Failure> => {
    let input: FuzzInput | undefined;
    if (replayFile) input = JSON.parse(Deno.readTextFileSync(replayFile)).input;
    else {
      genCtx ??= new FuzzContext(seeds, 99);
      const rng = new Rng(`${a.seed}:${lost.index}`);
      input = generateInput(genCtx, pickTarget(rng, a.targets), rng);
    }
    const tmp = await Deno.makeTempFile({ suffix: ".json" });
    Deno.writeTextFileSync(tmp, JSON.stringify({ note: {}, input }));
    const again = await runBatch({ ...a, until: 0 }, 0, 1, 98, [tmp]);
    Deno.removeSync(tmp);
    const kind = again.lost ? again.lost.kind : "slow";
    return {
      index: lost.index,
      target: input!.target,
      kind,
      sig: `${kind}:${input!.target}`,
      message: again.lost ? again.lost.message : `${lost.message}, but finished when run alone`,
      input,
    };
  };

  if (a.replay !== undefined) {
    let files = a.replay;
    if (files.length === 0) {
      files = [];
      try {
        for (const e of Deno.readDirSync(a.corpus)) {
          if (e.name.endsWith(".json")) files.push(`${a.corpus}/${e.name}`);
        }
      } catch { /* empty */ }
      files.sort();
    }
    let pos = 0;
    while (pos < files.length) {
      const r = await runBatch(a, 0, files.length - pos, 0, files.slice(pos));
      merge(r);
      if (r.lost) {
        const lostFile = files[pos + r.lost.index];
        failures.push({
          ...(await confirmLost(r.lost, lostFile)),
          message: `${lostFile}: ${r.lost.message}`,
        });
        pos += r.lost.index + 1;
      } else pos = files.length;
    }
    for (const f of failures) {
      console.log(`FAIL ${f.kind} ${f.target}: ${f.message}${f.where ? ` (${f.where})` : ""}`);
    }
    console.log(`replayed ${files.length} corpus inputs: ${failures.length} failures`);
    return failures.length ? 1 : 0;
  }

  const total = a.count ?? Number.MAX_SAFE_INTEGER;
  const deadline = a.seconds !== undefined ? Date.now() + a.seconds * 1000 : 0;
  a.until = deadline;
  let nextIndex = a.start;
  const slot = async (job: number) => {
    while (nextIndex < total && (deadline === 0 || Date.now() < deadline)) {
      const from = nextIndex;
      const to = Math.min(total, from + a.batch);
      nextIndex = to;
      let start = from;
      while (start < to && (deadline === 0 || Date.now() < deadline)) {
        const r = await runBatch(a, start, to, job);
        merge(r);
        if (!r.lost) break;
        failures.push(await confirmLost(r.lost));
        start = r.next;
      }
    }
  };
  await Promise.all(Array.from({ length: a.jobs }, (_, j) => slot(j)));
  genCtx?.close();
  const seconds = (performance.now() - t0) / 1000;

  // Keep new findings (one per signature).
  const saved: string[] = [];
  if (a.save && failures.length > 0) {
    Deno.mkdirSync(a.corpus, { recursive: true });
    const have = existingSigs(a.corpus);
    for (const f of failures) {
      if (have.has(f.sig) || f.input === undefined) continue;
      have.add(f.sig);
      const name = `${f.target}-${f.kind}-${await hashOf(f.sig)}.json`;
      const note = {
        sig: f.sig,
        kind: f.kind,
        message: f.message,
        where: f.where,
        seed: a.seed,
        index: f.index,
      };
      Deno.writeTextFileSync(`${a.corpus}/${name}`, JSON.stringify({ note, input: f.input }, null, 1) + "\n");
      saved.push(name);
    }
  }
  const summary = {
    seed: a.seed,
    inputs: done,
    seconds: Number(seconds.toFixed(1)),
    perSecond: Math.round(done / seconds),
    skippedGeneration: skipped,
    harnessSkips,
    perTarget: Object.fromEntries(
      Object.entries(perTarget).map((
        [k, v],
      ) => [k, { inputs: v.n, perSecond: Math.round(v.n / (v.ms / 1000 || 1)) }]),
    ),
    failures: failures.map((f) => ({
      kind: f.kind,
      target: f.target,
      sig: f.sig,
      message: f.message,
      index: f.index,
    })),
    saved,
  };
  if (a.json) console.log(JSON.stringify(summary));
  else {
    console.log(
      `fuzz: ${done} inputs in ${seconds.toFixed(1)} s = ${summary.perSecond} inputs/s (seed ${a.seed})`,
    );
    for (const [k, v] of Object.entries(summary.perTarget)) {
      console.log(`  ${k.padEnd(11)} ${String(v.inputs).padStart(8)} inputs  ${v.perSecond} /s`);
    }
    for (const [k, v] of Object.entries(harnessSkips)) console.log(`  skipped by the harness: ${v} × ${k}`);
    for (const f of failures) {
      console.log(`FAIL #${f.index} ${f.kind} ${f.target}: ${f.message}${f.where ? ` (${f.where})` : ""}`);
    }
    if (saved.length) console.log(`kept in ${a.corpus}: ${saved.join(", ")}`);
    console.log(failures.length === 0 ? "no findings" : `${failures.length} findings`);
  }
  return failures.length ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (e instanceof VmsiftError) console.error(`fuzz: ${e.oneLine()}`);
    else console.error(`fuzz: ${(e as Error).stack ?? e}`);
    Deno.exit(2);
  }
}
