/**
 * A kdump-compressed file — plain, or as makedumpfile's flattened stream (-F output, QEMU's
 * `dump-guest-memory -z kdump-zlib|lzo|snappy`) — opened as the INPUT of a dump, for re-filtering
 * (kdump-reference.md 2.1, 4.2, 5, 11.2).
 *
 * Flattened input is read in place through a record index ({@link FlatIndexedFile}): one pass over the
 * 16-byte record headers (payloads are skipped with positional reads), then every read maps rebuilt-file
 * offsets to stream positions by binary search. The index costs 24 bytes per record (a 1 GiB QEMU dump:
 * 16,425 records ≈ 400 KB; makedumpfile's ≤ 64 KiB records: ≈ 0.4 MB per GB of dump). The alternative,
 * rebuilding the stream into a temporary file beside the output, would need as much extra disk as the whole
 * input on the very device that receives the dump (the scarce resource at kdump time) and one extra full
 * write + read of it; the index needs neither. Overlapping records (makedumpfile's second sub-header record
 * after eraseinfo) are resolved like makedumpfile -R: the later record wins; gaps read as zeros (crash).
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import { MemBitmap } from "../../core/bitmap.ts";
import type { PhysicalMemory, PhysSegment } from "../../core/physMem.ts";
import { PositionalFile } from "../../io/positionalFile.ts";
import { NT_PRSTATUS, parseNotes } from "../elfNotes.ts";
import {
  FLAT_HEADER_SIZE,
  FLAT_RECORD_HEADER_SIZE,
  FLAT_SIGNATURE,
  FLAT_TYPE,
  FLAT_VERSION,
  hasFlatSignature,
} from "../flatReader.ts";
import { ElfCore } from "../elfCore.ts";
import { KdumpFile, type KdumpOpenOptions, type RandomAccessFile } from "./reader.ts";
import { isKdumpHead } from "./header.ts";

/** What a file looks like from its first bytes. */
export type DumpFormat = "elf" | "kdump" | "flattened" | "unknown";

/** Sniff the format of `path` (ELF vmcore, kdump-compressed, flattened stream). */
export function sniffDumpFormat(path: string): DumpFormat {
  const f = PositionalFile.open(path);
  try {
    const h = new Uint8Array(32);
    const head = h.subarray(0, f.readAt(0, h));
    if (ElfCore.sniff(head)) return "elf";
    if (isKdumpHead(head)) return "kdump";
    if (hasFlatSignature(head)) return "flattened";
    return "unknown";
  } finally {
    f.close();
  }
}

function getI64BE(dv: DataView, at: number): number {
  return dv.getInt32(at, false) * 0x1_0000_0000 + dv.getUint32(at + 4, false);
}

/**
 * The file a flattened stream rebuilds to, read in place: `readAt(offset)` reads rebuilt-file bytes.
 * `size` is the largest record end (the size makedumpfile -R gives the rebuilt file).
 */
export class FlatIndexedFile implements RandomAccessFile {
  readonly path: string;
  readonly size: number;
  /** Records in the stream (without the end marker). */
  readonly records: number;
  /** Records that overlapped others (resolved: the later one wins). */
  readonly overlapping: number;
  readonly #f: PositionalFile;
  /** Disjoint pieces sorted by start: rebuilt offset, length, stream offset of the first byte. */
  readonly #start: Float64Array;
  readonly #len: Float64Array;
  readonly #pos: Float64Array;

  private constructor(
    f: PositionalFile,
    pieces: { start: Float64Array; len: Float64Array; pos: Float64Array },
    records: number,
    overlapping: number,
  ) {
    this.#f = f;
    this.path = f.path;
    this.#start = pieces.start;
    this.#len = pieces.len;
    this.#pos = pieces.pos;
    const n = this.#start.length;
    this.size = n > 0 ? this.#start[n - 1] + this.#len[n - 1] : 0;
    this.records = records;
    this.overlapping = overlapping;
  }

