/**
 * `verifyDump`: re-read every page of a kdump-compressed file, decompress it and compare it byte for byte
 * with the source vmcore; check the structure (bitmaps, descriptors, header fields) on the way.
 * The vmcore is read in runs of up to 4 MiB, the dump's descriptors in chunks of 64 Ki entries and its page
 * data through an 8 MiB sliding window (page data is in pfn order), so there is no syscall per page.
 */
import { VmsiftError } from "../../core/errors.ts";
import { MemBitmap } from "../../core/bitmap.ts";
import { ElfCore } from "../elfCore.ts";
import { flagName, KdumpFile } from "./reader.ts";
import { KDUMP_HEADER_VERSION, utsnameFields } from "./header.ts";
import { PAGE_DESC_SIZE, SUB_HEADER_SIZE } from "./layout.ts";
import { readPageLenient } from "./pageRuns.ts";

/** Options of verifyDump. */
export interface VerifyOptions {
  /** Stop listing problems after this many (they are still counted). Default 50. */
  maxProblems?: number;
  /** Called as descriptors are checked. */
  onProgress?: (descriptorsDone: number, descriptorsTotal: number) => void;
}

/** Counts gathered by verifyDump. */
export interface VerifyCounts {
  /** max_mapnr of the dump. */
  maxMapnr: number;
  /** Set bits of bitmap 1 / bitmap 2 (bitmap 2 count = number of descriptors). */
  bitmap1Pages: number;
  /** Set bits of bitmap 2. */
  bitmap2Pages: number;
  /** Page descriptors in the file. */
  descriptors: number;
  /** Descriptors whose page was written and compared. */
  pagesPresent: number;
  /** Descriptors never written (offset 0) in an incomplete dump. */
  pagesNotWritten: number;
  /** Pages equal to the vmcore. */
  pagesCorrect: number;
  /** Descriptors pointing at the shared zero page. */
  zeroPages: number;
  /** Pages stored uncompressed. */
  rawPages: number;
  /** Pages stored compressed. */
  compressedPages: number;
  /** Pages by descriptor codec name (raw, zlib, lzo, ...), zero pages counted as raw. */
  byCodec: Record<string, number>;
  /** Bytes of page data referenced by descriptors (shared zero page once). */
  dataBytes: number;
}

/** Result of verifyDump. */
export interface VerifyReport {
  /** True when no problem was found. */
  ok: boolean;
  /** status has the incomplete flag (0x8). */
  incomplete: boolean;
  /** Every problem found, one line each. */
  problems: string[];
  /** Problems beyond maxProblems that were counted but not listed. */
  moreProblems: number;
  /** What was compared. */
  counts: VerifyCounts;
  /** Wall-clock seconds. */
  seconds: number;
  /** One line: "ok: N pages, all correct" / "incomplete, N pages present, all correct" / "FAILED: ...". */
  summary: string;
}

const RUN_PAGES_BYTES = 4 << 20;
const DESC_BATCH = 65536;
const WINDOW = 8 << 20;

/** Verify `dumpPath` against `vmcorePath` (an ELF vmcore). Never throws for problems in the dump. */
export function verifyDump(dumpPath: string, vmcorePath: string, opts: VerifyOptions = {}): VerifyReport {
  const t0 = performance.now();
  const maxProblems = opts.maxProblems ?? 50;
  const problems: string[] = [];
  let moreProblems = 0;
  const problem = (msg: string) => {
    if (problems.length < maxProblems) problems.push(msg);
    else moreProblems++;
  };
  const counts: VerifyCounts = {
    maxMapnr: 0,
    bitmap1Pages: 0,
    bitmap2Pages: 0,
    descriptors: 0,
    pagesPresent: 0,
    pagesNotWritten: 0,
    pagesCorrect: 0,
    zeroPages: 0,
    rawPages: 0,
    compressedPages: 0,
    byCodec: {},
    dataBytes: 0,
  };
  let incomplete = false;
  const finish = (): VerifyReport => {
    const ok = problems.length === 0 && moreProblems === 0;
    const seconds = (performance.now() - t0) / 1000;
    const summary = !ok
      ? `FAILED: ${problems.length + moreProblems} problem(s); first: ${problems[0]}`
      : incomplete
      ? `incomplete, ${counts.pagesPresent} pages present, all correct (${counts.pagesNotWritten} not written)`
      : `ok: ${counts.pagesCorrect} pages, all correct`;
    return { ok, incomplete, problems, moreProblems, counts, seconds, summary };
  };

  let dump: KdumpFile;
  try {
    dump = KdumpFile.open(dumpPath);
  } catch (e) {
    if (e instanceof VmsiftError) {
      problem(e.oneLine());
      return finish();
    }
    throw e;
  }
  let core: ElfCore;
  try {
    core = ElfCore.open(vmcorePath);
  } catch (e) {
    dump.close();
    throw e;
  }
  try {
    incomplete = dump.incomplete;
    checkStructure(dump, core, problem, counts);
    checkPages(dump, core, problem, counts, opts);
  } catch (e) {
    if (e instanceof VmsiftError) problem(e.oneLine());
    else throw e;
  } finally {
    dump.close();
    core.close();
  }
  return finish();
}

