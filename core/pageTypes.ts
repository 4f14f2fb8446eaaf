/**
 * The struct-page layout and page-type scheme of a kernel, chosen once from which VMCOREINFO keys exist and
 * what they say — never from the kernel version (kdump-reference.md sections 7.2-7.3).
 *
 * Page types live in `_mapcount` (page_type). Three encodings over time, all compared as int32 with the
 * exported NUMBER(...):
 * - "magic" (2.6.38-4.17): PAGE_BUDDY_MAPCOUNT_VALUE = -128, compared exactly.
 * - "bitclear" (4.18-6.11): page_type starts at -1 and a type clears one bit (buddy ~0x80 = -129, offline
 *   ~0x100, slab ~0x1000 on 6.10); compared exactly, as makedumpfile does.
 * - "topbyte" (6.12+): the type is the top byte (0xf0 buddy, 0xf1 offline, 0xf4 hugetlb, 0xf5 slab, 0xf7
 *   unaccepted...) and the owner may use the low 24 bits: when an exported value has its low 24 bits zero
 *   and top byte ≥ 0xf0, only the top byte is compared.
 * A matcher is a (mask, value) pair of int32 so the hot loop tests `(mapcount & mask) === value`.
 */
import { VmsiftError } from "./errors.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Test `(x & mask) === value` on int32; `NEVER` never matches. */
export interface TypeMatcher {
  /** Bits of the tested int32 that matter. */
  mask: number;
  /** Their value for a match. */
  value: number;
}

/** A matcher that never matches (the type does not exist in this kernel). */
const NEVER: TypeMatcher = Object.freeze({ mask: 0, value: 1 });

/** How a kernel encodes page types in struct page (page_type magic, cleared bits, top byte, or none). */
export type PageTypeSchemeName = "magic" | "bitclear" | "topbyte" | "none";

/** Where the compound order of a compound head is found (in its first tail page). */
export type OrderSource =
  | { kind: "none" }
  /** 6.6+: low byte of the first tail's flags (folio._flags_1). */
  | { kind: "flags1" }
  /** u8 (4.16+, folio 6.3-6.5) or u16 (4.4-4.15) at a byte offset in the first tail. */
  | { kind: "field"; offset: number; width: 1 | 2 }
  /** < 4.4: the first tail's lru.prev (low 16 bits suffice, orders < 64). */
  | { kind: "lruPrev"; offset: number };

/** How a hugetlb compound page is recognised. */
export type HugetlbSource =
  | { kind: "none" }
  /** 6.9+: head's _mapcount == PAGE_HUGETLB_MAPCOUNT_VALUE. */
  | { kind: "mapcount" }
  /** 6.6-6.8: PG_hugetlb bit in the first tail's flags. */
  | { kind: "flags1Bit"; bit: number }
  /** 4.4-6.5: compound dtor id (u8 / u16 at offset in first tail) == NUMBER(HUGETLB_PAGE_DTOR). */
  | { kind: "dtorId"; offset: number; width: 1 | 2; value: number }
  /** < 4.4: dtor pointer (first tail's lru.next) == SYMBOL(free_huge_page). */
  | { kind: "dtorPtr"; offset: number; lo: number; hi: number };

