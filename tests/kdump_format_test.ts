/**
 * kdump-compressed format: layout numbers, every header field at the spec's byte offsets
 * (kdump-reference.md 4.1, 4.2, 13.1), writer → reader → verify round trips, interrupted writes and
 * corrupt inputs. The dumps are built here from a tiny ELF vmcore written by the test itself.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import { VmsiftError } from "../core/errors.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { FileSink } from "../io/fileSink.ts";
import { zlibCodec } from "../formats/codecs/zlib.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { kdumpLayout } from "../formats/kdump/layout.ts";
import {
  decodeMainHeader,
  decodeSubHeader,
  encodeMainHeader,
  encodeSubHeader,
  makeUtsname,
} from "../formats/kdump/header.ts";
import { type KdumpSource, writeKdump } from "../formats/kdump/writer.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { describeDump } from "../formats/kdump/info.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";
import type { Sink } from "../io/sink.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

const PS = 4096;
const VMCOREINFO = "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n";

// ---------------------------------------------------------------------------------------------------------
// A tiny ELF vmcore: segment A = pfns 0..15, hole 16..19, segment B = pfns 20..30 with a last half page.

const SEG_A = { paddr: 0, size: 16 * PS };
const SEG_B = { paddr: 20 * PS, size: 10 * PS + 2048 };
const MAX_MAPNR = 31; // ceil(end of B / PS); not a multiple of 8 on purpose
const ZERO_PFNS = new Set([1, 2, 3, 9, 22]);
const RANDOM_PFNS = new Set([4, 5, 24]); // incompressible: stored raw even with zlib

function pageContent(pfn: number): Uint8Array {
  const p = new Uint8Array(PS);
  if (ZERO_PFNS.has(pfn)) return p;
  if (RANDOM_PFNS.has(pfn)) {
    let x = pfn * 2654435761 >>> 0;
    for (let i = 0; i < PS; i++) {
      x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0;
      p[i] = x & 0xff;
    }
    return p;
  }
  for (let i = 0; i < PS; i++) p[i] = (i * 7 + pfn) % 13 === 0 ? pfn & 0xff : 0;
  p[0] = pfn + 1; // never zero
  return p;
}

function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const n = new TextEncoder().encode(name + "\0");
  const pad = (x: number) => (x + 3) & ~3;
  const b = new Uint8Array(12 + pad(n.length) + pad(desc.length));
  const dv = new DataView(b.buffer);
  dv.setUint32(0, n.length, true);
  dv.setUint32(4, desc.length, true);
  dv.setUint32(8, type, true);
  b.set(n, 12);
  b.set(desc, 12 + pad(n.length));
  return b;
}

/** Write the tiny vmcore; returns the path. */
function writeTinyVmcore(dir: string): string {
  const notes = [
    note("CORE", 1, new Uint8Array(336)),
    note("VMCOREINFO", 0, new TextEncoder().encode(VMCOREINFO)),
  ];
  const noteBytes = new Uint8Array(notes.reduce((s, n) => s + n.length, 0));
  let q = 0;
  for (const n of notes) noteBytes.set(n, q), q += n.length;
  const phnum = 3;
  const noteOff = 64 + phnum * 56;
  const aOff = 0x1000;
  const bOff = aOff + SEG_A.size;
  const total = bOff + SEG_B.size;
  const f = new Uint8Array(total);
  const dv = new DataView(f.buffer);
  f.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 4, true);
  dv.setUint16(18, 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  const ph = (i: number, type: number, off: number, paddr: number, size: number) => {
    const b = 64 + i * 56;
    dv.setUint32(b, type, true);
    dv.setBigUint64(b + 8, BigInt(off), true);
    dv.setBigUint64(b + 16, BigInt(paddr) + 0xffff888000000000n, true);
    dv.setBigUint64(b + 24, BigInt(paddr), true);
    dv.setBigUint64(b + 32, BigInt(size), true);
    dv.setBigUint64(b + 40, BigInt(size), true);
  };
  ph(0, 4, noteOff, 0, noteBytes.length);
  ph(1, 1, aOff, SEG_A.paddr, SEG_A.size);
  ph(2, 1, bOff, SEG_B.paddr, SEG_B.size);
  f.set(noteBytes, noteOff);
  for (let pfn = 0; pfn < 16; pfn++) f.set(pageContent(pfn), aOff + pfn * PS);
  for (let pfn = 20; pfn < 31; pfn++) {
    const c = pageContent(pfn);
    const at = bOff + (pfn - 20) * PS;
    f.set(c.subarray(0, Math.min(PS, total - at)), at);
  }
  const path = `${dir}/tiny.vmcore`;
  Deno.writeFileSync(path, f);
  return path;
}

