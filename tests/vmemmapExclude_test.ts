/**
 * `-e` (core/vmemmapExclude.ts): constructed memory with hand-counted answers (2 MiB and 4 KiB vmemmap
 * leaves, 4- and 5-level paging, straddling pages, holes, non-present and shared vmemmap pages, struct
 * pages that do not divide a page), then the real fixture: an independent per-page oracle (SimpleWalk),
 * makedumpfile 1.7.2's own -e output, `vmsift verify`, the header flag and crash's warning.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { X86Translator } from "../core/pageTable.ts";
import { excludeUnnecessaryPages } from "../core/scan.ts";
import type { MemSection } from "../core/sparsemem.ts";
import { excludeVmemmapPages, type VmemmapModel } from "../core/vmemmapExclude.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { FakePageTables, FakePhys } from "./support/fakeKernel.ts";
import { fakeDump } from "./support/fakeDump.ts";
import { ERA } from "./support/fakeKernel.ts";
import { haveReal, haveVmlinux, realVmcore, VMLINUX } from "./support/fixture.ts";
import { assertVerifies, haveProgram, runVmsift, tempDir } from "./support/run.ts";
import { SimpleWalk } from "./support/simpleWalk.ts";

const PS = 4096;
const MEM = 64 << 20;
const NPFN = MEM / PS; // 16384 pfns: half a section, 256 vmemmap pages of 64-byte struct pages
const STRUCT_PA = 32 << 20; // 2 MiB aligned; vmemmap page j is pfn V0 + j
const V0 = STRUCT_PA / PS;
const HOLE: [number, number] = [0xa0000, 0xc0000]; // pfns 160-191, inside vmemmap page 2
const ABSENT_J = 100; // vmemmap page whose own pfn is outside the dump
const VMEMMAP4 = 0xffffea0000000000n;
const VMEMMAP5 = 0xffd4000000000000n;

function section(pfnStart: number, pfnEnd: number, memMap: bigint): MemSection {
  return { nr: Math.floor(pfnStart / 32768), pfnStart, pfnEnd, memMap, flags: 3 };
}

/** bitmap1 from the segments, bitmap2 = copy. */
function bitmaps(phys: FakePhys, n: number) {
  const b1 = new MemBitmap(n);
  for (const s of phys.segments) {
    b1.setRange(Math.floor(s.paddr / PS), Math.min(n, Math.ceil((s.paddr + s.memSize) / PS)));
  }
  const b2 = new MemBitmap(n);
  b2.bytes.set(b1.bytes);
  return { b1, b2 };
}

/** Pfns cleared by the pass: in `before` but not in `after`. */
function cleared(before: MemBitmap, after: MemBitmap): number[] {
  const out: number[] = [];
  for (let p = 0; p < before.nbits; p++) if (before.get(p) && !after.get(p)) out.push(p);
  return out;
}

/**
 * The main constructed machine: 64 MiB, one section of 16384 pfns, vmemmap at STRUCT_PA mapped with one
 * 2 MiB leaf or with 4 KiB leaves (page 200 unmapped; 211 aliased onto 210's page and 213 onto 212's,
 * like the hugetlb vmemmap optimisation does).
 */