function checkStructure(dump: KdumpFile, core: ElfCore, problem: (m: string) => void, counts: VerifyCounts) {
  const h = dump.header, s = dump.subHeader, bs = dump.blockSize;
  const L = dump.layout;
  counts.maxMapnr = dump.maxMapnr;
  if (h.headerVersion !== KDUMP_HEADER_VERSION) problem(`header_version ${h.headerVersion}, expected 6`);
  if (h.timestampUsec !== 0) problem(`timestamp.tv_usec is ${h.timestampUsec}, expected 0`);
  if (h.bitmapBlocks !== L.bitmapBlocks) {
    problem(
      `bitmap_blocks ${h.bitmapBlocks}, expected exactly ${L.bitmapBlocks} for max_mapnr ${dump.maxMapnr}`,
    );
  }
  if (h.subHdrSize !== L.subHdrSize) problem(`sub_hdr_size ${h.subHdrSize}, expected ${L.subHdrSize}`);
  if (h.status & ~(0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20)) {
    problem(`unknown status bits 0x${h.status.toString(16)}`);
  }
  const codecBits = h.status & (0x1 | 0x2 | 0x4 | 0x20);
  if (codecBits & (codecBits - 1)) problem(`status names more than one codec (0x${h.status.toString(16)})`);
  if (h.nrCpus !== core.nrCpus) {
    problem(`nr_cpus ${h.nrCpus}, the vmcore has ${core.nrCpus} NT_PRSTATUS notes`);
  }
  const machine = utsnameFields(h.utsname)[4];
  if (machine !== "x86_64") problem(`utsname.machine is ${JSON.stringify(machine)}, expected "x86_64"`);
  if (s.split !== 0) problem("split dump file: only whole files can be verified");
  if (s.offsetNote !== bs + SUB_HEADER_SIZE) {
    problem(`offset_note ${s.offsetNote}, expected ${bs + SUB_HEADER_SIZE}`);
  }
  const vn = core.noteSegment.bytes;
  if (s.sizeNote !== vn.length) {
    problem(`size_note ${s.sizeNote}, the vmcore's PT_NOTE has ${vn.length} bytes`);
  } else if (!sameBytes(dump.notes, vn)) problem("the copied notes differ from the vmcore's PT_NOTE");
  const vi = core.vmcoreinfoNote;
  if (vi !== undefined) {
    const want = s.offsetNote + vi.descFileOffset - core.noteSegment.fileOffset;
    if (s.offsetVmcoreinfo !== want || s.sizeVmcoreinfo !== vi.desc.length) {
      problem(
        `offset_vmcoreinfo/size ${s.offsetVmcoreinfo}/${s.sizeVmcoreinfo}, expected ${want}/${vi.desc.length}`,
      );
    }
  }
  if (s.startPfn64 !== 0 || s.endPfn64 !== 0) problem("start_pfn_64/end_pfn_64 set in a non-split file");
  if (s.maxMapnr64 !== dump.maxMapnr) problem(`max_mapnr_64 ${s.maxMapnr64} != ${dump.maxMapnr}`);

  // Bitmap 1 = pages present in the vmcore below max_mapnr.
  const ps = bs;
  const want1 = new MemBitmap(dump.maxMapnr);
  for (const seg of core.segments) {
    const a = Math.floor(seg.paddr / ps);
    const b = Math.min(dump.maxMapnr, Math.ceil((seg.paddr + seg.memSize) / ps));
    if (b > a) want1.setRange(a, b);
  }
  const b1 = dump.bitmap1.bytes, b2 = dump.bitmap2.bytes, w1 = want1.bytes;
  let bad1 = 0, bad2 = 0;
  for (let i = 0; i < b1.length; i++) {
    if (b1[i] !== w1[i]) {
      if (bad1++ === 0) {
        const bit = firstBit(b1[i] ^ w1[i]);
        problem(
          `bitmap 1 differs from the vmcore's pages at pfn 0x${(i * 8 + bit).toString(16)} ` +
            `(${(w1[i] >> bit) & 1 ? "present in the vmcore" : "not in the vmcore"})`,
        );
      }
    }
    if (b2[i] & ~b1[i]) {
      if (bad2++ === 0) {
        problem(`bitmap 2 has pfn 0x${(i * 8 + firstBit(b2[i] & ~b1[i])).toString(16)} that bitmap 1 lacks`);
      }
    }
  }
  if (bad1 > 1) problem(`bitmap 1 differs in ${bad1} bytes in all`);
  if (bad2 > 1) problem(`bitmap 2 is not a subset of bitmap 1 in ${bad2} bytes in all`);
  counts.bitmap1Pages = dump.bitmap1.popcount();
  counts.bitmap2Pages = dump.numDumpable;
  counts.descriptors = dump.numDumpable;
}