/** KdumpSource for the tiny vmcore; `exclude` pfns are dropped from bitmap2. */
function tinySource(core: ElfCore, dumpLevel: number, exclude: number[] = []): KdumpSource {
  const bitmap1 = new MemBitmap(MAX_MAPNR);
  bitmap1.setRange(0, 16);
  bitmap1.setRange(20, 31);
  const bitmap2 = new MemBitmap(MAX_MAPNR);
  bitmap2.bytes.set(bitmap1.bytes);
  for (const p of exclude) bitmap2.clear(p);
  const vi = core.vmcoreinfoNote!;
  return {
    mem: core,
    bitmap1,
    bitmap2,
    maxMapnr: MAX_MAPNR,
    pageSize: PS,
    noteBytes: core.noteSegment.bytes,
    vmcoreinfoOffsetInNotes: vi.descFileOffset - core.noteSegment.fileOffset,
    vmcoreinfoSize: vi.desc.length,
    utsname: makeUtsname(["Linux", "tiny", "6.1.0-test", "#1 SMP", "x86_64", "(none)"]),
    crashTime: 1700000000,
    nrCpus: core.nrCpus,
    physBase: 0xffffffffe3c00000n,
    dumpLevel,
  };
}

interface Built {
  dir: string;
  vmcore: string;
  dump: string;
  result: ReturnType<typeof writeKdump>;
}

function build(level: number, codec: PageCodec | null, exclude: number[] = [], cacheSize?: number): Built {
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-kdump-" });
  const vmcore = writeTinyVmcore(dir);
  const core = ElfCore.open(vmcore);
  const dump = `${dir}/out.kdump`;
  const sink = FileSink.create(dump);
  try {
    const result = writeKdump(tinySource(core, level, exclude), { codec, sink, cacheSize });
    sink.close();
    return { dir, vmcore, dump, result };
  } catch (e) {
    sink.abort();
    throw e;
  } finally {
    core.close();
  }
}

// ---------------------------------------------------------------------------------------------------------

Deno.test("kdump layout: numbers of the real fixture and a huge machine", () => {
  // makedumpfile -d 0 of real-6.1: file size 134892800 = data offset 20480 + 32736 * (24 + 4096).
  const L = kdumpLayout({ maxMapnr: 0x8000, noteSize: 4936, blockSize: 4096, numDumpable: 32736 });
  assert.equal(L.subHdrSize, 2);
  assert.equal(L.bitmapBlocks, 2);
  assert.equal(L.offsetNote, 4200);
  assert.equal(L.offsetBitmap1, 3 * 4096);
  assert.equal(L.offsetBitmap2, 4 * 4096);
  assert.equal(L.dataOffset, 20480);
  assert.equal(L.pageDataOffset + 32736 * 4096, 134892800);
  // 4 TiB machine: 2^30 pfns, 128 MiB per bitmap; notes of exactly 4096-104 bytes fit one block.
  const H = kdumpLayout({ maxMapnr: 2 ** 30, noteSize: 4096 - 104, blockSize: 4096, numDumpable: 5 });
  assert.equal(H.subHdrSize, 1);
  assert.equal(H.bitmapBlocksEach, 2 ** 27 / 4096);
  assert.equal(H.dataOffset, (1 + 1 + 2 * 32768) * 4096);
  assert.equal(
    kdumpLayout({ maxMapnr: 1, noteSize: 4096 - 103, blockSize: 4096, numDumpable: 0 }).subHdrSize,
    2,
  );
  assert.throws(() => kdumpLayout({ maxMapnr: 8, noteSize: 0, blockSize: 3000, numDumpable: 0 }), RangeError);
});

