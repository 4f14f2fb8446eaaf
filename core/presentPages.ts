import type { PfnBitmap } from "./bitmap.ts";
import type { PhysSegment } from "./physMem.ts";

/** Highest pfn + 1 covered by any segment (the last partial page counts), before any mem_map lowering. */
export function segmentsMaxPfn(segments: readonly PhysSegment[], pageSize: number): number {
  let max = 0;
  for (const s of segments) max = Math.max(max, Math.ceil((s.paddr + s.memSize) / pageSize));
  return max;
}

/**
 * Set the 1st bitmap: a pfn below maxMapnr is present when any byte of its page is inside a PT_LOAD
 * (makedumpfile counts the last partial page of a segment). Returns the number of present pages.
 */
export function markPresentPages(
  segments: readonly PhysSegment[],
  pageSize: number,
  maxMapnr: number,
  bitmap1: PfnBitmap,
): number {
  let present = 0;
  for (const s of segments) {
    const start = Math.floor(s.paddr / pageSize);
    const end = Math.min(maxMapnr, Math.ceil((s.paddr + s.memSize) / pageSize));
    if (end <= start) continue;
    bitmap1.setRange(start, end);
  }
  present = bitmap1.popcount(0, maxMapnr);
  return present;
}

/**
 * Pages counted once per PT_LOAD holding them, below maxMapnr, as makedumpfile counts "Original pages" in
 * its cyclic mode (create_bitmap_from_memhole: one count per load and pfn, from the page holding the load's
 * first byte up to, not including, the page holding its end; `partialLast` also counts the page holding
 * the end, as its -E writer does). With overlapping loads (kexec's kernel-image load inside System RAM)
 * this exceeds the present pages.
 */
export function countPagesPerLoad(
  loads: readonly PhysSegment[],
  pageSize: number,
  maxMapnr: number,
  partialLast = false,
): number {
  let n = 0;
  const last = partialLast ? Math.ceil : Math.floor;
  for (const s of loads) {
    const start = Math.floor(s.paddr / pageSize);
    const end = Math.min(maxMapnr, last((s.paddr + s.memSize) / pageSize));
    if (end > start) n += end - start;
  }
  return n;
}

/**
 * Mark the pages of the PT_LOADs in a bitmap as makedumpfile's cyclic mode does for both bitmaps
 * (create_bitmap_from_memhole): every pfn from the page holding a load's first byte up to, but not
 * including, the page holding its end. A partial last page (kexec's first System RAM load ends at 0x9fc00)
 * is left out: it is neither present nor dumped. (makedumpfile's one-cycle mode with a bitmap file marks it
 * present in bitmap 1, never in bitmap 2; see docs/launcher.md.) Returns the pages set in `bitmap`.
 */
export function markLoadPages(
  loads: readonly PhysSegment[],
  pageSize: number,
  maxMapnr: number,
  bitmap: PfnBitmap,
): number {
  for (const s of loads) {
    const start = Math.floor(s.paddr / pageSize);
    const end = Math.min(maxMapnr, Math.floor((s.paddr + s.memSize) / pageSize));
    if (end > start) bitmap.setRange(start, end);
  }
  return bitmap.popcount(0, maxMapnr);
}
