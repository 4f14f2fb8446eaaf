/**
 * The PT_LOADs of an ELF vmcore and the physical memory view made of them.
 *
 * /proc/vmcore as kexec builds it (both kexec_load and kexec_file_load) has, besides one PT_LOAD per System
 * RAM range, a PT_LOAD for the kernel image (p_vaddr in the kernel text mapping, 0xffffffff8...) whose
 * physical range lies inside a System RAM load: two loads describe the same memory. The crash kernel reads
 * both from the same physical pages, so their bytes are equal by construction.
 *
 * Which load supplies a physical byte: the first PT_LOAD in program-header order whose [p_paddr,
 * p_paddr + p_memsz) holds it (bytes past its p_filesz read as zeros). That is makedumpfile's rule for page
 * data (readpage_elf → closest_pt_load) and crash's (the first matching PT_LOAD), so every byte vmsift reads
 * comes from the file offset those tools read it from. The resolved view ({@link resolveLoads}) is a sorted
 * list of non-overlapping segments; each physical page is counted once (makedumpfile's "Original pages"
 * counts a page once per PT_LOAD holding it).
 *
 * Overlaps that cannot be the same memory are refused with one line naming the file and the offset:
 * - {@link checkOverlapMappings}: two overlapping loads that map the same physical byte at different
 *   virtual addresses, neither of them in the kernel text mapping (the only second mapping of RAM the kernel
 *   and kexec write into vmcore headers): a direct map cannot map one page twice.
 * - {@link overlapSamples}: the byte ranges that ElfCore compares (first, middle and last page of every
 *   file-backed overlap, 3 pages per overlap: a few KiB read per file).
 */
import { VmsiftError } from "../core/errors.ts";
import type { PhysSegment } from "../core/physMem.ts";

/** One PT_LOAD as written in the file. */
export interface ElfLoad extends PhysSegment {
  /** Index among all program headers (PT_LOAD and others). */
  phdrIndex: number;
  /** File offset of its program header. */
  phdrOffset: number;
}

/** Start of x86_64's kernel text mapping (__START_KERNEL_map): the kernel image and modules live above. */
export const X86_64_KERNEL_TEXT_MAP = 0xffffffff80000000n;
/** Most PT_LOADs allowed to hold one physical byte (kexec writes 2; bounds the work on hostile input). */
export const MAX_OVERLAP_DEPTH = 64;
/** Bytes compared per sample of an overlap. */
export const SAMPLE_BYTES = 4096;

/** A file range of one load that must equal a file range of another (same physical bytes). */
export interface OverlapSample {
  paddr: number;
  length: number;
  /** The load that supplies the bytes (first in program-header order) and its file offset for them. */
  first: ElfLoad;
  firstOffset: number;
  /** The other load and its file offset for the same physical bytes. */
  other: ElfLoad;
  otherOffset: number;
}

/**
 * The memory view: non-overlapping segments sorted by paddr, each byte supplied by the first load in
 * program-header order holding it. Loads that do not overlap come out unchanged. `loads` must be in
 * program-header order; zero-length loads are ignored.
 */
export function resolveLoads(loads: readonly ElfLoad[], file: string): PhysSegment[] {
  const byStart = loads.filter((l) => l.memSize > 0).sort((a, b) =>
    a.paddr - b.paddr || a.phdrIndex - b.phdrIndex
  );
  const out: PhysSegment[] = [];
  if (!hasOverlap(byStart)) {
    for (const l of byStart) out.push(plain(l));
    return out;
  }
  // Sweep over the boundaries (starts and ends); between two boundaries the set of holding loads is fixed.
  const bounds = new Set<number>();
  for (const l of byStart) {
    bounds.add(l.paddr);
    bounds.add(l.paddr + l.memSize);
  }
  const points = [...bounds].sort((a, b) => a - b);
  let next = 0;
  let active: ElfLoad[] = [];
  let cur: { load: ElfLoad; start: number; end: number } | undefined;
  const flush = () => {
    if (cur !== undefined) out.push(sliceSegment(cur.load, cur.start, cur.end));
    cur = undefined;
  };
  for (let k = 0; k + 1 < points.length; k++) {
    const a = points[k], b = points[k + 1];
    active = active.filter((l) => l.paddr + l.memSize > a);
    while (next < byStart.length && byStart[next].paddr <= a) active.push(byStart[next++]);
    if (active.length > MAX_OVERLAP_DEPTH) {
      const l = active[active.length - 1];
      throw new VmsiftError(
        `more than ${MAX_OVERLAP_DEPTH} PT_LOADs hold physical 0x${a.toString(16)}`,
        { file, offset: l.phdrOffset },
      );
    }
    let chosen: ElfLoad | undefined;
    for (const l of active) if (chosen === undefined || l.phdrIndex < chosen.phdrIndex) chosen = l;
    if (chosen === undefined) {
      flush();
      continue;
    }
    if (cur !== undefined && cur.load === chosen && cur.end === a) cur.end = b;
    else {
      flush();
      cur = { load: chosen, start: a, end: b };
    }
  }
  flush();
  return out;
}