/** Everything the classifier needs, as plain numbers. */
export interface PageScheme {
  /** Name of the page-type encoding detected. */
  typeScheme: PageTypeSchemeName;
  /** SIZE(page). */
  pageStructSize: number;
  /** Byte offsets in struct page (flags/mapping/private/compound_head 8-aligned, _mapcount 4-aligned). */
  offFlags: number;
  /** OFFSET(page.mapping). */
  offMapping: number;
  /** OFFSET(page._mapcount), undefined when absent. */
  offMapcount: number | undefined;
  /** OFFSET(page.private), undefined when absent. */
  offPrivate: number | undefined;
  /** OFFSET(page.compound_head), undefined when absent. */
  offCompoundHead: number | undefined;
  /** Flag bits (bit numbers) and masks; undefined = the flag does not exist. */
  pgLru: number;
  /** NUMBER(PG_private). */
  pgPrivate: number;
  /** NUMBER(PG_swapcache). */
  pgSwapcache: number;
  /** NUMBER(PG_swapbacked), undefined when absent. */
  pgSwapbacked: number | undefined;
  /** NUMBER(PG_slab), undefined when absent. */
  pgSlab: number | undefined;
  /** NUMBER(PG_hwpoison), undefined when absent. */
  pgHwpoison: number | undefined;
  /** NUMBER(PG_head_mask) as (lo, hi) u32 halves. */
  headMaskLo: number;
  /** High half of NUMBER(PG_head_mask). */
  headMaskHi: number;
  /** Free (buddy) pages: PAGE_BUDDY_MAPCOUNT_VALUE or the page_type bit. */
  buddy: TypeMatcher;
  /** Offline pages: PAGE_OFFLINE_MAPCOUNT_VALUE or the page_type bit. */
  offline: TypeMatcher;
  /** Slab pages by page type (newer kernels; older ones use PG_slab). */
  slab: TypeMatcher;
  /** Hugetlb pages by page type. */
  hugetlb: TypeMatcher;
  /** Unaccepted memory pages by page type. */
  unaccepted: TypeMatcher;
  /** True when free pages can be found in the mem_map scan (PAGE_BUDDY_MAPCOUNT_VALUE, _mapcount, private). */
  pageIsBuddy: boolean;
  /** LENGTH(zone.free_area) (NR_PAGE_ORDERS), undefined when absent. */
  freeAreaLength: number | undefined;
  /** Where a compound head's order is. */
  order: OrderSource;
  /** How a hugetlb compound page is recognised. */
  hugetlbSource: HugetlbSource;
}

/** The matcher for an exported page-type value (see the file comment). */
export function typeMatcher(value: bigint | undefined): TypeMatcher {
  if (value === undefined) return NEVER;
  const v = Number(BigInt.asIntN(32, value));
  if ((v & 0x00ffffff) === 0 && ((v >>> 24) & 0xff) >= 0xf0) {
    return { mask: 0xff000000 | 0, value: v & 0xff000000 };
  }
  return { mask: -1, value: v };
}

/** True when the int32 `mapcount` matches. */
export function matches(m: TypeMatcher, mapcount: number): boolean {
  return (mapcount & m.mask) === m.value;
}

