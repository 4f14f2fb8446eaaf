import { VmsiftError } from "../core/errors.ts";
import { findSegment, type PhysicalMemory, type PhysSegment } from "../core/physMem.ts";
import { MappedFile } from "../io/mappedFile.ts";
import { PositionalFile } from "../io/positionalFile.ts";
import { type ElfNote, NT_PRSTATUS, parseNotes } from "./elfNotes.ts";

const PT_LOAD = 1;
const PT_NOTE = 4;
const EM_X86_64 = 62;
const ET_CORE = 4;
const PN_XNUM = 0xffff;
/** x86_64 physical addresses have at most 52 bits (MAX_PHYSMEM_BITS with 5-level paging). */
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

/**
 * An ELF64 little-endian x86_64 core (/proc/vmcore, QEMU dump-guest-memory, makedumpfile -E output).
 * Program headers may start anywhere (QEMU 7.2 puts section headers first, e_phoff = 192).
 */
export class ElfCore implements PhysicalMemory {
  readonly label: string;
  /** The underlying file. */
  readonly file: PositionalFile;
  readonly segments: PhysSegment[];
  /** All PT_NOTE segments concatenated (normally one). */
  readonly noteSegment: NoteSegment;
  /** The parsed notes of every PT_NOTE segment. */
  readonly notes: ElfNote[];
  /** e_flags (bit 0 = incomplete dump, set by makedumpfile -E). */
  readonly eFlags: number;
  /** File offset of the program headers (e_phoff). */
  readonly phoff: number;
  /** Page data is copied out of an mmap window when possible (see io/mappedFile.ts), else read(). */
  mapped: MappedFile | undefined;

  private constructor(
    file: PositionalFile,
    segments: PhysSegment[],
    noteSegment: NoteSegment,
    notes: ElfNote[],
    eFlags: number,
    phoff: number,
  ) {
    this.label = file.path;
    this.file = file;
    this.segments = segments;
    this.noteSegment = noteSegment;
    this.notes = notes;
    this.eFlags = eFlags;
    this.phoff = phoff;
    this.mapped = undefined;
  }