/**
 * Refuse overlapping loads whose virtual addresses say they cannot be the same memory: two loads holding the
 * same physical byte with different p_vaddr - p_paddr, neither in the kernel text mapping (p_vaddr ≥
 * `textMap`) nor without a virtual address (p_vaddr 0, as QEMU writes).
 */
export function checkOverlapMappings(
  loads: readonly ElfLoad[],
  file: string,
  textMap: bigint = X86_64_KERNEL_TEXT_MAP,
): void {
  forEachOverlap(loads, (x, y, start) => {
    if (x.vaddr === 0n || y.vaddr === 0n || x.vaddr >= textMap || y.vaddr >= textMap) return;
    const dx = x.vaddr - BigInt(x.paddr), dy = y.vaddr - BigInt(y.paddr);
    if (dx === dy) return;
    const at = (l: ElfLoad) => `0x${(l.vaddr + BigInt(start - l.paddr)).toString(16)}`;
    throw new VmsiftError(
      `PT_LOADs ${x.phdrIndex} and ${y.phdrIndex} map physical 0x${start.toString(16)} at two virtual ` +
        `addresses (${at(x)} and ${at(y)}) outside the kernel text mapping: they cannot be the same memory`,
      { file, offset: y.phdrOffset },
    );
  });
}

/**
 * The ranges to compare for every pair of overlapping loads: the first, middle and last page of the part
 * both back with file data (at most {@link SAMPLE_BYTES} each), page-aligned in physical memory.
 */
export function overlapSamples(loads: readonly ElfLoad[], pageSize = SAMPLE_BYTES): OverlapSample[] {
  const out: OverlapSample[] = [];
  forEachOverlap(loads, (x, y) => {
    const [first, other] = x.phdrIndex < y.phdrIndex ? [x, y] : [y, x];
    const start = Math.max(first.paddr, other.paddr);
    const end = Math.min(first.paddr + first.fileSize, other.paddr + other.fileSize);
    if (end <= start) return;
    const starts = new Set<number>();
    const lastPage = Math.floor((end - 1) / pageSize) * pageSize;
    const midPage = Math.floor((start + (end - start) / 2) / pageSize) * pageSize;
    for (const p of [start, midPage, lastPage]) starts.add(Math.max(start, p));
    for (const p of [...starts].sort((a, b) => a - b)) {
      const length = Math.min(end, Math.floor(p / pageSize) * pageSize + pageSize) - p;
      if (length <= 0) continue;
      out.push({
        paddr: p,
        length,
        first,
        firstOffset: first.fileOffset + (p - first.paddr),
        other,
        otherOffset: other.fileOffset + (p - other.paddr),
      });
    }
  });
  return out;
}

/** Calls `fn(x, y, start)` for each pair of loads whose memory ranges overlap (start = first common byte). */
function forEachOverlap(
  loads: readonly ElfLoad[],
  fn: (x: ElfLoad, y: ElfLoad, start: number) => void,
): void {
  const byStart = loads.filter((l) => l.memSize > 0).sort((a, b) => a.paddr - b.paddr);
  let active: ElfLoad[] = [];
  for (const y of byStart) {
    active = active.filter((x) => x.paddr + x.memSize > y.paddr);
    for (const x of active) fn(x, y, y.paddr);
    active.push(y);
    if (active.length > MAX_OVERLAP_DEPTH) return; // resolveLoads refuses this layout
  }
}

function hasOverlap(sorted: readonly ElfLoad[]): boolean {
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    if (sorted[i].paddr < p.paddr + p.memSize) return true;
  }
  return false;
}

function plain(l: ElfLoad): PhysSegment {
  return {
    paddr: l.paddr,
    memSize: l.memSize,
    fileSize: l.fileSize,
    fileOffset: l.fileOffset,
    vaddr: l.vaddr,
  };
}

/**
 * The part [start, end) of segment `l` (physical addresses inside it), keeping its file offset and virtual
 * address (a vaddr of 0, no mapping, stays 0); bytes past its file-backed part stay zeros.
 */
export function sliceSegment(l: PhysSegment, start: number, end: number): PhysSegment {
  const rel = start - l.paddr;
  return {
    paddr: start,
    memSize: end - start,
    fileSize: Math.max(0, Math.min(end - start, l.fileSize - rel)),
    fileOffset: l.fileOffset + rel,
    vaddr: l.vaddr === 0n ? 0n : l.vaddr + BigInt(rel),
  };
}
