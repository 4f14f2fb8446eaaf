/**
 * `--reassemble F1 ... OUT`: merge the files of a --split dump into one kdump-compressed file
 * (kdump-reference.md 4.8; makedumpfile's store/sort/check_splitting_info, reassemble_kdump_header and
 * reassemble_kdump_pages).
 *
 * - The parts may be given in any order; they are sorted by start_pfn and must cover [0, max_mapnr)
 *   without gaps or overlaps. Their main headers must be identical except for the incomplete flag (0x8),
 *   which the output gets when any part has it (makedumpfile demands identical headers, then takes the
 *   first incomplete part's header).
 * - Main header, sub header, notes (with VMCOREINFO) and both bitmaps come from the part starting at pfn 0;
 *   the sub header's split, start_pfn, end_pfn, start_pfn_64, end_pfn_64 are cleared.
 * - Descriptors are rebuilt in pfn order from each part's descriptor array (which holds only its range's
 *   pages), page data copied verbatim; a descriptor pointing at the part's shared zero page (first page of
 *   data when dump_level & 1) points at the output's. Descriptors never written (offset 0, incomplete part)
 *   stay zero in the output (still "not written" for crash) — makedumpfile instead turns them into size-0
 *   descriptors at a real offset, which no reader can use.
 * - eraseinfo of all parts is appended after the page data and the sub header updated.
 *
 * For a dump written by writeKdumpSplit the result is byte-identical to writeKdump's direct file.
 */
import { VmsiftError } from "../../core/errors.ts";
import { MemBitmap } from "../../core/bitmap.ts";
import { PositionalFile } from "../../io/positionalFile.ts";
import {
  decodeMainHeader,
  decodeSubHeader,
  DUMP_DH_COMPRESSED_INCOMPLETE,
  encodeMainHeader,
  encodeSubHeader,
  KDUMP_SIGNATURE,
  type MainHeader,
  MH,
  SH,
  type SubHeader,
} from "./header.ts";
import { MAIN_HEADER_SIZE, PAGE_DESC_SIZE, SUB_HEADER_SIZE } from "./layout.ts";
import type { Sink } from "../../io/sink.ts";

/** One part of a split dump, as read from its headers. */
export interface SplitPart {
  path: string;
  header: MainHeader;
  subHeader: SubHeader;
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
}

/** What {@link reassembleKdump} did. */
export interface ReassembleResult {
  /** The parts in pfn order. */
  parts: SplitPart[];
  maxMapnr: number;
  /** Descriptors written (= popcount of bitmap 2). */
  numDumpable: number;
  zeroPages: number;
  /** Descriptors that were never written in an (incomplete) part. */
  notWritten: number;
  incomplete: boolean;
  eraseinfoBytes: number;
  fileSize: number;
}

const DESC_BATCH = 8192;
const WINDOW = 4 << 20;

/** Read and check the headers of one part. */
function readSplitPart(path: string): SplitPart {
  const f = PositionalFile.open(path);
  try {
    const head = new Uint8Array(MAIN_HEADER_SIZE);
    if (f.readAt(0, head) < MAIN_HEADER_SIZE) {
      throw new VmsiftError("not a kdump-compressed file (too short)", { file: path, offset: 0 });
    }
    const h = decodeMainHeader(head);
    if (h.signature !== KDUMP_SIGNATURE) {
      throw new VmsiftError(`not a kdump-compressed file (signature ${JSON.stringify(h.signature)})`, {
        file: path,
        offset: 0,
      });
    }
    const bs = h.blockSize;
    if (!(bs >= 1024 && bs <= 262144 && (bs & (bs - 1)) === 0)) {
      throw new VmsiftError(`bad block_size ${bs}`, { file: path, offset: MH.blockSize });
    }
    if (h.headerVersion < 2) {
      throw new VmsiftError(`header_version ${h.headerVersion} has no split fields`, {
        file: path,
        offset: MH.headerVersion,
      });
    }
    const sub = new Uint8Array(SUB_HEADER_SIZE);
    f.readExact(bs, sub);
    const s = decodeSubHeader(sub);
    if (s.split === 0) {
      throw new VmsiftError("not a split dump file (sub header split = 0)", {
        file: path,
        offset: bs + SH.split,
      });
    }
    const v6 = h.headerVersion >= 6;
    return {
      path,
      header: h,
      subHeader: s,
      startPfn: v6 ? s.startPfn64 : s.startPfn,
      endPfn: v6 ? s.endPfn64 : s.endPfn,
    };
  } finally {
    f.close();
  }
}

