/**
 * kallsyms decoding (core/kallsyms.ts): every address encoding and both name-length forms on tables built by
 * fixtures/synthetic/kallsyms.ts (which follows scripts/kallsyms.c's layout), and on the real 6.1 fixture
 * every SYMBOL() of VMCOREINFO against the decoded table.
 */
import assert from "node:assert/strict";
import { kallsymsLocations, readKallsyms } from "../core/kallsyms.ts";
import { VmsiftError } from "../core/errors.ts";
import type { VirtualMemory } from "../core/virtMem.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import {
  buildKallsyms,
  type KallsymsSymbol,
  type KallsymsWriteEncoding,
} from "../fixtures/synthetic/kallsyms.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { haveReal, isFile, realVmcore } from "./support/fixture.ts";

/** Virtual memory holding one blob at `at` (everything else unmapped). */
class BlobVm implements VirtualMemory {
  constructor(readonly at: bigint, readonly bytes: Uint8Array) {}
  vtop(): number | undefined {
    return undefined;
  }
  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    const off = vaddr - this.at;
    if (off < 0n || off + BigInt(out.length) > BigInt(this.bytes.length)) return false;
    out.set(this.bytes.subarray(Number(off), Number(off) + out.length));
    return true;
  }
}

const TEXT = 0xffffffff9d400000n;

function symbols(count: number, extra: KallsymsSymbol[] = []): KallsymsSymbol[] {
  const out: KallsymsSymbol[] = [...extra];
  out.push({ name: "_text", type: "T", address: TEXT }, { name: "_stext", type: "T", address: TEXT });
  for (let i = 0; i < count; i++) {
    out.push({
      name: `sym_${i}_${"abcdefgh".slice(0, i % 8)}`,
      type: i % 3 ? "t" : "D",
      address: TEXT + 0x40n * BigInt(i + 1),
    });
  }
  out.push({ name: "init_uts_ns", type: "D", address: TEXT + 0x1000000n });
  return out;
}

function vmcoreinfo(tables: Record<string, bigint>, release: string, more: string[] = []): VmcoreInfo {
  const lines = [`OSRELEASE=${release}`, "PAGESIZE=4096", `SYMBOL(_stext)=${TEXT.toString(16)}`];
  lines.push(`SYMBOL(init_uts_ns)=${(TEXT + 0x1000000n).toString(16)}`);
  for (const [k, v] of Object.entries(tables)) lines.push(`SYMBOL(${k})=${v.toString(16)}`);
  return VmcoreInfo.parse([...lines, ...more].join("\n") + "\n", "test");
}

function roundTrip(
  encoding: KallsymsWriteEncoding,
  syms: KallsymsSymbol[],
  longNames: boolean,
  release: string,
) {
  const at = 0xffffffff9e5619c8n;
  const blob = buildKallsyms({ symbols: syms, encoding, longNames, at });
  const info = vmcoreinfo(blob.tables, release);
  const k = readKallsyms(new BlobVm(at, blob.bytes), info);
  assert.equal(k.encoding, encoding);
  assert.equal(k.names.length, syms.length);
  for (let i = 0; i < syms.length; i++) {
    assert.equal(k.names[i], syms[i].name, `name ${i}`);
    assert.equal(k.types[i], syms[i].type, `type ${i}`);
    assert.equal(k.addresses[i], syms[i].address, `address of ${syms[i].name}`);
  }
  assert.equal(k.lookup("init_uts_ns"), TEXT + 0x1000000n);
  // Decoding only some names: the same answers for them, nothing else kept.
  const some = readKallsyms(new BlobVm(at, blob.bytes), info, { only: ["sym_7_abcdefg", "sym_12_abcd"] });
  assert.equal(some.encoding, encoding);
  assert.deepEqual(
    some.names.filter((n) => n.startsWith("sym_")),
    ["sym_7_abcdefg", "sym_12_abcd"].filter((n) => k.names.includes(n)),
  );
  for (const n of [...some.names, "init_uts_ns", "_stext"]) assert.equal(some.lookup(n), k.lookup(n), n);
  assert.deepEqual(k.checks.map((c) => `${c.name}:${c.verdict}`).filter((s) => !s.startsWith("kallsyms_")), [
    "_stext:equal",
    "init_uts_ns:equal",
  ]);
  return k;
}

