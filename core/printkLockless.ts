/**
 * Linux 5.10+ lockless printk ring buffer (kernel/printk/printk_ringbuffer.[ch]), read the way makedumpfile's
 * printk.c dump_lockless_dmesg() reads it (kdump-reference.md section 8).
 *
 * `*prb` holds a descriptor ring (2^count_bits `prb_desc` + as many `printk_info`, indexed by id mod count)
 * and a text data ring (2^size_bits bytes). Records are the ids tail_id..head_id inclusive; a descriptor
 * counts only when its state_var carries the same id and state committed (1) or finalized (2). Its text
 * block [begin, next) (logical positions mod the ring size) starts with the unsigned long id; a block with
 * begin > next wrapped and its data starts at offset 0. text_len is clamped to the block.
 *
 * Bounds: ring sizes are checked against `maxBytes` before anything is allocated; head and tail must be
 * less than one ring apart (else a VmsiftError naming the prb address), so the loop is at most 2^count_bits
 * records; every text slice stays inside the data ring.
 */
import { VmsiftError } from "./errors.ts";
import type { VirtualMemory } from "./virtMem.ts";
import type { VmcoreInfo } from "./vmcoreinfo.ts";
import {
  checkSize,
  DEFAULT_MAX_BYTES,
  type DmesgOptions,
  type DmesgOutput,
  need,
  readKernel,
} from "./dmesgFormat.ts";

const DESC_ID_MASK = (1n << 62n) - 1n;
const DESC_COMMITTED = 1n;
const DESC_FINALIZED = 2n;
/** Kernel limit: log_buf_len <= 2^31, and count_bits = size_bits - 5. */
const MAX_COUNT_BITS = 30;
const MAX_SIZE_BITS = 31;

function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

function hex(v: bigint): string {
  return "0x" + v.toString(16);
}

