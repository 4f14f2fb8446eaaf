import assert from "node:assert/strict";
import { VmsiftError } from "../core/errors.ts";
import { DirectSink, type DirectSinkOptions } from "../io/directSink.ts";
import { EINVAL, O_DIRECT, type OpenFn, sysClose, sysOpen } from "../io/libc.ts";

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`));
  assert.ok(m, "fdinfo has flags");
  return parseInt(m[1], 8);
}

interface Op {
  kind: "write" | "rewrite";
  offset: number;
  bytes: Uint8Array;
  /** rewrite after finish */
  late?: boolean;
}

/**
 * A random script: the file [0, size) cut into pieces of random length (tiny to several windows), 10 % left
 * as holes, written in random order; rewrites inside written pieces at random times, one after finish.
 */
function script(seed: number, size: number, maxPiece: number): { ops: Op[]; size: number } {
  const r = rng(seed);
  const pieces: [number, number][] = [];
  for (let pos = 0; pos < size;) {
    const kind = r();
    const len = Math.min(
      size - pos,
      kind < 0.3
        ? 1 + Math.floor(r() * 100)
        : kind < 0.6
        ? 1 + Math.floor(r() * 8192)
        : 1 + Math.floor(r() * maxPiece),
    );
    pieces.push([pos, len]);
    pos += len;
  }
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [pieces[i], pieces[j]] = [pieces[j], pieces[i]];
  }
  const ops: Op[] = [];
  const written: [number, number][] = [];
  const fill = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = 1 + Math.floor(r() * 255);
    return b;
  };
  for (const [off, len] of pieces) {
    if (r() < 0.1) continue; // a hole
    ops.push({ kind: "write", offset: off, bytes: fill(len) });
    written.push([off, len]);
    if (r() < 0.15) {
      const [woff, wlen] = written[Math.floor(r() * written.length)];
      const a = woff + Math.floor(r() * wlen);
      const n = 1 + Math.floor(r() * (woff + wlen - a));
      ops.push({ kind: "rewrite", offset: a, bytes: fill(n) });
    }
  }
  const [woff, wlen] = written[Math.floor(r() * written.length)];
  ops.push({ kind: "rewrite", offset: woff, bytes: fill(Math.min(wlen, 64)), late: true });
  // final size: past the last written byte, unaligned
  return { ops, size: size + 1 + Math.floor(r() * 5000) };
}

function reference(path: string, ops: Op[], size: number): void {
  const f = Deno.openSync(path, { write: true, create: true, truncate: true });
  for (const op of ops) {
    f.seekSync(op.offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < op.bytes.length) done += f.writeSync(op.bytes.subarray(done));
  }
  f.truncateSync(size);
  f.close();
}

function run(path: string, ops: Op[], size: number, opts: DirectSinkOptions): DirectSink {
  const sink = DirectSink.create(path, opts);
  for (const op of ops) {
    if (op.late) continue;
    if (op.kind === "write") sink.write(op.offset, op.bytes);
    else sink.rewrite(op.offset, op.bytes);
  }
  sink.finish(size);
  for (const op of ops) if (op.late) sink.rewrite(op.offset, op.bytes);
  sink.close();
  return sink;
}

function assertSameFile(a: string, b: string): void {
  const x = Deno.readFileSync(a);
  const y = Deno.readFileSync(b);
  assert.equal(x.length, y.length, "file sizes");
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`first difference at byte ${i}: ${x[i]} vs ${y[i]}`);
  }
}

/** A directory on the repository's file system (not tmpfs). */
function diskTempDir(): string {
  return Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "vmsift-io-test-" });
}

const GEOMETRIES: [string, DirectSinkOptions, number, number][] = [
  [
    "small cache (evictions, partial blocks)",
    { windowBytes: 64 << 10, cacheBytes: 128 << 10 },
    3 << 20,
    200 << 10,
  ],
  ["default cache", {}, 6 << 20, 3 << 20],
];

for (const [name, geo, size, maxPiece] of GEOMETRIES) {
  for (const [direct, async] of [[true, true], [true, false], [false, true]]) {
    Deno.test(`DirectSink random pieces equal plain writes: ${name}, direct=${direct}, aio=${async}`, () => {
      const dir = diskTempDir();
      try {
        for (let seed = 1; seed <= 4; seed++) {
          const s = script(seed * 7919 + size, size, maxPiece);
          reference(`${dir}/ref`, s.ops, s.size);
          const sink = run(`${dir}/out${seed}`, s.ops, s.size, { ...geo, direct, async, sync: false });
          assert.equal(sink.direct, direct);
          assert.equal(sink.usesAio, async, "glibc AIO loads here");
          assert.deepEqual(sink.warnings, []);
          assertSameFile(`${dir}/out${seed}`, `${dir}/ref`);
          assert.ok(sink.stats.writeCalls > 0);
        }
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    });
  }
}

Deno.test("DirectSink uses O_DIRECT on the repository's file system", () => {
  const dir = diskTempDir();
  try {
    const sink = DirectSink.create(`${dir}/dump`);
    assert.equal(sink.direct, true);
    assert.ok(fdFlags(sink.fd) & O_DIRECT, "fdinfo flags contain 040000");
    sink.write(0, new Uint8Array(10000).fill(7));
    sink.finish(10000);
    sink.close();
    const buffered = DirectSink.create(`${dir}/dump2`, { direct: false });
    assert.equal(fdFlags(buffered.fd) & O_DIRECT, 0);
    buffered.abort();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/**
 * A directory whose file system refuses O_DIRECT. tmpfs did until Linux 6.6; on newer kernels the refusal is
 * played by an open() that behaves like the kernel then did (creates the file, then answers EINVAL).
 */
function refusingFs(): { dir: string; openFn?: OpenFn; cleanup: () => void } {
  const probeDir = Deno.env.get("VMSIFT_NODIRECT_DIR") ?? "/dev/shm";
  const dir = Deno.makeTempDirSync({ dir: probeDir, prefix: "vmsift-io-test-" });
  const fd = sysOpen(`${dir}/probe`, 0o2 | 0o100 | O_DIRECT, 0o600);
  if (fd >= 0) sysClose(fd);
  Deno.removeSync(`${dir}/probe`);
  const cleanup = () => Deno.removeSync(dir, { recursive: true });
  if (fd === -EINVAL) return { dir, cleanup };
  const openFn: OpenFn = (path, flags, mode) => {
    if ((flags & O_DIRECT) === 0) return sysOpen(path, flags, mode);
    const r = sysOpen(path, flags & ~O_DIRECT, mode);
    if (r < 0) return r;
    sysClose(r);
    return -EINVAL;
  };
  return { dir, openFn, cleanup };
}

Deno.test("DirectSink falls back to buffered writes where O_DIRECT is refused, warning once", () => {
  const fs = refusingFs();
  try {
    const s = script(4242, 2 << 20, 300 << 10);
    reference(`${fs.dir}/ref`, s.ops, s.size);
    const heard: string[] = [];
    const sink = run(`${fs.dir}/out`, s.ops, s.size, {
      openFn: fs.openFn,
      onWarning: (m) => heard.push(m),
      windowBytes: 128 << 10,
      cacheBytes: 256 << 10,
    });
    assert.equal(sink.direct, false);
    assert.equal(sink.warnings.length, 1);
    assert.deepEqual(heard, sink.warnings);
    assert.match(sink.warnings[0], /O_DIRECT/);
    assertSameFile(`${fs.dir}/out`, `${fs.dir}/ref`);
    // O_EXCL still holds on the fallback path
    assert.throws(() => DirectSink.create(`${fs.dir}/out`, { openFn: fs.openFn }), VmsiftError);
  } finally {
    fs.cleanup();
  }
});

Deno.test("DirectSink: O_EXCL unless overwrite; abort removes the file; close without finish keeps data", () => {
  const dir = diskTempDir();
  try {
    Deno.writeTextFileSync(`${dir}/old`, "old contents");
    assert.throws(
      () => DirectSink.create(`${dir}/old`),
      (e) => e instanceof VmsiftError && /exists/.test(e.message),
    );
    assert.equal(Deno.readTextFileSync(`${dir}/old`), "old contents");
    const over = DirectSink.create(`${dir}/old`, { overwrite: true });
    over.write(0, new TextEncoder().encode("new"));
    over.close(); // finish(high water) implied
    assert.equal(Deno.readTextFileSync(`${dir}/old`), "new");

    const a = DirectSink.create(`${dir}/partial`);
    a.write(0, new Uint8Array(3 << 20).fill(1));
    a.abort();
    assert.throws(() => Deno.statSync(`${dir}/partial`), Deno.errors.NotFound);
    assert.throws(() => a.write(0, new Uint8Array(1)), VmsiftError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("DirectSink: sequential big writes go out as whole windows", () => {
  const dir = diskTempDir();
  try {
    const sink = DirectSink.create(`${dir}/seq`, { sync: false });
    const chunk = new Uint8Array(100_000).fill(0x5a);
    let off = 0;
    for (let i = 0; i < 100; i++, off += chunk.length) sink.write(off, chunk);
    sink.finish(off);
    // 10 MB in 1 MiB windows: about 10 pwrites, not one per write() call or per block
    assert.ok(sink.stats.writeCalls <= 12, `writeCalls ${sink.stats.writeCalls}`);
    // every complete window went out with AIO (only the tail at finish is a plain pwrite)
    assert.ok(sink.stats.asyncWrites >= 9, `asyncWrites ${sink.stats.asyncWrites}`);
    assert.equal(sink.stats.bytesWritten, Math.ceil(off / 4096) * 4096);
    sink.close();
    assert.equal(Deno.statSync(`${dir}/seq`).size, off);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "DirectSink with AIO on a full file system: ENOSPC names the offset, writtenRanges is what it holds",
  ignore: Deno.uid() !== 0, // mounting a small tmpfs needs root
}, async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "vmsift-aio-full-" });
  const mount = new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir] })
    .outputSync();
  if (!mount.success) {
    Deno.removeSync(dir);
    await t.step({ name: "tmpfs mount refused here", ignore: true, fn: () => {} });
    return;
  }
  try {
    const sink = DirectSink.create(`${dir}/full`, {
      sync: false,
      windowBytes: 256 << 10,
      cacheBytes: 1 << 20,
    });
    assert.ok(sink.usesAio);
    const chunk = new Uint8Array(64 << 10);
    let off = 0;
    const err = (() => {
      try {
        for (; off < (8 << 20); off += chunk.length) sink.write(off, chunk.fill((off >> 16) + 1));
        sink.finish(off);
      } catch (e) {
        return e;
      }
      return null;
    })();
    assert.ok(err instanceof VmsiftError, `expected ENOSPC, got ${err}`);
    assert.match(String((err as Error).message), /No space left/);
    const at = (err as VmsiftError).place.offset;
    assert.equal(typeof at, "number");
    const ranges = sink.writtenRanges.ranges();
    assert.ok(ranges.length > 0 && ranges[0][0] === 0, JSON.stringify(ranges));
    assert.ok(
      !sink.writtenRanges.covers(at as number, (at as number) + 1),
      "the failed offset is not written",
    );
    sink.dropPending();
    sink.close();
    // Every byte said to be written holds what was written there.
    const got = Deno.readFileSync(`${dir}/full`);
    for (const [a, b] of ranges) {
      for (let p = a; p < Math.min(b, got.length); p += 4096) {
        assert.equal(got[p], (p >> 16) + 1, `byte ${p}`);
      }
    }
  } finally {
    new Deno.Command("umount", { args: [dir] }).outputSync();
    Deno.removeSync(dir, { recursive: true });
  }
});
