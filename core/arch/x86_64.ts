/**
 * x86_64 behind the architecture seam: the page-table translator of core/pageTable.ts (4/5-level, PSE
 * leaves, sme_mask), NUMBER(phys_base), PAGESIZE 4096. The kernel image range is the memory model's
 * VMCOREINFO rule (kernelImageRange / kernelImageFromMapping in core/memoryModel.ts).
 */
import { VmsiftError } from "../errors.ts";
import { X86Translator } from "../pageTable.ts";
import type { PhysicalMemory } from "../physMem.ts";
import type { VmcoreInfo } from "../vmcoreinfo.ts";
import type { Arch } from "./arch.ts";

/** The x86_64 Arch of a dump (throws VmsiftError on a PAGESIZE other than 4096 or no page-table root). */
export function x86_64FromDump(mem: PhysicalMemory, info: VmcoreInfo): Arch {
  const pageSize = info.pageSize ?? 4096;
  if (pageSize !== 4096) {
    throw new VmsiftError(`PAGESIZE ${pageSize} is not supported (x86_64 uses 4096)`, { file: info.source });
  }
  const vm = X86Translator.fromVmcoreInfo(mem, info);
  const physBase = info.number("phys_base") ?? 0n;
  return {
    name: "x86_64",
    utsMachine: "x86_64",
    elfMachine: 62,
    pageSize,
    physBase,
    vm,
    vmemmap: () => undefined,
    describe: () => [
      "arch: x86_64",
      `page size: ${pageSize}`,
      `paging levels: ${vm.levels}`,
      `page-table root: 0x${vm.rootPa.toString(16)}`,
      `phys_base: 0x${BigInt.asUintN(64, physBase).toString(16)}`,
    ],
  };
}
