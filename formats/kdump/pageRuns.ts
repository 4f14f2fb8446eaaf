/**
 * Reading the pages to dump: runs of set bits of bitmap 2, and page reads that zero-fill what no PT_LOAD
 * segment holds (the last partial page of a segment).
 */
import type { PfnBitmap } from "../../core/bitmap.ts";
import { findSegment, type PhysicalMemory } from "../../core/physMem.ts";

/**
 * The runs of contiguous set bits of `bitmap` below `maxMapnr` as [start, n], in pfn order, runs cut at
 * `maxRun` pages.
 */
export function* bitmapRuns(
  bitmap: PfnBitmap,
  maxMapnr: number,
  maxRun: number,
): Generator<[start: number, n: number], void, undefined> {
  const chunkBytes = 1 << 16;
  const bm = new Uint8Array(chunkBytes);
  let runStart = -1, runLen = 0;
  for (let base = 0; base < maxMapnr; base += chunkBytes * 8) {
    const nb = Math.min(chunkBytes, Math.ceil((maxMapnr - base) / 8));
    bitmap.readBytes(base >>> 3, bm.subarray(0, nb));
    for (let i = 0; i < nb; i++) {
      const byte = bm[i];
      const pfn0 = base + i * 8;
      if (byte === 0) {
        if (runLen > 0) {
          yield [runStart, runLen];
          runLen = 0;
        }
        continue;
      }
      for (let bit = 0; bit < 8; bit++) {
        const pfn = pfn0 + bit;
        if (pfn >= maxMapnr) break;
        if ((byte >>> bit) & 1) {
          if (runLen > 0 && (runStart + runLen !== pfn || runLen === maxRun)) {
            yield [runStart, runLen];
            runLen = 0;
          }
          if (runLen === 0) runStart = pfn;
          runLen++;
        } else if (runLen > 0) {
          yield [runStart, runLen];
          runLen = 0;
        }
      }
    }
  }
  if (runLen > 0) yield [runStart, runLen];
}

/** Read pages start..start+buf.length/ps into `buf`, zero-filling what no segment holds. */
export function readRun(mem: PhysicalMemory, start: number, ps: number, buf: Uint8Array): void {
  if (!mem.readPhys(start * ps, buf)) {
    for (let k = 0, n = buf.length / ps; k < n; k++) {
      readPageLenient(mem, (start + k) * ps, buf.subarray(k * ps, (k + 1) * ps));
    }
  }
}

/** Read one page that may be partly outside the segments (last partial page of a PT_LOAD): zeros there. */
export function readPageLenient(mem: PhysicalMemory, paddr: number, out: Uint8Array): void {
  out.fill(0);
  const segs = mem.segments;
  const end = paddr + out.length;
  let i = findSegment(segs, paddr);
  if (i < 0) {
    // First segment starting inside the page, if any.
    i = segs.findIndex((s) => s.paddr > paddr && s.paddr < end);
    if (i < 0) return;
  }
  for (; i < segs.length && segs[i].paddr < end; i++) {
    const s = segs[i];
    const a = Math.max(paddr, s.paddr);
    const b = Math.min(end, s.paddr + s.memSize);
    if (b > a) mem.readPhys(a, out.subarray(a - paddr, b - paddr));
  }
}
