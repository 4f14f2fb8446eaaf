/**
 * Fuzzing building blocks: a seeded PRNG, byte patches (the serialisable form of every mutation), structure
 * aware field mutations (lengths, counts, pointers, page-table entries), VMCOREINFO text mutations, an overlay
 * PhysicalMemory that applies patches on top of a real dump without copying it, and a patched working copy of
 * a file for parsers that only take a path.
 */
import type { PhysicalMemory, PhysSegment } from "../core/physMem.ts";

/** A deterministic PRNG (xorshift128+ seeded by splitmix64 of the string/number seed). */
export class Rng {
  #s0: bigint;
  #s1: bigint;

  constructor(seed: string | number) {
    let h = 0xcbf29ce484222325n;
    for (const ch of String(seed)) h = BigInt.asUintN(64, (h ^ BigInt(ch.charCodeAt(0))) * 0x100000001b3n);
    const mix = (x: bigint) => {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      x = BigInt.asUintN(64, (x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n);
      x = BigInt.asUintN(64, (x ^ (x >> 27n)) * 0x94d049bb133111ebn);
      return x ^ (x >> 31n);
    };
    this.#s0 = mix(h) | 1n;
    this.#s1 = mix(h ^ 0x5555n);
  }

  /** Uniform 32-bit unsigned. */
  u32(): number {
    let s1 = this.#s0;
    const s0 = this.#s1;
    this.#s0 = s0;
    s1 = BigInt.asUintN(64, s1 ^ (s1 << 23n));
    this.#s1 = s1 ^ s0 ^ (s1 >> 17n) ^ (s0 >> 26n);
    return Number(BigInt.asUintN(64, this.#s1 + s0) >> 32n);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    if (n <= 0x1_0000_0000) return Math.floor((this.u32() / 0x1_0000_0000) * n);
    return Math.floor((this.u32() * 0x1_0000_0000 + this.u32()) / 2 ** 64 * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  /** Random 64-bit value. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  bytes(n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.u32() & 0xff);
    return out;
  }
}

/** Bytes to write at `at` (a file offset or a physical address). Plain numbers so it serialises as JSON. */
export interface Patch {
  at: number;
  bytes: number[];
}

/** What a field means, so mutations can pick values that matter for it. */
export type FieldKind =
  | "len" // a length or count: 0, -1, huge, off by one
  | "off" // an offset into something: past the end, negative, misaligned
  | "ptr" // a kernel virtual address
  | "pte" // a page-table entry (the table's own PA is given for loops)
  | "flags" // bit field: flip bits
  | "id" // printk ids
  | "raw"; // anything: bit flips, random

/** A field of a structure found in a seed input. */
export interface Field {
  at: number;
  size: 1 | 2 | 4 | 8;
  kind: FieldKind;
  /** Big-endian (flattened-format headers). */
  be?: boolean;
  /** For "pte": physical address of the table holding the entry. */
  tablePa?: number;
  /** A short name for notes. */
  name?: string;
}

const MASK64 = (1n << 64n) - 1n;

/** Values that break length and offset arithmetic. */
export const INTERESTING64: readonly bigint[] = [
  0n,
  1n,
  2n,
  7n,
  8n,
  0xffn,
  0x100n,
  0xfffn,
  0x1000n,
  0x1001n,
  0x7fffn,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x1fffffffffffffn, // 2^53 - 1
  0x20000000000000n, // 2^53
  0x10000000000000n, // 2^52
  0x7fffffffffffffffn,
  0x8000000000000000n,
  MASK64, // -1
  MASK64 - 1n,
  MASK64 - 0xfffn,
];

/** Encode `v` (mod 2^(8·size)) as `size` bytes. */
export function encode(v: bigint, size: number, be = false): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
  }
  return be ? out.reverse() : out;
}

/** Decode `size` bytes of `b` at `at`. */
export function decode(b: Uint8Array, at: number, size: number, be = false): bigint {
  let v = 0n;
  for (let i = 0; i < size; i++) {
    const byte = BigInt(b[at + (be ? i : size - 1 - i)] ?? 0);
    v = (v << 8n) | byte;
  }
  return v;
}

/**
 * A new value for a field whose current value is `cur`, chosen by kind. The result is a patch of the field's
 * size at its place.
 */
export function mutateField(rng: Rng, f: Field, cur: bigint): Patch {
  const bits = BigInt(f.size * 8);
  const mask = (1n << bits) - 1n;
  let v: bigint;
  const r = rng.int(100);
  if (r < 15) {
    v = cur ^ (1n << BigInt(rng.int(f.size * 8))); // one bit flip
  } else if (r < 40) {
    v = rng.pick(INTERESTING64);
  } else if (r < 55) {
    const d = BigInt(rng.pick([1, 2, 4, 8, 16, 24, 56, 64, 4096, 65536]));
    v = rng.chance(0.5) ? cur + d : cur - d;
  } else if (r < 62) {
    v = rng.u64();
  } else {
    v = kindValue(rng, f, cur);
  }
  return { at: f.at, bytes: encode(v & mask, f.size, f.be) };
}

function kindValue(rng: Rng, f: Field, cur: bigint): bigint {
  switch (f.kind) {
    case "len":
      return rng.pick([0n, MASK64, cur * 2n, cur * 256n, cur + 1n, cur - 1n, 1n << BigInt(rng.int(64))]);
    case "off":
      return rng.pick([
        0n,
        cur + 1n,
        cur + 3n,
        cur - 1n,
        cur << 12n,
        MASK64 - cur,
        1n << BigInt(rng.int(64)),
      ]);
    case "ptr":
      return rng.pick([
        0n,
        cur + 8n,
        cur - 8n,
        cur ^ (1n << 40n),
        0xffff888000000000n,
        0xffffea0000000000n,
        0xffffffff80000000n,
        0xffffffffff600000n,
        0x00007fff00000000n,
        MASK64,
      ]);
    case "pte": {
      const attrs = cur & 0xfffn;
      const pick = rng.int(8);
      if (pick === 0) return cur ^ 1n; // present bit
      if (pick === 1) return cur ^ 0x80n; // PSE
      if (pick === 2 && f.tablePa !== undefined) return BigInt(f.tablePa) | attrs | 1n; // points at itself
      if (pick === 3) return (0xffffffffff000n & (BigInt(rng.int(2 ** 30)) << 22n)) | attrs | 1n; // outside RAM
      if (pick === 4) return cur | (1n << 63n) | (1n << 51n); // NX + a high address bit
      if (pick === 5) return (cur & ~0xfffn) | 0x1e3n; // leaf attrs
      if (pick === 6) return cur + 0x1000n;
      return BigInt(rng.int(2 ** 28)) * 0x1000n | 0x63n; // somewhere in low memory
    }
    case "flags":
      return cur ^ (1n << BigInt(rng.int(f.size * 8))) ^
        (rng.chance(0.5) ? 1n << BigInt(rng.int(f.size * 8)) : 0n);
    case "id":
      return rng.pick([
        cur + 1n,
        cur - 1n,
        cur + (1n << 62n),
        cur ^ (3n << 62n),
        0n,
        MASK64,
        cur + 0x100000n,
      ]);
    default:
      return cur ^ BigInt(rng.u32());
  }
}

/** A patch of random bytes (1-16) somewhere in [lo, hi). */
export function randomBytes(rng: Rng, lo: number, hi: number): Patch {
  const n = 1 + rng.int(16);
  const at = lo + rng.int(Math.max(1, hi - lo - n));
  if (rng.chance(0.5)) {
    // bit flips of existing content are applied by the caller: here just noise
    return { at, bytes: rng.bytes(n) };
  }
  return { at, bytes: new Array(n).fill(rng.pick([0, 0xff, 0x7f, 0x80])) };
}

/** Apply patches to a copy of `base` (patches past its end are clipped). */
export function applyPatches(base: Uint8Array, patches: readonly Patch[]): Uint8Array {
  const out = base.slice();
  for (const p of patches) {
    for (let i = 0; i < p.bytes.length; i++) {
      if (p.at + i < out.length && p.at + i >= 0) out[p.at + i] = p.bytes[i];
    }
  }
  return out;
}

/**
 * Physical memory with patches laid over a base (the real 151 MB vmcore is never copied). Patched bytes
 * read as patched wherever the base's segment covers them.
 */
export class OverlayMem implements PhysicalMemory {
  readonly label: string;
  readonly segments: readonly PhysSegment[];
  readonly #base: PhysicalMemory;
  readonly #patches: Patch[];

  constructor(base: PhysicalMemory, patches: readonly Patch[]) {
    this.#base = base;
    this.label = base.label;
    this.segments = base.segments;
    this.#patches = [...patches].sort((a, b) => a.at - b.at);
  }

  readPhys(paddr: number, out: Uint8Array): boolean {
    if (!this.#base.readPhys(paddr, out)) return false;
    const end = paddr + out.length;
    for (const p of this.#patches) {
      if (p.at >= end) break;
      if (p.at + p.bytes.length <= paddr) continue;
      for (let i = 0; i < p.bytes.length; i++) {
        const a = p.at + i;
        if (a >= paddr && a < end) out[a - paddr] = p.bytes[i];
      }
    }
    return true;
  }
}

/**
 * A working copy of a seed file for parsers that take a path. `apply` writes patches (and may truncate a
 * small file); `restore` puts the seed's bytes back, so one copy serves every input.
 */
export class PatchedFile {
  readonly path: string;
  readonly #base: string;
  readonly #size: number;
  #dirty: Patch[] = [];
  #truncated = false;

  constructor(base: string, path: string, opts: { fresh?: boolean; refreshBytes?: number } = {}) {
    this.#base = base;
    this.path = path;
    this.#size = Deno.statSync(base).size;
    let ok = false;
    try {
      ok = Deno.statSync(path).size === this.#size && !opts.fresh;
    } catch { /* no copy yet */ }
    if (!ok) Deno.copyFileSync(base, path);
    else if (opts.refreshBytes) {
      // A killed worker may have left patches in the first bytes: put the seed's bytes back.
      this.#restoreRange(0, Math.min(this.#size, opts.refreshBytes));
    }
  }

  get size(): number {
    return this.#size;
  }

  #restoreRange(at: number, len: number): void {
    const b = new Uint8Array(len);
    const src = Deno.openSync(this.#base, { read: true });
    try {
      src.seekSync(at, Deno.SeekMode.Start);
      let got = 0;
      while (got < len) {
        const n = src.readSync(b.subarray(got));
        if (n === null || n === 0) break;
        got += n;
      }
    } finally {
      src.close();
    }
    const dst = Deno.openSync(this.path, { write: true });
    try {
      dst.seekSync(at, Deno.SeekMode.Start);
      writeAll(dst, b);
    } finally {
      dst.close();
    }
  }

  apply(patches: readonly Patch[], truncateTo?: number): void {
    const f = Deno.openSync(this.path, { write: true });
    try {
      for (const p of patches) {
        if (p.at < 0 || p.at >= this.#size) continue;
        const bytes = Uint8Array.from(p.bytes.slice(0, this.#size - p.at));
        f.seekSync(p.at, Deno.SeekMode.Start);
        writeAll(f, bytes);
        this.#dirty.push(p);
      }
      if (truncateTo !== undefined && truncateTo < this.#size) {
        f.truncateSync(truncateTo);
        this.#truncated = true;
      }
    } finally {
      f.close();
    }
  }

  restore(): void {
    if (this.#truncated) {
      Deno.copyFileSync(this.#base, this.path);
      this.#truncated = false;
      this.#dirty = [];
      return;
    }
    for (const p of this.#dirty) this.#restoreRange(p.at, Math.min(p.bytes.length, this.#size - p.at));
    this.#dirty = [];
  }
}

function writeAll(f: Deno.FsFile, b: Uint8Array): void {
  let done = 0;
  while (done < b.length) done += f.writeSync(b.subarray(done));
}

/** Line-level and value-level mutations of a VMCOREINFO text. */
export function mutateVmcoreinfo(rng: Rng, text: string): string {
  const lines = text.split("\n");
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const i = rng.int(lines.length);
    const line = lines[i] ?? "";
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq) : line;
    const val = eq > 0 ? line.slice(eq + 1) : "";
    switch (rng.int(10)) {
      case 0:
        lines.splice(i, 1); // drop a key
        break;
      case 1:
        lines.splice(rng.int(lines.length), 0, line); // duplicate (first one wins)
        lines.splice(i, 0, `${key}=${rng.pick(VALUE_JUNK)}`);
        break;
      case 2:
      case 3:
      case 4:
        lines[i] = `${key}=${mutateValue(rng, key, val)}`;
        break;
      case 5:
        lines[i] = line.slice(0, rng.int(line.length + 1)); // cut
        break;
      case 6:
        lines[i] = line.replace(/[()]/, rng.pick(["", "((", ")", " "]));
        break;
      case 7:
        lines[i] = line + rng.pick(["\0", "\r", " ", "\0\0junk", "=", "\uffff", "\ud800"]);
        break;
      case 8:
        lines.splice(i, 0, `${rng.pick(KEY_PREFIX)}(${rng.pick(KEY_NAMES)})=${mutateValue(rng, "", "0")}`);
        break;
      default: {
        const chars = [...line];
        if (chars.length > 0) chars[rng.int(chars.length)] = String.fromCharCode(rng.int(256));
        lines[i] = chars.join("");
      }
    }
  }
  return lines.join("\n");
}

const VALUE_JUNK = ["", "-", "0x", "x", " ", "-0", "1e3", "0x-1", "ffffffffffffffffff", "NaN", "1.5", "+1"];
const KEY_PREFIX = ["SYMBOL", "SIZE", "OFFSET", "LENGTH", "NUMBER"];
const KEY_NAMES = [
  "prb",
  "init_top_pgt",
  "mem_section",
  "page",
  "phys_base",
  "pgtable_l5_enabled",
  "sme_mask",
  "SECTION_SIZE_BITS",
  "MAX_PHYSMEM_BITS",
  "page._mapcount",
  "page.flags",
  "printk_ringbuffer",
  "prb_desc",
  "printk_info",
  "log_buf",
  "log_buf_len",
  "log_end",
  "log_first_idx",
  "_stext",
  "KERNEL_IMAGE_SIZE",
  "zone.free_area",
  "PAGE_BUDDY_MAPCOUNT_VALUE",
  "mem_section.section_mem_map",
];

function mutateValue(rng: Rng, key: string, val: string): string {
  const hexish = key.startsWith("SYMBOL") || key === "KERNELOFFSET";
  const choices = [
    "0",
    "1",
    "-1",
    "4095",
    "4097",
    "65536",
    "4294967295",
    "4294967296",
    "9007199254740991",
    "9007199254740993",
    "18446744073709551615",
    "-9223372036854775808",
    "99999999999999999999999",
    "0x" + "f".repeat(16),
    "ffffffffffffffff",
    "0",
    "1" + "0".repeat(rng.int(30)),
    rng.pick(VALUE_JUNK),
  ];
  if (hexish) {
    const v = /^[0-9a-f]+$/i.test(val) ? BigInt("0x" + val) : 0n;
    choices.push(
      BigInt.asUintN(64, v + BigInt(rng.pick([8, -8, 4096, -4096, 1 << 21, 1 << 30]))).toString(16),
      (v ^ (1n << BigInt(rng.int(64)))).toString(16),
      "ffff888000000000",
      "ffffffff80000000",
    );
  } else if (/^-?\d+$/.test(val)) {
    const v = BigInt(val);
    choices.push(String(v + 1n), String(v - 1n), String(v * 2n), String(v * 4096n), String(-v));
  }
  return rng.pick(choices);
}
