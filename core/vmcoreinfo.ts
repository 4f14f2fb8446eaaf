import { VmsiftError } from "./errors.ts";

/**
 * Typed view of the VMCOREINFO text (lines `KEY=VALUE`). Kernel virtual addresses (SYMBOL, KERNELOFFSET) and
 * NUMBER values do not fit 53 bits in general, so they are bigint; SIZE/OFFSET/LENGTH/PAGESIZE are numbers.
 * Value forms follow include/linux/vmcore_info.h (kdump-reference.md section 3).
 */
export class VmcoreInfo {
  /** The text as given. */
  readonly text: string;
  /** Where the text came from (note in a vmcore, or a -i file), for messages. */
  readonly source: string;
  readonly #entries = new Map<string, string>();

  private constructor(text: string, source: string) {
    this.text = text;
    this.source = source;
    for (const rawLine of text.split("\n")) {
      const line = rawLine.replace(/\0+$/, "").trimEnd();
      if (line === "") continue;
      const eq = line.indexOf("=");
      if (eq <= 0) {
        // Flag lines such as CONFIG_X86_PAE=y always have '='; tolerate junk but remember it as a flag.
        this.#entries.set(line, "");
        continue;
      }
      const key = line.slice(0, eq);
      if (!this.#entries.has(key)) this.#entries.set(key, line.slice(eq + 1));
    }
  }

  /** Parse VMCOREINFO text; `source` names its origin in error messages. */
  static parse(text: string, source = "VMCOREINFO"): VmcoreInfo {
    return new VmcoreInfo(text, source);
  }

  /** All keys in text order. */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** True when `key` (full key, e.g. `SYMBOL(prb)`) is present. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Raw string value of a full key. */
  raw(key: string): string | undefined {
    return this.#entries.get(key);
  }

  /** OSRELEASE, the kernel release (e.g. "6.1.0-56-amd64"). */
  get osrelease(): string | undefined {
    return this.#entries.get("OSRELEASE");
  }

  /** BUILD-ID of the kernel, when given. */
  get buildId(): string | undefined {
    return this.#entries.get("BUILD-ID");
  }

  /** PAGESIZE in bytes. */
  get pageSize(): number | undefined {
    return this.#decimal("PAGESIZE");
  }

  /** CRASHTIME in seconds, if present. */
  get crashTime(): number | undefined {
    return this.#decimal("CRASHTIME");
  }

  /** KERNELOFFSET (hex), if present. */
  get kernelOffset(): bigint | undefined {
    const v = this.#entries.get("KERNELOFFSET");
    return v === undefined ? undefined : this.#parseHex("KERNELOFFSET", v);
  }

  /** SYMBOL(name): a relocated kernel virtual address. */
  symbol(name: string): bigint | undefined {
    const key = `SYMBOL(${name})`;
    const v = this.#entries.get(key);
    return v === undefined ? undefined : this.#parseHex(key, v);
  }

  /** SIZE(name): the size of a kernel type, bytes. */
  size(name: string): number | undefined {
    return this.#decimal(`SIZE(${name})`);
  }

  /** OFFSET(name): the offset of a member ("struct.member"), bytes. */
  offset(name: string): number | undefined {
    return this.#decimal(`OFFSET(${name})`);
  }

  /** LENGTH(name): the number of elements of an array. */
  length(name: string): number | undefined {
    return this.#decimal(`LENGTH(${name})`);
  }

  /**
   * NUMBER(name) as a signed 64-bit value: decimal (possibly negative), or hex when decimal parsing leaves
   * junk (makedumpfile's rule), with or without 0x.
   */
  number(name: string): bigint | undefined {
    const key = `NUMBER(${name})`;
    const v = this.#entries.get(key);
    if (v === undefined) return undefined;
    const s = v.trim();
    if (/^-?[0-9]+$/.test(s)) return BigInt.asIntN(64, BigInt(s));
    const h = s.replace(/^0x/i, "");
    if (/^[0-9a-fA-F]+$/.test(h)) return BigInt.asIntN(64, BigInt("0x" + h));
    throw this.#bad(key, v);
  }

  /** NUMBER(name) as a JS number; throws when it is not a safe integer. */
  numberN(name: string): number | undefined {
    const v = this.number(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw this.#bad(`NUMBER(${name})`, String(v));
    return n;
  }

  /** Like symbol(), but throws a clear error naming the missing key. */
  requireSymbol(name: string): bigint {
    const v = this.symbol(name);
    if (v === undefined) throw this.missing(`SYMBOL(${name})`);
    return v;
  }

  /** SIZE(name), or VmsiftError naming the missing line. */
  requireSize(name: string): number {
    const v = this.size(name);
    if (v === undefined) throw this.missing(`SIZE(${name})`);
    return v;
  }

  /** OFFSET(name), or VmsiftError naming the missing line. */
  requireOffset(name: string): number {
    const v = this.offset(name);
    if (v === undefined) throw this.missing(`OFFSET(${name})`);
    return v;
  }

  /** NUMBER(name), or VmsiftError naming the missing line. */
  requireNumber(name: string): bigint {
    const v = this.number(name);
    if (v === undefined) throw this.missing(`NUMBER(${name})`);
    return v;
  }

  /** The error for a key that is needed and absent. */
  missing(key: string): VmsiftError {
    return new VmsiftError(`VMCOREINFO has no ${key}`, { file: this.source });
  }

  #decimal(key: string): number | undefined {
    const v = this.#entries.get(key);
    if (v === undefined) return undefined;
    const s = v.trim();
    if (!/^-?[0-9]+$/.test(s)) throw this.#bad(key, v);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw this.#bad(key, v);
    return n;
  }

  #parseHex(key: string, v: string): bigint {
    const h = v.trim().replace(/^0x/i, "");
    if (!/^[0-9a-fA-F]{1,16}$/.test(h)) throw this.#bad(key, v);
    return BigInt("0x" + h);
  }

  #bad(key: string, v: string): VmsiftError {
    return new VmsiftError(`VMCOREINFO ${key} has a malformed value ${JSON.stringify(v)}`, {
      file: this.source,
    });
  }
}