Deno.test("kallsyms: absolute addresses (kallsyms_addresses, CONFIG_KALLSYMS_BASE_RELATIVE=n)", () => {
  roundTrip("absolute", symbols(300), false, "5.15.0");
});

Deno.test("kallsyms: base-relative offsets (arm64 and most architectures before 7.0)", () => {
  roundTrip("base-relative", symbols(300), true, "6.1.0");
});

Deno.test("kallsyms: absolute-percpu (x86_64 SMP before 6.15): per-cpu symbols are absolute", () => {
  const percpu: KallsymsSymbol[] = [
    { name: "__per_cpu_start", type: "D", address: 0n },
    { name: "fixed_percpu_data", type: "D", address: 0n },
    { name: "cpu_number", type: "D", address: 0x21000n },
  ];
  const k = roundTrip("absolute-percpu", symbols(300, percpu), true, "6.1.0-56-amd64");
  assert.equal(k.lookup("cpu_number"), 0x21000n);
});

Deno.test("kallsyms: place-relative offsets (7.0+, no kallsyms_relative_base)", () => {
  const syms = symbols(300, [{ name: "below_tables", type: "t", address: TEXT }]);
  const k = roundTrip("place-relative", syms, true, "7.0.0");
  assert.equal(kallsymsLocations(vmcoreinfo({}, "7.0"))?.relativeBase, undefined);
  assert.equal(k.lookup("below_tables"), TEXT);
});

Deno.test("kallsyms: two-byte name lengths (6.1+) and the one-byte form of older kernels", () => {
  const longName = randomName();
  const syms = symbols(50, [{ name: longName, type: "t", address: TEXT }]);
  const blob = buildKallsyms({ symbols: syms, encoding: "absolute-percpu", longNames: true, at: 0n });
  assert.ok(
    (blob.bytes[Number(blob.tables.kallsyms_names)] & 0x80) !== 0,
    "the long name takes two count bytes",
  );
  const k = roundTrip("absolute-percpu", syms, true, "6.1.0");
  assert.equal(k.longNames, true);
  assert.equal(k.names[0], longName);
});

/** 200 characters without repeated substrings worth a token. */
function randomName(): string {
  let x = 12345;
  return Array.from({ length: 200 }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return String.fromCharCode(33 + ((x >>> 16) % 90));
  }).join("");
}

Deno.test("kallsyms: one-byte counts of 128..255 tokens on a pre-6.1 kernel", () => {
  const name = randomName();
  const syms = symbols(20, [{ name, type: "t", address: TEXT }]);
  const at = 0xffffffff9e5619c8n;
  // Written with one-byte counts: build as "long" then rewrite the first entry's two count bytes as one.
  const blob = buildKallsyms({ symbols: syms, encoding: "absolute", longNames: true, at });
  const namesOff = Number(blob.tables.kallsyms_names - at);
  const b0 = blob.bytes[namesOff], b1 = blob.bytes[namesOff + 1];
  const count = (b0 & 0x7f) | (b1 << 7);
  assert.ok(count >= 128 && count < 256);
  const bytes = new Uint8Array(blob.bytes.length - 1);
  bytes.set(blob.bytes.subarray(0, namesOff));
  bytes[namesOff] = count;
  bytes.set(blob.bytes.subarray(namesOff + 2), namesOff + 1);
  const tables = { ...blob.tables };
  for (const key of ["kallsyms_token_table", "kallsyms_token_index"]) tables[key] -= 1n;
  // Token index must stay 2-aligned for the kernel, not for the decoder: a shifted blob is fine here.
  const k = readKallsyms(new BlobVm(at, bytes), vmcoreinfo(tables, "5.10.0"));
  assert.equal(k.longNames, false);
  assert.equal(k.names[0], name);
  assert.equal(k.lookup("_stext"), TEXT);
});

