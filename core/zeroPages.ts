/**
 * Zero-page exclusion as a separate pass, for output forms that cannot share one zero page (ELF, -E):
 * makedumpfile removes all-zero pages from bitmap 2 before writing ELF (kdump-reference.md 4.5). The kdump
 * writer instead detects zero pages while copying.
 */
import type { PfnBitmap } from "./bitmap.ts";
import type { PhysicalMemory } from "./physMem.ts";

/** Pages read per call (4 MiB of 4 KiB pages). */
const RUN_PAGES = 1024;

/**
 * True when the `wordsPerPage` 32-bit words of `words` from `first` are all zero (`wordsPerPage` a multiple
 * of 8: every page size is). Shared by the kdump writers and the zero-page pass below.
 */
export function isZeroPage(words: Uint32Array, first: number, wordsPerPage: number): boolean {
  const w = words;
  for (let i = first, e = first + wordsPerPage; i < e; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}

/**
 * Clear from bitmap 2 every dumpable page below maxMapnr whose content is all zero; returns how many.
 * Pages that cannot be read stay (kept, never dropped).
 */
export function excludeZeroPages(
  mem: PhysicalMemory,
  bitmap2: PfnBitmap,
  maxMapnr: number,
  pageSize: number,
): number {
  const buf = new Uint8Array(RUN_PAGES * pageSize);
  const u32 = new Uint32Array(buf.buffer);
  const wordsPerPage = pageSize / 4;
  const bits = new Uint8Array(RUN_PAGES / 8);
  let zero = 0;
  for (let base = 0; base < maxMapnr; base += RUN_PAGES) {
    const n = Math.min(RUN_PAGES, maxMapnr - base);
    bitmap2.readBytes(base >>> 3, bits);
    let i = 0;
    while (i < n) {
      if ((bits[i >>> 3] & (1 << (i & 7))) === 0) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && (bits[j >>> 3] & (1 << (j & 7))) !== 0) j++;
      // [i, j) dumpable: one read for the run.
      const len = (j - i) * pageSize;
      if (mem.readPhys((base + i) * pageSize, buf.subarray(0, len))) {
        for (let k = i; k < j; k++) {
          if (isZeroPage(u32, (k - i) * wordsPerPage, wordsPerPage)) {
            bitmap2.clear(base + k);
            zero++;
          }
        }
      } else {
        // Part of the run is not readable: page by page, keeping what cannot be read.
        const one = buf.subarray(0, pageSize);
        for (let k = i; k < j; k++) {
          if (mem.readPhys((base + k) * pageSize, one) && isZeroPage(u32, 0, wordsPerPage)) {
            bitmap2.clear(base + k);
            zero++;
          }
        }
      }
      i = j;
    }
  }
  return zero;
}
