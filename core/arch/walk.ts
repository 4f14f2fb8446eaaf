/**
 * What every architecture's kernel address translation gives the rest of vmsift (core/arch/arch.ts): the
 * `VirtualMemory` reads, the split of a virtual range into physically contiguous pieces (the scan and -e read
 * struct pages through it) and the step-by-step walk that `--vtop` prints. Architecture-neutral.
 */
import type { PhysicalMemory } from "../physMem.ts";
import type { VirtualMemory } from "../virtMem.ts";

/** Names of the levels, top first. */
export type LevelName = "PGD" | "P4D" | "PUD" | "PMD" | "PTE";

/** One step of a page-table walk (what makedumpfile --vtop prints as `PGD : addr => entry`). */
export interface WalkStep {
  /** Which table (PGD, P4D, PUD, PMD, PTE). */
  level: LevelName;
  /** Physical address of the table. */
  tablePa: number;
  /** Index of the entry in the table. */
  index: number;
  /** Physical address of the entry (tablePa + 8 * index). */
  entryPa: number;
  /** The entry as read (undefined when the table could not be read). */
  entry: bigint | undefined;
}

/** Result of `walk()`. */
export interface WalkResult {
  /** The address walked. */
  vaddr: bigint;
  /** The tables visited, top first. */
  steps: WalkStep[];
  /** Physical address, when the walk reached a present leaf inside addressable memory. */
  paddr?: number;
  /** Size of the leaf page or block (x86_64: 4096, 2 MiB or 1 GiB; arm64: the granule or a block). */
  pageSize?: number;
  /** Why the walk stopped without a translation. */
  error?: string;
}

/** A physically contiguous piece of a virtual range (paddr undefined: not mapped / not readable). */
export interface MappedPiece {
  /** Start of the piece. */
  vaddr: bigint;
  /** Physical address of its first byte, or undefined when unmapped or unreadable. */
  paddr: number | undefined;
  /** Length in bytes. */
  len: number;
}

/** Kernel virtual memory of one dump: translation, contiguous pieces and the walk for --vtop. */
export interface KernelTranslator extends VirtualMemory {
  /**
   * Split virtual [vaddr, vaddr + len) into physically contiguous pieces, in order, covering it exactly;
   * unmapped parts come back with paddr undefined.
   */
  mapRun(vaddr: bigint, len: number): MappedPiece[];
  /** Walk the tables for `vaddr` and return every step, never using a linear shortcut. */
  walk(vaddr: bigint): WalkResult;
}

/** makedumpfile's --vtop print: the walk steps then `VIRTUAL PHYSICAL`. */
export function formatVtop(res: WalkResult): string {
  const h16 = (v: number | bigint) => v.toString(16).padStart(16, " ");
  const lines = [`Translating virtual address ${res.vaddr.toString(16)} to physical address.`];
  for (const s of res.steps) {
    if (s.entry === undefined) lines.push(`  ${s.level} : ${h16(s.entryPa)} => (unreadable)`);
    else lines.push(`  ${s.level} : ${h16(s.entryPa)} => ${h16(s.entry)}`);
  }
  lines.push("VIRTUAL           PHYSICAL");
  lines.push(`${h16(res.vaddr)}  ${res.paddr === undefined ? "(not mapped)" : res.paddr.toString(16)}`);
  return lines.join("\n") + "\n";
}

/**
 * Read `out` from the pieces of a mapRun() over it (in order, covering it exactly); false when a piece is
 * unmapped or its physical bytes are outside the dump.
 */
export function readPieces(mem: PhysicalMemory, pieces: readonly MappedPiece[], out: Uint8Array): boolean {
  let pos = 0;
  for (const p of pieces) {
    if (p.paddr === undefined) return false;
    if (!mem.readPhys(p.paddr, out.subarray(pos, pos + p.len))) return false;
    pos += p.len;
  }
  return pos === out.length;
}

/**
 * Why a walk stopped without a leaf: its last step's table was unreadable, or that entry was
 * `invalid` (the architecture's word: x86_64 "not present", arm64 "not valid").
 */
export function walkStopReason(steps: readonly WalkStep[], invalid: string): string {
  const last = steps[steps.length - 1];
  return last === undefined
    ? "no steps"
    : last.entry === undefined
    ? `cannot read ${last.level} table at 0x${last.tablePa.toString(16)}`
    : `${last.level} entry ${invalid} (or out of range)`;
}

/** Append a piece to `out`, merged into the last one when both are unmapped or physically adjacent. */
export function appendPiece(out: MappedPiece[], vaddr: bigint, paddr: number | undefined, len: number): void {
  const prev = out[out.length - 1];
  if (
    prev !== undefined &&
    ((prev.paddr === undefined && paddr === undefined) ||
      (prev.paddr !== undefined && paddr !== undefined && prev.paddr + prev.len === paddr))
  ) {
    prev.len += len;
  } else {
    out.push({ vaddr, paddr, len });
  }
}
