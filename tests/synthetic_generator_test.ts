/**
 * Synthetic vmcore generator: determinism, and read-back of what it built through the project's own readers
 * (formats/elfCore.ts, core/vmcoreinfo.ts) plus an independent page-table walk and struct-page scan that
 * applies makedumpfile's classification rules — the counts must equal the manifest's.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ElfCore } from "../formats/elfCore.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { generate, type Manifest } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams, type SynthParams } from "../fixtures/synthetic/params.ts";
import { sha256File } from "./support/compare.ts";

const dir = Deno.makeTempDirSync({ prefix: "vmsift-synth-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

function gen(name: string, p: Partial<SynthParams>): { path: string; m: Manifest } {
  const path = `${dir}/${name}.vmcore`;
  const r = generate(normalizeParams(p), path);
  return { path, m: r.manifest };
}

Deno.test("synthetic: same seed gives the same bytes, another seed does not", async () => {
  const a = gen("det-a", { memBytes: 64 * MiB, seed: 42, content: "random" });
  const b = gen("det-b", { memBytes: 64 * MiB, seed: 42, content: "random" });
  const c = gen("det-c", { memBytes: 64 * MiB, seed: 43, content: "random" });
  assert.equal(await sha256File(a.path), await sha256File(b.path));
  assert.notEqual(await sha256File(a.path), await sha256File(c.path));
  assert.deepEqual(a.m, b.m);
  assert.equal(
    Deno.readTextFileSync(a.path + ".manifest.json"),
    Deno.readTextFileSync(b.path + ".manifest.json"),
  );
});

/** 4/5-level walk over the dump (independent of the generator's builder). */
function translate(core: ElfCore, root: number, levels: number, va: bigint): number | undefined {
  const shifts = [12n, 21n, 30n, 39n, 48n];
  const buf = new Uint8Array(8);
  let table = root;
  for (let lvl = levels - 1; lvl >= 0; lvl--) {
    if (!core.readPhys(table + Number((va >> shifts[lvl]) & 511n) * 8, buf)) return undefined;
    const e = new DataView(buf.buffer).getBigUint64(0, true);
    if (!(e & 1n)) return undefined;
    const base = e & 0x000ffffffffff000n;
    if (lvl === 0 || (lvl <= 2 && e & 0x80n)) {
      const mask = (1n << shifts[lvl]) - 1n;
      return Number((base & ~mask) + (va & mask));
    }
    table = Number(base);
  }
  return undefined;
}

function readVa(core: ElfCore, root: number, levels: number, va: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let done = 0; done < n;) {
    const a = va + BigInt(done);
    const pa = translate(core, root, levels, a);
    assert.ok(pa !== undefined, `unmapped 0x${a.toString(16)}`);
    const chunk = Math.min(n - done, 4096 - Number(a & 4095n));
    assert.ok(core.readPhys(pa, out.subarray(done, done + chunk)));
    done += chunk;
  }
  return out;
}

