/**
 * Reader of kdump-compressed files (kdump-reference.md 4, 10, 11.1). `KdumpFile.open` validates what crash
 * and libkdumpfile validate (signature, header_version, block size, bitmap sizes, file size) and throws a
 * VmsiftError with the file and offset. Descriptors are found like crash does: prefix counts of bitmap 2
 * (here per 64 pfns). Pages are decompressed by flag with codecs from formats/codecs/registry.ts, one instance
 * per flag per KdumpFile, made on first use (the registry's engines, see `codecImpl`). KdumpFile implements
 * PhysicalMemory for re-filtering: its segments are the runs of bitmap 1, and pages missing from bitmap 2 read
 * as "not available" (false) unless `zeroExcluded` is set (then zeros, like crash --zero_excluded).
 */
import { VmsiftError } from "../../core/errors.ts";
import { MemBitmap, popcount8 } from "../../core/bitmap.ts";
import type { PhysicalMemory, PhysSegment } from "../../core/physMem.ts";
import { PositionalFile } from "../../io/positionalFile.ts";
import {
  type CodecImplChoice,
  codecNameForFlag,
  createCodec,
  type CreatedCodec,
} from "../codecs/registry.ts";
import {
  decodeMainHeader,
  decodeSubHeader,
  DISKDUMP_SIGNATURE,
  DUMP_DH_COMPRESSED_INCOMPLETE,
  KDUMP_SIGNATURE,
  type MainHeader,
  type SubHeader,
} from "./header.ts";
import {
  type KdumpLayout,
  kdumpLayout,
  MAIN_HEADER_SIZE,
  PAGE_DESC_SIZE,
  SUB_HEADER_SIZE,
} from "./layout.ts";

/** Name of a descriptor flag value. */
export function flagName(flag: number): string {
  switch (flag) {
    case 0:
      return "raw";
    case 0x1:
      return "zlib";
    case 0x2:
      return "lzo";
    case 0x4:
      return "snappy";
    case 0x20:
      return "zstd";
    default:
      return `0x${flag.toString(16)}`;
  }
}

/** First 16 bytes of a flattened stream. */
export const FLAT_SIGNATURE = "makedumpfile";

/** A page descriptor (struct page_desc). */
export interface PageDesc {
  /** File offset of the page's data (0: never written, incomplete dump). */
  offset: number;
  /** Bytes of data. */
  size: number;
  /** Codec flag of the data, 0 when stored raw. */
  flags: number;
}

/** Options of KdumpFile.open. */
export interface KdumpOpenOptions {
  /** readPhys fills excluded pages with zeros instead of returning false. */
  zeroExcluded?: boolean;
  /** Codec engine for decoding (registry createCodec `impl`: "auto", "builtin", "libz", ...); default "auto". */
  codecImpl?: CodecImplChoice;
}

const DESC_CHUNK = 2048;

/**
 * What a KdumpFile reads from: a PositionalFile, or any positional byte source with the same contract
 * (e.g. the record index of a flattened stream, formats/kdump/inputKdump.ts).
 */
export interface RandomAccessFile {
  /** Name for messages. */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  /** Read up to `out.length` bytes at `offset`; returns the count (less only at the end). */
  readAt(offset: number, out: Uint8Array): number;
  /** Read exactly `out.length` bytes at `offset` or throw VmsiftError. */
  readExact(offset: number, out: Uint8Array): void;
  /** Release the file. */
  close(): void;
}

