/**
 * vmsift's built-in erase rules for well-known secrets in kernel memory (`--erase-secrets`), as filter
 * commands (core/filterConfig.ts), and the dm-crypt keys found by structure (structureSecretRanges). A rule
 * applies when the kernel has its symbol; docs/symbols.md lists what each erases and what is left.
 */
import type { Btf } from "./btf.ts";
import type { KeyRange } from "./cryptoTfm.ts";
import { dmCryptKeys } from "./dmCrypt.ts";
import type { FilterCommand } from "./filterConfig.ts";
import { readModuleInfos, readModules } from "./kernelModules.ts";
import { KernelReader } from "./kernelReader.ts";
import type { VirtualMemory } from "./virtMem.ts";

/** One built-in rule. */
export interface SecretRule {
  name: string;
  /** The symbol that must exist for the rule to apply. */
  symbol: string;
  /** The filter.conf line. */
  command: string;
  /** What it erases, for docs and messages. */
  what: string;
}

/** The rules, in the order they are applied. */
export const SECRET_RULES: SecretRule[] = [
  {
    name: "cmdline",
    symbol: "saved_command_line",
    command: "erase saved_command_line",
    what: "the kernel command line (the string saved_command_line points to: passwords or keys given " +
      "as boot parameters, e.g. rd.luks.key=, cryptdevice=, ip= credentials)",
  },
  {
    name: "crng",
    symbol: "base_crng",
    command: "erase base_crng",
    what: "the 32-byte ChaCha20 key of the kernel's random number generator (base_crng.key, 5.18+), " +
      "from which the per-CPU generators are keyed",
  },
  {
    name: "entropy-pool",
    symbol: "input_pool",
    command: "erase input_pool",
    what: "the entropy pool's BLAKE2s state (input_pool.hash, 5.17+: 120 bytes), which the next reseed of " +
      "the generator is derived from",
  },
];

/** The rules as commands, for the symbols `has` says exist; also the names of the rules left out. */
export function secretCommands(
  has: (symbol: string) => boolean,
): { commands: FilterCommand[]; skipped: string[] } {
  const commands: FilterCommand[] = [];
  const skipped: string[] = [];
  for (const r of SECRET_RULES) {
    if (!has(r.symbol)) {
      skipped.push(`${r.name} (no ${r.symbol} in this kernel)`);
      continue;
    }
    commands.push({ line: 0, erases: [{ line: 0, expr: r.command.split(" ")[1], nullify: false }] });
  }
  return { commands, skipped };
}

/**
 * The `dm-crypt` rule: key material found by walking kernel structures (core/dmCrypt.ts) through the
 * modules' own symbols and BTF. Nothing when the kernel has no module list or dm_crypt is not loaded; when
 * it is, a structure that cannot be read is an error naming it rather than a key silently left.
 */
export function structureSecretRanges(
  vm: VirtualMemory,
  kernelBtf: Btf,
  lookup: (name: string) => bigint | undefined,
  source: string,
): { ranges: KeyRange[]; found: string[]; unreached: string[] } {
  const none = { ranges: [], found: [], unreached: [] };
  if (lookup("modules") === undefined) return none;
  const k = new KernelReader(vm, kernelBtf, source);
  const names = readModules(k, lookup).map((m) => m.name);
  if (!names.includes("dm_mod") || !names.includes("dm_crypt")) return none;
  // dm_crypt is loaded: from here on what cannot be read is an error (a key would be left in the dump).
  const mods = readModuleInfos(k, lookup, ["dm_mod", "crypto_simd"]);
  const keys = dmCryptKeys(vm, kernelBtf, lookup, mods, source);
  return { ranges: keys.ranges, found: keys.targets, unreached: keys.unreached };
}
