/**
 * The oracle for the synthetic generator: makedumpfile 1.7.2 (when installed) must accept the synthetic
 * vmcores and print exactly the manifest's page counts at dump levels 0, 1, 2, 4, 8, 16 and 31, and
 * `--dump-dmesg` must give the manifest's kernel log. Skips cleanly without makedumpfile.
 */
import assert from "node:assert/strict";
import { generate, type Manifest } from "../fixtures/synthetic/generate.ts";
import { GiB, MiB, normalizeParams, type SynthParams } from "../fixtures/synthetic/params.ts";
import { isFile } from "./support/fixture.ts";

const MDF = ["/usr/sbin/makedumpfile", "/usr/bin/makedumpfile", "/sbin/makedumpfile"].find(isFile);

const REPORT_KEYS: [string, string][] = [
  ["Original pages", "original"],
  ["Excluded pages", "excluded"],
  ["Pages filled with zero", "zero"],
  ["Non-private cache pages", "cache"],
  ["Private cache pages", "cache_private"],
  ["User process data pages", "user"],
  ["Free pages", "free"],
  ["Hwpoison pages", "hwpoison"],
  ["Offline pages", "offline"],
  ["Remaining pages", "remaining"],
  ["Memory Hole", "memory_hole"],
  ["Total pages", "total"],
];

/** Parse makedumpfile's report table into our manifest keys. */
export function parseReport(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z -]+?)\s*:\s*0x([0-9a-f]+)\s*$/.exec(line);
    if (!m) continue;
    const k = REPORT_KEYS.find(([label]) => label === m[1]);
    if (k) out[k[1]] = parseInt(m[2], 16);
  }
  return out;
}

function run(args: string[]): { code: number; text: string } {
  const r = new Deno.Command(MDF!, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const d = new TextDecoder();
  return { code: r.code, text: d.decode(r.stdout) + d.decode(r.stderr) };
}

const CASES: { name: string; p: Partial<SynthParams>; levels: number[] }[] = [
  { name: "256M 4-level text", p: { memBytes: 256 * MiB, seed: 1 }, levels: [0, 1, 2, 4, 8, 16, 31] },
  {
    name: "128M 5-level 4k-vmemmap random",
    p: { memBytes: 128 * MiB, seed: 7, levels: 5, vmemmap4k: true, content: "random", directMap: "2m" },
    levels: [1, 8, 31],
  },
  { name: "128M scheme 4.17", p: { memBytes: 128 * MiB, seed: 5, scheme: "4.17" }, levels: [16, 31] },
  {
    name: "3.5G zero content (segment above 4G)",
    p: { memBytes: 3.5 * GiB, seed: 3, content: "zero", mix: { free: 0.8 } as SynthParams["mix"] },
    levels: [31],
  },
];

for (const c of CASES) {
  Deno.test({
    name: `makedumpfile agrees with the synthetic manifest: ${c.name}`,
    ignore: MDF === undefined,
    fn() {
      const dir = Deno.makeTempDirSync({ prefix: "vmsift-synth-mdf-" });
      try {
        const path = `${dir}/x.vmcore`;
        const m: Manifest = generate(normalizeParams(c.p), path).manifest;
        for (const lv of c.levels) {
          const r = run(["--message-level", "16", "-d", String(lv), "-f", path, `${dir}/out.kdump`]);
          assert.equal(r.code, 0, r.text);
          assert.deepEqual(parseReport(r.text), m.dump_levels[String(lv)], `-d ${lv}\n${r.text}`);
          Deno.removeSync(`${dir}/out.kdump`);
        }
        const r = run(["--dump-dmesg", path, `${dir}/dmesg.txt`]);
        assert.equal(r.code, 0, r.text);
        assert.equal(Deno.readTextFileSync(`${dir}/dmesg.txt`), m.dmesg);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}
