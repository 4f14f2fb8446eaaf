import assert from "node:assert/strict";
import { fmtEta, Progress } from "../cli/progress.ts";
import { runVmsift } from "./support/run.ts";
import { writeSample } from "../fixtures/sample.ts";
import { tempDir } from "./support/run.ts";

Deno.test("progress: the line has percent, pages/s, labelled read and written MB/s, and ETA", () => {
  const p = new Progress("Copying data", false, { tty: true });
  // 250 pages of 4 KiB read (1.024 MB) and 50 MB written in 10 s
  const line = p.line(250, 1000, 50e6, 10);
  assert.match(
    line,
    /^Copying data\s+: \[ 25\.0 %\] 25 pages\/s, read 0\.1 MB\/s, written 5\.0 MB\/s, eta 30s$/,
  );
  assert.match(p.line(1000, 1000, 0, 0), /\[100\.0 %\]/);
  assert.match(p.line(1, 100, 0, 1), /eta 1m39s$/);
  assert.match(p.line(1, 100000, 0, 60), /eta 1666h39m$/);
  // 64 KiB pages (arm64): 16x the read throughput for the same page rate
  const big = new Progress("Copying data", false, { tty: true, pageSize: 65536 });
  assert.match(big.line(1000, 2000, 1e6, 1), /1000 pages\/s, read 65\.5 MB\/s, written 1\.0 MB\/s, eta 1s$/);
});

Deno.test("progress: ETA never shows 60 in a field (seconds rounded up before splitting)", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [0.2, "1s"],
    [59, "59s"],
    [59.2, "1m00s"],
    [60, "1m00s"],
    [119.5, "2m00s"],
    [3599, "59m59s"],
    [3599.5, "1h00m"],
    [3600, "1h00m"],
    [7199, "2h00m"],
  ];
  for (const [s, want] of cases) assert.equal(fmtEta(s), want, `${s} s`);
  for (let s = 0; s < 8000; s += 0.25) assert.doesNotMatch(fmtEta(s), /\D60[sm]/, `${s} s`);
});

Deno.test("progress: not a terminal → plain lines (no carriage returns), only with message level bit 1", async () => {
  const dir = tempDir();
  try {
    const s = writeSample(`${dir}/s`);
    const on = await runVmsift(["--message-level", "1", "-c", "-d", "31", s.path, `${dir}/a.kdump`]);
    assert.equal(on.code, 0, on.stderr);
    assert.match(
      on.stderr,
      /Copying data\s+: \[100\.0 %\] \d+ pages\/s, read [\d.]+ MB\/s, written [\d.]+ MB\/s, eta 0s\n/,
    );
    assert.doesNotMatch(on.stderr, /\r/, "a serial console gets whole lines");
    const off = await runVmsift(["--message-level", "0", "-c", "-d", "31", s.path, `${dir}/b.kdump`]);
    assert.equal(off.code, 0);
    assert.equal(off.stderr, "");
    assert.equal(off.stdout, "");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
