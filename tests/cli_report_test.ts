/**
 * Dump-command details an operator sees: `--dry-run --show-stats` reports the size the dump would have
 * (makedumpfile's "Write bytes" line) and writes nothing.
 */
import assert from "node:assert/strict";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { runVmsift, tempDir } from "./support/run.ts";

Deno.test("--show-stats ends with 'Write bytes', the dump's size; --dry-run prints the same and writes nothing", async () => {
  const dir = tempDir();
  try {
    const vmcore = `${dir}/m.vmcore`;
    generate(normalizeParams({ memBytes: 64 * MiB, seed: 5 }), vmcore);
    const out = `${dir}/d.kdump`;
    const real = await runVmsift(["--show-stats", "-c", "-d", "31", vmcore, out]);
    assert.equal(real.code, 0, real.stderr);
    const size = Deno.statSync(out).size;
    const text = real.stdout + real.stderr;
    assert.match(text, new RegExp(`\\nTotal pages     : 0x[0-9a-f]{16}\\nWrite bytes     : ${size}\\n`));
    const dry = await runVmsift(["--dry-run", "--show-stats", "-c", "-d", "31", vmcore, `${dir}/dry.kdump`]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout + dry.stderr, new RegExp(`\\nWrite bytes     : ${size}\\n`));
    assert.match(dry.stdout + dry.stderr, /The dry run is finished\./);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "d.kdump",
      "m.vmcore",
      "m.vmcore.manifest.json",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