/** Detect the scheme from VMCOREINFO; throws a missing-key error when struct page is not described. */
export function detectPageScheme(info: VmcoreInfo): PageScheme {
  const req = (n: string) => Number(info.requireNumber(n));
  const num = (n: string) => {
    const v = info.number(n);
    return v === undefined ? undefined : Number(v);
  };
  const buddyValue = info.number("PAGE_BUDDY_MAPCOUNT_VALUE");
  let typeScheme: PageTypeSchemeName = "none";
  if (buddyValue !== undefined) {
    const v = Number(BigInt.asIntN(32, buddyValue));
    if (v === -128) typeScheme = "magic";
    else if ((v & 0x00ffffff) === 0 && ((v >>> 24) & 0xff) >= 0xf0) typeScheme = "topbyte";
    else typeScheme = "bitclear";
  }
  const offMapcount = info.offset("page._mapcount");
  const offPrivate = info.offset("page.private");
  const pageStructSize = info.requireSize("page");
  const s: PageScheme = {
    typeScheme,
    pageStructSize,
    offFlags: info.requireOffset("page.flags"),
    offMapping: info.requireOffset("page.mapping"),
    offMapcount,
    offPrivate,
    offCompoundHead: info.offset("page.compound_info") ?? info.offset("page.compound_head"),
    pgLru: req("PG_lru"),
    pgPrivate: req("PG_private"),
    pgSwapcache: req("PG_swapcache"),
    pgSwapbacked: num("PG_swapbacked"),
    pgSlab: num("PG_slab"),
    pgHwpoison: num("PG_hwpoison"),
    headMaskLo: 0,
    headMaskHi: 0,
    buddy: typeMatcher(buddyValue),
    offline: typeMatcher(info.number("PAGE_OFFLINE_MAPCOUNT_VALUE")),
    slab: typeMatcher(info.number("PAGE_SLAB_MAPCOUNT_VALUE")),
    hugetlb: typeMatcher(info.number("PAGE_HUGETLB_MAPCOUNT_VALUE")),
    unaccepted: typeMatcher(info.number("PAGE_UNACCEPTED_MAPCOUNT_VALUE")),
    pageIsBuddy: buddyValue !== undefined && offMapcount !== undefined && offPrivate !== undefined,
    freeAreaLength: info.length("zone.free_area"),
    order: { kind: "none" },
    hugetlbSource: { kind: "none" },
  };
  const headMask = BigInt.asUintN(64, info.number("PG_head_mask") ?? 0n);
  s.headMaskLo = Number(headMask & 0xffffffffn);
  s.headMaskHi = Number(headMask >> 32n);

  // Compound order and hugetlb detection, newest first (makedumpfile's order of tests).
  const tailOff = (name: string) => {
    const o = info.offset(name);
    return o === undefined ? undefined : o - pageStructSize; // folio fields are in the first tail
  };
  const pgHugetlb = num("PG_hugetlb");
  const dtorValue = num("HUGETLB_PAGE_DTOR");
  const freeHuge = info.symbol("free_huge_page");
  if (info.has("NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)")) {
    s.order = { kind: "flags1" };
    s.hugetlbSource = { kind: "mapcount" };
  } else if (pgHugetlb !== undefined) {
    s.order = { kind: "flags1" };
    s.hugetlbSource = { kind: "flags1Bit", bit: pgHugetlb };
  } else {
    const orderOff = tailOff("folio._folio_order") ?? info.offset("page.compound_order");
    const dtorOff = tailOff("folio._folio_dtor") ?? info.offset("page.compound_dtor");
    // Width: u8 since 4.16 (dtor and order in adjacent bytes; folio fields are u8), u16 before (4.4-4.15
    // stored them as two unsigned ints on 64-bit; makedumpfile reads the low u16).
    const width: 1 | 2 = info.has("OFFSET(folio._folio_order)") || info.has("OFFSET(folio._folio_dtor)") ||
        (orderOff !== undefined && dtorOff !== undefined && Math.abs(orderOff - dtorOff) === 1)
      ? 1
      : 2;
    const lruOff = info.offset("page.lru");
    // Before 4.4 (no compound_head field, no dtor id): order in lru.prev, dtor pointer in lru.next.
    const oldEra = orderOff === undefined && s.offCompoundHead === undefined && dtorValue === undefined &&
      lruOff !== undefined;
    if (orderOff !== undefined && orderOff > 0) s.order = { kind: "field", offset: orderOff, width };
    else if (oldEra) s.order = { kind: "lruPrev", offset: lruOff + (info.offset("list_head.prev") ?? 8) };
    if (dtorOff !== undefined && dtorOff > 0 && dtorValue !== undefined) {
      s.hugetlbSource = { kind: "dtorId", offset: dtorOff, width, value: dtorValue };
    } else if (oldEra && freeHuge !== undefined) {
      s.hugetlbSource = {
        kind: "dtorPtr",
        offset: lruOff + (info.offset("list_head.next") ?? 0),
        lo: Number(freeHuge & 0xffffffffn),
        hi: Number(freeHuge >> 32n),
      };
    }
  }
  checkAlignment(s, info.source);
  return s;
}

function checkAlignment(s: PageScheme, source: string): void {
  const eight = [s.offFlags, s.offMapping, s.offPrivate, s.offCompoundHead];
  const four = [s.offMapcount];
  const bad = eight.some((o) => o !== undefined && o % 8 !== 0) ||
    four.some((o) => o !== undefined && o % 4 !== 0) ||
    s.pageStructSize % 8 !== 0 || s.pageStructSize < 8 || s.pageStructSize > 4096;
  if (bad) throw new VmsiftError("struct page fields are not aligned as on x86_64", { file: source });
  if (s.order.kind === "lruPrev" && s.order.offset % 8 !== 0) {
    throw new VmsiftError("page.lru is not 8-aligned", { file: source });
  }
}
