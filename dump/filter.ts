/**
 * One dump level applied to an opened input: the memory model, bitmap 1 (present pages) and bitmap 2
 * (pages to write) filled and filtered by the struct-page scan (and -e), and the writer's source. The same
 * steps for an ELF vmcore and for a kdump file being re-filtered (dump/kdumpInput.ts says what differs).
 */
import type { PfnBitmap } from "../core/bitmap.ts";
import { buildMemoryModel, type MemoryModel } from "../core/memoryModel.ts";
import { markPresentPages } from "../core/presentPages.ts";
import { excludeUnnecessaryPages, type ScanResult } from "../core/scan.ts";
import { readUtsname } from "../core/utsname.ts";
import { excludeVmemmapPages, type VmemmapExcludeResult } from "../core/vmemmapExclude.ts";
import { DUMP_DH_EXCLUDED_VMEMMAP } from "../formats/kdump/header.ts";
import type { KdumpSource } from "../formats/kdump/writer.ts";
import type { DumpInput } from "./input.ts";
import { copyBits, refilterMaxMapnr } from "./kdumpInput.ts";

/** Options of {@link filterInput}. */
export interface FilterOptions {
  /** Requested -d level (a kdump input's own level is OR'ed in). */
  dumpLevel: number;
  /** Keep kernel-image pages whatever their struct page says (default true). */
  imageGuard?: boolean;
  /** -e: also exclude vmemmap pages that describe only excluded pages. */
  excludeVmemmap?: boolean;
  /** Debug messages (max_mapnr, the model's warnings). */
  debug?: (text: string) => void;
}

/** Bitmap 1 and bitmap 2 of a dump, at least max_mapnr bits each, all clear. */
export interface DumpBitmaps {
  /** Pages present in the input. */
  bitmap1: PfnBitmap;
  /** Pages to write. */
  bitmap2: PfnBitmap;
}

/** An input filtered at one dump level, ready for the writers. */
export interface FilteredInput {
  /** Everything the writers need (bitmaps, notes, utsname, phys_base, level). */
  source: KdumpSource;
  /** The memory model built over the input. */
  model: MemoryModel;
  /** What the struct-page scan excluded. */
  scan: ScanResult;
  /** -e: what the vmemmap pass did (undefined without -e). */
  vmemmap?: VmemmapExcludeResult;
  /** Header status bits for the writer (excluded vmemmap). */
  extraStatus: number;
  /** Pages of bitmap 1 below max_mapnr. */
  original: number;
  /** The level written: requested, OR'ed with a kdump input's. */
  effectiveLevel: number;
}

/** The level written for `requested`: a kdump input's own level is kept (makedumpfile update_dump_level). */
export function effectiveLevel(input: DumpInput, requested: number): number {
  return input.format === "elf" ? requested : requested | input.kdump.dumpLevel;
}

/**
 * Build the memory model over the input, fill the bitmaps `makeBitmaps(maxMapnr)` returns (the caller closes
 * them) and run the scan (and -e).
 *
 * @example The low-level path: filter in memory, write with your own sink
 * ```ts
 * import { filterInput, MemBitmap, NullSink, openInput, writeKdump } from "@vmsift/vmsift";
 *
 * const path = Deno.args[0];
 * if (path !== undefined) {
 *   const input = openInput(path);
 *   try {
 *     const inMemory = (n: number) => ({ bitmap1: new MemBitmap(n), bitmap2: new MemBitmap(n) });
 *     const f = filterInput(input, { dumpLevel: 31 }, inMemory);
 *     const sink = new NullSink();
 *     const r = writeKdump(f.source, { codec: null, sink, extraStatus: f.extraStatus });
 *     console.log(`${r.dumpablePages} pages, ${sink.bytes} bytes`);
 *   } finally {
 *     input.close();
 *   }
 * }
 * ```
 */
export function filterInput(
  input: DumpInput,
  opts: FilterOptions,
  makeBitmaps: (maxMapnr: number) => DumpBitmaps,
): FilteredInput {
  const { info, mem } = input;
  const model = buildMemoryModel(mem, info, { kernelImageGuard: opts.imageGuard ?? true });
  const elf = input.format === "elf" ? input : undefined;
  const kdump = input.format === "elf" ? undefined : input.kdump;
  const maxMapnr = kdump === undefined ? model.maxMapnr : refilterMaxMapnr(kdump, model);
  opts.debug?.(`max_mapnr    : ${maxMapnr.toString(16)}`);
  const { bitmap1, bitmap2 } = makeBitmaps(maxMapnr);
  let original: number;
  if (elf !== undefined) {
    original = markPresentPages(elf.core.segments, model.pageSize, maxMapnr, bitmap1);
    markPresentPages(elf.core.segments, model.pageSize, maxMapnr, bitmap2);
  } else {
    copyBits(kdump!.present, bitmap1, maxMapnr);
    copyBits(kdump!.dumpable, bitmap2, maxMapnr);
    original = bitmap1.popcount(0, maxMapnr);
  }
  const level = effectiveLevel(input, opts.dumpLevel);
  // The scan itself decides whether this level needs struct pages (hwpoison/offline need them at any level).
  const scan = excludeUnnecessaryPages(model, level, bitmap1, bitmap2);
  const vmemmap = opts.excludeVmemmap ? excludeVmemmapPages(model, bitmap1, bitmap2) : undefined;
  for (const w of model.warnings) opts.debug?.(`warning: ${w}`);
  const source: KdumpSource = elf !== undefined
    ? {
      mem,
      bitmap1,
      bitmap2,
      maxMapnr,
      pageSize: model.pageSize,
      noteBytes: elf.core.noteSegment.bytes,
      vmcoreinfoOffsetInNotes: elf.vmcoreinfoOffsetInNotes,
      vmcoreinfoSize: elf.vmcoreinfoSize,
      utsname: readUtsname(model.vm, info),
      crashTime: info.crashTime ?? 0,
      nrCpus: elf.core.nrCpus,
      physBase: model.physBase,
      dumpLevel: level,
    }
    : {
      mem,
      bitmap1,
      bitmap2,
      maxMapnr,
      pageSize: kdump!.pageSize,
      noteBytes: kdump!.noteBytes,
      vmcoreinfoOffsetInNotes: kdump!.vmcoreinfoOffsetInNotes,
      vmcoreinfoSize: kdump!.vmcoreinfoSize,
      // init_uts_ns from the dump (as makedumpfile), else the input header's.
      utsname: readUtsname(model.vm, info, kdump!.utsname),
      crashTime: info.crashTime ?? kdump!.crashTime,
      nrCpus: kdump!.nrCpus,
      // VMCOREINFO's NUMBER(phys_base) when there is one: QEMU's sub header phys_base is that decimal
      // number parsed as hex (0x266338304 for 266338304 = 0xfe00000); crash uses the sub header's value.
      physBase: info.number("phys_base") ?? kdump!.physBase,
      dumpLevel: level,
    };
  const excluded = vmemmap !== undefined && vmemmap.pagesExcluded > 0 ? DUMP_DH_EXCLUDED_VMEMMAP : 0;
  return {
    source,
    model,
    scan,
    vmemmap,
    extraStatus: excluded | ((kdump?.status ?? 0) & DUMP_DH_EXCLUDED_VMEMMAP),
    original,
    effectiveLevel: level,
  };
}
