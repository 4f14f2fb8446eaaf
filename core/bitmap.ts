/**
 * A bitmap of page frame numbers: bit for pfn p is bit (p & 7) of byte (p >> 3), LSB first — the kdump
 * on-disk order. Two backends implement it: MemBitmap (here) and a file-backed one through a block cache
 * (io/, for machines whose bitmaps do not fit the memory budget).
 */
export interface PfnBitmap {
  /** Number of bits (max_mapnr). */
  readonly nbits: number;
  get(pfn: number): boolean;
  set(pfn: number): void;
  clear(pfn: number): void;
  /** Set bits [start, end). */
  setRange(start: number, end: number): void;
  /** Clear bits [start, end). */
  clearRange(start: number, end: number): void;
  /** Copy the on-disk bytes [byteOffset, byteOffset + out.length) into out (bytes past nbits read 0). */
  readBytes(byteOffset: number, out: Uint8Array): void;
  /** Number of set bits in [start, end) (whole bitmap when omitted). */
  popcount(start?: number, end?: number): number;
  /** Release resources (file backend). */
  close(): void;
}

const POP8 = (() => {
  const t = new Uint8Array(256);
  for (let i = 1; i < 256; i++) t[i] = (i & 1) + t[i >> 1];
  return t;
})();

/** Popcount of one byte. */
export function popcount8(b: number): number {
  return POP8[b & 0xff];
}

/** Bitmap held in one Uint8Array. */
export class MemBitmap implements PfnBitmap {
  readonly nbits: number;
  readonly bytes: Uint8Array;

  constructor(nbits: number) {
    this.nbits = nbits;
    this.bytes = new Uint8Array(Math.ceil(nbits / 8));
  }

  get(pfn: number): boolean {
    return (this.bytes[pfn >>> 3] & (1 << (pfn & 7))) !== 0;
  }

  set(pfn: number): void {
    this.bytes[pfn >>> 3] |= 1 << (pfn & 7);
  }

  clear(pfn: number): void {
    this.bytes[pfn >>> 3] &= ~(1 << (pfn & 7));
  }

  setRange(start: number, end: number): void {
    this.#range(start, Math.min(end, this.nbits), true);
  }

  clearRange(start: number, end: number): void {
    this.#range(start, Math.min(end, this.nbits), false);
  }

  #range(start: number, end: number, on: boolean): void {
    let p = start;
    while (p < end && (p & 7) !== 0) {
      if (on) this.set(p);
      else this.clear(p);
      p++;
    }
    const fullEnd = end & ~7;
    if (p < fullEnd) {
      this.bytes.fill(on ? 0xff : 0, p >>> 3, fullEnd >>> 3);
      p = fullEnd;
    }
    for (; p < end; p++) {
      if (on) this.set(p);
      else this.clear(p);
    }
  }

  readBytes(byteOffset: number, out: Uint8Array): void {
    const avail = Math.max(0, Math.min(out.length, this.bytes.length - byteOffset));
    if (avail > 0) out.set(this.bytes.subarray(byteOffset, byteOffset + avail));
    if (avail < out.length) out.fill(0, avail);
  }

  popcount(start = 0, end = this.nbits): number {
    let n = 0;
    let p = start;
    while (p < end && (p & 7) !== 0) {
      if (this.get(p)) n++;
      p++;
    }
    const fullEnd = end & ~7;
    for (let i = p >>> 3; i < fullEnd >>> 3; i++) n += POP8[this.bytes[i]];
    for (p = Math.max(p, fullEnd); p < end; p++) if (this.get(p)) n++;
    return n;
  }

  close(): void {}
}
