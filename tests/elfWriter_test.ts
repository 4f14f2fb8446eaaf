import assert from "node:assert/strict";
import { tempDirTests } from "./support/run.ts";
import { MemBitmap } from "../core/bitmap.ts";
import { VmsiftError } from "../core/errors.ts";
import { findSegment, type PhysicalMemory, type PhysSegment } from "../core/physMem.ts";
import { ElfCore } from "../formats/elfCore.ts";
import {
  type BeyondMaxMapnr,
  type ElfDumpSource,
  inputElfHeaders,
  markElfIncomplete,
  planElfDump,
  PN_XNUM,
  writeElfDump,
} from "../formats/elfWriter.ts";
import { FlatSink } from "../formats/flatSink.ts";
import { FlatReader } from "../formats/flatReader.ts";
import { rebuildFlat } from "../formats/flatRebuild.ts";
import { FileSink } from "../io/fileSink.ts";
import { haveReal, REAL_DIR, realExpected, realVmcore, unpackReal } from "./support/fixture.ts";
import { uniform32 } from "./support/mutate.ts";
import type { Sink } from "../io/sink.ts";
import { sha256File } from "./support/compare.ts";

const PS = 4096;
const { tmp, test } = tempDirTests("vmsift-elfw-");

/** Memory whose byte at address a is a hash of a (never all-zero pages). */
class PatternMem implements PhysicalMemory {
  readonly label = "pattern";
  constructor(readonly segments: PhysSegment[]) {}
  static byte(a: number): number {
    return ((Math.imul(a, 2654435761) >>> 24) ^ (a >>> 12) ^ 0x5a) & 0xff;
  }
  readPhys(paddr: number, out: Uint8Array): boolean {
    for (let i = 0; i < out.length; i++) {
      const a = paddr + i;
      if (findSegment(this.segments, a) < 0) return false;
      out[i] = PatternMem.byte(a);
    }
    return true;
  }
}

/** A Sink collecting into memory. */
class MemSink implements Sink {
  readonly label = "mem";
  buf = new Uint8Array(1 << 16);
  size = 0;
  #put(offset: number, bytes: Uint8Array) {
    const end = offset + bytes.length;
    if (end > this.buf.length) {
      const n = new Uint8Array(Math.max(end, this.buf.length * 2));
      n.set(this.buf);
      this.buf = n;
    }
    this.buf.set(bytes, offset);
    this.size = Math.max(this.size, end);
  }
  write(offset: number, bytes: Uint8Array) {
    this.#put(offset, bytes);
  }
  rewrite(offset: number, bytes: Uint8Array) {
    this.#put(offset, bytes);
  }
  finish(size: number) {
    this.size = size;
  }
  close() {}
  abort() {}
  bytes(): Uint8Array {
    return this.buf.slice(0, this.size);
  }
}

interface RefLoad {
  paddr: number;
  memsz: number;
  filesz: number;
  offset: number;
}

/**
 * Oracle: a page-by-page transcription of makedumpfile's write_elf_pages_cyclic loop, with bitmap2 read
 * the way is_dumpable_file() does (4 KiB blocks of a bitmap file of roundup(ceil(maxMapnr/8), page) bytes;
 * a read past its end leaves the buffer as it was). Offsets relative to the start of the segment data.
 */
