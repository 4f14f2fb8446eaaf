/**
 * The memory model and the struct-page scan on the real 6.1 fixture, against makedumpfile 1.7.2's counts
 * (expected.json). Zero pages are found later, at copy time, so at -d 31 only the non-zero classes are
 * compared here (and bitmap 2 minus makedumpfile's zero count must equal its "remaining").
 *
 * Kernel image guard: the fixture's VMCOREINFO exports SYMBOL(_stext) but not SYMBOL(_end); the image end is
 * then taken from the kernel's own page-table mapping of its image (pfn 0x1000..0x4600, 54 MiB). With the
 * guard off the counts equal makedumpfile's exactly; with it on (the default) the pages it keeps are pinned
 * below: they are freed image memory (init sections, text/rodata gaps) that the kernel reused as page cache.
 */
import assert from "node:assert/strict";
import { MemBitmap } from "../core/bitmap.ts";
import { buildMemoryModel, type MemoryModel } from "../core/memoryModel.ts";
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
      // No SYMBOL(_end) in this VMCOREINFO: the end comes from the page-table mapping of the image.
      assert.deepEqual(guarded.model.kernelImage, {
        startPfn: 0x1000,
        endPfn: 0x4600,
        source: "_stext..end of its page-table mapping",
      });
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
  { name: "real 6.1: the kernel-image guard keeps exactly the image pages makedumpfile excludes", ignore },
  async () => {
    const off = await open(false);
    const on = await open(true);
    try {
      // Pages moved by the guard at each level (cache, private cache, user, free), pinned.
      const moved: Record<number, number[]> = {
        2: [2354, 0, 0, 0],
        4: [2354, 126, 0, 0],
        8: [0, 0, 23, 0],
        16: [0, 0, 0, 3],
        31: [2354, 126, 23, 3],
      };
      for (const level of [2, 4, 8, 16, 31]) {
        const a = bitmaps(off.core, off.model.maxMapnr);
        const b = bitmaps(on.core, on.model.maxMapnr);
        const ra = excludeUnnecessaryPages(off.model, level, a.b1, a.b2).counts;
        const rb = excludeUnnecessaryPages(on.model, level, b.b1, b.b2).counts;
        const diff = [
          ra.cache - rb.cache,
          ra.cachePrivate - rb.cachePrivate,
          ra.user - rb.user,
          ra.free - rb.free,
        ];
        assert.deepEqual(diff, moved[level], `-d ${level}`);
        assert.equal(rb.keptKernelImage, diff.reduce((x, y) => x + y), `-d ${level}`);
        // Every bit that differs lies inside the image range; nothing outside moved.
        const img = on.model.kernelImage!;
        for (let p = 0; p < off.model.maxMapnr; p++) {
          if (a.b2.get(p) !== b.b2.get(p)) {
            assert.ok(p >= img.startPfn && p < img.endPfn, `pfn 0x${p.toString(16)} outside the image`);
            assert.ok(b.b2.get(p), "the guard only keeps");
          }
        }
      }
    } finally {
      off.core.close();
      on.core.close();
    }
  },
);