/** Main headers equal apart from the incomplete flag. */
function sameDump(a: Uint8Array, b: Uint8Array): boolean {
  const x = a.slice(), y = b.slice();
  const clear = (u: Uint8Array) => {
    const dv = new DataView(u.buffer);
    dv.setUint32(MH.status, dv.getUint32(MH.status, true) & ~DUMP_DH_COMPRESSED_INCOMPLETE, true);
  };
  clear(x);
  clear(y);
  return x.every((v, i) => v === y[i]);
}

/** Parts sorted by start pfn, checked to be one dump covering [0, max_mapnr) exactly once. */
function checkSplitParts(inputs: string[]): SplitPart[] {
  if (inputs.length < 2) throw new VmsiftError("--reassemble needs at least 2 split files", {});
  const parts = inputs.map(readSplitPart);
  const h0 = encodeMainHeader(parts[0].header);
  for (const p of parts.slice(1)) {
    if (!sameDump(h0, encodeMainHeader(p.header))) {
      throw new VmsiftError(`not a part of the same dump as ${parts[0].path} (main headers differ)`, {
        file: p.path,
        offset: 0,
      });
    }
  }
  parts.sort((a, b) => a.startPfn - b.startPfn);
  const h = parts[0].header;
  const maxMapnr = h.headerVersion >= 6 ? parts[0].subHeader.maxMapnr64 : h.maxMapnr;
  let end = 0;
  for (const p of parts) {
    if (p.startPfn !== end || p.endPfn < p.startPfn) {
      throw new VmsiftError(
        `no split file holds pfns 0x${end.toString(16)}-0x${p.startPfn.toString(16)} ` +
          `(this file holds 0x${p.startPfn.toString(16)}-0x${p.endPfn.toString(16)})`,
        { file: p.path },
      );
    }
    end = p.endPfn;
  }
  if (end !== maxMapnr) {
    throw new VmsiftError(
      `no split file holds pfns 0x${end.toString(16)}-0x${maxMapnr.toString(16)} (max_mapnr)`,
      { file: parts[parts.length - 1].path },
    );
  }
  return parts;
}

/**
 * Merge the split files `inputs` into `sink` (finished here; the caller closes it, or aborts it on error).
 * Throws VmsiftError naming the part and offset on any inconsistency.
 */
