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

if (import.meta.main) {
  const log = Deno.readTextFileSync(Deno.args[0]);
  const [m1, v, m2, vg] = ["MDF1", "VMSIFT-NOGUARD", "MDF2", "VMSIFT"].map((n) =>
    parseMemUsage(section(log, n))
  );
  if (!m1 || !v || !m2 || !vg) {
    console.log("memusage: a table is missing from the serial log:");
    for (const n of ["MDF1", "VMSIFT-NOGUARD", "MDF2", "VMSIFT"]) {
      console.log(`--- ${n}\n${section(log, n).split("\n").slice(-12).join("\n")}`);
    }
    Deno.exit(1);
  }
  const tol = tolerance(m1.TOTAL);
  let ok = v.TOTAL === m1.TOTAL && v.TOTAL === m2.TOTAL && vg.TOTAL === v.TOTAL;
  console.log(
    `class          makedumpfile-1  vmsift(no guard)  makedumpfile-2  vmsift(default)  (tolerance ${tol})`,
  );
  for (const c of [...CLASSES, "TOTAL"] as const) {
    const lo = Math.min(m1[c], m2[c]) - tol, hi = Math.max(m1[c], m2[c]) + tol;
    const good = c === "TOTAL" ? v[c] === m1[c] : v[c] >= lo && v[c] <= hi;
    ok &&= good;
    console.log(
      `${c.padEnd(14)} ${String(m1[c]).padStart(14)}  ${String(v[c]).padStart(16)}  ${
        String(m2[c]).padStart(14)
      }  ${String(vg[c]).padStart(15)}  ${good ? "ok" : "DIFFERS"}`,
    );
  }
  console.log(ok ? "memusage: PASS" : "memusage: FAIL");
  Deno.exit(ok ? 0 : 1);
}