Deno.test("kdump header: encode/decode, 32-bit fields are truncated copies", () => {
  const big = 2 ** 32 + 5;
  const mh = encodeMainHeader({
    signature: "KDUMP   ",
    headerVersion: 6,
    utsname: makeUtsname(["Linux"]),
    timestampSec: 5,
    timestampUsec: 0,
    status: 0x21,
    blockSize: 4096,
    subHdrSize: 2,
    bitmapBlocks: 64,
    maxMapnr: big,
    totalRamBlocks: 0,
    deviceBlocks: 0,
    writtenBlocks: 0,
    currentCpu: 0,
    nrCpus: 8,
  });
  assert.equal(mh.length, 464);
  const dv = new DataView(mh.buffer);
  assert.equal(dv.getUint32(440, true), 0xffffffff);
  assert.equal(decodeMainHeader(mh).status, 0x21);
  const sh = encodeSubHeader({
    physBase: -473956352n,
    dumpLevel: 31,
    split: 1,
    startPfn: big,
    endPfn: big + 1,
    offsetVmcoreinfo: 1,
    sizeVmcoreinfo: 2,
    offsetNote: 4200,
    sizeNote: 3,
    offsetEraseinfo: 0,
    sizeEraseinfo: 0,
    startPfn64: big,
    endPfn64: big + 1,
    maxMapnr64: big + 2,
  });
  assert.equal(sh.length, 104);
  const s = decodeSubHeader(sh);
  assert.equal(s.physBase, 0xffffffffe3c00000n);
  assert.equal(s.startPfn, 5);
  assert.equal(s.endPfn, 6);
  assert.equal(s.startPfn64, big);
  assert.equal(s.maxMapnr64, big + 2);
});

Deno.test("kdump writer: every header field at the spec's byte offsets (level 1, zlib)", () => {
  const b = build(1, zlibCodec);
  try {
    const f = Deno.readFileSync(b.dump);
    const dv = new DataView(f.buffer);
    const td = new TextDecoder();
    const u32 = (o: number) => dv.getUint32(o, true);
    const i32 = (o: number) => dv.getInt32(o, true);
    const u64 = (o: number) => Number(dv.getBigUint64(o, true));
    // Main header (4.1).
    assert.equal(td.decode(f.subarray(0, 8)), "KDUMP   ");
    assert.equal(i32(8), 6);
    assert.equal(td.decode(f.subarray(12, 17)), "Linux");
    assert.equal(td.decode(f.subarray(12 + 4 * 65, 12 + 4 * 65 + 6)), "x86_64");
    assert.ok(f.subarray(402, 408).every((x) => x === 0));
    assert.equal(u64(408), 1700000000);
    assert.equal(u64(416), 0);
    assert.equal(u32(424), 0x1);
    assert.equal(i32(428), 4096);
    const noteSize = ElfCoreNoteSize(b.vmcore);
    const subHdr = Math.ceil((104 + noteSize) / 4096);
    assert.equal(i32(432), subHdr);
    assert.equal(u32(436), 2);
    assert.equal(u32(440), MAX_MAPNR);
    for (const o of [444, 448, 452, 456]) assert.equal(u32(o), 0);
    assert.equal(i32(460), 1);
    assert.ok(f.subarray(464, 4096).every((x) => x === 0));
    // Sub header (4.2) at 4096.
    assert.equal(dv.getBigUint64(4096, true), 0xffffffffe3c00000n);
    assert.equal(i32(4096 + 8), 1);
    assert.equal(i32(4096 + 12), 0);
    assert.equal(u64(4096 + 16), 0);
    assert.equal(u64(4096 + 24), 0);
    const offVi = u64(4096 + 32);
    assert.equal(td.decode(f.subarray(offVi, offVi + u64(4096 + 40))), VMCOREINFO);
    assert.equal(u64(4096 + 48), 4200);
    assert.equal(u64(4096 + 56), noteSize);
    assert.equal(u64(4096 + 64), 0);
    assert.equal(u64(4096 + 72), 0);
    assert.equal(u64(4096 + 80), 0);
    assert.equal(u64(4096 + 88), 0);
    assert.equal(u64(4096 + 96), MAX_MAPNR);
    // Notes verbatim at 4200.
    const vm = Deno.readFileSync(b.vmcore);
    assert.deepEqual(f.subarray(4200, 4200 + noteSize), vm.subarray(64 + 3 * 56, 64 + 3 * 56 + noteSize));
    // Bitmaps: pfns 0-15 and 20-30; bit 31 (beyond max_mapnr) clear; rest of the block zero.
    const bm1 = (1 + subHdr) * 4096, bm2 = bm1 + 4096;
    assert.deepEqual([...f.subarray(bm1, bm1 + 5)], [0xff, 0xff, 0xf0, 0x7f, 0]);
    assert.deepEqual([...f.subarray(bm2, bm2 + 4)], [0xff, 0xff, 0xf0, 0x7f]);
    assert.ok(f.subarray(bm1 + 4, bm2).every((x) => x === 0));
    // Descriptors: 27 pages; the shared zero page first in the data.
    const dataOffset = bm2 + 4096;
    const n = 27;
    const pdo = dataOffset + n * 24;
    let expect = pdo + 4096;
    for (let i = 0, pfn = 0; pfn < MAX_MAPNR; pfn++) {
      if (pfn >= 16 && pfn < 20) continue;
      const d = dataOffset + i++ * 24;
      const off = u64(d), size = u32(d + 8), flags = u32(d + 12);
      assert.equal(u64(d + 16), 0);
      if (ZERO_PFNS.has(pfn)) {
        assert.deepEqual([off, size, flags], [pdo, 4096, 0], `zero pfn ${pfn}`);
        continue;
      }
      assert.equal(off, expect, `pfn ${pfn} data follows the previous page`);
      if (RANDOM_PFNS.has(pfn)) assert.deepEqual([size, flags], [4096, 0]);
      else assert.ok(flags === 1 && size < 4096, `pfn ${pfn} compressed`);
      expect += size;
    }
    assert.ok(f.subarray(pdo, pdo + 4096).every((x) => x === 0));
    assert.equal(f.length, expect);
    assert.equal(b.result.fileSize, expect);
    assert.deepEqual(
      { ...b.result, fileSize: 0 },
      { dumpablePages: 27, zeroPages: 5, rawPages: 3, compressedPages: 19, fileSize: 0 },
    );
  } finally {
    Deno.removeSync(b.dir, { recursive: true });
  }
});

