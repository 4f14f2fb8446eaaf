import assert from "node:assert/strict";
import {
  PageClassifier,
  PC_BAD_ORDER,
  PC_CACHE,
  PC_CACHE_PRIVATE,
  PC_FREE,
  PC_HWPOISON,
  PC_KEEP,
  PC_OFFLINE,
  PC_TAIL,
  PC_USER,
  pcClass,
  pcOrder,
  scanNeeded,
} from "../core/pageClass.ts";
import { detectPageScheme, typeMatcher } from "../core/pageTypes.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { baseVmcoreinfo, ERA, StructPages } from "./support/fakeKernel.ts";

const LRU = 1n << 4n, PRIV = 1n << 13n, SWAPCACHE = 1n << 10n, SWAPBACKED = 1n << 19n;
const HWPOISON = 1n << 23n, HEAD = 1n << 16n;

function era(name: keyof typeof ERA) {
  const scheme = detectPageScheme(VmcoreInfo.parse(baseVmcoreinfo(0xffffffff81000000n, 0n, ERA[name])));
  const bytes = new Uint8Array(1024 * 64);
  const pages = new StructPages(bytes);
  for (let i = 0; i < 1024; i++) pages.reset(i);
  const c = new PageClassifier(scheme);
  const u32 = new Uint32Array(bytes.buffer);
  /** classify struct page i as pfn `pfn` (default i) → [class, order] */
  const cls = (i: number, level: number, pfn = i) => {
    const r = c.classify(u32, bytes, i * 64, pfn, pfn % 512 !== 511, level);
    return [pcClass(r), pcOrder(r)];
  };
  return { scheme, pages, cls };
}

Deno.test("pageTypes: scheme detection from VMCOREINFO keys", () => {
  assert.equal(era("v4_15").scheme.typeScheme, "magic");
  assert.equal(era("v6_1").scheme.typeScheme, "bitclear");
  assert.equal(era("v6_7").scheme.typeScheme, "bitclear");
  assert.equal(era("v6_12").scheme.typeScheme, "topbyte");
  assert.deepEqual(era("v4_15").scheme.order, { kind: "field", offset: 20, width: 2 });
  assert.deepEqual(era("v6_1").scheme.order, { kind: "field", offset: 17, width: 1 });
  assert.deepEqual(era("v6_1").scheme.hugetlbSource, { kind: "dtorId", offset: 16, width: 1, value: 2 });
  assert.deepEqual(era("v6_7").scheme.hugetlbSource, { kind: "flags1Bit", bit: 8 });
  assert.deepEqual(era("v6_12").scheme.hugetlbSource, { kind: "mapcount" });
  assert.deepEqual(typeMatcher(-129n), { mask: -1, value: -129 });
  assert.deepEqual(typeMatcher(BigInt(0xf0000000 | 0)), { mask: 0xff000000 | 0, value: 0xf0000000 | 0 });
  assert.equal(era("v6_1").scheme.pageIsBuddy, true);
});

for (const name of ["v4_15", "v6_1", "v6_7", "v6_12"] as const) {
  Deno.test(`pageClass ${name}: buddy, cache, private, anon, hwpoison, offline`, () => {
    const { pages, cls } = era(name);
    const buddy = { v4_15: -128, v6_1: -129, v6_7: -129, v6_12: 0xf0000000 | 0 }[name];
    pages.mapcount(0, buddy).private(0, 3n);
    assert.deepEqual(cls(0, 16), [PC_FREE, 3]);
    assert.deepEqual(cls(0, 15), [PC_KEEP, 0]); // no -d 16: a buddy page is kept
    pages.private(0, 11n);
    assert.deepEqual(cls(0, 16), [PC_BAD_ORDER, 0]); // order ≥ LENGTH(zone.free_area)
    // Slab pages are never buddy/offline/anon.
    if (name === "v6_12") pages.mapcount(1, 0xf5000000 | 0);
    else pages.flags(1, 1n << (name === "v6_1" ? 9n : 7n));
    pages.mapping(1, 0xffff888000001001n);
    assert.deepEqual(cls(1, 31), [PC_KEEP, 0]);
    // Cache pages.
    pages.flags(2, LRU);
    assert.deepEqual(cls(2, 2), [PC_CACHE, 0]);
    assert.deepEqual(cls(2, 4), [PC_CACHE, 0]);
    pages.flags(3, LRU | PRIV);
    assert.deepEqual(cls(3, 2), [PC_KEEP, 0]);
    assert.deepEqual(cls(3, 4), [PC_CACHE_PRIVATE, 0]);
    pages.flags(4, SWAPCACHE | SWAPBACKED);
    assert.deepEqual(cls(4, 2), [PC_CACHE, 0]);
    pages.flags(5, SWAPCACHE); // swapcache without swapbacked is not cache (PG_swapbacked known)
    assert.deepEqual(cls(5, 6), [PC_KEEP, 0]);
    // Anon page on the LRU: user data, not cache.
    pages.flags(6, LRU | SWAPBACKED).mapping(6, 0xffff888000002001n);
    assert.deepEqual(cls(6, 6), [PC_KEEP, 0]);
    assert.deepEqual(cls(6, 8), [PC_USER, 0]);
    // hwpoison: excluded at any level.
    pages.flags(7, HWPOISON);
    assert.deepEqual(cls(7, 0), [PC_HWPOISON, 0]);
    // Offline (4.20+): excluded at any level unless slab.
    if (name !== "v4_15") {
      pages.mapcount(8, name === "v6_12" ? 0xf1000000 | 0 : -257);
      assert.deepEqual(cls(8, 0), [PC_OFFLINE, 0]);
    } else {
      pages.mapcount(8, -257);
      assert.deepEqual(cls(8, 0), [PC_KEEP, 0]); // no PAGE_OFFLINE_MAPCOUNT_VALUE: no offline pages
    }
    // Tail pages are skipped.
    pages.flags(9, LRU).compoundHead(9, 0xffffea0000000001n);
    assert.deepEqual(cls(9, 31), [PC_TAIL, 0]);
  });
}

