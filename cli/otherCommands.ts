/**
 * The commands besides dumping: --dump-dmesg, --vtop, `info`, `verify`.
 */
import { VmsiftError } from "../core/errors.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { formatVtop } from "../core/pageTable.ts";
import { DmesgError, extractDmesg } from "../core/printk.ts";
import { describeDump, renderInfo } from "../formats/kdump/info.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { openInput, pathExists } from "../dump/input.ts";
import type { Messages } from "./messages.ts";
import type { CliOptions } from "./options.ts";

/** --dump-dmesg VMCORE LOGFILE: the kernel log in makedumpfile's format (VMCORE: any input format). */
export function runDmesgCommand(vmcore: string, logfile: string, opts: CliOptions, msg: Messages): number {
  if (!opts.force && pathExists(logfile)) {
    throw new VmsiftError("LOGFILE already exists (use -f to overwrite)", { file: logfile });
  }
  const input = openInput(vmcore, { vmcoreinfoFile: opts.vmcoreinfoFile });
  try {
    const model = buildMemoryModel(input.mem, input.info);
    let bytes: Uint8Array;
    let failure: DmesgError | undefined;
    try {
      bytes = extractDmesg(model.vm, input.info, { partial: opts.partialDmesg }).bytes;
    } catch (e) {
      if (!(e instanceof DmesgError)) throw e;
      // A corrupt log: keep what was extracted up to the corruption (as makedumpfile does), then fail.
      failure = e;
      bytes = e.partial.bytes;
    }
    try {
      Deno.writeFileSync(logfile, bytes, { mode: 0o600 });
    } catch (e) {
      throw new VmsiftError(`cannot write: ${(e as Error).message}`, { file: logfile });
    }
    if (failure) throw failure;
    msg.common(`\nThe dmesg log is saved to ${logfile}.`);
    msg.common("\nvmsift Completed.");
    return 0;
  } finally {
    input.close();
  }
}

/** --vtop VADDR VMCORE: print the page-table walk (VMCORE: any input format). */
export function runVtopCommand(vmcore: string, vaddr: bigint, opts: CliOptions, msg: Messages): number {
  const input = openInput(vmcore, { vmcoreinfoFile: opts.vmcoreinfoFile });
  try {
    const model = buildMemoryModel(input.mem, input.info);
    const res = model.vm.walk(vaddr);
    msg.common(formatVtop(res).trimEnd());
    if (res.paddr === undefined) {
      throw new VmsiftError(res.error ?? "not mapped", { file: vmcore, address: vaddr });
    }
    return 0;
  } finally {
    input.close();
  }
}

/** `vmsift info DUMPFILE`. */
export function runInfoCommand(dumpfile: string, opts: CliOptions): number {
  const info = describeDump(dumpfile);
  if (opts.json) console.log(JSON.stringify(info, (_k, v) => typeof v === "bigint" ? v.toString() : v, 1));
  else console.log(renderInfo(info).trimEnd());
  return 0;
}

/** `vmsift verify DUMPFILE VMCORE`: exit 0 when every page is correct (or correct and incomplete). */
export function runVerifyCommand(dumpfile: string, vmcore: string, opts: CliOptions, msg: Messages): number {
  const r = verifyDump(dumpfile, vmcore);
  if (opts.json) {
    console.log(JSON.stringify(r, null, 1));
  } else {
    for (const p of r.problems) msg.error(`${dumpfile}: ${p}`);
    if (r.moreProblems > 0) msg.error(`${dumpfile}: ... and ${r.moreProblems} more problems`);
    console.log(`${dumpfile}: ${r.summary} (${r.seconds.toFixed(2)} s)`);
  }
  return r.ok ? 0 : 1;
}
