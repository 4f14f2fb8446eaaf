/**
 * Pre-5.10 kernel logs, read like makedumpfile.c dump_dmesg() (kdump-reference.md section 8):
 * - 3.5-5.9 structured buffer: `char *log_buf` of `int log_buf_len` bytes holding variable-length records
 *   (`struct printk_log`, named `log` before 3.11: ts_nsec, u16 len, u16 text_len, text, dict, padding)
 *   from log_first_idx (clear_idx with --partial-dmesg) to log_next_idx; a record with len 0 marks the end
 *   of the buffer and means "continue with the record at offset 0".
 * - < 3.5 plain character ring: log_buf, log_buf_len and log_end (unsigned long up to 2.6.24, unsigned
 *   after), copied out raw.
 *
 * Bounds: log_buf_len is checked before allocating; every record index is checked to leave room for a
 * header; a bitmap of visited indexes stops cycles. Like makedumpfile, corruption after some records ends
 * with an error that keeps the records written so far (DmesgError.partial).
 */
import { VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";
import {
  checkSize,
  DEFAULT_MAX_BYTES,
  DmesgError,
  type DmesgOptions,
  type DmesgOutput,
  dmesgResult,
  need,
  readKernel,
} from "./dmesgFormat.ts";

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Read `char *log_buf` and `int log_buf_len` (checked against the bound). */
function logBufPlace(vm: VirtualMemory, info: VmcoreInfo, opts: DmesgOptions): { addr: bigint; len: number } {
  const addr = view(readKernel(vm, info.requireSymbol("log_buf"), 8, "the log_buf pointer")).getBigUint64(
    0,
    true,
  );
  const lenSym = info.requireSymbol("log_buf_len");
  const len = view(readKernel(vm, lenSym, 4, "log_buf_len")).getInt32(0, true);
  if (len <= 0) throw new VmsiftError(`log_buf_len ${len} is implausible`, { address: lenSym });
  checkSize(len, opts.maxBytes ?? DEFAULT_MAX_BYTES, "log_buf", addr);
  return { addr, len };
}

/** Append the 3.5-5.9 structured log's records to `out`. */
export function dumpStructured(
  vm: VirtualMemory,
  info: VmcoreInfo,
  opts: DmesgOptions,
  out: DmesgOutput,
): void {
  const struct = info.size("printk_log") !== undefined ? "printk_log" : "log";
  const hdr = need(info, "SIZE", struct);
  const lenOff = need(info, "OFFSET", `${struct}.len`);
  const textLenOff = need(info, "OFFSET", `${struct}.text_len`);
  const tsOff = need(info, "OFFSET", `${struct}.ts_nsec`);
  const callerOff = opts.callerColumn ? info.offset(`${struct}.caller_id`) : undefined;
  const fields: [number, number][] = [[lenOff, 2], [textLenOff, 2], [tsOff, 8], [callerOff ?? 0, 4]];
  for (const [at, len] of fields) {
    if (at < 0 || at + len > hdr) {
      throw new VmsiftError(`VMCOREINFO puts a ${struct} field outside SIZE(${struct})`, {
        file: info.source,
      });
    }
  }

  const firstSym = opts.partial && info.symbol("clear_idx") !== undefined
    ? info.requireSymbol("clear_idx")
    : info.requireSymbol("log_first_idx");
  const first = view(readKernel(vm, firstSym, 4, "log_first_idx")).getUint32(0, true);
  const nextIdx = view(readKernel(vm, info.requireSymbol("log_next_idx"), 4, "log_next_idx")).getUint32(
    0,
    true,
  );
  const { addr, len } = logBufPlace(vm, info, opts);
  const buf = readKernel(vm, addr, len, "log_buf");
  const dv = view(buf);
  const limit = buf.length - hdr; // highest index with room for a header
  if (limit < 0) {
    throw new VmsiftError(`log_buf of ${buf.length} bytes holds no record header`, { address: addr });
  }

  const fail = (what: string, idx: number): never => {
    throw new DmesgError(
      `the printk log_buf is corrupt: ${what} (log_buf 0x${addr.toString(16)}, idx 0x${idx.toString(16)})`,
      { address: addr + BigInt(idx) },
      dmesgResult(out, "structured"),
    );
  };
  const visited = new Uint8Array((buf.length >> 3) + 1);
  const seen = (i: number): boolean => (visited[i >> 3] & (1 << (i & 7))) !== 0;
  const mark = (i: number): void => {
    visited[i >> 3] |= 1 << (i & 7);
  };

  let ptr = first;
  if (ptr > limit) fail("log_first_idx outside log_buf", ptr);
  mark(ptr);
  while (ptr !== nextIdx) {
    const msgLen = dv.getUint16(ptr + lenOff, true);
    const rec = msgLen === 0 ? 0 : ptr; // len 0: end-of-buffer marker, the record is at offset 0
    const msg = rec + hdr;
    const textLen = Math.min(dv.getUint16(rec + textLenOff, true), buf.length - msg);
    const caller = callerOff === undefined ? undefined : dv.getUint32(rec + callerOff, true);
    out.record(dv.getBigUint64(rec + tsOff, true), buf.subarray(msg, msg + textLen), caller);
    const next = msgLen === 0 ? dv.getUint16(lenOff, true) : ptr + msgLen;
    if (next > limit) fail("index outside log_buf", next);
    if (seen(next)) fail("cycle in the record chain", next);
    mark(next);
    ptr = next;
  }
}

/** Kernel version from OSRELEASE as major*65536 + minor*256 + patch (undefined when unparsable). */
function kernelVersion(info: VmcoreInfo): number | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(info.osrelease ?? "");
  return m ? Number(m[1]) * 65536 + Number(m[2]) * 256 + Number(m[3] ?? 0) : undefined;
}

/** Append the < 3.5 plain character ring to `out`, raw, oldest byte first. */
export function dumpPlain(vm: VirtualMemory, info: VmcoreInfo, opts: DmesgOptions, out: DmesgOutput): void {
  const endSym = info.requireSymbol("log_end");
  const version = kernelVersion(info);
  const longEnd = version !== undefined && version < (2 << 16) + (6 << 8) + 25;
  const endBytes = readKernel(vm, endSym, longEnd ? 8 : 4, "log_end");
  const logEnd = longEnd ? view(endBytes).getBigUint64(0, true) : BigInt(view(endBytes).getUint32(0, true));
  const { addr, len } = logBufPlace(vm, info, opts);
  let bytes: Uint8Array;
  if (logEnd < BigInt(len)) {
    bytes = readKernel(vm, addr, Number(logEnd), "log_buf");
  } else {
    // Full ring: oldest part from log_end's index to the end, then the start (power-of-two length).
    const index = Number(logEnd & BigInt(len - 1));
    const buf = readKernel(vm, addr, len, "log_buf");
    bytes = new Uint8Array(len);
    bytes.set(buf.subarray(index), 0);
    bytes.set(buf.subarray(0, index), len - index);
  }
  out.raw(bytes);
  for (const b of bytes) if (b === 0x0a) out.records++;
}
