/**
 * What vmsift takes from a vmlinux (`-x VMLINUX`): its sections by name (.BTF) and its symbol table
 * (.symtab + .strtab: name → address and size). ELF64 little-endian only (x86_64, arm64). Reads only the
 * parts needed (the debug vmlinux is hundreds of MB).
 */
import { VmsiftError } from "../core/errors.ts";

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

function readAt(file: Deno.FsFile, path: string, offset: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < len) {
    const n = file.readSync(out.subarray(got));
    if (n === null || n === 0) {
      throw new VmsiftError(`truncated: ${len} bytes wanted`, { file: path, offset });
    }
    got += n;
  }
  return out;
}

function sections(file: Deno.FsFile, path: string): Section[] {
  const eh = readAt(file, path, 0, 64);
  const dv = new DataView(eh.buffer);
  if (dv.getUint32(0) !== 0x7f454c46) throw new VmsiftError("not an ELF file", { file: path, offset: 0 });
  if (eh[4] !== 2 || eh[5] !== 1) {
    throw new VmsiftError("not a 64-bit little-endian ELF file", { file: path });
  }
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true),
    shnum = dv.getUint16(0x3c, true),
    shstrndx = dv.getUint16(0x3e, true);
  if (shoff === 0 || shnum === 0) {
    throw new VmsiftError("the ELF file has no section headers", { file: path });
  }
  const sh = readAt(file, path, shoff, shentsize * shnum);
  const sdv = new DataView(sh.buffer);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = i * shentsize;
    return {
      nameOff: sdv.getUint32(o, true),
      type: sdv.getUint32(o + 4, true),
      offset: Number(sdv.getBigUint64(o + 0x18, true)),
      size: Number(sdv.getBigUint64(o + 0x20, true)),
      link: sdv.getUint32(o + 0x28, true),
      entsize: Number(sdv.getBigUint64(o + 0x38, true)),
    };
  });
  const strs = readAt(file, path, raw[shstrndx].offset, raw[shstrndx].size);
  return raw.map((s) => {
    let e = s.nameOff;
    while (e < strs.length && strs[e] !== 0) e++;
    return { ...s, name: new TextDecoder().decode(strs.subarray(s.nameOff, e)) };
  });
}

/** The bytes of section `name` of an ELF file, undefined when it has none. */
export function readElfSection(path: string, name: string): Uint8Array | undefined {
  const file = openOrThrow(path);
  try {
    const s = sections(file, path).find((x) => x.name === name);
    return s === undefined ? undefined : readAt(file, path, s.offset, s.size);
  } finally {
    file.close();
  }
}

/** One ELF symbol. */
export interface ElfSymbol {
  address: bigint;
  size: number;
}

/** Name → symbols (several for same-named statics) from .symtab; undefined when stripped. */
export function readElfSymbols(path: string): Map<string, ElfSymbol[]> | undefined {
  const file = openOrThrow(path);
  try {
    const secs = sections(file, path);
    const symtab = secs.find((s) => s.type === 2); // SHT_SYMTAB
    if (symtab === undefined) return undefined;
    const strtab = secs[symtab.link];
    const syms = readAt(file, path, symtab.offset, symtab.size);
    const strs = readAt(file, path, strtab.offset, strtab.size);
    const dv = new DataView(syms.buffer);
    const out = new Map<string, ElfSymbol[]>();
    const dec = new TextDecoder();
    const ent = symtab.entsize || 24;
    for (let o = 0; o + ent <= syms.length; o += ent) {
      const nameOff = dv.getUint32(o, true);
      if (nameOff === 0) continue;
      let e = nameOff;
      while (e < strs.length && strs[e] !== 0) e++;
      const name = dec.decode(strs.subarray(nameOff, e));
      const sym = { address: dv.getBigUint64(o + 8, true), size: Number(dv.getBigUint64(o + 16, true)) };
      const l = out.get(name);
      if (l) l.push(sym);
      else out.set(name, [sym]);
    }
    return out;
  } finally {
    file.close();
  }
}

function openOrThrow(path: string): Deno.FsFile {
  try {
    return Deno.openSync(path, { read: true });
  } catch (e) {
    throw new VmsiftError(`cannot open: ${(e as Error).message}`, { file: path });
  }
}
