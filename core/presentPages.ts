import type { PfnBitmap } from "./bitmap.ts";
import type { PhysSegment } from "./physMem.ts";

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