function ElfCoreNoteSize(path: string): number {
  const c = ElfCore.open(path);
  try {
    return c.noteSegment.bytes.length;
  } finally {
    c.close();
  }
}

for (const level of [0, 1, 31]) {
  for (const codec of [null, zlibCodec]) {
    Deno.test(`kdump round trip: level ${level}, ${codec?.name ?? "raw"}: reader and verify agree`, () => {
      const exclude = level === 31 ? [6, 7, 25] : [];
      const b = build(level, codec, exclude);
      try {
        const rep = verifyDump(b.dump, b.vmcore);
        assert.deepEqual(rep.problems, []);
        assert.ok(rep.ok);
        assert.equal(rep.counts.descriptors, 27 - exclude.length);
        assert.equal(rep.counts.pagesCorrect, 27 - exclude.length);
        assert.equal(rep.counts.zeroPages, level & 1 ? 5 : 0);
        assert.match(rep.summary, /^ok/);
        const k = KdumpFile.open(b.dump);
        try {
          assert.equal(k.numDumpable, 27 - exclude.length);
          assert.equal(k.vmcoreinfo, VMCOREINFO);
          const page = new Uint8Array(PS);
          for (let pfn = 0; pfn < MAX_MAPNR; pfn++) {
            if (pfn >= 16 && pfn < 20) {
              assert.throws(() => k.readPage(pfn, page), /not in memory/);
              continue;
            }
            if (exclude.includes(pfn)) {
              assert.throws(() => k.readPage(pfn, page), /excluded/);
              continue;
            }
            k.readPage(pfn, page);
            const want = pageContent(pfn);
            if (pfn === 30) want.fill(0, 2048); // the half page past the segment reads as zeros
            assert.deepEqual(page, want, `pfn ${pfn}`);
          }
          // readPhys across a page boundary, a hole and an excluded page.
          const two = new Uint8Array(100);
          assert.ok(k.readPhys(11 * PS - 50, two));
          assert.deepEqual(
            two,
            new Uint8Array([...pageContent(10).subarray(PS - 50), ...pageContent(11).subarray(0, 50)]),
          );
          assert.equal(k.readPhys(16 * PS, two), false);
          if (exclude.length) assert.equal(k.readPhys(6 * PS, two), false);
          assert.deepEqual(k.segments.map((s) => [s.paddr / PS, s.memSize / PS]), [[0, 16], [20, 11]]);
        } finally {
          k.close();
        }
        if (exclude.length) {
          const kz = KdumpFile.open(b.dump, { zeroExcluded: true });
          const two = new Uint8Array(100).fill(1);
          assert.ok(kz.readPhys(6 * PS, two));
          assert.ok(two.every((x) => x === 0));
          kz.close();
        }
        const info = describeDump(b.dump);
        assert.equal(info.descriptors, 27 - exclude.length);
        assert.equal(info.zeroPages, level & 1 ? 5 : 0);
        assert.match(info.text, /KDUMP/);
      } finally {
        Deno.removeSync(b.dir, { recursive: true });
      }
    });
  }
}

