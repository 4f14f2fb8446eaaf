/**
 * Page descriptors and page data written through two caches flushed together, data first, and the finishing
 * of a file whose writing stopped early (kdump-reference.md 2.3, 4.7).
 */
import type { Sink } from "../../io/sink.ts";
import { asOutputFull, OutputFullError } from "../../io/outputFull.ts";
import { DumpInterrupted, type IncompleteInfo, type WriteControl } from "../incomplete.ts";
import { markKdumpIncomplete } from "./headWriter.ts";
import { type KdumpLayout, PAGE_DESC_SIZE } from "./layout.ts";

/** Flush boundaries remembered for {@link PagePairWriter.salvage} (at 64 KiB per flush: 512 MiB of data). */
const BOUNDARY_RING = 8192;

/**
 * Descriptors and page data through two caches flushed together, data first (kdump-reference.md 2.3, 4.7):
 * an interrupted write leaves only descriptors that point at written data. With dump_level & 1 the shared
 * zero page is the first page of data.
 *
 * Full outputs: with `limit` (-L) a page whose data would end beyond it is refused with an OutputFullError
 * before anything of it is cached, so the caches always hold complete pairs that fit ({@link finishPartial}
 * writes them). A sink that fails (ENOSPC) may have written descriptors before their data (it caches and
 * reorders writes): {@link salvage} then uses the sink's `written` ranges and the remembered flush boundaries
 * to zero every descriptor on disk whose data is not, so the file again holds only matched pairs.
 */
export class PagePairWriter {
  readonly #sink: Sink;
  readonly #descCache: Uint8Array;
  readonly #descView: DataView;
  #descLen = 0;
  /** File offset of descCache[0]. */
  #descPos: number;
  readonly #dataCache: Uint8Array;
  #dataLen = 0;
  /** File offset of dataCache[0]. */
  #dataPos: number;
  /** File offset of the shared zero page, or -1 when zero pages are not excluded. */
  readonly zeroPageOffset: number;
  readonly #pageSize: number;
  readonly #limit: number;
  readonly #L: KdumpLayout;
  /** Ring of (descriptor end, data end) file offsets after each completed flush, and the last one dropped. */
  readonly #ringDesc = new Float64Array(BOUNDARY_RING);
  readonly #ringData = new Float64Array(BOUNDARY_RING);
  #ringNext = 0;
  #ringLen = 0;
  #floorDesc: number;
  #floorData: number;
  /** Never-written descriptors added for unreadable pages. */
  missing = 0;

  constructor(
    sink: Sink,
    L: KdumpLayout,
    pageSize: number,
    cacheSize: number,
    excludeZero: boolean,
    limit = Infinity,
  ) {
    this.#sink = sink;
    this.#pageSize = pageSize;
    this.#L = L;
    this.#limit = limit;
    this.#descCache = new Uint8Array(Math.max(cacheSize, PAGE_DESC_SIZE));
    this.#descView = new DataView(this.#descCache.buffer);
    this.#descPos = L.dataOffset;
    this.#dataCache = new Uint8Array(Math.max(cacheSize, pageSize));
    this.#dataPos = L.pageDataOffset;
    this.#floorDesc = L.dataOffset;
    this.#floorData = L.pageDataOffset;
    this.zeroPageOffset = -1;
    if (excludeZero) {
      this.zeroPageOffset = L.pageDataOffset;
      this.#dataCache.fill(0, 0, pageSize);
      this.#dataLen = pageSize;
    }
  }

  /** File offset where the next page data goes. */
  get dataEnd(): number {
    return this.#dataPos + this.#dataLen;
  }