  /**
   * Open and parse; throws VmsiftError naming the file and offset on any malformed header. Page data is
   * read through an mmap window when the FFI permission is granted and the file can be mapped
   * (`mmap: false` forces read()).
   */
  static open(path: string, opts: { mmap?: boolean } = {}): ElfCore {
    const file = PositionalFile.open(path);
    try {
      const core = ElfCore.#parse(file);
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

  static #parse(file: PositionalFile): ElfCore {
    const path = file.path;
    if (file.size < 64) {
      throw new VmsiftError(`not an ELF file: only ${file.size} bytes`, { file: path, offset: 0 });
    }
    const eh = new Uint8Array(64);
    file.readExact(0, eh);
    if (!ElfCore.sniff(eh)) throw new VmsiftError("not an ELF file (bad magic)", { file: path, offset: 0 });
    if (eh[4] !== 2) throw new VmsiftError(`not ELF64 (EI_CLASS ${eh[4]})`, { file: path, offset: 4 });
    if (eh[5] !== 1) throw new VmsiftError(`not little-endian (EI_DATA ${eh[5]})`, { file: path, offset: 5 });
    const dv = new DataView(eh.buffer);
    const type = dv.getUint16(16, true);
    const machine = dv.getUint16(18, true);
    if (type !== ET_CORE) {
      throw new VmsiftError(`not an ELF core file (e_type ${type})`, { file: path, offset: 16 });
    }
    if (machine !== EM_X86_64) {
      throw new VmsiftError(`unsupported machine ${machine} (only x86_64 = 62)`, { file: path, offset: 18 });
    }
    const phoff = u64n(dv, 32, path);
    const shoff = u64n(dv, 40, path);
    const eFlags = dv.getUint32(48, true);
    const phentsize = dv.getUint16(54, true);
    let phnum = dv.getUint16(56, true);
    const shentsize = dv.getUint16(58, true);
    if (phentsize !== 56) {
      throw new VmsiftError(`e_phentsize is ${phentsize}, expected 56`, { file: path, offset: 54 });
    }
    if (phnum === PN_XNUM) {
      // Real count in section header 0's sh_info.
      if (shoff === 0 || shentsize < 64 || shoff + 64 > file.size) {
        throw new VmsiftError("e_phnum is PN_XNUM but there is no section header 0", {
          file: path,
          offset: 56,
        });
      }
      const sh = new Uint8Array(64);
      file.readExact(shoff, sh);
      phnum = new DataView(sh.buffer).getUint32(44, true);
    }
    if (phnum === 0) throw new VmsiftError("no program headers (e_phnum 0)", { file: path, offset: 56 });
    if (phnum > MAX_PHNUM) {
      throw new VmsiftError(`e_phnum ${phnum} is implausible`, { file: path, offset: 56 });
    }
    if (phoff + phnum * 56 > file.size) {
      throw new VmsiftError(
        `program headers (${phnum} x 56 bytes at 0x${
          phoff.toString(16)
        }) are truncated: file is ${file.size} bytes`,
        { file: path, offset: phoff },
      );
    }
    const ph = new Uint8Array(phnum * 56);
    file.readExact(phoff, ph);
    const pv = new DataView(ph.buffer);
    const segments: PhysSegment[] = [];
    const noteParts: NoteSegment[] = [];
    for (let i = 0; i < phnum; i++) {
      const b = i * 56;
      const at = phoff + b;
      const pType = pv.getUint32(b, true);
      const offset = u64n(pv, b + 8, path, at + 8);
      const vaddr = pv.getBigUint64(b + 16, true);
      const paddr = u64n(pv, b + 24, path, at + 24);
      const filesz = u64n(pv, b + 32, path, at + 32);
      const memsz = u64n(pv, b + 40, path, at + 40);
      if (pType !== PT_LOAD && pType !== PT_NOTE) continue;
      if (offset + filesz > file.size) {
        throw new VmsiftError(
          `program header ${i} (${pType === PT_LOAD ? "PT_LOAD" : "PT_NOTE"} paddr 0x${
            paddr.toString(16)
          }) ` +
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
            `PT_LOAD ${i} ends at physical 0x${(paddr + memsz).toString(16)}, beyond x86_64's 52-bit limit`,
            { file: path, offset: at },
          );
        }
        segments.push({ paddr, memSize: memsz, fileSize: filesz, fileOffset: offset, vaddr });
      }
    }
    if (segments.length === 0) throw new VmsiftError("no PT_LOAD segments", { file: path, offset: phoff });
    segments.sort((a, b) => a.paddr - b.paddr);
    for (let i = 1; i < segments.length; i++) {
      const p = segments[i - 1];
      if (segments[i].paddr < p.paddr + p.memSize) {
        throw new VmsiftError(
          `PT_LOAD segments overlap at physical 0x${segments[i].paddr.toString(16)}`,
          { file: path, offset: phoff },
        );
      }
    }
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
    return new ElfCore(file, segments, noteSegment, notes, eFlags, phoff);
  }

  /** Number of CPUs: notes named CORE with type NT_PRSTATUS (makedumpfile's rule). */
  get nrCpus(): number {
    return this.notes.filter((n) => n.name === "CORE" && n.type === NT_PRSTATUS).length;
  }

  /** The VMCOREINFO note (name VMCOREINFO, type 0), if any. */
  get vmcoreinfoNote(): ElfNote | undefined {
    return this.notes.find((n) => n.name === "VMCOREINFO" && n.type === 0);
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    let pos = 0;
    let idx = findSegment(this.segments, paddr);
    while (pos < out.length) {
      if (idx < 0 || idx >= this.segments.length) return false;
      const s = this.segments[idx];
      const a = paddr + pos;
      if (a < s.paddr || a >= s.paddr + s.memSize) return false;
      const inSeg = Math.min(out.length - pos, s.paddr + s.memSize - a);
      const rel = a - s.paddr;
      const fromFile = Math.max(0, Math.min(inSeg, s.fileSize - rel));
      if (fromFile > 0) {
        const part = out.subarray(pos, pos + fromFile);
        if (this.mapped !== undefined) this.mapped.readExact(s.fileOffset + rel, part);
        else this.file.readExact(s.fileOffset + rel, part);
      }
      if (fromFile < inSeg) out.fill(0, pos + fromFile, pos + inSeg);
      pos += inSeg;
      idx++;
    }
    return true;
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

  /** Close the file (and its mmap window). */
  close(): void {
    this.mapped?.close();
    this.mapped = undefined;
    this.file.close();
  }
}

function u64n(dv: DataView, at: number, file: string, fileOffset = at): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VmsiftError(`64-bit field 0x${v.toString(16)} is out of range`, { file, offset: fileOffset });
  }
  return Number(v);
}