function oracle(segs: PhysSegment[], bm: MemBitmap, maxMapnr: number, mode: BeyondMaxMapnr): RefLoad[] {
  const fileBytes = Math.ceil(Math.ceil(maxMapnr / 8) / PS) * PS;
  const buffer = new Uint8Array(4096);
  let noBlock = -1;
  const isDumpable = (pfn: number): boolean => {
    if (pfn >= maxMapnr && mode === "keep") return true;
    if (pfn >= maxMapnr && mode === "exclude") return false;
    const blk = Math.floor(pfn / 32768);
    if (pfn === 0 || blk !== noBlock) {
      const off = blk * 4096;
      if (off < fileBytes) {
        for (let i = 0; i < 4096; i++) {
          const b = off + i;
          buffer[i] = b < bm.bytes.length ? bm.bytes[b] : 0;
        }
      }
      noBlock = blk;
    }
    const bit = pfn % 32768;
    return (buffer[bit >> 3] & (1 << (bit & 7))) !== 0;
  };
  const out: RefLoad[] = [];
  let offSeg = 0;
  for (const seg of segs) {
    let paddr = seg.paddr;
    let pfnStart = Math.floor(seg.paddr / PS);
    let pfnEnd = Math.floor((seg.paddr + seg.memSize) / PS);
    const fracHead = PS - (seg.paddr % PS);
    const fracTail = (seg.paddr + seg.memSize) % PS;
    let numExcluded = 0, memsz = 0, filesz = 0;
    if (fracHead && fracHead !== PS) {
      memsz = filesz = fracHead;
      pfnStart++;
    }
    if (fracTail) pfnEnd++;
    for (let pfn = pfnStart; pfn < pfnEnd; pfn++) {
      const tail = pfn === pfnEnd - 1 && fracTail;
      if (!isDumpable(pfn)) {
        numExcluded++;
        memsz += tail ? fracTail : PS;
        continue;
      }
      if (!numExcluded) {
        memsz += tail ? fracTail : PS;
        filesz += tail ? fracTail : PS;
        continue;
      } else if (numExcluded < 256) {
        memsz += tail ? fracTail : PS;
        filesz += PS * numExcluded + (tail ? fracTail : PS);
        numExcluded = 0;
        continue;
      }
      out.push({ paddr, memsz, filesz, offset: filesz ? offSeg : -1 });
      paddr += memsz;
      offSeg += filesz;
      numExcluded = 0;
      memsz = filesz = PS;
    }
    out.push({ paddr, memsz, filesz, offset: offSeg });
    offSeg += filesz;
  }
  return out;
}

function seg(paddr: number, memSize: number): PhysSegment {
  return { paddr, memSize, fileSize: memSize, fileOffset: 0, vaddr: BigInt(paddr) + 0xffff888000000000n };
}

function source(segs: PhysSegment[], bm: MemBitmap, maxMapnr: number, extra: Partial<ElfDumpSource> = {}) {
  // One 36-byte note: namesz 5 ("CORE"), descsz 16, type NT_PRSTATUS.
  const notes = new Uint8Array(36);
  const nv = new DataView(notes.buffer);
  nv.setUint32(0, 5, true);
  nv.setUint32(4, 16, true);
  nv.setUint32(8, 1, true);
  notes.set(new TextEncoder().encode("CORE"), 12);
  notes.fill(7, 20);
  return {
    mem: new PatternMem(segs),
    bitmap1: bm,
    bitmap2: bm,
    maxMapnr,
    pageSize: PS,
    noteBytes: notes,
    segments: segs,
    ...extra,
  };
}

/** Check an output file against the source, read back with ElfCore. */
function checkReadBack(path: string, src: ElfDumpSource): void {
  const core = ElfCore.open(path);
  try {
    const layout = planElfDump(src);
    assert.deepEqual(core.noteSegment.bytes, src.noteBytes);
    const loads = layout.loads.filter((l) => l.memSize > 0);
    assert.equal(core.segments.length, loads.length);
    for (const l of loads) {
      const got = new Uint8Array(l.memSize);
      assert.ok(core.readPhys(l.paddr, got));
      for (let i = 0; i < l.memSize; i++) {
        const want = i < l.fileSize ? PatternMem.byte(l.paddr + i) : 0;
        if (got[i] !== want) assert.fail(`byte at paddr 0x${(l.paddr + i).toString(16)}`);
      }
    }
    // Every page set in bitmap2 (below maxMapnr) is in the file with its content.
    const page = new Uint8Array(PS);
    for (const s of src.segments) {
      for (let p = Math.ceil(s.paddr / PS); (p + 1) * PS <= s.paddr + s.memSize; p++) {
        if (p >= src.maxMapnr || !src.bitmap2.get(p)) continue;
        assert.ok(core.readPhys(p * PS, page));
        assert.equal(page[123], PatternMem.byte(p * PS + 123), `pfn ${p}`);
      }
    }
  } finally {
    core.close();
  }
}

