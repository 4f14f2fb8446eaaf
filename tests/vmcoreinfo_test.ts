import assert from "node:assert/strict";
import { VmsiftError } from "../core/errors.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";

const TEXT = [
  "OSRELEASE=6.1.0-56-amd64",
  "BUILD-ID=eb4fbcd037e7253717950bf2b93bd5566f47c56f",
  "PAGESIZE=4096",
  "SYMBOL(init_uts_ns)=ffffffff9effb000",
  "SIZE(page)=64",
  "OFFSET(page._mapcount)=48",
  "LENGTH(zone.free_area)=11",
  "NUMBER(phys_base)=-473956352",
  "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129",
  "NUMBER(VMALLOC_START)=0xffffc90000000000",
  "NUMBER(PG_head_mask)=65536",
  "NUMBER(sme_mask)=0",
  "KERNELOFFSET=1c400000",
  "CRASHTIME=1795737600",
  "CONFIG_X86_PAE=y",
  "",
].join("\n");

Deno.test("vmcoreinfo: every key form", () => {
  const v = VmcoreInfo.parse(TEXT, "test");
  assert.equal(v.osrelease, "6.1.0-56-amd64");
  assert.equal(v.buildId, "eb4fbcd037e7253717950bf2b93bd5566f47c56f");
  assert.equal(v.pageSize, 4096);
  assert.equal(v.symbol("init_uts_ns"), 0xffffffff9effb000n);
  assert.equal(v.size("page"), 64);
  assert.equal(v.offset("page._mapcount"), 48);
  assert.equal(v.length("zone.free_area"), 11);
  assert.equal(v.number("phys_base"), -473956352n);
  assert.equal(BigInt.asUintN(64, v.number("phys_base")!), 0xffffffffe3c00000n);
  assert.equal(v.number("PAGE_BUDDY_MAPCOUNT_VALUE"), -129n);
  assert.equal(v.number("VMALLOC_START"), BigInt.asIntN(64, 0xffffc90000000000n));
  assert.equal(v.numberN("PG_head_mask"), 65536);
  assert.equal(v.kernelOffset, 0x1c400000n);
  assert.equal(v.crashTime, 1795737600);
  assert.equal(v.raw("CONFIG_X86_PAE"), "y");
  assert.equal(v.symbol("nope"), undefined);
  assert.equal(v.has("SIZE(page)"), true);
});

Deno.test("vmcoreinfo: missing and malformed keys are VmsiftErrors naming the key and the source", () => {
  const v = VmcoreInfo.parse("SIZE(page)=sixty\nSYMBOL(x)=zz\nNUMBER(y)=1x2y\n", "/tmp/vi.txt");
  for (
    const f of [() => v.size("page"), () => v.symbol("x"), () => v.number("y"), () => v.requireSymbol("prb")]
  ) {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof VmsiftError);
      assert.equal(e.place.file, "/tmp/vi.txt");
      return true;
    });
  }
  assert.throws(() => v.requireSymbol("prb"), /VMCOREINFO has no SYMBOL\(prb\)/);
});