Deno.test("kdump verify: detects changed page data, bad bitmaps and notes", () => {
  const b = build(1, zlibCodec);
  try {
    const k = KdumpFile.open(b.dump);
    const pdo = k.layout.pageDataOffset;
    const bm1 = k.offsetBitmap1;
    const idx4 = k.descIndex(4); // raw page
    const idx8 = k.descIndex(8); // compressed page
    const d4 = { ...k.desc(idx4) }, d8 = { ...k.desc(idx8) };
    k.close();
    assert.equal(d4.flags, 0);
    assert.equal(d8.flags, 1);
    const orig = Deno.readFileSync(b.dump);
    const mutate = (fn: (f: Uint8Array) => void) => {
      const f = orig.slice();
      fn(f);
      Deno.writeFileSync(b.dump, f);
      return verifyDump(b.dump, b.vmcore);
    };
    let r = mutate((f) => f[d4.offset + 100] ^= 1);
    assert.equal(r.ok, false);
    assert.match(r.problems.join("\n"), /pfn 0x4 .*differs/);
    r = mutate((f) => f[d8.offset + 5] ^= 0x55);
    assert.match(r.problems.join("\n"), /pfn 0x8 .*(decompress|differs)/);
    r = mutate((f) => f[pdo + 7] = 1); // the shared zero page
    assert.match(r.problems.join("\n"), /pfn 0x1 .*differs/);
    r = mutate((f) => f[bm1 + 2] |= 1); // pfn 16 is a hole
    assert.match(r.problems.join("\n"), /bitmap 1 differs .* pfn 0x10/);
    r = mutate((f) => f[4200 + 30] ^= 1);
    assert.match(r.problems.join("\n"), /notes differ/);
  } finally {
    Deno.removeSync(b.dir, { recursive: true });
  }
});

/** A sink that fails (like ENOSPC) once `limit` bytes of page area have been written. */
class FailingSink implements Sink {
  readonly label: string;
  written = 0;
  constructor(readonly inner: FileSink, readonly from: number, readonly limit: number) {
    this.label = inner.label;
  }
  write(offset: number, bytes: Uint8Array): void {
    if (offset >= this.from) {
      if (this.written + bytes.length > this.limit) throw new Error("No space left on device");
      this.written += bytes.length;
    }
    this.inner.write(offset, bytes);
  }
  rewrite(offset: number, bytes: Uint8Array): void {
    this.inner.rewrite(offset, bytes);
  }
  finish(size: number): void {
    this.inner.finish(size);
  }
  close(): void {
    this.inner.close();
  }
  abort(): void {
    this.inner.abort();
  }
}

