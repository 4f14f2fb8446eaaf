/**
 * Output formatting of `--dump-dmesg`, byte-compatible with makedumpfile (printk.c dump_record and
 * makedumpfile.c dump_log_entry; identical in 1.7.2 and later except for the caller column of 1.7.5+).
 *
 * One line per record: `[%5llu.%06lu] ` from ts_nsec, optionally `[%8s] ` with `T<pid>`/`C<cpu>`, then the
 * text. makedumpfile tests each byte as a (signed, x86_64) `char` with the C locale's isprint/isspace:
 * - `\n` becomes a newline followed by as many spaces as the prefix is wide;
 * - printable ASCII 0x20-0x7e and the spaces `\t \v \f \r` are copied;
 * - any other byte is written `\x%02x` of the sign-extended char, so 0x01 → `\x01` but 0x80 → `\xffffff80`.
 * The line ends with `\n`. The dict (3.5-5.9) and dev_printk_info (5.10+) are never printed.
 */
import { type ErrorPlace, VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";

/** Growable byte buffer for the log text; the caller bounds what goes in. */
export class DmesgOutput {
  #buf = new Uint8Array(1 << 16);
  #len = 0;
  /** Records (lines) written so far. */
  records = 0;

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** Append ASCII text (callers only pass ASCII). */
  ascii(s: string): void {
    this.#reserve(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.#len++] = s.charCodeAt(i);
  }

  /** Append raw bytes unchanged (the < 3.5 plain ring is copied as is). */
  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /**
   * Append one record: prefix from ts_nsec (and caller id when given), the escaped text, a final newline.
   * `callerId` is the raw u32 printk caller id (bit 31 set = CPU number, else task id).
   */
  record(tsNsec: bigint, text: Uint8Array, callerId?: number): void {
    const secs = tsNsec / 1_000_000_000n;
    const usecs = (tsNsec % 1_000_000_000n) / 1000n;
    let prefix = `[${String(secs).padStart(5)}.${String(usecs).padStart(6, "0")}] `;
    if (callerId !== undefined) {
      const cid = (callerId & 0x80000000 ? "C" : "T") + String(callerId & 0x7fffffff);
      prefix += `[${cid.padStart(8)}] `;
    }
    const indent = prefix.length;
    this.ascii(prefix);
    // Worst case per byte: 10 chars (`\xffffff80`) or a newline plus the indent.
    this.#reserve(text.length * Math.max(10, indent + 1) + 1);
    const buf = this.#buf;
    let o = this.#len;
    for (let i = 0; i < text.length; i++) {
      const b = text[i];
      if (b === 0x0a) {
        buf[o++] = 0x0a;
        buf.fill(0x20, o, o + indent);
        o += indent;
      } else if ((b >= 0x20 && b <= 0x7e) || (b >= 0x09 && b <= 0x0d)) {
        buf[o++] = b;
      } else {
        const h = b >= 0x80 ? "ffffff" + b.toString(16) : (b < 16 ? "0" : "") + b.toString(16);
        buf[o++] = 0x5c; // backslash
        buf[o++] = 0x78; // x
        for (let k = 0; k < h.length; k++) buf[o++] = h.charCodeAt(k);
      }
    }
    buf[o++] = 0x0a;
    this.#len = o;
    this.records++;
  }

  /** The bytes written so far (a copy). */
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  /** The output as a string, one char per byte (latin1), so that bytes >= 0x80 of plain logs survive. */
  text(): string {
    const parts: string[] = [];
    const step = 1 << 15;
    for (let i = 0; i < this.#len; i += step) {
      parts.push(String.fromCharCode(...this.#buf.subarray(i, Math.min(this.#len, i + step))));
    }
    return parts.join("");
  }
}

/** Options of extractDmesg(). */
export interface DmesgOptions {
  /** makedumpfile --partial-dmesg: only what came after the last `dmesg -c` (clear_seq / clear_idx). */
  partial?: boolean;
  /**
   * Print the `[    T123] ` caller column when the kernel exports OFFSET(printk_info.caller_id) (or
   * OFFSET(printk_log.caller_id)), as makedumpfile >= 1.7.5 does. Default false: makedumpfile 1.7.2 output,
   * which never prints it (and is what ../shared/fixtures/real-6.1/dmesg.txt was made with).
   */
  callerColumn?: boolean;
  /** Largest single buffer (text ring, descriptor or info array, log_buf) read from the dump; default 1 GiB. */
  maxBytes?: number;
}

/** The extracted log. */
export interface DmesgResult {
  /** The log as makedumpfile writes it, one char per byte (ASCII except for raw < 3.5 logs). */
  text: string;
  /** The same output as bytes: write these to reproduce makedumpfile's file exactly. */
  bytes: Uint8Array;
  /** Records written (lines for the plain < 3.5 format). */
  records: number;
  /** Producer format: lockless (5.10+), structured (3.5-5.9), plain (< 3.5). */
  format: "lockless" | "structured" | "plain";
  /** Records skipped as inconsistent (lockless data block shorter than its id; never in a sane ring). */
  skipped: number;
}

/**
 * A corrupt log found after some records were extracted (makedumpfile then keeps what it wrote up to the
 * corruption and fails); `partial` holds that output.
 */
export class DmesgError extends VmsiftError {
  /** What could be extracted before the log turned out to be damaged. */
  readonly partial: DmesgResult;
  /** A damaged log: `message` says where, `partial` holds what was read before. */
  constructor(message: string, place: ErrorPlace, partial: DmesgResult) {
    super(message, place);
    this.name = "DmesgError";
    this.partial = partial;
  }
}

/** Build a result from an output buffer. */
export function dmesgResult(out: DmesgOutput, format: DmesgResult["format"], skipped = 0): DmesgResult {
  return { text: out.text(), bytes: out.bytes(), records: out.records, format, skipped };
}

/** Default bound on any single buffer read for the log. */
export const DEFAULT_MAX_BYTES = 1 << 30;

/** Read `len` bytes of kernel virtual memory or throw a VmsiftError naming `what` and the address. */
export function readKernel(vm: VirtualMemory, vaddr: bigint, len: number, what: string): Uint8Array {
  const out = new Uint8Array(len);
  if (!vm.readVirt(vaddr, out)) {
    throw new VmsiftError(`can't read ${what} (${len} bytes at 0x${vaddr.toString(16)})`, { address: vaddr });
  }
  return out;
}

/** Check a buffer size taken from the dump against the bound before allocating it. */
export function checkSize(len: number, max: number, what: string, address: bigint): void {
  if (!Number.isSafeInteger(len) || len < 0 || len > max) {
    throw new VmsiftError(`${what} size ${len} is implausible (limit ${max} bytes)`, { address });
  }
}

/** VMCOREINFO OFFSET/SIZE lookup that throws the standard missing-key error. */
export function need(info: VmcoreInfo, kind: "SIZE" | "OFFSET", name: string): number {
  const v = kind === "SIZE" ? info.size(name) : info.offset(name);
  if (v === undefined) throw info.missing(`${kind}(${name})`);
  return v;
}
