/**
 * Re-filtering: a kdump-compressed (or flattened kdump) file as the input of a dump, written again at a
 * higher dump level (kdump-reference.md 2.1, 4.2; makedumpfile with a kdump-compressed VMCORE:
 * get_max_mapnr, update_dump_level, copy_1st_bitmap_from_memory, copy_bitmap_file, readpage_kdump_compressed).
 *
 * - The output dump_level is the requested level OR the input's.
 * - max_mapnr is the input's, lowered to the end of the last section with a mem_map (get_mem_map runs for
 *   re-filtering too); bitmap 1 is the input's bitmap 1; bitmap 2 starts as the input's bitmap 2 (so pages
 *   absent from the input stay absent) and the struct-page scan clears bits in it. Zero pages are found
 *   again while writing (dump_level & 1), the input's shared zero page reads as zeros.
 * - Notes (with VMCOREINFO, offset_vmcoreinfo recomputed) and nr_cpus come from the input; utsname is
 *   re-read from init_uts_ns (like makedumpfile), falling back to the input header's; phys_base is
 *   VMCOREINFO's NUMBER(phys_base), else the input sub header's (makedumpfile always copies the sub
 *   header's, which propagates QEMU's wrongly parsed value).
 * The struct-page scan needs the page tables and struct pages, which every makedumpfile level and QEMU's
 * dumps keep; a struct page that cannot be read keeps its pages (counted as keptUnreadable).
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PfnBitmap } from "../../core/bitmap.ts";
import { buildMemoryModel, type MemoryModel } from "../../core/memoryModel.ts";
import { excludeUnnecessaryPages, type ScanResult } from "../../core/scan.ts";
import { type PageStats, pageStatsOf } from "../../core/stats.ts";
import { excludeVmemmapPages, type VmemmapExcludeResult } from "../../core/vmemmapExclude.ts";
import { VmcoreInfo } from "../../core/vmcoreinfo.ts";
import { createBitmaps } from "../../io/fileBitmap.ts";
import type { PageCodec } from "../codecs/codec.ts";
import { UTSNAME_SIZE } from "./header.ts";
import { type KdumpInput, openKdumpInput } from "./inputKdump.ts";
import { type KdumpSplitResult, writeKdumpSplit } from "./split.ts";
import { type KdumpSource, type KdumpWriteResult, writeKdump } from "./writer.ts";
import type { Sink } from "../../io/sink.ts";

/** Options of {@link filterKdumpInput}. */
export interface RefilterOptions {
  /** Requested -d level (the input's level is OR'ed in). */
  dumpLevel: number;
  /** VMCOREINFO to use instead of the input's (-i FILE). */
  vmcoreinfo?: VmcoreInfo;
  imageGuard?: boolean;
  excludeVmemmap?: boolean;
}

/** A filtered kdump input, ready for writeKdump / writeKdumpSplit. */
export interface FilteredInput {
  source: KdumpSource;
  model: MemoryModel;
  scan: ScanResult;
  vmemmap?: VmemmapExcludeResult;
  /** Header status bits for the writer (0x10 when -e excluded vmemmap pages). */
  extraStatus: number;
  /** Pages of bitmap 1 below max_mapnr. */
  original: number;
  /** The level written: requested | input's. */
  effectiveLevel: number;
  /** Non-fatal oddities of the model. */
  warnings: string[];
}

/** VMCOREINFO of the input, or VmsiftError when it has none and none was given. */
export function inputVmcoreInfo(input: KdumpInput, override?: VmcoreInfo): VmcoreInfo {
  if (override !== undefined) return override;
  if (input.vmcoreinfoText === undefined) {
    throw new VmsiftError("the dump has no VMCOREINFO (no offset_vmcoreinfo, no VMCOREINFO note); give -i", {
      file: input.path,
    });
  }
  return VmcoreInfo.parse(input.vmcoreinfoText, `${input.path} (VMCOREINFO)`);
}

/**
 * The max_mapnr of the output: the input's, lowered to the end of the last section with a mem_map
 * (makedumpfile get_mem_map: MIN(max_mapnr, pfn_end of the last valid mem_map)).
 */
export function refilterMaxMapnr(input: KdumpInput, model: MemoryModel): number {
  const secs = model.sparse.sections;
  if (secs.length === 0) return input.maxMapnr;
  const last = secs[secs.length - 1];
  return Math.min(input.maxMapnr, last.pfnStart + model.sparse.pagesPerSection);
}

