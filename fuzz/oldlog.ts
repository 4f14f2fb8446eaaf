/**
 * Seeds for the pre-5.10 kernel logs (3.5-5.9 structured log_buf, < 3.5 plain ring), which no vmcore seed
 * has: a small kernel virtual memory holding the symbols and a log_buf, built here, mutated through patches
 * on its byte arena.
 */
import type { VirtualMemory } from "../core/virtMem.ts";
import { type Field, Rng } from "./mutators.ts";

const SYM = 0xffffffff82000000n;
const LOG_BUF = 0xffff888000500000n;
/** Arena layout: symbols at 0, log_buf at LOG_AT. */
const LOG_AT = 0x100;
const LOG_LEN = 4096;

/** Kernel memory made of two regions of one arena. */
export class ArenaVm implements VirtualMemory {
  constructor(readonly arena: Uint8Array, readonly logLen: number) {}

  #place(va: bigint, len: number): number | undefined {
    if (va >= SYM && va + BigInt(len) <= SYM + BigInt(LOG_AT)) return Number(va - SYM);
    if (va >= LOG_BUF && va + BigInt(len) <= LOG_BUF + BigInt(this.logLen)) {
      return LOG_AT + Number(va - LOG_BUF);
    }
    return undefined;
  }

  vtop(va: bigint): number | undefined {
    return this.#place(va, 1);
  }

  readVirt(va: bigint, out: Uint8Array): boolean {
    const at = this.#place(va, out.length);
    if (at === undefined) return false;
    out.set(this.arena.subarray(at, at + out.length));
    return true;
  }
}

/** An old-log seed: its VMCOREINFO text, its arena and the fields worth mutating. */
export interface OldLogSeed {
  text: string;
  arena: Uint8Array;
  fields: Field[];
}

const h = (v: bigint) => v.toString(16);

/** Build the seed: "structured" (printk_log), "structured-old" (struct log, < 3.11) or "plain". */
export function oldLogSeed(kind: "structured" | "structured-old" | "plain"): OldLogSeed {
  const arena = new Uint8Array(LOG_AT + LOG_LEN);
  const dv = new DataView(arena.buffer);
  const fields: Field[] = [];
  dv.setBigUint64(0x00, LOG_BUF, true);
  dv.setInt32(0x10, LOG_LEN, true);
  fields.push(
    { at: 0x00, size: 8, kind: "ptr", name: "log_buf" },
    { at: 0x10, size: 4, kind: "len", name: "log_buf_len" },
  );
  const rng = new Rng(`oldlog-${kind}`);
  if (kind === "plain") {
    for (let i = 0; i < LOG_LEN; i++) arena[LOG_AT + i] = i % 61 === 60 ? 0x0a : 0x20 + (rng.u32() % 90);
    dv.setBigUint64(0x20, 5000n, true);
    fields.push({ at: 0x20, size: 8, kind: "len", name: "log_end" });
    const text = [
      "OSRELEASE=2.6.32-5-amd64",
      `SYMBOL(log_buf)=${h(SYM)}`,
      `SYMBOL(log_buf_len)=${h(SYM + 0x10n)}`,
      `SYMBOL(log_end)=${h(SYM + 0x20n)}`,
      "",
    ].join("\n");
    return { text, arena, fields };
  }
  const struct = kind === "structured" ? "printk_log" : "log";
  // Records of 16-byte headers + text + dict, 8-aligned, wrapping with a len-0 marker.
  let at = 0;
  const starts: number[] = [];
  while (at + 16 + 64 < LOG_LEN) {
    const text = "message " + "x".repeat(rng.int(40));
    const dict = rng.chance(0.3) ? "SUBSYSTEM=pci" : "";
    const len = (16 + text.length + dict.length + 7) & ~7;
    const b = LOG_AT + at;
    dv.setBigUint64(b, BigInt(at) * 1000_000n, true);
    dv.setUint16(b + 8, len, true);
    dv.setUint16(b + 10, text.length, true);
    dv.setUint16(b + 12, dict.length, true);
    arena.set(new TextEncoder().encode(text + dict), b + 16);
    starts.push(at);
    at += len;
  }
  // at: end-of-buffer marker (len 0) → continue at 0; first record in the middle, next = a record start.
  const first = starts[Math.floor(starts.length / 2)];
  const next = starts[Math.floor(starts.length / 2) - 1];
  dv.setUint32(0x20, first, true);
  dv.setUint32(0x30, starts[3], true);
  dv.setUint32(0x40, next, true);
  fields.push(
    { at: 0x20, size: 4, kind: "off", name: "log_first_idx" },
    { at: 0x30, size: 4, kind: "off", name: "clear_idx" },
    { at: 0x40, size: 4, kind: "off", name: "log_next_idx" },
  );
  for (const s of starts) {
    fields.push(
      { at: LOG_AT + s + 8, size: 2, kind: "len", name: "len" },
      { at: LOG_AT + s + 10, size: 2, kind: "len", name: "text_len" },
      { at: LOG_AT + s, size: 8, kind: "raw", name: "ts_nsec" },
    );
  }
  const text = [
    `OSRELEASE=${kind === "structured" ? "5.4.0" : "3.10.0"}`,
    `SYMBOL(log_buf)=${h(SYM)}`,
    `SYMBOL(log_buf_len)=${h(SYM + 0x10n)}`,
    `SYMBOL(log_first_idx)=${h(SYM + 0x20n)}`,
    `SYMBOL(clear_idx)=${h(SYM + 0x30n)}`,
    `SYMBOL(log_next_idx)=${h(SYM + 0x40n)}`,
    `SIZE(${struct})=16`,
    `OFFSET(${struct}.ts_nsec)=0`,
    `OFFSET(${struct}.len)=8`,
    `OFFSET(${struct}.text_len)=10`,
    `OFFSET(${struct}.dict_len)=12`,
    ...(kind === "structured" ? ["OFFSET(printk_log.caller_id)=12"] : []),
    "",
  ].join("\n");
  return { text, arena, fields };
}

export const OLDLOG_LEN = LOG_LEN;
