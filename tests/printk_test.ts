import assert from "node:assert/strict";
import { extractDmesg } from "../core/printk.ts";
import { DmesgError } from "../core/dmesgFormat.ts";
import { VmsiftError } from "../core/errors.ts";
import type { VirtualMemory } from "../core/virtMem.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { haveReal, REAL_DIR, realVmcore } from "./support/fixture.ts";
import { SimpleWalk } from "./support/simpleWalk.ts";

/** Virtual memory made of a few byte regions; a read must fall inside one region. */
class SparseVm implements VirtualMemory {
  readonly regions: { va: bigint; bytes: Uint8Array }[] = [];
  add(va: bigint, size: number): DataView {
    const bytes = new Uint8Array(size);
    this.regions.push({ va, bytes });
    return new DataView(bytes.buffer);
  }
  bytesAt(va: bigint): Uint8Array {
    const r = this.regions.find((r) => r.va === va);
    if (!r) throw new Error("no region");
    return r.bytes;
  }
  vtop(): number | undefined {
    return undefined;
  }
  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    for (const r of this.regions) {
      if (vaddr >= r.va && vaddr + BigInt(out.length) <= r.va + BigInt(r.bytes.length)) {
        const at = Number(vaddr - r.va);
        out.set(r.bytes.subarray(at, at + out.length));
        return true;
      }
    }
    return false;
  }
}

const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

// ---- 5.10+ lockless ring: the Linux 6.1 layout of the real fixture -------------------------------------

const PRB_SYM = 0xffffffff81000000n;
const PRB = 0xffff888000100000n;
const DESCS = 0xffff888000200000n;
const INFOS = 0xffff888000300000n;
const DATA = 0xffff888000400000n;
const CLEAR_SEQ = 0xffffffff81001000n;

const LOCKLESS_INFO = `OSRELEASE=6.1.0-test
SYMBOL(prb)=${PRB_SYM.toString(16)}
SYMBOL(clear_seq)=${CLEAR_SEQ.toString(16)}
SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(printk_ringbuffer.fail)=80
SIZE(prb_desc_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
SIZE(prb_data_blk_lpos)=16
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(printk_info.dev_info)=24
SIZE(prb_data_ring)=32
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(prb_data_ring.head_lpos)=16
OFFSET(prb_data_ring.tail_lpos)=24
SIZE(latched_seq)=24
OFFSET(latched_seq.val)=8
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
`;

const COUNT_BITS = 2; // 4 descriptors
const SIZE_BITS = 8; // 256-byte text ring
const STATE = { reserved: 0n, committed: 1n, finalized: 2n, reusable: 3n };

interface Rec {
  id: bigint;
  state: bigint;
  begin: number; // logical positions
  next: number;
  textLen: number;
  ts: bigint;
  caller?: number;
}

/**
 * A 4-descriptor, 256-byte ring with tail_id 5 and head_id 8: id 5 finalized, text_len 200 clamped to its
 * 16-byte block; id 6 committed, a newline, a byte 0xe9 and a tab; id 7 reserved (skipped though its data
 * exists); id 8 finalized, a block that wraps (begin offset 240, data at offset 0).
 */
