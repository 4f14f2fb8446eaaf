/**
 * /proc/vmcore as kexec lays it out: the captured headers of both kexec modes (../shared/fixtures/
 * kexec-headers, 64 KiB each: headers and notes complete, load data cut), and constructed layouts with
 * nested, overlapping and partial PT_LOADs, and the overlaps that cannot be the same memory.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VmsiftError } from "../core/errors.ts";
import { MemBitmap } from "../core/bitmap.ts";
import { countPagesPerLoad, markLoadPages } from "../core/presentPages.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore, readElfCoreHeaders } from "../formats/elfCore.ts";
import { MAX_OVERLAP_DEPTH } from "../formats/elfLoads.ts";
import { PositionalFile } from "../io/positionalFile.ts";
import { buildElfCore, type MiniSegment } from "../fixtures/miniElf.ts";
import { isFile } from "./support/fixture.ts";

const HEADS = fileURLToPath(new URL("../../shared/fixtures/kexec-headers/", import.meta.url));
const haveHeads = isFile(`${HEADS}kexec_load-1G.head.bin`);
const enc = new TextEncoder();
const PAGE = 4096;
const DIRECT = 0xffff888000000000n;
const IMAGE_VADDR = 0xffffffff81000000n;

function tmpFile(bytes: Uint8Array): string {
  const p = Deno.makeTempFileSync({ prefix: "vmsift-kexec-" });
  Deno.writeFileSync(p, bytes);
  return p;
}

function withFile<T>(bytes: Uint8Array, fn: (path: string) => T): T {
  const p = tmpFile(bytes);
  try {
    return fn(p);
  } finally {
    Deno.removeSync(p);
  }
}

const NOTES = [
  { name: "CORE", type: 1, desc: new Uint8Array(336) },
  { name: "CORE", type: 1, desc: new Uint8Array(336) },
  { name: "CORE", type: 1, desc: new Uint8Array(336) },
  { name: "VMCOREINFO", type: 0, desc: enc.encode("OSRELEASE=6.1.0\nPAGESIZE=4096\n") },
];

/** Memory of a small machine: byte i of physical memory = a hash of its address (no two pages equal). */
function ram(paddr: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const a = paddr + i;
    b[i] = (a * 2654435761 + (a >>> 12) * 97) >>> 24;
  }
  return b;
}

/** kexec's shape in small: image [0x8000, 0xb000) first, RAM 0x1000-0x4c00 (partial) and 0x6000-0x10000. */
function kexecSmall(opts: { imageBytes?: Uint8Array; imageVaddr?: bigint; ramVaddr?: bigint } = {}) {
  const segs: MiniSegment[] = [
    { paddr: 0x8000, data: opts.imageBytes ?? ram(0x8000, 0x3000), vaddr: opts.imageVaddr ?? IMAGE_VADDR },
    { paddr: 0x1000, data: ram(0x1000, 0x3c00), vaddr: DIRECT + 0x1000n },
    { paddr: 0x6000, data: ram(0x6000, 0xa000), vaddr: opts.ramVaddr ?? DIRECT + 0x6000n },
  ];
  return buildElfCore(segs, NOTES);
}

