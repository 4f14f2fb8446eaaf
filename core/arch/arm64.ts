/**
 * arm64 (AArch64) behind the architecture seam, from VMCOREINFO alone (Linux arch/arm64/kernel/
 * crash_core.c / vmcore_info.c export the keys; makedumpfile arch/arm64.c reads the same):
 *
 * - PAGESIZE: the granule, 4096, 16384 or 65536.
 * - NUMBER(VA_BITS): the configured VA size; NUMBER(TCR_EL1_T1SZ) (5.9+): the size the kernel RUNS with,
 *   64 - T1SZ, which is what the tables are walked with (a VA_BITS=52 kernel on a CPU without LVA runs 48).
 * - NUMBER(MAX_PHYSMEM_BITS)=52 with 64 KiB pages: FEAT_LPA descriptors; a 52-bit running VA with 4/16 KiB
 *   pages: FEAT_LPA2 descriptors (core/arch/arm64Tables.ts).
 * - SYMBOL(swapper_pg_dir): the TTBR1 root, a kernel-image address: PA = vaddr - NUMBER(kimage_voffset).
 *   Without kimage_voffset (before 4.6) it is a linear-map address.
 * - NUMBER(PHYS_OFFSET) (memstart_addr): signed; negative when KASLR randomises the linear map. The linear
 *   map is PA = vaddr - PAGE_OFFSET + PHYS_OFFSET with PAGE_OFFSET = -(1 << VA_BITS) in the "flipped"
 *   layout of 5.4+ (kernel image in the upper half), and PA = (vaddr & ~PAGE_OFFSET) + PHYS_OFFSET with
 *   PAGE_OFFSET = -(1 << (VA_BITS - 1)) before. It is also the kdump header's phys_base (as makedumpfile).
 * - NUMBER(KERNELPACMASK): pointer-authentication bits; the walk indexes with the low vaBits only, so they
 *   (and top-byte tags) never reach a table index.
 *
 * The scan reads struct pages through the walk (vmemmap is block-mapped, so few pieces). The kernel image
 * guard: see arm64KernelImage.
 */
import { VmsiftError } from "../errors.ts";
import type { KernelImageRange } from "../memoryModel.ts";
import type { PhysicalMemory } from "../physMem.ts";
import type { VmcoreInfo } from "../vmcoreinfo.ts";
import type { Arch } from "./arch.ts";
import { type Arm64AddressFormat, arm64Levels, Arm64Translator } from "./arm64Tables.ts";

const MASK64 = (1n << 64n) - 1n;
/** Bound of the kernel image guard's mapped run. */
const IMAGE_RUN_MAX = 1 << 30;

/** The layout facts of an arm64 dump, from VMCOREINFO. */
export interface Arm64Layout {
  /** PAGESIZE: the granule. */
  pageSize: number;
  /** NUMBER(VA_BITS) (configured). */
  vaBitsConfigured: number;
  /** 64 - NUMBER(TCR_EL1_T1SZ), else VA_BITS: what the tables are walked with. */
  vaBits: number;
  /** NUMBER(MAX_PHYSMEM_BITS), 48 when absent. */
  maxPhysmemBits: number;
  /** How the descriptors hold output addresses. */
  addressFormat: Arm64AddressFormat;
  /** NUMBER(kimage_voffset), unsigned; undefined before 4.6. */
  kimageVoffset: bigint | undefined;
  /** NUMBER(PHYS_OFFSET), signed. */
  physOffset: bigint;
  /** Kernel image in the upper half (5.4+). */
  flipped: boolean;
  /** PAGE_OFFSET, unsigned. */
  pageOffset: bigint;
  /** NUMBER(KERNELPACMASK), 0 when absent. */
  pacMask: bigint;
}

/** Read the layout; throws VmsiftError naming the VMCOREINFO key that is missing or implausible. */
export function arm64Layout(info: VmcoreInfo): Arm64Layout {
  const bad = (what: string) =>
    new VmsiftError(`VMCOREINFO ${what} is implausible for arm64`, { file: info.source });
  const pageSize = info.pageSize ?? 4096;
  if (pageSize !== 4096 && pageSize !== 16384 && pageSize !== 65536) throw bad(`PAGESIZE=${pageSize}`);
  const t1sz = info.numberN("TCR_EL1_T1SZ");
  const configured = info.numberN("VA_BITS") ?? (t1sz !== undefined ? 64 - t1sz : undefined);
  if (configured === undefined) throw info.missing("NUMBER(VA_BITS)");
  const vaBits = t1sz !== undefined && t1sz > 0 ? 64 - t1sz : configured;
  try {
    arm64Levels(pageSize, vaBits);
  } catch (e) {
    throw bad(`granule ${pageSize} with a ${vaBits}-bit VA (${(e as Error).message})`);
  }
  if (configured < vaBits || configured > 52) throw bad(`NUMBER(VA_BITS)=${configured}`);
  const maxPhysmemBits = info.numberN("MAX_PHYSMEM_BITS") ?? 48;
  const addressFormat: Arm64AddressFormat = pageSize === 65536
    ? (maxPhysmemBits === 52 ? "lpa" : "plain")
    : (vaBits === 52 ? "lpa2" : "plain");
  const kv = info.number("kimage_voffset");
  const kimageVoffset = kv === undefined ? undefined : BigInt.asUintN(64, kv);
  const physOffset = info.number("PHYS_OFFSET") ?? 0n;
  // makedumpfile get_page_offset_arm64: the image lies above PAGE_END = -(1 << (min(VA_BITS, 48) - 1)) in
  // the flipped layout; without _stext, kimage_voffset (4.6+) and T1SZ (5.9+) say a recent kernel.
  const stext = info.symbol("_stext");
  const pageEnd = MASK64 & -(1n << BigInt(Math.min(configured, 48) - 1));
  const flipped = stext !== undefined ? BigInt.asUintN(64, stext) > pageEnd : t1sz !== undefined;
  const pageOffset = MASK64 & -(1n << BigInt(flipped ? configured : configured - 1));
  return {
    pageSize,
    vaBitsConfigured: configured,
    vaBits,
    maxPhysmemBits,
    addressFormat,
    kimageVoffset,
    physOffset,
    flipped,
    pageOffset,
    pacMask: BigInt.asUintN(64, info.number("KERNELPACMASK") ?? 0n),
  };
}

