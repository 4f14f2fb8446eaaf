import assert from "node:assert/strict";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { excludeUnnecessaryPages } from "../core/scan.ts";
import { ERA } from "./support/fakeKernel.ts";
import { fakeDump, NPFN } from "./support/fakeDump.ts";

const LRU = 1n << 4n, PRIV = 1n << 13n, SWAPBACKED = 1n << 19n, HWPOISON = 1n << 23n, HEAD = 1n << 16n;
const VMEMMAP_TAIL = (head: number) => 0xffffea0000000000n + BigInt(head * 64) + 1n;

/** A constructed 6.1-style dump with one page of every kind; vmemmap page 120 (pfns 0x1e00-0x1e3f) unmapped. */
function build(extra: string[] = []) {
  const d = fakeDump(ERA.v6_1, { unmappedVmemmapPage: 120, extra });
  const p = d.pages;
  p.mapcount(0x80, -129).private(0x80, 6n); // order-6 buddy over the hole 0xa0-0xbf (counted whole)
  p.mapcount(0x1000, -129).private(0x1000, 3n); // free 8
  p.flags(0x1400, HEAD | LRU).byte(0x1401, 17, 2); // cache folio of 4
  for (let i = 1; i < 4; i++) p.compoundHead(0x1400 + i, VMEMMAP_TAIL(0x1400));
  p.flags(0x1500, LRU | PRIV); // private cache
  p.flags(0x1600, LRU | SWAPBACKED).mapping(0x1600, 0xffff888000003001n); // anon
  p.flags(0x1800, HEAD).byte(0x1801, 16, 2).byte(0x1801, 17, 9); // hugetlb 512
  for (let i = 1; i < 512; i++) p.compoundHead(0x1800 + i, VMEMMAP_TAIL(0x1800));
  p.flags(0x1a00, HWPOISON);
  p.mapcount(0x1a01, -257); // offline
  p.mapcount(0x1a02, -257).flags(0x1a02, 1n << 9n); // offline + slab: kept
  p.mapcount(0x1a03, -129).private(0x1a03, 11n); // bad buddy order: kept
  p.flags(0x1bff, HEAD | LRU).byte(0x1c00, 17, 1).compoundHead(0x1c00, VMEMMAP_TAIL(0x1bff)); // head at 511
  p.flags(NPFN - 1, LRU); // last pfn
  return d;
}

Deno.test("scan (synthetic 6.1): counts per level, ranges, hole, unreadable struct pages", () => {
  const d = build();
  const model = buildMemoryModel(d.phys, d.info());
  assert.equal(model.maxMapnr, NPFN);
  assert.equal(model.kernelImage, undefined);
  const expect: Record<number, Record<string, number>> = {
    0: { cache: 0, cachePrivate: 0, user: 0, free: 0, hwpoison: 1, offline: 1 },
    2: { cache: 4 + 1 + 1, cachePrivate: 0, user: 0, free: 0, hwpoison: 1, offline: 1 },
    4: { cache: 6, cachePrivate: 1, user: 0, free: 0, hwpoison: 1, offline: 1 },
    8: { cache: 0, cachePrivate: 0, user: 1 + 512, free: 0, hwpoison: 1, offline: 1 },
    16: { cache: 0, cachePrivate: 0, user: 0, free: 64 + 8, hwpoison: 1, offline: 1 },
    31: { cache: 6, cachePrivate: 1, user: 513, free: 72, hwpoison: 1, offline: 1 },
  };
  for (const [lvl, want] of Object.entries(expect)) {
    const { b1, b2 } = d.bitmaps(model.maxMapnr);
    const r = excludeUnnecessaryPages(model, Number(lvl), b1, b2, { chunkPages: 1024 });
    const c = r.counts;
    assert.deepEqual(
      {
        cache: c.cache,
        cachePrivate: c.cachePrivate,
        user: c.user,
        free: c.free,
        hwpoison: c.hwpoison,
        offline: c.offline,
      },
      want,
      `level ${lvl}`,
    );
    assert.equal(c.keptUnreadable, 64, `level ${lvl}`);
    assert.equal(c.keptNoMemMap, 0);
    assert.equal(c.badBuddyOrder, Number(lvl) & 16 ? 1 : 0);
    // Bitmap 2 lost exactly the excluded present pages (the 32 hole pfns of the buddy block were not set).
    const excludedPresent = want.cache + want.cachePrivate + want.user + want.free + 2 -
      (Number(lvl) & 16 ? 32 : 0);
    assert.equal(b1.popcount() - b2.popcount(), excludedPresent, `level ${lvl}`);
    assert.equal(r.ran, true);
    assert.equal(r.vmemmapBytesRead, NPFN * 64 - 4096); // one pass, minus the unmapped vmemmap page
  }
  // The hugetlb folio's pages really are cleared; the private-cache page survives -d 2.
  const { b1, b2 } = d.bitmaps(model.maxMapnr);
  excludeUnnecessaryPages(model, 8, b1, b2);
  assert.equal(b2.popcount(0x1800, 0x1a00), 0);
  assert.equal(b2.get(0x17ff), true);
  const m2 = d.bitmaps(model.maxMapnr);
  excludeUnnecessaryPages(model, 2, m2.b1, m2.b2);
  assert.equal(m2.b2.get(0x1500), true);
  assert.equal(m2.b2.get(0x1bff), false);
  assert.equal(m2.b2.get(0x1c00), true); // head at a 512-group end: its order is not read
});

Deno.test("scan (synthetic): kernel image pages are never excluded and are counted", () => {
  // _stext.._end covering pfns 0x1400-0x1401 (half of the cache folio) and the offline page 0x1a01.
  const d = build(["SYMBOL(_stext)=ffffffff81400000", "SYMBOL(_end)=ffffffff81402000"]);
  const model = buildMemoryModel(d.phys, d.info());
  assert.deepEqual(model.kernelImage, { startPfn: 0x1400, endPfn: 0x1402, source: "_stext.._end" });
  const { b1, b2 } = d.bitmaps(model.maxMapnr);
  const r = excludeUnnecessaryPages(model, 2, b1, b2);
  assert.equal(r.counts.keptKernelImage, 2);
  assert.equal(r.counts.cache, 6 - 2);
  assert.equal(b2.get(0x1400), true);
  assert.equal(b2.get(0x1401), true);
  assert.equal(b2.get(0x1402), false);
});

Deno.test("scan (synthetic): no scan at -d 0/1 without PG_hwpoison", () => {
  const d = build();
  const text = d.lines.join("\n").replace("NUMBER(PG_hwpoison)=23\n", "");
  d.lines.splice(0, d.lines.length, text);
  const model = buildMemoryModel(d.phys, d.info());
  const { b1, b2 } = d.bitmaps(model.maxMapnr);
  const r = excludeUnnecessaryPages(model, 1, b1, b2);
  assert.equal(r.ran, false);
  assert.equal(r.counts.offline, 0);
  assert.equal(b2.popcount(), b1.popcount());
});
