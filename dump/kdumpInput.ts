/**
 * Re-filtering: a kdump-compressed (or flattened kdump) file as the input of a dump, written again at a
 * higher dump level (kdump-reference.md 2.1, 4.2; makedumpfile with a kdump-compressed VMCORE:
 * get_max_mapnr, update_dump_level, copy_1st_bitmap_from_memory, copy_bitmap_file, readpage_kdump_compressed).
 *
 * - The output dump_level is the requested level OR the input's.
 * - max_mapnr is the input's, lowered to the end of the last section with a mem_map (get_mem_map runs for
 *   re-filtering too); bitmap 1 is the input's bitmap 1; bitmap 2 starts as the input's bitmap 2 (so pages
 *   absent from the input stay absent) and the struct-page scan clears bits in it. Zero pages are found
 *   again while writing (dump_level & 1), the input's shared zero page reads as zeros.
 * - Notes (with VMCOREINFO, offset_vmcoreinfo recomputed) and nr_cpus come from the input; utsname is
 *   re-read from init_uts_ns (like makedumpfile), falling back to the input header's; phys_base is
 *   VMCOREINFO's NUMBER(phys_base), else the input sub header's (makedumpfile always copies the sub
 *   header's, which propagates QEMU's wrongly parsed value).
 * The struct-page scan needs the page tables and struct pages, which every makedumpfile level and QEMU's
 * dumps keep; a struct page that cannot be read keeps its pages (counted as keptUnreadable). The rules are
 * applied by dump/filter.ts; this file holds the re-filtering-only steps.
 */
import type { PfnBitmap } from "../core/bitmap.ts";
import type { MemoryModel } from "../core/memoryModel.ts";
import type { KdumpInput } from "../formats/kdump/inputKdump.ts";

/**
 * The max_mapnr of the output: the input's, lowered to the end of the last section with a mem_map
 * (makedumpfile get_mem_map: MIN(max_mapnr, pfn_end of the last valid mem_map)).
 */
export function refilterMaxMapnr(input: KdumpInput, model: MemoryModel): number {
  const secs = model.sparse.sections;
  if (secs.length === 0) return input.maxMapnr;
  const last = secs[secs.length - 1];
  return Math.min(input.maxMapnr, last.pfnStart + model.sparse.pagesPerSection);
}

/** Copy the first `n` bits of `from` into `to` (in 1 MiB byte chunks; both start clear in `to`). */
export function copyBits(from: PfnBitmap, to: PfnBitmap, n: number): void {
  const chunk = new Uint8Array(1 << 20);
  const bytes = Math.floor(n / 8);
  for (let pos = 0; pos < bytes; pos += chunk.length) {
    const len = Math.min(chunk.length, bytes - pos);
    from.readBytes(pos, chunk.subarray(0, len));
    for (let i = 0; i < len;) {
      // Runs of 0xff bytes become one setRange; other bytes bit by bit.
      const v = chunk[i];
      const pfn = (pos + i) * 8;
      if (v === 0xff) {
        let j = i + 1;
        while (j < len && chunk[j] === 0xff) j++;
        to.setRange(pfn, (pos + j) * 8);
        i = j;
        continue;
      }
      for (let b = 0; v !== 0 && b < 8; b++) if ((v >>> b) & 1) to.set(pfn + b);
      i++;
    }
  }
  for (let p = bytes * 8; p < n; p++) if (from.get(p)) to.set(p);
}
