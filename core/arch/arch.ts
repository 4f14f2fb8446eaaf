/**
 * The architecture seam: everything that differs between the machines a dump may come from (address
 * translation, the kernel-image mapping, the vmemmap region, phys_base for the kdump header, the utsname
 * machine) behind one interface, chosen from the dump itself (ELF e_machine + VMCOREINFO), never from the
 * host. The scan, the classification and -e only see `Arch.vm` (a KernelTranslator); they never test the
 * architecture. x86_64: core/arch/x86_64.ts; arm64: core/arch/arm64.ts.
 */
import { VmsiftError } from "../errors.ts";
import type { KernelImageRange } from "../memoryModel.ts";
import type { PhysicalMemory } from "../physMem.ts";
import type { VmcoreInfo } from "../vmcoreinfo.ts";
import { arm64FromDump } from "./arm64.ts";
import type { KernelTranslator } from "./walk.ts";
import { x86_64FromDump } from "./x86_64.ts";

/** ELF e_machine of x86_64 dumps. */
export const EM_X86_64 = 62;
/** ELF e_machine of arm64 (AArch64) dumps. */
export const EM_AARCH64 = 183;

/** Names of the supported architectures. */
export type ArchName = "x86_64" | "arm64";

/** One architecture's view of one dump. */
export interface Arch {
  /** Which architecture. */
  readonly name: ArchName;
  /** utsname.machine of its kernels ("x86_64", "aarch64"). */
  readonly utsMachine: string;
  /** ELF e_machine of its dumps. */
  readonly elfMachine: number;
  /** PAGESIZE of the dump (x86_64: 4096; arm64: 4096, 16384 or 65536). */
  readonly pageSize: number;
  /** What makedumpfile writes as the kdump sub-header's phys_base (x86_64 NUMBER(phys_base), arm64 PHYS_OFFSET). */
  readonly physBase: bigint;
  /** Kernel virtual → physical translation. */
  readonly vm: KernelTranslator;
  /**
   * The kernel image's pfns, when this architecture knows them from the dump; absent when the memory model's
   * VMCOREINFO rule (core/memoryModel.ts kernelImageRange / kernelImageFromMapping) applies.
   */
  kernelImage?(): KernelImageRange | undefined;
  /** [start, end) of the vmemmap region when the dump says (arm64 NUMBER(VMEMMAP_START/END)). */
  vmemmap(): { start: bigint; end: bigint } | undefined;
  /** Facts for `info` and --debug, one "name: value" per line. */
  describe(): string[];
}

/** Options of selectArch. */
export interface SelectArchOptions {
  /** ELF e_machine of the input, when it is an ELF file (else the VMCOREINFO decides). */
  elfMachine?: number;
}

/**
 * The dump's architecture: ELF e_machine when known, else VMCOREINFO (arm64 exports SYMBOL(swapper_pg_dir)
 * and NUMBER(VA_BITS), x86_64 SYMBOL(init_top_pgt)). Throws VmsiftError when they disagree or neither is
 * supported.
 */
export function selectArch(mem: PhysicalMemory, info: VmcoreInfo, opts: SelectArchOptions = {}): Arch {
  const looksArm64 = info.symbol("swapper_pg_dir") !== undefined &&
    info.symbol("init_top_pgt") === undefined && info.symbol("init_level4_pgt") === undefined &&
    (info.number("VA_BITS") !== undefined || info.number("TCR_EL1_T1SZ") !== undefined);
  const m = opts.elfMachine;
  if (m === EM_AARCH64 || (m === undefined && looksArm64)) {
    if (!looksArm64) {
      throw new VmsiftError(
        "the ELF header says arm64 but VMCOREINFO has no SYMBOL(swapper_pg_dir)/NUMBER(VA_BITS)",
        {
          file: info.source,
        },
      );
    }
    return arm64FromDump(mem, info);
  }
  if (m === EM_X86_64 || m === undefined) {
    if (looksArm64) {
      throw new VmsiftError("the ELF header says x86_64 but VMCOREINFO is an arm64 kernel's", {
        file: info.source,
      });
    }
    return x86_64FromDump(mem, info);
  }
  throw new VmsiftError(`unsupported machine ${m} (x86_64 = ${EM_X86_64}, arm64 = ${EM_AARCH64})`, {
    file: mem.label,
    offset: 18,
  });
}
