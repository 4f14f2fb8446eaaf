/**
 * BTF (core/btf.ts): constructed blobs (fixtures/synthetic/btf.ts) with anonymous members, bitfields, arrays,
 * pointers and typedefs; on the real 6.1 fixture the kernel's BTF read from the dump against every
 * OFFSET()/SIZE()/LENGTH() of VMCOREINFO (the kernel's own compiler-computed values), against the debug
 * vmlinux's .BTF section (same bytes), and against pahole's reading of its DWARF when pahole is installed.
 */
import assert from "node:assert/strict";
import { Btf, BTF_KIND, readKernelBtf } from "../core/btf.ts";
import { VmsiftError } from "../core/errors.ts";
import { readKallsyms } from "../core/kallsyms.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { BtfBuilder } from "../fixtures/synthetic/btf.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { readElfSection } from "../formats/elfSymbols.ts";
import { haveReal, haveVmlinux, realVmcore, VMLINUX } from "./support/fixture.ts";
import { haveProgram } from "./support/run.ts";

/** struct demo { int a; union { long b; struct { char c; unsigned flag:3, mode:5; }; }; char name[65]; demo_t *next; } */
function demo(): { btf: Btf; demo: number } {
  const b = new BtfBuilder();
  const int = b.int("int", 4, true);
  const long = b.int("long", 8, true);
  const char = b.int("char", 1, true);
  const uint = b.int("unsigned int", 4);
  const inner = b.struct("", 8, [
    { name: "c", type: char, bitOffset: 0 },
    { name: "flag", type: uint, bitOffset: 32, bitfieldSize: 3 },
    { name: "mode", type: uint, bitOffset: 35, bitfieldSize: 5 },
  ]);
  const un = b.struct("", 8, [{ name: "b", type: long, bitOffset: 0 }, {
    name: "",
    type: inner,
    bitOffset: 0,
  }], true);
  const name = b.array(char, 65, int);
  const fwdPtr = b.ptr(0); // patched below through a typedef
  const demoId = b.struct("demo", 96, [
    { name: "a", type: int, bitOffset: 0 },
    { name: "", type: un, bitOffset: 64 },
    { name: "name", type: name, bitOffset: 128 },
    { name: "next", type: fwdPtr, bitOffset: 704 },
  ]);
  const td = b.typedef("demo_t", demoId);
  b.constQ(td);
  b.variable("the_demo", td);
  return { btf: Btf.parse(b.build(), "test"), demo: demoId };
}

Deno.test("btf: struct sizes, anonymous members, bitfields, arrays, pointers, typedefs", () => {
  const { btf, demo: id } = demo();
  assert.equal(btf.sizeOf(id), 96);
  assert.equal(btf.findAggregate("demo"), id);
  assert.equal(btf.findAggregate("struct demo"), id);
  assert.equal(btf.findAggregate("union demo"), undefined);
  assert.equal(btf.findAggregate("demo_t"), id); // typedef of a struct
  assert.deepEqual(btf.member(id, "b"), { offset: 8, bitOffset: 64, bitfieldSize: 0, type: 2, size: 8 });
  assert.equal(btf.member(id, "c")?.offset, 8); // anonymous struct inside an anonymous union
  assert.deepEqual(btf.member(id, "flag"), { offset: 12, bitOffset: 96, bitfieldSize: 3, type: 4, size: 1 });
  assert.equal(btf.member(id, "mode")?.bitOffset, 99);
  const nm = btf.memberPath(id, ["name"]);
  assert.equal(nm.offset, 16);
  assert.equal(nm.size, 65);
  assert.equal(btf.typeName(nm.type), "char[65]");
  assert.deepEqual(btf.array(nm.type), { type: 3, indexType: 1, nelems: 65 });
  const next = btf.memberPath(id, ["next"]);
  assert.equal(next.offset, 88);
  assert.equal(next.size, 8);
  assert.equal(btf.type(btf.resolve(next.type)).kind, BTF_KIND.PTR);
  assert.equal(btf.variableType("the_demo"), btf.find("demo_t", BTF_KIND.TYPEDEF)[0]);
  assert.throws(() => btf.memberPath(id, ["nosuch"]), /struct demo has no member 'nosuch'/);
  assert.throws(() => btf.memberPath(id, ["a", "x"]), /struct demo\.a is not a struct or union/);
  assert.throws(() => Btf.parse(new Uint8Array(24), "x"), (e: unknown) => e instanceof VmsiftError);
});

