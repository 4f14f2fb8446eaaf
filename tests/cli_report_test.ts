/**
 * Dump-command details an operator sees: `--dry-run --show-stats` reports the size the dump would have
 * (makedumpfile's "Write bytes" line) and writes nothing; `-F` refuses to write binary to a terminal, as gzip
 * does (a pseudo-terminal from util-linux `script`; ignored without it).
 */
import assert from "node:assert/strict";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { haveProgram, MAIN, runVmsift, tempDir } from "./support/run.ts";

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

Deno.test({
  name: "-F refuses to write the flattened dump to a terminal (like gzip); -f forces, a pipe is fine",
  ignore: !haveProgram("script"),
  async fn() {
    const dir = tempDir();
    try {
      const vmcore = `${dir}/m.vmcore`;
      generate(normalizeParams({ memBytes: 64 * MiB, seed: 6 }), vmcore);
      /** Run vmsift with stdout on a pseudo-terminal; returns what the terminal showed and the exit status. */
      const onTty = (args: string[]) => {
        const cmd = [Deno.execPath(), "run", "-A", MAIN, ...args].map((a) => `'${a}'`).join(" ");
        const o = new Deno.Command("script", {
          args: ["-qec", `${cmd}; echo "rc=$?"`, "/dev/null"],
          stdout: "piped",
          stderr: "piped",
          cwd: dir,
        }).outputSync();
        return new TextDecoder().decode(o.stdout);
      };
      const t = onTty(["-F", "-c", "-d", "31", vmcore]);
      assert.match(
        t,
        /vmsift: stdout: flattened dump not written to a terminal \(redirect it, or use -f to force\)/,
      );
      assert.match(t, /rc=1/);
      assert.ok(t.length < 2000, `binary data reached the terminal (${t.length} bytes)`);
      // -f: written anyway (gzip's -f)
      const forced = onTty(["-F", "-f", "-c", "-d", "31", "--message-level", "0", vmcore]);
      assert.match(forced, /rc=0/);
      assert.ok(forced.startsWith("makedumpfile") && forced.length > 100_000, "-f writes the stream");
      // stdout a pipe: the stream goes through
      const p = await runVmsift(["-F", "-c", "-d", "31", "--message-level", "0", vmcore]);
      assert.equal(p.code, 0, p.stderr);
      assert.ok(p.stdout.startsWith("makedumpfile"), "flattened stream on the pipe");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
