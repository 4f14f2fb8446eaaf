/**
 * vmsift library API: read a kdump vmcore, model the crashed kernel's memory, classify pages like
 * makedumpfile, and write, read and verify kdump-compressed dumps.
 *
 * A whole dump is three calls (the dump layer, dump/): {@link openInput} (an ELF vmcore, or a
 * kdump-compressed or flattened file to re-filter) → {@link planDump} (dump level, codec, output form,
 * bitmaps, limits) → {@link runDump} (writes the file, returns a {@link DumpReport}); {@link dumpVmcore}
 * does the three at once. {@link verifyDump} re-reads every page of the result and compares it with the
 * vmcore.
 *
 * @example Dump a vmcore at dump level 31, zlib-compressed, and verify the file
 * ```ts
 * import { dumpVmcore, formatReport, verifyDump } from "@vmsift/vmsift";
 *
 * const [vmcore, out] = Deno.args; // e.g. /proc/vmcore /var/crash/dump.kdump
 * if (vmcore !== undefined && out !== undefined) {
 *   const report = await dumpVmcore(vmcore, { dumpLevel: 31, codec: "zlib", output: out });
 *   console.log(formatReport(report.stats));
 *   const check = verifyDump(out, vmcore);
 *   if (!check.ok) throw new Error(check.problems.join("\n"));
 * }
 * ```
 *
 * Underneath, data goes one way: {@link ElfCore} (the vmcore) → {@link VmcoreInfo} → {@link buildMemoryModel}
 * (page tables, sparsemem, page-type scheme) → {@link excludeUnnecessaryPages} (bitmaps) → {@link writeKdump}
 * → {@link KdumpFile}. {@link filterInput} runs the middle steps for one level and returns a complete
 * {@link KdumpSource} (utsname, notes, phys_base filled in) for {@link writeKdump}.
 *
 * @module
 */

/** Error type of vmsift: every failure names the file and the offset or address. */
export { type ErrorPlace, VmsiftError } from "./core/errors.ts";
/** VMCOREINFO text parsed into typed accessors (SYMBOL, SIZE, OFFSET, LENGTH, NUMBER, ...). */
export { VmcoreInfo } from "./core/vmcoreinfo.ts";
/** Physical memory as the rest of vmsift sees it, whatever the input format. */
export { findSegment, type PhysicalMemory, type PhysSegment } from "./core/physMem.ts";
/** Kernel virtual memory reads (implemented by each architecture's translator, core/arch). */
export type { VirtualMemory } from "./core/virtMem.ts";
/** PFN bitmaps in kdump on-disk bit order. */
export { MemBitmap, type PfnBitmap } from "./core/bitmap.ts";
/** The ELF vmcore reader (/proc/vmcore, QEMU dump-guest-memory, makedumpfile -E). */
export { ElfCore, type NoteSegment } from "./formats/elfCore.ts";
/** ELF notes of a vmcore. */
export { type ElfNote, NT_PRSTATUS, parseNotes } from "./formats/elfNotes.ts";
/** x86_64 kernel virtual → physical translation (4/5-level page tables) and the --vtop walk. */
export { formatVtop, X86Translator } from "./core/pageTable.ts";
/** The architecture seam: the dump's architecture (x86_64 or arm64) from ELF e_machine + VMCOREINFO. */
export {
  type Arch,
  type ArchName,
  EM_AARCH64,
  EM_X86_64,
  selectArch,
  type SelectArchOptions,
} from "./core/arch/arch.ts";
/** What every architecture's translator offers: vtop, readVirt, mapRun, the --vtop walk. */
export type { KernelTranslator } from "./core/arch/walk.ts";
/** arm64 translation (4/16/64 KiB granules, 2-5 levels, LPA/LPA2) and its layout from VMCOREINFO. */
export {
  type Arm64AddressFormat,
  arm64Levels,
  type Arm64TableOptions,
  Arm64Translator,
} from "./core/arch/arm64Tables.ts";
/** The arm64 layout facts (VA sizes, PHYS_OFFSET, kimage_voffset, PAGE_OFFSET) read from VMCOREINFO. */
export { type Arm64Layout, arm64Layout } from "./core/arch/arm64.ts";
/** The memory model: translator, sparse sections, max_mapnr, page-type scheme, kernel image range. */
export { buildMemoryModel, type MemoryModel } from "./core/memoryModel.ts";
/** The kernel's symbols (kallsyms) and types (BTF) from the dump itself (docs/symbols.md). */
export {
  type KallsymsEncoding,
  type KallsymsOptions,
  type KernelSymbols,
  readKallsyms,
  type SymbolCheck,
} from "./core/kallsyms.ts";
export {
  Btf,
  type BtfField,
  type BtfMember,
  type BtfType,
  readKernelBtf,
  type VirtReader,
} from "./core/btf.ts";
/** Erasing data as makedumpfile's --config does (docs/symbols.md). */
export {
  type EraseStatement,
  type FilterCommand,
  type FilterConfig,
  parseFilterConfig,
} from "./core/filterConfig.ts";
export { type EraseOverlay, type ErasePlan, ErasingMemory, planErase } from "./core/eraseApply.ts";
export { type EraseInfo, type EraseResolution, type FilterRange, resolveErase } from "./core/eraseResolve.ts";
export { BtfKernelTypes, type KernelTypes, type TypeInfo } from "./core/kernelTypes.ts";
export type { EraseRequest } from "./dump/erase.ts";
export type { PfnRange } from "./core/imageGuard.ts";
/** The single struct-page scan that excludes pages by dump level. */
export { excludeUnnecessaryPages, type ExclusionCounts, type ScanResult } from "./core/scan.ts";
/** Marking present pages (bitmap 1) from the PT_LOAD segments. */
export { countPagesPerLoad, markLoadPages, markPresentPages } from "./core/presentPages.ts";
/** Page counts in makedumpfile's terms, its report table and JSON. */
export { formatReport, type PageStats, statsJson } from "./core/stats.ts";
/** The kernel log (--dump-dmesg), in makedumpfile's line format. */
export { DmesgError, type DmesgResult, extractDmesg } from "./core/printk.ts";
/** Where writers put bytes. */
export type { Sink } from "./io/sink.ts";
/** A buffered output file (mode 0600). */
export { FileSink } from "./io/fileSink.ts";
/** Page codecs: zlib, lzo, snappy, zstd. */
export type { PageCodec } from "./formats/codecs/codec.ts";
/**
 * Make a codec by name or descriptor flag (`createCodecAsync` can also import the node:zlib fallback), and
 * the engines each codec has (`--codec-engine`).
 */
