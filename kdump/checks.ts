/**
 * The host-side checks of one kdump boot: every tool run completed, -F outputs turn back into kdump files with
 * -R, page counts and bitmaps equal makedumpfile's (with vmsift's kernel-image guard off; with it on, the
 * difference is exactly the guard's pages), `-c` outputs at most 1 % larger than makedumpfile's, `vmsift
 * verify` against the saved /proc/vmcore, and crash's `sys`, `kmem -i` and `log` agree between both tools'
 * dumps.
 */
import {
  type Case,
  elfLoads,
  fileSize,
  parseMdfReport,
  readMemSamples,
  readText,
  readToolRun,
  run,
  type ToolRun,
} from "./results.ts";

/** One check's outcome; `skip` is reported but counted in neither passed nor failed. */
export interface Check {
  name: string;
  result: "PASS" | "FAIL" | "SKIP";
  detail: string;
}

/** What the checks of one boot need. */
export interface BootContext {
  dir: string;
  repo: string;
  cases: Case[];
  kver: string;
  kexecMode: string;
  /** The checks that need the saved /proc/vmcore run (SAVE_VMCORE=1). */
  saved: boolean;
  /** Only rc and the table (the crashkernel= bisection). */
  quick: boolean;
  /** Run crash on the dumps (minutes per dump on a loaded host: it loads the 630 MB debug vmlinux). */
  crash: boolean;
}

/** The results of one boot's checks. */
export interface BootResult {
  checks: Check[];
  runs: ToolRun[];
  /** Page counts (dumpable pages in bitmap 2) per output file. */
  pages: Map<string, number>;
}

const KIB = 1024;
/** Loads at or above this vaddr map the kernel image (x86_64's kernel text mapping). */
const KERNEL_TEXT = 0xffffffff80000000n;

function vmsift(ctx: BootContext, args: string[], opts: { stdinFile?: string; stdoutFile?: string } = {}) {
  return run(["deno", "run", "-A", `${ctx.repo}/dist/vmsift.js`, ...args], opts);
}

interface DumpInfo {
  bitmap1Pages: number;
  bitmap2Pages: number;
  zeroPages: number;
  incomplete: boolean;
  layout: { offsetBitmap1: number; offsetBitmap2: number; bitmapBytes: number };
}

function info(ctx: BootContext, file: string): DumpInfo | string {
  const r = vmsift(ctx, ["info", "--json", file]);
  if (r.code !== 0) return (r.stderr || r.stdout).trim().split("\n").pop() ?? "vmsift info failed";
  return JSON.parse(r.stdout) as DumpInfo;
}

function readRange(file: string, offset: number, length: number): Uint8Array {
  const f = Deno.openSync(file);
  try {
    const buf = new Uint8Array(length);
    f.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < length) {
      const n = f.readSync(buf.subarray(done));
      if (n === null) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    f.close();
  }
}

/** Bitmap comparison (bitmap 1 or 2): the pfns set only in a, only in b. */
function bitmapDiff(
  a: string,
  ai: DumpInfo,
  b: string,
  bi: DumpInfo,
  which: 1 | 2 = 2,
): { onlyA: number[]; onlyB: number[] } {
  const key = which === 1 ? "offsetBitmap1" : "offsetBitmap2";
  const x = readRange(a, ai.layout[key], ai.layout.bitmapBytes);
  const y = readRange(b, bi.layout[key], bi.layout.bitmapBytes);
  const onlyA: number[] = [], onlyB: number[] = [];
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const p = x[i] ?? 0, q = y[i] ?? 0;
    if (p === q) continue;
    for (let bit = 0; bit < 8; bit++) {
      const u = (p >> bit) & 1, v = (q >> bit) & 1;
      if (u && !v) onlyA.push(i * 8 + bit);
      if (v && !u) onlyB.push(i * 8 + bit);
    }
  }
  return { onlyA, onlyB };
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** Normalizes crash's output for comparison between two dump files of the same crash. */
function crashView(text: string): string {
  return text.split("\n").filter((l) =>
    !/DUMPFILE:|^\s*$|please wait|crash \d|Copyright|GNU gdb|This program|WARNING: .*dump|Enter "help/.test(l)
  )
    .join("\n");
}

