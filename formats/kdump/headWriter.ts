/**
 * Everything of a kdump-compressed file before the page descriptors (kdump-reference.md 2.3): main header,
 * sub header, notes, both bitmaps, and the header's incomplete flag set afterwards. Shared by the
 * single-file, parallel and split writers.
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import type { Sink } from "../../io/sink.ts";
import { OutputFullError } from "../../io/outputFull.ts";
import {
  DUMP_DH_COMPRESSED_INCOMPLETE,
  encodeMainHeader,
  encodeSubHeader,
  KDUMP_HEADER_VERSION,
  KDUMP_SIGNATURE,
  MH,
} from "./header.ts";
import { type KdumpLayout, kdumpLayout } from "./layout.ts";
import type { KdumpSource, KdumpWriteOptions } from "./writer.ts";

/** Compute the layout of the file writeKdump would produce for `src`. */
function layoutFor(src: KdumpSource): KdumpLayout {
  return kdumpLayout({
    maxMapnr: src.maxMapnr,
    noteSize: src.noteBytes.length,
    blockSize: src.pageSize,
    numDumpable: src.bitmap2.popcount(0, Math.min(src.maxMapnr, src.bitmap2.nbits)),
  });
}

/**
 * Check the source and write everything before the page descriptors (headers, notes, both bitmaps); returns
 * the layout. Shared by {@link writeKdump} and the parallel writer (formats/kdump/parallelWriter.ts).
 */
export function writeKdumpHead(
  src: KdumpSource,
  codecFlag: number,
  opts: Pick<KdumpWriteOptions, "sink" | "extraStatus" | "control">,
): KdumpLayout {
  const ps = src.pageSize;
  const sink = opts.sink;
  if (src.bitmap1.nbits < src.maxMapnr || src.bitmap2.nbits < src.maxMapnr) {
    throw new VmsiftError(`bitmaps cover fewer than max_mapnr (${src.maxMapnr}) pfns`, { file: sink.label });
  }
  const L = layoutFor(src);
  const limit = opts.control?.sizeLimit;
  const headEnd = L.pageDataOffset + ((src.dumpLevel & 1) !== 0 ? ps : 0);
  if (limit !== undefined && headEnd > limit) {
    // Nothing useful fits: no incomplete file can be made at this level (the caller may retry at the next).
    throw new OutputFullError(
      "size-limit",
      `size limit ${limit} is smaller than the headers, bitmaps and page descriptors (${headEnd} bytes)`,
      sink.label,
    );
  }
  const status = (codecFlag | (opts.extraStatus ?? 0)) >>> 0;

  // Header area: block 0, sub header, notes, padding up to the 1st bitmap.
  const head = new Uint8Array(L.offsetBitmap1);
  head.set(
    encodeMainHeader({
      signature: KDUMP_SIGNATURE,
      headerVersion: KDUMP_HEADER_VERSION,
      utsname: src.utsname,
      timestampSec: src.crashTime,
      timestampUsec: 0,
      status,
      blockSize: ps,
      subHdrSize: L.subHdrSize,
      bitmapBlocks: L.bitmapBlocks,
      maxMapnr: src.maxMapnr,
      totalRamBlocks: 0,
      deviceBlocks: 0,
      writtenBlocks: 0,
      currentCpu: 0,
      nrCpus: src.nrCpus,
    }),
    0,
  );
  const hasVmcoreinfo = src.vmcoreinfoOffsetInNotes >= 0 && src.vmcoreinfoSize > 0;
  head.set(
    encodeSubHeader({
      physBase: src.physBase,
      dumpLevel: src.dumpLevel,
      split: 0,
      startPfn: 0,
      endPfn: 0,
      offsetVmcoreinfo: hasVmcoreinfo ? L.offsetNote + src.vmcoreinfoOffsetInNotes : 0,
      sizeVmcoreinfo: hasVmcoreinfo ? src.vmcoreinfoSize : 0,
      offsetNote: L.offsetNote,
      sizeNote: src.noteBytes.length,
      offsetEraseinfo: 0,
      sizeEraseinfo: 0,
      startPfn64: 0,
      endPfn64: 0,
      maxMapnr64: src.maxMapnr,
    }),
    L.offsetSubHeader,
  );
  head.set(src.noteBytes, L.offsetNote);
  sink.write(0, head);

  writeBitmap(sink, src.bitmap1, L.offsetBitmap1, L.bitmapBytes, src.maxMapnr);
  writeBitmap(sink, src.bitmap2, L.offsetBitmap2, L.bitmapBytes, src.maxMapnr);
  return L;
}

/** Write `bytes` bytes of bitmap starting at file offset `at`, clearing bits >= maxMapnr. */
function writeBitmap(sink: Sink, bm: PfnBitmap, at: number, bytes: number, maxMapnr: number): void {
  const chunk = new Uint8Array(Math.min(bytes, 1 << 20));
  const used = Math.ceil(maxMapnr / 8);
  for (let pos = 0; pos < bytes; pos += chunk.length) {
    const n = Math.min(chunk.length, bytes - pos);
    const part = chunk.subarray(0, n);
    if (pos < used) bm.readBytes(pos, part);
    else part.fill(0);
    // Bytes past max_mapnr are zero; the last used byte keeps only bits below max_mapnr.
    if (pos + n > used) {
      const from = Math.max(0, used - pos);
      part.fill(0, from);
      if (maxMapnr % 8 !== 0 && used - 1 >= pos && used - 1 < pos + n) {
        part[used - 1 - pos] &= (1 << (maxMapnr % 8)) - 1;
      }
    }
    sink.write(at + pos, part);
  }
}

/** Set the incomplete flag (status 0x8) in a kdump header written with `status`. */
export function markKdumpIncomplete(sink: Sink, status: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, (status | DUMP_DH_COMPRESSED_INCOMPLETE) >>> 0, true);
  sink.rewrite(MH.status, b);
}