test("ELF layout: hand-computed splits (256 splits, 255 stays, excluded tail = memsz > filesz)", () => {
  const segs = [seg(0, 1000 * PS)];
  const bm = new MemBitmap(1000);
  bm.setRange(0, 1000);
  bm.clearRange(100, 356); // 256: split
  bm.clearRange(500, 755); // 255: stays in the file
  bm.clearRange(900, 1000); // tail: memsz > filesz
  const src = source(segs, bm, 1000);
  const l = planElfDump(src);
  const head = 64 + 56 * 3 + 36;
  assert.equal(l.phnum, 3);
  assert.deepEqual(l.loads.map((x) => [x.paddr / PS, x.memSize / PS, x.fileSize / PS, x.offset]), [
    [0, 356, 100, head],
    [356, 644, 544, head + 100 * PS],
  ]);
  assert.equal(l.fileSize, head + 644 * PS);
  assert.equal(l.elfExcludedPages, 356);
  // vaddr follows paddr.
  assert.equal(l.loads[1].vaddr, 0xffff888000000000n + BigInt(356 * PS));
});

test("ELF layout: leading excluded run gives a data-less PT_LOAD with p_offset 0", () => {
  const segs = [seg(0, 600 * PS), seg(700 * PS, 300 * PS)];
  const bm = new MemBitmap(1000);
  bm.setRange(300, 600); // first 300 excluded
  // second segment entirely excluded: one PT_LOAD, filesz 0, p_offset = current data offset
  const l = planElfDump(source(segs, bm, 1000));
  const head = 64 + 56 * 4 + 36;
  assert.deepEqual(l.loads.map((x) => [x.paddr / PS, x.memSize / PS, x.fileSize / PS, x.offset]), [
    [0, 300, 0, 0],
    [300, 300, 300, head],
    [700, 300, 0, head + 300 * PS],
  ]);
});

test("ELF layout matches the page-by-page oracle (random bitmaps, partial pages, beyond maxMapnr)", () => {
  for (let seed = 1; seed <= 30; seed++) {
    const r = uniform32(seed * 31337);
    const maxMapnr = 20000 + ((r() * 50000) | 0);
    const segs: PhysSegment[] = [];
    let p = (r() * 5000) | 0;
    for (let i = 0; i < 4; i++) {
      const start = p * PS + (r() < 0.3 ? (r() * PS) | 0 : 0);
      const len = (1 + ((r() * 8000) | 0)) * PS + (r() < 0.3 ? (r() * PS) | 0 : 0);
      segs.push(seg(start, len));
      p = Math.ceil((start + len) / PS) + 1 + ((r() * 3000) | 0);
    }
    // One segment far above maxMapnr (like the VGA and BIOS segments).
    segs.push(seg((maxMapnr + 40000 + ((r() * 100000) | 0)) * PS, (1 + ((r() * 3000) | 0)) * PS));
    const bm = new MemBitmap(maxMapnr);
    // Alternate dumped and excluded runs; excluded runs are often right at the 256 threshold.
    let q = 0;
    for (let on = r() < 0.5; q < maxMapnr; on = !on) {
      const x = r();
      const run = !on && x < 0.3 ? 255 + ((x * 10) | 0) % 3 : 1 + ((r() < 0.2 ? r() * 600 : r() * 40) | 0);
      if (on) bm.setRange(q, q + run);
      q += run;
    }
    for (const mode of ["mirror", "keep", "exclude"] as const) {
      const l = planElfDump(source(segs, bm, maxMapnr, { beyondMaxMapnr: mode }));
      const ref = oracle(segs, bm, maxMapnr, mode);
      const head = 64 + 56 * (ref.length + 1) + 36;
      assert.deepEqual(
        l.loads.map((x) => [x.paddr, x.memSize, x.fileSize, x.offset]),
        ref.map((x) => [x.paddr, x.memsz, x.filesz, x.offset < 0 ? 0 : x.offset + head]),
        `seed ${seed} mode ${mode}`,
      );
    }
  }
});

