/**
 * The memory model and the struct-page scan on the real 6.1 fixture, against makedumpfile 1.7.2's counts
 * (expected.json). Zero pages are found later, at copy time, so at -d 31 only the non-zero classes are
 * compared here (and bitmap 2 minus makedumpfile's zero count must equal its "remaining").
 *
 * Kernel image guard: built from the dump's kallsyms (core/imageGuard.ts), it protects the live sections of the
 * image and lets the parts the kernel freed follow their struct page; on this dump the counts are then
 * makedumpfile's with the guard on or off.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import {
  buildMemoryModel,
  kernelImageFromMapping,
  type MemoryModel,
  reservedOnly,
} from "../core/memoryModel.ts";
import { formatVtop, kernelImagePa } from "../core/pageTable.ts";
import { excludeUnnecessaryPages } from "../core/scan.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { haveReal, realExpected, realVmcore } from "./support/fixture.ts";

const ignore = !haveReal();

async function open(guard = false): Promise<{ core: ElfCore; info: VmcoreInfo; model: MemoryModel }> {
  const core = ElfCore.open(await realVmcore());
  const note = core.vmcoreinfoNote;
  assert.ok(note);
  const info = VmcoreInfo.parse(new TextDecoder().decode(note.desc), core.label);
  return { core, info, model: buildMemoryModel(core, info, { kernelImageGuard: guard }) };
}

function bitmaps(core: ElfCore, maxMapnr: number) {
  const b1 = new MemBitmap(maxMapnr);
  for (const s of core.segments) {
    const a = Math.floor(s.paddr / 4096), e = Math.min(maxMapnr, Math.ceil((s.paddr + s.memSize) / 4096));
    if (e > a) b1.setRange(a, e);
  }
  const b2 = new MemBitmap(maxMapnr);
  b2.bytes.set(b1.bytes);
  return { b1, b2 };
}

Deno.test(
  { name: "real 6.1: memory model (max_mapnr 0x8000, one section, page-type scheme)", ignore },
  async () => {
    const { core, model } = await open();
    try {
      assert.equal(model.maxMapnrLoads, 0x100000);
      assert.equal(model.maxMapnr, 0x8000);
      assert.equal(model.sparse.sections.length, 1);
      assert.equal(model.sparse.sections[0].pfnEnd, 0x8000);
      assert.equal(model.scheme.typeScheme, "bitclear");
      assert.deepEqual(model.scheme.order, { kind: "field", offset: 17, width: 1 });
      assert.equal(model.kernelImage, undefined); // guard off
      assert.equal(model.physBase, -473956352n);
    } finally {
      core.close();
    }
    const guarded = await open(true);
    try {
      // From kallsyms: [_text, _end) without the parts the kernel freed (text/rodata and rodata/data gaps,
      // init, SMP locks, unused decrypted bss, brk past _brk_end); addresses checked against System.map in
      // tests/kallsyms_test.ts, the section bounds against it below.
      const img = guarded.model.kernelImage!;
      assert.deepEqual(img.ranges, [
        { startPfn: 0x1000, endPfn: 0x1e02 }, // text: _stext .. PFN_ALIGN(_etext)
        { startPfn: 0x2000, endPfn: 0x28eb }, // rodata: __start_rodata .. PFN_ALIGN(__end_rodata)
        { startPfn: 0x2a00, endPfn: 0x3044 }, // data, bug/ORC tables, vvar: _sdata .. __init_begin
        { startPfn: 0x330f, endPfn: 0x4203 }, // nosave + bss: __smp_locks_end .. __start_bss_decrypted_unused
        { startPfn: 0x4400, endPfn: 0x4411 }, // brk: __brk_base .. PAGE_ALIGN(_brk_end)
      ]);
      assert.equal(img.startPfn, 0x1000);
      assert.equal(img.endPfn, 0x4411);
      assert.match(img.source, /^kallsyms: text ffffffff9d400000-ffffffff9e202000, rodata /);
      // Without kallsyms (kernels before 6.0): the pages the image alias maps at the linear offset (all of
      // [_stext, 0xa0a00000): no PTI in this guest, freed parts stay mapped) whose struct page is PG_reserved
      // give exactly the same ranges.
      const mapped = kernelImageFromMapping(guarded.core, guarded.info, guarded.model.physBase, 4096)!;
      assert.deepEqual(mapped.ranges, [{ startPfn: 0x1000, endPfn: 0x4600 }]);
      const live = reservedOnly(mapped, guarded.model.vm, guarded.info, guarded.model.sparse)!;
      assert.deepEqual(live.ranges, img.ranges);
    } finally {
      guarded.core.close();
    }
  },
);

Deno.test({ name: "real 6.1: vtop of known symbols", ignore }, async () => {
  const { core, info, model } = await open();
  try {
    const vm = model.vm;
    const uts = info.requireSymbol("init_uts_ns") + BigInt(info.offset("uts_namespace.name") ?? 0);
    // The walk (no linear shortcut) and the linear formula agree on kernel-image symbols.
    for (const sym of ["init_uts_ns", "_stext", "prb", "init_top_pgt", "clear_seq"]) {
      const v = info.requireSymbol(sym);
      const w = vm.walk(v);
      assert.equal(w.paddr, kernelImagePa(v, model.physBase), sym);
      assert.equal(vm.vtop(v), w.paddr, sym);
    }
    assert.equal(vm.vtop(info.requireSymbol("_stext")), 0x1000000); // loaded at 16 MiB despite KASLR
    const name = new Uint8Array(65 * 3);
    assert.ok(vm.readVirt(uts, name));
    const field = (i: number) =>
      new TextDecoder().decode(name.subarray(i * 65, i * 65 + 65)).replace(/\0.*$/s, "");
    assert.equal(field(0), "Linux");
    assert.equal(field(2), realExpected().osrelease);
    const text = formatVtop(vm.walk(info.requireSymbol("init_uts_ns")));
    assert.match(
      text,
      /\n {2}PMD : +[0-9a-f]+ => +[0-9a-f]+\nVIRTUAL {11}PHYSICAL\nffffffff9effb000 {2}2bfb000\n$/,
    );
    // The vmemmap and the mem_section roots are outside the kernel image: only the walk reaches them.
    const mm = model.sparse.sections[0].memMap;
    assert.equal(vm.walk(mm).pageSize, 2 << 20);
    const pieces = vm.mapRun(mm, 0x8000 * 64);
    assert.ok(pieces.every((p) => p.paddr !== undefined && p.len >= 2 << 20));
  } finally {
    core.close();
  }
});

Deno.test(
  { name: "real 6.1: struct-page scan counts equal makedumpfile's (-d 2 4 8 16 31)", ignore },
  async () => {
    const { core, model } = await open();
    const exp = realExpected().dump_levels;
    try {
      for (const level of [2, 4, 8, 16, 31]) {
        const e = exp[String(level)];
        const { b1, b2 } = bitmaps(core, model.maxMapnr);
        assert.equal(b1.popcount(), e.original);
        const r = excludeUnnecessaryPages(model, level, b1, b2);
        const c = r.counts;
        assert.deepEqual(
          [c.cache, c.cachePrivate, c.user, c.free, c.hwpoison, c.offline],
          [e.cache, e.cache_private, e.user, e.free, e.hwpoison, e.offline],
          `-d ${level}`,
        );
        assert.equal(c.keptKernelImage, 0);
        assert.equal(c.keptUnreadable, 0);
        assert.equal(c.keptNoMemMap, 0);
        assert.equal(c.badBuddyOrder, 0);
        // Remaining pages: bitmap 2 minus the zero pages makedumpfile finds at copy time.
        assert.equal(b2.popcount() - e.zero, e.remaining, `-d ${level}`);
        // One pass over the struct pages: exactly max_mapnr × SIZE(page) bytes read.
        assert.equal(r.vmemmapBytesRead, 0x8000 * 64);
        const rate = Math.round(r.pagesScanned / Math.max(r.seconds, 1e-6));
        console.log(
          `-d ${level}: ${r.pagesScanned} struct pages in ${
            (r.seconds * 1000).toFixed(1)
          } ms (${rate} pages/s)`,
        );
      }
      // -d 0 and -d 1: the scan still runs (PG_hwpoison is known) and excludes nothing on this dump.
      for (const level of [0, 1]) {
        const { b1, b2 } = bitmaps(core, model.maxMapnr);
        const r = excludeUnnecessaryPages(model, level, b1, b2);
        assert.equal(r.ran, true);
        assert.equal(b2.popcount(), b1.popcount());
      }
    } finally {
      core.close();
    }
  },
);

Deno.test(
  { name: "real 6.1: the kallsyms image guard keeps every live image page and moves nothing else", ignore },
  async () => {
    const off = await open(false);
    const on = await open(true);
    try {
      const img = on.model.kernelImage!;
      for (const level of [2, 4, 8, 16, 31]) {
        const a = bitmaps(off.core, off.model.maxMapnr);
        const b = bitmaps(on.core, on.model.maxMapnr);
        const ra = excludeUnnecessaryPages(off.model, level, a.b1, a.b2).counts;
        const rb = excludeUnnecessaryPages(on.model, level, b.b1, b.b2).counts;
        // On this dump no live image page is a candidate for exclusion: the counts are makedumpfile's (the
        // whole-image guard of before kept 2506 pages at -d 31: freed image memory reused as page cache).
        assert.deepEqual(rb, ra, `-d ${level}`);
        assert.equal(rb.keptKernelImage, 0);
        // No page of a live section is excluded.
        for (const r of img.ranges!) {
          assert.equal(
            b.b2.popcount(r.startPfn, r.endPfn),
            r.endPfn - r.startPfn,
            `-d ${level} ${r.startPfn}`,
          );
        }
      }
    } finally {
      off.core.close();
      on.core.close();
    }
  },
);