Deno.test("kallsyms: errors name what is missing or wrong", () => {
  const info = VmcoreInfo.parse("OSRELEASE=5.10.0\nSYMBOL(_stext)=ffffffff81000000\n", "vmcore");
  assert.throws(
    () => readKallsyms(new BlobVm(0n, new Uint8Array(0)), info),
    (e: unknown) =>
      e instanceof VmsiftError && /no kallsyms in VMCOREINFO/.test(e.message) &&
      /SYMBOL\(kallsyms_names\)/.test(e.message),
  );
  const at = 0xffffffff9e5619c8n;
  const blob = buildKallsyms({ symbols: symbols(10), encoding: "base-relative", longNames: true, at });
  const wrong = VmcoreInfo.parse(
    vmcoreinfo(blob.tables, "6.1").text.replace(
      `SYMBOL(_stext)=${TEXT.toString(16)}`,
      "SYMBOL(_stext)=ffffffff81000000",
    ),
    "vmcore",
  );
  assert.throws(
    () => readKallsyms(new BlobVm(at, blob.bytes), wrong),
    (e: unknown) => e instanceof VmsiftError && /no address encoding gives SYMBOL\(_stext\)/.test(e.message),
  );
});

Deno.test(
  { name: "kallsyms: real 6.1 fixture, every SYMBOL() of VMCOREINFO", ignore: !haveReal() },
  async () => {
    const core = ElfCore.open(await realVmcore());
    try {
      const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc), core.label);
      const model = buildMemoryModel(core, info, { kernelImageGuard: false });
      const k = readKallsyms(model.vm, info);
      assert.equal(k.encoding, "absolute-percpu");
      assert.equal(k.longNames, true);
      assert.equal(k.names.length, 94266);
      const verdicts = Object.fromEntries(k.checks.map((c) => [c.name, c.verdict]));
      // Every SYMBOL() kallsyms holds is equal; mem_section is exported as the value of the pointer
      // (VMCOREINFO_SYMBOL_ARRAY with SPARSEMEM_EXTREME); the others are macros (node_online_map,
      // swapper_pg_dir) or kallsyms' own tables, which kallsyms leaves out.
      assert.deepEqual(verdicts, {
        init_uts_ns: "equal",
        node_online_map: "absent",
        swapper_pg_dir: "absent",
        _stext: "equal",
        vmap_area_list: "equal",
        mem_section: "pointer",
        prb: "equal",
        printk_rb_static: "equal",
        clear_seq: "equal",
        kallsyms_names: "absent",
        kallsyms_num_syms: "absent",
        kallsyms_token_table: "absent",
        kallsyms_token_index: "absent",
        kallsyms_offsets: "absent",
        kallsyms_relative_base: "absent",
        init_top_pgt: "equal",
        node_data: "equal",
      });
      // swapper_pg_dir is init_top_pgt on x86_64.
      assert.equal(k.lookup("init_top_pgt"), info.symbol("swapper_pg_dir"));
      // Per-cpu symbols are small absolute values.
      assert.equal(k.lookup("__per_cpu_start"), 0n);
    } finally {
      core.close();
    }
  },
);

const SYSTEM_MAP = "/usr/lib/debug/boot/System.map-6.1.0-56-amd64";
const haveSystemMap = isFile(SYSTEM_MAP);

Deno.test(
  {
    name: "kallsyms: real 6.1 fixture, every symbol equals System.map + KERNELOFFSET",
    ignore: !haveReal() || !haveSystemMap,
  },
  async () => {
    const core = ElfCore.open(await realVmcore());
    try {
      const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc), core.label);
      const k = readKallsyms(buildMemoryModel(core, info, { kernelImageGuard: false }).vm, info);
      const map = new Map<string, bigint[]>();
      for (const line of Deno.readTextFileSync(SYSTEM_MAP).split("\n")) {
        const [a, , n] = line.split(" ");
        if (n === undefined) continue;
        let v = BigInt("0x" + a);
        if (v >= 0xffffffff80000000n) v += info.kernelOffset!; // KASLR moves the image, not per-cpu offsets
        const l = map.get(n);
        if (l) l.push(v);
        else map.set(n, [v]);
      }
      let wrong = 0;
      for (let i = 0; i < k.names.length; i++) if (!map.get(k.names[i])?.includes(k.addresses[i])) wrong++;
      assert.equal(wrong, 0);
    } finally {
      core.close();
    }
  },
);

