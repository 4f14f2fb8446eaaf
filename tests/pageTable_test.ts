import assert from "node:assert/strict";
import { formatVtop, kernelImagePa, X86Translator } from "../core/pageTable.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { baseVmcoreinfo, FakePageTables, FakePhys } from "./support/fakeKernel.ts";

const MiB = 1 << 20;
const DIRECT = 0xffff888000000000n;
const VMEMMAP = 0xffffea0000000000n;
const VMALLOC = 0xffffc90000000000n;

function setup(levels: 4 | 5, extraBits = 0n) {
  const phys = new FakePhys(32 * MiB);
  const pt = new FakePageTables(phys, levels, 0x100000, extraBits);
  pt.map1g(DIRECT, 0x40000000); // 1 GiB leaf (target outside memory: vtop does not read it)
  pt.map2m(VMEMMAP, 0x600000);
  pt.map2m(VMEMMAP + 0x200000n, 0x800000); // physically adjacent → one piece
  pt.map2m(VMEMMAP + 0x400000n, 0x1000000); // not adjacent → new piece
  pt.map4k(VMALLOC, 0x5000);
  pt.map4k(VMALLOC + 0x1000n, 0x9000);
  phys.bytes.set(new TextEncoder().encode("he"), 0x5ffe);
  phys.bytes.set(new TextEncoder().encode("world"), 0x9000);
  const tr = new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels, smeMask: extraBits });
  return { phys, pt, tr };
}

for (const levels of [4, 5] as const) {
  Deno.test(`pageTable: ${levels}-level 1G/2M/4K leaves`, () => {
    const { tr } = setup(levels);
    assert.equal(tr.vtop(DIRECT + 0x12345678n), 0x40000000 + 0x12345678);
    assert.equal(tr.vtop(VMEMMAP + 0x1234n), 0x600000 + 0x1234);
    assert.equal(tr.vtop(VMEMMAP + 0x200000n + 0x10n), 0x800010);
    assert.equal(tr.vtop(VMEMMAP + 0x5ffff0n), 0x11ffff0);
    assert.equal(tr.vtop(VMALLOC + 0xabcn), 0x5abc);
    assert.equal(tr.vtop(VMALLOC + 0x1004n), 0x9004);
    assert.equal(tr.vtop(VMALLOC + 0x2000n), undefined); // PTE not present
    assert.equal(tr.vtop(0xffffc80000000000n), undefined); // PGD not present
    const out = new Uint8Array(7);
    assert.ok(tr.readVirt(VMALLOC + 0xffen, out)); // crosses into a non-adjacent page
    assert.equal(new TextDecoder().decode(out), "heworld");
    assert.equal(tr.readVirt(VMALLOC + 0x1ffen, new Uint8Array(4)), false);
  });

  Deno.test(`pageTable: ${levels}-level walk steps`, () => {
    const { tr } = setup(levels);
    const w = tr.walk(VMALLOC + 0x1004n);
    assert.deepEqual(
      w.steps.map((s) => s.level),
      levels === 5 ? ["PGD", "P4D", "PUD", "PMD", "PTE"] : ["PGD", "PUD", "PMD", "PTE"],
    );
    assert.equal(w.paddr, 0x9004);
    assert.equal(w.pageSize, 4096);
    // PGD index of 0xffffc90000000000: bits 39-47 = 0x192 (4-level); bits 48-56 = 0x1ff (5-level).
    assert.equal(w.steps[0].index, levels === 5 ? 0x1ff : 0x192);
    assert.equal(w.steps[0].entryPa, w.steps[0].tablePa + 8 * w.steps[0].index);
    const text = formatVtop(w);
    assert.match(text, /^Translating virtual address ffffc90000001004 to physical address\.\n/);
    assert.match(text, /\n {2}PTE : +[0-9a-f]+ => +90[0-9a-f]{2}\n/);
    assert.match(text, /\nffffc90000001004 {2}9004\n$/);
    const w2 = tr.walk(VMEMMAP + 8n);
    assert.equal(w2.pageSize, 2 * MiB);
    assert.equal(w2.steps[w2.steps.length - 1].level, "PMD");
    assert.ok(tr.walk(VMALLOC + 0x2000n).error);
  });

  Deno.test(`pageTable: ${levels}-level mapRun pieces`, () => {
    const { tr } = setup(levels);
    const pieces = tr.mapRun(VMEMMAP + 0x1000n, 6 * MiB - 0x1000);
    assert.deepEqual(pieces.map((p) => [p.paddr, p.len]), [[0x601000, 4 * MiB - 0x1000], [
      0x1000000,
      2 * MiB,
    ]]);
    // Unmapped tail: one piece with paddr undefined, exact length.
    const p2 = tr.mapRun(VMEMMAP + 0x400000n, 4 * MiB);
    assert.deepEqual(p2.map((p) => [p.paddr, p.len]), [[0x1000000, 2 * MiB], [undefined, 2 * MiB]]);
    // A huge unmapped range is skipped a table entry at a time, not a page at a time.
    const p3 = tr.mapRun(0xffffc80000000000n, 2 ** 40);
    assert.deepEqual(p3.map((p) => [p.paddr, p.len]), [[undefined, 2 ** 40]]);
  });
}