/** Runs every check of one boot's results. */
export async function checkBoot(ctx: BootContext): Promise<BootResult> {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean | "skip", detail = "") =>
    checks.push({ name, result: ok === "skip" ? "SKIP" : ok ? "PASS" : "FAIL", detail: oneLine(detail) });
  const serial = (readText(`${ctx.dir}/serial.log`) ?? "").replaceAll("\r", "");
  const loaded = serial.match(new RegExp(`KEXEC-RC mode=-${ctx.kexecMode} rc=(\\d+) loaded=(\\d)`));
  const reserveFailed = serial.match(/crashkernel reservation failed[^\n]*/)?.[0];
  add(
    `kexec -${ctx.kexecMode} -p loads the crash kernel`,
    loaded?.[2] === "1",
    reserveFailed
      ? `the first kernel reserved no crash memory ("${reserveFailed.trim()}"): MEM too small for crashkernel=`
      : loaded?.[0] ?? "no KEXEC-RC line",
  );
  add("crash kernel ran every case and powered off", serial.includes("KDUMP-DONE"), lastLines(serial));
  const head = fileSize(`${ctx.dir}/res/vmcore-head.bin`);
  add("res/vmcore-head.bin: first 64 KiB of /proc/vmcore", head === 64 * KIB, `${head ?? "no"} bytes`);

  const probe = readText(`${ctx.dir}/launcher-probe.txt`);
  if (probe !== undefined) {
    add(
      "launcher runs vmsift with no HOME, no DENO_DIR and no /etc/passwd (env -i, chroot to the crash root)",
      /rc=0\s*$/.test(probe) && probe.includes("Usage"),
      probe.includes("Usage") ? "" : probe,
    );
  }
  // crash-run.sh asks Deno (--log-level=debug) whether it used the shipped code cache (packaging/codeCache.ts)
  const codeCache = readText(`${ctx.dir}/res/codecache.txt`);
  if (codeCache !== undefined) {
    add(
      "Deno uses the shipped code cache /usr/lib/vmsift/deno-dir in the crash kernel",
      /V8 code cache hit for ES module: file:\/\/\/usr\/lib\/vmsift\/vmsift\.js/.test(codeCache),
      codeCache.trim().split("\n")[0] ?? "no debug line",
    );
  }
  const samples = readMemSamples(ctx.dir);
  const runs: ToolRun[] = [];
  for (const c of ctx.cases) {
    for (const tool of ["mdf", "vmsift"] as const) {
      const r = readToolRun(ctx.dir, tool, c, samples);
      runs.push(r);
      add(
        `${tool} ${c.args.join(" ")}: rc 0, output written`,
        r.rc === 0 && (r.outputBytes ?? 0) > 0,
        `rc=${r.rc ?? "none"} ${r.outputBytes ?? "no"} bytes ${r.rc === 0 ? "" : r.stderrTail}`,
      );
    }
  }
  const pages = new Map<string, number>();
  if (ctx.quick) return { checks, runs, pages };

  // -F outputs: turn back into kdump files on the host (as kdump-tools' users do with makedumpfile -R)
  const dumpOf = new Map<string, string>();
  for (const r of runs) {
    if (!r.output) continue;
    if (!r.output.endsWith(".flat")) {
      dumpOf.set(`${r.tool}-${r.caseName}`, r.output);
      continue;
    }
    const out = r.output.replace(/\.flat$/, ".dump");
    if (fileSize(out) !== undefined) Deno.removeSync(out); // --check-only runs again
    const rr = r.tool === "mdf"
      ? run(["makedumpfile", "-R", out], { stdinFile: r.output })
      : vmsift(ctx, ["-R", out], { stdinFile: r.output });
    add(`${r.tool} -R ${r.caseName}.flat (host)`, rr.code === 0, rr.code === 0 ? "" : rr.stderr.trim());
    if (rr.code === 0) dumpOf.set(`${r.tool}-${r.caseName}`, out);
    if (r.tool === "vmsift") {
      // the same flattened stream through the other tool's -R must give the same bytes
      const mdfFlat = r.output.replace("vmsift-", "mdf-");
      const a = `${ctx.dir}/x-mdf-R.dump`, b = `${ctx.dir}/x-vmsift-R.dump`;
      const ra = run(["makedumpfile", "-R", a], { stdinFile: mdfFlat });
      const rb = vmsift(ctx, ["-R", b], { stdinFile: mdfFlat });
      const same = ra.code === 0 && rb.code === 0 && run(["cmp", "-s", a, b]).code === 0;
      add("vmsift -R and makedumpfile -R give the same bytes for makedumpfile's -F stream", same);
      Deno.removeSync(a, { recursive: true });
      if (fileSize(b) !== undefined) Deno.removeSync(b);
    }
  }

  // page counts: bitmaps of both tools' dumps of each case
  const infos = new Map<string, DumpInfo>();
  for (const [k, f] of dumpOf) {
    const i = info(ctx, f);
    if (typeof i === "string") add(`vmsift info ${k}`, false, i);
    else {
      infos.set(k, i);
      pages.set(k, i.bitmap2Pages);
    }
  }
  // the guard's pages: vmsift's own count on the saved vmcore
  let guardKept: number | undefined;
  let guardOff: { file: string; info: DumpInfo; stats: Record<string, number> } | undefined;
  const vmcore = `${ctx.dir}/vmcore`;
  if (ctx.saved && fileSize(vmcore)) {
    const on = `${ctx.dir}/host-guard-on.json`, off = `${ctx.dir}/host-guard-off.json`;
    const offDump = `${ctx.dir}/host-guard-off.dump`;
    const a = vmsift(ctx, [
      "-f",
      "-l",
      "-d",
      "31",
      "--dry-run",
      "--stats-json",
      on,
      vmcore,
      `${ctx.dir}/x.dump`,
    ]);
    if (a.code === 0) guardKept = JSON.parse(Deno.readTextFileSync(on)).kept_kernel_image;
    const b = vmsift(ctx, ["-f", "-l", "-d", "31", "--no-image-guard", "--stats-json", off, vmcore, offDump]);
    const bi = b.code === 0 ? info(ctx, offDump) : b.stderr.trim();
    add(
      "host: vmsift --no-image-guard on the saved /proc/vmcore",
      typeof bi !== "string",
      typeof bi === "string" ? bi : `${bi.bitmap2Pages} dumpable pages`,
    );
    if (typeof bi !== "string") {
      guardOff = { file: offDump, info: bi, stats: JSON.parse(Deno.readTextFileSync(off)) };
    }
  }
  const loads = elfLoads(
    readText(`${ctx.dir}/res/vmcore-head.bin`) === undefined
      ? new Uint8Array(0)
      : Deno.readFileSync(`${ctx.dir}/res/vmcore-head.bin`),
  );
  const partial = new Set<number>();
  for (const l of loads) {
    if (l.vaddr >= KERNEL_TEXT) continue;
    if (l.paddr % 4096) partial.add(Math.floor(l.paddr / 4096));
    if ((l.paddr + l.filesz) % 4096) partial.add(Math.floor((l.paddr + l.filesz) / 4096));
  }
  // vmsift's guard runs to the end of the kernel's 2 MiB mapping of its image (README: cleanup_highmap()),
  // which is kexec's image load rounded up to 2 MiB
  const image = loads.filter((l) => l.vaddr >= KERNEL_TEXT).map((l) => ({
    first: Math.floor(l.paddr / 4096),
    end: Math.ceil((l.paddr + l.memsz) / 0x200000) * 512,
  }));
  let partialKept = 0;
  for (const c of ctx.cases) {
    const m = infos.get(`mdf-${c.name}`), v = infos.get(`vmsift-${c.name}`);
    const mf = dumpOf.get(`mdf-${c.name}`), vf = dumpOf.get(`vmsift-${c.name}`);
    if (!m || !v || !mf || !vf) {
      add(`page counts ${c.name}`, false, "a dump is missing");
      continue;
    }
    // present pages: equal, but for the partial pages at the ends of a PT_LOAD (kexec's first System RAM load
    // ends at 0x9fc00): makedumpfile leaves such a page out, vmsift keeps the part /proc/vmcore has
    const p = bitmapDiff(mf, m, vf, v, 1);
    const unexplained = p.onlyB.filter((pfn) => !partial.has(pfn)).concat(p.onlyA);
    partialKept = p.onlyB.length - unexplained.length + p.onlyA.length;
    add(
      `${c.name}: present pages (bitmap 1) = makedumpfile's + partial pages of PT_LOADs`,
      unexplained.length === 0,
      `mdf ${m.bitmap1Pages} vmsift ${v.bitmap1Pages}; only vmsift: ${p.onlyB.map(hex).join(" ") || "none"}` +
        ` (partial: ${[...partial].map(hex).join(" ") || "none"}); only mdf: ${
          p.onlyA.map(hex).join(" ") || "none"
        }`,
    );
    // dumpable pages: makedumpfile's plus the kernel-image guard's, all inside the kernel image's load
    const d = bitmapDiff(mf, m, vf, v);
    const outside = d.onlyB.filter((pfn) => !image.some((l) => pfn >= l.first && pfn < l.end));
    add(
      `${c.name}: dumpable pages = makedumpfile's + kernel-image pages (vmsift's guard)`,
      d.onlyA.length === 0 && outside.length === 0 &&
        (guardKept === undefined || d.onlyB.length === guardKept),
      `mdf ${m.bitmap2Pages} vmsift ${v.bitmap2Pages}: only mdf ${d.onlyA.length}, only vmsift ` +
        `${d.onlyB.length} (${outside.length} outside the image load to its 2 MiB end ` +
        `${image.map((l) => `${hex(l.first)}-${hex(l.end)}`).join(",")}), guard kept ` +
        `${guardKept ?? "not counted (no saved vmcore)"}`,
    );
    if (c.args.includes("-c")) {
      // issue 16's size target: the default -c output at most 1 % larger than makedumpfile's (its zlib level 1
      // against vmsift's default engine, libdeflate, and the guard on; docs/symbols.md "Output size")
      const ms = fileSize(mf) ?? 0, vs = fileSize(vf) ?? 0;
      add(
        `${c.name}: -c output at most 1 % larger than makedumpfile's`,
        ms > 0 && vs > 0 && vs <= ms * 1.01,
        `vmsift ${vs} bytes, makedumpfile ${ms} (${ms > 0 ? ((vs / ms - 1) * 100).toFixed(2) : "?"} %)`,
      );
    }
    if (guardOff) {
      const e = bitmapDiff(mf, m, guardOff.file, guardOff.info);
      add(
        `${c.name}: with --no-image-guard the dumpable bitmap equals makedumpfile's page for page`,
        e.onlyA.length === 0 && e.onlyB.length === 0,
        `only mdf ${e.onlyA.length}, only vmsift ${e.onlyB.length}`,
      );
    }
  }
  if (guardOff) checks.push(...classCounts(ctx, vmcore, guardOff.stats, partialKept));

  // every page of every vmsift dump against the saved /proc/vmcore
  for (const c of ctx.cases) {
    const vf = dumpOf.get(`vmsift-${c.name}`);
    if (!vf) continue;
    if (!ctx.saved || !fileSize(vmcore)) {
      add(`vmsift verify ${c.name}`, "skip", "no saved /proc/vmcore (SAVE_VMCORE=0)");
      continue;
    }
    const r = vmsift(ctx, ["verify", vf, vmcore]);
    add(
      `vmsift verify ${c.name} against the saved /proc/vmcore`,
      r.code === 0,
      lastLines(r.stdout + r.stderr),
    );
  }
  if (ctx.crash) checks.push(...await crashChecks(ctx, dumpOf));
  else add("crash sys, kmem -i and log on both tools' dumps", "skip", "--no-crash");
  return { checks, runs, pages };
}

