/**
 * `-E`: write the dump as an ELF64 core file, the way makedumpfile does (write_elf_header,
 * get_loads_dumpfile_cyclic and write_elf_pages_cyclic in makedumpfile.c):
 *
 * - ELF header copied from the input (default: a plain x86_64 ET_CORE header), e_phnum = 1 + number of
 *   PT_LOADs; with ≥ 65535 program headers e_phnum = PN_XNUM and one section header (sh_info = the real
 *   count, sh_size = 1) follows the program headers, before the notes.
 * - Program headers right after the ELF header: the PT_NOTE first (the input's, p_offset changed), then
 *   the PT_LOADs; the notes follow, copied verbatim, and the segment data follows the notes with no
 *   alignment padding.
 * - Each input PT_LOAD is walked page by page against bitmap2: a run of ≥ 256 (PFN_EXCLUDED) excluded pages
 *   followed by a dumped page ends the current PT_LOAD (its p_memsz covers the run, its p_filesz stops at
 *   the last dumped page) and a new one starts at that page; shorter runs stay in the file with their
 *   original content; an excluded run at the end of a segment only shows as p_memsz > p_filesz. A PT_LOAD
 *   with no data that is not the last of its segment gets p_offset 0. p_vaddr advances with p_paddr.
 *   Partial first/last pages of a segment count by their real length, as makedumpfile does.
 *
 * Pages at pfn ≥ maxMapnr (no bitmap bits: e.g. the VGA and BIOS segments above the last memory section)
 * follow `beyondMaxMapnr`. makedumpfile 1.7.2 with a file-backed bitmap (its default on small machines)
 * reads them through is_dumpable_file(): the read past the end of the bitmap file fails, the 4 KiB buffer
 * keeps the last block read, so pfn p gets the bit of pfn (lastBlock * 32768 + p % 32768). "mirror"
 * reproduces that for byte-identical output; "keep" dumps those pages whole; "exclude" drops their data.
 */
import { VmsiftError } from "../core/errors.ts";
import type { PhysicalMemory, PhysSegment } from "../core/physMem.ts";
import type { PfnBitmap } from "../core/bitmap.ts";
import type { ElfCore } from "./elfCore.ts";
import {
  drive,
  driveAsync,
  DumpInterrupted,
  type IncompleteInfo,
  UnreadablePages,
  type WriteControl,
} from "./incomplete.ts";
import { asOutputFull, OutputFullError } from "../io/outputFull.ts";
import type { Sink } from "../io/sink.ts";

/** Contiguous excluded pages that split a PT_LOAD (makedumpfile.h PFN_EXCLUDED). */
const PFN_EXCLUDED = 256;
/** e_phnum value meaning "see section header 0". */
export const PN_XNUM = 0xffff;
const PT_LOAD = 1;
const PT_NOTE = 4;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
/** makedumpfile's bitmap file block: BUFSIZE_BITMAP bytes = PFN_BUFBITMAP bits. */
const PFN_BUFBITMAP = 4096 * 8;

/** How pages at pfn ≥ maxMapnr are treated (see the module comment). */
export type BeyondMaxMapnr = "mirror" | "keep" | "exclude";

/** Input of {@link writeElfDump}. */
export interface ElfDumpSource {
  mem: PhysicalMemory;
  /** Pages that exist (unused by the layout; kept for symmetry with the kdump writer). */
  bitmap1: PfnBitmap;
  /** Pages to dump; for -E the zero pages must already be removed (makedumpfile's pre-pass). */
  bitmap2: PfnBitmap;
  maxMapnr: number;
  pageSize: number;
  /** The input's PT_NOTE contents, copied verbatim. */
  noteBytes: Uint8Array;
  /** The input's PT_LOADs, in input order. */
  segments: readonly PhysSegment[];
  /** The input's 64-byte ELF header (makedumpfile copies it, changing e_phnum and the XNUM fields). */
  elfHeader?: Uint8Array;
  /** The input's raw PT_NOTE program header (56 bytes; p_offset and p_filesz are replaced). */
  notePhdr?: Uint8Array;
  /** The input's raw PT_LOAD program headers parallel to `segments` (for p_flags and p_align). */
  loadPhdrs?: readonly Uint8Array[];
  /** Default "mirror". */
  beyondMaxMapnr?: BeyondMaxMapnr;
  /** Set e_flags bit 0 (dump incomplete). */
  incomplete?: boolean;
  /** Bytes read from memory per call (default 1 MiB). */
  readChunk?: number;
}