Deno.test("kdump writer: an interrupted write leaves matched pairs; verify says incomplete, all correct", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-kdump-" });
  try {
    const vmcore = writeTinyVmcore(dir);
    const core = ElfCore.open(vmcore);
    const dump = `${dir}/cut.kdump`;
    const inner = FileSink.create(dump);
    const src = tinySource(core, 0);
    const dataOffset =
      kdumpLayout({ maxMapnr: MAX_MAPNR, noteSize: src.noteBytes.length, blockSize: PS, numDumpable: 27 })
        .dataOffset;
    // Caches of 2 pages: pairs of (descriptors, data) flushes; fail during the 5th data flush.
    const sink = new FailingSink(inner, dataOffset, 4 * (2 * PS + 48) + 100);
    assert.throws(() => writeKdump(src, { codec: null, sink, cacheSize: 2 * PS }), /No space/);
    core.close();
    // What makedumpfile does on ENOSPC with no more levels: mark the header incomplete.
    const st = new Uint8Array(4);
    new DataView(st.buffer).setUint32(0, 0x8, true);
    inner.rewrite(424, st);
    inner.close();
    const rep = verifyDump(dump, vmcore);
    assert.deepEqual(rep.problems, []);
    assert.ok(rep.incomplete);
    assert.equal(rep.counts.pagesPresent, 8);
    assert.equal(rep.counts.pagesNotWritten, 19);
    assert.match(rep.summary, /^incomplete, 8 pages present, all correct/);
    const k = KdumpFile.open(dump);
    assert.throws(() => k.readPage(30, new Uint8Array(PS)), /not written/);
    k.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("kdump reader: corrupt inputs give VmsiftError with file and offset", () => {
  const b = build(1, zlibCodec);
  try {
    const orig = Deno.readFileSync(b.dump);
    const bad = `${b.dir}/bad.kdump`;
    const expectError = (f: Uint8Array, re: RegExp, offset?: number) => {
      Deno.writeFileSync(bad, f);
      assert.throws(() => KdumpFile.open(bad), (e: unknown) => {
        assert.ok(e instanceof VmsiftError, String(e));
        assert.equal(e.place.file, bad);
        assert.match(e.message, re);
        if (offset !== undefined) assert.equal(e.place.offset, offset);
        return true;
      });
      const r = verifyDump(bad, b.vmcore);
      assert.equal(r.ok, false);
    };
    const set32 = (f: Uint8Array, o: number, v: number) => new DataView(f.buffer).setUint32(o, v, true);
    expectError(orig.slice(0, 100), /only 100 bytes/, 0);
    expectError(orig.slice(0, 3000), /sub header/, 4096);
    let f = orig.slice();
    f[0] = 0x4a;
    expectError(f, /signature/, 0);
    f = orig.slice();
    set32(f, 8, 0);
    expectError(f, /header_version/, 8);
    f = orig.slice();
    set32(f, 428, 3000);
    expectError(f, /block_size/, 428);
    f = orig.slice();
    set32(f, 436, 1);
    expectError(f, /bitmap_blocks 1 is too small/, 436);
    f = orig.slice();
    set32(f, 436, 4000);
    expectError(f, /beyond the end of the file/);
    const k = KdumpFile.open(b.dump);
    const dataOffset = k.layout.dataOffset;
    k.close();
    expectError(orig.slice(0, dataOffset + 24 * 3), /run past the end/, dataOffset);
    f = orig.slice();
    f.set(new TextEncoder().encode("makedumpfile\0\0\0\0"), 0);
    expectError(f, /flattened/);
  } finally {
    Deno.removeSync(b.dir, { recursive: true });
  }
});

Deno.test("FileSink: 0600, refuses an existing file, abort removes it", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-sink-" });
  try {
    const p = `${dir}/o`;
    const s = FileSink.create(p, { bufferSize: 8 });
    s.write(0, new Uint8Array([1, 2, 3]));
    s.write(3, new Uint8Array([4, 5, 6, 7, 8, 9, 10, 11, 12]));
    s.write(20, new Uint8Array([9]));
    s.rewrite(1, new Uint8Array([0xaa]));
    s.finish(22);
    s.close();
    assert.deepEqual([...Deno.readFileSync(p)], [
      1,
      0xaa,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      11,
      12,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      9,
      0,
    ]);
    assert.equal(Deno.statSync(p).mode! & 0o777, 0o600);
    assert.throws(
      () => FileSink.create(p),
      (e: unknown) => e instanceof VmsiftError && /exists/.test(e.message),
    );
    const o = FileSink.create(p, { overwrite: true });
    o.write(0, new Uint8Array([1]));
    o.abort();
    assert.throws(() => Deno.statSync(p), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