/** makedumpfile's class counts on the saved vmcore against vmsift's (guard off), differences explained. */
function classCounts(ctx: BootContext, vmcore: string, v: Record<string, number>, partial: number): Check[] {
  const out = `${ctx.dir}/host-mdf.dump`;
  const r = run(["makedumpfile", "-f", "-l", "-d", "31", "--message-level", "23", vmcore, out]);
  Deno.removeSync(out, { recursive: true });
  const m = parseMdfReport(r.stdout + r.stderr);
  if (!m) return [{ name: "host: makedumpfile's page report", result: "FAIL", detail: lastLines(r.stderr) }];
  // kexec's ELF header has a PT_LOAD for the kernel image (vaddr in the kernel text mapping) over memory a
  // System RAM load also covers: makedumpfile's "Original pages" counts those pages twice, vmsift once
  const head = Deno.readFileSync(`${ctx.dir}/res/vmcore-head.bin`);
  const image = elfLoads(head).filter((l) => l.vaddr >= KERNEL_TEXT);
  const imagePages = image.reduce((s, l) => s + Math.ceil(l.memsz / 4096), 0);
  const checks: Check[] = [];
  for (const k of ["zero", "cache", "cache_private", "user", "free", "hwpoison", "offline"]) {
    checks.push({
      name: `page class ${k}: vmsift (guard off) = makedumpfile`,
      result: v[k] === m[k] ? "PASS" : "FAIL",
      detail: `mdf ${m[k]} vmsift ${v[k]}`,
    });
  }
  // makedumpfile's Original and Remaining both hold the image load's pages a second time
  const extra = imagePages - partial;
  for (const k of ["original", "remaining"]) {
    checks.push({
      name: `${k} pages: makedumpfile's = vmsift's + the kernel-image load it counts twice` +
        (partial ? " - the partial pages it leaves out" : ""),
      result: m[k] === v[k] + extra ? "PASS" : "FAIL",
      detail: `mdf ${m[k]} vmsift ${v[k]}; image load ${imagePages} pages` +
        (partial ? `, partial ${partial}` : ""),
    });
  }
  return checks;
}

