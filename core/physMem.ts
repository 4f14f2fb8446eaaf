/**
 * Physical memory of the crashed machine as the rest of vmsift sees it, whatever the input format
 * (ELF vmcore, kdump-compressed file, ...). Physical addresses fit in 52 bits, so they are plain numbers.
 */

/** One contiguous range of physical memory backed by the input. */
export interface PhysSegment {
  /** First physical byte address. */
  paddr: number;
  /** Bytes of memory the segment describes (p_memsz). */
  memSize: number;
  /** Bytes backed by file data (p_filesz, ≤ memSize); the rest reads as zeros. */
  fileSize: number;
  /** Where the data starts in the input file. */
  fileOffset: number;
  /** p_vaddr as written (kernel virtual address, 0 in QEMU dumps); 64-bit, so bigint. */
  vaddr: bigint;
}

/** Read access to physical memory. */
export interface PhysicalMemory {
  /** Name of the input, for messages. */
  readonly label: string;
  /** Segments sorted by paddr, non-overlapping. */
  readonly segments: readonly PhysSegment[];
  /** ELF e_machine of the input when it says (62 x86_64, 183 arm64); else VMCOREINFO tells the architecture. */
  readonly elfMachine?: number;
  /**
   * Fill `out` with the bytes at [paddr, paddr + out.length). Returns false when any byte of that range is
   * outside every segment (then the content of `out` is unspecified). Reads go to the file in one call per
   * segment touched, so callers should pass large buffers.
   */
  readPhys(paddr: number, out: Uint8Array): boolean;
  /**
   * Optional: the bytes at [paddr, paddr + len) without a copy (a view of an mmap window), or null when that
   * is not possible (not mapped, crosses a segment end or a hole, unaligned); callers then use readPhys.
   * The view is valid only until the next readPhys or viewPhys call on this object (the window moves).
   */
  viewPhys?(paddr: number, len: number): Uint8Array | null;
}

/** Index of the segment holding paddr, or -1 (binary search over sorted segments). */
export function findSegment(segments: readonly PhysSegment[], paddr: number): number {
  let lo = 0, hi = segments.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = segments[mid];
    if (paddr < s.paddr) hi = mid - 1;
    else if (paddr >= s.paddr + s.memSize) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/**
 * Read `out.length` bytes at physical `paddr` from sorted, non-overlapping `segments`: file bytes through
 * `readFile(fileOffset, part)`, zeros past a segment's file-backed part. False (out partly filled) when the
 * range leaves the segments.
 */
export function readSegments(
  segments: readonly PhysSegment[],
  paddr: number,
  out: Uint8Array,
  readFile: (fileOffset: number, part: Uint8Array) => void,
): boolean {
  let pos = 0;
  let idx = findSegment(segments, paddr);
  while (pos < out.length) {
    if (idx < 0 || idx >= segments.length) return false;
    const s = segments[idx];
    const a = paddr + pos;
    if (a < s.paddr || a >= s.paddr + s.memSize) return false;
    const inSeg = Math.min(out.length - pos, s.paddr + s.memSize - a);
    const rel = a - s.paddr;
    const fromFile = Math.max(0, Math.min(inSeg, s.fileSize - rel));
    if (fromFile > 0) readFile(s.fileOffset + rel, out.subarray(pos, pos + fromFile));
    if (fromFile < inSeg) out.fill(0, pos + fromFile, pos + inSeg);
    pos += inSeg;
    idx++;
  }
  return true;
}