function machine(levels: 4 | 5, leaf: "2m" | "4k") {
  const phys = new FakePhys(MEM, [HOLE, [STRUCT_PA + ABSENT_J * PS, STRUCT_PA + (ABSENT_J + 1) * PS]]);
  const pt = new FakePageTables(phys, levels, 0x100000);
  const base = levels === 5 ? VMEMMAP5 : VMEMMAP4;
  if (leaf === "2m") {
    pt.map2m(base, STRUCT_PA);
  } else {
    for (let j = 0; j < NPFN / 64; j++) {
      if (j === 200) continue;
      const target = j === 211 ? 210 : j === 213 ? 212 : j;
      pt.map4k(base + BigInt(j * PS), STRUCT_PA + target * PS);
    }
  }
  const model: VmemmapModel = {
    vm: new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels }),
    sparse: { sections: [section(0, NPFN, base)], pageStructSize: 64 },
    maxMapnr: NPFN,
    pageSize: PS,
  };
  const { b1, b2 } = bitmaps(phys, NPFN);
  // What the scan excluded (pfn ranges), and the vmemmap pages (j) each decides.
  b2.clearRange(1024, 4096 + 32); // pages 16-63 wholly; page 64 straddles kept and excluded pfns: stays
  b2.clearRange(128, 256); // page 2 = excluded + hole pfns (kept by the hole rule), page 3 wholly
  b2.clearRange(ABSENT_J * 64, (ABSENT_J + 1) * 64); // page 100: its own pfn is not present
  b2.clearRange(101 * 64, 102 * 64); // page 101: its own pfn was already excluded:
  b2.clear(V0 + 101);
  b2.clearRange(200 * 64, 201 * 64); // page 200 (unmapped with 4 KiB leaves)
  b2.clearRange(210 * 64, 211 * 64); // page 210 excluded, 211 kept: with aliasing, 210's page stays
  b2.clearRange(212 * 64, 214 * 64); // pages 212 and 213 (aliased with 4 KiB leaves: one page, cleared once)
  return { phys, model, b1, b2 };
}

for (const levels of [4, 5] as const) {
  Deno.test(`vmemmap -e: 2 MiB vmemmap leaf, ${levels}-level paging`, () => {
    const { model, b1, b2 } = machine(levels, "2m");
    const snapshot = new MemBitmap(NPFN);
    snapshot.bytes.set(b2.bytes);
    const r = excludeVmemmapPages(model, b1, b2);
    const want = [3, ...Array.from({ length: 48 }, (_, i) => 16 + i), 200, 210, 212, 213].sort((x, y) =>
      x - y
    );
    assert.deepEqual(cleared(snapshot, b2), want.map((j) => V0 + j));
    assert.equal(r.pagesExcluded, 53);
    assert.equal(r.candidates, 55); // + pages 100 and 101
    assert.equal(r.keptNotDumped, 2);
    assert.equal(r.keptForHoles, 1);
    assert.equal(r.keptShared, 0);
    assert.equal(r.vmemmapPagesExamined, 256);
    assert.equal(r.unmappedPages, 0);
    assert.equal(r.edgePages, 0);
    assert.equal(r.pieces, 1); // one translation for the whole 1 MiB of struct pages
    assert.equal(b2.get(V0 + 64), true); // the straddling page
    assert.equal(b2.get(V0 + 2), true); // the page over the hole
    // Scan exclusions (3104 + 96 present of 128..255 + 6 pages of 64 + V0 + 101) plus the 53 vmemmap pages.
    assert.equal(b1.popcount() - b2.popcount(), 3104 + 96 + 64 * 6 + 1 + 53);
  });

  Deno.test(`vmemmap -e: 4 KiB vmemmap leaves with an unmapped and aliased pages, ${levels}-level paging`, () => {
    const { model, b1, b2 } = machine(levels, "4k");
    const snapshot = new MemBitmap(NPFN);
    snapshot.bytes.set(b2.bytes);
    const r = excludeVmemmapPages(model, b1, b2);
    const want = [3, ...Array.from({ length: 48 }, (_, i) => 16 + i), 212].sort((x, y) => x - y);
    assert.deepEqual(cleared(snapshot, b2), want.map((j) => V0 + j));
    assert.equal(r.pagesExcluded, 50);
    assert.equal(r.keptNotDumped, 2);
    assert.equal(r.keptShared, 1); // 210's page also holds 211's struct pages (kept pfns)
    assert.equal(r.unmappedPages, 1);
    assert.equal(r.vmemmapPagesExamined, 255);
    // Pieces: 0-199, hole 200, 201-210, 211, 212, 213, 214-255.
    assert.equal(r.pieces, 7);
    assert.equal(b2.get(V0 + 210), true);
  });
}