function checkPages(
  dump: KdumpFile,
  core: ElfCore,
  problem: (m: string) => void,
  counts: VerifyCounts,
  opts: VerifyOptions,
) {
  const ps = dump.blockSize;
  const wpp = ps >>> 2;
  const file = dump.file;
  const fileSize = file.size;
  const total = dump.numDumpable;
  const pageDataOffset = dump.layout.pageDataOffset;
  const sharedZero = (dump.subHeader.dumpLevel & 1) !== 0;

  // Descriptor batches.
  const descBuf = new Uint8Array(Math.min(DESC_BATCH, Math.max(1, total)) * PAGE_DESC_SIZE);
  const dv = new DataView(descBuf.buffer);
  let batchFirst = -1, batchLen = 0;
  const loadBatch = (i: number) => {
    batchFirst = i;
    batchLen = Math.min(DESC_BATCH, total - i);
    const got = file.readAt(dump.descFileOffset(i), descBuf.subarray(0, batchLen * PAGE_DESC_SIZE));
    descBuf.fill(0, got, batchLen * PAGE_DESC_SIZE);
  };
  // Page data window + pinned first page (the shared zero page).
  const win = new Uint8Array(WINDOW);
  let winStart = 0, winLen = 0;
  const pinned = new Uint8Array(ps);
  const pinnedLen = Math.max(0, Math.min(ps, fileSize - pageDataOffset));
  if (pinnedLen > 0) file.readAt(pageDataOffset, pinned.subarray(0, pinnedLen));
  const getData = (off: number, size: number): Uint8Array => {
    if (off >= pageDataOffset && off + size <= pageDataOffset + pinnedLen) {
      return pinned.subarray(off - pageDataOffset, off - pageDataOffset + size);
    }
    if (off < winStart || off + size > winStart + winLen) {
      winStart = off;
      winLen = file.readAt(off, win.subarray(0, Math.min(WINDOW, fileSize - off)));
    }
    return win.subarray(off - winStart, off - winStart + size);
  };

  const runMax = Math.max(1, Math.floor(RUN_PAGES_BYTES / ps));
  const memBuf = new Uint8Array(runMax * ps);
  const memWords = new Uint32Array(memBuf.buffer);
  const page = new Uint8Array(ps);
  const pageWords = new Uint32Array(page.buffer);
  let idx = 0;
  let firstUnwritten = -1;
  let dataEndSeen = pageDataOffset;
  const byCodec = counts.byCodec;

  const doRun = (start: number, n: number) => {
    let memRead = false;
    for (let k = 0; k < n; k++, idx++) {
      const pfn = start + k;
      if (idx >= batchFirst + batchLen || batchFirst < 0) loadBatch(idx);
      const o = (idx - batchFirst) * PAGE_DESC_SIZE;
      const off = dv.getInt32(o + 4, true) * 0x1_0000_0000 + dv.getUint32(o, true);
      const size = dv.getUint32(o + 8, true);
      const flags = dv.getUint32(o + 12, true);
      const at = `pfn 0x${pfn.toString(16)} (descriptor ${idx} at 0x${
        dump.descFileOffset(idx).toString(16)
      })`;
      if (off === 0) {
        if (firstUnwritten < 0) {
          firstUnwritten = idx;
          if (!dump.incomplete) {
            problem(`${at}: offset 0 (not written) but the header has no incomplete flag`);
          }
        }
        counts.pagesNotWritten++;
        continue;
      }
      // (a written descriptor after an unwritten one is fine: unreadable vmcore pages and a full disk leave
      // never-written descriptors between written ones; what matters is that written ones are correct)
      counts.pagesPresent++;
      if (off < 0 || off < pageDataOffset || size === 0 || size > ps || off + size > fileSize) {
        problem(
          `${at}: bad descriptor offset 0x${off.toString(16)} size ${size} (file is ${fileSize} bytes)`,
        );
        continue;
      }
      if (flags === 0 && size !== ps) {
        problem(`${at}: raw page of ${size} bytes`);
        continue;
      }
      const isZeroRef = sharedZero && off === pageDataOffset && flags === 0;
      if (isZeroRef) counts.zeroPages++;
      else if (flags === 0) counts.rawPages++;
      else counts.compressedPages++;
      const cname = flagName(flags);
      byCodec[cname] = (byCodec[cname] ?? 0) + 1;
      if (!isZeroRef || counts.zeroPages === 1) {
        if (off + size > dataEndSeen) dataEndSeen = off + size;
        if (!isZeroRef) counts.dataBytes += size;
      }
      const data = getData(off, size);
      if (flags === 0) page.set(data);
      else {
        const codec = dump.codecForFlag(flags);
        if (codec === undefined) {
          problem(`${at}: compression ${cname} is not supported`);
          continue;
        }
        if (!codec.decompress(data, page)) {
          problem(`${at}: ${cname} data at 0x${off.toString(16)} does not decompress to one page`);
          continue;
        }
      }
      if (!memRead) {
        const buf = memBuf.subarray(0, n * ps);
        if (!core.readPhys(start * ps, buf)) {
          for (let j = 0; j < n; j++) {
            readPageLenient(core, (start + j) * ps, buf.subarray(j * ps, (j + 1) * ps));
          }
        }
        memRead = true;
      }
      let same = true;
      for (let w = 0, m = k * wpp; w < wpp; w++, m++) {
        if (pageWords[w] !== memWords[m]) {
          same = false;
          break;
        }
      }
      if (same) counts.pagesCorrect++;
      else problem(`${at}: content differs from the vmcore`);
    }
    opts.onProgress?.(idx, total);
  };

  // Runs of contiguous bitmap-2 pfns.
  const b2 = dump.bitmap2.bytes;
  const maxMapnr = dump.maxMapnr;
  let runStart = -1, runLen = 0;
  for (let i = 0; i < b2.length; i++) {
    const v = b2[i];
    if (v === 0) {
      if (runLen > 0) {
        doRun(runStart, runLen);
        runLen = 0;
      }
      continue;
    }
    for (let bit = 0; bit < 8; bit++) {
      const pfn = i * 8 + bit;
      if (pfn >= maxMapnr) break;
      if ((v >>> bit) & 1) {
        if (runLen > 0 && (runStart + runLen !== pfn || runLen === runMax)) {
          doRun(runStart, runLen);
          runLen = 0;
        }
        if (runLen === 0) runStart = pfn;
        runLen++;
      } else if (runLen > 0) {
        doRun(runStart, runLen);
        runLen = 0;
      }
    }
  }
  if (runLen > 0) doRun(runStart, runLen);
  if (idx !== total) problem(`walked ${idx} descriptors, expected ${total}`);
  if (sharedZero && counts.zeroPages > 0) counts.dataBytes += ps;
  void dataEndSeen;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstBit(v: number): number {
  for (let b = 0; b < 8; b++) if ((v >> b) & 1) return b;
  return 0;
}