/** One output PT_LOAD. */
export interface ElfLoad {
  paddr: number;
  vaddr: bigint;
  memSize: number;
  fileSize: number;
  /** p_offset as written (0 for a data-less PT_LOAD that is not the last of its input segment). */
  offset: number;
  /** Where its data lies in the output (= offset when fileSize > 0). */
  dataOffset: number;
  /** Index of the input segment. */
  segment: number;
}

/** The whole output layout, computed before anything is written. */
export interface ElfLayout {
  loads: ElfLoad[];
  /** Program headers including the PT_NOTE. */
  phnum: number;
  /** True when e_phnum is PN_XNUM and a section header carries the count. */
  xnum: boolean;
  noteOffset: number;
  /** First byte of segment data (= end of notes). */
  loadOffset: number;
  fileSize: number;
  /** Pages whose bitmap2 bit was set (dumpable pages visited). */
  dumpedPages: number;
  /** Excluded pages that really left the file (runs ≥ PFN_EXCLUDED or at segment ends). */
  elfExcludedPages: number;
}

/** What writeElfDump did. */
export interface ElfDumpResult extends ElfLayout {
  /** Set when the file was finished as incomplete (e_flags bit 0). */
  incomplete?: IncompleteInfo;
  /** Pages that could not be read from the vmcore (written as zeros; the file is marked incomplete). */
  unreadable?: UnreadablePages;
}

/** Bitmap lookups with makedumpfile's treatment of pfns ≥ maxMapnr; runs are reported to `cb`. */
class DumpableScanner {
  #bm: PfnBitmap;
  #maxMapnr: number;
  #mode: BeyondMaxMapnr;
  /** Bits in makedumpfile's bitmap2 file region: roundup(ceil(maxMapnr / 8), pageSize) * 8. */
  #fileBits: number;
  #lastBlock = 0;
  #buf = new Uint8Array(65536);

  constructor(bm: PfnBitmap, maxMapnr: number, pageSize: number, mode: BeyondMaxMapnr) {
    this.#bm = bm;
    this.#maxMapnr = maxMapnr;
    this.#mode = mode;
    this.#fileBits = Math.ceil(Math.ceil(maxMapnr / 8) / pageSize) * pageSize * 8;
  }