Deno.test("vmemmap -e: excludeOverHoles treats hole pfns as excluded", () => {
  const { model, b1, b2 } = machine(4, "2m");
  const r = excludeVmemmapPages(model, b1, b2, { excludeOverHoles: true });
  assert.equal(r.pagesExcluded, 54);
  assert.equal(r.keptForHoles, 0);
  assert.equal(b2.get(V0 + 2), false);
});

Deno.test("vmemmap -e: 56-byte struct pages — a struct straddling a page boundary belongs to both pages", () => {
  // 16384 * 56 bytes = 224 pages exactly. Page 1 = bytes 4096-8191 = structs 73 (starts at 4088) to 146
  // (ends at 8232): pfns [73, 147).
  const phys = new FakePhys(MEM);
  const pt = new FakePageTables(phys, 4, 0x100000);
  pt.map2m(VMEMMAP4, STRUCT_PA);
  const model: VmemmapModel = {
    vm: new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels: 4 }),
    sparse: { sections: [section(0, NPFN, VMEMMAP4)], pageStructSize: 56 },
    maxMapnr: NPFN,
    pageSize: PS,
  };
  let m = bitmaps(phys, NPFN);
  m.b2.clearRange(73, 147);
  let r = excludeVmemmapPages(model, m.b1, m.b2);
  assert.equal(r.pagesExcluded, 1);
  assert.equal(m.b2.get(V0 + 1), false);
  assert.equal(r.vmemmapPagesExamined, 224);
  // pfn 73 kept (its struct starts in page 0 and ends in page 1): page 1 stays.
  m = bitmaps(phys, NPFN);
  m.b2.clearRange(74, 147);
  r = excludeVmemmapPages(model, m.b1, m.b2);
  assert.equal(r.pagesExcluded, 0);
  // pfn 146 kept (starts in page 1, ends in page 2): page 1 stays.
  m = bitmaps(phys, NPFN);
  m.b2.clearRange(73, 146);
  r = excludeVmemmapPages(model, m.b1, m.b2);
  assert.equal(r.pagesExcluded, 0);
});

Deno.test("vmemmap -e: struct arrays not page aligned — edge pages are never excluded; sections merge", () => {
  // Two sections (pfns 0-500, 500-1000) whose struct arrays follow each other at vmemmap + 0x800: one run
  // of 64000 bytes from offset 0x800, so virtual pages 0 and 16 are partly something else.
  const phys = new FakePhys(MEM);
  const pt = new FakePageTables(phys, 4, 0x100000);
  for (let j = 0; j < 17; j++) pt.map4k(VMEMMAP4 + BigInt(j * PS), STRUCT_PA + j * PS);
  const mm = VMEMMAP4 + 0x800n;
  const model: VmemmapModel = {
    vm: new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels: 4 }),
    sparse: { sections: [section(0, 500, mm), section(500, 1000, mm + 500n * 64n)], pageStructSize: 64 },
    maxMapnr: NPFN,
    pageSize: PS,
  };
  const { b1, b2 } = bitmaps(phys, NPFN);
  b2.clearRange(0, 1000);
  const r = excludeVmemmapPages(model, b1, b2);
  assert.equal(r.runs, 1);
  assert.equal(r.pieces, 1);
  assert.equal(r.edgePages, 2);
  assert.equal(r.vmemmapPagesExamined, 15);
  assert.equal(r.pagesExcluded, 15);
  assert.equal(b2.get(V0), true);
  assert.equal(b2.get(V0 + 16), true);
  assert.equal(b2.popcount(V0 + 1, V0 + 16), 0);
});

/**
 * Independent oracle: per vmemmap page (64-byte struct pages, page-aligned sections), translate with
 * SimpleWalk and test its 64 pfns one by one. Returns the pfns -e must clear.
 */
