import { VmsiftError } from "../core/errors.ts";
import { findSegment, type PhysicalMemory, type PhysSegment, readSegments } from "../core/physMem.ts";
import { MappedFile } from "../io/mappedFile.ts";
import { PositionalFile } from "../io/positionalFile.ts";
import { type ElfNote, NT_PRSTATUS, parseNotes } from "./elfNotes.ts";
import {
  checkOverlapMappings,
  type ElfLoad,
  overlapSamples,
  resolveLoads,
  SAMPLE_BYTES,
} from "./elfLoads.ts";
import { NOT_PADDR, PT_LOAD, PT_NOTE, readElfCoreTable, u64n } from "./elfHeader.ts";

/** Physical addresses have at most 52 bits (x86_64 5-level paging, arm64 LPA/LPA2). */
const MAX_PHYS_ADDR = 2 ** 52;
/** Bound on program headers read from an untrusted file (a real vmcore has one per RAM range + notes). */
const MAX_PHNUM = 1 << 20;
/** Bound on the PT_NOTE bytes we load (real ones are KiB; 1 per CPU note of ~336 B + VMCOREINFO). */
const MAX_NOTE_BYTES = 64 << 20;

/** The raw PT_NOTE segment of an input, copied verbatim into kdump files. */
export interface NoteSegment {
  /** Where the PT_NOTE segment starts in the file. */
  fileOffset: number;
  /** The PT_NOTE segment's bytes. */
  bytes: Uint8Array;
}

/** Everything the headers of an ELF vmcore say (ELF header, program headers, notes), before any page data. */
export interface ElfCoreHeaders {
  /** Every PT_LOAD with p_memsz > 0, in program-header order (the kernel-image load of kexec first). */
  loads: ElfLoad[];
  /** The physical memory view: sorted, non-overlapping (see formats/elfLoads.ts). */
  segments: PhysSegment[];
  /** All PT_NOTE segments concatenated (normally one: the crash kernel merges the per-CPU notes). */
  noteSegment: NoteSegment;
  notes: ElfNote[];
  /** e_flags (bit 0 = incomplete dump, set by makedumpfile -E). */
  eFlags: number;
  phoff: number;
  /** e_machine: 62 (x86_64) or 183 (arm64). */
  elfMachine: number;
}

/**
 * Parse the headers of an ELF64 x86_64 or arm64 core. With `requireData` (the default) every PT_LOAD's file data must
 * lie inside the file; without it only the ELF header, the program headers and the notes must (the captured
 * 64 KiB heads of /proc/vmcore in tests). Throws VmsiftError naming the file and offset on anything malformed.
 */
