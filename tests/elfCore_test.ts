import assert from "node:assert/strict";
import { VmsiftError } from "../core/errors.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { buildElfCore } from "../fixtures/miniElf.ts";
import { haveReal, realExpected, realVmcore, realVmcoreQemuLayout } from "./support/fixture.ts";

const enc = new TextEncoder();

function tmpFile(bytes: Uint8Array): string {
  const p = Deno.makeTempFileSync({ prefix: "vmsift-elf-" });
  Deno.writeFileSync(p, bytes);
  return p;
}

function sample(phoff = 64) {
  const a = new Uint8Array(8192).map((_, i) => i & 0xff);
  const b = new Uint8Array(4096 + 100).fill(7);
  return buildElfCore(
    [{ paddr: 0, data: a }, { paddr: 0x10000, data: b, memSize: 8192 }],
    [
      { name: "CORE", type: 1, desc: new Uint8Array(336) },
      { name: "CORE", type: 1, desc: new Uint8Array(336) },
      { name: "QEMU", type: 0, desc: new Uint8Array(440) },
      { name: "CORE", type: 4, desc: new Uint8Array(20) },
      { name: "VMCOREINFO", type: 0, desc: enc.encode("OSRELEASE=6.1.0\nPAGESIZE=4096\n") },
    ],
    { phoff },
  );
}

Deno.test("elf: segments, notes, nr_cpus and reads, with program headers at 64 and at 192", () => {
  for (const phoff of [64, 192]) {
    const path = tmpFile(sample(phoff));
    const c = ElfCore.open(path);
    assert.equal(c.phoff, phoff);
    assert.equal(c.segments.length, 2);
    assert.deepEqual([c.segments[1].paddr, c.segments[1].fileSize, c.segments[1].memSize], [
      0x10000,
      4196,
      8192,
    ]);
    assert.equal(c.nrCpus, 2, "only CORE/NT_PRSTATUS notes count");
    assert.equal(c.notes.length, 5);
    const vi = c.vmcoreinfoNote!;
    assert.equal(new TextDecoder().decode(vi.desc), "OSRELEASE=6.1.0\nPAGESIZE=4096\n");
    // desc offset points at the text inside the file
    const file = Deno.readFileSync(path);
    assert.equal(
      new TextDecoder().decode(file.subarray(vi.descFileOffset, vi.descFileOffset + 9)),
      "OSRELEASE",
    );
    const buf = new Uint8Array(16);
    assert.ok(c.readPhys(4090, buf));
    assert.deepEqual([...buf.subarray(0, 6)], [250, 251, 252, 253, 254, 255]);
    assert.ok(c.readPhys(0x10000 + 4190, buf), "past p_filesz reads zeros inside p_memsz");
    assert.deepEqual([...buf], [7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(c.readPhys(8190, buf), false, "a hole is not readable");
    assert.equal(c.readPhys(0x10000 + 8190, buf), false, "past the end is not readable");
    c.close();
    Deno.removeSync(path);
  }
});

Deno.test("elf: malformed files give one VmsiftError naming the file and offset", () => {
  const good = sample();
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "not an ELF",
      enc.encode("hello world, this is not an ELF file at all......................................"),
      /bad magic/,
    ],
    ["tiny", new Uint8Array(10), /only 10 bytes/],
    ["truncated program headers", good.slice(0, 64 + 56), /program headers .* truncated/],
    ["PT_LOAD beyond EOF", good.slice(0, good.length - 10), /needs bytes up to/],
    [
      "ELF32",
      (() => {
        const b = good.slice();
        b[4] = 1;
        return b;
      })(),
      /ELF32 vmcore \(EI_CLASS 1\) is not supported/,
    ],
    [
      "big endian",
      (() => {
        const b = good.slice();
        b[5] = 2;
        return b;
      })(),
      /little-endian/,
    ],
    [
      "not x86_64 or arm64",
      (() => {
        const b = good.slice();
        b[18] = 40; // EM_ARM (32-bit)
        return b;
      })(),
      /unsupported machine/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    const path = tmpFile(bytes);
    try {
      assert.throws(() => ElfCore.open(path), (e: unknown) => {
        assert.ok(e instanceof VmsiftError, what);
        assert.match(e.message, re, what);
        assert.equal(e.place.file, path, what);
        assert.ok(e.place.offset !== undefined, what);
        return true;
      });
    } finally {
      Deno.removeSync(path);
    }
  }
});

Deno.test({
  name: "elf: the real fixture in both layouts (makedumpfile-fixed and QEMU 7.2 original)",
  ignore: !haveReal(),
  async fn() {
    const exp = realExpected();
    for (const path of [await realVmcore(), await realVmcoreQemuLayout()]) {
      const c = ElfCore.open(path);
      assert.equal(c.segments.length, exp.pt_load);
      assert.equal(c.nrCpus, exp.nt_prstatus);
      const vi = VmcoreInfo.parse(new TextDecoder().decode(c.vmcoreinfoNote!.desc));
      assert.equal(vi.osrelease, exp.osrelease);
      assert.equal(vi.number("phys_base"), BigInt(exp.phys_base as number));
      assert.equal(vi.kernelOffset, BigInt(exp.kerneloffset as string));
      c.close();
    }
  },
});
