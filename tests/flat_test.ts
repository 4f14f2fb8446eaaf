import assert from "node:assert/strict";
import { tempDirTests } from "./support/run.ts";
import { VmsiftError } from "../core/errors.ts";
import { FileSink } from "../io/fileSink.ts";
import { FlatSink } from "../formats/flatSink.ts";
import { type ByteSource, encodeFlatHeader, FlatReader, isFlattened } from "../formats/flatReader.ts";
import { rebuildFlat, rebuildFlatToFile } from "../formats/flatRebuild.ts";
import { uniform32 } from "./support/mutate.ts";
import { IntervalSet } from "../io/intervalSet.ts";

/** Collects a stream in memory; writes at most `maxPerCall` bytes per call (short writes must be retried). */
class Collector {
  parts: Uint8Array[] = [];
  length = 0;
  calls = 0;
  constructor(readonly maxPerCall = Infinity) {}
  writeSync(p: Uint8Array): number {
    const n = Math.min(p.length, this.maxPerCall);
    this.parts.push(p.slice(0, n));
    this.length += n;
    this.calls++;
    return n;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Reads from a byte array in pieces of at most `step` bytes (like a pipe). */
function source(bytes: Uint8Array, step = 7777): ByteSource {
  let pos = 0;
  return {
    readSync(p: Uint8Array): number | null {
      if (pos >= bytes.length) return null;
      const n = Math.min(p.length, step, bytes.length - pos);
      p.set(bytes.subarray(pos, pos + n));
      pos += n;
      return n;
    },
  };
}

interface Op {
  kind: "write" | "rewrite";
  offset: number;
  bytes: Uint8Array;
}

/**
 * A random writer-like pattern: a header area (0..8 KiB) written first and rewritten at the end, two
 * interleaved growing regions (descriptor-cache and data-cache style) flushed in random-size pieces, a few
 * isolated writes with gaps, and rewrites of the most recent bytes (still in the gathering buffer).
 */
function randomOps(seed: number): { ops: Op[]; size: number } {
  const r = uniform32(seed);
  const ops: Op[] = [];
  const fill = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
    return b;
  };
  ops.push({ kind: "write", offset: 0, bytes: fill(464) });
  ops.push({ kind: "write", offset: 4096, bytes: fill(104 + ((r() * 3000) | 0)) });
  let desc = 8192 + ((r() * 4) | 0) * 4096;
  const descEnd = desc + 60000 + ((r() * 50000) | 0);
  let data = descEnd + ((r() * 3) | 0) * 4096;
  let lastData: { offset: number; n: number } | null = null;
  while (desc < descEnd) {
    if (r() < 0.5) {
      const n = Math.min(descEnd - desc, 1 + ((r() * 9000) | 0));
      ops.push({ kind: "write", offset: desc, bytes: fill(n) });
      desc += n;
    } else {
      const n = 1 + ((r() * 70000) | 0);
      ops.push({ kind: "write", offset: data, bytes: fill(n) });
      lastData = { offset: data, n };
      data += n;
      if (r() < 0.2 && lastData) {
        // Rewrite part of the bytes just written: still in FlatSink's gathering buffer.
        const k = Math.min(lastData.n, 1 + ((r() * 100) | 0));
        ops.push({ kind: "rewrite", offset: lastData.offset + lastData.n - k, bytes: fill(k) });
      }
    }
  }
  // A gap then isolated writes.
  data += 12345;
  for (let i = 0; i < 5; i++) {
    const n = 1 + ((r() * 5000) | 0);
    ops.push({ kind: "write", offset: data, bytes: fill(n) });
    data += n + ((r() * 9000) | 0);
  }
  // Header rewrites at the end (status flag, sub header update).
  ops.push({ kind: "rewrite", offset: 20, bytes: fill(4) });
  ops.push({ kind: "rewrite", offset: 4096 + 40, bytes: fill(16) });
  const size = data + ((r() * 2) | 0) * 777; // sometimes a size past the last write
  return { ops, size };
}

const { tmp, test } = tempDirTests("vmsift-flat-");

function playToFile(ops: Op[], size: number, path: string): Uint8Array {
  const s = FileSink.create(path);
  for (const o of ops) o.kind === "write" ? s.write(o.offset, o.bytes) : s.rewrite(o.offset, o.bytes);
  s.finish(size);
  s.close();
  return Deno.readFileSync(path);
}

/**
 * Play `ops` into a FlatSink. A rewrite of bytes already streamed (possible for the random rewrites of
 * recent data) is refused by FlatSink; canRewrite tells which, and those ops are dropped from `ops` so the
 * FileSink reference sees the same sequence.
 */
function playToFlat(
  ops: Op[],
  size: number,
  opts = { recordSize: 4096, holdBytes: 8192 },
  c = new Collector(),
) {
  const s = new FlatSink(c, "mem", opts);
  const kept: Op[] = [];
  for (const o of ops) {
    if (o.kind === "write") s.write(o.offset, o.bytes);
    else if (s.canRewrite(o.offset, o.bytes.length)) s.rewrite(o.offset, o.bytes);
    else {
      assert.throws(() => s.rewrite(o.offset, o.bytes), VmsiftError);
      continue;
    }
    kept.push(o);
  }
  ops.splice(0, ops.length, ...kept);
  s.finish(size);
  s.close();
  return c.bytes();
}

/** Records of a stream: [offset, size] in stream order, checked to be disjoint and non-empty. */
function records(stream: Uint8Array): Array<[number, number]> {
  const reader = new FlatReader(source(stream), "mem");
  const recs: Array<[number, number]> = [];
  let last = -1;
  for (const c of reader.chunks()) {
    if (c.record !== last) recs.push([c.offset, 0]);
    recs[recs.length - 1][1] += c.bytes.length;
    last = c.record;
  }
  return recs;
}

function equalBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: first difference at byte 0x${i.toString(16)}`);
  }
}

function haveMakedumpfile(): boolean {
  try {
    return new Deno.Command("makedumpfile", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

async function makedumpfileRAsync(streamPath: string, outPath: string): Promise<void> {
  const f = await Deno.open(streamPath);
  const child = new Deno.Command("makedumpfile", {
    args: ["-R", outPath],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await f.readable.pipeTo(child.stdin);
  const out = await child.output();
  if (!out.success) throw new Error(`makedumpfile -R failed: ${new TextDecoder().decode(out.stderr)}`);
}

test("flat header: 4096 bytes, signature + NULs, BE type 1, version 1", () => {
  const h = encodeFlatHeader();
  assert.equal(h.length, 4096);
  assert.deepEqual([...h.subarray(0, 16)], [...new TextEncoder().encode("makedumpfile"), 0, 0, 0, 0]);
  assert.deepEqual([...h.subarray(16, 32)], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.ok(h.subarray(32).every((b) => b === 0));
  assert.ok(isFlattened(h));
});

test("IntervalSet merges, detects overlap and coverage", () => {
  const s = new IntervalSet();
  s.add(10, 20);
  s.add(30, 40);
  s.add(20, 25); // adjacent: merges
  assert.deepEqual(s.ranges(), [[10, 25], [30, 40]]);
  assert.ok(s.overlaps(24, 26));
  assert.ok(!s.overlaps(25, 30));
  assert.ok(s.covers(12, 25));
  assert.ok(!s.covers(12, 31));
  s.add(0, 100);
  assert.deepEqual(s.ranges(), [[0, 100]]);
  s.add(200, 210);
  s.add(150, 160);
  assert.deepEqual(s.ranges(), [[0, 100], [150, 160], [200, 210]]);
  assert.equal(s.max, 210);
});

test("FlatSink -> rebuildFlat gives the same bytes as FileSink (random patterns with rewrites)", () => {
  for (let seed = 1; seed <= 12; seed++) {
    const { ops, size } = randomOps(seed * 7919);
    const c = new Collector(seed % 3 === 0 ? 1000 : Infinity); // short writes on some seeds
    const stream = playToFlat(ops, size, { recordSize: 4096, holdBytes: 8192 }, c);
    assert.ok(
      ops.some((o) => o.kind === "rewrite" && o.offset >= 8192),
      "some rewrites hit the gathering buffer",
    );
    const ref = playToFile(ops, size, tmp("ref.bin"));
    // Never empty, never overlapping; batched up to the record size.
    const recs = records(stream);
    const seen = new IntervalSet();
    for (const [o, n] of recs) {
      assert.ok(n > 0 && n <= 4096, `record size ${n}`);
      assert.ok(!seen.overlaps(o, o + n), `record at 0x${o.toString(16)} overlaps`);
      seen.add(o, o + n);
    }
    const writes = ops.filter((o) => o.kind === "write").length;
    assert.ok(recs.length < writes + size / 4096 + 4, "small writes are batched");
    const out = tmp("rebuilt.bin");
    const sink = FileSink.create(out);
    const res = rebuildFlat(new FlatReader(source(stream), "mem"), sink);
    sink.close();
    assert.equal(res.overlapping, 0);
    equalBytes(Deno.readFileSync(out), ref, `seed ${seed}`);
  }
});

test("FlatSink: buffered output, header held back, default sizes", () => {
  const c = new Collector();
  const s = new FlatSink(c);
  for (let i = 0; i < 1000; i++) s.write(2 << 20 | (i * 100), new Uint8Array(100).fill(i & 0xff));
  s.write(0, new Uint8Array(64).fill(0xee));
  s.rewrite(48, new Uint8Array([1, 2, 3, 4]));
  s.finish((2 << 20) + 100000);
  assert.ok(c.calls <= 4, `${c.calls} stream writes`);
  const recs = records(c.bytes());
  // Data first, the held header last (after the rewrite was applied in memory).
  assert.deepEqual(recs, [[2 << 20, 100000], [0, 64]]);
});

test("FlatSink refuses to stream overlapping bytes", () => {
  const s = new FlatSink(new Collector(), "mem", { recordSize: 4096, holdBytes: 4096 });
  s.write(8192, new Uint8Array(5000)); // 4096 sent, 904 pending
  assert.throws(() => s.rewrite(8192, new Uint8Array(4)), VmsiftError); // already sent
  s.rewrite(8192 + 4096 + 10, new Uint8Array(4)); // still pending: patched
  assert.throws(() => s.write(8200, new Uint8Array(4)), VmsiftError);
  assert.throws(() => s.finish(100), VmsiftError); // a stream cannot be cut
});

test("FlatSink finish past the data emits one zero byte so the rebuilt size is right", () => {
  const c = new Collector();
  const s = new FlatSink(c, "mem", { holdBytes: 0 });
  s.write(10, new Uint8Array([1, 2, 3]));
  s.finish(1000);
  assert.deepEqual(records(c.bytes()), [[10, 3], [999, 1]]);
  assert.throws(() => s.write(0, new Uint8Array(1)), VmsiftError);
});

function stream(recs: Array<[bigint, bigint, number?]>, header = encodeFlatHeader()): Uint8Array {
  const parts: Uint8Array[] = [header];
  for (const [o, n, payload] of recs) {
    const h = new Uint8Array(16);
    const dv = new DataView(h.buffer);
    dv.setBigInt64(0, o, false);
    dv.setBigInt64(8, n, false);
    parts.push(h);
    if (n > 0n) parts.push(new Uint8Array(payload ?? Number(n)).fill(0x5a));
  }
  const len = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function expectError(bytes: Uint8Array, re: RegExp, offset?: number): void {
  const r = new FlatReader(source(bytes, 100), "bad.flat", { maxRecordSize: 1 << 20 });
  try {
    for (const _ of r.chunks()) { /* drain */ }
  } catch (e) {
    assert.ok(e instanceof VmsiftError, `not a VmsiftError: ${e}`);
    assert.match(e.message, re);
    assert.equal(e.place.file, "bad.flat");
    if (offset !== undefined) assert.equal(e.place.offset, offset);
    return;
  }
  assert.fail(`no error for ${re}`);
}

test("FlatReader rejects malformed streams with the stream offset", () => {
  const good = stream([[0n, 10n], [-1n, -1n]]);
  let n = 0;
  for (const c of new FlatReader(source(good), "ok").chunks()) n += c.bytes.length;
  assert.equal(n, 10);
  for (let i = 12; i < 16; i++) {
    const h = encodeFlatHeader();
    h[i] = 0x41; // "makedumpfileA..." passes a strcmp-less check but not all 16 bytes
    expectError(stream([[0n, 1n], [-1n, -1n]], h), /signature/, i);
  }
  const badSig = encodeFlatHeader();
  badSig[0] = 0x4d;
  expectError(stream([[-1n, -1n]], badSig), /signature/, 0);
  const badType = encodeFlatHeader();
  badType[23] = 2;
  expectError(stream([[-1n, -1n]], badType), /type 2/, 16);
  const badVersion = encodeFlatHeader();
  badVersion[31] = 3;
  expectError(stream([[-1n, -1n]], badVersion), /version 3/, 24);
  expectError(stream([[0n, 10n], [100n, 0n], [-1n, -1n]]), /zero-length/, 4096 + 26);
  expectError(stream([[-5n, 10n], [-1n, -1n]]), /negative offset/, 4096);
  expectError(stream([[0n, -2n], [-1n, -1n]]), /negative size/, 4096);
  expectError(stream([[-1n, 0n]]), /negative offset/, 4096);
  expectError(stream([[0n, 2n << 20n], [-1n, -1n]]), /exceeds the limit/, 4096);
  expectError(stream([[0x1fffffffffffffn, 10n], [-1n, -1n]]), /out of range/, 4096);
  expectError(stream([[0n, 10n]]), /end marker/, 4096 + 26);
  expectError(stream([[0n, 100n, 50]]), /truncated/, 4096 + 16 + 50);
  expectError(good.subarray(0, 4096 + 8), /record header truncated/, 4096);
  expectError(good.subarray(0, 100), /header truncated/, 0);
  expectError(new Uint8Array(0), /header truncated/, 0);
});

test("rebuildFlat replays overlapping records in order (later wins), like makedumpfile -R", () => {
  const parts = stream([[0n, 8n], [4n, 8n], [-1n, -1n]]);
  // Make the payloads distinguishable.
  parts.fill(1, 4096 + 16, 4096 + 24);
  parts.fill(2, 4096 + 40, 4096 + 48);
  const out = tmp("ovl.bin");
  const res = rebuildFlatToFile(source(parts), "mem", out);
  assert.equal(res.overlapping, 1);
  assert.equal(res.fileSize, 12);
  assert.deepEqual([...Deno.readFileSync(out)], [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
});

test("rebuildFlatToFile removes the output on a bad stream", () => {
  const out = tmp("gone.bin");
  assert.throws(() => rebuildFlatToFile(source(stream([[0n, 10n]])), "mem", out), VmsiftError);
  assert.throws(() => Deno.statSync(out), Deno.errors.NotFound);
});

test({
  name: "makedumpfile -R accepts our stream and rebuilds identical bytes",
  ignore: !haveMakedumpfile(),
  fn: async () => {
    for (const seed of [3, 4, 5]) {
      const { ops, size } = randomOps(seed * 104729);
      const streamPath = tmp("s.flat");
      Deno.writeFileSync(streamPath, playToFlat(ops, size));
      const ref = playToFile(ops, size, tmp("ref.bin"));
      const out = tmp("r.bin");
      await makedumpfileRAsync(streamPath, out);
      equalBytes(Deno.readFileSync(out), ref, `makedumpfile -R seed ${seed}`);
    }
  },
});

test("FlatSink holdAt: only the held window waits for finish; rewrites land there, nothing overlaps", () => {
  // -F with ERASEINFO: the 16 bytes of the sub header's eraseinfo fields (block 1 + 64) are rewritten after
  // the page data; the main header's record must still come first.
  const c = new Collector();
  const s = new FlatSink(c, "mem", { recordSize: 4096, holdAt: 4096 + 64, holdBytes: 16 });
  const head = new Uint8Array(8192).map((_, i) => i & 0xff);
  s.write(0, head);
  s.write(8192, new Uint8Array(3000).fill(7));
  assert.ok(s.canRewrite(4096 + 64, 16));
  assert.ok(!s.canRewrite(4096 + 48, 16)); // overlaps streamed bytes
  assert.throws(() => s.rewrite(4096, new Uint8Array(80)), VmsiftError);
  s.write(11192, new Uint8Array([0x65, 0x72]));
  s.rewrite(4096 + 64, new Uint8Array(16).fill(0xee));
  s.finish(11194);
  const recs = records(c.bytes());
  assert.deepEqual(recs[0], [0, 4096]); // the main header first
  assert.deepEqual(recs[recs.length - 1], [4096 + 64, 16]); // the held bytes last
  const covered = recs.reduce((a, [, n]) => a + n, 0);
  assert.equal(covered, 11194); // every byte once
  const out = new Uint8Array(11194);
  for (const ch of new FlatReader(source(c.bytes()), "mem").chunks()) out.set(ch.bytes, ch.offset);
  const want = new Uint8Array(11194);
  want.set(head);
  want.fill(0xee, 4096 + 64, 4096 + 80);
  want.fill(7, 8192, 11192);
  want.set([0x65, 0x72], 11192);
  equalBytes(out, want, "rebuilt");
});