function buildLockless(
  opts: { tail?: bigint; head?: bigint; countBits?: number; dataPtr?: bigint; clearSeq?: bigint[] } = {},
) {
  const vm = new SparseVm();
  vm.add(PRB_SYM, 8).setBigUint64(0, PRB, true);
  const prb = vm.add(PRB, 88);
  prb.setUint32(0, opts.countBits ?? COUNT_BITS, true);
  prb.setBigUint64(8, DESCS, true);
  prb.setBigUint64(16, INFOS, true);
  prb.setBigUint64(24, opts.head ?? 8n, true);
  prb.setBigUint64(32, opts.tail ?? 5n, true);
  prb.setUint32(48, SIZE_BITS, true);
  prb.setBigUint64(56, opts.dataPtr ?? DATA, true);
  const descs = vm.add(DESCS, 24 * 4);
  const infos = vm.add(INFOS, 88 * 4);
  const data = vm.add(DATA, 256);
  const dataBytes = vm.bytesAt(DATA);
  const cs = vm.add(CLEAR_SEQ, 24);
  const [latch, v0, v1] = opts.clearSeq ?? [0n, 0n, 0n];
  cs.setBigUint64(0, latch, true);
  cs.setBigUint64(8, v0, true);
  cs.setBigUint64(16, v1, true);

  const put = (r: Rec, text: Uint8Array) => {
    const i = Number(r.id % 4n);
    descs.setBigUint64(i * 24, (r.state << 62n) | r.id, true);
    descs.setBigUint64(i * 24 + 8, BigInt(r.begin), true);
    descs.setBigUint64(i * 24 + 16, BigInt(r.next), true);
    infos.setBigUint64(i * 88, r.id, true); // seq: same index as the id, as in the kernel
    infos.setBigUint64(i * 88 + 8, r.ts, true);
    infos.setUint16(i * 88 + 16, r.textLen, true);
    infos.setUint32(i * 88 + 20, r.caller ?? 0, true);
    let off = r.begin % 256;
    if (off > r.next % 256) off = 0;
    data.setBigUint64(off, r.id, true);
    dataBytes.set(text, off + 8);
  };
  put({
    id: 5n,
    state: STATE.finalized,
    begin: 320,
    next: 344,
    textLen: 200,
    ts: 1_500_000_000n,
    caller: 0x80000001,
  }, enc("hello\x01world"));
  put({
    id: 6n,
    state: STATE.committed,
    begin: 344,
    next: 368,
    textLen: 14,
    ts: 123456_789012_345n,
    caller: 1234,
  }, enc("line1\nline2\xe9\t!"));
  put({ id: 7n, state: STATE.reserved, begin: 368, next: 392, textLen: 9, ts: 1n }, enc("RESERVED!"));
  dataBytes.fill(0x58, 240, 256); // junk where the wrapped block begins: must not be printed
  put(
    { id: 8n, state: STATE.finalized, begin: 496, next: 544, textLen: 20, ts: 2_000_000_000n },
    enc("wrapped-text-block!!"),
  );
  return vm;
}

const LOCKLESS_EXPECTED = "[    1.500000] hello\\x01world\\x00\\x00\\x00\\x00\\x00\n" +
  "[123456.789012] line1\n" + " ".repeat(16) + "line2\\xffffffe9\t!\n" +
  "[    2.000000] wrapped-text-block!!\n";

Deno.test("lockless ring: states, id mismatch, clamping, wrapped block, escapes", () => {
  const r = extractDmesg(buildLockless(), VmcoreInfo.parse(LOCKLESS_INFO));
  assert.equal(r.format, "lockless");
  assert.equal(r.records, 3);
  assert.equal(r.skipped, 0);
  assert.equal(r.text, LOCKLESS_EXPECTED);
  assert.deepEqual(r.bytes, enc(LOCKLESS_EXPECTED));
});

Deno.test("lockless ring: makedumpfile 1.7.5+ caller column", () => {
  const r = extractDmesg(buildLockless(), VmcoreInfo.parse(LOCKLESS_INFO), { callerColumn: true });
  assert.equal(
    r.text,
    "[    1.500000] [      C1] hello\\x01world\\x00\\x00\\x00\\x00\\x00\n" +
      "[123456.789012] [   T1234] line1\n" + " ".repeat(27) + "line2\\xffffffe9\t!\n" +
      "[    2.000000] [      T0] wrapped-text-block!!\n",
  );
});

