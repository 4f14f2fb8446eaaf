/**
 * Compare vmsift's page counts and kernel log with makedumpfile's on real vmcores, at every dump level:
 *
 *   deno run -A bench/compareCounts.ts VMCORE [VMCORE...]
 *
 * Runs `makedumpfile --dry-run --message-level 16 -d L` and `vmsift --dry-run --no-image-guard` (the guard is
 * vmsift's deliberate difference; its moved counts are printed separately), compares the report tables byte
 * for byte, and `--dump-dmesg` outputs. Exit 1 on any difference. Needs makedumpfile on PATH.
 */
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const LEVELS = [0, 1, 2, 4, 8, 16, 31];

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

function table(text: string): string {
  const a = text.indexOf("Original pages");
  const b = text.indexOf("Total pages", a);
  if (a < 0 || b < 0) return `(no report)\n${text}`;
  return text.slice(a, text.indexOf("\n", b) + 1);
}

let failed = 0;
const tmp = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "vmsift-compare-" });
try {
  for (const vmcore of Deno.args) {
    console.log(`== ${vmcore}`);
    for (const level of LEVELS) {
      const mdf = table(
        run("makedumpfile", ["--dry-run", "--message-level", "16", "-d", `${level}`, vmcore, `${tmp}/x`]),
      );
      const vms = table(
        run(Deno.execPath(), [
          "run",
          "-A",
          MAIN,
          "--dry-run",
          "--no-image-guard",
          "--message-level",
          "16",
          "-d",
          `${level}`,
          vmcore,
          `${tmp}/x`,
        ]),
      );
      const guard = table(
        run(Deno.execPath(), [
          "run",
          "-A",
          MAIN,
          "--dry-run",
          "--message-level",
          "16",
          "-d",
          `${level}`,
          vmcore,
          `${tmp}/x`,
        ]),
      );
      const same = mdf === vms;
      if (!same) failed++;
      const moved = Number(/Remaining pages {2}: (0x[0-9a-f]+)/.exec(guard)?.[1] ?? 0) -
        Number(/Remaining pages {2}: (0x[0-9a-f]+)/.exec(vms)?.[1] ?? 0);
      console.log(
        `-d ${String(level).padStart(2)}: ${
          same ? "identical" : "DIFFERENT"
        }; image guard keeps ${moved} more pages`,
      );
      if (!same) console.log(`makedumpfile:\n${mdf}vmsift:\n${vms}`);
    }
    run("makedumpfile", ["--dump-dmesg", vmcore, `${tmp}/m.txt`]);
    run(Deno.execPath(), ["run", "-A", MAIN, "-f", "--dump-dmesg", vmcore, `${tmp}/v.txt`]);
    const a = Deno.readFileSync(`${tmp}/m.txt`);
    const b = Deno.readFileSync(`${tmp}/v.txt`);
    const same = a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same) failed++;
    console.log(`dmesg: ${same ? "identical" : "DIFFERENT"} (${a.length} bytes)`);
    Deno.removeSync(`${tmp}/m.txt`);
    Deno.removeSync(`${tmp}/v.txt`);
  }
} finally {
  Deno.removeSync(tmp, { recursive: true });
}
Deno.exit(failed === 0 ? 0 : 1);