export function reassembleKdump(inputs: string[], sink: Sink): ReassembleResult {
  const parts = checkSplitParts(inputs);
  const first = parts[0];
  const h = { ...first.header };
  const incomplete = parts.some((p) => (p.header.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0);
  if (incomplete) h.status = (h.status | DUMP_DH_COMPRESSED_INCOMPLETE) >>> 0;
  const s: SubHeader = {
    ...first.subHeader,
    split: 0,
    startPfn: 0,
    endPfn: 0,
    startPfn64: 0,
    endPfn64: 0,
    offsetEraseinfo: 0,
    sizeEraseinfo: 0,
  };
  const bs = h.blockSize;
  const maxMapnr = h.headerVersion >= 6 ? s.maxMapnr64 : h.maxMapnr;
  const offsetBitmap1 = (1 + h.subHdrSize) * bs;
  const bitmapBytes = h.bitmapBlocks * bs;
  const dataOffset = offsetBitmap1 + bitmapBytes;

  const f0 = PositionalFile.open(first.path);
  let bitmap2: MemBitmap;
  try {
    // Head: main header, sub header, notes and VMCOREINFO of the first part; zeros elsewhere.
    const head = new Uint8Array(offsetBitmap1);
    head.set(encodeMainHeader(h), 0);
    head.set(encodeSubHeader(s), bs);
    const copy = (off: number, size: number, what: string) => {
      if (size === 0 || off === 0) return;
      if (off < bs + SUB_HEADER_SIZE || off + size > offsetBitmap1) {
        throw new VmsiftError(
          `${what} (${size} bytes at 0x${off.toString(16)}) lies outside the header area`,
          {
            file: first.path,
            offset: bs,
          },
        );
      }
      f0.readExact(off, head.subarray(off, off + size));
    };
    if (h.headerVersion >= 4) copy(s.offsetNote, s.sizeNote, "notes");
    if (h.headerVersion >= 3) copy(s.offsetVmcoreinfo, s.sizeVmcoreinfo, "VMCOREINFO");
    sink.write(0, head);
    // Both bitmaps verbatim.
    const chunk = new Uint8Array(Math.min(bitmapBytes, 1 << 20));
    for (let pos = 0; pos < bitmapBytes; pos += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, bitmapBytes - pos));
      f0.readExact(offsetBitmap1 + pos, part);
      sink.write(offsetBitmap1 + pos, part);
    }
    bitmap2 = new MemBitmap(maxMapnr);
    const used = Math.ceil(maxMapnr / 8);
    f0.readExact(offsetBitmap1 + bitmapBytes / 2, bitmap2.bytes.subarray(0, used));
    if (maxMapnr % 8 !== 0) bitmap2.bytes[used - 1] &= (1 << (maxMapnr % 8)) - 1;
  } finally {
    f0.close();
  }

  const numDumpable = bitmap2.popcount();
  const pageDataOffset = dataOffset + numDumpable * PAGE_DESC_SIZE;
  const excludeZero = (s.dumpLevel & 1) !== 0;
  const out = new DescDataWriter(sink, dataOffset, pageDataOffset, bs << 4);
  if (excludeZero) out.addData(new Uint8Array(bs));
  const res: ReassembleResult = {
    parts,
    maxMapnr,
    numDumpable,
    zeroPages: 0,
    notWritten: 0,
    incomplete,
    eraseinfoBytes: 0,
    fileSize: 0,
  };

  const descBuf = new Uint8Array(DESC_BATCH * PAGE_DESC_SIZE);
  const dv = new DataView(descBuf.buffer);
  const win = new Uint8Array(WINDOW);
  for (const p of parts) {
    const count = bitmap2.popcount(p.startPfn, p.endPfn);
    const f = PositionalFile.open(p.path);
    try {
      let winStart = 0, winLen = 0;
      for (let i = 0; i < count; i += DESC_BATCH) {
        const n = Math.min(DESC_BATCH, count - i);
        const at = dataOffset + i * PAGE_DESC_SIZE;
        const got = f.readAt(at, descBuf.subarray(0, n * PAGE_DESC_SIZE));
        descBuf.fill(0, got, n * PAGE_DESC_SIZE);
        for (let k = 0; k < n; k++) {
          const o = k * PAGE_DESC_SIZE;
          const off = dv.getInt32(o + 4, true) * 0x1_0000_0000 + dv.getUint32(o, true);
          const size = dv.getUint32(o + 8, true);
          const where = { file: p.path, offset: at + o };
          if (off === 0) {
            out.addUnwritten();
            res.notWritten++;
            continue;
          }
          if (excludeZero && off === pageDataOffset) {
            out.addZero(pageDataOffset, bs);
            res.zeroPages++;
            continue;
          }
          if (off < 0 || size === 0 || size > bs || off + size > f.size) {
            throw new VmsiftError(`bad page descriptor (offset 0x${off.toString(16)}, size ${size})`, where);
          }
          if (off < winStart || off + size > winStart + winLen) {
            winStart = off;
            winLen = f.readAt(off, win);
          }
          out.addPage(
            descBuf.subarray(o, o + PAGE_DESC_SIZE),
            win.subarray(off - winStart, off - winStart + size),
          );
        }
      }
    } finally {
      f.close();
    }
  }
  out.flush();

  // eraseinfo of every part, in pfn order.
  const eraseOffset = out.dataEnd;
  for (const p of parts) {
    const { offsetEraseinfo: off, sizeEraseinfo: size } = p.subHeader;
    if (p.header.headerVersion < 5 || size === 0) continue;
    const f = PositionalFile.open(p.path);
    try {
      const b = new Uint8Array(size);
      f.readExact(off, b);
      out.addData(b);
      res.eraseinfoBytes += size;
    } finally {
      f.close();
    }
  }
  out.flush();
  if (res.eraseinfoBytes > 0) {
    const e = new Uint8Array(16);
    const ev = new DataView(e.buffer);
    setU64(ev, 0, eraseOffset);
    setU64(ev, 8, res.eraseinfoBytes);
    sink.rewrite(bs + SH.offsetEraseinfo, e);
  }
  res.fileSize = out.dataEnd;
  sink.finish(res.fileSize);
  return res;
}

