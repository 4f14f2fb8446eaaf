/**
 * The reused views of the per-page write loop (formats/kdump/pageViews.ts, formats/codecs/ffiLib.ts
 * PrefixViews): the same bytes as a subarray, one object per page or length, and a fresh subarray where
 * nothing is cached.
 */
import assert from "node:assert/strict";
import { PageViews } from "../formats/kdump/pageViews.ts";
import { PrefixViews } from "../formats/codecs/ffiLib.ts";

function filled(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(new ArrayBuffer(n));
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

Deno.test("PageViews: the bytes of subarray, one view per page of each buffer", () => {
  const ps = 4096;
  const win = filled(64 * ps, 1);
  const run = filled(16 * ps, 2);
  const v = new PageViews(ps);
  // a run in the middle of the window: page k of the run is page 10 + k of the window
  const part = win.subarray(10 * ps, 14 * ps);
  for (let k = 0; k < 4; k++) {
    const p = v.page(part, k);
    assert.deepEqual(p.byteOffset, (10 + k) * ps);
    assert.deepEqual(p.length, ps);
    assert.deepEqual(p, win.subarray((10 + k) * ps, (11 + k) * ps));
  }
  // the same page through another run view of the same buffer is the same object
  assert.equal(v.page(win.subarray(11 * ps, 12 * ps), 0), v.page(part, 1));
  // two buffers alternating keep their views
  const r0 = v.page(run, 3);
  assert.deepEqual(r0, run.subarray(3 * ps, 4 * ps));
  assert.equal(v.page(part, 0), v.page(win, 10));
  assert.equal(v.page(run, 3), r0);
  // the views see later writes to the buffer (views, not copies)
  run[3 * ps] ^= 0xff;
  assert.deepEqual(r0[0], run[3 * ps]);
});

Deno.test("PageViews: unaligned runs and large buffers get fresh subarrays with the same bytes", () => {
  const ps = 4096;
  const v = new PageViews(ps);
  const b = filled(8 * ps, 3);
  const odd = b.subarray(100, 100 + 2 * ps);
  const p = v.page(odd, 1);
  assert.deepEqual(p, b.subarray(100 + ps, 100 + 2 * ps));
  assert.notEqual(v.page(odd, 1), p);
  const big = new Uint8Array(new ArrayBuffer(16 << 20));
  big[5 * ps] = 9;
  const q = v.page(big, 5);
  assert.deepEqual(q.length, ps);
  assert.deepEqual(q[0], 9);
  assert.notEqual(v.page(big, 5), q);
});

Deno.test("PrefixViews: prefixes of the buffer, one object per length below the limit", () => {
  const b = filled(5000, 4);
  const p = new PrefixViews(b, 4096);
  const a = p.get(1234);
  assert.deepEqual(a, b.subarray(0, 1234));
  assert.equal(p.get(1234), a);
  assert.deepEqual(p.get(0).length, 0);
  const long = p.get(4500);
  assert.deepEqual(long, b.subarray(0, 4500));
  assert.notEqual(p.get(4500), long);
  b[0] ^= 1;
  assert.equal(a[0], b[0]);
});