Deno.test("lockless ring: ids wrapping through the 62-bit id space", () => {
  // Same ring, every id shifted by 2^62 - 8 (mod 2^62, same indexes): tail 2^62 - 3, head 0.
  const shift = (1n << 62n) - 8n;
  const vm = buildLockless({ tail: (5n + shift) % (1n << 62n), head: (8n + shift) % (1n << 62n) });
  const descs = new DataView(vm.bytesAt(DESCS).buffer);
  for (let i = 0; i < 4; i++) {
    const sv = descs.getBigUint64(i * 24, true);
    const id = ((sv & ((1n << 62n) - 1n)) + shift) % (1n << 62n);
    descs.setBigUint64(i * 24, (sv & (3n << 62n)) | id, true);
  }
  const r = extractDmesg(vm, VmcoreInfo.parse(LOCKLESS_INFO));
  assert.equal(r.text, LOCKLESS_EXPECTED);
});

Deno.test("lockless ring: --partial-dmesg reads the latched clear_seq", () => {
  const info = VmcoreInfo.parse(LOCKLESS_INFO);
  // latch odd → val[1] = 6: records from id 6 on (7 is reserved).
  let r = extractDmesg(buildLockless({ clearSeq: [1n, 999n, 6n] }), info, { partial: true });
  assert.equal(r.records, 2);
  assert.equal(r.text, LOCKLESS_EXPECTED.slice(LOCKLESS_EXPECTED.indexOf("[123456")));
  // Cleared after the last record: nothing (makedumpfile 1.7.2 would loop ~2^62 times here).
  r = extractDmesg(buildLockless({ clearSeq: [0n, 9n, 0n] }), info, { partial: true });
  assert.equal(r.records, 0);
  assert.equal(r.text, "");
  // Without partial, clear_seq is ignored.
  r = extractDmesg(buildLockless({ clearSeq: [1n, 999n, 6n] }), info);
  assert.equal(r.records, 3);
});

Deno.test("lockless ring: corruption ends with a VmsiftError naming the address", () => {
  const info = VmcoreInfo.parse(LOCKLESS_INFO);
  const place = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof VmsiftError, String(e));
      return e.place.address;
    }
    assert.fail("no error");
  };
  // head and tail a whole ring apart (a corrupt head_id would otherwise mean ~2^62 iterations).
  assert.equal(place(() => extractDmesg(buildLockless({ head: 1n << 40n }), info)), PRB);
  assert.equal(place(() => extractDmesg(buildLockless({ tail: 9n }), info)), PRB);
  // Absurd ring size: refused before allocating.
  assert.equal(place(() => extractDmesg(buildLockless({ countBits: 40 }), info)), PRB);
  // Text ring not in the dump.
  assert.equal(
    place(() => extractDmesg(buildLockless({ dataPtr: 0xffff888000900000n }), info)),
    0xffff888000900000n,
  );
  // A missing VMCOREINFO key names the key.
  assert.throws(
    () =>
      extractDmesg(buildLockless(), VmcoreInfo.parse(LOCKLESS_INFO.replace(/^SIZE\(prb_desc\)=.*\n/m, ""))),
    /SIZE\(prb_desc\)/,
  );
});

Deno.test("lockless ring: a descriptor holding another id is skipped", () => {
  const vm = buildLockless();
  const descs = new DataView(vm.bytesAt(DESCS).buffer);
  descs.setBigUint64(1 * 24, (STATE.finalized << 62n) | 1n, true); // slot of id 5 still holds id 1
  const r = extractDmesg(vm, VmcoreInfo.parse(LOCKLESS_INFO));
  assert.equal(r.records, 2);
  assert.equal(r.text, LOCKLESS_EXPECTED.slice(LOCKLESS_EXPECTED.indexOf("[123456")));
});

Deno.test("lockless ring: a block shorter than its id is skipped, not read past", () => {
  const vm = buildLockless();
  const descs = new DataView(vm.bytesAt(DESCS).buffer);
  descs.setBigUint64(2 * 24 + 16, 348n, true); // id 6: next = begin + 4
  const r = extractDmesg(vm, VmcoreInfo.parse(LOCKLESS_INFO));
  assert.equal(r.records, 2);
  assert.equal(r.skipped, 1);
});

