/**
 * Kernel log extraction, the work-alike of `makedumpfile --dump-dmesg` (kdump-reference.md section 8).
 * The producer format is chosen from VMCOREINFO the way makedumpfile chooses it:
 * SYMBOL(prb) → 5.10+ lockless ring (printkLockless.ts); else SYMBOL(log_end) → < 3.5 plain ring; else the
 * 3.5-5.9 structured buffer (printkStructured.ts). Output bytes follow dmesgFormat.ts.
 */
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";
import { type DmesgOptions, DmesgOutput, type DmesgResult, dmesgResult } from "./dmesgFormat.ts";
import { dumpLockless } from "./printkLockless.ts";
import { dumpPlain, dumpStructured } from "./printkStructured.ts";

export { DmesgError, type DmesgOptions, type DmesgResult } from "./dmesgFormat.ts";

/**
 * Extract the kernel log from a dump, byte for byte as makedumpfile 1.7.2 writes it (`result.bytes`;
 * `result.text` is the same, one char per byte). Never prints.
 *
 * `opts.partial` = `--partial-dmesg`; `opts.callerColumn` adds makedumpfile 1.7.5+'s `[    T123] ` column;
 * `opts.maxBytes` bounds every buffer read from the dump.
 *
 * Throws VmsiftError (with the address) when a needed VMCOREINFO key is missing, memory is unreadable or
 * the ring is inconsistent; DmesgError (a VmsiftError) carries the records written before a corruption
 * in a structured log.
 */
export function extractDmesg(vm: VirtualMemory, info: VmcoreInfo, opts: DmesgOptions = {}): DmesgResult {
  const out = new DmesgOutput();
  if (info.symbol("prb") !== undefined) {
    const skipped = dumpLockless(vm, info, opts, out);
    return dmesgResult(out, "lockless", skipped);
  }
  if (info.symbol("log_buf") === undefined || info.symbol("log_buf_len") === undefined) {
    throw info.missing(info.symbol("log_buf") === undefined ? "SYMBOL(log_buf)" : "SYMBOL(log_buf_len)");
  }
  if (info.symbol("log_end") !== undefined) {
    dumpPlain(vm, info, opts, out);
    return dmesgResult(out, "plain");
  }
  dumpStructured(vm, info, opts, out);
  return dmesgResult(out, "structured");
}
