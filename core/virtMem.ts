/**
 * Kernel virtual memory reads, implemented by each architecture's translator (core/arch: x86_64
 * core/pageTable.ts, arm64 core/arch/arm64Tables.ts).
 * Virtual addresses are 64-bit kernel addresses, so bigint.
 */
export interface VirtualMemory {
  /** Translate one kernel virtual address to physical; undefined when not mapped or unreadable. */
  vtop(vaddr: bigint): number | undefined;
  /**
   * Fill `out` with the bytes at virtual [vaddr, vaddr + out.length), crossing pages as needed. Returns
   * false when any page is unmapped or outside the dump.
   */
  readVirt(vaddr: bigint, out: Uint8Array): boolean;
}