// ---- 3.5-5.9 structured log ---------------------------------------------------------------------------

const LOG_BUF_SYM = 0xffffffff82000000n;
const LOG_BUF = 0xffff888000500000n;

function structuredInfo(extra = ""): VmcoreInfo {
  return VmcoreInfo.parse(`OSRELEASE=5.4.0-test
SYMBOL(log_buf)=ffffffff82000000
SYMBOL(log_buf_len)=ffffffff82000010
SYMBOL(log_first_idx)=ffffffff82000020
SYMBOL(clear_idx)=ffffffff82000030
SYMBOL(log_next_idx)=ffffffff82000040
SIZE(printk_log)=16
OFFSET(printk_log.ts_nsec)=0
OFFSET(printk_log.len)=8
OFFSET(printk_log.text_len)=10
OFFSET(printk_log.dict_len)=12
${extra}`);
}

/**
 * 128-byte log_buf: record A at 48 (with a dict), the end-of-buffer marker (len 0) at 80, record B at 0
 * (a 0x7f byte and a newline); log_first_idx 48, log_next_idx 32.
 */
function buildStructured(o: { first?: number; next?: number; aLen?: number } = {}) {
  const vm = new SparseVm();
  const syms = vm.add(LOG_BUF_SYM, 0x48);
  syms.setBigUint64(0, LOG_BUF, true);
  syms.setInt32(0x10, 128, true);
  syms.setUint32(0x20, o.first ?? 48, true);
  syms.setUint32(0x30, 0, true);
  syms.setUint32(0x40, o.next ?? 32, true);
  const buf = vm.add(LOG_BUF, 128);
  const bytes = vm.bytesAt(LOG_BUF);
  const rec = (at: number, ts: bigint, len: number, text: string, dict: string) => {
    buf.setBigUint64(at, ts, true);
    buf.setUint16(at + 8, len, true);
    buf.setUint16(at + 10, text.length, true);
    buf.setUint16(at + 12, dict.length, true);
    bytes.set(enc(text + dict), at + 16);
  };
  rec(48, 3_000_000_000n, o.aLen ?? 32, "first", "DEV=x");
  rec(0, 4_000_001_000n, 32, "sec\x7fond\nx", "");
  return vm;
}

const STRUCTURED_EXPECTED = "[    3.000000] first\n[    4.000001] sec\\x7fond\n" + " ".repeat(15) + "x\n";

Deno.test("structured log: records, end-of-buffer marker, dict not printed", () => {
  const r = extractDmesg(buildStructured(), structuredInfo());
  assert.equal(r.format, "structured");
  assert.equal(r.records, 2);
  assert.equal(r.text, STRUCTURED_EXPECTED);
  // --partial-dmesg starts at clear_idx (0): record B only.
  const p = extractDmesg(buildStructured(), structuredInfo(), { partial: true });
  assert.equal(p.text, STRUCTURED_EXPECTED.slice(STRUCTURED_EXPECTED.indexOf("[    4")));
  // Pre-3.11 name of the struct.
  const old = extractDmesg(
    buildStructured(),
    VmcoreInfo.parse(structuredInfo().text.replaceAll("printk_log", "log")),
  );
  assert.equal(old.text, STRUCTURED_EXPECTED);
});

Deno.test("structured log: cycles and indexes outside log_buf end with DmesgError", () => {
  // log_next_idx never reached: 48 → 80 (marker) → 32 (zeros: another marker) → 32 ... a cycle.
  try {
    extractDmesg(buildStructured({ next: 100 }), structuredInfo());
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof DmesgError, String(e));
    assert.match(e.message, /cycle/);
    assert.equal(e.place.address, LOG_BUF + 32n);
    // What makedumpfile keeps: everything up to and through the cycle once.
    assert.equal(e.partial.records, 3);
  }
  // Record A's len pointing past the last header position.
  assert.throws(
    () => extractDmesg(buildStructured({ aLen: 72 }), structuredInfo()),
    (e: unknown) =>
      e instanceof DmesgError && /outside/.test(e.message) && e.place.address === LOG_BUF + 120n,
  );
  assert.throws(() => extractDmesg(buildStructured({ first: 127 }), structuredInfo()), DmesgError);
});

