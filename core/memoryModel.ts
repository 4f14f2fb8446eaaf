/**
 * The memory model of a dump: physical memory + VMCOREINFO → page-table translator, sparse sections
 * (struct page locations), max_mapnr, struct-page scheme and the kernel image range. Built once and passed
 * down to the scan (core/scan.ts), the dmesg reader and the writers.
 */
import { VmsiftError } from "./errors.ts";
import type { PhysicalMemory } from "./physMem.ts";
import { KERNEL_IMAGE_WINDOW, kernelImagePa, START_KERNEL_MAP, X86Translator } from "./pageTable.ts";
import { detectPageScheme, type PageScheme } from "./pageTypes.ts";
import { readSparseMem, type SparseMem } from "./sparsemem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Physical pfn range of the kernel image, never excluded by the scan. */
export interface KernelImageRange {
  /** First pfn of the kernel image. */
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
  /** Which symbols gave it, e.g. "_stext.._end". */
  source: string;
}

/** The crashed kernel's memory as vmsift models it (built by {@link buildMemoryModel}). */
export interface MemoryModel {
  /** The dump's physical memory. */
  mem: PhysicalMemory;
  /** The VMCOREINFO the model was built from. */
  info: VmcoreInfo;
  /** Kernel virtual memory (page-table walks from the kernel's top-level page table). */
  vm: X86Translator;
  /** NUMBER(phys_base) (signed; 0 when absent). */
  physBase: bigint;
  /** Bytes per page (PAGESIZE). */
  pageSize: number;
  /** log2 of the page size. */
  pageShift: number;
  /** max_mapnr from the PT_LOADs (pfn past the highest byte), before lowering. */
  maxMapnrLoads: number;
  /** max_mapnr lowered to the end of the last section with a mem_map (the dump's "Total pages"). */
  maxMapnr: number;
  /** The sparsemem sections and their mem_map addresses. */
  sparse: SparseMem;
  /** How this kernel marks page types (buddy, slab, offline, ...), from VMCOREINFO. */
  scheme: PageScheme;
  /** Kernel image pfns protected from exclusion, when the symbols needed are present. */
  kernelImage: KernelImageRange | undefined;
  /** Non-fatal oddities (for --debug / verbose output). */
  warnings: string[];
}

/** Options of buildMemoryModel. */
export interface MemoryModelOptions {
  /** Protect the kernel image pages (default true). */
  kernelImageGuard?: boolean;
}

/** Build the model; throws VmsiftError (missing VMCOREINFO keys, no page tables) when it cannot. */
export function buildMemoryModel(
  mem: PhysicalMemory,
  info: VmcoreInfo,
  opts: MemoryModelOptions = {},
): MemoryModel {
  const pageSize = info.pageSize ?? 4096;
  if (pageSize !== 4096) {
    throw new VmsiftError(`PAGESIZE ${pageSize} is not supported (x86_64 uses 4096)`, { file: info.source });
  }
  const pageShift = Math.log2(pageSize);
  const vm = X86Translator.fromVmcoreInfo(mem, info);
  const physBase = info.number("phys_base") ?? 0n;
  let maxPaddr = 0;
  for (const s of mem.segments) maxPaddr = Math.max(maxPaddr, s.paddr + s.memSize);
  const maxMapnrLoads = Math.ceil(maxPaddr / pageSize);
  const sparse = readSparseMem(vm, info, maxMapnrLoads, pageShift);
  const scheme = detectPageScheme(info);
  const warnings = [...sparse.warnings];
  const kernelImage = opts.kernelImageGuard === false
    ? undefined
    : (kernelImageRange(info, physBase, pageSize) ?? kernelImageFromMapping(mem, info, physBase, pageSize));
  if (opts.kernelImageGuard !== false && kernelImage === undefined) {
    warnings.push("kernel image range unknown (no SYMBOL(_stext), or it is not mapped): not protected");
  }
  return {
    mem,
    info,
    vm,
    physBase,
    pageSize,
    pageShift,
    maxMapnrLoads,
    maxMapnr: sparse.maxMapnr,
    sparse,
    scheme,
    kernelImage,
    warnings,
  };
}

/**
 * The kernel image when VMCOREINFO has SYMBOL(_stext) but no SYMBOL(_end) (6.1 exports only _stext): the
 * kernel maps its own image in the __START_KERNEL_map window and cleanup_highmap() removes every 2 MiB entry
 * past roundup(_brk_end, 2 MiB), so the image is the mapped run that starts at _stext, walked through the
 * page tables (never the linear formula, which would "map" anything). The run is cut where the mapping
 * stops or stops being physically contiguous, and at the end of the window (KERNEL_IMAGE_SIZE).
 */
export function kernelImageFromMapping(
  mem: PhysicalMemory,
  info: VmcoreInfo,
  physBase: bigint,
  pageSize: number,
): KernelImageRange | undefined {
  const start = info.symbol("_stext") ?? info.symbol("_text");
  if (start === undefined) return undefined;
  let walker: X86Translator;
  try {
    walker = X86Translator.fromVmcoreInfo(mem, info, { linearKernelImage: false });
  } catch {
    return undefined;
  }
  // KERNEL_IMAGE_SIZE is at most the 1 GiB window; a larger (corrupt) value would walk far beyond it.
  const imageSize = info.number("KERNEL_IMAGE_SIZE") ?? KERNEL_IMAGE_WINDOW;
  const windowEnd = START_KERNEL_MAP +
    (imageSize > 0n && imageSize < KERNEL_IMAGE_WINDOW ? imageSize : KERNEL_IMAGE_WINDOW);
  if (start < START_KERNEL_MAP || start >= windowEnd) return undefined;
  const pieces = walker.mapRun(start, Number(windowEnd - start));
  const first = pieces[0];
  if (first === undefined || first.paddr === undefined) return undefined;
  const linear = kernelImagePa(start, physBase);
  if (linear !== first.paddr) return undefined; // the tables disagree with phys_base: trust neither
  return {
    startPfn: Math.floor(first.paddr / pageSize),
    endPfn: Math.ceil((first.paddr + first.len) / pageSize),
    source: `${info.symbol("_stext") !== undefined ? "_stext" : "_text"}..end of its page-table mapping`,
  };
}

/**
 * The kernel image pfns: [_stext, _end) when VMCOREINFO exports both (physical via phys_base). Kernels
 * export SYMBOL(_stext) but not SYMBOL(_end) in VMCOREINFO (6.1 does not), so with VMCOREINFO alone the
 * range is usually unknown; see the scan's keptKernelImage count.
 */
export function kernelImageRange(
  info: VmcoreInfo,
  physBase: bigint,
  pageSize: number,
): KernelImageRange | undefined {
  const start = info.symbol("_stext") ?? info.symbol("_text");
  const end = info.symbol("_end");
  if (start === undefined || end === undefined || end <= start) return undefined;
  const ps = kernelImagePa(start, physBase);
  const pe = kernelImagePa(end - 1n, physBase);
  if (ps === undefined || pe === undefined || pe < ps) return undefined;
  return {
    startPfn: Math.floor(ps / pageSize),
    endPfn: Math.floor(pe / pageSize) + 1,
    source: `${info.symbol("_stext") !== undefined ? "_stext" : "_text"}.._end`,
  };
}