function oracle(
  vm: SimpleWalk,
  sections: readonly MemSection[],
  maxMapnr: number,
  b1: { get(p: number): boolean },
  b2: { get(p: number): boolean },
): { clear: Set<number>; excl: Map<number, boolean>; vOf: Map<number, number> } {
  const clear = new Set<number>();
  const excl = new Map<number, boolean>(); // by virtual page index (global, from the vmemmap base)
  const vOf = new Map<number, number>();
  for (const s of sections) {
    const end = Math.min(s.pfnEnd, maxMapnr);
    for (let a = s.pfnStart; a + 64 <= end; a += 64) {
      const pa = vm.vtop(s.memMap + BigInt((a - s.pfnStart) * 64));
      if (pa === undefined) continue;
      let all = true;
      for (let p = a; p < a + 64; p++) if (!b1.get(p) || b2.get(p)) all = false;
      const j = a / 64;
      excl.set(j, all);
      vOf.set(j, pa / PS);
      if (all && b1.get(pa / PS) && b2.get(pa / PS)) clear.add(pa / PS);
    }
  }
  return { clear, excl, vOf };
}

Deno.test("vmemmap -e: after the real scan on a constructed dump (4 KiB vmemmap), equals the oracle", () => {
  const d = fakeDump(ERA.v6_1);
  const p = d.pages;
  p.flags(0x1800, 1n << 16n).byte(0x1801, 16, 2).byte(0x1801, 17, 9); // hugetlb 512: 8 vmemmap pages
  for (let i = 1; i < 512; i++) p.compoundHead(0x1800 + i, 0xffffea0000000000n + BigInt(0x1800 * 64) + 1n);
  p.mapcount(0x1000, -129).private(0x1000, 7n); // free 128: 2 vmemmap pages
  p.mapcount(0x2000, -129).private(0x2000, 5n); // free 32: less than a vmemmap page
  const model = buildMemoryModel(d.phys, d.info());
  const { b1, b2 } = d.bitmaps(model.maxMapnr);
  excludeUnnecessaryPages(model, 31, b1, b2);
  const snapshot = new MemBitmap(model.maxMapnr);
  snapshot.bytes.set(b2.bytes);
  const want = oracle(new SimpleWalk(d.phys, d.info()), model.sparse.sections, model.maxMapnr, b1, snapshot);
  const r = excludeVmemmapPages(model, b1, b2);
  assert.equal(want.clear.size, 10);
  assert.deepEqual(new Set(cleared(snapshot, b2)), want.clear);
  assert.equal(r.pagesExcluded, 10);
});

// ---------------------------------------------------------------------------------------------------------
// The real fixture.

