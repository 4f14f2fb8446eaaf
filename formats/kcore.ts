/**
 * /proc/kcore of the running kernel as physical memory (for `--mem-usage`). kcore is an ELF core whose
 * PT_LOADs are kernel virtual ranges: the direct map of each System RAM range (p_paddr = its physical
 * address), the kernel text (p_paddr = its physical address too, so it overlaps RAM), vmalloc and vmemmap
 * (p_paddr = -1). Only the direct-map RAM segments are memory here, minus the ranges the caller leaves out
 * (the crashkernel= reservation), as makedumpfile's get_kcore_dump_loads() does.
 */
import { VmsiftError } from "../core/errors.ts";
import { type PhysicalMemory, type PhysSegment, readSegments } from "../core/physMem.ts";
import { PositionalFile } from "../io/positionalFile.ts";
import { EM_X86_64, NOT_PADDR, PHDR_SIZE, PT_LOAD, PT_NOTE, readElfCoreTable } from "./elfHeader.ts";
import { sliceSegment } from "./elfLoads.ts";
import { type ElfNote, parseNotes } from "./elfNotes.ts";
import type { PhysRange } from "./iomem.ts";

/** x86_64 __START_KERNEL_map: the kernel text's segment lies above it, the direct map below. */
const START_KERNEL_MAP = 0xffffffff80000000n;
/** Bounds on what is read from the headers (kcore has a few dozen PT_LOADs and KiB of notes). */
const MAX_PHNUM = 1 << 16;
const MAX_NOTE_BYTES = 16 << 20;

/** Options of KcoreMemory.open. */
export interface KcoreOptions {
  /** Physical ranges to leave out (the crash kernel reservation): they become memory holes. */
  exclude?: readonly PhysRange[];
}

/** The running system's RAM, read through /proc/kcore. */
export class KcoreMemory implements PhysicalMemory {
  readonly label: string;
  readonly segments: PhysSegment[];
  readonly notes: ElfNote[];
  /** Bytes of RAM segments removed because they lie in an excluded range. */
  readonly excludedBytes: number;
  /**
   * Bytes of the kernel-text segment (above __START_KERNEL_map, with a physical address): RAM that kcore
   * maps a second time. makedumpfile keeps it as a second PT_LOAD and counts those pages twice.
   */
  readonly textBytes: number;
  #file: PositionalFile;

  private constructor(
    file: PositionalFile,
    segments: PhysSegment[],
    notes: ElfNote[],
    excludedBytes: number,
    textBytes: number,
  ) {
    this.label = file.path;
    this.#file = file;
    this.segments = segments;
    this.notes = notes;
    this.excludedBytes = excludedBytes;
    this.textBytes = textBytes;
  }

  /** Open and parse `path` (normally /proc/kcore; needs root). Throws VmsiftError with file and offset. */
  static open(path: string, opts: KcoreOptions = {}): KcoreMemory {
    const file = PositionalFile.open(path);
    try {
      return KcoreMemory.#parse(file, opts.exclude ?? []);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  static #parse(file: PositionalFile, exclude: readonly PhysRange[]): KcoreMemory {
    const path = file.path;
    const { machine, phoff, phnum, phdrs: pv } = readElfCoreTable(file, { maxPhnum: MAX_PHNUM });
    if (machine !== EM_X86_64) {
      throw new VmsiftError("not an x86_64 ELF core (kcore)", { file: path, offset: 18 });
    }
    const ram: PhysSegment[] = [];
    const notes: ElfNote[] = [];
    let textBytes = 0;
    for (let i = 0; i < phnum; i++) {
      const b = i * PHDR_SIZE;
      const type = pv.getUint32(b, true);
      const offset = pv.getBigUint64(b + 8, true);
      const vaddr = pv.getBigUint64(b + 16, true);
      const paddr = pv.getBigUint64(b + 24, true);
      const filesz = pv.getBigUint64(b + 32, true);
      if (type === PT_NOTE) {
        if (filesz > BigInt(MAX_NOTE_BYTES)) {
          throw new VmsiftError(`PT_NOTE of ${filesz} bytes is implausible`, {
            file: path,
            offset: phoff + b,
          });
        }
        const bytes = new Uint8Array(Number(filesz));
        file.readExact(Number(offset), bytes);
        notes.push(...parseNotes(bytes, Number(offset), path));
        continue;
      }
      // Direct-map RAM only: the text segment (above __START_KERNEL_map) repeats part of it.
      if (type === PT_LOAD && paddr !== NOT_PADDR && vaddr >= START_KERNEL_MAP) textBytes += Number(filesz);
      if (type !== PT_LOAD || paddr === NOT_PADDR || vaddr >= START_KERNEL_MAP || filesz === 0n) continue;
      if (paddr + filesz > 1n << 52n || offset + filesz > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new VmsiftError(`PT_LOAD ${i} is out of range (paddr 0x${paddr.toString(16)})`, {
          file: path,
          offset: phoff + b,
        });
      }
      const size = Number(filesz);
      ram.push({ paddr: Number(paddr), memSize: size, fileSize: size, fileOffset: Number(offset), vaddr });
    }
    if (ram.length === 0) {
      throw new VmsiftError("no PT_LOAD of RAM with a physical address (kernel older than 4.11?)", {
        file: path,
        offset: phoff,
      });
    }
    ram.sort((a, b) => a.paddr - b.paddr);
    for (let i = 1; i < ram.length; i++) {
      if (ram[i].paddr < ram[i - 1].paddr + ram[i - 1].memSize) {
        throw new VmsiftError(`RAM segments overlap at physical 0x${ram[i].paddr.toString(16)}`, {
          file: path,
          offset: phoff,
        });
      }
    }
    const kept = subtractRanges(ram, exclude);
    const before = ram.reduce((s, x) => s + x.memSize, 0);
    const after = kept.reduce((s, x) => s + x.memSize, 0);
    return new KcoreMemory(file, kept, notes, before - after, textBytes);
  }

  /** The VMCOREINFO note (kernels from 4.19 put one in kcore), if any. */
  get vmcoreinfoNote(): ElfNote | undefined {
    return this.notes.find((n) => n.name === "VMCOREINFO" && n.type === 0);
  }

  /** The file read bound once (readPhys is called per page). */
  #readBound = (offset: number, part: Uint8Array): void => this.#file.readExact(offset, part);

  readPhys(paddr: number, out: Uint8Array): boolean {
    return readSegments(this.segments, paddr, out, this.#readBound);
  }

  close(): void {
    this.#file.close();
  }
}

/** `segments` (sorted) without the bytes inside any of `ranges`; pieces keep their file offsets. */
export function subtractRanges(
  segments: readonly PhysSegment[],
  ranges: readonly PhysRange[],
): PhysSegment[] {
  let cur = [...segments];
  for (const r of ranges) {
    const next: PhysSegment[] = [];
    for (const s of cur) {
      const end = s.paddr + s.memSize;
      if (r.end <= s.paddr || r.start >= end) {
        next.push(s);
        continue;
      }
      if (r.start > s.paddr) next.push(sliceSegment(s, s.paddr, r.start));
      if (r.end < end) next.push(sliceSegment(s, r.end, end));
    }
    cur = next;
  }
  return cur;
}