Deno.test("pageTable: sme_mask is cleared from entries", () => {
  const C = 1n << 47n;
  const { tr, phys, pt } = setup(4, C);
  assert.equal(tr.vtop(VMALLOC + 4n), 0x5004);
  assert.equal(tr.vtop(VMEMMAP), 0x600000);
  // Without the mask the same tables point outside memory.
  const bad = new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels: 4 });
  assert.equal(bad.vtop(VMALLOC + 4n), undefined);
});

Deno.test("pageTable: loops and out-of-memory pointers give undefined, never hang", () => {
  const { phys, pt } = setup(4);
  // PUD entry pointing far outside memory.
  pt.rawEntry(0xffff900000000000n, 1, 0x7fff000000n | 0x63n);
  // PMD entry pointing back to the root table (a loop): the walk has a fixed depth.
  const va = 0xffffa00000000000n;
  pt.rawEntry(va, 2, BigInt(pt.root) | 0x63n);
  // (Translators cache table pages: the dump is immutable, so build it after writing the tables.)
  const tr = new X86Translator(phys, { rootPa: pt.root, physBase: 0n, levels: 4 });
  assert.equal(tr.vtop(0xffff900000000000n), undefined);
  const w = tr.walk(va);
  assert.equal(w.steps.length, 4);
  assert.equal(w.steps[3].tablePa, pt.root);
  // mapRun over the looping region stays bounded and covers the range exactly.
  assert.equal(tr.mapRun(va, 8 * MiB).reduce((n, p) => n + p.len, 0), 8 * MiB);
});

Deno.test("pageTable: kernel image window uses phys_base (negative, mod 2^64)", () => {
  // The real fixture: _stext ffffffff9d400000, phys_base -473956352 → 16 MiB.
  assert.equal(kernelImagePa(0xffffffff9d400000n, -473956352n), 0x1000000);
  assert.equal(kernelImagePa(0xffffffff81000000n, 0n), 0x1000000);
  const phys = new FakePhys(32 * MiB);
  const pt = new FakePageTables(phys, 4, 0x200000);
  const physBase = -0x1000000n;
  const rootSym = 0xffffffff80000000n + BigInt(pt.root) - physBase;
  const info = VmcoreInfo.parse(baseVmcoreinfo(rootSym, physBase, ["NUMBER(pgtable_l5_enabled)=0"]));
  const tr = X86Translator.fromVmcoreInfo(phys, info);
  assert.equal(tr.rootPa, pt.root);
  assert.equal(tr.vtop(0xffffffff81000000n + 0x1234n), 0x1234);
  // The walk does not use the formula: nothing is mapped in these tables.
  assert.equal(tr.walk(0xffffffff81001234n).paddr, undefined);
  pt.map2m(0xffffffff81000000n, 0);
  const tr2 = X86Translator.fromVmcoreInfo(phys, info);
  assert.equal(tr2.walk(0xffffffff81001234n).paddr, 0x1234);
});
