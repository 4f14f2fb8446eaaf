/**
 * A bitmap of page frame numbers: bit for pfn p is bit (p & 7) of byte (p >> 3), LSB first — the kdump
 * on-disk order. Two backends implement it: MemBitmap (here) and a file-backed one through a block cache
 * (io/, for machines whose bitmaps do not fit the memory budget).
 */
export interface PfnBitmap {
  /** Number of bits (max_mapnr). */
  readonly nbits: number;
  /** True when the bit of `pfn` is set. */
  get(pfn: number): boolean;
  /** Set the bit of `pfn`. */
  set(pfn: number): void;
  /** Clear the bit of `pfn`. */
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

/**
 * Walk bits [start, end) the way both bitmap backends do ranges: `bit(p)` for the bits before the first byte
 * boundary and after the last, `bytes(from, to)` once for the whole bytes between (byte indexes). Plain
 * arithmetic, so ranges past 2^31 bits work.
 */
export function forBitRange(
  start: number,
  end: number,
  bit: (pfn: number) => void,
  bytes: (fromByte: number, toByte: number) => void,
): void {
  let p = start;
  while (p < end && p % 8 !== 0) bit(p++);
  const fullEnd = end - (end % 8);
  if (p < fullEnd) {
    bytes(p / 8, fullEnd / 8);
    p = fullEnd;
  }
  for (; p < end; p++) bit(p);
}

/** Bitmap held in one Uint8Array. */
export class MemBitmap implements PfnBitmap {
  readonly nbits: number;
  /** The bits, kdump on-disk order (bit `pfn & 7` of byte `pfn >> 3`). */
  readonly bytes: Uint8Array;

  /** An all-clear bitmap of `nbits` bits. */
  constructor(nbits: number) {
    this.nbits = nbits;
    this.bytes = new Uint8Array(Math.ceil(nbits / 8));
  }

  /** True when the bit of `pfn` is set. */
  get(pfn: number): boolean {
    return (this.bytes[pfn >>> 3] & (1 << (pfn & 7))) !== 0;
  }

  /** Set the bit of `pfn`. */
  set(pfn: number): void {
    this.bytes[pfn >>> 3] |= 1 << (pfn & 7);
  }

  /** Clear the bit of `pfn`. */
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
    forBitRange(
      start,
      end,
      (p) => on ? this.set(p) : this.clear(p),
      (a, b) => this.bytes.fill(on ? 0xff : 0, a, b),
    );
  }

  readBytes(byteOffset: number, out: Uint8Array): void {
    const avail = Math.max(0, Math.min(out.length, this.bytes.length - byteOffset));
    if (avail > 0) out.set(this.bytes.subarray(byteOffset, byteOffset + avail));
    if (avail < out.length) out.fill(0, avail);
  }

  popcount(start = 0, end = this.nbits): number {
    let n = 0;
    const bytes = this.bytes;
    forBitRange(start, end, (p) => {
      if (this.get(p)) n++;
    }, (a, b) => {
      for (let i = a; i < b; i++) n += POP8[bytes[i]];
    });
    return n;
  }

  close(): void {}
}
