/**
 * Applying resolved erase ranges (core/eraseResolve.ts) to the pages written, as makedumpfile's
 * filter_data_buffer() does while it writes: for every dumpable page in order, the ranges that START inside
 * it are overwritten with 'X' (0x58; zeros for `nullify`) up to the page end, and what runs past the page
 * becomes a range starting on the next page. A range that starts on a page that is not written is never
 * applied, nor is its remainder. The bytes applied per command give the ERASEINFO text
 * (`erase EXPR size N\n` or `erase EXPR nullify\n` per iteration, in the order the commands were resolved).
 *
 * The dump is erased through {@link ErasingMemory}, a PhysicalMemory that overlays the erased bytes on every
 * read, so every writer (and the zero-page check, which sees the erased page) gets them; the page analysis
 * keeps reading the original memory.
 */
import type { PhysicalMemory, PhysSegment } from "./physMem.ts";
import type { EraseResolution } from "./eraseResolve.ts";

/** Bytes to overwrite. */
export interface EraseOverlay {
  /** Physical address of the first byte. */
  paddr: number;
  /** Bytes. */
  len: number;
  /** 0x58 ('X'), or 0 for nullify. */
  byte: number;
}

/** What erasing will do to this dump. */
export interface ErasePlan {
  /** The bytes to overwrite, sorted by address. */
  overlays: EraseOverlay[];
  /** The ERASEINFO text (empty when nothing is erased). */
  eraseinfo: Uint8Array;
  /**
   * The ERASEINFO ELF note for -E output (makedumpfile's write_elf_eraseinfo): its size is reckoned before
   * any page is written, one line per range at its full size (get_size_eraseinfo), and the text written is
   * padded with zeros to it. Empty when there is no range at all.
   */
  elfNote: Uint8Array;
  /** Bytes overwritten in all. */
  erasedBytes: number;
}

/** The erase character of makedumpfile's config filter. */
export const ERASE_BYTE = 0x58;

/** Plan the erasing for the pages `dumpable` says are written. */
export function planErase(
  res: EraseResolution,
  dumpable: (pfn: number) => boolean,
  pageSize: number,
): ErasePlan {
  const overlays: EraseOverlay[] = [];
  const sizes = res.infos.map((i) => new Array<number>(i.numSizes).fill(0));
  const erased = res.infos.map(() => false);
  let erasedBytes = 0;
  for (const r of res.ranges) {
    let p = r.paddr, left = r.size;
    while (left > 0) {
      const pfn = Math.floor(p / pageSize);
      if (!dumpable(pfn)) break;
      const len = Math.min(left, (pfn + 1) * pageSize - p);
      overlays.push({ paddr: p, len, byte: r.nullify ? 0 : ERASE_BYTE });
      erasedBytes += len;
      if (r.info >= 0) {
        erased[r.info] = true;
        if (r.nullify) sizes[r.info][r.sizeIndex] = -1;
        else sizes[r.info][r.sizeIndex] += len;
      }
      p += len;
      left -= len;
    }
  }
  // write_eraseinfo(): a size of 0 (an iteration never applied) repeats the previous line's size text.
  let text = "", sizeStr = "";
  res.infos.forEach((info, i) => {
    if (!erased[i]) return;
    for (const s of sizes[i]) {
      if (s > 0) sizeStr = `size ${s}\n`;
      else if (s === -1) sizeStr = "nullify\n";
      text += `erase ${info.expr} ${sizeStr}`;
    }
  });
  overlays.sort((a, b) => a.paddr - b.paddr);
  const eraseinfo = new TextEncoder().encode(text);
  let reckoned = 0;
  for (const r of res.ranges) {
    if (r.info < 0) continue;
    reckoned += `erase ${res.infos[r.info].expr} ${r.nullify ? "nullify\n" : `size ${r.size}\n`}`.length;
  }
  return { overlays, eraseinfo, elfNote: eraseinfoNote(eraseinfo, reckoned), erasedBytes };
}

/** An ELF note "ERASEINFO" (type 0) of `size` bytes holding `text` (zero-padded); empty for size 0. */
function eraseinfoNote(text: Uint8Array, size: number): Uint8Array {
  if (size === 0) return new Uint8Array(0);
  const name = new TextEncoder().encode("ERASEINFO\0");
  const pad4 = (n: number) => (n + 3) & ~3;
  const out = new Uint8Array(12 + pad4(name.length) + pad4(size));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, name.length, true);
  dv.setUint32(4, size, true);
  dv.setUint32(8, 0, true);
  out.set(name, 12);
  out.set(text.subarray(0, size), 12 + pad4(name.length));
  return out;
}

/** A PhysicalMemory that returns `inner`'s bytes with the overlays applied. */
export class ErasingMemory implements PhysicalMemory {
  readonly #inner: PhysicalMemory;
  readonly #overlays: EraseOverlay[];
  /** `inner` read with `overlays` laid over it. */
  constructor(inner: PhysicalMemory, overlays: EraseOverlay[]) {
    this.#inner = inner;
    this.#overlays = [...overlays].sort((a, b) => a.paddr - b.paddr);
  }

  get label(): string {
    return this.#inner.label;
  }

  get segments(): readonly PhysSegment[] {
    return this.#inner.segments;
  }

  /** Index of the first overlay ending after `paddr`. */
  #first(paddr: number): number {
    const o = this.#overlays;
    let lo = 0, hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (o[mid].paddr + o[mid].len <= paddr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #touches(paddr: number, len: number): boolean {
    const i = this.#first(paddr);
    return i < this.#overlays.length && this.#overlays[i].paddr < paddr + len;
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    const ok = this.#inner.readPhys(paddr, out);
    const end = paddr + out.length;
    for (let i = this.#first(paddr); i < this.#overlays.length; i++) {
      const o = this.#overlays[i];
      if (o.paddr >= end) break;
      const a = Math.max(o.paddr, paddr), b = Math.min(o.paddr + o.len, end);
      if (b > a) out.fill(o.byte, a - paddr, b - paddr);
    }
    return ok;
  }

  viewPhys(paddr: number, len: number): Uint8Array | null {
    if (this.#touches(paddr, len)) return null; // erased bytes need a copy
    return this.#inner.viewPhys?.(paddr, len) ?? null;
  }
}
