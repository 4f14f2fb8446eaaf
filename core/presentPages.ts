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
 * Pages counted once per PT_LOAD holding them, below maxMapnr, as makedumpfile counts "Original pages"
 * (create_1st_bitmap_file: one count per load and pfn, the partial last page included). With overlapping
 * loads (kexec's kernel-image load inside System RAM) this exceeds the present pages.
 */
export function countPagesPerLoad(loads: readonly PhysSegment[], pageSize: number, maxMapnr: number): number {
  let n = 0;
  for (const s of loads) {
    const start = Math.floor(s.paddr / pageSize);
    const end = Math.min(maxMapnr, Math.ceil((s.paddr + s.memSize) / pageSize));
    if (end > start) n += end - start;
  }
  return n;
}

/**
 * Set bitmap 2's starting state, as makedumpfile does (create_bitmap_from_memhole): every pfn from the page
 * holding a PT_LOAD's first byte up to, but not including, the page holding its end. A partial last page
 * (kexec's first System RAM load ends at 0x9fc00) is present in bitmap 1 but never dumped: its data is not
 * all in the load, and makedumpfile neither writes it nor counts it as excluded.
 */
export function markDumpablePages(
  loads: readonly PhysSegment[],
  pageSize: number,
  maxMapnr: number,
  bitmap2: PfnBitmap,
): void {
  for (const s of loads) {
    const start = Math.floor(s.paddr / pageSize);
    const end = Math.min(maxMapnr, Math.floor((s.paddr + s.memSize) / pageSize));
    if (end > start) bitmap2.setRange(start, end);
  }
}
