/**
 * The kernel's own symbol table (kallsyms), read from the dump through the tables VMCOREINFO names since
 * Linux 6.0: SYMBOL(kallsyms_names), kallsyms_num_syms, kallsyms_token_table, kallsyms_token_index, and
 * either kallsyms_offsets (+ kallsyms_relative_base before 7.0) or kallsyms_addresses.
 *
 * Names: kallsyms_names is a run of entries, each a token count then that many token bytes; a token byte
 * indexes kallsyms_token_index (u16[256]), an offset into kallsyms_token_table (NUL-terminated strings).
 * The first character of the expanded name is the symbol type (`T`, `d`, ...). Since 6.1 (commit 73bbb94466fd
 * "kallsyms: support big kernel symbols") a count with bit 7 set takes a second byte: (b0 & 0x7f) | b1 << 7.
 *
 * Addresses, every encoding the kernel has used:
 * - `absolute`: kallsyms_addresses[] holds unsigned longs (CONFIG_KALLSYMS_BASE_RELATIVE=n, gone in 6.11);
 * - `base-relative`: kallsyms_relative_base + (u32)kallsyms_offsets[i] (arm64 and most others until 7.0);
 * - `absolute-percpu`: x86_64 SMP until 6.15: a non-negative s32 is the address itself (a per-cpu offset),
 *   a negative one is relative_base - 1 - value;
 * - `place-relative`: since 7.0 (commit a081b5789255 "kallsyms: Get rid of kallsyms relative base")
 *   &kallsyms_offsets[i] + (s32)kallsyms_offsets[i], and VMCOREINFO no longer names a relative base.
 * Nothing in the dump says which of the 32-bit encodings (nor whether the two-byte counts) apply, so each
 * candidate is decoded and the one whose addresses match SYMBOL(_stext) (and every other SYMBOL() that
 * kallsyms holds) wins.
 */