/**
 * Build the memory model over the input, fill `bitmap1`/`bitmap2` (at least refilterMaxMapnr bits, all
 * clear) from the input's bitmaps, run the scan (and -e) and return the writer's source.
 */
export function filterKdumpInput(
  input: KdumpInput,
  opts: RefilterOptions,
  makeBitmaps: (maxMapnr: number) => { bitmap1: PfnBitmap; bitmap2: PfnBitmap },
): FilteredInput & { bitmap1: PfnBitmap; bitmap2: PfnBitmap } {
  const info = inputVmcoreInfo(input, opts.vmcoreinfo);
  if (info.pageSize !== undefined && info.pageSize !== input.pageSize) {
    throw new VmsiftError(`PAGESIZE ${info.pageSize} differs from the dump's block size ${input.pageSize}`, {
      file: input.path,
    });
  }
  const model = buildMemoryModel(input.mem, info, { kernelImageGuard: opts.imageGuard ?? true });
  const maxMapnr = refilterMaxMapnr(input, model);
  const { bitmap1, bitmap2 } = makeBitmaps(maxMapnr);
  copyBits(input.present, bitmap1, maxMapnr);
  copyBits(input.dumpable, bitmap2, maxMapnr);
  const effectiveLevel = opts.dumpLevel | input.dumpLevel;
  const scan = excludeUnnecessaryPages(model, effectiveLevel, bitmap1, bitmap2);
  const vmemmap = opts.excludeVmemmap ? excludeVmemmapPages(model, bitmap1, bitmap2) : undefined;
  const source: KdumpSource = {
    mem: input.mem,
    bitmap1,
    bitmap2,
    maxMapnr,
    pageSize: input.pageSize,
    noteBytes: input.noteBytes,
    vmcoreinfoOffsetInNotes: input.vmcoreinfoOffsetInNotes,
    vmcoreinfoSize: input.vmcoreinfoSize,
    utsname: readUtsnameOr(model, info, input.utsname),
    crashTime: info.crashTime ?? input.crashTime,
    nrCpus: input.nrCpus,
    // VMCOREINFO's NUMBER(phys_base) when there is one: QEMU's sub header phys_base is that decimal
    // number parsed as hex (0x266338304 for 266338304 = 0xfe00000); crash uses the sub header's value.
    physBase: info.number("phys_base") ?? input.physBase,
    dumpLevel: effectiveLevel,
  };
  return {
    source,
    model,
    scan,
    vmemmap,
    extraStatus: (vmemmap !== undefined && vmemmap.pagesExcluded > 0 ? 0x10 : 0) |
      (input.status & 0x10),
    original: bitmap1.popcount(0, maxMapnr),
    effectiveLevel,
    warnings: [...model.warnings],
    bitmap1,
    bitmap2,
  };
}

/** Copy the first `n` bits of `from` into `to` (in 1 MiB byte chunks; both start clear in `to`). */
function copyBits(from: PfnBitmap, to: PfnBitmap, n: number): void {
  const chunk = new Uint8Array(1 << 20);
  const bytes = Math.floor(n / 8);
  for (let pos = 0; pos < bytes; pos += chunk.length) {
    const len = Math.min(chunk.length, bytes - pos);
    from.readBytes(pos, chunk.subarray(0, len));
    for (let i = 0; i < len;) {
      // Runs of 0xff bytes become one setRange; other bytes bit by bit.
      const v = chunk[i];
      const pfn = (pos + i) * 8;
      if (v === 0xff) {
        let j = i + 1;
        while (j < len && chunk[j] === 0xff) j++;
        to.setRange(pfn, (pos + j) * 8);
        i = j;
        continue;
      }
      for (let b = 0; v !== 0 && b < 8; b++) if ((v >>> b) & 1) to.set(pfn + b);
      i++;
    }
  }
  for (let p = bytes * 8; p < n; p++) if (from.get(p)) to.set(p);
}

/** init_uts_ns.name from the dump (as makedumpfile does), else `fallback` (the input header's). */
function readUtsnameOr(model: MemoryModel, info: VmcoreInfo, fallback: Uint8Array): Uint8Array {
  const sym = info.symbol("init_uts_ns");
  if (sym !== undefined) {
    const out = new Uint8Array(UTSNAME_SIZE);
    const addr = BigInt.asUintN(64, sym + BigInt(info.offset("uts_namespace.name") ?? 0));
    if (model.vm.readVirt(addr, out)) return out;
  }
  return fallback;
}