export function readElfCoreHeaders(
  file: Pick<PositionalFile, "path" | "size" | "readExact">,
  opts: { requireData?: boolean } = {},
): ElfCoreHeaders {
  const path = file.path;
  const requireData = opts.requireData !== false;
  const { machine, eFlags, phoff, phnum, phdrs: pv } = readElfCoreTable(file, { maxPhnum: MAX_PHNUM });
  const loads: ElfLoad[] = [];
  const noteParts: NoteSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const b = i * 56;
    const at = phoff + b;
    const pType = pv.getUint32(b, true);
    if (pType !== PT_LOAD && pType !== PT_NOTE) continue;
    const what = pType === PT_LOAD ? "PT_LOAD" : "PT_NOTE";
    if (pType === PT_LOAD && pv.getBigUint64(b + 24, true) === NOT_PADDR) {
      throw new VmsiftError(
        `program header ${i}: PT_LOAD without a physical address (p_paddr 0xffffffffffffffff)`,
        { file: path, offset: at + 24 },
      );
    }
    const offset = u64n(pv, b + 8, path, at + 8);
    const vaddr = pv.getBigUint64(b + 16, true);
    const paddr = u64n(pv, b + 24, path, at + 24);
    const filesz = u64n(pv, b + 32, path, at + 32);
    const memsz = u64n(pv, b + 40, path, at + 40);
    if ((pType === PT_NOTE || requireData) && offset + filesz > file.size) {
      throw new VmsiftError(
        `program header ${i} (${what} paddr 0x${paddr.toString(16)}) ` +
          `needs bytes up to 0x${(offset + filesz).toString(16)} but the file is 0x${
            file.size.toString(16)
          } bytes`,
        { file: path, offset: at },
      );
    }
    if (pType === PT_NOTE) {
      if (filesz > MAX_NOTE_BYTES) {
        throw new VmsiftError(`PT_NOTE of ${filesz} bytes is implausible`, { file: path, offset: at });
      }
      const bytes = new Uint8Array(filesz);
      file.readExact(offset, bytes);
      noteParts.push({ fileOffset: offset, bytes });
    } else {
      if (filesz > memsz) {
        throw new VmsiftError(`PT_LOAD ${i}: p_filesz > p_memsz`, { file: path, offset: at });
      }
      if (memsz === 0) continue;
      if (paddr + memsz > MAX_PHYS_ADDR) {
        throw new VmsiftError(
          `PT_LOAD ${i} ends at physical 0x${(paddr + memsz).toString(16)}, beyond the 52-bit limit`,
          { file: path, offset: at },
        );
      }
      loads.push({
        paddr,
        memSize: memsz,
        fileSize: filesz,
        fileOffset: offset,
        vaddr,
        phdrIndex: i,
        phdrOffset: at,
      });
    }
  }
  if (loads.length === 0) throw new VmsiftError("no PT_LOAD segments", { file: path, offset: phoff });
  const segments = resolveLoads(loads, path);
  checkOverlapMappings(loads, path);
  let noteSegment: NoteSegment;
  const notes: ElfNote[] = [];
  if (noteParts.length === 0) {
    noteSegment = { fileOffset: 0, bytes: new Uint8Array(0) };
  } else if (noteParts.length === 1) {
    noteSegment = noteParts[0];
    notes.push(...parseNotes(noteSegment.bytes, noteSegment.fileOffset, path));
  } else {
    // Several PT_NOTEs: parse each with its own offset; the copied blob is their concatenation.
    const total = noteParts.reduce((s, p) => s + p.bytes.length, 0);
    const all = new Uint8Array(total);
    let pos = 0;
    for (const p of noteParts) {
      all.set(p.bytes, pos);
      notes.push(...parseNotes(p.bytes, p.fileOffset, path));
      pos += p.bytes.length;
    }
    noteSegment = { fileOffset: noteParts[0].fileOffset, bytes: all };
  }
  return { loads, segments, noteSegment, notes, eFlags, phoff, elfMachine: machine };
}

/**
 * Compare the sampled pages of every overlap of two loads (see formats/elfLoads.ts): loads that hold the
 * same physical memory must hold the same bytes. Throws naming the first differing byte's file offset.
 */
export function checkOverlapContents(
  file: Pick<PositionalFile, "path" | "readExact">,
  loads: readonly ElfLoad[],
): void {
  const a = new Uint8Array(SAMPLE_BYTES), b = new Uint8Array(SAMPLE_BYTES);
  for (const s of overlapSamples(loads)) {
    const x = a.subarray(0, s.length), y = b.subarray(0, s.length);
    file.readExact(s.firstOffset, x);
    file.readExact(s.otherOffset, y);
    for (let i = 0; i < s.length; i++) {
      if (x[i] === y[i]) continue;
      throw new VmsiftError(
        `PT_LOADs ${s.first.phdrIndex} and ${s.other.phdrIndex} both hold physical 0x${
          (s.paddr + i).toString(16)
        } but their bytes differ (0x${x[i].toString(16)} at file offset 0x${
          (s.firstOffset + i).toString(16)
        }): they cannot be the same memory`,
        { file: file.path, offset: s.otherOffset + i },
      );
    }
  }
}

/**
 * An ELF64 little-endian x86_64 or arm64 core (/proc/vmcore, QEMU dump-guest-memory, makedumpfile -E output).
 * Program headers may start anywhere (QEMU 7.2 puts section headers first, e_phoff = 192).
 */
