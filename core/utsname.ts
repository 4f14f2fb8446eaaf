/**
 * The crashed kernel's utsname (struct new_utsname of init_uts_ns), which the kdump header carries and
 * crash checks (`machine` must name the architecture).
 */
import { VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Size of struct new_utsname: 6 fields of 65 bytes. */
export const UTSNAME_SIZE = 390;

/**
 * The crashed kernel's utsname (sysname, nodename, release, version, machine, domainname), read from
 * init_uts_ns + OFFSET(uts_namespace.name) through the kernel-image mapping, as makedumpfile copies it into
 * the kdump header. When it cannot be read (no init_uts_ns symbol, unmapped address): `fallback` when given
 * (re-filtering: the input header's), else VmsiftError.
 */
export function readUtsname(vm: VirtualMemory, info: VmcoreInfo, fallback?: Uint8Array): Uint8Array {
  const sym = fallback === undefined ? info.requireSymbol("init_uts_ns") : info.symbol("init_uts_ns");
  if (sym === undefined) return fallback!;
  const off = BigInt(info.offset("uts_namespace.name") ?? 0);
  const out = new Uint8Array(UTSNAME_SIZE);
  const addr = BigInt.asUintN(64, sym + off);
  if (vm.readVirt(addr, out)) return out;
  if (fallback !== undefined) return fallback;
  throw new VmsiftError("cannot read init_uts_ns (utsname) from the dump", {
    file: info.source,
    address: addr,
  });
}