Deno.test("kexec: nested kernel-image load, partial last page, hole: one view, each page counted once", () => {
  withFile(kexecSmall(), (path) => {
    const c = ElfCore.open(path);
    try {
      assert.deepEqual(c.loads.map((l) => [l.phdrIndex, l.paddr, l.memSize]), [
        [1, 0x8000, 0x3000],
        [2, 0x1000, 0x3c00],
        [3, 0x6000, 0xa000],
      ]);
      // The image load supplies its range (first in program-header order, as makedumpfile and crash read).
      assert.deepEqual(c.segments.map((s) => [s.paddr, s.memSize]), [
        [0x1000, 0x3c00],
        [0x6000, 0x2000],
        [0x8000, 0x3000],
        [0xb000, 0x5000],
      ]);
      assert.equal(c.segments[2].fileOffset, c.loads[0].fileOffset);
      assert.equal(c.segments[3].fileOffset, c.loads[2].fileOffset + 0x5000);
      assert.equal(c.segments[3].vaddr, DIRECT + 0xb000n);
      // Reads across the boundaries of the pieces give the machine's bytes.
      const buf = new Uint8Array(0xa000);
      assert.ok(c.readPhys(0x6000, buf));
      assert.deepEqual(buf, ram(0x6000, 0xa000));
      assert.equal(c.readPhys(0x4000, new Uint8Array(PAGE)), false, "the partial page's tail is not there");
      assert.equal(c.readPhys(0x5000, new Uint8Array(16)), false, "hole");
      // Pages 1-3 and 6-15 (page 4 holds the partial end of a load: neither present nor dumped, as in
      // makedumpfile's cyclic mode); the image's 3 pages count twice for makedumpfile.
      const b1 = new MemBitmap(16);
      assert.equal(markLoadPages(c.loads, PAGE, 16, b1), 13);
      assert.equal(b1.get(4), false);
      assert.equal(b1.get(3), true);
      assert.equal(countPagesPerLoad(c.loads, PAGE, 16), 16);
    } finally {
      c.close();
    }
  });
});