for (
  const variant of [
    { name: "4l-2m", p: { memBytes: 256 * MiB, seed: 3, content: "text" as const } },
    {
      name: "5l-4k",
      p: { memBytes: 128 * MiB, seed: 9, levels: 5 as const, vmemmap4k: true, directMap: "2m" as const },
    },
    { name: "6.12", p: { memBytes: 128 * MiB, seed: 4, scheme: "6.12" as const, content: "zero" as const } },
  ]
) {
  Deno.test(`synthetic ${variant.name}: notes, symbols, page tables and struct pages read back`, () => {
    const { path, m } = gen(`rb-${variant.name}`, variant.p);
    const core = ElfCore.open(path);
    try {
      assert.equal(core.nrCpus, 2);
      const prs = core.notes.filter((n) => n.name === "CORE" && n.type === 1);
      assert.ok(prs.every((n) => n.desc.length === 336));
      const vi = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc));
      assert.equal(vi.text, m.vmcoreinfo);
      assert.equal(core.segments.length, m.pt_load);
      assert.deepEqual(
        core.segments.map((s) => [s.paddr, s.memSize]),
        m.segments.map((s) => [s.paddr, s.size]),
      );
      assert.equal(vi.pageSize, 4096);
      const levels = vi.number("pgtable_l5_enabled") === 1n ? 5 : 4;
      assert.equal(levels, variant.p.levels ?? 4);
      const physBase = vi.requireNumber("phys_base");
      const root = Number(
        BigInt.asUintN(64, vi.requireSymbol("init_top_pgt") - 0xffffffff80000000n + physBase),
      );
      // init_uts_ns through the page tables and through the linear kernel-map formula
      const utsVa = vi.requireSymbol("init_uts_ns");
      const uts = readVa(core, root, levels, utsVa, 390);
      const field = (i: number) =>
        new TextDecoder().decode(uts.subarray(i * 65, i * 65 + 65)).replace(/\0.*$/s, "");
      assert.deepEqual([field(0), field(1), field(2), field(3), field(4)], [
        "Linux",
        m.nodename,
        vi.osrelease,
        m.kernel_version,
        "x86_64",
      ]);
      assert.equal(
        translate(core, root, levels, utsVa),
        Number(BigInt.asUintN(64, utsVa - 0xffffffff80000000n + physBase)),
      );
      assert.equal(vi.kernelOffset, vi.requireSymbol("_stext") - 0xffffffff81000000n);
      // direct map agrees with the PT_LOAD p_vaddr - p_paddr
      const seg = core.segments[1];
      assert.equal(translate(core, root, levels, seg.vaddr + 0x123456n), seg.paddr + 0x123456);

      // mem_section → struct pages → makedumpfile's rules
      const maxBits = Number(vi.requireNumber("MAX_PHYSMEM_BITS"));
      const nRoots = vi.length("mem_section")!;
      assert.equal(nRoots, 2 ** (maxBits - 27) / 128);
      const roots = readVa(core, root, levels, vi.requireSymbol("mem_section"), nRoots * 8);
      const rdv = new DataView(roots.buffer);
      const buddyV = Number(vi.requireNumber("PAGE_BUDDY_MAPCOUNT_VALUE")) >>> 0;
      const offV = vi.number("PAGE_OFFLINE_MAPCOUNT_VALUE");
      const offlineV = offV === undefined ? undefined : Number(offV) >>> 0;
      const hugeV = vi.number("PAGE_HUGETLB_MAPCOUNT_VALUE");
      const slabV = vi.number("PAGE_SLAB_MAPCOUNT_VALUE");
      const dtorOff = vi.offset("page.compound_dtor");
      const got = { free: 0, cache: 0, cache_private: 0, user: 0, hwpoison: 0, offline: 0 };
      const inSeg = (pfn: number) =>
        core.segments.some((s) => pfn * 4096 >= s.paddr && pfn * 4096 < s.paddr + s.memSize);
      for (let sec = 0; sec * 32768 < m.max_mapnr; sec++) {
        const rp = rdv.getBigUint64(Math.floor(sec / 128) * 8, true);
        if (rp === 0n) continue;
        const ent = new DataView(readVa(core, root, levels, rp + BigInt((sec % 128) * 32), 8).buffer);
        const coded = ent.getBigUint64(0, true);
        if (!(coded & 1n)) continue;
        const memMap = (coded & ~0x1fn) + BigInt(sec) * 32768n * 64n;
        const sp = readVa(core, root, levels, memMap, 32768 * 64);
        const dv = new DataView(sp.buffer);
        for (let i = 0; i < 32768; i++) {
          const pfn = sec * 32768 + i;
          if (pfn >= m.max_mapnr || !inSeg(pfn)) continue;
          const o = i * 64;
          const flags = dv.getUint32(o, true);
          const head = (flags & 0x10000) !== 0;
          const chead = dv.getUint32(o + 8, true);
          const mapping = dv.getUint32(o + 24, true);
          const mapcount = dv.getUint32(o + 48, true);
          const priv = dv.getUint32(o + 40, true);
          if (chead & 1) continue;
          let order = 0;
          let hugetlb = false;
          if (head) {
            if (dtorOff !== undefined) {
              hugetlb = sp[o + 64 + dtorOff] === 2;
              order = sp[o + 64 + vi.offset("page.compound_order")!];
            } else {
              order = sp[o + 64];
              hugetlb = hugeV !== undefined && mapcount === Number(hugeV);
            }
          }
          const slab = slabV !== undefined ? mapcount === Number(slabV) : (flags & (1 << 9)) !== 0;
          const anon = (mapping & 1) !== 0 && !slab;
          const isCache = (flags & (1 << 4)) !== 0;
          const n = 1 << order;
          if (mapcount === buddyV && !slab) {
            got.free += 1 << priv;
            i += (1 << priv) - 1;
            continue;
          }
          if (isCache && !anon) {
            if (flags & (1 << 13)) got.cache_private += n;
            else got.cache += n;
          } else if (anon || hugetlb) got.user += n;
          else if (flags & (1 << 23)) got.hwpoison += 1;
          else if (offlineV !== undefined && mapcount === offlineV && !slab) got.offline += 1;
          else continue;
          i += n - 1;
        }
      }
      const d31 = m.dump_levels["31"];
      assert.deepEqual(got, {
        free: d31.free,
        cache: d31.cache,
        cache_private: d31.cache_private,
        user: d31.user,
        hwpoison: d31.hwpoison,
        offline: d31.offline,
      });
      assert.ok(got.free > 0 && got.cache > 0 && got.cache_private > 0 && got.user > 0);
      // the vmemmap of free memory is not zero, and free pages themselves are holes reading as zero
      assert.ok(d31.total === m.max_mapnr && d31.original + d31.memory_hole === d31.total);
    } finally {
      core.close();
    }
  });
}

Deno.test("synthetic: manifest level arithmetic is consistent", () => {
  const { m } = gen("arith", { memBytes: 64 * MiB, seed: 11 });
  for (const [lv, c] of Object.entries(m.dump_levels)) {
    const L = Number(lv);
    assert.equal(c.excluded, c.zero + c.cache + c.cache_private + c.user + c.free + c.hwpoison + c.offline);
    assert.equal(c.remaining, c.original - c.excluded);
    if (!(L & 1)) assert.equal(c.zero, 0);
    if (!(L & 16)) assert.equal(c.free, 0);
    assert.equal(c.hwpoison, m.dump_levels["0"].hwpoison); // excluded at every level
    assert.equal(c.offline, m.dump_levels["0"].offline);
  }
  assert.ok(m.dump_levels["1"].zero > m.dump_levels["31"].zero); // free pages count as zero without -d 16
});

Deno.test("generator CLI: `deno task fixture --help` prints the usage and exits 0; a bad argument exits 2", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const run = (args: string[]) => {
    const o = new Deno.Command(Deno.execPath(), { args, cwd: root, stdout: "piped", stderr: "piped" })
      .outputSync();
    return { code: o.code, out: new TextDecoder().decode(o.stdout), err: new TextDecoder().decode(o.stderr) };
  };
  const h = run(["task", "-q", "fixture", "--help"]);
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /^usage: deno task fixture --mem SIZE --out FILE /);
  assert.doesNotMatch(h.err, /error/);
  const bad = run(["run", "-A", "fixtures/synthetic/cli.ts", "--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^error: unknown argument --bogus\nusage: /);
});
