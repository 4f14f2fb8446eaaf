import assert from "node:assert/strict";
import { Progress } from "../cli/progress.ts";
import { runVmsift } from "./support/run.ts";
import { writeSample } from "../fixtures/sample.ts";
import { tempDir } from "./support/run.ts";

Deno.test("progress: the line has percent, pages/s, MB/s and ETA", () => {
  const p = new Progress("Copying data", false, { tty: true });
  const line = p.line(250, 1000, 50e6, 10);
  assert.match(line, /^Copying data\s+: \[ 25\.0 %\] 25 pages\/s 5\.0 MB\/s eta 30s$/);
  assert.match(p.line(1000, 1000, 0, 0), /\[100\.0 %\]/);
  assert.match(p.line(1, 100, 0, 1), /eta 1m39s$/);
  assert.match(p.line(1, 100000, 0, 60), /eta 1666h39m$/);
});

Deno.test("progress: not a terminal → plain lines (no carriage returns), only with message level bit 1", async () => {
  const dir = tempDir();
  try {
    const s = writeSample(`${dir}/s`);
    const on = await runVmsift(["--message-level", "1", "-c", "-d", "31", s.path, `${dir}/a.kdump`]);
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stderr, /Copying data\s+: \[100\.0 %\] \d+ pages\/s [\d.]+ MB\/s eta 0s\n/);
    assert.doesNotMatch(on.stderr, /\r/, "a serial console gets whole lines");
    const off = await runVmsift(["--message-level", "0", "-c", "-d", "31", s.path, `${dir}/b.kdump`]);
    assert.equal(off.code, 0);
    assert.equal(off.stderr, "");
    assert.equal(off.stdout, "");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