Deno.test("btf: a dump without __start_BTF says the kernel has no BTF", () => {
  assert.throws(
    () => readKernelBtf({ readVirt: () => false }, () => undefined, "vmcore"),
    /the kernel has no BTF \(no __start_BTF\/__stop_BTF in kallsyms: CONFIG_DEBUG_INFO_BTF off\)/,
  );
});

async function realBtf(): Promise<{ btf: Btf; info: VmcoreInfo }> {
  const core = ElfCore.open(await realVmcore());
  try {
    const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc), core.label);
    const vm = buildMemoryModel(core, info, { kernelImageGuard: false }).vm;
    const k = readKallsyms(vm, info);
    return { btf: readKernelBtf(vm, (n) => k.lookup(n), core.label), info };
  } finally {
    core.close();
  }
}

Deno.test(
  { name: "btf: real 6.1 dump, every OFFSET/SIZE/LENGTH of VMCOREINFO", ignore: !haveReal() },
  async () => {
    const { btf, info } = await realBtf();
    assert.equal(btf.types.length, 100751);
    let compared = 0;
    for (const key of info.keys()) {
      const v = Number(info.raw(key));
      let m = /^SIZE\((.+)\)$/.exec(key);
      if (m) {
        const id = btf.findAggregate(m[1]) ?? btf.find(m[1], BTF_KIND.TYPEDEF)[0];
        assert.ok(id !== undefined, key);
        assert.equal(btf.sizeOf(id), v, key);
        compared++;
        continue;
      }
      m = /^(OFFSET|LENGTH)\(([^.]+)\.(.+)\)$/.exec(key);
      if (m === null) continue;
      const id = btf.findAggregate(m[2]);
      assert.ok(id !== undefined, key);
      const f = btf.memberPath(id, m[3].split("."));
      assert.equal(m[1] === "OFFSET" ? f.offset : btf.array(f.type).nelems, v, key);
      compared++;
    }
    assert.equal(compared, 67);
    const uts = btf.findAggregate("uts_namespace")!;
    const node = btf.memberPath(uts, ["name", "nodename"]);
    assert.deepEqual([node.offset, node.size, btf.typeName(node.type)], [65, 65, "char[65]"]);
  },
);

Deno.test({
  name: "btf: the dump's BTF is the debug vmlinux's .BTF section",
  ignore: !haveReal() || !haveVmlinux(),
  async fn() {
    const { btf } = await realBtf();
    const section = readElfSection(VMLINUX, ".BTF");
    assert.ok(section !== undefined);
    assert.equal(section.length, btf.bytes.length);
    assert.ok(section.every((b, i) => b === btf.bytes[i]));
  },
});

Deno.test({
  name: "btf: real 6.1 dump, bitfields and anonymous members against pahole (DWARF)",
  ignore: !haveReal() || !haveVmlinux() || !haveProgram("pahole"),
  async fn() {
    const { btf } = await realBtf();
    for (const struct of ["sk_buff", "page", "task_struct", "uts_namespace"]) {
      const out = await new Deno.Command("pahole", {
        args: ["-F", "dwarf", "-C", struct, VMLINUX],
      })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, struct);
      const id = btf.findAggregate(struct)!;
      const size = /\/\* size: (\d+)/.exec(text);
      assert.equal(btf.sizeOf(id), Number(size![1]), struct);
      // Top-level members with a name: "type name;  /* offset size */" or bitfields "name:bits; /* off:bit size */".
      let checked = 0;
      for (const line of text.split("\n")) {
        const m = /^\t[^\t].*?\b(\w+)(?:\[\d+\])*(?::(\d+))?;\s+\/\*\s+(\d+)(?::\s*(\d+))?\s+(\d+)\s+\*\//
          .exec(line);
        if (m === null) continue;
        const f = btf.member(id, m[1]);
        if (f === undefined) continue;
        // pahole: byte offset of the storage unit, then the bit within it for bitfields.
        assert.equal(f.bitOffset, Number(m[3]) * 8 + Number(m[4] ?? 0), `${struct}.${m[1]}`);
        if (m[2] !== undefined) assert.equal(f.bitfieldSize, Number(m[2]), `${struct}.${m[1]} bits`);
        checked++;
      }
      assert.ok(checked >= 3, `${struct}: ${checked} members compared`);
    }
  },
});