/** Append the lockless ring's records to `out`; returns how many records were skipped as inconsistent. */
export function dumpLockless(
  vm: VirtualMemory,
  info: VmcoreInfo,
  opts: DmesgOptions,
  out: DmesgOutput,
): number {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const prbSym = info.requireSymbol("prb");
  const prbAddr = u64(readKernel(vm, prbSym, 8, "the prb pointer"), 0);

  const prbSize = need(info, "SIZE", "printk_ringbuffer");
  checkSize(prbSize, 1 << 16, "struct printk_ringbuffer", prbAddr);
  const prb = readKernel(vm, prbAddr, prbSize, "struct printk_ringbuffer");
  const field = (at: number, len: number, what: string): number => {
    if (at < 0 || at + len > prb.length) {
      throw new VmsiftError(`VMCOREINFO puts ${what} outside SIZE(printk_ringbuffer)=${prbSize}`, {
        file: info.source,
      });
    }
    return at;
  };
  const counter = info.offset("atomic_long_t.counter") ?? 0;

  // Descriptor ring.
  const descRing = need(info, "OFFSET", "printk_ringbuffer.desc_ring");
  const countBits = u32(
    prb,
    field(descRing + need(info, "OFFSET", "prb_desc_ring.count_bits"), 4, "count_bits"),
  );
  if (countBits > MAX_COUNT_BITS) {
    throw new VmsiftError(`printk desc_ring.count_bits ${countBits} is implausible`, { address: prbAddr });
  }
  const count = 2 ** countBits;
  const descSize = need(info, "SIZE", "prb_desc");
  const infoSize = need(info, "SIZE", "printk_info");
  const descsAddr = u64(prb, field(descRing + need(info, "OFFSET", "prb_desc_ring.descs"), 8, "descs"));
  const infosAddr = u64(prb, field(descRing + need(info, "OFFSET", "prb_desc_ring.infos"), 8, "infos"));
  checkSize(descSize * count, maxBytes, "printk descriptor array", descsAddr);
  checkSize(infoSize * count, maxBytes, "printk info array", infosAddr);
  const descs = readKernel(vm, descsAddr, descSize * count, "prb.desc_ring.descs");
  const infos = readKernel(vm, infosAddr, infoSize * count, "prb.desc_ring.infos");

  // Text data ring.
  const textRing = need(info, "OFFSET", "printk_ringbuffer.text_data_ring");
  const sizeBits = u32(
    prb,
    field(textRing + need(info, "OFFSET", "prb_data_ring.size_bits"), 4, "size_bits"),
  );
  if (sizeBits > MAX_SIZE_BITS) {
    throw new VmsiftError(`printk text_data_ring.size_bits ${sizeBits} is implausible`, { address: prbAddr });
  }
  const ringSize = 2 ** sizeBits;
  const dataAddr = u64(prb, field(textRing + need(info, "OFFSET", "prb_data_ring.data"), 8, "data"));
  checkSize(ringSize, maxBytes, "printk text data ring", dataAddr);
  const data = readKernel(vm, dataAddr, ringSize, "prb.text_data_ring.data");

  const tailOff = field(descRing + need(info, "OFFSET", "prb_desc_ring.tail_id") + counter, 8, "tail_id");
  const headOff = field(descRing + need(info, "OFFSET", "prb_desc_ring.head_id") + counter, 8, "head_id");
  const head = u64(prb, headOff) & DESC_ID_MASK;
  let tail = u64(prb, tailOff) & DESC_ID_MASK;

  // Per-record field offsets (checked once against the element sizes).
  const stateOff = need(info, "OFFSET", "prb_desc.state_var") + counter;
  const lposOff = need(info, "OFFSET", "prb_desc.text_blk_lpos");
  const beginOff = lposOff + need(info, "OFFSET", "prb_data_blk_lpos.begin");
  const nextOff = lposOff + need(info, "OFFSET", "prb_data_blk_lpos.next");
  const tsOff = need(info, "OFFSET", "printk_info.ts_nsec");
  const textLenOff = need(info, "OFFSET", "printk_info.text_len");
  const seqOff = info.offset("printk_info.seq");
  const callerOff = opts.callerColumn ? info.offset("printk_info.caller_id") : undefined;
  for (
    const [at, len, what] of [[stateOff, 8, "state_var"], [beginOff, 8, "begin"], [
      nextOff,
      8,
      "next",
    ]] as const
  ) {
    if (at < 0 || at + len > descSize) {
      throw new VmsiftError(`VMCOREINFO puts prb_desc ${what} outside SIZE(prb_desc)`, { file: info.source });
    }
  }
  for (
    const [at, len, what] of [
      [tsOff, 8, "ts_nsec"],
      [textLenOff, 2, "text_len"],
      [seqOff ?? 0, seqOff === undefined ? 0 : 8, "seq"],
      [callerOff ?? 0, callerOff === undefined ? 0 : 4, "caller_id"],
    ] as const
  ) {
    if (at < 0 || at + len > infoSize) {
      throw new VmsiftError(`VMCOREINFO puts printk_info ${what} outside SIZE(printk_info)`, {
        file: info.source,
      });
    }
  }

  const descView = new DataView(descs.buffer);
  const infoView = new DataView(infos.buffer);
  const idxMask = BigInt(count - 1);
  const ringMask = ringSize - 1;

  if (opts.partial && info.symbol("clear_seq") !== undefined) {
    const clearSym = info.requireSymbol("clear_seq");
    let clearSeq = u64(readKernel(vm, clearSym, 8, "clear_seq"), 0);
    if (info.size("latched_seq") !== undefined) {
      // 5.15+: struct latched_seq { seqcount_latch_t latch; u64 val[2]; }, read val[latch & 1].
      const at = clearSym + BigInt(need(info, "OFFSET", "latched_seq.val")) + (clearSeq & 1n) * 8n;
      clearSeq = u64(readKernel(vm, at, 8, "latched clear_seq"), 0);
    }
    const headIdx = Number(head & idxMask);
    if (seqOff !== undefined) {
      // seq and id share their index in the ring (prb_reserve), so the record after a clear is
      // head - (head_seq - clear_seq). makedumpfile computes head rounded down + clear_seq's index, which
      // is the same whenever it terminates (it loops ~2^62 times when the index is past head's).
      const headSeq = infoView.getBigUint64(headIdx * infoSize + seqOff, true);
      if (clearSeq > headSeq) return 0; // cleared after the last record: nothing to print
      const back = headSeq - clearSeq;
      if (back < BigInt(count)) tail = (head - back) & DESC_ID_MASK;
    } else {
      tail = (head - BigInt(headIdx) + (clearSeq & idxMask)) & DESC_ID_MASK;
      if (((head - tail) & DESC_ID_MASK) >= BigInt(count)) tail = (tail - BigInt(count)) & DESC_ID_MASK;
    }
  }

  const dist = (head - tail) & DESC_ID_MASK;
  if (dist >= BigInt(count)) {
    throw new VmsiftError(
      `printk ring is corrupt: tail_id ${hex(tail)} and head_id ${
        hex(head)
      } are more than ${count} ids apart`,
      { address: prbAddr },
    );
  }

  let skipped = 0;
  const n = Number(dist);
  for (let k = 0; k <= n; k++) {
    const id = (tail + BigInt(k)) & DESC_ID_MASK;
    const idx = Number(id & idxMask);
    const d = idx * descSize;
    const sv = descView.getBigUint64(d + stateOff, true);
    if ((sv & DESC_ID_MASK) !== id) continue;
    const state = sv >> 62n;
    if (state !== DESC_COMMITTED && state !== DESC_FINALIZED) continue;
    // Only the low 32 bits matter: the ring is at most 2^31 bytes.
    let begin = descView.getUint32(d + beginOff, true) & ringMask;
    const next = descView.getUint32(d + nextOff, true) & ringMask;
    if (begin === next) continue; // data-less record
    const i = idx * infoSize;
    let textLen = infoView.getUint16(i + textLenOff, true);
    if (begin > next) begin = 0; // wrapped block: data at the start of the ring
    begin += 8; // skip the descriptor id stored in front of the text
    if (next < begin) {
      // makedumpfile would read text_len bytes past the block here; no sane ring has it.
      skipped++;
      continue;
    }
    if (next - begin < textLen) textLen = next - begin;
    const ts = infoView.getBigUint64(i + tsOff, true);
    const caller = callerOff === undefined ? undefined : infoView.getUint32(i + callerOff, true);
    out.record(ts, data.subarray(begin, begin + textLen), caller);
  }
  return skipped;
}
