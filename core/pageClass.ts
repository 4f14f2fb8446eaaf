/**
 * Classification of one struct page: makedumpfile's decision order (__exclude_unnecessary_pages,
 * kdump-reference.md section 7.2), first match wins:
 *   tail page (compound_head & 1) → skipped (handled with its head)
 *   -d 16: buddy (_mapcount is PAGE_BUDDY and not slab) → 2^private pages (order ≥ LENGTH(zone.free_area)
 *          → warning, keep); unaccepted → 2^(LENGTH(zone.free_area)-1) pages
 *   -d 2:  cache and not PG_private and not anon
 *   -d 4:  cache and not anon (counted private or non-private by PG_private)
 *   -d 8:  anon or hugetlb
 *   any level: PG_hwpoison set; offline (_mapcount is PAGE_OFFLINE and not slab)
 * A compound head excluded by the last four rules takes its 2^order pages with it; the order comes from
 * the first tail page, read only when the head is not the last of an aligned group of 512 struct pages
 * (makedumpfile's PGMM_CACHED batch), and is 0 when ≥ 64 or the head pfn is not aligned to it.
 *
 * Works on a Uint32Array / Uint8Array view of a buffer of struct pages, no allocation per page.
 */
import type { PageScheme } from "./pageTypes.ts";

/** Classes returned in the low byte of `classify()`'s result. */
export const PC_KEEP = 0;
export const PC_TAIL = 1;
export const PC_FREE = 2;
export const PC_CACHE = 3;
export const PC_CACHE_PRIVATE = 4;
export const PC_USER = 5;
export const PC_HWPOISON = 6;
export const PC_OFFLINE = 7;
/** Buddy page with an impossible order: kept, reported (makedumpfile "Invalid free page order"). */
export const PC_BAD_ORDER = 8;

/** Dump-level bits. */
export const DL_EXCLUDE_ZERO = 1;
export const DL_EXCLUDE_CACHE = 2;
export const DL_EXCLUDE_CACHE_PRI = 4;
export const DL_EXCLUDE_USER_DATA = 8;
export const DL_EXCLUDE_FREE = 16;

/** Struct pages per makedumpfile read batch; a head at index 511 of a batch is taken as order 0. */
export const PGMM_CACHED = 512;

/** Class of a result. */
export function pcClass(r: number): number {
  return r & 0xff;
}

/** Order (log2 of the number of pages excluded) of a result. */
export function pcOrder(r: number): number {
  return r >>> 8;
}

/** makedumpfile's test_bit(nr, flags): bit nr & 31 of an int mask, sign-extended when it is bit 31. */
function testBit(lo: number, hi: number, nr: number): boolean {
  const n = nr & 31;
  if (n === 31) return (lo & 0x80000000) !== 0 || hi !== 0;
  return ((lo >>> n) & 1) !== 0;
}

/** A real 64-bit bit test (`flags & (1UL << nr)`). */
function bit64(lo: number, hi: number, nr: number): boolean {
  return nr < 32 ? ((lo >>> nr) & 1) !== 0 : nr < 64 ? ((hi >>> (nr - 32)) & 1) !== 0 : false;
}

/** Classifier bound to one kernel's scheme; field offsets pre-divided into u32 word indices. */
export class PageClassifier {
  readonly scheme: PageScheme;
  readonly #wFlags: number;
  readonly #wMapping: number;
  readonly #wMapcount: number; // -1: absent (_mapcount reads 0)
  readonly #wPrivate: number; // -1: absent
  readonly #wHead: number; // -1: absent
  readonly #pageWords: number;

  constructor(scheme: PageScheme) {
    this.scheme = scheme;
    this.#wFlags = scheme.offFlags >> 2;
    this.#wMapping = scheme.offMapping >> 2;
    this.#wMapcount = scheme.offMapcount === undefined ? -1 : scheme.offMapcount >> 2;
    this.#wPrivate = scheme.offPrivate === undefined ? -1 : scheme.offPrivate >> 2;
    this.#wHead = scheme.offCompoundHead === undefined ? -1 : scheme.offCompoundHead >> 2;
    this.#pageWords = scheme.pageStructSize >> 2;
  }

