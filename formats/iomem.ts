/**
 * /proc/iomem: the ranges of physical memory named "Crash kernel" (the crashkernel= reservation). Used by
 * `--mem-usage` to leave the reservation out of the running system's memory, as makedumpfile does.
 */

/** One inclusive-exclusive physical range [start, end). */
export interface PhysRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/**
 * The ranges of /proc/iomem lines named `name` (any nesting depth), e.g. `  0e000000-1dffffff : Crash
 * kernel`. The file prints inclusive ends; the result's ends are exclusive. All zeros (what /proc/iomem
 * shows to a reader without CAP_SYS_ADMIN) yield a range of one byte at 0, so callers can tell.
 */
export function iomemRanges(text: string, name: string): PhysRange[] {
  const out: PhysRange[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$/.exec(line);
    if (m === null || m[3].trim() !== name) continue;
    out.push({ start: parseInt(m[1], 16), end: parseInt(m[2], 16) + 1 });
  }
  return out;
}

/** Total bytes of `ranges`. */
export function rangesBytes(ranges: readonly PhysRange[]): number {
  return ranges.reduce((s, r) => s + (r.end - r.start), 0);
}
