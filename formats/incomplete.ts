/**
 * Dumps that cannot be finished (kdump-reference.md 2.3, 4.7): the output is full (`-L SIZE` or ENOSPC), the
 * user interrupted the dump (SIGTERM/SIGINT), or pages of the vmcore cannot be read. The writers share:
 *
 * - `OutputFullError` (io/outputFull.ts) / {@link DumpInterrupted}: why writing stopped. An OutputFullError
 *   is retried by dump/run.ts at the next `-d` fallback level; with no level left (or on an interrupt) the
 *   writer finishes the file as INCOMPLETE instead: every descriptor on disk points at written data, header status 0x8 (or
 *   ELF e_flags bit 0), and reports {@link IncompleteInfo}.
 * - {@link WriteControl}: the size limit, whether to keep an incomplete file, and the interrupt flag polled
 *   between runs of pages ({@link driveAsync} lets the event loop turn, so signal listeners run).
 * - {@link readRunChecked}: a read error (EIO) on a range of the vmcore does not stop the dump: the range is
 *   recorded in {@link UnreadablePages}, the pages get a never-written descriptor (offset 0, which crash
 *   reports as incomplete instead of inventing zeros) and the file is marked incomplete.
 */
import { VmsiftError } from "../core/errors.ts";
import type { PhysicalMemory } from "../core/physMem.ts";

/** Why a dump was left incomplete. */
export type IncompleteReason = "size-limit" | "no-space" | "interrupted" | "read-error";

/** The dump was interrupted by a signal. */
export class DumpInterrupted extends VmsiftError {
  readonly signal: string;
  constructor(signal: string) {
    super(`interrupted by ${signal}`);
    this.name = "DumpInterrupted";
    this.signal = signal;
  }
}

/** What the writers are told about limits and interruptions. */
export interface WriteControl {
  /** `-L`: largest size of each output file in bytes. */
  sizeLimit?: number;
  /**
   * On a full output: finish the file as incomplete (true: no `-d` fallback level is left) or throw the
   * OutputFullError (false, the default) so that the caller retries at the next level.
   */
  keepIncomplete?: boolean;
  /** Polled between runs of pages: the name of the signal that interrupted the dump, or null. */
  interrupted?: () => string | null;
  /**
   * Set the incomplete flag in the header of an incomplete file (default true). False with -F: like
   * makedumpfile, a flattened stream never gets it.
   */
  markIncomplete?: boolean;
}

/** Set when a dump was finished as incomplete. */
export interface IncompleteInfo {
  /** Why writing stopped. */
  reason: IncompleteReason;
  /** Pages whose descriptor and data are in the file. */
  pagesWritten: number;
  /** Pages that should have been written (num_dumpable). */
  pagesTotal: number;
  /** The signal, for reason "interrupted". */
  signal?: string;
  /** The first cause, for messages. */
  detail?: string;
}

/** Ranges of pfns whose data could not be read from the vmcore, merged when adjacent. */
export class UnreadablePages {
  /** [first pfn, page count] of each unreadable run, in pfn order. */
  readonly ranges: Array<[start: number, count: number]> = [];
  /** Pages in all ranges. */
  pages = 0;
  /** First error message (e.g. "read error: Input/output error"). */
  firstError = "";

  /** Record `n` unreadable pages from `pfn` (`why`: the read error). */
  add(pfn: number, n: number, why: string): void {
    if (this.firstError === "") this.firstError = why;
    this.pages += n;
    const last = this.ranges[this.ranges.length - 1];
    if (last !== undefined && last[0] + last[1] === pfn) last[1] += n;
    else this.ranges.push([pfn, n]);
  }

  /** `0x1000-0x10ff, 0x2000` style list (at most `max` ranges, then "..."). */
  describe(max = 8): string {
    const s = this.ranges.slice(0, max).map(([a, n]) =>
      n === 1 ? `0x${a.toString(16)}` : `0x${a.toString(16)}-0x${(a + n - 1).toString(16)}`
    );
    if (this.ranges.length > max) s.push(`... (${this.ranges.length} ranges)`);
    return s.join(", ");
  }
}

/**
 * Read pages start..start+n into `buf` (n = buf.length / ps) like writer.ts readRun, but a read that throws
 * (an I/O error of the vmcore) is retried page by page: pages that still fail are zero-filled, flagged in
 * `bad` (1 per page, cleared for the others) and recorded in `unreadable`. Returns the number of bad pages.
 * `readRun` is the plain reader (passed in to avoid an import cycle).
 */
export function readRunChecked(
  mem: PhysicalMemory,
  start: number,
  ps: number,
  buf: Uint8Array,
  bad: Uint8Array,
  unreadable: UnreadablePages,
  readRun: (mem: PhysicalMemory, start: number, ps: number, buf: Uint8Array) => void,
  readPage: (mem: PhysicalMemory, paddr: number, out: Uint8Array) => void,
): number {
  const n = buf.length / ps;
  try {
    readRun(mem, start, ps, buf);
    return 0;
  } catch (e) {
    if (!(e instanceof VmsiftError)) throw e;
  }
  let nbad = 0;
  for (let k = 0; k < n; k++) {
    const page = buf.subarray(k * ps, (k + 1) * ps);
    try {
      readPage(mem, (start + k) * ps, page);
      bad[k] = 0;
    } catch (e) {
      if (!(e instanceof VmsiftError)) throw e;
      page.fill(0);
      bad[k] = 1;
      nbad++;
      unreadable.add(start + k, 1, e.oneLine());
    }
  }
  return nbad;
}

/** Milliseconds between two turns of the event loop in {@link driveAsync} (signals are seen this fast). */
export const YIELD_INTERVAL_MS = 200;

/** Run a writer generator (it yields between runs of pages) to the end, synchronously. */
export function drive<T>(gen: Generator<void, T, undefined>): T {
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
  }
}

/**
 * Lets the event loop turn so that signal listeners run. It has to really wait: Deno sees a signal when its
 * runtime polls the I/O driver, which a loop that always has work ready (a MessageChannel ping-pong) does
 * only every few dozen turns; a timer does it at once. A timer from a chain of awaits costs about 2 ms
 * (clamped), hence {@link YIELD_INTERVAL_MS} between turns: under 1 % of the time.
 */
export class LoopYielder {
  turn(): Promise<void> {
    return new Promise<void>((resolve) => setTimeout(resolve, 0));
  }

  close(): void {}
}

/**
 * Run a writer generator, letting the event loop turn every {@link YIELD_INTERVAL_MS} (signal listeners run
 * then) and throwing {@link DumpInterrupted} into it at the yield point once `control.interrupted()` says so.
 */
export async function driveAsync<T>(gen: Generator<void, T, undefined>, control?: WriteControl): Promise<T> {
  const loop = new LoopYielder();
  try {
    let last = performance.now();
    let r = gen.next();
    while (!r.done) {
      const now = performance.now();
      if (now - last >= YIELD_INTERVAL_MS) {
        await loop.turn();
        last = performance.now();
      }
      const sig = control?.interrupted?.() ?? null;
      r = sig !== null ? gen.throw(new DumpInterrupted(sig)) : gen.next();
    }
    return r.value;
  } finally {
    loop.close();
  }
}