// ---- < 3.5 plain ring ---------------------------------------------------------------------------------

Deno.test("plain ring: raw bytes, oldest first, log_end width by version", () => {
  const build = (logEnd: bigint, wide: boolean) => {
    const vm = new SparseVm();
    const syms = vm.add(LOG_BUF_SYM, 0x30);
    syms.setBigUint64(0, LOG_BUF, true);
    syms.setInt32(0x10, 16, true);
    if (wide) syms.setBigUint64(0x20, logEnd, true);
    else syms.setUint32(0x20, Number(logEnd), true);
    vm.add(LOG_BUF, 16);
    vm.bytesAt(LOG_BUF).set(enc("<6>abc\n<4>d\xffefg\n"));
    return vm;
  };
  const info = (rel: string) =>
    VmcoreInfo.parse(`OSRELEASE=${rel}
SYMBOL(log_buf)=ffffffff82000000
SYMBOL(log_buf_len)=ffffffff82000010
SYMBOL(log_end)=ffffffff82000020
`);
  let r = extractDmesg(build(7n, false), info("2.6.32-5-amd64"));
  assert.equal(r.format, "plain");
  assert.equal(r.text, "<6>abc\n");
  assert.equal(r.records, 1);
  r = extractDmesg(build(19n, false), info("2.6.32")); // index 19 & 15 = 3
  assert.equal(r.text, "abc\n<4>d\xffefg\n<6>");
  assert.equal(r.bytes[8], 0xff);
  // 2.6.24: unsigned long log_end; read as 32 bits it would be 7 (< log_buf_len) and give "<6>abc\n".
  r = extractDmesg(build(0x1_0000_0007n, true), info("2.6.24"));
  assert.equal(r.text, "<4>d\xffefg\n<6>abc\n");
});

// ---- the real Linux 6.1 dump, against makedumpfile 1.7.2's dmesg.txt -----------------------------------

Deno.test({
  name: "real 6.1 vmcore: byte-identical to makedumpfile 1.7.2 --dump-dmesg",
  ignore: !haveReal(),
  fn: async () => {
    const core = ElfCore.open(await realVmcore());
    try {
      const note = core.vmcoreinfoNote;
      assert.ok(note);
      const info = VmcoreInfo.parse(new TextDecoder().decode(note.desc));
      const r = extractDmesg(new SimpleWalk(core, info), info);
      const expected = Deno.readFileSync(`${REAL_DIR}/dmesg.txt`);
      assert.equal(r.format, "lockless");
      assert.equal(r.bytes.length, expected.length);
      assert.deepEqual(r.bytes, expected);
      assert.equal(r.text, new TextDecoder().decode(expected));
      assert.equal(r.records, 381); // 384 lines, 3 of them continuation lines of multi-line records
      // --partial-dmesg: nobody cleared the log in this guest, so the same output (checked with 1.7.2).
      assert.deepEqual(extractDmesg(new SimpleWalk(core, info), info, { partial: true }).bytes, expected);
    } finally {
      core.close();
    }
  },
});

// ---- opt-in: corrupted copy of the real dump, compared with the installed makedumpfile ------------------

/**
 * Copy the real vmcore, then edit its printk ring through the page tables: every odd byte class in one
 * record's text, text_len 0xffff on another, reserved/reusable/committed states, a wrapped block with a
 * newline, a data-less record. makedumpfile (1.7.2 in Debian 12) must then print exactly what we print.
 * Opt-in (VMSIFT_MAKEDUMPFILE_ORACLE=1): it writes a 151 MB copy to the fixture cache.
 */
