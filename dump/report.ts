/** What a dump did: the counts for the report table, --stats-json and a library caller. */
import type { ScanResult } from "../core/scan.ts";
import { type PageStats, statsJson } from "../core/stats.ts";
import type { VmemmapExcludeResult } from "../core/vmemmapExclude.ts";
import type { KdumpWriteResult } from "../formats/kdump/writer.ts";
import type { InputFormat } from "./input.ts";

/** Outcome of {@link runDump}. */
export interface DumpReport {
  /** Page counts in makedumpfile's terms (`formatReport(stats)` prints its table). */
  stats: PageStats;
  /** What the struct-page scan did. */
  scan: ScanResult;
  /** What was written (`write.incomplete` set when the file was finished as incomplete). */
  write: KdumpWriteResult;
  /** -e: what the vmemmap pass did (undefined without -e). */
  vmemmap?: VmemmapExcludeResult;
  /** The dump level the file was written at: a fallback level after retries, OR'ed with a kdump input's. */
  dumpLevel: number;
  /** The level asked for that gave `dumpLevel` (differs when a kdump input was made at a higher level). */
  requestedLevel: number;
  /** The input's format. */
  inputFormat: InputFormat;
  /** Wall-clock seconds of the successful attempt. */
  seconds: number;
}

/** The report as the JSON object of `--stats-json`. */
export function reportJson(report: DumpReport): Record<string, number> {
  return {
    ...statsJson(report.stats),
    struct_pages_scanned: report.scan.pagesScanned,
    scan_seconds: report.scan.seconds,
    vmemmap_bytes_read: report.scan.vmemmapBytesRead,
    vmemmap_pages_excluded: report.vmemmap?.pagesExcluded ?? 0,
    dumpable_pages: report.write.dumpablePages,
    file_size: report.write.fileSize,
  };
}