/** True for an address of the linear map (makedumpfile is_linear_addr, with the running VA size). */
export function isLinearAddress(l: Arm64Layout, vaddr: bigint): boolean {
  const top = (BigInt.asUintN(64, vaddr) >> BigInt(l.vaBits - 1)) & 1n;
  return l.flipped ? top === 0n : top === 1n;
}

/**
 * makedumpfile's __pa: a linear-map address through PAGE_OFFSET/PHYS_OFFSET, anything else (the kernel
 * image) through kimage_voffset. Undefined when the result is not a physical address (≥ 2^52).
 */
export function arm64LinearPa(l: Arm64Layout, vaddr: bigint): number | undefined {
  const v = BigInt.asUintN(64, vaddr);
  let pa: bigint;
  if (l.kimageVoffset === undefined || isLinearAddress(l, v)) {
    pa = l.flipped ? v - l.pageOffset + l.physOffset : (v & ~l.pageOffset) + l.physOffset;
  } else {
    pa = v - l.kimageVoffset;
  }
  pa &= MASK64;
  return pa < 1n << 52n ? Number(pa) : undefined;
}

/** The arm64 Arch of a dump. */
export function arm64FromDump(mem: PhysicalMemory, info: VmcoreInfo): Arch {
  const l = arm64Layout(info);
  const swapper = info.requireSymbol("swapper_pg_dir");
  const rootPa = arm64LinearPa(l, swapper);
  if (rootPa === undefined) {
    throw new VmsiftError("SYMBOL(swapper_pg_dir) does not translate to a physical address", {
      file: info.source,
      address: swapper,
    });
  }
  const vm = new Arm64Translator(mem, {
    rootPa,
    pageSize: l.pageSize,
    vaBits: l.vaBits,
    addressFormat: l.addressFormat,
  });
  const vmStart = info.number("VMEMMAP_START"), vmEnd = info.number("VMEMMAP_END");
  const hex = (v: bigint) => `0x${BigInt.asUintN(64, v).toString(16)}`;
  return {
    name: "arm64",
    utsMachine: "aarch64",
    elfMachine: 183,
    pageSize: l.pageSize,
    physBase: l.physOffset,
    vm,
    kernelImage: () => arm64KernelImage(vm, info, l),
    vmemmap: () =>
      vmStart !== undefined && vmEnd !== undefined
        ? { start: BigInt.asUintN(64, vmStart), end: BigInt.asUintN(64, vmEnd) }
        : undefined,
    describe: () => [
      "arch: arm64",
      `page size: ${l.pageSize}`,
      `VA bits: ${l.vaBits} running (VA_BITS=${l.vaBitsConfigured}), ${vm.levels} levels`,
      `physical address format: ${l.addressFormat} (MAX_PHYSMEM_BITS=${l.maxPhysmemBits})`,
      `layout: ${l.flipped ? "flipped (5.4+)" : "pre-5.4"}, PAGE_OFFSET ${hex(l.pageOffset)}`,
      `PHYS_OFFSET: ${hex(l.physOffset)}${l.physOffset < 0n ? " (negative)" : ""}`,
      `kimage_voffset: ${l.kimageVoffset === undefined ? "absent" : hex(l.kimageVoffset)}`,
      `swapper_pg_dir: 0x${rootPa.toString(16)}`,
    ],
  };
}

/**
 * The kernel image guard: from _stext to the end of the run the tables map at PA = VA - kimage_voffset,
 * physically contiguous and without a hole (cut at 1 GiB): text and rodata up to __init_begin. arm64 unmaps
 * [__init_begin, __init_end) after boot and frees its pages to the page allocator, so the run stops there and
 * .data/.bss beyond are not covered (kallsyms would give their bounds). Undefined when _stext is absent or the
 * tables disagree with kimage_voffset.
 */
function arm64KernelImage(
  vm: Arm64Translator,
  info: VmcoreInfo,
  l: Arm64Layout,
): KernelImageRange | undefined {
  const stext = info.symbol("_stext") ?? info.symbol("_text");
  if (stext === undefined || l.kimageVoffset === undefined) return undefined;
  const start = arm64LinearPa(l, stext);
  if (start === undefined || vm.vtop(stext) !== start) return undefined;
  const step = 2 * 1024 * 1024;
  let len = 0;
  let v = BigInt.asUintN(64, stext);
  while (len < IMAGE_RUN_MAX) {
    const pieces = vm.mapRun(v, step - Number(v % BigInt(step)));
    const p = pieces[0];
    if (p.paddr !== start + len) break;
    len += p.len;
    if (pieces.length > 1) break;
    v += BigInt(p.len);
  }
  const end = start + len;
  return {
    startPfn: Math.floor(start / l.pageSize),
    endPfn: Math.ceil(end / l.pageSize),
    source: `${info.symbol("_stext") !== undefined ? "_stext" : "_text"}..end of its kimage mapping`,
  };
}
