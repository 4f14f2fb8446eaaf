/**
 * `vmsift symbols VMCORE [NAME]`: the kernel's symbol table decoded from the dump's kallsyms (core/kallsyms.ts;
 * any input: an ELF vmcore, a kdump-compressed or flattened file),
 * printed as /proc/kallsyms prints it (`ADDRESS TYPE NAME`), one symbol or all of them.
 */
import { VmsiftError } from "../core/errors.ts";
import { readKallsyms } from "../core/kallsyms.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { openInput } from "../dump/input.ts";
import type { CliOptions } from "./options.ts";

/** Print one symbol (every symbol of that name) or all; exit 1 with one line when NAME is not there. */
export function runSymbolsCommand(vmcore: string, name: string | undefined, opts: CliOptions): number {
  const input = openInput(vmcore, { vmcoreinfoFile: opts.vmcoreinfoFile });
  try {
    const model = buildMemoryModel(input.mem, input.info, { kernelImageGuard: false });
    const syms = readKallsyms(model.vm, input.info, { source: vmcore });
    const indexes = name === undefined ? syms.names.map((_, i) => i) : syms.indexesOf(name);
    if (indexes.length === 0) {
      throw new VmsiftError(`no symbol '${name}' in the kernel's kallsyms`, { file: vmcore });
    }
    if (opts.json) {
      const list = indexes.map((i) => ({
        name: syms.names[i],
        type: syms.types[i],
        address: "0x" + syms.addresses[i].toString(16),
      }));
      console.log(JSON.stringify({ encoding: syms.encoding, count: syms.names.length, symbols: list }));
      return 0;
    }
    const lines: string[] = [];
    for (const i of indexes) {
      lines.push(`${syms.addresses[i].toString(16).padStart(16, "0")} ${syms.types[i]} ${syms.names[i]}`);
    }
    const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
    let off = 0;
    try {
      while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
    } catch (e) {
      if (!(e instanceof Deno.errors.BrokenPipe)) throw e; // `| head`: the reader had enough
    }
    return 0;
  } finally {
    input.close();
  }
}