  /** Report runs of [a, b) as cb(dumpable, count), in order; adjacent runs may share a value. */
  scan(a: number, b: number, cb: (dumpable: boolean, n: number) => void): void {
    if (a >= b) return;
    const m = this.#maxMapnr;
    // Real bits.
    if (a < m) {
      const e = Math.min(b, m);
      this.#scanBits(a, e, cb);
      if (e <= this.#fileBits) this.#lastBlock = Math.floor((e - 1) / PFN_BUFBITMAP);
      a = e;
    }
    if (a >= b) return;
    if (this.#mode === "keep") return cb(true, b - a);
    if (this.#mode === "exclude") return cb(false, b - a);
    // mirror: inside the bitmap file the padding bits read 0, and reading them moves the buffer.
    if (a < this.#fileBits) {
      const e = Math.min(b, this.#fileBits);
      cb(false, e - a);
      this.#lastBlock = Math.floor((e - 1) / PFN_BUFBITMAP);
      a = e;
    }
    while (a < b) {
      const base = this.#lastBlock * PFN_BUFBITMAP;
      const off = a % PFN_BUFBITMAP;
      const n = Math.min(b - a, PFN_BUFBITMAP - off);
      const s = base + off;
      const inReal = Math.max(0, Math.min(n, m - s));
      if (inReal > 0) this.#scanBits(s, s + inReal, cb);
      if (inReal < n) cb(false, n - inReal);
      a += n;
    }
  }

  #scanBits(a: number, b: number, cb: (dumpable: boolean, n: number) => void): void {
    let cur = false, run = 0;
    const buf = this.#buf;
    let p = a;
    while (p < b) {
      const byte0 = p >>> 3;
      const nbytes = Math.min(buf.length, ((b + 7) >>> 3) - byte0);
      this.#bm.readBytes(byte0, buf.subarray(0, nbytes));
      const chunkEnd = Math.min(b, (byte0 + nbytes) * 8);
      while (p < chunkEnd) {
        const v = buf[(p >>> 3) - byte0];
        if ((p & 7) === 0 && p + 8 <= chunkEnd && (v === 0 || v === 0xff)) {
          const d = v === 0xff;
          if (d === cur) run += 8;
          else {
            if (run) cb(cur, run);
            cur = d;
            run = 8;
          }
          p += 8;
          continue;
        }
        const d = (v & (1 << (p & 7))) !== 0;
        if (d === cur) run++;
        else {
          if (run) cb(cur, run);
          cur = d;
          run = 1;
        }
        p++;
      }
    }
    if (run) cb(cur, run);
  }
}

/** Compute the PT_LOADs of the output exactly as makedumpfile's write_elf_pages_cyclic does. */
export function planElfDump(src: ElfDumpSource): ElfLayout {
  const ps = src.pageSize;
  const scanner = new DumpableScanner(src.bitmap2, src.maxMapnr, ps, src.beyondMaxMapnr ?? "mirror");
  // First pass: the PT_LOAD sizes, with data offsets relative to the start of the segment data.
  const loads: ElfLoad[] = [];
  let off = 0;
  let dumpedPages = 0, elfExcludedPages = 0;
  src.segments.forEach((seg, si) => {
    let loadPaddr = seg.paddr;
    let loadVaddr = seg.vaddr;
    let pfnStart = Math.floor(seg.paddr / ps);
    let pfnEnd = Math.floor((seg.paddr + seg.memSize) / ps);
    const fracHead = ps - (seg.paddr % ps);
    const fracTail = (seg.paddr + seg.memSize) % ps;
    let numExcluded = 0, memsz = 0, filesz = 0;
    if (fracHead && fracHead !== ps) {
      memsz = fracHead;
      filesz = fracHead;
      pfnStart++;
    }
    if (fracTail) pfnEnd++;
    const emit = (dataless0: boolean) => {
      loads.push({
        paddr: loadPaddr,
        vaddr: loadVaddr,
        memSize: memsz,
        fileSize: filesz,
        offset: dataless0 && filesz === 0 ? -1 : off,
        dataOffset: off,
        segment: si,
      });
      off += filesz;
    };
    // Per page: size is ps except the last page of a segment with a partial tail.
    const dumpedPage = (size: number) => {
      dumpedPages++;
      if (!numExcluded) {
        memsz += size;
        filesz += size;
      } else if (numExcluded < PFN_EXCLUDED) {
        memsz += size;
        filesz += ps * numExcluded + size;
        numExcluded = 0;
      } else {
        elfExcludedPages += numExcluded;
        emit(true);
        loadPaddr += memsz;
        loadVaddr = BigInt.asUintN(64, loadVaddr + BigInt(memsz));
        numExcluded = 0;
        memsz = ps;
        filesz = ps;
      }
    };
    const onRun = (d: boolean, n: number) => {
      if (!d) {
        numExcluded += n;
        memsz += n * ps;
        return;
      }
      dumpedPage(ps);
      if (n > 1) {
        dumpedPages += n - 1;
        memsz += (n - 1) * ps;
        filesz += (n - 1) * ps;
      }
    };
    const lastFull = fracTail ? pfnEnd - 1 : pfnEnd;
    if (pfnStart < lastFull) scanner.scan(pfnStart, lastFull, onRun);
    if (fracTail && pfnEnd - 1 >= pfnStart) {
      const t = pfnEnd - 1;
      scanner.scan(t, t + 1, (d) => {
        if (!d) {
          numExcluded++;
          memsz += fracTail;
        } else dumpedPage(fracTail);
      });
    }
    elfExcludedPages += numExcluded;
    emit(false);
  });
  const phnum = loads.length + 1;
  const xnum = phnum >= PN_XNUM;
  const noteOffset = EHDR_SIZE + PHDR_SIZE * phnum + (xnum ? SHDR_SIZE : 0);
  const loadOffset = noteOffset + src.noteBytes.length;
  for (const l of loads) {
    l.dataOffset += loadOffset;
    l.offset = l.offset < 0 ? 0 : l.offset + loadOffset;
  }
  return {
    loads,
    phnum,
    xnum,
    noteOffset,
    loadOffset,
    fileSize: loadOffset + off,
    dumpedPages,
    elfExcludedPages,
  };
}

/**
 * The pages an -E file holds with their content: the file-backed part of each PT_LOAD, which includes the
 * excluded pages of runs shorter than 256 pages (makedumpfile's write_elf_load_segment filters every page it
 * copies, these too: --config/--erase applies to them, core/eraseApply.ts).
 */
export function elfFilePages(layout: ElfLayout, pageSize: number): (pfn: number) => boolean {
  const spans = layout.loads.filter((l) => l.fileSize > 0).map((l) => [l.paddr, l.paddr + l.fileSize]);
  spans.sort((a, b) => a[0] - b[0]);
  return (pfn) => {
    const p = pfn * pageSize;
    let lo = 0, hi = spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (spans[mid][1] <= p) lo = mid + 1;
      else hi = mid;
    }
    return lo < spans.length && spans[lo][0] <= p;
  };
}

/** ELF header, program headers, optional section header 0 and the notes: the first `loadOffset` bytes. */
function encodeElfHead(src: ElfDumpSource, layout: ElfLayout): Uint8Array {
  const out = new Uint8Array(layout.loadOffset);
  const dv = new DataView(out.buffer);
  if (src.elfHeader) {
    if (src.elfHeader.length < EHDR_SIZE) throw new VmsiftError("input ELF header shorter than 64 bytes");
    out.set(src.elfHeader.subarray(0, EHDR_SIZE));
  } else {
    out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // ELF64, little-endian, EV_CURRENT
    dv.setUint16(16, 4, true); // ET_CORE
    dv.setUint16(18, 62, true); // EM_X86_64
    dv.setUint32(20, 1, true); // e_version
    dv.setBigUint64(32, 64n, true); // e_phoff
    dv.setUint16(52, EHDR_SIZE, true);
    dv.setUint16(54, PHDR_SIZE, true);
  }
  // makedumpfile writes the program headers right after the ELF header whatever e_phoff said.
  if (src.incomplete) dv.setUint32(48, dv.getUint32(48, true) | 1, true);
  dv.setUint16(56, layout.xnum ? PN_XNUM : layout.phnum, true);
  let at = EHDR_SIZE;
  // PT_NOTE
  if (src.notePhdr) out.set(src.notePhdr.subarray(0, PHDR_SIZE), at);
  else {
    dv.setUint32(at, PT_NOTE, true);
    dv.setBigUint64(at + 40, BigInt(src.noteBytes.length), true); // p_memsz
  }
  dv.setBigUint64(at + 8, BigInt(layout.noteOffset), true);
  dv.setBigUint64(at + 32, BigInt(src.noteBytes.length), true);
  at += PHDR_SIZE;
  for (const l of layout.loads) {
    const raw = src.loadPhdrs?.[l.segment];
    if (raw) out.set(raw.subarray(0, PHDR_SIZE), at);
    dv.setUint32(at, PT_LOAD, true);
    dv.setBigUint64(at + 8, BigInt(l.offset), true);
    dv.setBigUint64(at + 16, l.vaddr, true);
    dv.setBigUint64(at + 24, BigInt(l.paddr), true);
    dv.setBigUint64(at + 32, BigInt(l.fileSize), true);
    dv.setBigUint64(at + 40, BigInt(l.memSize), true);
    at += PHDR_SIZE;
  }
  if (layout.xnum) {
    dv.setBigUint64(40, BigInt(at), true); // e_shoff
    dv.setUint16(58, SHDR_SIZE, true); // e_shentsize
    dv.setUint16(60, 1, true); // e_shnum
    dv.setUint16(62, 0, true); // e_shstrndx = SHN_UNDEF
    // Section header 0: SHT_NULL, sh_size = e_shnum, sh_link = e_shstrndx, sh_info = program headers.
    dv.setBigUint64(at + 32, 1n, true);
    dv.setUint32(at + 44, layout.phnum, true);
    at += SHDR_SIZE;
  }
  out.set(src.noteBytes, at);
  return out;
}

/**
 * Write the ELF dump to `sink` in one sequential pass (head, then each PT_LOAD's data) and finish the sink
 * at the file size. The caller closes the sink (or aborts it on error). With `control`, a full output (-L,
 * ENOSPC) or an interruption either throws or ends the file early with e_flags bit 0 set (the PT_LOADs then
 * describe more data than the file holds, as makedumpfile's incomplete ELF files do); pages that cannot be
 * read are written as zeros and recorded, and the file is marked incomplete.
 */
export function writeElfDump(src: ElfDumpSource, sink: Sink, control?: WriteControl): ElfDumpResult {
  return drive(elfPages(src, sink, control));
}

/** {@link writeElfDump} letting the event loop turn between chunks (signals). */
export function writeElfDumpAsync(
  src: ElfDumpSource,
  sink: Sink,
  control?: WriteControl,
): Promise<ElfDumpResult> {
  return driveAsync(elfPages(src, sink, control), control);
}

function* elfPages(
  src: ElfDumpSource,
  sink: Sink,
  control: WriteControl | undefined,
): Generator<void, ElfDumpResult, undefined> {
  const layout: ElfDumpResult = planElfDump(src);
  const head = encodeElfHead(src, layout);
  const limit = control?.sizeLimit ?? Infinity;
  if (head.length > limit) {
    throw new OutputFullError(
      "size-limit",
      `size limit ${limit} is smaller than the ELF headers and notes (${head.length} bytes)`,
      sink.label,
    );
  }
  sink.write(0, head);
  const chunk = src.readChunk ?? (1 << 20);
  const ps = src.pageSize;
  const buf = new Uint8Array(chunk);
  const unreadable = new UnreadablePages();
  let pos = layout.loadOffset; // end of the data written so far
  let pagesDone = 0;
  try {
    for (const l of layout.loads) {
      let done = 0;
      while (done < l.fileSize) {
        const n = Math.min(chunk, l.fileSize - done);
        const part = buf.subarray(0, n);
        readElfChunk(src.mem, l.paddr + done, part, ps, unreadable);
        const at = l.dataOffset + done;
        if (at + n > limit) {
          // as much as fits, whole pages
          const fit = Math.max(0, Math.floor((limit - at) / ps) * ps);
          if (fit > 0) sink.write(at, part.subarray(0, fit));
          pos = at + fit;
          pagesDone += fit / ps;
          throw new OutputFullError("size-limit", `size limit (${limit}) reached`, sink.label, at + fit);
        }
        sink.write(at, part);
        pos = at + n;
        pagesDone += n / ps;
        done += n;
        yield;
      }
    }
    sink.finish(layout.fileSize);
  } catch (e) {
    const full = asOutputFull(e);
    const intr = e instanceof DumpInterrupted ? e : null;
    if (intr === null && (full === null || !control?.keepIncomplete)) throw full ?? e;
    let size = pos;
    if (full?.reason === "no-space") {
      sink.dropPending?.();
      let end = 0;
      for (const [a, b] of sink.writtenRanges?.ranges() ?? [[0, pos]]) if (a <= end) end = Math.max(end, b);
      size = Math.max(end, head.length);
      pagesDone = Math.max(0, Math.floor((size - layout.loadOffset) / ps));
    }
    sink.finish(size);
    layout.incomplete = {
      reason: intr !== null ? "interrupted" : full!.reason,
      pagesWritten: Math.floor(pagesDone),
      pagesTotal: layout.dumpedPages,
      signal: intr?.signal,
      detail: (intr ?? full)!.message,
    };
    layout.fileSize = size;
  }
  if (unreadable.pages > 0) {
    layout.unreadable = unreadable;
    layout.incomplete ??= {
      reason: "read-error",
      pagesWritten: layout.dumpedPages - unreadable.pages,
      pagesTotal: layout.dumpedPages,
      detail: unreadable.firstError,
    };
  }
  if (layout.incomplete !== undefined && (control?.markIncomplete ?? true)) {
    markElfIncomplete(sink, new DataView(head.buffer).getUint32(48, true));
  }
  return layout;
}

/** Read a chunk of physical memory; a read that fails is retried page by page, failing pages are zeros. */
function readElfChunk(
  mem: PhysicalMemory,
  paddr: number,
  part: Uint8Array,
  ps: number,
  unreadable: UnreadablePages,
): void {
  let ok: boolean;
  try {
    ok = mem.readPhys(paddr, part);
  } catch (e) {
    if (!(e instanceof VmsiftError)) throw e;
    // page by page (the chunk may start and end inside pages: partial first/last pages of a segment)
    for (let a = 0; a < part.length;) {
      const b = Math.min(part.length, (Math.floor((paddr + a) / ps) + 1) * ps - paddr);
      const p = part.subarray(a, b);
      try {
        if (!mem.readPhys(paddr + a, p)) p.fill(0);
      } catch (e2) {
        if (!(e2 instanceof VmsiftError)) throw e2;
        p.fill(0);
        unreadable.add(Math.floor((paddr + a) / ps), 1, e2.oneLine());
      }
      a = b;
    }
    return;
  }
  if (!ok) {
    throw new VmsiftError(`cannot read ${part.length} bytes of physical memory for the ELF dump`, {
      file: mem.label,
      address: paddr,
    });
  }
}

/** Set e_flags bit 0 (incomplete dump) in an ELF dump already written to `sink`. */
export function markElfIncomplete(sink: Sink, eFlags: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, (eFlags | 1) >>> 0, true);
  sink.rewrite(48, b);
}

/**
 * The raw ELF header and program headers of an input ELF core, for {@link ElfDumpSource}: `elfHeader`,
 * `notePhdr` (the first PT_NOTE) and `loadPhdrs` parallel to `core.loads` (program-header order).
 */
export function inputElfHeaders(
  core: ElfCore,
): { elfHeader: Uint8Array; notePhdr?: Uint8Array; loadPhdrs: Uint8Array[] } {
  const elfHeader = new Uint8Array(EHDR_SIZE);
  core.file.readExact(0, elfHeader);
  const ev = new DataView(elfHeader.buffer);
  let phnum = ev.getUint16(56, true);
  if (phnum === PN_XNUM) {
    const sh = new Uint8Array(SHDR_SIZE);
    core.file.readExact(Number(ev.getBigUint64(40, true)), sh);
    phnum = new DataView(sh.buffer).getUint32(44, true);
  }
  const ph = new Uint8Array(phnum * PHDR_SIZE);
  core.file.readExact(core.phoff, ph);
  const pv = new DataView(ph.buffer);
  let notePhdr: Uint8Array | undefined;
  for (let i = 0; i < phnum; i++) {
    const type = pv.getUint32(i * PHDR_SIZE, true);
    if (type === PT_NOTE && !notePhdr) notePhdr = ph.slice(i * PHDR_SIZE, (i + 1) * PHDR_SIZE);
  }
  // Section headers are not copied (QEMU 7.2 has two, an input may have PN_XNUM's): clear their fields;
  // encodeElfHead sets them again when the output needs PN_XNUM. Program headers always follow at 64.
  ev.setBigUint64(40, 0n, true);
  ev.setUint16(58, 0, true);
  ev.setUint16(60, 0, true);
  ev.setUint16(62, 0, true);
  ev.setBigUint64(32, 64n, true);
  const loadPhdrs = core.loads.map((l) => ph.slice(l.phdrIndex * PHDR_SIZE, (l.phdrIndex + 1) * PHDR_SIZE));
  return { elfHeader, notePhdr, loadPhdrs };
}
