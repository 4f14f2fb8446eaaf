import { VmsiftError } from "../core/errors.ts";
import type { VirtualMemory } from "../core/virtMem.ts";
import type { VmcoreInfo } from "../core/vmcoreinfo.ts";

/** Size of struct new_utsname: 6 fields of 65 bytes. */
export const UTSNAME_SIZE = 390;

/**
 * The crashed kernel's utsname (sysname, nodename, release, version, machine, domainname), read from
 * init_uts_ns + OFFSET(uts_namespace.name) through the kernel-image mapping, as makedumpfile copies it into
 * the kdump header.
 */
export function readUtsname(vm: VirtualMemory, info: VmcoreInfo): Uint8Array {
  const sym = info.requireSymbol("init_uts_ns");
  const off = BigInt(info.offset("uts_namespace.name") ?? 0);
  const out = new Uint8Array(UTSNAME_SIZE);
  const addr = BigInt.asUintN(64, sym + off);
  if (!vm.readVirt(addr, out)) {
    throw new VmsiftError("cannot read init_uts_ns (utsname) from the dump", {
      file: info.source,
      address: addr,
    });
  }
  return out;
}

/** Split the 390 bytes into the six NUL-terminated strings. */
export function utsnameFields(b: Uint8Array): {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
} {
  const f = (i: number) => {
    const s = b.subarray(i * 65, i * 65 + 65);
    const z = s.indexOf(0);
    return new TextDecoder().decode(z < 0 ? s : s.subarray(0, z));
  };
  return { sysname: f(0), nodename: f(1), release: f(2), version: f(3), machine: f(4), domainname: f(5) };
}