export class ElfCore implements PhysicalMemory {
  readonly label: string;
  /** The underlying file. */
  readonly file: PositionalFile;
  /** The physical memory view: sorted, non-overlapping, each byte from the first PT_LOAD holding it. */
  readonly segments: PhysSegment[];
  /** Every PT_LOAD in program-header order, as written (kexec's kernel-image load overlaps a RAM load). */
  readonly loads: ElfLoad[];
  /** All PT_NOTE segments concatenated (normally one). */
  readonly noteSegment: NoteSegment;
  /** The parsed notes of every PT_NOTE segment. */
  readonly notes: ElfNote[];
  /** e_flags (bit 0 = incomplete dump, set by makedumpfile -E). */
  readonly eFlags: number;
  /** File offset of the program headers (e_phoff). */
  readonly phoff: number;
  /** e_machine: 62 (x86_64) or 183 (arm64). */
  readonly elfMachine: number;
  /** Page data is copied out of an mmap window when possible (see io/mappedFile.ts), else read(). */
  mapped: MappedFile | undefined;
  /**
   * Set when an mmap of the input failed after a successful start and reads went on with read() (what
   * makedumpfile does): the error, for a message.
   */
  mmapFallback: string | undefined;

  private constructor(file: PositionalFile, h: ElfCoreHeaders) {
    this.label = file.path;
    this.file = file;
    this.segments = h.segments;
    this.loads = h.loads;
    this.noteSegment = h.noteSegment;
    this.notes = h.notes;
    this.eFlags = h.eFlags;
    this.phoff = h.phoff;
    this.elfMachine = h.elfMachine;
    this.mapped = undefined;
    this.mmapFallback = undefined;
  }

  /**
   * Open and parse; throws VmsiftError naming the file and offset on any malformed header or on overlapping
   * PT_LOADs that cannot be the same memory. Page data is read through an mmap window when the FFI
   * permission is granted and the file can be mapped (`mmap: false` forces read()).
   */
  static open(path: string, opts: { mmap?: boolean } = {}): ElfCore {
    const file = PositionalFile.open(path);
    try {
      const headers = readElfCoreHeaders(file);
      checkOverlapContents(file, headers.loads);
      const core = new ElfCore(file, headers);
      if (opts.mmap !== false) core.mapped = MappedFile.open(path, file.size);
      return core;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** True when the first bytes look like an ELF file. */
  static sniff(head: Uint8Array): boolean {
    return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
  }

  /** Number of CPUs: notes named CORE with type NT_PRSTATUS (makedumpfile's rule). */
  get nrCpus(): number {
    return this.notes.filter((n) => n.name === "CORE" && n.type === NT_PRSTATUS).length;
  }

  /** The VMCOREINFO note (name VMCOREINFO, type 0), if any. */
  get vmcoreinfoNote(): ElfNote | undefined {
    return this.notes.find((n) => n.name === "VMCOREINFO" && n.type === 0);
  }

  /** #readFile bound once (readPhys is called per page). */
  #readBound = (offset: number, part: Uint8Array): void => this.#readFile(offset, part);

  readPhys(paddr: number, out: Uint8Array): boolean {
    return readSegments(this.segments, paddr, out, this.#readBound);
  }

  viewPhys(paddr: number, len: number): Uint8Array | null {
    if (this.mapped === undefined) return null;
    const idx = findSegment(this.segments, paddr);
    if (idx < 0) return null;
    const s = this.segments[idx];
    const rel = paddr - s.paddr;
    if (rel + len > s.fileSize) return null; // past the file-backed part (zeros) or the segment
    return this.mapped.view(s.fileOffset + rel, len);
  }

  /** File bytes through the mmap window, or read() once mmap has failed (makedumpfile's fallback). */
  #readFile(offset: number, out: Uint8Array): void {
    if (this.mapped !== undefined) {
      if (this.mapped.tryReadExact(offset, out)) return;
      this.mmapFallback = `mmap at offset 0x${
        offset.toString(16)
      } failed (${this.mapped.lastError}); using read()`;
      this.mapped.close();
      this.mapped = undefined;
    }
    this.file.readExact(offset, out);
  }

  /** Close the file (and its mmap window). */
  close(): void {
    this.mapped?.close();
    this.mapped = undefined;
    this.file.close();
  }
}
