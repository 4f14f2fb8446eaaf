import assert from "node:assert/strict";
import { X86Translator } from "../core/pageTable.ts";
import { pfnToPage, readSparseMem } from "../core/sparsemem.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ERA } from "./support/fakeKernel.ts";
import { DIRECT, fakeDump, NPFN, sectionEntryPa, VMEMMAP } from "./support/fakeDump.ts";

Deno.test("sparsemem: present sections, flag bits masked, max_mapnr lowered", () => {
  const d = fakeDump(ERA.v6_1);
  // Section 1 present with bit 5 set (SECTION_IS_VMEMMAP_PREINIT-style flag); 2 absent; 3 not present.
  d.phys.u64(sectionEntryPa(1), VMEMMAP | 0x23n);
  d.phys.u64(sectionEntryPa(3), VMEMMAP | 0x2n);
  const info = d.info();
  const vm = X86Translator.fromVmcoreInfo(d.phys, info);
  const sm = readSparseMem(vm, info, 4 * 32768);
  assert.equal(sm.pagesPerSection, 32768);
  assert.equal(sm.sectionsExamined, 4);
  assert.deepEqual(sm.sections.map((s) => [s.nr, s.pfnStart, s.pfnEnd, s.flags]), [[0, 0, 32768, 7], [
    1,
    32768,
    65536,
    0x23,
  ]]);
  assert.equal(sm.sections[0].memMap, VMEMMAP);
  assert.equal(sm.sections[1].memMap, VMEMMAP + 32768n * 64n);
  assert.equal(sm.maxMapnr, 65536); // lowered from 4 sections to the end of section 1
  assert.deepEqual(sm.warnings, []);
  assert.equal(pfnToPage(sm, 5), VMEMMAP + 5n * 64n);
  assert.equal(pfnToPage(sm, 32768 + 1), VMEMMAP + 32769n * 64n);
  assert.equal(pfnToPage(sm, 65536), undefined);
});

Deno.test("sparsemem: max_mapnr below a section end clips it; never raised", () => {
  const d = fakeDump(ERA.v6_1);
  const info = d.info();
  const vm = X86Translator.fromVmcoreInfo(d.phys, info);
  const sm = readSparseMem(vm, info, NPFN);
  assert.equal(sm.sections.length, 1);
  assert.equal(sm.sections[0].pfnEnd, NPFN);
  assert.equal(sm.maxMapnr, NPFN);
});

Deno.test("sparsemem: SYMBOL(mem_section) as a pointer to the roots is dereferenced once", () => {
  const d = fakeDump(ERA.v6_1);
  // A pointer at PA 0x300000 to the real roots (PA 0x200000).
  d.phys.u64(0x300000, DIRECT + 0x200000n);
  const text = d.lines.join("\n").replace(
    /SYMBOL\(mem_section\)=[0-9a-f]+/,
    `SYMBOL(mem_section)=${(DIRECT + 0x300000n).toString(16)}`,
  );
  const info = VmcoreInfo.parse(text);
  const sm = readSparseMem(X86Translator.fromVmcoreInfo(d.phys, info), info, NPFN);
  assert.equal(sm.dereferenced, true);
  assert.equal(sm.sections[0].memMap, VMEMMAP);
});

Deno.test("sparsemem: no valid section → no sections, max_mapnr unchanged, warning", () => {
  const d = fakeDump(ERA.v6_1);
  d.phys.u64(sectionEntryPa(0), 0n);
  const info = d.info();
  const sm = readSparseMem(X86Translator.fromVmcoreInfo(d.phys, info), info, NPFN);
  assert.equal(sm.sections.length, 0);
  assert.equal(sm.maxMapnr, NPFN);
  assert.equal(sm.warnings.length, 1);
});