/** An open kdump-compressed file. */
export class KdumpFile implements PhysicalMemory {
  readonly label: string;
  /** The path it was opened from. */
  readonly path: string;
  /** The file the dump is read from (plain, or a flattened stream's index). */
  readonly file: RandomAccessFile;
  /** The main header. */
  readonly header: MainHeader;
  /** The sub header. */
  readonly subHeader: SubHeader;
  /** max_mapnr_64 for header_version >= 6, else the 32-bit field. */
  readonly maxMapnr: number;
  /** Bytes per page (block_size). */
  readonly blockSize: number;
  /** Layout recomputed from the header (bitmapBlocks from the file may exceed the computed one). */
  readonly layout: KdumpLayout;
  /** File offsets of the two bitmaps as the file says (half of bitmap_blocks each). */
  readonly offsetBitmap1: number;
  /** File offset of bitmap 2. */
  readonly offsetBitmap2: number;
  /** Bitmap 1: pages present. */
  readonly bitmap1: MemBitmap;
  /** Bitmap 2: pages dumped. */
  readonly bitmap2: MemBitmap;
  /** popcount(bitmap2) = number of descriptors. */
  readonly numDumpable: number;
  /** The copied PT_NOTE bytes (empty if none). */
  readonly notes: Uint8Array;
  /** VMCOREINFO text from offset_vmcoreinfo, if any. */
  readonly vmcoreinfo: string | undefined;
  /** status & 0x8. */
  readonly incomplete: boolean;
  readonly segments: PhysSegment[];
  /** True when dump_level excluded zero pages (they share one zero page). */
  readonly zeroExcluded: boolean;
  /** prefix[i] = set bits of bitmap2 below pfn 64*i. */
  readonly #prefix: Uint32Array;
  #descBuf = new Uint8Array(DESC_CHUNK * PAGE_DESC_SIZE);
  #descView = new DataView(this.#descBuf.buffer);
  #descChunk = -1;
  #pageScratch: Uint8Array;
  #cacheKey = -1;
  #cacheSize = -1;
  #cacheFlags = -1;
  #cachePage: Uint8Array;
  #dataBuf = new Uint8Array(0);
  readonly #codecImpl: CodecImplChoice;
  /** Decoders by descriptor flag, made on first use. */
  readonly #codecs = new Map<number, CreatedCodec>();