  /**
   * Classify the struct page at byte offset `base` of the buffer viewed by `u32`/`u8` (base multiple of 8).
   * `nextOk`: the following struct page (first tail) is in the buffer, readable, and this pfn is not the
   * last of its 512-group. Returns class | (order << 8).
   */
  classify(
    u32: Uint32Array,
    u8: Uint8Array,
    base: number,
    pfn: number,
    nextOk: boolean,
    level: number,
  ): number {
    const s = this.scheme;
    const w = base >> 2;
    const flagsLo = u32[w + this.#wFlags];
    const flagsHi = u32[w + this.#wFlags + 1];
    const mapcount = this.#wMapcount < 0 ? 0 : u32[w + this.#wMapcount] | 0;

    let order = 0;
    let hugetlb = false;
    if (nextOk && ((flagsLo & s.headMaskLo) !== 0 || (flagsHi & s.headMaskHi) !== 0)) {
      const nw = w + this.#pageWords;
      const nb = base + s.pageStructSize;
      let ord = 0;
      const o = s.order;
      if (o.kind === "flags1") ord = u32[nw + this.#wFlags] & 0xff;
      else if (o.kind === "field") {
        ord = o.width === 1 ? u8[nb + o.offset] : u8[nb + o.offset] | (u8[nb + o.offset + 1] << 8);
      } else if (o.kind === "lruPrev") {
        const lw = nw + (o.offset >> 2);
        ord = u32[lw + 1] !== 0 ? 64 : u32[lw];
      }
      const h = s.hugetlbSource;
      if (h.kind === "mapcount") hugetlb = (mapcount & s.hugetlb.mask) === s.hugetlb.value;
      else if (h.kind === "flags1Bit") {
        hugetlb = bit64(u32[nw + this.#wFlags], u32[nw + this.#wFlags + 1], h.bit);
      } else if (h.kind === "dtorId") {
        const d = h.width === 1 ? u8[nb + h.offset] : u8[nb + h.offset] | (u8[nb + h.offset + 1] << 8);
        hugetlb = d === h.value;
      } else if (h.kind === "dtorPtr") {
        const dw = nw + (h.offset >> 2);
        hugetlb = u32[dw] === h.lo && u32[dw + 1] === h.hi;
      }
      if (ord >= 64 || pfn % 2 ** ord !== 0) ord = 0;
      order = ord;
    }

    if (this.#wHead >= 0 && (u32[w + this.#wHead] & 1) !== 0) return PC_TAIL;

    const slab = ((mapcount & s.slab.mask) === s.slab.value) ||
      (s.pgSlab !== undefined && bit64(flagsLo, flagsHi, s.pgSlab));

    if ((level & DL_EXCLUDE_FREE) !== 0) {
      if (s.pageIsBuddy && !slab && (mapcount & s.buddy.mask) === s.buddy.value) {
        const pLo = u32[w + this.#wPrivate];
        const pHi = u32[w + this.#wPrivate + 1];
        const limit = s.freeAreaLength ?? 64;
        if (pHi !== 0 || pLo >= limit || pLo >= 64) return PC_BAD_ORDER;
        return PC_FREE | (pLo << 8);
      }
      if ((mapcount & s.unaccepted.mask) === s.unaccepted.value) {
        const ord = s.freeAreaLength === undefined || s.freeAreaLength < 1 ? 0 : s.freeAreaLength - 1;
        return PC_FREE | (ord << 8);
      }
    }

    const cache = testBit(flagsLo, flagsHi, s.pgLru) ||
      ((s.pgSwapbacked === undefined || testBit(flagsLo, flagsHi, s.pgSwapbacked)) &&
        testBit(flagsLo, flagsHi, s.pgSwapcache));
    const anon = (u32[w + this.#wMapping] & 1) !== 0 && !slab;
    const priv = testBit(flagsLo, flagsHi, s.pgPrivate);

    if ((level & DL_EXCLUDE_CACHE) !== 0 && cache && !priv && !anon) return PC_CACHE | (order << 8);
    if ((level & DL_EXCLUDE_CACHE_PRI) !== 0 && cache && !anon) {
      return (priv ? PC_CACHE_PRIVATE : PC_CACHE) | (order << 8);
    }
    if ((level & DL_EXCLUDE_USER_DATA) !== 0 && (anon || hugetlb)) return PC_USER | (order << 8);
    if (s.pgHwpoison !== undefined && testBit(flagsLo, flagsHi, s.pgHwpoison)) {
      return PC_HWPOISON | (order << 8);
    }
    if (!slab && (mapcount & s.offline.mask) === s.offline.value) return PC_OFFLINE | (order << 8);
    return PC_KEEP;
  }
}

/**
 * True when makedumpfile runs the struct-page scan at this level: cache/user levels, PG_hwpoison known
 * (then hwpoison and offline pages go even at -d 0/1), or -d 16 with free pages findable in mem_map.
 */
export function scanNeeded(s: PageScheme, level: number): boolean {
  return (level & (DL_EXCLUDE_CACHE | DL_EXCLUDE_CACHE_PRI | DL_EXCLUDE_USER_DATA)) !== 0 ||
    s.pgHwpoison !== undefined ||
    ((level & DL_EXCLUDE_FREE) !== 0 && s.pageIsBuddy);
}
