/**
 * `--config FILE`, `--erase EXPR[:SIZE]` and `-x VMLINUX` for the dump: the filter commands, the symbol and
 * type source (the dump's own kallsyms + BTF, or the vmlinux's symtab + .BTF), resolution
 * (core/eraseResolve.ts) and the plan for the pages written (core/eraseApply.ts).
 */
import { Btf, readKernelBtf } from "../core/btf.ts";
import { VmsiftError } from "../core/errors.ts";
import { type ErasePlan, planErase } from "../core/eraseApply.ts";
import { resolveErase } from "../core/eraseResolve.ts";
import { secretCommands } from "../core/secretRules.ts";
import { eraseOptionCommand, type FilterCommand, parseFilterConfig } from "../core/filterConfig.ts";
import { readKallsyms } from "../core/kallsyms.ts";
import { BtfKernelTypes, type KernelTypes } from "../core/kernelTypes.ts";
import type { MemoryModel } from "../core/memoryModel.ts";
import { START_KERNEL_MAP } from "../core/pageTable.ts";
import { readElfSection, readElfSymbols } from "../formats/elfSymbols.ts";

/** What the user asked to erase. */
export interface EraseRequest {
  /** The filter commands (config file, then --erase). */
  commands: FilterCommand[];
  /** The --config file, or "--erase", for messages. */
  source: string;
  /** -x VMLINUX: symbols and types from it instead of the dump. */
  vmlinux?: string;
  /** Module sections of the config that were skipped (and built-in rules that do not apply). */
  skipped: string[];
  /** --erase-secrets: the built-in rules (core/secretRules.ts) too. */
  secrets?: boolean;
}

/** Build the request from the options; undefined when nothing is to be erased. Parse errors throw. */
export function eraseRequestOf(
  configFile: string | undefined,
  eraseArgs: string[],
  vmlinux: string | undefined,
  secrets = false,
): EraseRequest | undefined {
  if (configFile === undefined && eraseArgs.length === 0 && !secrets) return undefined;
  const commands: FilterCommand[] = [];
  const skipped: string[] = [];
  let source = eraseArgs.length > 0 ? "--erase" : "--erase-secrets";
  if (configFile !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(configFile);
    } catch (e) {
      throw new VmsiftError(`cannot read the filter config: ${(e as Error).message}`, { file: configFile });
    }
    const cfg = parseFilterConfig(text, configFile);
    commands.push(...cfg.commands);
    skipped.push(...cfg.skippedSections.map((s) => `module section [${s.name}] (line ${s.line})`));
    source = configFile;
  }
  for (const a of eraseArgs) commands.push(eraseOptionCommand(a));
  return { commands, source, vmlinux, skipped, secrets };
}

/** The symbol and type source for the dump. */
export function kernelTypesFor(req: EraseRequest, model: MemoryModel, dumpLabel: string): KernelTypes {
  if (req.vmlinux !== undefined) {
    const syms = readElfSymbols(req.vmlinux);
    if (syms === undefined) {
      throw new VmsiftError("no symbol table (.symtab) in VMLINUX", { file: req.vmlinux });
    }
    const btfBytes = readElfSection(req.vmlinux, ".BTF");
    if (btfBytes === undefined) {
      throw new VmsiftError("no .BTF section in VMLINUX (vmsift reads types from BTF, not DWARF)", {
        file: req.vmlinux,
      });
    }
    const btf = Btf.parse(btfBytes, `${req.vmlinux} (.BTF)`);
    const offset = model.info.kernelOffset ?? 0n;
    const lookup = (name: string) => {
      const s = syms.get(name)?.[0];
      if (s === undefined) return undefined;
      return s.address >= START_KERNEL_MAP ? BigInt.asUintN(64, s.address + offset) : s.address;
    };
    return new BtfKernelTypes(btf, lookup);
  }
  const ks = readKallsyms(model.vm, model.info, { source: dumpLabel });
  const lookup = (name: string) => ks.lookup(name);
  return new BtfKernelTypes(readKernelBtf(model.vm, lookup, dumpLabel), lookup);
}

/**
 * Plans the erasing for one set of written pages (core/eraseApply.ts planErase): `written(pfn)` is true for
 * the pages the output holds with their content.
 */
export type ErasePlanner = (written: (pfn: number) => boolean) => ErasePlan;

/**
 * Resolve the commands once (symbols, types, pointers followed in the dump's memory) and return the planner
 * for the pages written: one call for a kdump file, one per file with --split (each of makedumpfile's split
 * processes applies only the ranges that start in its own pfn range), the file-backed pages of the PT_LOADs
 * with -E.
 */
export function prepareErase(req: EraseRequest, model: MemoryModel, dumpLabel: string): ErasePlanner {
  const types = kernelTypesFor(req, model, dumpLabel);
  const commands = [...req.commands];
  if (req.secrets) {
    const rules = secretCommands((s) => types.symbolAddress(s) !== undefined);
    commands.push(...rules.commands);
    req.skipped.push(...rules.skipped.map((s) => `built-in rule ${s}`));
  }
  const res = resolveErase(commands, types, model.vm, req.source);
  return (written) => planErase(res, written, model.pageSize);
}