Deno.test("pageClass v6_12: top-byte types ignore the low 24 bits; unaccepted; hugetlb by mapcount", () => {
  const { pages, cls } = era("v6_12");
  pages.mapcount(0, 0xf0000005 | 0).private(0, 2n);
  assert.deepEqual(cls(0, 16), [PC_FREE, 2]);
  pages.mapcount(1, 0xf7000000 | 0);
  assert.deepEqual(cls(1, 16), [PC_FREE, 10]); // 2^(LENGTH(zone.free_area)-1)
  // hugetlb head at 512 with order 9 in the first tail's flags (low byte).
  pages.flags(512, HEAD).mapcount(512, 0xf4000000 | 0).flags(513, 9n).compoundHead(513, 0xffffea0000008001n);
  assert.deepEqual(cls(512, 8), [PC_USER, 9]);
  assert.deepEqual(cls(512, 7), [PC_KEEP, 0]);
  assert.deepEqual(cls(513, 8), [PC_TAIL, 0]);
});

Deno.test("pageClass v6_7: PG_hugetlb in the first tail, order in its low flags byte", () => {
  const { pages, cls } = era("v6_7");
  pages.flags(512, HEAD).flags(513, (1n << 8n) | 9n);
  assert.deepEqual(cls(512, 8), [PC_USER, 9]);
  pages.flags(513, 2n); // not hugetlb, order 2: a cache folio
  pages.flags(512, HEAD | LRU);
  assert.deepEqual(cls(512, 2), [PC_CACHE, 2]);
});

Deno.test("pageClass v6_1 / v4_15: compound order and dtor in the first tail, width by era", () => {
  const a = era("v6_1");
  a.pages.flags(512, HEAD).byte(513, 16, 2).byte(513, 17, 9);
  assert.deepEqual(a.cls(512, 8), [PC_USER, 9]); // hugetlb dtor 2
  a.pages.byte(513, 16, 1).flags(512, HEAD | LRU).byte(513, 17, 3);
  assert.deepEqual(a.cls(512, 2), [PC_CACHE, 3]);
  assert.deepEqual(a.cls(512, 8), [PC_KEEP, 0]);
  // Misaligned head (pfn not a multiple of 2^order) → order 0.
  assert.deepEqual(a.cls(512, 2, 514), [PC_CACHE, 0]);
  // Order ≥ 64 → 0.
  a.pages.byte(513, 17, 70);
  assert.deepEqual(a.cls(512, 2), [PC_CACHE, 0]);
  // Head at the last slot of a 512-group: its tail is not looked at → order 0 (makedumpfile PGMM_CACHED).
  a.pages.flags(511, HEAD | LRU).byte(512, 17, 1);
  assert.deepEqual(a.cls(511, 2), [PC_CACHE, 0]);
  const b = era("v4_15");
  b.pages.flags(512, HEAD | LRU).u32(513, 16, 1).u32(513, 20, 0x10004); // u16 read: order 4
  assert.deepEqual(b.cls(512, 2), [PC_CACHE, 4]);
  b.pages.u32(513, 16, 2);
  assert.deepEqual(b.cls(512, 8), [PC_USER, 4]);
});

Deno.test("pageClass: scanNeeded follows makedumpfile (hwpoison known → scan even at -d 0)", () => {
  const withHw = era("v6_1").scheme;
  assert.equal(scanNeeded(withHw, 0), true);
  const noHw = detectPageScheme(
    VmcoreInfo.parse(
      baseVmcoreinfo(0xffffffff81000000n, 0n, ERA.v6_1).replace("NUMBER(PG_hwpoison)=23\n", ""),
    ),
  );
  assert.equal(noHw.pgHwpoison, undefined);
  assert.equal(scanNeeded(noHw, 0), false);
  assert.equal(scanNeeded(noHw, 1), false);
  assert.equal(scanNeeded(noHw, 16), true);
  assert.equal(scanNeeded(noHw, 2), true);
});