test("ELF output reads back with ElfCore; markElfIncomplete sets e_flags bit 0", () => {
  const segs = [seg(0, 0xa0 * PS), seg(0xc0 * PS + 100, 3000 * PS - 50), seg(4000 * PS, 700 * PS)];
  const bm = new MemBitmap(5000);
  const r = uniform32(99);
  for (let p = 0; p < 5000; p += 50) if (r() < 0.5) bm.setRange(p, p + 50 + ((r() * 400) | 0));
  const src = source(segs, bm, 5000);
  const path = tmp("rb.elf");
  const sink = FileSink.create(path);
  const res = writeElfDump(src, sink);
  sink.close();
  assert.equal(Deno.statSync(path).size, res.fileSize);
  checkReadBack(path, src);
  const s2 = FileSink.create(path, { overwrite: true });
  writeElfDump(src, s2);
  markElfIncomplete(s2, 0);
  s2.close();
  const core = ElfCore.open(path);
  assert.equal(core.eFlags & 1, 1);
  core.close();
});

test("ELF output with >= 65535 program headers uses PN_XNUM and section header 0", () => {
  for (const [nseg, xnum] of [[65533, false], [65534, true], [65600, true]] as const) {
    const segs: PhysSegment[] = [];
    for (let i = 0; i < nseg; i++) segs.push(seg(i * PS, 16));
    const bm = new MemBitmap(nseg);
    bm.setRange(0, nseg);
    const src = source(segs, bm, nseg);
    const sink = new MemSink();
    const res = writeElfDump(src, sink);
    const out = sink.bytes();
    const dv = new DataView(out.buffer);
    assert.equal(res.phnum, nseg + 1);
    assert.equal(res.xnum, xnum);
    if (xnum) {
      assert.equal(dv.getUint16(56, true), PN_XNUM);
      const shoff = Number(dv.getBigUint64(40, true));
      assert.equal(shoff, 64 + 56 * (nseg + 1));
      assert.equal(dv.getUint16(58, true), 64);
      assert.equal(dv.getUint16(60, true), 1);
      assert.equal(dv.getUint32(shoff + 4, true), 0); // SHT_NULL
      assert.equal(dv.getBigUint64(shoff + 32, true), 1n); // sh_size = e_shnum
      assert.equal(dv.getUint32(shoff + 44, true), nseg + 1); // sh_info
      assert.equal(res.noteOffset, shoff + 64);
    } else {
      assert.equal(dv.getUint16(56, true), nseg + 1);
      assert.equal(dv.getBigUint64(40, true), 0n);
    }
    const path = tmp("xnum.elf");
    Deno.writeFileSync(path, out);
    const core = ElfCore.open(path);
    assert.equal(core.segments.length, nseg);
    const b = new Uint8Array(16);
    assert.ok(core.readPhys((nseg - 1) * PS, b));
    assert.equal(b[5], PatternMem.byte((nseg - 1) * PS + 5));
    core.close();
  }
});

// ---- real fixture ----

