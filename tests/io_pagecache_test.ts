import assert from "node:assert/strict";
import { DirectSink } from "../io/directSink.ts";

/** Bytes of `path` resident in the page cache (fincore from util-linux), or -1 without fincore. */
function resident(path: string): number {
  try {
    const out = new Deno.Command("fincore", { args: ["--bytes", "--noheadings", "--output", "RES", path] })
      .outputSync();
    if (!out.success) return -1;
    return Number(new TextDecoder().decode(out.stdout).trim());
  } catch {
    return -1;
  }
}

/** `Cached:` of /proc/meminfo in bytes (whole machine: noisy, reported only). */
function cached(): number {
  const m = /^Cached:\s+(\d+) kB$/m.exec(Deno.readTextFileSync("/proc/meminfo"));
  return m ? Number(m[1]) * 1024 : -1;
}

const MiB = 1 << 20;
const TOTAL = 256 * MiB;

Deno.test("DirectSink keeps the page cache flat (256 MiB; numbers reported, only O_DIRECT residency asserted)", () => {
  const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "vmsift-io-test-" });
  try {
    // 1 MiB of incompressible bytes, written 256 times; chunks of an odd size so blocks straddle writes
    const chunk = new Uint8Array(MiB - 1000);
    for (let i = 0; i < chunk.length; i += 65536) crypto.getRandomValues(chunk.subarray(i, i + 65536));
    const lines: string[] = [];
    let directResident = -1;
    for (
      const [name, direct, sync] of [
        ["O_DIRECT, fsync", true, true],
        ["buffered, fsync", false, true],
        ["buffered, no fsync", false, false],
        ["O_DIRECT, no fsync", true, false],
      ] as [string, boolean, boolean][]
    ) {
      const path = `${dir}/dump-${direct}-${sync}`;
      const before = cached();
      const t0 = performance.now();
      const sink = DirectSink.create(path, { direct, sync });
      let off = 0;
      while (off < TOTAL) {
        const n = Math.min(chunk.length, TOTAL - off);
        sink.write(off, chunk.subarray(0, n));
        off += n;
      }
      sink.finish(TOTAL);
      sink.close();
      const ms = performance.now() - t0;
      const res = resident(path);
      const after = cached();
      if (direct && sync) directResident = res;
      lines.push(
        `${name.padEnd(20)} ${(TOTAL / MiB / (ms / 1000)).toFixed(0).padStart(5)} MB/s  ` +
          `${sink.stats.writeCalls} pwrites  file resident ${res < 0 ? "?" : (res / MiB).toFixed(1)} MiB  ` +
          `meminfo Cached ${((after - before) / MiB).toFixed(1)} MiB`,
      );
      assert.equal(Deno.statSync(path).size, TOTAL);
      Deno.removeSync(path);
    }
    console.log(lines.join("\n"));
    if (directResident >= 0) assert.ok(directResident < 4 * MiB, `O_DIRECT file resident ${directResident}`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
