/**
 * Loaded kernel modules from the dump: the list, each module's own symbols and its BTF.
 *
 * - The list: `modules` (a list_head in the kernel image, found through kallsyms) links every
 *   `struct module` through its `list` member; layouts come from the kernel's BTF.
 * - Symbols: `module.kallsyms` points to a `struct mod_kallsyms` (the core copy once the module is live):
 *   `symtab` (Elf64_Sym[num_symtab], st_value already relocated to the run-time address), `strtab` (names,
 *   by st_name) and, since 5.x, `typetab` (the type character per symbol, as /proc/kallsyms prints it).
 *   They include the module's static symbols.
 * - BTF: `module.btf_data` is cleared once the module's init is done (the section lives in the loader's
 *   temporary copy), but kernel/bpf/btf.c keeps a copy for every module: the static list `btf_modules` of
 *   `struct btf_module` { list, module, btf }, with `btf->data` / `btf->data_size` the raw .BTF bytes
 *   (split BTF on top of the kernel's, core/btf.ts). A module still in its init keeps `btf_data`.
 */
import { Btf } from "./btf.ts";
import { VmsiftError } from "./errors.ts";
import type { KernelReader } from "./kernelReader.ts";

/** A loaded module. */
export interface KernelModule {
  /** Its name ("dm_mod"). */
  name: string;
  /** Address of its `struct module`. */
  address: bigint;
  /** module_state (0 live, 1 coming, 2 going, 3 unformed). */
  state: number;
}

/** One module symbol. */
export interface ModuleSymbol {
  name: string;
  /** Type character (`t`, `d`, `b`, ...); "?" when the kernel keeps no typetab. */
  type: string;
  /** Run-time address. */
  address: bigint;
  /** st_size. */
  size: number;
}

/** Every module on the `modules` list (kernel symbol `modules`); throws when the symbol is absent. */
export function readModules(k: KernelReader, lookup: (name: string) => bigint | undefined): KernelModule[] {
  const head = lookup("modules");
  if (head === undefined) {
    throw new VmsiftError("no symbol 'modules' in the kernel's symbols", { file: k.source });
  }
  const name = k.field("module", "name");
  return k.list(head, k.offset("module", "list"), "modules").map((address) => ({
    name: k.cstring(address + BigInt(name.offset), name.size),
    address,
    state: Number(k.member(address, "module", "state")),
  }));
}

const ELF64_SYM_SIZE = 24;

/** A module's symbols (`module.kallsyms`: symtab, strtab, typetab). */
export function readModuleSymbols(k: KernelReader, mod: KernelModule): ModuleSymbol[] {
  const ks = k.ptr(mod.address + BigInt(k.offset("module", "kallsyms")), `${mod.name}: module.kallsyms`);
  if (ks === 0n) return [];
  const symtab = k.member(ks, "mod_kallsyms", "symtab");
  const num = Number(k.member(ks, "mod_kallsyms", "num_symtab"));
  const strtab = k.member(ks, "mod_kallsyms", "strtab");
  const hasTypes = k.btf.findAggregate("mod_kallsyms") !== undefined &&
    k.btf.member(k.btf.findAggregate("mod_kallsyms")!, "typetab") !== undefined;
  const typetab = hasTypes ? k.member(ks, "mod_kallsyms", "typetab") : 0n;
  if (num > 1_000_000) {
    throw new VmsiftError(`${mod.name}: ${num} module symbols: not a symbol table`, {
      file: k.source,
      address: ks,
    });
  }
  const syms = k.bytes(symtab, num * ELF64_SYM_SIZE, `${mod.name}: symtab`);
  const types = typetab === 0n ? undefined : k.bytes(typetab, num, `${mod.name}: typetab`);
  const dv = new DataView(syms.buffer);
  const out: ModuleSymbol[] = [];
  for (let i = 0; i < num; i++) {
    const o = i * ELF64_SYM_SIZE;
    const nameOff = dv.getUint32(o, true);
    if (nameOff === 0) continue; // the null symbol, unnamed sections
    out.push({
      name: k.cstring(strtab + BigInt(nameOff), 512),
      type: types === undefined ? "?" : String.fromCharCode(types[i]),
      address: dv.getBigUint64(o + 8, true),
      size: Number(dv.getBigUint64(o + 16, true)),
    });
  }
  return out;
}

/**
 * The raw .BTF bytes of every module that has BTF, by `struct module` address: from kernel/bpf/btf.c's
 * `btf_modules` list, and `module.btf_data` for a module still in its init. Empty when the kernel keeps no
 * module BTF (no `btf_modules` symbol: CONFIG_DEBUG_INFO_BTF_MODULES off).
 */
export function readModuleBtfBytes(
  k: KernelReader,
  lookup: (name: string) => bigint | undefined,
  mods: KernelModule[],
): Map<bigint, Uint8Array> {
  const out = new Map<bigint, Uint8Array>();
  const head = lookup("btf_modules");
  if (head !== undefined) {
    for (const bm of k.list(head, k.offset("btf_module", "list"), "btf_modules")) {
      const mod = k.member(bm, "btf_module", "module");
      const btf = k.member(bm, "btf_module", "btf");
      if (mod === 0n || btf === 0n) continue;
      const data = k.member(btf, "btf", "data");
      const size = Number(k.member(btf, "btf", "data_size"));
      if (data === 0n || size <= 0 || size > 1 << 28) continue;
      out.set(mod, k.bytes(data, size, "a module's BTF (btf_modules)"));
    }
  }
  const id = k.btf.findAggregate("module");
  if (id !== undefined && k.btf.member(id, "btf_data") !== undefined) {
    for (const m of mods) {
      if (out.has(m.address)) continue;
      const data = k.member(m.address, "module", "btf_data");
      const size = Number(k.member(m.address, "module", "btf_data_size"));
      if (data !== 0n && size > 0 && size <= 1 << 28) {
        out.set(m.address, k.bytes(data, size, `${m.name}: module.btf_data`));
      }
    }
  }
  return out;
}

/** A module's symbols and types, read on demand. */
export interface ModuleInfo extends KernelModule {
  /** Its symbols. */
  symbols: ModuleSymbol[];
  /** Its split BTF on top of the kernel's, when the dump has it. */
  btf?: Btf;
}

/** Every module with its BTF, and the symbols of those named in `symbolsOf` (all when undefined). */
export function readModuleInfos(
  k: KernelReader,
  lookup: (name: string) => bigint | undefined,
  symbolsOf?: string[],
): ModuleInfo[] {
  const mods = readModules(k, lookup);
  const btfs = readModuleBtfBytes(k, lookup, mods);
  return mods.map((m) => {
    const bytes = btfs.get(m.address);
    return {
      ...m,
      symbols: symbolsOf === undefined || symbolsOf.includes(m.name) ? readModuleSymbols(k, m) : [],
      btf: bytes === undefined ? undefined : Btf.parseSplit(bytes, k.btf, `${k.source} (${m.name} BTF)`),
    };
  });
}
