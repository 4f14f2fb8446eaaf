/**
 * `--config FILE`, `--erase EXPR[:SIZE]` and `-x VMLINUX` for the dump: the filter commands, the symbol and
 * type source (the dump's own kallsyms + BTF, or the vmlinux's symtab + .BTF), resolution
 * (core/eraseResolve.ts) and the plan for the pages written (core/eraseApply.ts).
 */
import { Btf, readKernelBtf } from "../core/btf.ts";
import { VmsiftError } from "../core/errors.ts";
import { type ErasePlan, planErase } from "../core/eraseApply.ts";
import { type EraseResolution, type FilterRange, resolveErase } from "../core/eraseResolve.ts";
import { secretCommands, structureSecretRanges } from "../core/secretRules.ts";
import type { KeyRange } from "../core/cryptoTfm.ts";
import type { VirtualMemory } from "../core/virtMem.ts";
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
  /** Set by prepareErase with --erase-secrets: the dm-crypt targets whose keys were found. */
  found?: string[];
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
  return kernelSourceFor(req, model, dumpLabel).types;
}

/** Symbols and types, with the kernel's BTF and the symbol lookup they are built on. */
interface KernelSource {
  types: KernelTypes;
  btf: Btf;
  lookup: (name: string) => bigint | undefined;
}

function kernelSourceFor(req: EraseRequest, model: MemoryModel, dumpLabel: string): KernelSource {
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
    return { types: new BtfKernelTypes(btf, lookup), btf, lookup };
  }
  const ks = readKallsyms(model.vm, model.info, { source: dumpLabel });
  const lookup = (name: string) => ks.lookup(name);
  const btf = readKernelBtf(model.vm, lookup, dumpLabel);
  return { types: new BtfKernelTypes(btf, lookup), btf, lookup };
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
  const { types, btf, lookup } = kernelSourceFor(req, model, dumpLabel);
  const commands = [...req.commands];
  if (req.secrets) {
    const rules = secretCommands((s) => types.symbolAddress(s) !== undefined);
    commands.push(...rules.commands);
    req.skipped.push(...rules.skipped.map((s) => `built-in rule ${s}`));
  }
  const res = resolveErase(commands, types, model.vm, req.source);
  if (req.secrets) {
    const keys = structureSecretRanges(model.vm, btf, lookup, dumpLabel);
    addKeyRanges(res, keys.ranges, model.vm, model.pageSize, dumpLabel);
    req.skipped.push(...keys.unreached.map((s) => `built-in rule dm-crypt: not reached: ${s}`));
    req.found = keys.found;
  }
  return (written) => planErase(res, written, model.pageSize);
}

/**
 * Add ranges found by structure (kernel virtual addresses) to a resolution: one ERASEINFO record each,
 * split where the virtual range crosses to a page that is not physically next.
 */
export function addKeyRanges(
  res: EraseResolution,
  ranges: KeyRange[],
  vm: VirtualMemory,
  pageSize: number,
  dumpLabel: string,
): void {
  for (const r of ranges) {
    const info = res.infos.length;
    res.infos.push({ expr: r.what, numSizes: 1 });
    let v = r.vaddr, left = r.size;
    let piece: FilterRange | undefined;
    while (left > 0) {
      const p = vm.vtop(v);
      if (p === undefined) {
        throw new VmsiftError(`${r.what}: address not mapped`, { file: dumpLabel, address: v });
      }
      const len = Math.min(left, pageSize - (p % pageSize));
      if (piece !== undefined && piece.paddr + piece.size === p) piece.size += len;
      else {
        piece = { vaddr: v, paddr: p, size: len, nullify: false, info, sizeIndex: 0 };
        res.ranges.push(piece);
      }
      v += BigInt(len);
      left -= len;
    }
  }
  res.ranges.sort((a, b) => a.paddr - b.paddr);
}
