/**
 * Where everything goes in a kdump-compressed file (kdump-reference.md section 4): a pure function of
 * max_mapnr, the size of the copied PT_NOTE, the block size and the number of dumpable pages.
 *
 * ```
 * 0                       main header (464 bytes, rest of block 0 zero)
 * blockSize               sub header (104 bytes)
 * blockSize + 104         PT_NOTE copy (noteSize bytes)
 * (1 + subHdrSize) * bs   1st bitmap (bitmapBlocksEach blocks), then the 2nd bitmap
 * dataOffset              page descriptors, numDumpable x 24 bytes
 * pageDataOffset          page data (shared zero page first when dump_level & 1)
 * ```
 */

/** Size of struct disk_dump_header on LP64. */
export const MAIN_HEADER_SIZE = 464;
/** Size of struct kdump_sub_header on LP64 (header_version 6). */
export const SUB_HEADER_SIZE = 104;
/** Size of struct page_desc. */
export const PAGE_DESC_SIZE = 24;

/** Inputs of {@link kdumpLayout}. */
export interface LayoutInput {
  /** Number of pfns the bitmaps cover. */
  maxMapnr: number;
  /** Bytes of the copied PT_NOTE segment. */
  noteSize: number;
  /** Block size = page size (4096 on x86_64). */
  blockSize: number;
  /** Page descriptors = set bits of the 2nd bitmap. */
  numDumpable: number;
}

/** Every offset of a kdump-compressed file. Offsets and sizes in bytes unless the name says blocks. */
export interface KdumpLayout extends LayoutInput {
  /** sub_hdr_size: blocks holding the sub header and the notes. */
  subHdrSize: number;
  /** Blocks of ONE bitmap (B). */
  bitmapBlocksEach: number;
  /** bitmap_blocks field: blocks of both bitmaps (2B). */
  bitmapBlocks: number;
  /** Bytes of one bitmap on disk (B * blockSize). */
  bitmapBytes: number;
  /** File offset of the sub header (= blockSize). */
  offsetSubHeader: number;
  /** offset_note: blockSize + 104. */
  offsetNote: number;
  /** File offset of bitmap 1 (present pages). */
  offsetBitmap1: number;
  /** File offset of bitmap 2 (dumped pages). */
  offsetBitmap2: number;
  /** Start of the page descriptor array: (1 + subHdrSize + bitmapBlocks) * blockSize. */
  dataOffset: number;
  /** Start of page data, right after the descriptors (not block aligned). */
  pageDataOffset: number;
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** Compute the layout; throws RangeError on nonsense input (negative sizes, non power-of-two block). */
export function kdumpLayout(inp: LayoutInput): KdumpLayout {
  const { maxMapnr, noteSize, blockSize, numDumpable } = inp;
  if (!(blockSize >= 512 && (blockSize & (blockSize - 1)) === 0)) {
    throw new RangeError(`block size ${blockSize} is not a power of two >= 512`);
  }
  if (!(maxMapnr >= 0 && noteSize >= 0 && numDumpable >= 0) || numDumpable > maxMapnr) {
    throw new RangeError(`bad layout input ${JSON.stringify(inp)}`);
  }
  const subHdrSize = ceilDiv(SUB_HEADER_SIZE + noteSize, blockSize);
  const bitmapBlocksEach = ceilDiv(ceilDiv(maxMapnr, 8), blockSize);
  const bitmapBlocks = 2 * bitmapBlocksEach;
  const bitmapBytes = bitmapBlocksEach * blockSize;
  const offsetBitmap1 = (1 + subHdrSize) * blockSize;
  const dataOffset = (1 + subHdrSize + bitmapBlocks) * blockSize;
  return {
    maxMapnr,
    noteSize,
    blockSize,
    numDumpable,
    subHdrSize,
    bitmapBlocksEach,
    bitmapBlocks,
    bitmapBytes,
    offsetSubHeader: blockSize,
    offsetNote: blockSize + SUB_HEADER_SIZE,
    offsetBitmap1,
    offsetBitmap2: offsetBitmap1 + bitmapBytes,
    dataOffset,
    pageDataOffset: dataOffset + numDumpable * PAGE_DESC_SIZE,
  };
}