  private constructor(file: RandomAccessFile, opts: KdumpOpenOptions) {
    const path = file.path;
    this.path = path;
    this.label = path;
    this.file = file;
    this.zeroExcluded = !!opts.zeroExcluded;
    this.#codecImpl = opts.codecImpl ?? "auto";
    const size = file.size;
    if (size < MAIN_HEADER_SIZE) {
      throw new VmsiftError(`not a kdump-compressed file: only ${size} bytes`, { file: path, offset: 0 });
    }
    const head = new Uint8Array(MAIN_HEADER_SIZE);
    file.readExact(0, head);
    const sig = String.fromCharCode(...head.subarray(0, 8));
    if (String.fromCharCode(...head.subarray(0, 12)) === FLAT_SIGNATURE) {
      throw new VmsiftError("flattened format (makedumpfile -F): rebuild it first (makedumpfile -R)", {
        file: path,
        offset: 0,
      });
    }
    if (sig === DISKDUMP_SIGNATURE) {
      throw new VmsiftError("legacy DISKDUMP files are not supported", { file: path, offset: 0 });
    }
    if (sig !== KDUMP_SIGNATURE) {
      throw new VmsiftError(`not a kdump-compressed file (signature ${JSON.stringify(sig)})`, {
        file: path,
        offset: 0,
      });
    }
    const h = decodeMainHeader(head);
    this.header = h;
    if (h.headerVersion < 1 || h.headerVersion > 64) {
      throw new VmsiftError(`unsupported header_version ${h.headerVersion}`, { file: path, offset: 8 });
    }
    const bs = h.blockSize;
    if (!(bs >= 1024 && bs <= 262144 && (bs & (bs - 1)) === 0)) {
      throw new VmsiftError(`bad block_size ${bs} (power of two 1024..262144 expected)`, {
        file: path,
        offset: 428,
      });
    }
    this.blockSize = bs;
    if (size < bs + SUB_HEADER_SIZE) {
      throw new VmsiftError(`file ends (${size} bytes) before the end of the sub header`, {
        file: path,
        offset: bs,
      });
    }
    const sub = new Uint8Array(SUB_HEADER_SIZE);
    file.readExact(bs, sub);
    this.subHeader = decodeSubHeader(sub);
    const s = this.subHeader;
    this.maxMapnr = h.headerVersion >= 6 ? s.maxMapnr64 : h.maxMapnr;
    if (h.headerVersion >= 6 && h.maxMapnr !== Math.min(s.maxMapnr64, 0xffffffff)) {
      throw new VmsiftError(
        `max_mapnr ${h.maxMapnr} disagrees with max_mapnr_64 ${s.maxMapnr64}`,
        { file: path, offset: 440 },
      );
    }
    if (this.maxMapnr <= 0 || this.maxMapnr > 2 ** 40) {
      throw new VmsiftError(`implausible max_mapnr ${this.maxMapnr}`, { file: path, offset: bs + 96 });
    }
    if (h.subHdrSize <= 0 || h.subHdrSize > size / bs) {
      throw new VmsiftError(`bad sub_hdr_size ${h.subHdrSize}`, { file: path, offset: 432 });
    }
    const eachBlocks = Math.ceil(Math.ceil(this.maxMapnr / 8) / bs);
    if (h.bitmapBlocks < 2 * eachBlocks) {
      throw new VmsiftError(
        `bitmap_blocks ${h.bitmapBlocks} is too small for max_mapnr ${this.maxMapnr} (need ${
          2 * eachBlocks
        })`,
        { file: path, offset: 436 },
      );
    }
    const half = Math.floor(h.bitmapBlocks / 2) * bs;
    this.offsetBitmap1 = (1 + h.subHdrSize) * bs;
    this.offsetBitmap2 = this.offsetBitmap1 + half;
    const bitmapEnd = this.offsetBitmap1 + h.bitmapBlocks * bs;
    if (bitmapEnd > size) {
      throw new VmsiftError(
        `bitmaps (${h.bitmapBlocks} blocks) end at 0x${bitmapEnd.toString(16)}, beyond the end of the file ` +
          `(${size} bytes)`,
        { file: path, offset: this.offsetBitmap1 },
      );
    }
    const used = Math.ceil(this.maxMapnr / 8);
    this.bitmap1 = new MemBitmap(this.maxMapnr);
    this.bitmap2 = new MemBitmap(this.maxMapnr);
    file.readExact(this.offsetBitmap1, this.bitmap1.bytes.subarray(0, used));
    file.readExact(this.offsetBitmap2, this.bitmap2.bytes.subarray(0, used));
    if (this.maxMapnr % 8 !== 0) {
      const m = (1 << (this.maxMapnr % 8)) - 1;
      this.bitmap1.bytes[used - 1] &= m;
      this.bitmap2.bytes[used - 1] &= m;
    }
    // Prefix counts of bitmap2 per 64 pfns.
    const b2 = this.bitmap2.bytes;
    const prefix = new Uint32Array(Math.ceil(this.maxMapnr / 64) + 1);
    let acc = 0;
    for (let i = 0; i < used; i++) {
      if ((i & 7) === 0) prefix[i >>> 3] = acc;
      acc += popcount8(b2[i]);
    }
    prefix[prefix.length - 1] = acc;
    this.#prefix = prefix;
    this.numDumpable = acc;
    this.layout = kdumpLayout({
      maxMapnr: this.maxMapnr,
      noteSize: s.sizeNote,
      blockSize: bs,
      numDumpable: acc,
    });
    this.incomplete = (h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0;
    const dataOffset = (1 + h.subHdrSize + h.bitmapBlocks) * bs;
    this.layout = { ...this.layout, dataOffset, pageDataOffset: dataOffset + acc * PAGE_DESC_SIZE };
    if (!this.incomplete && this.layout.pageDataOffset > size) {
      throw new VmsiftError(
        `page descriptors (${acc} x 24 bytes at 0x${dataOffset.toString(16)}) run past the end of the file ` +
          `(${size} bytes)`,
        { file: path, offset: dataOffset },
      );
    }
    // Notes and VMCOREINFO.
    let notes = new Uint8Array(0);
    if (h.headerVersion >= 4 && s.sizeNote > 0 && s.offsetNote > 0) {
      if (s.offsetNote + s.sizeNote > size || s.sizeNote > 64 << 20) {
        throw new VmsiftError(`notes (${s.sizeNote} bytes) run past the end of the file`, {
          file: path,
          offset: s.offsetNote,
        });
      }
      notes = new Uint8Array(s.sizeNote);
      file.readExact(s.offsetNote, notes);
    }
    this.notes = notes;
    let vmcoreinfo: string | undefined;
    if (h.headerVersion >= 3 && s.sizeVmcoreinfo > 0 && s.offsetVmcoreinfo > 0) {
      if (s.offsetVmcoreinfo + s.sizeVmcoreinfo > size || s.sizeVmcoreinfo > 16 << 20) {
        throw new VmsiftError(`VMCOREINFO (${s.sizeVmcoreinfo} bytes) runs past the end of the file`, {
          file: path,
          offset: s.offsetVmcoreinfo,
        });
      }
      const t = new Uint8Array(s.sizeVmcoreinfo);
      file.readExact(s.offsetVmcoreinfo, t);
      vmcoreinfo = new TextDecoder().decode(t);
    }
    this.vmcoreinfo = vmcoreinfo;
    this.segments = runsOf(this.bitmap1, bs);
    this.#pageScratch = new Uint8Array(bs);
    this.#cachePage = new Uint8Array(bs);
  }

  /** Open and validate; throws VmsiftError with file and offset. */
  static open(path: string, opts: KdumpOpenOptions = {}): KdumpFile {
    const file = PositionalFile.open(path);
    try {
      return new KdumpFile(file, opts);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Open and validate a kdump-compressed file held by `file` (which the KdumpFile then owns: closed by
   * close(), or right away when validation fails).
   */
  static openOn(file: RandomAccessFile, opts: KdumpOpenOptions = {}): KdumpFile {
    try {
      return new KdumpFile(file, opts);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** True when the first bytes look like a kdump-compressed file. */
  static sniff(head: Uint8Array): boolean {
    return head.length >= 8 && String.fromCharCode(...head.subarray(0, 8)) === KDUMP_SIGNATURE;
  }

  /** Page size (= block size). */
  get pageSize(): number {
    return this.blockSize;
  }

  /**
   * This file's decoder for a descriptor flag (one codec bit), made on first use; undefined for 0, unknown
   * bits or several bits. Its `impl` and `fallback` say which implementation decodes. Throws VmsiftError
   * only when a forced `codecImpl` ("native", "libz", ...) cannot be used.
   */
  codecForFlag(flag: number): CreatedCodec | undefined {
    let c = this.#codecs.get(flag);
    if (c === undefined) {
      if (codecNameForFlag(flag) === undefined) return undefined;
      c = this.#makeDecoder(flag);
      this.#codecs.set(flag, c);
    }
    return c;
  }

  /**
   * Decoding is for checking what crash will read, so zlib pages are decoded by libz first (crash's own
   * `uncompress()`): libdeflate, the fastest encoder, accepts a few malformed Huffman headers that zlib
   * refuses (tests/codecs_libdeflate_test.ts). Without libz, "auto" takes the next engine as usual.
   */
  #makeDecoder(flag: number): CreatedCodec {
    const impl = this.#codecImpl;
    if (impl === "auto" && codecNameForFlag(flag) === "zlib") {
      try {
        return createCodec(flag, this.blockSize, { impl: "libz" });
      } catch {
        // no libz here: the usual order (and its fallback message)
      }
    }
    return createCodec(flag, this.blockSize, { impl });
  }

  /** The decoders made so far (for messages: `impl`, `fallback`). */
  get codecsInUse(): CreatedCodec[] {
    return [...this.#codecs.values()];
  }

  /** Index of pfn's descriptor (0-based), or -1 when pfn is not in bitmap 2. */
  descIndex(pfn: number): number {
    if (pfn < 0 || pfn >= this.maxMapnr || !this.bitmap2.get(pfn)) return -1;
    const b = this.bitmap2.bytes;
    let n = this.#prefix[pfn >>> 6];
    const firstByte = (pfn >>> 6) << 3;
    const byte = pfn >>> 3;
    for (let i = firstByte; i < byte; i++) n += popcount8(b[i]);
    return n + popcount8(b[byte] & ((1 << (pfn & 7)) - 1));
  }

  /** Descriptor number `i`; offset 0 (never written) for descriptors past the end of an incomplete file. */
  desc(i: number, out: PageDesc = { offset: 0, size: 0, flags: 0 }): PageDesc {
    if (i < 0 || i >= this.numDumpable) throw new RangeError(`descriptor ${i} out of range`);
    const chunk = Math.floor(i / DESC_CHUNK);
    if (chunk !== this.#descChunk) {
      const at = this.layout.dataOffset + chunk * DESC_CHUNK * PAGE_DESC_SIZE;
      const want = Math.min(DESC_CHUNK, this.numDumpable - chunk * DESC_CHUNK) * PAGE_DESC_SIZE;
      const got = this.file.readAt(at, this.#descBuf.subarray(0, want));
      this.#descBuf.fill(0, got);
      this.#descChunk = chunk;
    }
    const o = (i % DESC_CHUNK) * PAGE_DESC_SIZE;
    const v = this.#descView;
    out.offset = v.getInt32(o + 4, true) * 0x1_0000_0000 + v.getUint32(o, true);
    out.size = v.getUint32(o + 8, true);
    out.flags = v.getUint32(o + 12, true);
    return out;
  }

  /** File offset of descriptor `i`. */
  descFileOffset(i: number): number {
    return this.layout.dataOffset + i * PAGE_DESC_SIZE;
  }

  #d: PageDesc = { offset: 0, size: 0, flags: 0 };

  /**
   * Read page `pfn` into `out` (one page). Throws VmsiftError when the page is not in the dump (outside
   * max_mapnr, not in bitmap 1, excluded, or not written in an incomplete dump) or its data is corrupt.
   */
  readPage(pfn: number, out: Uint8Array): void {
    const i = this.descIndex(pfn);
    if (i < 0) {
      const why = pfn >= this.maxMapnr || pfn < 0
        ? `is beyond max_mapnr 0x${this.maxMapnr.toString(16)}`
        : !this.bitmap1.get(pfn)
        ? "is not in memory (bitmap 1)"
        : "was excluded from the dump";
      throw new VmsiftError(`pfn 0x${pfn.toString(16)} ${why}`, { file: this.path });
    }
    this.#readDescPage(i, pfn, out);
  }

  #readDescPage(i: number, pfn: number, out: Uint8Array): void {
    const d = this.desc(i, this.#d);
    const ps = this.blockSize;
    const where = { file: this.path, offset: this.descFileOffset(i) };
    if (d.offset === 0) {
      throw new VmsiftError(`pfn 0x${pfn.toString(16)}: page not written (incomplete dump)`, where);
    }
    if (d.offset < 0 || d.size === 0 || d.size > ps || d.offset + d.size > this.file.size) {
      throw new VmsiftError(
        `pfn 0x${pfn.toString(16)}: bad descriptor (offset 0x${d.offset.toString(16)}, size ${d.size})`,
        where,
      );
    }
    if (d.offset === this.#cacheKey && d.size === this.#cacheSize && d.flags === this.#cacheFlags) {
      out.set(this.#cachePage);
      return;
    }
    if (d.flags === 0) {
      if (d.size !== ps) {
        throw new VmsiftError(`pfn 0x${pfn.toString(16)}: raw page of ${d.size} bytes`, where);
      }
      this.file.readExact(d.offset, out);
    } else {
      const codec = this.codecForFlag(d.flags);
      if (codec === undefined) {
        throw new VmsiftError(
          `pfn 0x${pfn.toString(16)}: compression ${flagName(d.flags)} is not supported`,
          where,
        );
      }
      const data = this.#pageScratch.subarray(0, d.size);
      this.file.readExact(d.offset, data);
      if (!codec.decompress(data, out)) {
        throw new VmsiftError(
          `pfn 0x${pfn.toString(16)}: ${codec.name} data does not decompress to one page`,
          { file: this.path, offset: d.offset },
        );
      }
    }
    this.#cacheKey = d.offset;
    this.#cacheSize = d.size;
    this.#cacheFlags = d.flags;
    this.#cachePage.set(out);
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    const ps = this.blockSize;
    let pos = 0;
    while (pos < out.length) {
      const a = paddr + pos;
      const pfn = Math.floor(a / ps);
      const inPage = a - pfn * ps;
      const n = Math.min(out.length - pos, ps - inPage);
      if (pfn >= this.maxMapnr || !this.bitmap1.get(pfn)) return false;
      const i = this.descIndex(pfn);
      if (i < 0) {
        if (!this.zeroExcluded) return false;
        out.fill(0, pos, pos + n);
      } else if (inPage === 0 && n === ps) {
        this.#readDescPage(i, pfn, out.subarray(pos, pos + ps));
      } else {
        if (this.#dataBuf.length < ps) this.#dataBuf = new Uint8Array(ps);
        this.#readDescPage(i, pfn, this.#dataBuf);
        out.set(this.#dataBuf.subarray(inPage, inPage + n), pos);
      }
      pos += n;
    }
    return true;
  }

  /** Close the file. */
  close(): void {
    this.file.close();
  }
}

/** Runs of set bits as segments (file fields are not meaningful for a kdump input: fileOffset -1). */
function runsOf(bm: MemBitmap, ps: number): PhysSegment[] {
  const segs: PhysSegment[] = [];
  const b = bm.bytes;
  let start = -1;
  for (let i = 0; i < b.length; i++) {
    const v = b[i];
    if (v === 0xff && start >= 0) continue;
    if (v === 0 && start < 0) continue;
    for (let bit = 0; bit < 8; bit++) {
      const pfn = i * 8 + bit;
      if (pfn >= bm.nbits) break;
      const on = (v >>> bit) & 1;
      if (on && start < 0) start = pfn;
      else if (!on && start >= 0) {
        segs.push({ paddr: start * ps, memSize: (pfn - start) * ps, fileSize: 0, fileOffset: -1, vaddr: 0n });
        start = -1;
      }
    }
  }
  if (start >= 0) {
    segs.push({
      paddr: start * ps,
      memSize: (bm.nbits - start) * ps,
      fileSize: 0,
      fileOffset: -1,
      vaddr: 0n,
    });
  }
  return segs;
}