/** crash opens both tools' dumps of each case; sys, kmem -i and log agree. */
async function crashChecks(ctx: BootContext, dumpOf: Map<string, string>): Promise<Check[]> {
  const vmlinux = `/usr/lib/debug/boot/vmlinux-${ctx.kver}`;
  const checks: Check[] = [];
  const haveCrash = run(["crash", "--version"]).code === 0;
  const haveVmlinux = fileSize(vmlinux) !== undefined;
  const cmd = `${ctx.dir}/crash.cmd`;
  Deno.writeTextFileSync(cmd, "sys\nkmem -i\nlog\nq\n");
  // every dump at once: crash needs minutes to load the debug vmlinux on a loaded host, mostly waiting
  const crashOf = async (f: string) => {
    const saved = `${f}.crash.txt`; // kept: --check-only reuses it while the dump is unchanged
    const kept = (fileSize(saved) ?? 0) > 0 && Deno.statSync(saved).mtime! >= Deno.statSync(f).mtime!
      ? Deno.readTextFileSync(saved).match(/^crash-rc=(\d+)\n([^]*)$/)
      : null;
    if (kept) return { code: Number(kept[1]), text: crashView(kept[2]), raw: kept[2] };
    const out = await new Deno.Command("timeout", {
      args: ["1200", "crash", "-s", vmlinux, f, "-i", cmd],
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout), raw = stdout + dec.decode(out.stderr);
    Deno.writeTextFileSync(saved, `crash-rc=${out.code}\n${stdout}`);
    return { code: out.code, text: crashView(stdout), raw };
  };
  const results = await Promise.all(ctx.cases.map(async (c) => {
    const mf = dumpOf.get(`mdf-${c.name}`), vf = dumpOf.get(`vmsift-${c.name}`);
    const out: Check[] = [];
    if (!mf || !vf) return out;
    if (!haveCrash || !haveVmlinux) {
      const r = run(["crash", "--osrelease", vf]);
      out.push({
        name: `crash --osrelease ${c.name} (vmsift)`,
        result: r.code === 0 && r.stdout.trim() === ctx.kver ? "PASS" : "FAIL",
        detail: r.stdout.trim(),
      });
      out.push({ name: `crash sys/kmem -i/log ${c.name}`, result: "SKIP", detail: `no ${vmlinux}` });
      return out;
    }
    const views = await Promise.all([mf, vf].map(crashOf));
    const opened = views.every((v) => v.code === 0 && /PANIC:/.test(v.raw) && /TOTAL MEM/.test(v.raw));
    out.push({
      name: `crash opens both ${c.name} dumps (sys, kmem -i, log)`,
      result: opened ? "PASS" : "FAIL",
      detail: views.map((v) => `rc=${v.code}`).join(" "),
    });
    const same = views[0].text === views[1].text && views[0].text.length > 0;
    out.push({
      name: `crash sys, kmem -i and log agree between makedumpfile's and vmsift's ${c.name} dumps`,
      result: same ? "PASS" : "FAIL",
      detail: same ? `${views[0].text.split("\n").length} lines` : firstDiff(views[0].text, views[1].text),
    });
    return out;
  }));
  checks.push(...results.flat());
  return checks;
}

function firstDiff(a: string, b: string): string {
  const x = a.split("\n"), y = b.split("\n");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `line ${i + 1}: mdf "${x[i] ?? ""}" vmsift "${y[i] ?? ""}"`;
  }
  return "";
}

function oneLine(text: string): string {
  // deno colours its errors even into a file
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.trim().split("\n").filter((l) => l.trim()).join(" | ").slice(0, 400);
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-2).join(" | ").slice(0, 300);
}