  /** Open and index `path`; throws VmsiftError (with the stream offset) on a malformed stream. */
  static open(path: string): FlatIndexedFile {
    const f = PositionalFile.open(path);
    try {
      return FlatIndexedFile.#index(f);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  static #index(f: PositionalFile): FlatIndexedFile {
    const path = f.path;
    const fail = (msg: string, offset: number): never => {
      throw new VmsiftError(msg, { file: path, offset });
    };
    const h = new Uint8Array(32);
    if (f.readAt(0, h) < 32 || f.size < FLAT_HEADER_SIZE) fail("flattened header truncated", 0);
    for (let i = 0; i < 16; i++) {
      if (h[i] !== FLAT_SIGNATURE[i]) fail('bad flattened signature (want "makedumpfile" + 4 NULs)', i);
    }
    const hv = new DataView(h.buffer);
    if (getI64BE(hv, 16) !== FLAT_TYPE) fail(`flattened header type ${getI64BE(hv, 16)}, expected 1`, 16);
    if (getI64BE(hv, 24) !== FLAT_VERSION) {
      fail(`flattened header version ${getI64BE(hv, 24)}, expected 1`, 24);
    }

    let cap = 1024, n = 0;
    let rs = new Float64Array(cap), rl = new Float64Array(cap), rp = new Float64Array(cap);
    const rh = new Uint8Array(FLAT_RECORD_HEADER_SIZE);
    const rv = new DataView(rh.buffer);
    let pos = FLAT_HEADER_SIZE;
    for (;;) {
      const got = f.readAt(pos, rh);
      if (got === 0) fail("flattened stream ends without the end marker {-1, -1}", pos);
      if (got < FLAT_RECORD_HEADER_SIZE) fail(`record header truncated: ${got} of 16 bytes`, pos);
      const off = getI64BE(rv, 0);
      const size = getI64BE(rv, 8);
      if (off === -1 && size === -1) break;
      if (off < 0) fail(`record ${n}: negative offset ${off}`, pos);
      if (size <= 0) fail(`record ${n}: ${size === 0 ? "zero-length record" : `negative size ${size}`}`, pos);
      if (!Number.isSafeInteger(off + size)) fail(`record ${n}: offset + size out of range`, pos);
      const payload = pos + FLAT_RECORD_HEADER_SIZE;
      if (payload + size > f.size) fail(`record ${n} truncated: stream ends inside its ${size} bytes`, pos);
      if (n === cap) {
        cap *= 2;
        const grow = (a: Float64Array) => {
          const b = new Float64Array(cap);
          b.set(a);
          return b;
        };
        rs = grow(rs);
        rl = grow(rl);
        rp = grow(rp);
      }
      rs[n] = off;
      rl[n] = size;
      rp[n] = payload;
      n++;
      pos = payload + size;
    }
    const { pieces, overlapping } = resolvePieces(rs.subarray(0, n), rl.subarray(0, n), rp.subarray(0, n));
    return new FlatIndexedFile(f, pieces, n, overlapping);
  }

  /** Index of the last piece starting at or before `offset`, or -1. */
  #find(offset: number): number {
    let lo = 0, hi = this.#start.length - 1, ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#start[mid] <= offset) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  readAt(offset: number, out: Uint8Array): number {
    const want = Math.max(0, Math.min(out.length, this.size - offset));
    let done = 0;
    let i = this.#find(offset);
    while (done < want) {
      const at = offset + done;
      if (i >= 0 && at < this.#start[i] + this.#len[i]) {
        const inPiece = at - this.#start[i];
        const n = Math.min(want - done, this.#len[i] - inPiece);
        this.#f.readExact(this.#pos[i] + inPiece, out.subarray(done, done + n));
        done += n;
      } else {
        // Gap before piece i+1 (never written by the producer): zeros.
        const next = i + 1 < this.#start.length ? this.#start[i + 1] : this.size;
        const n = Math.min(want - done, next - at);
        out.fill(0, done, done + n);
        done += n;
      }
      if (i + 1 < this.#start.length && offset + done >= this.#start[i + 1]) i++;
    }
    return done;
  }

  readExact(offset: number, out: Uint8Array): void {
    const n = this.readAt(offset, out);
    if (n !== out.length) {
      throw new VmsiftError(`short read: wanted ${out.length} bytes, the rebuilt file ends after ${n}`, {
        file: this.path,
        offset,
      });
    }
  }

  close(): void {
    this.#f.close();
  }
}

/**
 * Records (rebuilt offset, length, stream position; in stream order) → disjoint pieces sorted by offset.
 * Where records overlap, the one later in the stream wins (makedumpfile -R replays them in order).
 */
function resolvePieces(
  rs: Float64Array,
  rl: Float64Array,
  rp: Float64Array,
): { pieces: { start: Float64Array; len: Float64Array; pos: Float64Array }; overlapping: number } {
  const n = rs.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => rs[a] - rs[b] || a - b);
  const ps: number[] = [], pl: number[] = [], pp: number[] = [];
  let overlapping = 0;
  let k = 0;
  while (k < n) {
    // A cluster: records whose ranges chain-overlap.
    let j = k + 1;
    let end = rs[order[k]] + rl[order[k]];
    while (j < n && rs[order[j]] < end) {
      end = Math.max(end, rs[order[j]] + rl[order[j]]);
      j++;
    }
    if (j === k + 1) {
      const r = order[k];
      ps.push(rs[r]);
      pl.push(rl[r]);
      pp.push(rp[r]);
    } else {
      overlapping += j - k;
      const members = Array.from(order.subarray(k, j));
      const cuts = [...new Set(members.flatMap((r) => [rs[r], rs[r] + rl[r]]))].sort((a, b) => a - b);
      for (let c = 0; c + 1 < cuts.length; c++) {
        const a = cuts[c], b = cuts[c + 1];
        let win = -1;
        for (const r of members) if (rs[r] <= a && rs[r] + rl[r] >= b && r > win) win = r;
        if (win < 0) continue;
        const pos = rp[win] + (a - rs[win]);
        const last = ps.length - 1;
        if (last >= 0 && ps[last] + pl[last] === a && pp[last] + pl[last] === pos) pl[last] += b - a;
        else {
          ps.push(a);
          pl.push(b - a);
          pp.push(pos);
        }
      }
    }
    k = j;
  }
  return {
    pieces: { start: Float64Array.from(ps), len: Float64Array.from(pl), pos: Float64Array.from(pp) },
    overlapping,
  };
}

/** A kdump-compressed input opened for re-filtering. */
export interface KdumpInput {
  /** The path it was opened from. */
  path: string;
  /** Plain kdump-compressed, or makedumpfile's flattened stream. */
  format: "kdump" | "flattened";
  /** The open dump; closed by {@link KdumpInput.close}. */
  dump: KdumpFile;
  /**
   * Physical memory for the memory model, the scan and the writer: the pages of the input's bitmap 2.
   * Absent pages (excluded by the input, or never written in an incomplete input) read as unavailable.
   */
  mem: PhysicalMemory;
  /** The input's max_mapnr (the output keeps it, as makedumpfile does when re-filtering). */
  maxMapnr: number;
  /** Page size (block_size). */
  pageSize: number;
  /** The input's note area, copied verbatim into the output. */
  noteBytes: Uint8Array;
  /** VMCOREINFO text (offset_vmcoreinfo, else the VMCOREINFO note), or undefined. */
  vmcoreinfoText: string | undefined;
  /** Offset of the VMCOREINFO desc inside noteBytes, or -1. */
  vmcoreinfoOffsetInNotes: number;
  /** Length of the VMCOREINFO text, 0 without. */
  vmcoreinfoSize: number;
  /** nr_cpus of the input header (or the count of CORE/NT_PRSTATUS notes when that is ≤ 0). */
  nrCpus: number;
  /** Bitmap 1 of the input: pages that exist. */
  present: MemBitmap;
  /**
   * Pages the input holds: its bitmap 2, minus descriptors never written (offset 0) when the input is
   * incomplete. The output's bitmap 2 starts as this and the scan only clears bits.
   */
  dumpable: MemBitmap;
  /** Pages of bitmap 2 the input never wrote (incomplete input). */
  notWritten: number;
  /** dump_level of the input; the output level is requested | this. */
  dumpLevel: number;
  /** phys_base from the input's sub header. */
  physBase: bigint;
  /** utsname and timestamp of the input header (fallbacks; makedumpfile rereads init_uts_ns). */
  utsname: Uint8Array;
  /** Crash time of the input header, seconds. */
  crashTime: number;
  /** status & 0x8. */
  incomplete: boolean;
  /** Header status of the input. */
  status: number;
  /**
   * The input's ERASEINFO text (sub header offset_eraseinfo/size_eraseinfo, header_version ≥ 5), empty
   * without. A re-filtered dump keeps it, followed by its own (makedumpfile's write_kdump_eraseinfo).
   */
  eraseinfo: Uint8Array;
  /** Flattened input: records indexed. */
  flatRecords?: number;
  /** Close the dump. */
  close(): void;
}

/** Open a kdump-compressed or flattened-kdump file as the input of a dump (re-filtering). */
export function openKdumpInput(path: string, opts: Pick<KdumpOpenOptions, "codecImpl"> = {}): KdumpInput {
  const format = sniffDumpFormat(path);
  if (format !== "kdump" && format !== "flattened") {
    throw new VmsiftError(
      format === "elf" ? "an ELF vmcore, not a kdump-compressed file" : "not a kdump-compressed file",
      { file: path, offset: 0 },
    );
  }
  let flat: FlatIndexedFile | undefined;
  const dump = format === "flattened"
    ? KdumpFile.openOn(flat = FlatIndexedFile.open(path), opts)
    : KdumpFile.open(path, opts);
  try {
    return describe(path, format, dump, flat);
  } catch (e) {
    dump.close();
    throw e;
  }
}

function describe(
  path: string,
  format: "kdump" | "flattened",
  dump: KdumpFile,
  flat: FlatIndexedFile | undefined,
): KdumpInput {
  const h = dump.header, s = dump.subHeader;
  const notes = dump.notes;
  const parsed = notes.length > 0 ? parseNotes(notes, s.offsetNote, path) : [];
  let viOff = -1, viSize = 0;
  let text = dump.vmcoreinfo;
  if (
    text !== undefined && s.offsetVmcoreinfo >= s.offsetNote &&
    s.offsetVmcoreinfo + s.sizeVmcoreinfo <= s.offsetNote + notes.length
  ) {
    viOff = s.offsetVmcoreinfo - s.offsetNote;
    viSize = s.sizeVmcoreinfo;
  } else {
    const note = parsed.find((n) => n.name === "VMCOREINFO");
    if (note !== undefined) {
      viOff = note.descFileOffset - s.offsetNote;
      viSize = note.desc.length;
      text ??= new TextDecoder().decode(note.desc);
    }
  }
  const nrCpus = h.nrCpus > 0
    ? h.nrCpus
    : parsed.filter((n) => n.name === "CORE" && n.type === NT_PRSTATUS).length;

  const present = new MemBitmap(dump.maxMapnr);
  present.bytes.set(dump.bitmap1.bytes);
  const dumpable = new MemBitmap(dump.maxMapnr);
  dumpable.bytes.set(dump.bitmap2.bytes);
  let notWritten = 0;
  if (dump.incomplete) notWritten = dropUnwritten(dump, dumpable);
  const mem: PhysicalMemory = notWritten > 0 ? new DumpablePages(dump, dumpable) : dump;
  return {
    path,
    format,
    dump,
    mem,
    maxMapnr: dump.maxMapnr,
    pageSize: dump.blockSize,
    noteBytes: notes,
    vmcoreinfoText: text,
    vmcoreinfoOffsetInNotes: viOff,
    vmcoreinfoSize: viSize,
    nrCpus,
    present,
    dumpable,
    notWritten,
    dumpLevel: s.dumpLevel,
    physBase: BigInt.asIntN(64, s.physBase),
    utsname: h.utsname,
    crashTime: h.timestampSec,
    incomplete: dump.incomplete,
    status: h.status,
    eraseinfo: readEraseinfo(dump, path),
    flatRecords: flat?.records,
    close: () => dump.close(),
  };
}

/** The ERASEINFO bytes of `dump` (makedumpfile's has_eraseinfo: offset and size both non-zero). */
function readEraseinfo(dump: KdumpFile, path: string): Uint8Array {
  const { offsetEraseinfo: off, sizeEraseinfo: size } = dump.subHeader;
  if (dump.header.headerVersion < 5 || off === 0 || size === 0) return new Uint8Array(0);
  if (off + size > dump.file.size) {
    throw new VmsiftError(`ERASEINFO (${size} bytes) past the end of the file`, { file: path, offset: off });
  }
  const b = new Uint8Array(size);
  dump.file.readExact(off, b);
  return b;
}

/** Clear the pfns whose descriptor was never written (offset 0); returns how many. */
function dropUnwritten(dump: KdumpFile, dumpable: MemBitmap): number {
  let dropped = 0;
  const d = { offset: 0, size: 0, flags: 0 };
  const b = dump.bitmap2.bytes;
  let i = 0;
  for (let byte = 0; byte < b.length; byte++) {
    const v = b[byte];
    if (v === 0) continue;
    for (let bit = 0; bit < 8; bit++) {
      if (((v >>> bit) & 1) === 0) continue;
      if (dump.desc(i++, d).offset === 0) {
        dumpable.clear(byte * 8 + bit);
        dropped++;
      }
    }
  }
  return dropped;
}

/** The dump's pages restricted to `dumpable` (readPhys false elsewhere instead of an error). */
class DumpablePages implements PhysicalMemory {
  readonly label: string;
  readonly segments: readonly PhysSegment[];
  readonly #dump: KdumpFile;
  readonly #ok: PfnBitmap;

  constructor(dump: KdumpFile, ok: PfnBitmap) {
    this.#dump = dump;
    this.#ok = ok;
    this.label = dump.label;
    this.segments = dump.segments;
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    const ps = this.#dump.blockSize;
    const last = Math.floor((paddr + out.length - 1) / ps);
    for (let p = Math.floor(paddr / ps); p <= last; p++) if (!this.#ok.get(p)) return false;
    return this.#dump.readPhys(paddr, out);
  }
}