import { hex, VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Longest expanded name accepted (KSYM_NAME_LEN is 512 since 6.1, 128 before; plus the type). */
const KSYM_NAME_MAX = 1024;
/** All names together, at most (real kernels: a few MB). */
const NAMES_MAX = 256 << 20;

/** How kallsyms stores symbol addresses (see the module comment). */
export type KallsymsEncoding = "absolute" | "base-relative" | "absolute-percpu" | "place-relative";

/** Addresses of the kallsyms tables (from VMCOREINFO). */
export interface KallsymsLocations {
  names: bigint;
  numSyms: bigint;
  tokenTable: bigint;
  tokenIndex: bigint;
  offsets?: bigint;
  relativeBase?: bigint;
  addresses?: bigint;
}

/** One symbol-address check against VMCOREINFO. */
export interface SymbolCheck {
  /** The symbol name. */
  name: string;
  /** SYMBOL(name) in VMCOREINFO. */
  expected: bigint;
  /** The kallsyms address (undefined when kallsyms has no such name). */
  found: bigint | undefined;
  /**
   * "equal"; "pointer" when SYMBOL() holds the value of the pointer variable at the kallsyms address
   * (VMCOREINFO_SYMBOL_ARRAY of a pointer, e.g. mem_section with SPARSEMEM_EXTREME); "absent"; "different".
   */
  verdict: "equal" | "pointer" | "absent" | "different";
}

/** The decoded table. */
export interface KernelSymbols {
  /** Names in table order (sorted by address). */
  names: string[];
  /** Type character per symbol (`T`, `t`, `D`, `b`, ...). */
  types: string[];
  /** Address per symbol. */
  addresses: bigint[];
  /** The address encoding found (see the module comment). */
  encoding: KallsymsEncoding;
  /** Whether token counts of 128 and more take two bytes. */
  longNames: boolean;
  /** The SYMBOL() values of VMCOREINFO compared with the table. */
  checks: SymbolCheck[];
  /** Address of the first symbol called `name`, undefined when absent. */
  lookup(name: string): bigint | undefined;
  /** Indexes of every symbol called `name`. */
  indexesOf(name: string): number[];
}

/** The table locations from VMCOREINFO, or undefined when it does not name them (kernels before 6.0). */
export function kallsymsLocations(info: VmcoreInfo): KallsymsLocations | undefined {
  const names = info.symbol("kallsyms_names");
  const numSyms = info.symbol("kallsyms_num_syms");
  const tokenTable = info.symbol("kallsyms_token_table");
  const tokenIndex = info.symbol("kallsyms_token_index");
  const offsets = info.symbol("kallsyms_offsets");
  const addresses = info.symbol("kallsyms_addresses");
  if (names === undefined || numSyms === undefined || tokenTable === undefined || tokenIndex === undefined) {
    return undefined;
  }
  if (offsets === undefined && addresses === undefined) return undefined;
  return {
    names,
    numSyms,
    tokenTable,
    tokenIndex,
    offsets,
    addresses,
    relativeBase: info.symbol("kallsyms_relative_base"),
  };
}

/** Names of the kallsyms keys that are missing from VMCOREINFO (for error messages). */
export function missingKallsymsKeys(info: VmcoreInfo): string[] {
  const missing = ["kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index"]
    .filter((n) => info.symbol(n) === undefined);
  if (info.symbol("kallsyms_offsets") === undefined && info.symbol("kallsyms_addresses") === undefined) {
    missing.push("kallsyms_offsets or kallsyms_addresses");
  }
  return missing.map((n) => `SYMBOL(${n})`);
}

/** Options of readKallsyms. */
export interface KallsymsOptions {
  /** For messages (the dump's file name). */
  source?: string;
  /**
   * Keep only these names (plus those needed to check the table: _stext and the SYMBOL()s of VMCOREINFO):
   * no string is made for the others, which is much cheaper when a few symbols are wanted. `names`,
   * `types` and `addresses` then hold only the kept symbols, in table order.
   */
  only?: string[];
}

/**
 * Decode kallsyms from the dump. Throws VmsiftError naming what is missing (VMCOREINFO keys, unreadable
 * memory) or when no encoding reproduces SYMBOL(_stext).
 */
export function readKallsyms(vm: VirtualMemory, info: VmcoreInfo, opts: KallsymsOptions = {}): KernelSymbols {
  const file = opts.source ?? info.source;
  const loc = kallsymsLocations(info);
  if (loc === undefined) {
    throw new VmsiftError(
      `no kallsyms in VMCOREINFO (missing ${
        missingKallsymsKeys(info).join(", ")
      }; kernels export them since 6.0)`,
      { file },
    );
  }
  const reader = new VirtReader(vm, file);
  const stext = info.symbol("_stext");
  const expected = vmcoreinfoSymbols(info);
  const numSyms = reader.u32(loc.numSyms);
  if (numSyms === 0 || numSyms > 4_000_000) {
    throw new VmsiftError(`kallsyms_num_syms is ${numSyms}: not a symbol table`, {
      file,
      address: loc.numSyms,
    });
  }
  const tokens = readTokens(reader, loc);
  const release = /^(\d+)\.(\d+)/.exec(info.osrelease ?? "");
  const newer = release !== null &&
    (Number(release[1]) > 6 || (release[1] === "6" && Number(release[2]) >= 1));
  const want = opts.only === undefined ? undefined : new Set([...opts.only, "_stext", ...expected.keys()]);
  let lastError = "";
  for (const longNames of newer ? [true, false] : [false, true]) {
    let decoded: Decoded;
    try {
      decoded = readNames(reader, loc.names, numSyms, tokens, longNames, want);
    } catch (e) {
      if (!(e instanceof VmsiftError)) throw e;
      lastError = e.message;
      continue;
    }
    const index = new NameIndex(decoded.names);
    for (const [encoding, addressOfIndex] of addressCandidates(reader, loc, numSyms)) {
      const kept = decoded.indexes;
      const addressOf: AddressOf = kept === undefined ? addressOfIndex : (k) => addressOfIndex(kept[k]);
      const trial = finish(decoded, index, addressOf, encoding, longNames, false);
      if (stext !== undefined && trial.lookup("_stext") !== stext) continue;
      const checks = checkSymbols(trial, expected, reader, addressOf);
      if (checks.some((c) => c.verdict === "different")) continue;
      const syms = finish(decoded, index, addressOf, encoding, longNames, true);
      syms.checks.push(...checks);
      return syms;
    }
    lastError = stext === undefined
      ? "no SYMBOL(_stext) in VMCOREINFO to check the addresses against"
      : "no address encoding gives SYMBOL(_stext)";
  }
  throw new VmsiftError(`cannot decode kallsyms: ${lastError}`, { file, address: loc.names });
}

/** SYMBOL() entries of VMCOREINFO (name → address). */
export function vmcoreinfoSymbols(info: VmcoreInfo): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const key of info.keys()) {
    const m = /^SYMBOL\((.+)\)$/.exec(key);
    if (m === null) continue;
    const v = info.symbol(m[1]);
    if (v !== undefined) out.set(m[1], v);
  }
  return out;
}

