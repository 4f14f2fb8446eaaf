/**
 * The dump command: VMCORE → memory model → bitmaps → classification → kdump-compressed DUMPFILE.
 * Everything is passed explicitly; the result carries the counts for the report.
 */
import { MemBitmap } from "../core/bitmap.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { markPresentPages } from "../core/presentPages.ts";
import { excludeUnnecessaryPages, type ScanResult } from "../core/scan.ts";
import type { PageStats } from "../core/stats.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { writeKdump, type KdumpWriteResult } from "../formats/kdump/writer.ts";
import type { Sink } from "../formats/sink.ts";
import { openDumpInput } from "./input.ts";
import { readUtsname } from "./utsname.ts";

/** What to dump and how. */
export interface DumpRequest {
  vmcore: string;
  vmcoreinfoFile?: string;
  dumpLevel: number;
  codec: PageCodec | null;
  /** Opens the output; called only after the input has been validated. */
  openSink: () => Sink;
  onProgress?: (done: number, total: number, bytes: number) => void;
  debug?: (text: string) => void;
}

/** Outcome of a dump. */
export interface DumpResult {
  stats: PageStats;
  scan: ScanResult;
  write: KdumpWriteResult;
  seconds: number;
}

/** Run one dump. Throws VmsiftError on failure; the sink is aborted (partial output removed) on error. */
export function runDump(req: DumpRequest): DumpResult {
  const t0 = performance.now();
  const input = openDumpInput(req.vmcore, req.vmcoreinfoFile);
  const { core, info } = input;
  try {
    const pageSize = info.pageSize ?? 4096;
    const model = buildMemoryModel(core, info);
    const maxMapnr = model.maxMapnr;
    req.debug?.(`max_mapnr    : ${maxMapnr.toString(16)}`);
    const bitmap1 = new MemBitmap(maxMapnr);
    const original = markPresentPages(core.segments, pageSize, maxMapnr, bitmap1);
    const bitmap2 = new MemBitmap(maxMapnr);
    bitmap2.bytes.set(bitmap1.bytes);
    // The scan itself decides whether this level needs struct pages (hwpoison/offline need them at any level).
    const scan: ScanResult = excludeUnnecessaryPages(model, req.dumpLevel, bitmap1, bitmap2);
    for (const w of model.warnings) req.debug?.(`warning: ${w}`);
    const utsname = readUtsname(model.vm, info);
    const sink = req.openSink();
    let write: KdumpWriteResult;
    try {
      write = writeKdump({
        mem: core,
        bitmap1,
        bitmap2,
        maxMapnr,
        pageSize,
        noteBytes: core.noteSegment.bytes,
        vmcoreinfoOffsetInNotes: input.vmcoreinfoOffsetInNotes,
        vmcoreinfoSize: input.vmcoreinfoSize,
        utsname,
        crashTime: info.crashTime ?? 0,
        nrCpus: core.nrCpus,
        physBase: model.physBase,
        dumpLevel: req.dumpLevel,
      }, { codec: req.codec, sink, onProgress: req.onProgress });
      sink.close();
    } catch (e) {
      sink.abort();
      throw e;
    }
    const c = scan.counts;
    const stats: PageStats = {
      original,
      zero: write.zeroPages,
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
    return { stats, scan, write, seconds: (performance.now() - t0) / 1000 };
  } finally {
    core.close();
  }
}
