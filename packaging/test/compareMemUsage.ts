/**
 * Compare the --mem-usage tables of one guest run (packaging/test/memusage.sh's serial log): vmsift with
 * makedumpfile's rules (--no-image-guard) against the two makedumpfile runs made just before and after it.
 * The system is live (the runs themselves allocate and free memory), so a class agrees when vmsift's count
 * lies between the two makedumpfile counts widened by a tolerance; "Total pages on system" must be equal.
 *
 *   deno run --allow-read packaging/test/compareMemUsage.ts SERIAL_LOG
 */

/** Classes of makedumpfile's table, in its order. */
export const CLASSES = ["ZERO", "NON_PRI_CACHE", "PRI_CACHE", "USER", "FREE", "KERN_DATA"] as const;

/** One parsed table. */
export type MemUsageTable = Record<(typeof CLASSES)[number] | "TOTAL", number>;

/** Parse the table printed by `--mem-usage` (makedumpfile's or vmsift's). */
export function parseMemUsage(text: string): MemUsageTable | undefined {
  const t: Partial<MemUsageTable> = {};
  for (const c of CLASSES) {
    const m = new RegExp(`^${c}\\s+(\\d+)\\s`, "m").exec(text);
    if (m) t[c] = Number(m[1]);
  }
  const total = /^Total pages on system:\s+(\d+)/m.exec(text);
  if (total) t.TOTAL = Number(total[1]);
  return CLASSES.every((c) => t[c] !== undefined) && t.TOTAL !== undefined ? t as MemUsageTable : undefined;
}

/** The text between `=== NAME` and the next `=== ` marker of the serial log. */
export function section(log: string, name: string): string {
  const clean = log.replaceAll("\r", "");
  const at = clean.indexOf(`=== ${name}\n`);
  if (at < 0) return "";
  const rest = clean.slice(at + name.length + 5);
  const end = rest.indexOf("\n=== ");
  return end < 0 ? rest : rest.slice(0, end);
}

/** Pages a class may differ beyond the bracket of the two makedumpfile runs: 0.5 % of RAM, at least 512. */
export function tolerance(total: number): number {
  return Math.max(512, Math.ceil(total * 0.005));
}

/** vmsift's extra lines: its own anonymous memory (in USER) and the kernel image pages kcore maps twice. */
export function parseVmsiftExtras(text: string): { own: number; twice: number } {
  const own = /^vmsift's own memory:\s+(\d+)/m.exec(text);
  const twice = /^Kernel image in kcore:\s+(\d+)/m.exec(text);
  return { own: own ? Number(own[1]) : 0, twice: twice ? Number(twice[1]) : 0 };
}

/** One line of the comparison. */
export interface ClassCheck {
  name: string;
  mdf1: number;
  vmsift: number;
  mdf2: number;
  ok: boolean;
}

/**
 * Compare vmsift's table (`v`, with makedumpfile's rules) with the makedumpfile runs before (`m1`) and after
 * (`m2`) it. makedumpfile counts the kernel image twice (kcore maps it twice: `twice` pages) in Total and
 * KERN_DATA. vmsift's own process is part of the system it measures: its anonymous memory (`own` pages,
 * RssAnon at the end of the run, an upper bound of what it held during the scan) is in its USER, and came
 * out of FREE and the per-CPU free lists (which both tools count as KERN_DATA). So a class agrees when
 * vmsift's count lies between the two makedumpfile counts widened by the tolerance, USER up to `own` more,
 * FREE and KERN_DATA up to `own` either way; Total must be equal.
 */
export function compareTables(
  m1: MemUsageTable,
  v: MemUsageTable,
  m2: MemUsageTable,
  extras: { own: number; twice: number },
): ClassCheck[] {
  const tol = tolerance(v.TOTAL);
  const mdf = (t: MemUsageTable, c: (typeof CLASSES)[number] | "TOTAL") =>
    c === "TOTAL" || c === "KERN_DATA" ? t[c] - extras.twice : t[c];
  const checks: ClassCheck[] = [];
  for (const c of [...CLASSES, "TOTAL"] as const) {
    const a = mdf(m1, c), b = mdf(m2, c);
    const moved = c === "FREE" || c === "KERN_DATA" ? extras.own : 0;
    const lo = Math.min(a, b) - tol - moved;
    const hi = Math.max(a, b) + tol + moved + (c === "USER" ? extras.own : 0);
    const ok = c === "TOTAL" ? v[c] === a && v[c] === b : v[c] >= lo && v[c] <= hi;
    checks.push({ name: c, mdf1: a, vmsift: v[c], mdf2: b, ok });
  }
  return checks;
}

if (import.meta.main) {
  const log = Deno.readTextFileSync(Deno.args[0]);
  const names = ["MDF1", "VMSIFT-NOGUARD", "MDF2", "VMSIFT"];
  const [m1, v, m2, vg] = names.map((n) => parseMemUsage(section(log, n)));
  if (!m1 || !v || !m2 || !vg) {
    console.log("memusage: a table is missing from the serial log:");
    for (const n of names) console.log(`--- ${n}\n${section(log, n).split("\n").slice(-12).join("\n")}`);
    Deno.exit(1);
  }
  const extras = parseVmsiftExtras(section(log, "VMSIFT-NOGUARD"));
  console.log(
    `vmsift's own memory ${extras.own} pages; kernel image mapped twice ${extras.twice} pages; ` +
      `tolerance ${tolerance(v.TOTAL)} pages`,
  );
  console.log("class          makedumpfile-1  vmsift(rules of mdf)  makedumpfile-2  vmsift(default)");
  const checks = compareTables(m1, v, m2, extras);
  for (const c of checks) {
    console.log(
      `${c.name.padEnd(14)} ${String(c.mdf1).padStart(14)}  ${String(c.vmsift).padStart(20)}  ${
        String(c.mdf2).padStart(14)
      }  ${String(vg[c.name as keyof MemUsageTable]).padStart(15)}  ${c.ok ? "ok" : "DIFFERS"}`,
    );
  }
  console.log(
    "(makedumpfile's Total and KERN_DATA without the twice-mapped image)",
  );
  const ok = checks.every((c) => c.ok);
  console.log(ok ? "memusage: PASS" : "memusage: FAIL");
  Deno.exit(ok ? 0 : 1);
}