export {
  type CodecName,
  createCodec,
  createCodecAsync,
  type EngineChoice,
} from "./formats/codecs/registry.ts";
/** The engines of each codec, in the order "auto" tries them. */
export { CODEC_ENGINES, type EngineName } from "./formats/codecs/engines.ts";
/** Every offset of a kdump-compressed file, as a pure function of the counts. */
export { type KdumpLayout, kdumpLayout } from "./formats/kdump/layout.ts";
/** The kdump-compressed writer. */
export { type KdumpSource, type KdumpWriteResult, writeKdump } from "./formats/kdump/writer.ts";
/** The kdump-compressed reader (also a PhysicalMemory for re-filtering). */
export { KdumpFile } from "./formats/kdump/reader.ts";
/** Re-read every page of a dump and compare it with the vmcore. */
export { verifyDump, type VerifyReport } from "./formats/kdump/verify.ts";
/** Header, bitmap and descriptor summary of a dump. */
export { describeDump, type DumpInfo } from "./formats/kdump/info.ts";
/** Opening the input of a dump: ELF vmcore, kdump-compressed or flattened file (probe table). */
export {
  type DumpInput,
  type ElfDumpInput,
  INPUT_FORMATS,
  type InputFormat,
  type InputFormatOps,
  type KdumpDumpInput,
  openInput,
  type OpenInputOptions,
  readVmcoreinfoFile,
} from "./dump/input.ts";
/** The plan of a dump: levels, codec, output form, bitmaps, guard, limits. */
export {
  DEFAULT_BITMAP_BUDGET,
  type DumpOptions,
  type DumpPlan,
  type OutputForm,
  planDump,
} from "./dump/plan.ts";
/** Running a plan: one whole dump, vmcore in, dump out. */
export { dumpVmcore, runDump, type RunOptions, type SinkNeeds } from "./dump/run.ts";
/** What a dump did. */
export { type DumpReport, reportJson } from "./dump/report.ts";
/** One dump level applied to an input: model, bitmaps, scan, and the writer's source. */
export { type DumpBitmaps, type FilteredInput, filterInput, type FilterOptions } from "./dump/filter.ts";
/** Output files: O_DIRECT or buffered, a counting sink for dry runs. */
export { checkOutputsFree, NullSink, openOutputFile, type OutputFileOptions } from "./dump/outputs.ts";
/** The crashed kernel's utsname, as the kdump header holds it. */
export { readUtsname, UTSNAME_SIZE } from "./core/utsname.ts";
/** The six utsname strings of a kdump header's utsname bytes. */
export { utsnameFields } from "./formats/kdump/header.ts";
/** SIGTERM/SIGINT finish a running dump as incomplete. */
export { withStopSignals } from "./dump/signals.ts";
/** Types that appear in the signatures above. */
export type { KernelImageRange, MemoryModelOptions } from "./core/memoryModel.ts";
export type { LevelName, MappedPiece, WalkResult, WalkStep } from "./core/pageTable.ts";
export type {
  HugetlbSource,
  OrderSource,
  PageScheme,
  PageTypeSchemeName,
  TypeMatcher,
} from "./core/pageTypes.ts";
export type { ScanOptions } from "./core/scan.ts";
export type { MemSection, SparseMem } from "./core/sparsemem.ts";
export type { ClassCounts, StatsJsonExtra } from "./core/stats.ts";
export type { VmemmapExcludeResult } from "./core/vmemmapExclude.ts";
export type { DmesgOptions } from "./core/dmesgFormat.ts";
export type { CreateCodecOptions, CreatedCodec } from "./formats/codecs/registry.ts";
export type {
  IncompleteInfo,
  IncompleteReason,
  UnreadablePages,
  WriteControl,
} from "./formats/incomplete.ts";
export type { MainHeader, SubHeader } from "./formats/kdump/header.ts";
export type { KdumpInput } from "./formats/kdump/inputKdump.ts";
export type { LayoutInput } from "./formats/kdump/layout.ts";
export type { PageDesc, RandomAccessFile } from "./formats/kdump/reader.ts";
export type { VerifyCounts, VerifyOptions } from "./formats/kdump/verify.ts";
export type { KdumpWriteOptions } from "./formats/kdump/writer.ts";
export type { IntervalSet } from "./io/intervalSet.ts";
export type { MappedFile } from "./io/mappedFile.ts";
export type { PositionalFile } from "./io/positionalFile.ts";