function setU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 0x1_0000_0000, true);
  dv.setUint32(at + 4, Math.floor(v / 0x1_0000_0000), true);
}

/**
 * Descriptors and data through two caches flushed together, data first (like the writer's PagePairWriter,
 * so an interrupted reassembly leaves only descriptors that point at written data), taking descriptors as
 * their 24 source bytes (size, flags and page_flags kept) with the offset replaced.
 */
class DescDataWriter {
  readonly #sink: Sink;
  readonly #desc: Uint8Array;
  readonly #descView: DataView;
  #descLen = 0;
  #descPos: number;
  readonly #data: Uint8Array;
  #dataLen = 0;
  #dataPos: number;

  constructor(sink: Sink, descOffset: number, dataOffset: number, cacheSize: number) {
    this.#sink = sink;
    this.#desc = new Uint8Array(Math.max(cacheSize, PAGE_DESC_SIZE));
    this.#descView = new DataView(this.#desc.buffer);
    this.#descPos = descOffset;
    this.#data = new Uint8Array(cacheSize);
    this.#dataPos = dataOffset;
  }

  get dataEnd(): number {
    return this.#dataPos + this.#dataLen;
  }

  flush(): void {
    if (this.#dataLen > 0) this.#sink.write(this.#dataPos, this.#data.subarray(0, this.#dataLen));
    this.#dataPos += this.#dataLen;
    this.#dataLen = 0;
    if (this.#descLen > 0) this.#sink.write(this.#descPos, this.#desc.subarray(0, this.#descLen));
    this.#descPos += this.#descLen;
    this.#descLen = 0;
  }

  /** Bytes appended to the data area without a descriptor (zero page, eraseinfo). */
  addData(b: Uint8Array): void {
    for (let pos = 0; pos < b.length;) {
      if (this.#dataLen === this.#data.length) this.flush();
      const n = Math.min(b.length - pos, this.#data.length - this.#dataLen);
      this.#data.set(b.subarray(pos, pos + n), this.#dataLen);
      this.#dataLen += n;
      pos += n;
    }
  }

  #desc24(src: Uint8Array | null, offset: number): void {
    if (this.#descLen + PAGE_DESC_SIZE > this.#desc.length) this.flush();
    const at = this.#descLen;
    if (src !== null) this.#desc.set(src, at);
    else this.#desc.fill(0, at, at + PAGE_DESC_SIZE);
    this.#descView.setUint32(at, offset % 0x1_0000_0000, true);
    this.#descView.setUint32(at + 4, Math.floor(offset / 0x1_0000_0000), true);
    this.#descLen += PAGE_DESC_SIZE;
  }

  /** A descriptor that was never written (all zero). */
  addUnwritten(): void {
    this.#desc24(null, 0);
  }

  /** makedumpfile's pd_zero: the shared zero page at `offset`, raw, one page. */
  addZero(offset: number, pageSize: number): void {
    this.#desc24(null, offset);
    this.#descView.setUint32(this.#descLen - PAGE_DESC_SIZE + 8, pageSize, true);
  }

  /** A descriptor (source bytes) and its page data, appended at the end of the data. */
  addPage(src: Uint8Array, data: Uint8Array): void {
    if (this.#dataLen + data.length > this.#data.length) this.flush();
    this.#desc24(src, this.#dataPos + this.#dataLen);
    this.#data.set(data, this.#dataLen);
    this.#dataLen += data.length;
  }
}
