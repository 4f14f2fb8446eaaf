import assert from "node:assert/strict";
import { MemBitmap, type PfnBitmap } from "../core/bitmap.ts";
import { VmsiftError } from "../core/errors.ts";
import { createBitmaps, FileBitmap } from "../io/fileBitmap.ts";
import { O_DIRECT } from "../io/libc.ts";

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function diskTempDir(): string {
  return Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "vmsift-io-test-" });
}

function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`));
  assert.ok(m);
  return parseInt(m[1], 8);
}

function assertSameBytes(a: PfnBitmap, b: PfnBitmap, off: number, len: number): void {
  const x = new Uint8Array(len);
  const y = new Uint8Array(len).fill(0xee);
  a.readBytes(off, x);
  b.readBytes(off, y);
  assert.deepEqual(y, x, `readBytes(${off}, ${len})`);
}

Deno.test("FileBitmap and MemBitmap match a bit-per-byte model under random operations, tiny cache", () => {
  const dir = diskTempDir();
  try {
    for (const nbits of [3_000_001, 65_536 * 8, 77]) {
      const r = rng(nbits);
      const mem = new MemBitmap(nbits);
      // the independent model: one byte per bit, no byte arithmetic (both backends share forBitRange)
      const model = new Uint8Array(nbits);
      const modelCount = (a: number, b: number) => {
        let n = 0;
        for (let q = a; q < Math.min(b, nbits); q++) n += model[q];
        return n;
      };
      // 4 KiB blocks, 3 of them cached: almost every jump evicts a dirty block
      const fb = FileBitmap.create(nbits, { dir, blockBytes: 4096, cacheBytes: 3 * 4096 });
      assert.equal(fb.direct, true);
      assert.ok(fdFlags(fb.fd) & O_DIRECT);
      const pick = () => Math.floor(r() * nbits);
      for (let i = 0; i < 20_000; i++) {
        const k = r();
        const p = pick();
        if (k < 0.25) {
          mem.set(p);
          fb.set(p);
          model[p] = 1;
        } else if (k < 0.4) {
          mem.clear(p);
          fb.clear(p);
          model[p] = 0;
        } else if (k < 0.6) {
          assert.equal(fb.get(p), mem.get(p), `get(${p})`);
          assert.equal(mem.get(p), model[p] === 1, `model get(${p})`);
        } else if (k < 0.75) {
          const e = Math.min(nbits + 20, p + Math.floor(r() * (r() < 0.5 ? 100 : 200_000)));
          mem.setRange(p, e);
          fb.setRange(p, e);
          model.fill(1, p, Math.min(e, nbits));
        } else if (k < 0.88) {
          const e = Math.min(nbits + 20, p + Math.floor(r() * (r() < 0.5 ? 100 : 200_000)));
          mem.clearRange(p, e);
          fb.clearRange(p, e);
          model.fill(0, p, Math.min(e, nbits));
        } else if (k < 0.95) {
          const e = Math.min(nbits, p + Math.floor(r() * 300_000));
          assert.equal(fb.popcount(p, e), mem.popcount(p, e), `popcount(${p}, ${e})`);
          assert.equal(mem.popcount(p, e), modelCount(p, e), `model popcount(${p}, ${e})`);
        } else {
          const off = Math.floor(p / 8);
          assertSameBytes(mem, fb, off, Math.floor(r() * 20_000));
        }
      }
      assert.equal(fb.popcount(), mem.popcount());
      assert.equal(mem.popcount(), modelCount(0, nbits));
      for (let q = 0; q < nbits; q++) if (mem.get(q) !== (model[q] === 1)) assert.fail(`model bit ${q}`);
      assertSameBytes(mem, fb, 0, Math.ceil(nbits / 8) + 100);
      if (nbits > 100_000) assert.ok(fb.cache.stats.writeCalls > 10 && fb.cache.stats.readCalls > 10);
      fb.close();
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no bitmap file left behind");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBitmap: the file is unlinked at once and gone after close", () => {
  const dir = diskTempDir();
  try {
    const fb = FileBitmap.create(1 << 20, { dir });
    assert.throws(() => Deno.statSync(fb.path), Deno.errors.NotFound);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const link = Deno.readLinkSync(`/proc/self/fd/${fb.fd}`);
    assert.ok(link.startsWith(dir) && link.endsWith("(deleted)"), link);
    fb.setRange(0, 1 << 20);
    fb.flush();
    assert.equal(fb.popcount(), 1 << 20);
    const fd = fb.fd;
    fb.close();
    let still = "";
    try {
      still = Deno.readLinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // closed
    }
    assert.ok(!still.startsWith(dir), `fd ${fd} still open on ${still}`);
    assert.throws(
      () => FileBitmap.create(100, { dir: `${dir}/missing` }),
      (e) => e instanceof VmsiftError && /bitmap file/.test(e.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBitmap handles pfns beyond 2^32 (16 TiB of 4 KiB pages)", () => {
  const dir = diskTempDir();
  try {
    const nbits = 2 ** 33 + 100; // 1 GiB sparse file, only touched blocks written
    const fb = FileBitmap.create(nbits, { dir, cacheBytes: 256 << 10 });
    const hi = 2 ** 32 + 5;
    fb.set(hi);
    fb.set(5);
    fb.setRange(nbits - 1000, nbits + 50);
    assert.equal(fb.get(hi), true);
    assert.equal(fb.get(5), true);
    assert.equal(fb.get(hi - 2 ** 32 + 1), false);
    assert.equal(fb.popcount(2 ** 32, 2 ** 32 + 64), 1);
    assert.equal(fb.popcount(nbits - 2000, nbits), 1000);
    const out = new Uint8Array(2);
    fb.readBytes(Math.floor(hi / 8), out);
    assert.deepEqual([...out], [1 << (hi & 7), 0]);
    fb.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("createBitmaps: memory when both fit the budget, files otherwise", () => {
  const dir = diskTempDir();
  try {
    const nbits = 8 << 20; // 1 MiB per bitmap
    const m = createBitmaps(nbits, { budgetBytes: 2 << 20, dir });
    assert.equal(m.mode, "memory");
    assert.ok(m.bitmap1 instanceof MemBitmap && m.bitmap2 instanceof MemBitmap);
    assert.match(m.description, /memory/);
    m.close();

    const f = createBitmaps(nbits, { budgetBytes: (2 << 20) - 1, dir });
    assert.equal(f.mode, "file");
    assert.ok(f.bitmap1 instanceof FileBitmap && f.bitmap2 instanceof FileBitmap);
    assert.match(f.description, /files in .*O_DIRECT/);
    assert.ok((f.bitmap1 as FileBitmap).cache.cacheBytes <= (1 << 20));
    f.bitmap1.setRange(10, 20);
    f.bitmap2.set(15);
    assert.equal(f.bitmap1.popcount(), 10);
    assert.equal(f.bitmap2.popcount(), 1);
    f.close();
    assert.deepEqual([...Deno.readDirSync(dir)], []);

    assert.throws(() => createBitmaps(nbits, { budgetBytes: 1 << 20 }), VmsiftError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBitmap sequential set and readBytes streaming speed (reported, not asserted)", () => {
  const dir = diskTempDir();
  try {
    const nbits = 64 << 20; // 64 Mi pfns = 256 GiB of RAM, 8 MiB per bitmap
    const line: string[] = [];
    for (
      const [name, bm] of [
        ["MemBitmap", new MemBitmap(nbits)],
        ["FileBitmap (1 MiB cache)", FileBitmap.create(nbits, { dir, cacheBytes: 1 << 20 })],
      ] as [string, PfnBitmap][]
    ) {
      let t = performance.now();
      for (let p = 0; p < nbits; p += 2) bm.set(p);
      const tSet = performance.now() - t;
      t = performance.now();
      bm.clearRange(nbits / 4, nbits / 2);
      const out = new Uint8Array(64 << 10);
      let sum = 0;
      for (let off = 0; off < nbits / 8; off += out.length) {
        bm.readBytes(off, out);
        sum += out[0];
      }
      const tRead = performance.now() - t;
      t = performance.now();
      const pc = bm.popcount();
      const tPop = performance.now() - t;
      assert.equal(pc, nbits / 2 - nbits / 8);
      assert.ok(sum > 0);
      line.push(
        `${name}: set every 2nd of 64 Mi bits ${tSet.toFixed(0)} ms, clearRange+readBytes ${
          tRead.toFixed(0)
        } ms, popcount ${tPop.toFixed(0)} ms`,
      );
      bm.close();
    }
    console.log(line.join("\n"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("FileBitmap: writes after flush() are not lost on eviction", () => {
  const dir = diskTempDir();
  try {
    const fb = FileBitmap.create(1 << 20, { dir, blockBytes: 4096, cacheBytes: 2 * 4096 });
    fb.set(1);
    fb.flush();
    fb.set(2); // same block, now clean in the cache: must be marked dirty again
    for (let p = 0; p < 1 << 20; p += 4096 * 8) fb.get(p + 3); // evict everything
    assert.equal(fb.get(1), true);
    assert.equal(fb.get(2), true);
    assert.equal(fb.popcount(), 2);
    fb.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
