/**
 * A KdumpSource for a whole ELF vmcore below maxMapnr, built without the memory model (levels 0 and 1:
 * bitmap 2 = bitmap 1 = every page a PT_LOAD covers); the utsname is read from init_uts_ns in the kernel
 * image (PA = VA - __START_KERNEL_map + phys_base, mod 2^64). Shared by the writer tests on the real dump.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../../core/bitmap.ts";
import type { PhysicalMemory } from "../../core/physMem.ts";
import { VmcoreInfo } from "../../core/vmcoreinfo.ts";
import type { ElfCore } from "../../formats/elfCore.ts";
import type { KdumpSource } from "../../formats/kdump/writer.ts";

const PS = 4096;

/** `mem` (default the core itself) is what the writer reads pages from, e.g. a wrapper that injects errors. */
export function kdumpSourceFromElf(
  core: ElfCore,
  maxMapnr: number,
  opts: { dumpLevel?: number; mem?: PhysicalMemory } = {},
): KdumpSource {
  const bitmap1 = new MemBitmap(maxMapnr);
  for (const s of core.segments) {
    bitmap1.setRange(Math.floor(s.paddr / PS), Math.min(maxMapnr, Math.ceil((s.paddr + s.memSize) / PS)));
  }
  const bitmap2 = new MemBitmap(maxMapnr);
  bitmap2.bytes.set(bitmap1.bytes);
  const note = core.vmcoreinfoNote!;
  const info = VmcoreInfo.parse(new TextDecoder().decode(note.desc));
  const va = info.requireSymbol("init_uts_ns") + BigInt(info.requireOffset("uts_namespace.name"));
  const physBase = info.requireNumber("phys_base");
  const pa = Number(BigInt.asUintN(64, va - 0xffffffff80000000n + physBase));
  const utsname = new Uint8Array(390);
  assert.ok(core.readPhys(pa, utsname));
  return {
    mem: opts.mem ?? core,
    bitmap1,
    bitmap2,
    maxMapnr,
    pageSize: PS,
    noteBytes: core.noteSegment.bytes,
    vmcoreinfoOffsetInNotes: note.descFileOffset - core.noteSegment.fileOffset,
    vmcoreinfoSize: note.desc.length,
    utsname,
    crashTime: 0,
    nrCpus: core.nrCpus,
    physBase: BigInt.asUintN(64, physBase),
    dumpLevel: opts.dumpLevel ?? 1,
  };
}