function checkSymbols(
  syms: KernelSymbols,
  expected: Map<string, bigint>,
  reader: VirtReader,
  addressOf: AddressOf,
): SymbolCheck[] {
  const out: SymbolCheck[] = [];
  for (const [name, value] of expected) {
    const idx = syms.indexesOf(name);
    if (idx.length === 0) {
      out.push({ name, expected: value, found: undefined, verdict: "absent" });
      continue;
    }
    const found = idx.map(addressOf);
    if (found.includes(value)) {
      out.push({ name, expected: value, found: value, verdict: "equal" });
      continue;
    }
    const ptr = reader.tryU64(found[0]);
    out.push({ name, expected: value, found: found[0], verdict: ptr === value ? "pointer" : "different" });
  }
  return out;
}

/**
 * Finds symbols by name: a linear scan until a few dozen lookups were made, then a Map (building the Map
 * costs as much as ~50 scans of 100,000 names, and most uses need ten names).
 */
class NameIndex {
  #names: string[];
  #lookups = 0;
  #map: Map<string, number[]> | undefined;
  constructor(names: string[]) {
    this.#names = names;
  }

  indexesOf(name: string): number[] {
    if (this.#map === undefined && ++this.#lookups > 50) {
      this.#map = new Map();
      for (let i = 0; i < this.#names.length; i++) {
        const l = this.#map.get(this.#names[i]);
        if (l === undefined) this.#map.set(this.#names[i], [i]);
        else l.push(i);
      }
    }
    if (this.#map !== undefined) return this.#map.get(name) ?? [];
    const out: number[] = [];
    const names = this.#names;
    for (let i = 0; i < names.length; i++) if (names[i] === name) out.push(i);
    return out;
  }
}

/** Decoded names: all, or (indexes defined) only the wanted ones with their table indexes. */
interface Decoded {
  names: string[];
  types: string[];
  indexes?: number[];
}

function finish(
  decoded: Decoded,
  index: NameIndex,
  addressOf: AddressOf,
  encoding: KallsymsEncoding,
  longNames: boolean,
  materialize: boolean,
): KernelSymbols {
  let addresses: bigint[] | undefined;
  if (materialize) addresses = Array.from({ length: decoded.names.length }, (_, i) => addressOf(i));
  const indexesOf = (name: string) => index.indexesOf(name);
  return {
    names: decoded.names,
    types: decoded.types,
    addresses: addresses ?? [],
    encoding,
    longNames,
    checks: [],
    lookup(name: string) {
      const i = index.indexesOf(name)[0];
      return i === undefined ? undefined : addresses ? addresses[i] : addressOf(i);
    },
    indexesOf,
  };
}

/** The 256 expanded tokens. */
function readTokens(reader: VirtReader, loc: KallsymsLocations): Uint8Array[] {
  const idxBytes = reader.bytes(loc.tokenIndex, 512);
  const dv = new DataView(idxBytes.buffer, idxBytes.byteOffset, 512);
  const offsets: number[] = [];
  let max = 0;
  for (let i = 0; i < 256; i++) {
    offsets.push(dv.getUint16(i * 2, true));
    max = Math.max(max, offsets[i]);
  }
  // The table ends with the NUL of its last token; read up to the longest plausible token past `max`.
  const table = reader.bytesUpTo(loc.tokenTable, max + 256);
  return offsets.map((o, i) => {
    let e = o;
    while (e < table.length && table[e] !== 0) e++;
    if (e >= table.length) {
      throw new VmsiftError(`kallsyms token ${i} is not terminated`, { address: loc.tokenTable + BigInt(o) });
    }
    const t = table.slice(o, e);
    if (t.includes(10)) {
      throw new VmsiftError(`kallsyms token ${i} holds a newline`, { address: loc.tokenTable });
    }
    return t;
  });
}

function readNames(
  reader: VirtReader,
  base: bigint,
  numSyms: number,
  tokens: Uint8Array[],
  longNames: boolean,
  want?: Set<string>,
): Decoded {
  if (want !== undefined) return readSomeNames(reader, base, numSyms, tokens, longNames, want);
  const stream = new ByteStream(reader, base);
  // Expand every name into one byte buffer, "\n"-separated, then decode it once (strings built by
  // concatenation are ropes, slow to hash later).
  let out = new Uint8Array(1 << 20);
  let o = 0;
  let pos = 0;
  for (let i = 0; i < numSyms; i++) {
    let len = stream.at(pos++);
    if (longNames && (len & 0x80) !== 0) len = (len & 0x7f) | (stream.at(pos++) << 7);
    if (len === 0) throw new VmsiftError(`kallsyms name ${i} is empty`, { address: base + BigInt(pos) });
    const nameStart = o;
    for (let j = 0; j < len; j++) {
      const t = tokens[stream.at(pos++)];
      if (o - nameStart + t.length > KSYM_NAME_MAX || o + t.length > NAMES_MAX) {
        throw new VmsiftError(`kallsyms name ${i} is longer than any kernel symbol: not a symbol table`, {
          address: base + BigInt(pos),
        });
      }
      if (o + t.length + 1 > out.length) {
        const bigger = new Uint8Array(out.length * 2);
        bigger.set(out);
        out = bigger;
      }
      for (let q = 0; q < t.length; q++) out[o++] = t[q]; // tokens are short: a loop beats set()
    }
    out[o++] = 10;
  }
  const all = new TextDecoder("latin1").decode(out.subarray(0, o - 1)).split("\n");
  const names: string[] = new Array(numSyms);
  const types: string[] = new Array(numSyms);
  for (let i = 0; i < numSyms; i++) {
    types[i] = all[i].charAt(0);
    names[i] = all[i].slice(1);
  }
  return { names, types };
}

/** readNames keeping only the names in `want` (no string made for the others). */
function readSomeNames(
  reader: VirtReader,
  base: bigint,
  numSyms: number,
  tokens: Uint8Array[],
  longNames: boolean,
  want: Set<string>,
): Decoded {
  // Tokens as one flat table; wanted names as bytes, by length.
  const tokOff = new Int32Array(257);
  tokens.forEach((t, i) => (tokOff[i + 1] = tokOff[i] + t.length));
  const tokFlat = new Uint8Array(tokOff[256]);
  tokens.forEach((t, i) => tokFlat.set(t, tokOff[i]));
  const byLen = new Map<number, [string, Uint8Array][]>();
  for (const n of want) {
    const b = new TextEncoder().encode(n);
    const l = byLen.get(b.length);
    if (l) l.push([n, b]);
    else byLen.set(b.length, [[n, b]]);
  }
  const stream = new ByteStream(reader, base);
  const buf = new Uint8Array(KSYM_NAME_MAX + 256);
  const out: Decoded = { names: [], types: [], indexes: [] };
  let pos = 0;
  for (let i = 0; i < numSyms; i++) {
    let len = stream.at(pos++);
    if (longNames && (len & 0x80) !== 0) len = (len & 0x7f) | (stream.at(pos++) << 7);
    if (len === 0) throw new VmsiftError(`kallsyms name ${i} is empty`, { address: base + BigInt(pos) });
    let o = 0;
    for (let j = 0; j < len; j++) {
      const tk = stream.at(pos++);
      const e = tokOff[tk + 1];
      for (let q = tokOff[tk]; q < e; q++) buf[o++] = tokFlat[q];
      if (o > KSYM_NAME_MAX) {
        throw new VmsiftError(`kallsyms name ${i} is longer than any kernel symbol: not a symbol table`, {
          address: base + BigInt(pos),
        });
      }
    }
    const cands = byLen.get(o - 1);
    if (cands === undefined) continue;
    for (const [name, b] of cands) {
      let k = 0;
      while (k < b.length && buf[k + 1] === b[k]) k++;
      if (k < b.length) continue;
      out.names.push(name);
      out.types.push(String.fromCharCode(buf[0]));
      out.indexes!.push(i);
      break;
    }
  }
  return out;
}

/** One way to read the address of symbol i. */
type AddressOf = (i: number) => bigint;

/** Candidate encodings, most specific first. */
function* addressCandidates(
  reader: VirtReader,
  loc: KallsymsLocations,
  n: number,
): Generator<[KallsymsEncoding, AddressOf]> {
  const M = (1n << 64n) - 1n;
  if (loc.addresses !== undefined) {
    const b = reader.bytes(loc.addresses, n * 8);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    yield ["absolute", (i) => dv.getBigUint64(i * 8, true)];
  }
  if (loc.offsets === undefined) return;
  const b = reader.bytes(loc.offsets, n * 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (loc.relativeBase !== undefined) {
    const base = reader.u64(loc.relativeBase);
    yield ["base-relative", (i) => (base + BigInt(dv.getUint32(i * 4, true))) & M];
    yield ["absolute-percpu", (i) => {
      const v = dv.getInt32(i * 4, true);
      return v >= 0 ? BigInt(v) : (base - 1n - BigInt(v)) & M;
    }];
  } else {
    const at = loc.offsets;
    yield ["place-relative", (i) => (at + BigInt(i * 4) + BigInt(dv.getInt32(i * 4, true))) & M];
  }
}

/** Reads kernel virtual memory in cached 64 KiB windows; every failure is a VmsiftError with the address. */
class VirtReader {
  #vm: VirtualMemory;
  #file: string;
  constructor(vm: VirtualMemory, file: string) {
    this.#vm = vm;
    this.#file = file;
  }

  bytes(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (!this.#vm.readVirt(addr, out)) {
      throw new VmsiftError(`cannot read ${len} bytes of kernel memory at ${hex(addr)}`, {
        file: this.#file,
        address: addr,
      });
    }
    return out;
  }

  /** Up to `len` bytes, fewer when the mapping ends before (at least one page must read). */
  bytesUpTo(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (this.#vm.readVirt(addr, out)) return out;
    let got = 0;
    while (got < len) {
      const a = addr + BigInt(got);
      let n = Math.min(len - got, 4096 - Number(a & 4095n));
      // A readable page ends the run where the next one is not; within a page, find the readable prefix.
      while (n > 0 && !this.#vm.readVirt(a, out.subarray(got, got + n))) n >>= 1;
      if (n === 0) break;
      got += n;
    }
    if (got === 0) return this.bytes(addr, len); // throws
    return out.subarray(0, got);
  }

  u32(addr: bigint): number {
    const b = this.bytes(addr, 4);
    return new DataView(b.buffer).getUint32(0, true);
  }

  u64(addr: bigint): bigint {
    const b = this.bytes(addr, 8);
    return new DataView(b.buffer).getBigUint64(0, true);
  }

  tryU64(addr: bigint): bigint | undefined {
    const b = new Uint8Array(8);
    return this.#vm.readVirt(addr, b) ? new DataView(b.buffer).getBigUint64(0, true) : undefined;
  }
}

/** Sequential bytes from `base` through 64 KiB windows (positions are numbers: no BigInt per byte). */
class ByteStream {
  #reader: VirtReader;
  #base: bigint;
  #win: Uint8Array = new Uint8Array(0);
  #winPos = 0;
  constructor(reader: VirtReader, base: bigint) {
    this.#reader = reader;
    this.#base = base;
  }

  at(pos: number): number {
    const r = pos - this.#winPos;
    if (r >= 0 && r < this.#win.length) return this.#win[r];
    this.#winPos = pos;
    this.#win = this.#reader.bytesUpTo(this.#base + BigInt(pos), 65536);
    return this.#win[0];
  }
}