function haveMakedumpfile(): boolean {
  try {
    return new Deno.Command("makedumpfile", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const REAL_MAX_MAPNR = 0x8000;

/** bitmap1 from the PT_LOADs (pfn < maxMapnr); bitmap2 = bitmap1, minus all-zero pages when `zero`. */
function realBitmaps(core: ElfCore, zero: boolean): { b1: MemBitmap; b2: MemBitmap } {
  const b1 = new MemBitmap(REAL_MAX_MAPNR);
  for (const s of core.segments) b1.setRange(Math.floor(s.paddr / PS), Math.ceil((s.paddr + s.memSize) / PS));
  const b2 = new MemBitmap(REAL_MAX_MAPNR);
  b2.bytes.set(b1.bytes);
  if (zero) removeZeroPages(core, b2);
  return { b1, b2 };
}

function removeZeroPages(core: ElfCore, b2: MemBitmap): void {
  const chunk = new Uint8Array(256 * PS);
  for (let p = 0; p < REAL_MAX_MAPNR; p += 256) {
    const n = Math.min(256, REAL_MAX_MAPNR - p);
    for (let i = 0; i < n; i++) {
      if (!b2.get(p + i)) continue;
      const page = chunk.subarray(i * PS, (i + 1) * PS);
      assert.ok(core.readPhys((p + i) * PS, page));
      const w = new BigUint64Array(page.buffer, page.byteOffset, PS / 8);
      let allZero = true;
      for (let k = 0; k < w.length; k++) {
        if (w[k] !== 0n) {
          allZero = false;
          break;
        }
      }
      if (allZero) b2.clear(p + i);
    }
  }
}

function realSource(core: ElfCore, b1: MemBitmap, b2: MemBitmap): ElfDumpSource {
  return {
    mem: core,
    bitmap1: b1,
    bitmap2: b2,
    maxMapnr: REAL_MAX_MAPNR,
    pageSize: PS,
    noteBytes: core.noteSegment.bytes,
    segments: core.segments,
    ...inputElfHeaders(core),
  };
}

function sameFile(a: string, b: string): void {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  assert.equal(x.length, y.length, "size");
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`first difference at 0x${i.toString(16)}`);
  }
}

test({
  name: "real fixture: -E -d 0 and -d 1 are byte-identical to makedumpfile 1.7.2",
  ignore: !haveReal() || !haveMakedumpfile(),
  fn: async () => {
    const vmcore = await realVmcore();
    const core = ElfCore.open(vmcore);
    try {
      for (const level of [0, 1]) {
        const ref = tmp(`md-d${level}.elf`);
        const out = await new Deno.Command("makedumpfile", {
          args: ["-E", "-d", String(level), vmcore, ref],
          stdout: "null",
          stderr: "null",
          env: { TMPDIR: ref.slice(0, ref.lastIndexOf("/")) },
        }).output();
        assert.ok(out.success, "makedumpfile -E");
        const { b1, b2 } = realBitmaps(core, level === 1);
        const src = realSource(core, b1, b2);
        const path = tmp(`ours-d${level}.elf`);
        const sink = FileSink.create(path);
        const res = writeElfDump(src, sink);
        sink.close();
        sameFile(path, ref);
        // VGA and BIOS segments are kept (pfn >= max_mapnr mirrored as makedumpfile does).
        assert.ok(res.loads.some((l) => l.paddr === 0xfd000000));
        assert.equal(res.phnum, level === 0 ? 5 : 10);
        checkReadBackReal(path, core, b2);
      }
    } finally {
      core.close();
    }
  },
});

/** Every page in bitmap2 reads back identical from our ELF output. */
function checkReadBackReal(path: string, src: ElfCore, b2: MemBitmap): void {
  const out = ElfCore.open(path);
  try {
    assert.deepEqual(out.noteSegment.bytes, src.noteSegment.bytes);
    const a = new Uint8Array(PS), b = new Uint8Array(PS);
    for (let p = 0; p < REAL_MAX_MAPNR; p++) {
      if (!b2.get(p)) continue;
      assert.ok(src.readPhys(p * PS, a));
      assert.ok(out.readPhys(p * PS, b), `pfn 0x${p.toString(16)} missing`);
      for (let i = 0; i < PS; i += 8) if (a[i] !== b[i]) assert.fail(`pfn 0x${p.toString(16)} differs`);
    }
  } finally {
    out.close();
  }
}

test({
  name: "real fixture: -E -d 31 (bitmap2 from makedumpfile's -c -d 31 file) matches size, sha256 and head",
  ignore: !haveReal(),
  fn: async () => {
    const core = ElfCore.open(await realVmcore());
    try {
      const kd = Deno.readFileSync(await unpackReal("makedumpfile-c-d31.kdump"));
      const dv = new DataView(kd.buffer);
      const bs = dv.getUint32(428, true), sub = dv.getUint32(432, true), bb = dv.getUint32(436, true);
      assert.equal(dv.getUint32(440, true), REAL_MAX_MAPNR);
      const b2 = new MemBitmap(REAL_MAX_MAPNR);
      const at = bs * (1 + sub) + (bb * bs) / 2;
      b2.bytes.set(kd.subarray(at, at + b2.bytes.length));
      removeZeroPages(core, b2); // -E's zero-page pre-pass
      const exp = realExpected() as unknown as {
        dump_levels: Record<string, Record<string, number>>;
        outputs_d31: Record<string, { size: number; sha256: string }>;
      };
      assert.equal(b2.popcount(), exp.dump_levels["31"].remaining);
      const { b1 } = realBitmaps(core, false);
      const path = tmp("ours-d31.elf");
      const sink = FileSink.create(path);
      const res = writeElfDump(realSource(core, b1, b2), sink);
      sink.close();
      assert.equal(res.phnum, 18);
      const head = Deno.readFileSync(`${REAL_DIR}/makedumpfile-E-d31.head.bin`);
      const ours = Deno.readFileSync(path).subarray(0, head.length);
      assert.deepEqual(ours, head);
      const e = exp.outputs_d31["makedumpfile-E-d31.elf"];
      assert.equal(res.fileSize, e.size);
      assert.equal(await sha256File(path), e.sha256);
      checkReadBackReal(path, core, b2);
    } finally {
      core.close();
    }
  },
});

test({
  name: "real fixture: -E -d 1 through FlatSink: makedumpfile -R and rebuildFlat give the same file",
  ignore: !haveReal(),
  fn: async (t) => {
    const core = ElfCore.open(await realVmcore());
    try {
      const { b1, b2 } = realBitmaps(core, true);
      const src = realSource(core, b1, b2);
      const plain = tmp("plain.elf");
      const s1 = FileSink.create(plain);
      writeElfDump(src, s1);
      s1.close();
      const flatPath = tmp("e.flat");
      const f = Deno.openSync(flatPath, { write: true, createNew: true });
      const fs = new FlatSink(f, flatPath);
      writeElfDump(src, fs);
      fs.close();
      f.close();
      const ours = tmp("ours-R.elf");
      const rf = Deno.openSync(flatPath);
      const s2 = FileSink.create(ours);
      rebuildFlat(new FlatReader(rf, flatPath), s2);
      s2.close();
      rf.close();
      sameFile(ours, plain);
      await t.step({
        name: "makedumpfile -R of the flattened stream gives the same file",
        ignore: !haveMakedumpfile(),
        fn: async () => {
          const theirs = tmp("md-R.elf");
          const child = new Deno.Command("makedumpfile", {
            args: ["-R", theirs],
            stdin: "piped",
            stdout: "null",
            stderr: "piped",
          }).spawn();
          await (await Deno.open(flatPath)).readable.pipeTo(child.stdin);
          const o = await child.output();
          assert.ok(o.success, new TextDecoder().decode(o.stderr));
          sameFile(theirs, plain);
        },
      });
    } finally {
      core.close();
    }
  },
});

test("writeElfDump reports unreadable memory as VmsiftError", () => {
  const segs = [seg(0, 10 * PS)];
  const bm = new MemBitmap(10);
  bm.setRange(0, 10);
  const src = source(segs, bm, 10);
  src.mem = { label: "broken", segments: segs, readPhys: () => false };
  assert.throws(() => writeElfDump(src, new MemSink()), VmsiftError);
});