async function mutatedRealVmcore(): Promise<string> {
  const { CACHE_DIR } = await import("./support/fixture.ts");
  const dst = `${CACHE_DIR}/vmcore-printk-mutated.elf`;
  Deno.copyFileSync(await realVmcore(), dst);
  const core = ElfCore.open(dst);
  try {
    const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc));
    const vm = new SimpleWalk(core, info);
    const rd = (va: bigint, n: number) => {
      const b = new Uint8Array(n);
      assert.ok(vm.readVirt(va, b));
      return new DataView(b.buffer);
    };
    const prb = rd(rd(info.requireSymbol("prb"), 8).getBigUint64(0, true), 88);
    const count = 1n << BigInt(prb.getUint32(0, true));
    const descs = prb.getBigUint64(8, true), infos = prb.getBigUint64(16, true);
    const tail = prb.getBigUint64(32, true);
    const size = 1n << BigInt(prb.getUint32(48, true));
    const data = prb.getBigUint64(56, true);
    const f = Deno.openSync(dst, { read: true, write: true });
    const write = (va: bigint, bytes: Uint8Array) => {
      for (let i = 0; i < bytes.length; i++) {
        const pa = vm.vtop(va + BigInt(i))!;
        const s = core.segments.find((s) => pa >= s.paddr && pa < s.paddr + s.memSize)!;
        f.seekSync(s.fileOffset + pa - s.paddr, Deno.SeekMode.Start);
        f.writeSync(bytes.subarray(i, i + 1));
      }
    };
    const desc = (id: bigint) => descs + (id % count) * 24n, inf = (id: bigint) => infos + (id % count) * 88n;
    const u64 = (v: bigint) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      return b;
    };
    const begin3 = rd(desc(tail + 3n) + 8n, 8).getBigUint64(0, true) % size;
    write(data + begin3 + 8n, Uint8Array.of(1, 0xe9, 9, 0xd, 0xb, 0xc, 0x7f, 0xff, 0, 0x80, 0x1b, 0xa, 0x41));
    write(inf(tail + 5n) + 16n, Uint8Array.of(0xff, 0xff));
    for (const [k, st] of [[7n, 0n], [8n, 3n], [9n, 1n]] as const) {
      const sv = rd(desc(tail + k), 8).getBigUint64(0, true);
      write(desc(tail + k), u64((sv & ((1n << 62n) - 1n)) | (st << 62n)));
    }
    const text = new TextEncoder().encode("WRAPPED BLOCK TEXT\nsecond line");
    const lap = 5n * size;
    write(desc(tail + 11n) + 8n, u64(lap + size - 16n));
    write(desc(tail + 11n) + 16n, u64(lap + size + 16n + BigInt(text.length)));
    write(data, u64(tail + 11n));
    write(data + 8n, text);
    write(inf(tail + 11n) + 16n, Uint8Array.of(text.length, 0));
    write(desc(tail + 13n) + 16n, u64(rd(desc(tail + 13n) + 8n, 8).getBigUint64(0, true)));
    f.close();
  } finally {
    core.close();
  }
  return dst;
}

Deno.test({
  name: "corrupted real ring: identical to the installed makedumpfile --dump-dmesg",
  ignore: !haveReal() || Deno.env.get("VMSIFT_MAKEDUMPFILE_ORACLE") !== "1",
  fn: async () => {
    const path = await mutatedRealVmcore();
    const outFile = `${path}.dmesg`;
    try {
      Deno.removeSync(outFile);
    } catch { /* absent */ }
    const run = await new Deno.Command("makedumpfile", { args: ["--dump-dmesg", path, outFile] }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const core = ElfCore.open(path);
    try {
      const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc));
      const ours = extractDmesg(new SimpleWalk(core, info), info);
      assert.match(ours.text, /\\x01\\xffffffe9\t\r\v\f\\x7f\\xffffffff\\x00\\xffffff80\\x1b\n {15}A/);
      assert.deepEqual(ours.bytes, Deno.readFileSync(outFile));
    } finally {
      core.close();
      Deno.removeSync(path);
      Deno.removeSync(outFile);
    }
  },
});
