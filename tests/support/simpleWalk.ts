/**
 * Test-only kernel virtual memory: a minimal x86_64 page-table walk (kdump-reference.md section 9), kept
 * independent of core/pageTable.ts so that tests of code above VirtualMemory do not depend on it.
 * Kernel-image addresses use the linear formula PA = vaddr - __START_KERNEL_map + phys_base (mod 2^64);
 * everything else walks init_top_pgt (4- or 5-level, 1 GiB / 2 MiB leaves).
 */
import type { PhysicalMemory } from "../../core/physMem.ts";
import type { VirtualMemory } from "../../core/virtMem.ts";
import type { VmcoreInfo } from "../../core/vmcoreinfo.ts";

const START_KERNEL_MAP = 0xffffffff80000000n;
const MASK64 = (1n << 64n) - 1n;
const ADDR_MASK = 0x000ffffffffff000n;

export class SimpleWalk implements VirtualMemory {
  readonly #phys: PhysicalMemory;
  readonly #physBase: bigint;
  readonly #rootPa: number;
  readonly #levels: number;
  readonly #smeMask: bigint;
  readonly #entry = new Uint8Array(8);
  readonly #entryView = new DataView(this.#entry.buffer);

  constructor(phys: PhysicalMemory, info: VmcoreInfo) {
    this.#phys = phys;
    this.#physBase = info.number("phys_base") ?? 0n;
    this.#smeMask = BigInt.asUintN(64, info.number("sme_mask") ?? 0n);
    this.#levels = info.number("pgtable_l5_enabled") === 1n ? 5 : 4;
    const root = info.symbol("init_top_pgt") ?? info.symbol("init_level4_pgt");
    if (root === undefined) throw new Error("no SYMBOL(init_top_pgt)");
    this.#rootPa = Number(this.#kernelImagePa(root));
  }

  #kernelImagePa(vaddr: bigint): bigint {
    return (vaddr - START_KERNEL_MAP + this.#physBase) & MASK64;
  }

  vtop(vaddr: bigint): number | undefined {
    if (vaddr >= START_KERNEL_MAP) return Number(this.#kernelImagePa(vaddr));
    let table = this.#rootPa;
    for (let level = this.#levels; level >= 1; level--) {
      const shift = 12n + 9n * BigInt(level - 1);
      const index = Number((vaddr >> shift) & 511n);
      if (!this.#phys.readPhys(table + index * 8, this.#entry)) return undefined;
      const e = this.#entryView.getBigUint64(0, true) & ~this.#smeMask;
      if ((e & 1n) === 0n) return undefined;
      if (level === 1 || ((level === 2 || level === 3) && (e & 0x80n) !== 0n)) {
        const pageMask = (1n << shift) - 1n;
        return Number(((e & ADDR_MASK) & ~pageMask) | (vaddr & pageMask));
      }
      table = Number(e & ADDR_MASK);
    }
    return undefined;
  }

  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    let pos = 0;
    while (pos < out.length) {
      const va = (vaddr + BigInt(pos)) & MASK64;
      const pa = this.vtop(va);
      if (pa === undefined) return false;
      const inPage = Math.min(out.length - pos, 4096 - Number(va & 4095n));
      if (!this.#phys.readPhys(pa, out.subarray(pos, pos + inPage))) return false;
      pos += inPage;
    }
    return true;
  }
}
