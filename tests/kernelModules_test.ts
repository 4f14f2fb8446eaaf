/**
 * Module list, module kallsyms, module split BTF and the dm-crypt walk on constructed kernel memory: a
 * kernel BTF and three modules' split BTF written by fixtures/synthetic/btf.ts, and the structures laid
 * out in a fake address space, so that every value the readers return is known. On the real 6.1 fixture:
 * the module list, and ext4's BTF and symbols against its unstripped .ko from the debug package.
 */
import assert from "node:assert/strict";
import { Btf } from "../core/btf.ts";
import { dmCryptKeys } from "../core/dmCrypt.ts";
import { VmsiftError } from "../core/errors.ts";
import {
  readModuleBtfBytes,
  readModuleInfos,
  readModules,
  readModuleSymbols,
} from "../core/kernelModules.ts";
import { KernelReader } from "../core/kernelReader.ts";
import { BtfBuilder } from "../fixtures/synthetic/btf.ts";
import { readKernelBtf } from "../core/btf.ts";
import { readKallsyms } from "../core/kallsyms.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { readElfSection } from "../formats/elfSymbols.ts";
import { haveReal, isFile, realVmcore } from "./support/fixture.ts";

/** A flat fake kernel address space with a bump allocator. */
class FakeMemory {
  static readonly BASE = 0xffff888000000000n;
  readonly bytes = new Uint8Array(1 << 20);
  readonly dv = new DataView(this.bytes.buffer);
  #next = 0x1000;
  alloc(size: number, align = 16): bigint {
    this.#next = Math.ceil(this.#next / align) * align;
    const a = FakeMemory.BASE + BigInt(this.#next);
    this.#next += size;
    return a;
  }
  #o(a: bigint): number {
    return Number(a - FakeMemory.BASE);
  }
  u32(a: bigint, v: number): void {
    this.dv.setUint32(this.#o(a), v, true);
  }
  u64(a: bigint, v: bigint): void {
    this.dv.setBigUint64(this.#o(a), v, true);
  }
  set(a: bigint, b: Uint8Array): void {
    this.bytes.set(b, this.#o(a));
  }
  str(s: string, at?: bigint): bigint {
    const b = new TextEncoder().encode(s + "\0");
    const a = at ?? this.alloc(b.length, 1);
    this.set(a, b);
    return a;
  }
  readVirt(vaddr: bigint, out: Uint8Array): boolean {
    const o = vaddr - FakeMemory.BASE;
    if (o < 0n || o + BigInt(out.length) > BigInt(this.bytes.length)) return false;
    out.set(this.bytes.subarray(Number(o), Number(o) + out.length));
    return true;
  }
}

/** Kernel BTF: list_head, rb_node, module, mod_kallsyms, btf, btf_module, the crypto API handles. */
function kernelBtf(): { bytes: Uint8Array; ids: Record<string, number> } {
  const b = new BtfBuilder();
  const u32 = b.int("unsigned int", 4), u64 = b.int("long unsigned int", 8), ch = b.int("char", 1, true);
  const u8 = b.int("unsigned char", 1);
  const listFwd = b.nextId();
  const list = b.struct("list_head", 16, [
    { name: "next", type: listFwd + 1, bitOffset: 0 },
    { name: "prev", type: listFwd + 1, bitOffset: 64 },
  ]);
  b.ptr(list);
  const rbPtr = b.nextId() + 1;
  const rb = b.struct("rb_node", 24, [
    { name: "__rb_parent_color", type: u64, bitOffset: 0 },
    { name: "rb_right", type: rbPtr, bitOffset: 64 },
    { name: "rb_left", type: rbPtr, bitOffset: 128 },
  ]);
  b.ptr(rb);
  const pch = b.ptr(ch), pvoid = b.ptr(0), pu8 = b.ptr(u8);
  const mk = b.struct("mod_kallsyms", 32, [
    { name: "symtab", type: pvoid, bitOffset: 0 },
    { name: "num_symtab", type: u32, bitOffset: 64 },
    { name: "strtab", type: pch, bitOffset: 128 },
    { name: "typetab", type: pch, bitOffset: 192 },
  ]);
  const modId = b.struct("module", 120, [
    { name: "state", type: u32, bitOffset: 0 },
    { name: "list", type: list, bitOffset: 64 },
    { name: "name", type: b.array(ch, 56), bitOffset: 192 },
    { name: "kallsyms", type: b.ptr(mk), bitOffset: 88 * 8 },
    { name: "core_kallsyms", type: mk, bitOffset: 0 }, // unused here; present in the kernel
    { name: "btf_data_size", type: u32, bitOffset: 96 * 8 },
    { name: "btf_data", type: pvoid, bitOffset: 104 * 8 },
  ]);
  const btfS = b.struct("btf", 16, [
    { name: "data", type: pvoid, bitOffset: 0 },
    { name: "data_size", type: u32, bitOffset: 64 },
  ]);
  b.struct("btf_module", 40, [
    { name: "list", type: list, bitOffset: 0 },
    { name: "module", type: b.ptr(modId), bitOffset: 128 },
    { name: "btf", type: b.ptr(btfS), bitOffset: 192 },
  ]);
  const alg = b.struct("crypto_alg", 160, [
    { name: "cra_flags", type: u32, bitOffset: 0 },
    { name: "cra_ctxsize", type: u32, bitOffset: 32 },
    { name: "cra_alignmask", type: u32, bitOffset: 64 },
    { name: "cra_driver_name", type: b.array(ch, 128), bitOffset: 128 },
  ]);
  const tfm = b.struct("crypto_tfm", 16, [
    { name: "refcnt", type: u32, bitOffset: 0 },
    { name: "__crt_alg", type: b.ptr(alg), bitOffset: 64 },
    { name: "__crt_ctx", type: b.array(pvoid, 0), bitOffset: 128 },
  ]);
  const skc = b.struct("crypto_skcipher", 24, [
    { name: "reqsize", type: u32, bitOffset: 0 },
    { name: "base", type: tfm, bitOffset: 64 },
  ]);
  const cip = b.struct("crypto_cipher", 16, [{ name: "base", type: tfm, bitOffset: 0 }]);
  const pcip = b.ptr(cip);
  b.struct("skcipher_ctx_simple", 8, [{ name: "cipher", type: pcip, bitOffset: 0 }]);
  const pskc = b.ptr(skc);
  // crypto/simd.c's wrapper (known by skcipher_alg.init) around cryptd, whose handle nests crypto_skcipher.
  b.struct("skcipher_alg", 176, [
    { name: "init", type: pvoid, bitOffset: 0 },
    { name: "base", type: alg, bitOffset: 128 },
  ]);
  const cryptdSk = b.struct("cryptd_skcipher", 24, [{ name: "base", type: skc, bitOffset: 0 }]);
  b.struct("simd_skcipher_ctx", 8, [{ name: "cryptd_tfm", type: b.ptr(cryptdSk), bitOffset: 0 }]);
  b.struct("cryptd_skcipher_ctx", 16, [
    { name: "refcnt", type: u32, bitOffset: 0 },
    { name: "child", type: pskc, bitOffset: 64 },
  ]);
  return { bytes: b.build(), ids: { u32, u64, ch, pch, pvoid, pu8, rb, skc: pskc, pcip } };
}

/** The layout the test writes (byte offsets, as in kernelBtf() and the module BTFs below). */
const MOD = { list: 8, name: 24, kallsyms: 88, btfDataSize: 96, btfData: 104, size: 120 };
const ALG = { flags: 0, ctxsize: 4, alignmask: 8, name: 16, size: 160 };

function moduleBtfs(base: Btf, ids: Record<string, number>) {
  const split = () => new BtfBuilder({ baseTypes: base.types.length - 1, baseStrLen: base.strTotal });
  const dm = split();
  const tt = dm.struct("target_type", 16, [
    { name: "features", type: ids.u64, bitOffset: 0 },
    { name: "name", type: ids.pch, bitOffset: 64 },
  ]);
  const dtFwd = dm.nextId();
  const tableId = dm.struct("dm_table", 24, [
    { name: "md", type: ids.pvoid, bitOffset: 0 },
    { name: "num_targets", type: ids.u32, bitOffset: 64 },
    { name: "targets", type: dtFwd + 4, bitOffset: 128 },
  ]);
  const target = dm.struct("dm_target", 48, [
    { name: "table", type: dm.ptr(tableId), bitOffset: 0 },
    { name: "type", type: dm.ptr(tt), bitOffset: 64 },
    { name: "private", type: ids.pvoid, bitOffset: 32 * 8 },
  ]);
  // dm_table (dtFwd), the two pointers in dm_target, dm_target, then the pointer `targets` was given:
  assert.deepStrictEqual(dm.ptr(target), dtFwd + 4);
  const md = dm.struct("mapped_device", 16, [{ name: "map", type: dm.ptr(tableId), bitOffset: 64 }]);
  dm.struct("hash_cell", 80, [
    { name: "name_node", type: ids.rb, bitOffset: 0 },
    { name: "uuid_node", type: ids.rb, bitOffset: 192 },
    { name: "name", type: ids.pch, bitOffset: 48 * 8 },
    { name: "md", type: dm.ptr(md), bitOffset: 64 * 8 },
    { name: "new_map", type: dm.ptr(tableId), bitOffset: 72 * 8 },
  ]);
  const cr = split();
  const tfmsUnion = cr.struct("", 8, [{ name: "tfms", type: cr.ptr(ids.skc), bitOffset: 0 }], true);
  cr.struct("crypt_config", 48, [
    { name: "cipher_string", type: ids.pch, bitOffset: 0 },
    { name: "cipher_tfm", type: tfmsUnion, bitOffset: 64 },
    { name: "tfms_count", type: ids.u32, bitOffset: 128 },
    { name: "cipher_flags", type: ids.u64, bitOffset: 192 },
    { name: "key_size", type: ids.u32, bitOffset: 256 },
    { name: "key_extra_size", type: ids.u32, bitOffset: 288 },
    { name: "authenc_key", type: ids.pu8, bitOffset: 320 },
    { name: "key", type: cr.array(ids.u32, 0), bitOffset: 384 },
  ]);
  const xts = split();
  xts.struct("xts_tfm_ctx", 16, [
    { name: "child", type: ids.skc, bitOffset: 0 },
    { name: "tweak", type: ids.pcip, bitOffset: 64 },
  ]);
  return { dm_mod: dm.build(), dm_crypt: cr.build(), xts: xts.build() };
}

interface Built {
  mem: FakeMemory;
  k: KernelReader;
  lookup: (n: string) => bigint | undefined;
  mods: Record<string, bigint>;
  keys: Record<"a" | "b" | "c" | "aChild" | "aTweak" | "bAuth" | "cInner", bigint>;
}

function build(): Built {
  const mem = new FakeMemory();
  const { bytes, ids } = kernelBtf();
  const base = Btf.parse(bytes, "kernel BTF");
  const k = new KernelReader(mem, base, "fake");
  const blobs = moduleBtfs(base, ids);
  const modules = mem.alloc(16), btfModules = mem.alloc(16);
  const simdInit = 0xffffffffc0002000n;
  const lookup = (n: string) =>
    ({ modules, btf_modules: btfModules, simd_skcipher_init: simdInit } as Record<string, bigint>)[n];

  // Module list: dm_mod, dm_crypt (BTF through btf_modules), xts (still in init: module.btf_data).
  const mods: Record<string, bigint> = {};
  const order = ["dm_mod", "dm_crypt", "xts"];
  for (const name of order) {
    mods[name] = mem.alloc(MOD.size);
    mem.str(name, mods[name] + BigInt(MOD.name));
    mem.u32(mods[name], name === "xts" ? 1 : 0);
  }
  const link = (head: bigint, nodes: bigint[]) => {
    const all = [head, ...nodes, head];
    for (let i = 0; i + 1 < all.length; i++) {
      mem.u64(all[i], all[i + 1]);
      mem.u64(all[i + 1] + 8n, all[i]);
    }
  };
  link(modules, order.map((n) => mods[n] + BigInt(MOD.list)));
  const bms = ["dm_mod", "dm_crypt"].map((n) => {
    const blob = blobs[n as "dm_mod" | "dm_crypt"];
    const data = mem.alloc(blob.length);
    mem.set(data, blob);
    const btf = mem.alloc(16);
    mem.u64(btf, data);
    mem.u32(btf + 8n, blob.length);
    const bm = mem.alloc(40);
    mem.u64(bm + 16n, mods[n]);
    mem.u64(bm + 24n, btf);
    return bm;
  });
  link(btfModules, bms);
  const xtsData = mem.alloc(blobs.xts.length);
  mem.set(xtsData, blobs.xts);
  mem.u64(mods.xts + BigInt(MOD.btfData), xtsData);
  mem.u32(mods.xts + BigInt(MOD.btfDataSize), blobs.xts.length);

  // dm_mod's kallsyms: the null symbol, dm_table_create (t), name_rb_tree (b, its name across a 1 KiB line).
  const tree = mem.alloc(8);
  const symtab = mem.alloc(3 * 24);
  const strtab = mem.alloc(0x800, 0x400);
  mem.str("dm_table_create", strtab + 1n);
  mem.str("name_rb_tree", strtab + 0x3fcn); // crosses strtab + 0x400
  const sym = (i: number, name: number, value: bigint, size: number) => {
    mem.u32(symtab + BigInt(i * 24), name);
    mem.u64(symtab + BigInt(i * 24 + 8), value);
    mem.u64(symtab + BigInt(i * 24 + 16), BigInt(size));
  };
  sym(1, 1, 0xffffffffc0001000n, 338);
  sym(2, 0x3fc, tree, 8);
  const typetab = mem.str("\0tb");
  const ks = mem.alloc(32);
  mem.u64(ks, symtab);
  mem.u32(ks + 8n, 3);
  mem.u64(ks + 16n, strtab);
  mem.u64(ks + 24n, typetab);
  mem.u64(mods.dm_mod + BigInt(MOD.kallsyms), ks);

  // Crypto transforms.
  const alg = (driver: string, ctxsize: number, type: number, init = 0n) => {
    const sa = mem.alloc(16 + ALG.size); // a struct skcipher_alg: init, then base (the crypto_alg)
    mem.u64(sa, init);
    const a = sa + 16n;
    mem.u32(a + BigInt(ALG.flags), type);
    mem.u32(a + BigInt(ALG.ctxsize), ctxsize);
    mem.str(driver, a + BigInt(ALG.name));
    return a;
  };
  const aes = alg("aes-generic", 64, 0x1);
  const tfm = (a: bigint, ctxsize: number, handleBase: number) => {
    const h = mem.alloc(handleBase + 16 + ctxsize);
    mem.u64(h + BigInt(handleBase) + 8n, a);
    return { handle: h, ctx: h + BigInt(handleBase) + 16n };
  };
  const leafChild = tfm(aes, 64, 0), leafTweak = tfm(aes, 64, 0);
  const ecb = tfm(alg("ecb(aes-generic)", 8, 0x5), 8, 8);
  mem.u64(ecb.ctx, leafChild.handle);
  const xtsT = tfm(alg("xts(ecb(aes-generic))", 16, 0x5), 16, 8);
  mem.u64(xtsT.ctx, ecb.handle);
  mem.u64(xtsT.ctx + 8n, leafTweak.handle);
  const foo = tfm(alg("foo(aes-generic)", 8, 0x5), 8, 8);
  const inner = tfm(alg("__xts-aes-aesni", 96, 0x5), 96, 8);
  const cryptd = tfm(alg("cryptd(__xts-aes-aesni)", 16, 0x5), 16, 8);
  mem.u64(cryptd.ctx + 8n, inner.handle);
  const simd = tfm(alg("xts-aes-aesni", 8, 0x5, simdInit), 8, 8);
  mem.u64(simd.ctx, cryptd.handle);

  // Two crypt_configs, two devices: "a" live (a linear target, then crypt), "b" only an inactive table.
  const crypt = (cipher: string, keySize: number, tfmHandle: bigint, authenc: boolean) => {
    const cc = mem.alloc(48 + keySize);
    mem.u64(cc, mem.str(cipher));
    const tfms = mem.alloc(8);
    mem.u64(tfms, tfmHandle);
    mem.u64(cc + 8n, tfms);
    mem.u32(cc + 16n, 1);
    mem.u32(cc + 32n, keySize);
    mem.u32(cc + 36n, authenc ? 4 : 0);
    const auth = authenc ? mem.alloc(keySize + 4) : 0n;
    mem.u64(cc + 40n, auth);
    return { cc, auth };
  };
  const ca = crypt("aes-xts-plain64", 64, xtsT.handle, false);
  const cb = crypt("capi:foo(aes)-plain64", 36, foo.handle, true);
  const cc = crypt("aes-xts-plain64", 64, simd.handle, false);
  const linearType = mem.alloc(16), cryptType = mem.alloc(16);
  mem.u64(linearType + 8n, mem.str("linear"));
  mem.u64(cryptType + 8n, mem.str("crypt"));
  const table = (targets: [bigint, bigint][]) => {
    const arr = mem.alloc(48 * targets.length);
    targets.forEach(([type, priv], i) => {
      mem.u64(arr + BigInt(48 * i) + 8n, type);
      mem.u64(arr + BigInt(48 * i) + 32n, priv);
    });
    const t = mem.alloc(24);
    mem.u32(t + 8n, targets.length);
    mem.u64(t + 16n, arr);
    return t;
  };
  const md = mem.alloc(16);
  mem.u64(md + 8n, table([[linearType, mem.alloc(8)], [cryptType, ca.cc]]));
  const hcA = mem.alloc(80), hcB = mem.alloc(80);
  mem.u64(hcA + 48n, mem.str("a"));
  mem.u64(hcA + 64n, md);
  mem.u64(hcB + 48n, mem.str("b"));
  mem.u64(hcB + 72n, table([[cryptType, cb.cc]]));
  const hcC = mem.alloc(80), mdC = mem.alloc(16);
  mem.u64(hcC + 48n, mem.str("c"));
  mem.u64(hcC + 64n, mdC);
  mem.u64(mdC + 8n, table([[cryptType, cc.cc]]));
  mem.u64(tree, hcB); // root b, a to its left, c to its right
  mem.u64(hcB + 16n, hcA);
  mem.u64(hcB + 8n, hcC);

  return {
    mem,
    k,
    lookup,
    mods,
    keys: {
      a: ca.cc + 48n,
      b: cb.cc + 48n,
      c: cc.cc + 48n,
      aChild: leafChild.ctx,
      aTweak: leafTweak.ctx,
      bAuth: cb.auth,
      cInner: inner.ctx,
    },
  };
}

Deno.test("modules: the list, names and states from struct module through the kernel's BTF", () => {
  const { k, lookup, mods } = build();
  assert.deepStrictEqual(
    readModules(k, lookup).map((m) => [m.name, m.address, m.state]),
    [["dm_mod", mods.dm_mod, 0], ["dm_crypt", mods.dm_crypt, 0], ["xts", mods.xts, 1]],
  );
  assert.throws(
    () => readModules(k, () => undefined),
    (e: unknown) => e instanceof VmsiftError && e.message.includes("no symbol 'modules'"),
  );
});

Deno.test("modules: a module's kallsyms (symtab, strtab, typetab); none without mod_kallsyms", () => {
  const { k, lookup } = build();
  const [dm, crypt] = readModules(k, lookup);
  const syms = readModuleSymbols(k, dm);
  assert.deepStrictEqual(syms.map((s) => [s.name, s.type, s.size]), [["dm_table_create", "t", 338], [
    "name_rb_tree",
    "b",
    8,
  ]]);
  assert.deepStrictEqual(syms[0].address, 0xffffffffc0001000n);
  assert.deepStrictEqual(readModuleSymbols(k, crypt), []);
});

Deno.test("modules: BTF from btf_modules and from module.btf_data, parsed as split BTF", () => {
  const { k, lookup, mods } = build();
  const all = readModules(k, lookup);
  assert.deepStrictEqual([...readModuleBtfBytes(k, lookup, all).keys()], [
    mods.dm_mod,
    mods.dm_crypt,
    mods.xts,
  ]);
  const infos = readModuleInfos(k, lookup, ["dm_mod"]);
  assert.deepStrictEqual(infos.map((m) => [m.name, m.symbols.length, m.btf !== undefined]), [
    ["dm_mod", 2, true],
    ["dm_crypt", 0, true],
    ["xts", 0, true],
  ]);
  const dm = infos[0].btf!;
  // A module type whose members are kernel types (rb_node, char *): ids and strings resolve into the base.
  const hc = dm.findAggregate("hash_cell")!;
  assert.ok(hc >= k.btf.types.length, "the module's own type ids follow the kernel's");
  assert.deepStrictEqual(dm.typeName(dm.member(hc, "name_node")!.type), "struct rb_node");
  assert.deepStrictEqual(dm.memberPath(hc, ["name_node", "rb_left"]).offset, 16);
  assert.deepStrictEqual(dm.typeName(dm.member(hc, "name")!.type), "char *");
  assert.deepStrictEqual(dm.findAggregate("list_head"), k.btf.findAggregate("list_head"));
  assert.deepStrictEqual(
    infos[2].btf!.findAggregate("hash_cell"),
    undefined,
    "each module sees only its own types",
  );
  // The cipher_tfm union's member through the split BTF.
  const cc = infos[1].btf!.findAggregate("crypt_config")!;
  assert.deepStrictEqual(infos[1].btf!.memberPath(cc, ["cipher_tfm", "tfms"]).offset, 8);
});

Deno.test("dm-crypt: every crypt target's key, key schedules under xts/ecb and simd/cryptd, authenc_key; unknown templates named", () => {
  const { mem, k, lookup, keys } = build();
  const infos = readModuleInfos(k, lookup, ["dm_mod"]);
  const found = dmCryptKeys(mem, k.btf, lookup, infos, "fake");
  assert.deepStrictEqual(found.targets, [
    "dm_crypt:a.map[1]: aes-xts-plain64, 64-byte key",
    "dm_crypt:b.new_map[0]: capi:foo(aes)-plain64, 36-byte key",
    "dm_crypt:c.map[0]: aes-xts-plain64, 64-byte key",
  ]);
  assert.deepStrictEqual(found.ranges.map((r) => [r.what, r.vaddr, r.size]), [
    ["dm_crypt:a.map[1].key", keys.a, 64],
    [
      "dm_crypt:a.map[1].tfms[0]=xts(ecb(aes-generic)).child=ecb(aes-generic).cipher=aes-generic.ctx",
      keys.aChild,
      64,
    ],
    ["dm_crypt:a.map[1].tfms[0]=xts(ecb(aes-generic)).tweak=aes-generic.ctx", keys.aTweak, 64],
    ["dm_crypt:b.new_map[0].key", keys.b, 36],
    ["dm_crypt:b.new_map[0].authenc_key", keys.bAuth, 36 - 4 + 8],
    ["dm_crypt:c.map[0].key", keys.c, 64],
    [
      "dm_crypt:c.map[0].tfms[0]=xts-aes-aesni.cryptd_tfm=cryptd(__xts-aes-aesni).child=__xts-aes-aesni.ctx",
      keys.cInner,
      96,
    ],
  ]);
  assert.deepStrictEqual(found.unreached, [
    "dm_crypt:b.new_map[0].tfms[0]=foo(aes-generic): context of template 'foo' not known to vmsift",
  ]);
  // No module BTF, or no name_rb_tree: named, nothing erased.
  const noBtf = infos.map((m) => m.name === "dm_crypt" ? { ...m, btf: undefined } : m);
  assert.deepStrictEqual(dmCryptKeys(mem, k.btf, lookup, noBtf, "fake").unreached, [
    "every dm-crypt key: no BTF for dm_crypt in the dump (CONFIG_DEBUG_INFO_BTF_MODULES off?)",
  ]);
  const noTree = infos.map((m) => ({ ...m, symbols: m.symbols.filter((s) => s.name !== "name_rb_tree") }));
  assert.deepStrictEqual(dmCryptKeys(mem, k.btf, lookup, noTree, "fake"), {
    ranges: [],
    targets: [],
    unreached: ["every dm-crypt key: no name_rb_tree in dm_mod's symbols (an older kernel?)"],
  });
  // Without dm_crypt loaded there is nothing to find.
  assert.deepStrictEqual(
    dmCryptKeys(mem, k.btf, lookup, infos.filter((m) => m.name !== "dm_crypt"), "fake").ranges,
    [],
  );
});

const EXT4_KO = "/usr/lib/debug/lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko";

/** The modules, and ext4's symbols and BTF, of the real 6.1 fixture. */
async function fixtureModules() {
  const core = ElfCore.open(await realVmcore());
  try {
    const info = VmcoreInfo.parse(new TextDecoder().decode(core.vmcoreinfoNote!.desc), core.label);
    const vm = buildMemoryModel(core, info, { kernelImageGuard: false }).vm;
    const ks = readKallsyms(vm, info);
    const lookup = (n: string) => ks.lookup(n);
    const k = new KernelReader(vm, readKernelBtf(vm, lookup, core.label), core.label);
    return readModuleInfos(k, lookup, ["ext4"]);
  } finally {
    core.close();
  }
}

/**
 * A .ko's .symtab: name → (section index, st_value) for names defined once, read here independently of
 * vmsift's ELF readers.
 */
function koSymbols(path: string): Map<string, { shndx: number; value: bigint }> {
  const b = Deno.readFileSync(path);
  const dv = new DataView(b.buffer);
  const shoff = Number(dv.getBigUint64(0x28, true)), shnum = dv.getUint16(0x3c, true);
  const sh = (i: number) => ({
    type: dv.getUint32(shoff + i * 64 + 4, true),
    offset: Number(dv.getBigUint64(shoff + i * 64 + 24, true)),
    size: Number(dv.getBigUint64(shoff + i * 64 + 32, true)),
    link: dv.getUint32(shoff + i * 64 + 40, true),
  });
  const out = new Map<string, { shndx: number; value: bigint }>();
  const dup = new Set<string>();
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    if (s.type !== 2) continue; // SHT_SYMTAB
    const str = sh(s.link);
    for (let o = s.offset; o < s.offset + s.size; o += 24) {
      const n = str.offset + dv.getUint32(o, true);
      const name = new TextDecoder().decode(b.subarray(n, b.indexOf(0, n)));
      if (name === "") continue;
      if (out.has(name)) dup.add(name);
      out.set(name, { shndx: dv.getUint16(o + 6, true), value: dv.getBigUint64(o + 8, true) });
    }
  }
  for (const d of dup) out.delete(d); // static symbols of the same name in two files
  return out;
}

Deno.test({
  name:
    "modules real: the fixture's module list; ext4's BTF is its .ko's .BTF, its symbols the .ko's relocated",
  ignore: !haveReal() || !isFile(EXT4_KO),
  fn: async () => {
    const mods = await fixtureModules();
    // The modules make-vmcore.sh loads (qemu_fw_cfg, virtio_pci, virtio_blk, ext4) and their dependencies.
    assert.deepStrictEqual(mods.map((m) => m.name).sort(), [
      "crc16",
      "crc32c_generic",
      "ext4",
      "jbd2",
      "mbcache",
      "qemu_fw_cfg",
      "virtio",
      "virtio_blk",
      "virtio_pci",
      "virtio_pci_legacy_dev",
      "virtio_pci_modern_dev",
      "virtio_ring",
    ]);
    assert.ok(mods.every((m) => m.btf !== undefined && m.state === 0));
    const ext4 = mods.find((m) => m.name === "ext4")!;
    // Byte for byte the .BTF section of the module file (the debug package's unstripped ext4.ko).
    const koBtf = readElfSection(EXT4_KO, ".BTF")!;
    assert.deepStrictEqual(ext4.btf!.bytes, koBtf);
    const sb = ext4.btf!.findAggregate("ext4_sb_info")!;
    assert.ok(sb >= ext4.btf!.base!.types.length && ext4.btf!.member(sb, "s_es") !== undefined);
    // Every symbol of the core .text section sits at one constant offset from its .ko value.
    const ko = koSymbols(EXT4_KO);
    const text = ko.get("ext4_fill_super")!.shndx;
    const deltas = new Set<bigint>();
    let n = 0;
    const seen = new Map<string, number>();
    for (const s of ext4.symbols) seen.set(s.name, (seen.get(s.name) ?? 0) + 1);
    for (const s of ext4.symbols) {
      const e = seen.get(s.name) === 1 ? ko.get(s.name) : undefined;
      if (e === undefined || e.shndx !== text || s.type.toLowerCase() !== "t") continue;
      deltas.add(s.address - e.value);
      n++;
    }
    assert.ok(n > 500, `${n} .text symbols compared`);
    assert.equal(deltas.size, 1, [...deltas].map((d) => d.toString(16)).join(" "));
    assert.ok(ext4.symbols.length > 2000);
  },
});