Deno.test("kexec: read() and mmap give the same bytes, and a failing mmap falls back to read()", () => {
  withFile(kexecSmall(), (path) => {
    const a = ElfCore.open(path, { mmap: false });
    const b = ElfCore.open(path);
    try {
      assert.equal(a.mapped, undefined);
      assert.ok(b.mapped !== undefined, "FFI is granted in tests: the mmap path is used");
      const x = new Uint8Array(0xa000), y = new Uint8Array(0xa000);
      assert.ok(a.readPhys(0x6000, x));
      assert.ok(b.readPhys(0x6000, y));
      assert.deepEqual(x, y);
      // A window that cannot be mapped: reads go on with read(), and the core says so.
      b.mapped!.close();
      b.mapped = {
        tryReadExact: () => false,
        lastError: "Invalid argument",
        close() {},
      } as unknown as typeof b.mapped;
      y.fill(0);
      assert.ok(b.readPhys(0x6000, y));
      assert.deepEqual(x, y);
      assert.equal(b.mapped, undefined);
      assert.match(
        b.mmapFallback ?? "",
        /mmap at offset 0x[0-9a-f]+ failed \(Invalid argument\); using read\(\)/,
      );
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("kexec: partial first and last pages, overlapping (not nested) loads, loads in any order", () => {
  const segs: MiniSegment[] = [
    { paddr: 0x3000, data: ram(0x3000, 0x3000) }, // [0x3000, 0x6000) overlaps the next one's tail
    { paddr: 0x0800, data: ram(0x0800, 0x4000) }, // [0x800, 0x4800): partial first and last page
  ];
  withFile(buildElfCore(segs, NOTES), (path) => {
    const c = ElfCore.open(path);
    try {
      assert.deepEqual(c.segments.map((s) => [s.paddr, s.memSize]), [[0x800, 0x2800], [0x3000, 0x3000]]);
      const b1 = new MemBitmap(8);
      assert.equal(markLoadPages(c.loads, PAGE, 8, b1), 6);
      assert.deepEqual([...Array(8).keys()].filter((p) => b1.get(p)), [0, 1, 2, 3, 4, 5]);
      assert.equal(
        countPagesPerLoad(c.loads, PAGE, 8),
        7,
        "page 3 is in both loads (page 4 only whole in one)",
      );
      const got = new Uint8Array(0x5800);
      assert.ok(c.readPhys(0x800, got));
      assert.deepEqual(got, ram(0x800, 0x5800));
    } finally {
      c.close();
    }
  });
});

Deno.test("kexec: loads that do not overlap come out unchanged", () => {
  const segs: MiniSegment[] = [
    { paddr: 0x5000, data: ram(0x5000, 0x2000), memSize: 0x3000 },
    { paddr: 0x1000, data: ram(0x1000, 0x1000) },
    { paddr: 0x2000, data: ram(0x2000, 0x1000) },
  ];
  withFile(buildElfCore(segs, NOTES, { vaddrBase: DIRECT }), (path) => {
    const c = ElfCore.open(path);
    try {
      const strip = (
        s: { paddr: number; memSize: number; fileSize: number; fileOffset: number; vaddr: bigint },
      ) => [
        s.paddr,
        s.memSize,
        s.fileSize,
        s.fileOffset,
        s.vaddr,
      ];
      const sorted = [...c.loads].sort((a, b) => a.paddr - b.paddr);
      assert.deepEqual(c.segments.map(strip), sorted.map(strip));
    } finally {
      c.close();
    }
  });
});

Deno.test("kexec: overlaps that cannot be the same memory give one line naming the file and offset", () => {
  // Same physical page, different bytes: the sampled page differs.
  const bad = ram(0x8000, 0x3000);
  bad[0x1abc] ^= 0xff;
  withFile(kexecSmall({ imageBytes: bad }), (path) => {
    assert.throws(() => ElfCore.open(path), (e: unknown) => {
      assert.ok(e instanceof VmsiftError);
      assert.match(e.message, /PT_LOADs 1 and 3 both hold physical 0x9abc but their bytes differ/);
      assert.doesNotMatch(e.message, /\n/);
      assert.equal(e.place.file, path);
      const c = readElfCoreHeaders(PositionalFile.open(path));
      assert.equal(e.place.offset, c.loads[2].fileOffset + (0x9abc - 0x6000));
      return true;
    });
  });
  // The same page at two direct-map addresses.
  withFile(kexecSmall({ imageVaddr: DIRECT + 0x100008000n }), (path) => {
    assert.throws(() => ElfCore.open(path), (e: unknown) => {
      assert.ok(e instanceof VmsiftError);
      assert.match(e.message, /PT_LOADs 3 and 1 map physical 0x8000 at two virtual addresses/);
      assert.equal(e.place.file, path);
      assert.equal(typeof e.place.offset, "number");
      return true;
    });
  });
  // More loads on one byte than any vmcore has.
  const many: MiniSegment[] = [];
  for (let i = 0; i <= MAX_OVERLAP_DEPTH; i++) many.push({ paddr: 0, data: ram(0, 16) });
  withFile(buildElfCore(many, NOTES), (path) => {
    assert.throws(() => ElfCore.open(path), /more than 64 PT_LOADs hold physical 0x0/);
  });
  // ELF32 core headers (kexec --elf32-core-headers) and a PT_LOAD without a physical address.
  const good = kexecSmall();
  const elf32 = good.slice();
  elf32[4] = 1;
  withFile(elf32, (path) => {
    assert.throws(() => ElfCore.open(path), (e: unknown) => {
      assert.ok(e instanceof VmsiftError);
      assert.match(e.message, /^ELF32 vmcore \(EI_CLASS 1\) is not supported/);
      assert.equal(e.place.offset, 4);
      return true;
    });
  });
  const noPaddr = good.slice();
  new DataView(noPaddr.buffer).setBigUint64(64 + 2 * 56 + 24, 0xffffffffffffffffn, true);
  withFile(noPaddr, (path) => {
    assert.throws(() => ElfCore.open(path), /PT_LOAD without a physical address/);
  });
});

for (
  const [name, nLoads, segs] of [
    ["kexec_load-1G", 4, [
      [0x1000, 0x9ec00],
      [0x100000, 0x7500000],
      [0x7600000, 0x3430000],
      [0xaa30000, 0x1a5d0000],
      [0x3d000000, 0x2fda000],
    ]],
    ["kexec_file_load-1G", 3, [
      [0x100000, 0x17500000],
      [0x17600000, 0x3430000],
      [0x1aa30000, 0xe5d0000],
      [0x3d000000, 0x2fda000],
    ]],
  ] as const
) {
  Deno.test({
    name: `kexec: the captured ${name} header: loads, view, notes, VMCOREINFO, page counts`,
    ignore: !haveHeads,
    fn() {
      const path = `${HEADS}${name}.head.bin`;
      const f = PositionalFile.open(path);
      try {
        assert.throws(() => readElfCoreHeaders(f), /needs bytes up to/, "the data is cut at 64 KiB");
        const h = readElfCoreHeaders(f, { requireData: false });
        assert.equal(h.loads.length, nLoads);
        assert.equal(h.loads[0].phdrIndex, 1, "the kernel-image load comes first");
        assert.ok(h.loads[0].vaddr >= 0xffffffff80000000n);
        assert.deepEqual(h.segments.map((s) => [s.paddr, s.memSize]), segs);
        assert.equal(h.notes.filter((n) => n.name === "CORE" && n.type === 1).length, 2);
        const vi = h.notes.find((n) => n.name === "VMCOREINFO")!;
        const info = VmcoreInfo.parse(new TextDecoder().decode(vi.desc));
        assert.equal(info.osrelease, "6.1.0-56-amd64");
        // The image load's p_vaddr and p_paddr agree with VMCOREINFO (_stext, phys_base).
        const physBase = info.number("phys_base")!;
        assert.equal(
          BigInt(h.loads[0].paddr),
          BigInt.asUintN(64, h.loads[0].vaddr - 0xffffffff80000000n + physBase),
        );
        // max_mapnr 0x3ffda: present pages once; makedumpfile's count adds the 0x3430 image pages.
        const max = 0x3ffda;
        const b1 = new MemBitmap(max);
        const present = markLoadPages(h.loads, PAGE, max, b1);
        assert.equal(countPagesPerLoad(h.loads, PAGE, max) - present, 0x3430);
        // kexec_load: pfn 1-0x9e (0x9f holds the end of 0x1000-0x9fc00, so it is left out).
        assert.equal(present, name === "kexec_load-1G" ? 0x9e + 0x24f00 + 0x2fda : 0x28f00 + 0x2fda);
      } finally {
        f.close();
      }
    },
  });
}

Deno.test({
  name:
    "kexec: a captured header padded to its size opens, and its unfilled RAM copy of the image is refused",
  ignore: !haveHeads,
  fn() {
    const head = Deno.readFileSync(`${HEADS}kexec_file_load-1G.head.bin`);
    const h = withFile(head, (p) => readElfCoreHeaders(PositionalFile.open(p), { requireData: false }));
    const end = Math.max(...h.loads.map((l) => l.fileOffset + l.fileSize));
    const path = tmpFile(head);
    try {
      Deno.truncateSync(path, end); // sparse: the rest reads as zeros
      // The image load holds the first 56 KiB of the kernel; its RAM copy is zeros here: not the same memory.
      assert.throws(
        () => ElfCore.open(path),
        /PT_LOADs 1 and 2 both hold physical 0x176000[0-9a-f]{2} but their bytes differ/,
      );
      // Copy the image's bytes where the RAM load holds them, as /proc/vmcore would read them: it opens.
      const img = h.loads[0], ramLoad = h.loads[1];
      const f = Deno.openSync(path, { write: true });
      f.seekSync(ramLoad.fileOffset + (img.paddr - ramLoad.paddr), Deno.SeekMode.Start);
      f.writeSync(head.subarray(img.fileOffset));
      f.close();
      const c = ElfCore.open(path);
      try {
        assert.equal(c.nrCpus, 2);
        const a = new Uint8Array(0x100);
        assert.ok(c.readPhys(img.paddr, a));
        assert.deepEqual(a, head.subarray(img.fileOffset, img.fileOffset + 0x100));
      } finally {
        c.close();
      }
    } finally {
      Deno.removeSync(path);
    }
  },
});