  /** Descriptors handed to the sink or cached so far. */
  get descriptors(): number {
    return (this.#descPos + this.#descLen - this.#L.dataOffset) / PAGE_DESC_SIZE;
  }

  /** Write both caches (data first) and empty them. */
  flush(): void {
    if (this.#dataLen > 0) this.#sink.write(this.#dataPos, this.#dataCache.subarray(0, this.#dataLen));
    this.#dataPos += this.#dataLen;
    this.#dataLen = 0;
    if (this.#descLen > 0) this.#sink.write(this.#descPos, this.#descCache.subarray(0, this.#descLen));
    this.#descPos += this.#descLen;
    this.#descLen = 0;
    this.#remember(this.#descPos, this.#dataPos);
  }

  #remember(desc: number, data: number): void {
    const i = this.#ringNext;
    if (this.#ringLen === BOUNDARY_RING) {
      this.#floorDesc = this.#ringDesc[i];
      this.#floorData = this.#ringData[i];
    } else this.#ringLen++;
    this.#ringDesc[i] = desc;
    this.#ringData[i] = data;
    this.#ringNext = (i + 1) % BOUNDARY_RING;
  }

  /** The end of the descriptors of the last flush whose data ended at or before `dataEnd`. */
  #descCut(dataEnd: number): number {
    for (let k = 1; k <= this.#ringLen; k++) {
      const i = (this.#ringNext - k + BOUNDARY_RING) % BOUNDARY_RING;
      if (this.#ringData[i] <= dataEnd) return this.#ringDesc[i];
    }
    return this.#floorData <= dataEnd ? this.#floorDesc : this.#L.dataOffset;
  }

  /** A descriptor pointing at the shared zero page. */
  addZero(): void {
    this.#add(this.zeroPageOffset, this.#pageSize, 0, null);
  }

  /** A never-written descriptor (all zeros: offset 0) for a page that could not be read. */
  addMissing(): void {
    this.#add(0, 0, 0, null);
    this.missing++;
  }

  /** A descriptor and `data` (size bytes, flags 0 = raw or a codec flag) at the end of the page data. */
  addData(data: Uint8Array, flags: number): void {
    const size = data.length;
    if (this.dataEnd + size > this.#limit) {
      throw new OutputFullError(
        "size-limit",
        `size limit (${this.#limit}) reached`,
        this.#sink.label,
        this.dataEnd,
      );
    }
    if (this.#dataLen + size > this.#dataCache.length) this.flush();
    this.#add(this.#dataPos + this.#dataLen, size, flags, data);
  }

  #add(offset: number, size: number, flags: number, data: Uint8Array | null): void {
    if (this.#descLen + PAGE_DESC_SIZE > this.#descCache.length) this.flush();
    const dv = this.#descView;
    const at = this.#descLen;
    dv.setUint32(at, offset % 0x1_0000_0000, true);
    dv.setUint32(at + 4, Math.floor(offset / 0x1_0000_0000), true);
    dv.setUint32(at + 8, size, true);
    dv.setUint32(at + 12, flags, true);
    dv.setUint32(at + 16, 0, true);
    dv.setUint32(at + 20, 0, true);
    this.#descLen += PAGE_DESC_SIZE;
    if (data !== null) {
      this.#dataCache.set(data, this.#dataLen);
      this.#dataLen += size;
    }
  }

  /**
   * Finish an incomplete file after an interruption or the size limit (the caches hold matched pairs that
   * fit): write them, finish the sink. Falls back to {@link salvage} when a write fails. Returns the pages
   * written.
   */
  finishPartial(): { pagesWritten: number; fileSize: number } {
    try {
      this.flush();
      const fileSize = this.dataEnd;
      this.#sink.finish(fileSize);
      return { pagesWritten: this.descriptors - this.missing, fileSize };
    } catch (e) {
      if (asOutputFull(e) === null) throw e;
      return this.salvage();
    }
  }

  /**
   * After a failed write (ENOSPC): forget what the sink could not write, zero every descriptor on disk whose
   * data is not (wholly) on disk, and finish the sink at the size it has. Returns the pages kept.
   */
  salvage(): { pagesWritten: number; fileSize: number } {
    const sink = this.#sink;
    const L = this.#L;
    this.#descLen = 0;
    this.#dataLen = 0;
    const W = sink.writtenRanges;
    if (W === undefined) {
      // A sink that does not say what it wrote (dry run, stream): assume the completed flushes.
      sink.dropPending?.();
      const fileSize = this.#dataPos;
      sink.finish(fileSize);
      const pages = (this.#descPos - L.dataOffset) / PAGE_DESC_SIZE;
      return { pagesWritten: Math.max(0, pages - this.missing), fileSize };
    }
    const first = L.dataOffset, tableEnd = L.pageDataOffset;
    const zero = (a: number, b: number) => {
      if (b > a) sink.rewrite(a, new Uint8Array(b - a));
    };
    const onDiskEnd = () => {
      let d = L.pageDataOffset;
      for (const [a, b] of W.ranges()) if (a <= d && b > d) d = b;
      return d;
    };
    // Page data handed to the sink: on disk or still cached (finish() writes the cached part).
    let D = this.#dataPos;
    for (;;) {
      // Keep the head, the descriptors whose data is kept, and that data; drop the rest of the cache.
      const cut = this.#descCut(D);
      sink.dropPending?.(cut, tableEnd);
      sink.dropPending?.(D);
      // On-disk descriptor bytes past the cut: their data may be missing.
      for (const [a, b] of W.ranges()) zero(Math.max(a, cut), Math.min(b, tableEnd));
      try {
        sink.truncate?.(D); // frees the blocks of data given up, before the cached bytes are written
        sink.finish(D);
      } catch (e) {
        // Still no room for what is cached: give up the last MiB of data and try again.
        if (asOutputFull(e) === null || D <= L.pageDataOffset) throw e;
        D = Math.max(L.pageDataOffset, D - (1 << 20));
        continue;
      }
      // Everything kept must really be on disk now (a failed write may have lost cached blocks).
      const d = onDiskEnd();
      if (d < D) {
        D = d;
        continue;
      }
      // Descriptors below the cut that are only partly on disk (a write cut between two blocks) are zeroed;
      // the whole ones are the pages written.
      let whole = 0;
      for (const [a, b] of W.ranges()) {
        const lo = Math.max(a, first), hi = Math.min(b, cut);
        if (hi <= lo) continue;
        const d0 = first + Math.ceil((lo - first) / PAGE_DESC_SIZE) * PAGE_DESC_SIZE;
        const d1 = first + Math.floor((hi - first) / PAGE_DESC_SIZE) * PAGE_DESC_SIZE;
        if (d0 > lo) zero(lo, Math.min(d0, hi));
        if (d1 < hi && d1 >= d0) zero(d1, hi);
        if (d1 > d0) whole += (d1 - d0) / PAGE_DESC_SIZE;
      }
      return { pagesWritten: Math.max(0, whole - this.missing), fileSize: D };
    }
  }
}

/**
 * What a writer does when writing stops early (`e`): an OutputFullError without `keepIncomplete` and any
 * other error are rethrown (the caller aborts the sink); otherwise the file is finished as incomplete with
 * matched pairs only and the header flag set. Returns the description.
 */
export function finishIncomplete(
  e: unknown,
  out: PagePairWriter,
  sink: Sink,
  status: number,
  total: number,
  control: WriteControl | undefined,
): { info: IncompleteInfo; fileSize: number } {
  const full = asOutputFull(e);
  const intr = e instanceof DumpInterrupted ? e : null;
  if (intr === null && (full === null || !control?.keepIncomplete)) throw full ?? e;
  const r = full?.reason === "no-space" ? out.salvage() : out.finishPartial();
  if (control?.markIncomplete ?? true) markKdumpIncomplete(sink, status);
  const info: IncompleteInfo = {
    reason: intr !== null ? "interrupted" : full!.reason,
    pagesWritten: r.pagesWritten,
    pagesTotal: total,
    signal: intr?.signal,
    detail: (intr ?? full)!.message,
  };
  return { info, fileSize: r.fileSize };
}
