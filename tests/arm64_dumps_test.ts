/**
 * Opt-in: vmsift on big real arm64 dumps made with ../shared/vmcore/make-arm64-vmcore.sh (not in the repo),
 * against makedumpfile's answers recorded in tests/support/arm64Dumps.json (counts at every level, sha256 of
 * its uncompressed -d 31 file and of its --dump-dmesg). Set VMSIFT_ARM64_DUMPS to the folder holding the
 * vmcore-arm64-*.elf files; each dump absent (or not the recorded one) is ignored. For the 6.12 dumps the
 * oracle is makedumpfile 1.7.8 on a copy whose VMCOREINFO says NUMBER(VA_BITS)=48 (47); the -d 31 file is
 * compared on such a copy, made here. See docs/arm64.md.
 */
import assert from "node:assert/strict";
import { dumpVmcore } from "../dump/run.ts";
import { openElfInput } from "../dump/input.ts";
import { NullSink } from "../dump/outputs.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { extractDmesg } from "../core/printk.ts";
import { statsJson } from "../core/stats.ts";
import { sha256File } from "./support/compare.ts";
import { runVmsift, tempDir } from "./support/run.ts";

interface DumpFacts {
  name: string;
  file: string;
  size: number;
  head_sha256: string;
  oracle: string;
  va_bits_copy: number | null;
  dump_levels: Record<string, Record<string, number>>;
  raw_d31_sha256: string;
  dmesg_sha256: string;
  dmesg_caller: boolean;
}

const DIR = Deno.env.get("VMSIFT_ARM64_DUMPS");
const FACTS: DumpFacts[] = JSON.parse(
  Deno.readTextFileSync(new URL("./support/arm64Dumps.json", import.meta.url)),
).dumps;

async function sha256Bytes(b: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", b.slice());
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The dump's path when it is there and is the recorded one (size and first MiB). */
function present(f: DumpFacts): string | undefined {
  if (DIR === undefined) return undefined;
  const path = `${DIR}/${f.file}`;
  try {
    if (Deno.statSync(path).size !== f.size) return undefined;
  } catch {
    return undefined;
  }
  return path;
}

for (const f of FACTS) {
  const path = present(f);
  Deno.test({
    name: `arm64 dump ${f.name}: counts at every level, -d 31 bytes and dmesg equal ${
      f.oracle.split(" (")[0]
    }'s`,
    ignore: path === undefined,
    async fn() {
      const vmcore = path!;
      const file = await Deno.open(vmcore);
      const head = new Uint8Array(1 << 20);
      let got = 0;
      while (got < head.length) {
        const n = await file.read(head.subarray(got));
        if (n === null) break;
        got += n;
      }
      file.close();
      assert.equal(await sha256Bytes(head.subarray(0, got)), f.head_sha256, "not the recorded dump");
      const dir = tempDir();
      try {
        for (const [level, want] of Object.entries(f.dump_levels)) {
          const r = await dumpVmcore(vmcore, {
            dumpLevel: Number(level),
            openSinks: () => [new NullSink()],
            bitmapDir: dir,
            bitmapBudget: 64 << 20,
            imageGuard: false,
          });
          const s = statsJson(r.stats);
          for (const [k, v] of Object.entries(want)) assert.equal(s[k], v, `-d ${level}: ${k}`);
        }
        let input = vmcore;
        if (f.va_bits_copy !== null) {
          // makedumpfile's -d 31 was written from a copy whose VMCOREINFO (copied into the file) says so.
          input = `${dir}/copy.elf`;
          Deno.copyFileSync(vmcore, input);
          const fh = await Deno.open(input, { read: true, write: true });
          const text = new TextDecoder("latin1").decode(head.subarray(0, got));
          const at = text.indexOf("NUMBER(VA_BITS)=52\n");
          assert.ok(at > 0);
          await fh.seek(at, Deno.SeekMode.Start);
          await fh.write(new TextEncoder().encode(`NUMBER(VA_BITS)=${f.va_bits_copy}\n`));
          fh.close();
        }
        const out = `${dir}/raw.kdump`;
        const r = await runVmsift(["-d", "31", "--no-image-guard", input, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(out), f.raw_d31_sha256, "uncompressed -d 31");
        Deno.removeSync(out);
        const v = await runVmsift(["-l", "-d", "31", vmcore, `${dir}/l.kdump`]);
        assert.equal(v.code, 0, v.stderr);
        const ok = await runVmsift(["verify", `${dir}/l.kdump`, vmcore]);
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
        const inp = openElfInput(vmcore);
        try {
          const model = buildMemoryModel(inp.core, inp.info);
          const log = extractDmesg(model.vm, inp.info, { callerColumn: f.dmesg_caller }).bytes;
          assert.equal(await sha256Bytes(log), f.dmesg_sha256, "dmesg");
        } finally {
          inp.core.close();
        }
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}