Deno.test("kallsyms + BTF: the synthetic generator's tables read back as its manifest says", async () => {
  const { generate } = await import("../fixtures/synthetic/generate.ts");
  const { MiB, normalizeParams } = await import("../fixtures/synthetic/params.ts");
  const { readKernelBtf } = await import("../core/btf.ts");
  const dir = Deno.makeTempDirSync({ prefix: "vmsift-synth-ksyms-" });
  try {
    for (const scheme of ["4.18", "6.12", "4.17"] as const) {
      const path = `${dir}/${scheme}.vmcore`;
      const m = generate(normalizeParams({ memBytes: 64 * MiB, seed: 7, scheme }), path).manifest;
      const core = ElfCore.open(path);
      try {
        const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc), core.label);
        const vm = buildMemoryModel(core, info, { kernelImageGuard: false }).vm;
        if (m.symbols === undefined) {
          assert.equal(scheme, "4.17"); // VMCOREINFO names kallsyms since 6.0 only
          assert.throws(() => readKallsyms(vm, info), /no kallsyms in VMCOREINFO/);
          continue;
        }
        const k = readKallsyms(vm, info);
        assert.equal(k.encoding, m.symbols.encoding);
        assert.deepEqual(
          k.names.map((n, i) => [n, k.types[i], k.addresses[i].toString(16)]),
          m.symbols.kallsyms,
          scheme,
        );
        assert.ok(k.checks.every((c) => c.verdict !== "different"));
        assert.equal(k.checks.find((c) => c.name === "init_uts_ns")?.verdict, "equal");
        const btf = readKernelBtf(vm, (n) => k.lookup(n), path);
        for (const [struct, { size, members }] of Object.entries(m.symbols.btf)) {
          const id = btf.findAggregate(struct)!;
          assert.equal(btf.sizeOf(id), size, struct);
          for (const [member, off] of Object.entries(members)) {
            assert.equal(btf.memberPath(id, [member]).offset, off, `${struct}.${member}`);
          }
        }
        // The image guard from the synthetic kallsyms: the whole image, [_text, _end).
        const guarded = buildMemoryModel(core, info);
        assert.match(guarded.kernelImage!.source, /^kallsyms: /);
        const img = guarded.kernelImage!;
        assert.equal((img.endPfn - img.startPfn) * 4096, 6 * MiB);
      } finally {
        core.close();
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(
  { name: "vmsift symbols: one name, all, JSON, a kdump input, errors", ignore: !haveReal() },
  async () => {
    const { runVmsift } = await import("./support/run.ts");
    const { unpackReal } = await import("./support/fixture.ts");
    const vmcore = await realVmcore();
    let r = await runVmsift(["symbols", vmcore, "init_uts_ns"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "ffffffff9effb000 D init_uts_ns\n");
    r = await runVmsift(["symbols", await unpackReal("makedumpfile-c-d31.kdump"), "init_uts_ns"]);
    assert.equal(r.stdout, "ffffffff9effb000 D init_uts_ns\n"); // makedumpfile's -c -d 31 file keeps kallsyms
    r = await runVmsift(["symbols", "--json", vmcore, "_stext"]);
    assert.deepEqual(JSON.parse(r.stdout), {
      encoding: "absolute-percpu",
      count: 94266,
      symbols: [{ name: "_stext", type: "T", address: "0xffffffff9d400000" }],
    });
    r = await runVmsift(["symbols", vmcore]);
    assert.equal(r.stdout.split("\n").length - 1, 94266);
    r = await runVmsift(["symbols", vmcore, "no_such_symbol"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no symbol 'no_such_symbol' in the kernel's kallsyms/);
    r = await runVmsift(["symbols"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /usage: vmsift symbols/);
  },
);
