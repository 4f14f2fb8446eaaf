/**
 * Page counts of one dump in makedumpfile's terms, and their two renderings: the report table that
 * makedumpfile prints at message level 16 (same shape and spacing), and JSON for --stats-json.
 */

/** Counts per class (page counts): the scan's classes plus the zero pages and the totals. */
export interface PageStats extends ClassCounts {
  /** Pages inside PT_LOADs below max_mapnr (Total - Memory Hole). */
  original: number;
  /** Zero pages excluded (-d bit 0). */
  zero: number;
  /** PFNs below max_mapnr not backed by any PT_LOAD. */
  memoryHole: number;
  /** max_mapnr. */
  total: number;
}

/** Pages excluded in all. */
function excludedPages(s: PageStats): number {
  return s.zero + s.cache + s.cachePrivate + s.user + s.free + s.hwpoison + s.offline;
}

/** Pages that remain in the dump. */
function remainingPages(s: PageStats): number {
  return s.original - excludedPages(s);
}

function h16(n: number): string {
  return "0x" + n.toString(16).padStart(16, "0");
}

/** makedumpfile's report table, byte for byte (print_report). */
export function formatReport(s: PageStats): string {
  const excluded = excludedPages(s);
  const remaining = s.original - excluded;
  const lines = [
    `Original pages  : ${h16(s.original)}`,
    `  Excluded pages   : ${h16(excluded)}`,
    `    Pages filled with zero  : ${h16(s.zero)}`,
    `    Non-private cache pages : ${h16(s.cache)}`,
    `    Private cache pages     : ${h16(s.cachePrivate)}`,
    `    User process data pages : ${h16(s.user)}`,
    `    Free pages              : ${h16(s.free)}`,
    `    Hwpoison pages          : ${h16(s.hwpoison)}`,
    `    Offline pages           : ${h16(s.offline)}`,
    `  Remaining pages  : ${h16(remaining)}`,
  ];
  if (s.original !== 0) {
    lines.push(`  (The number of pages is reduced to ${Math.floor((remaining * 100) / s.original)}%.)`);
  }
  lines.push(
    `Memory Hole     : ${h16(s.memoryHole)}`,
    "--------------------------------------------------",
    `Total pages     : ${h16(s.total)}`,
  );
  return lines.join("\n") + "\n";
}

/** Optional measurements of a run that --stats-json may carry besides the page counts. */
export interface StatsJsonExtra {
  /** Struct pages classified by the scan (ScanResult.pagesScanned). */
  structPagesScanned?: number;
  /** Bytes of struct pages read from the dump by the scan (ScanResult.vmemmapBytesRead). */
  vmemmapBytesRead?: number;
  /** -e: vmemmap pages cleared from bitmap 2 (VmemmapExcludeResult.pagesExcluded). */
  vmemmapPagesExcluded?: number;
}

/**
 * The same numbers as JSON, with the field names of ../shared/fixtures/real-6.1/expected.json; the fields
 * of `extra` that are given are appended (struct_pages_scanned, vmemmap_bytes_read, vmemmap_pages_excluded).
 */
export function statsJson(s: PageStats, extra: StatsJsonExtra = {}): Record<string, number> {
  const more: Record<string, number> = {};
  if (extra.structPagesScanned !== undefined) more.struct_pages_scanned = extra.structPagesScanned;
  if (extra.vmemmapBytesRead !== undefined) more.vmemmap_bytes_read = extra.vmemmapBytesRead;
  if (extra.vmemmapPagesExcluded !== undefined) more.vmemmap_pages_excluded = extra.vmemmapPagesExcluded;
  return {
    original: s.original,
    excluded: excludedPages(s),
    zero: s.zero,
    cache: s.cache,
    cache_private: s.cachePrivate,
    user: s.user,
    free: s.free,
    hwpoison: s.hwpoison,
    offline: s.offline,
    remaining: remainingPages(s),
    memory_hole: s.memoryHole,
    total: s.total,
    kept_kernel_image: s.keptKernelImage,
    kept_unreadable: s.keptUnreadable,
    ...more,
  };
}

/** The per-class counts a scan produces (core/scan.ts ExclusionCounts has these and more). */
export interface ClassCounts {
  /** Non-private cache pages excluded (-d bit 1). */
  cache: number;
  /** Private cache pages excluded (-d bit 2). */
  cachePrivate: number;
  /** User process pages excluded (-d bit 3). */
  user: number;
  /** Free pages excluded (-d bit 4). */
  free: number;
  /** Hardware-poisoned pages excluded. */
  hwpoison: number;
  /** Offline pages excluded. */
  offline: number;
  /** Pages kept although their struct page said "exclude", because they are in the kernel image. */
  keptKernelImage: number;
  /** Pages kept because their struct page could not be read or translated. */
  keptUnreadable: number;
}

/** PageStats of a dump from its present pages, max_mapnr, the scan's counts and the writer's zero pages. */
export function pageStatsOf(original: number, maxMapnr: number, c: ClassCounts, zero: number): PageStats {
  return {
    original,
    zero,
    cache: c.cache,
    cachePrivate: c.cachePrivate,
    user: c.user,
    free: c.free,
    hwpoison: c.hwpoison,
    offline: c.offline,
    memoryHole: maxMapnr - original,
    total: maxMapnr,
    keptKernelImage: c.keptKernelImage,
    keptUnreadable: c.keptUnreadable,
  };
}