/** A whole re-filtering run (the counterpart of cli/dump.ts runDump for kdump-compressed inputs). */
export interface RefilterRequest {
  /** kdump-compressed or flattened kdump file. */
  input: string;
  dumpLevel: number;
  vmcoreinfoFile?: string;
  codec: PageCodec | null;
  /** Opens the output (one file); called after the input has been read and filtered. */
  openSink?: () => Sink;
  /** --split: opens the outputs (≥ 2); used instead of openSink. */
  openSplitSinks?: () => Sink[];
  /** --splitblock-size in bytes (KiB << 10). */
  splitblockSize?: number;
  onProgress?: (done: number, total: number, bytes: number) => void;
  debug?: (text: string) => void;
  notice?: (text: string) => void;
  bitmapDir?: string;
  /** Bytes for both bitmaps in memory (default: unlimited). */
  bitmapBudget?: number;
  directIo?: boolean;
  imageGuard?: boolean;
  excludeVmemmap?: boolean;
}

/** Outcome of {@link refilterKdump} (same counts as runDump's DumpResult). */
export interface RefilterResult {
  stats: PageStats;
  scan: ScanResult;
  write: KdumpWriteResult;
  split?: KdumpSplitResult;
  vmemmap?: VmemmapExcludeResult;
  inputLevel: number;
  effectiveLevel: number;
  input: { format: "kdump" | "flattened"; maxMapnr: number; dumpable: number; flatRecords?: number };
  seconds: number;
}

/** Re-filter one kdump input. Throws VmsiftError; sinks are aborted on error (partial output removed). */
export function refilterKdump(req: RefilterRequest): RefilterResult {
  const t0 = performance.now();
  let override: VmcoreInfo | undefined;
  if (req.vmcoreinfoFile !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(req.vmcoreinfoFile);
    } catch (e) {
      throw new VmsiftError(`cannot read VMCOREINFO file: ${(e as Error).message}`, {
        file: req.vmcoreinfoFile,
      });
    }
    override = VmcoreInfo.parse(text, req.vmcoreinfoFile);
  }
  const input = openKdumpInput(req.input);
  let closeBitmaps = () => {};
  try {
    if ((req.dumpLevel | input.dumpLevel) !== req.dumpLevel) {
      req.notice?.(
        `dump_level is changed to ${req.dumpLevel | input.dumpLevel}, because ${input.path} was created ` +
          `by dump_level(${input.dumpLevel}).`,
      );
    }
    const f = filterKdumpInput(
      input,
      {
        dumpLevel: req.dumpLevel,
        vmcoreinfo: override,
        imageGuard: req.imageGuard,
        excludeVmemmap: req.excludeVmemmap,
      },
      (maxMapnr) => {
        const b = createBitmaps(maxMapnr, {
          budgetBytes: req.bitmapBudget ?? Number.MAX_SAFE_INTEGER,
          dir: req.bitmapDir,
          direct: req.directIo,
        });
        closeBitmaps = () => b.close();
        for (const w of b.warnings) req.notice?.(`warning: ${w}`);
        req.debug?.(b.description);
        return b;
      },
    );
    for (const w of f.warnings) req.debug?.(`warning: ${w}`);
    let write: KdumpWriteResult;
    let split: KdumpSplitResult | undefined;
    if (req.openSplitSinks !== undefined) {
      const sinks = req.openSplitSinks();
      try {
        split = writeKdumpSplit(f.source, sinks, {
          codec: req.codec,
          onProgress: req.onProgress,
          extraStatus: f.extraStatus,
          splitblockSize: req.splitblockSize,
        });
        for (const s of sinks) s.close();
      } catch (e) {
        for (const s of sinks) s.abort();
        throw e;
      }
      write = split.total;
    } else {
      if (req.openSink === undefined) throw new VmsiftError("refilterKdump: no output", { file: req.input });
      const sink = req.openSink();
      try {
        write = writeKdump(f.source, {
          codec: req.codec,
          sink,
          onProgress: req.onProgress,
          extraStatus: f.extraStatus,
        });
        sink.close();
      } catch (e) {
        sink.abort();
        throw e;
      }
    }
    const stats = pageStatsOf(f.original, f.source.maxMapnr, f.scan.counts, write.zeroPages);
    return {
      stats,
      scan: f.scan,
      write,
      split,
      vmemmap: f.vmemmap,
      inputLevel: input.dumpLevel,
      effectiveLevel: f.effectiveLevel,
      input: {
        format: input.format,
        maxMapnr: input.maxMapnr,
        dumpable: input.dumpable.popcount(),
        flatRecords: input.flatRecords,
      },
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    closeBitmaps();
    input.close();
  }
}