/** Run a program; returns stdout + stderr and the exit code. */
async function run(cmd: string, args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  return { code: o.code, out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
}

Deno.test({
  name: "vmemmap -e (real 6.1 fixture, -c -d 31): oracle, makedumpfile -e, verify, status 0x10, crash",
  ignore: !haveReal(),
  async fn(t) {
    const vmcore = await realVmcore();
    const dir = tempDir();
    try {
      const plain = `${dir}/plain.kdump`, withE = `${dir}/e.kdump`;
      const common = ["-c", "-d", "31", "--no-image-guard", "--message-level", "16"];
      const r0 = await runVmsift([...common, vmcore, plain]);
      assert.equal(r0.code, 0, r0.stderr);
      const r1 = await runVmsift([...common, "-e", vmcore, withE]);
      assert.equal(r1.code, 0, r1.stderr);
      const m = r1.stdout.match(/Excluded (\d+) unused vmemmap pages \(of (\d+) examined\)/);
      assert.ok(m, r1.stdout);
      const count = Number(m[1]);
      assert.equal(Number(m[2]), 512); // 128 MiB: one section, 512 vmemmap pages in one 2 MiB leaf

      const a = KdumpFile.open(plain), b = KdumpFile.open(withE);
      let got: number[];
      try {
        assert.equal(a.header.status & 0x10, 0);
        assert.equal(b.header.status & 0x10, 0x10);
        assert.equal(b.header.status & 0x1, 0x1); // still zlib
        got = [];
        for (let p = 0; p < a.maxMapnr; p++) {
          if (a.bitmap2.get(p) && !b.bitmap2.get(p)) got.push(p);
          assert.ok(!(b.bitmap2.get(p) && !a.bitmap2.get(p)), `pfn ${p} appeared`);
          assert.equal(a.bitmap1.get(p), b.bitmap1.get(p));
        }
        assert.equal(got.length, count);

        // Independent oracle over the plain dump's bitmaps.
        const core = ElfCore.open(vmcore);
        try {
          const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc));
          const model = buildMemoryModel(core, info);
          const o = oracle(
            new SimpleWalk(core, info),
            model.sparse.sections,
            model.maxMapnr,
            a.bitmap1,
            a.bitmap2,
          );
          assert.deepEqual(new Set(got), o.clear);
          // Every cleared page is a vmemmap page: the 2 MiB block of the one leaf.
          const v0 = o.vOf.get(0)!;
          for (const p of got) assert.ok(p >= v0 && p < v0 + 512);

          // makedumpfile 1.7.2 -e: its pages are a subset of ours; ours may add single 64-pfn words that
          // its rule (runs of at least 2 words) skips.
          await t.step({
            name: "makedumpfile 1.7.2 -e clears a subset of our pages",
            ignore: !haveProgram("makedumpfile"),
            fn: async () => {
              const mdfPlain = `${dir}/mdf.kdump`, mdfE = `${dir}/mdf-e.kdump`;
              const args = ["-c", "-d", "31", "--message-level", "0"];
              assert.equal((await run("makedumpfile", [...args, vmcore, mdfPlain])).code, 0);
              const re = await run("makedumpfile", [...args, "-e", "--work-dir", dir, vmcore, mdfE]);
              assert.equal(re.code, 0, re.out);
              const ma = KdumpFile.open(mdfPlain), mb = KdumpFile.open(mdfE);
              try {
                assert.equal(mb.header.status & 0x10, 0x10);
                const theirs = new Set<number>();
                for (let p = 0; p < ma.maxMapnr; p++) {
                  if (ma.bitmap2.get(p) && !mb.bitmap2.get(p)) theirs.add(p);
                }
                for (const p of theirs) {
                  assert.ok(got.includes(p), `makedumpfile cleared ${p.toString(16)}, we did not`);
                }
                for (const p of got) {
                  if (theirs.has(p)) continue;
                  const j = p - v0; // identity-ordered in this 2 MiB leaf
                  assert.equal(o.excl.get(j - 1) ?? false, false, `extra ${p.toString(16)} is not isolated`);
                  assert.equal(o.excl.get(j + 1) ?? false, false, `extra ${p.toString(16)} is not isolated`);
                }
                console.log(
                  `real fixture: vmsift -e clears ${got.length} vmemmap pages, makedumpfile ${theirs.size}`,
                );
              } finally {
                ma.close();
                mb.close();
              }
            },
          });
        } finally {
          core.close();
        }
      } finally {
        a.close();
        b.close();
      }

      await assertVerifies(withE, vmcore);
      assert.ok(Deno.statSync(withE).size < Deno.statSync(plain).size);

      await t.step({
        name: "crash with the debug vmlinux shows EXCLUDED VMEMMAP",
        ignore: !(haveProgram("crash") && haveVmlinux()),
        fn: async () => {
          const c = await run("crash", ["-s", VMLINUX, withE], "sys\nquit\n");
          assert.match(c.out, /page structures associated\s+with excluded pages may also be excluded/);
          assert.match(c.out, /\[EXCLUDED VMEMMAP\]/);
          assert.match(c.out, /RELEASE: 6\.1\.0-56-amd64/);
        },
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
