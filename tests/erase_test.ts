/**
 * Erasing (--config / --erase): the filter.conf parser, the resolver on a constructed kernel (BTF from
 * fixtures/synthetic/btf.ts, memory laid out here) for every statement form, the page-by-page application
 * and the ERASEINFO text, following makedumpfile's erase_info.c rules as documented in core/eraseApply.ts.
 */
import assert from "node:assert/strict";
import { Btf } from "../core/btf.ts";
import { VmsiftError } from "../core/errors.ts";
import { ErasingMemory, planErase } from "../core/eraseApply.ts";
import { resolveErase } from "../core/eraseResolve.ts";
import { eraseOptionCommand, parseFilterConfig } from "../core/filterConfig.ts";
import { BtfKernelTypes } from "../core/kernelTypes.ts";
import type { PhysicalMemory } from "../core/physMem.ts";
import type { VirtualMemory } from "../core/virtMem.ts";
import { BtfBuilder } from "../fixtures/synthetic/btf.ts";
import { MemBitmap } from "../core/bitmap.ts";
import { elfFilePages, planElfDump } from "../formats/elfWriter.ts";

Deno.test("filter.conf: every statement form, comments, tabs, sections, commands across lines", () => {
  const cfg = parseFilterConfig(
    [
      "erase a.b # before any section: vmlinux",
      "[vmlinux]",
      "erase\tsecret size 32K",
      "erase p nullify",
      "erase buf size",
      "  len.value",
      "for x in items",
      "  erase x.name size x.len",
      "  erase x.ptr nullify",
      "endfor",
      "for y in head via next erase y.name endfor",
      "for z in item_list within item:list",
      "erase z.name",
      "endfor",
      "[some_module]",
      "erase module_secret",
      "[vmlinux]",
      "erase last",
    ].join("\n"),
    "f.conf",
  );
  assert.deepEqual(cfg.skippedSections, [{ name: "some_module", line: 15 }]);
  const c = cfg.commands;
  assert.equal(c.length, 8);
  assert.deepEqual(c[0], { line: 1, erases: [{ line: 1, expr: "a.b", nullify: false }] });
  assert.deepEqual(c[1].erases[0], { line: 3, expr: "secret", nullify: false, size: "32K" });
  assert.equal(c[2].erases[0].nullify, true);
  assert.equal(c[3].erases[0].size, "len.value");
  assert.deepEqual(c[4].loop, { variable: "x", list: "items" });
  assert.deepEqual(c[4].erases.map((e) => [e.expr, e.size, e.nullify]), [["x.name", "x.len", false], [
    "x.ptr",
    undefined,
    true,
  ]]);
  assert.deepEqual(c[5].loop, { variable: "y", list: "head", via: "next" });
  assert.deepEqual(c[6].loop, { variable: "z", list: "item_list", within: "item:list" });
  assert.equal(c[7].erases[0].expr, "last");
});

Deno.test("filter.conf: errors name the line", () => {
  const bad: [string, RegExp][] = [
    ["erase", /line 1: expected a kernel symbol after 'erase'/],
    ["erase x size", /line 1: expected a size or a size symbol after 'size'/],
    ["for x in a\nerase x.b\n", /line 1: no matching 'endfor' found/],
    ["for x in a\nerase y.b\nendfor", /line 2: unused iteration variable 'x'/],
    ["for x a", /line 1: expected token 'in'/],
    ["remove x", /line 1: invalid token 'remove'/],
    ["[vmlinux\nerase x", /line 1: invalid module section entry/],
  ];
  for (const [text, re] of bad) {
    assert.throws(
      () => parseFilterConfig(text, "f.conf"),
      (e: unknown) => e instanceof VmsiftError && re.test(e.message),
    );
  }
});

Deno.test("--erase: SYMBOL[.member...][:SIZE]", () => {
  assert.deepEqual(eraseOptionCommand("init_uts_ns.name.nodename").erases[0], {
    line: 0,
    expr: "init_uts_ns.name.nodename",
    nullify: false,
    size: undefined,
  });
  assert.equal(eraseOptionCommand("saved_command_line:32").erases[0].size, "32");
  assert.equal(eraseOptionCommand("p:nullify").erases[0].nullify, true);
  assert.throws(() => eraseOptionCommand("x:12Q"), /size '12Q' is not a number/);
  assert.throws(() => eraseOptionCommand(":4"), /is not SYMBOL/);
});

// A constructed kernel. Virtual addresses map to "physical" vaddr - BASE.
const BASE = 0xffffffff81000000n;
const PAGE = 4096;

class FlatVm implements VirtualMemory, PhysicalMemory {
  readonly label = "flat";
  readonly bytes = new Uint8Array(16 * PAGE);
  readonly dv = new DataView(this.bytes.buffer);
  get segments() {
    return [{
      paddr: 0,
      memSize: this.bytes.length,
      fileSize: this.bytes.length,
      fileOffset: 0,
      vaddr: BASE,
    }];
  }
  vtop(v: bigint): number | undefined {
    const o = v - BASE;
    return o >= 0n && o < BigInt(this.bytes.length) ? Number(o) : undefined;
  }
  readVirt(v: bigint, out: Uint8Array): boolean {
    const o = this.vtop(v);
    if (o === undefined || o + out.length > this.bytes.length) return false;
    out.set(this.bytes.subarray(o, o + out.length));
    return true;
  }
  readPhys(p: number, out: Uint8Array): boolean {
    out.set(this.bytes.subarray(p, p + out.length));
    return true;
  }
  ptr(at: number, v: bigint): void {
    this.dv.setBigUint64(at, v, true);
  }
  str(at: number, s: string): void {
    this.bytes.set(new TextEncoder().encode(s + "\0"), at);
  }
}

/**
 * struct item { char name[8]; struct item *next; struct list_head list; long len; char *ptr; } (48 bytes)
 * globals: struct item items[3] @0x1000; struct item *head @0x2000; struct list_head item_list @0x2010;
 * char *secret @0x2020 -> "top secret" @0x3000; long secret_len @0x2028 = 6.
 */
function kernel() {
  const b = new BtfBuilder();
  const char = b.int("char", 1, true);
  const long = b.int("long", 8, true);
  const idx = b.int("__ARRAY_SIZE_TYPE__", 4);
  const lhPtr = b.ptr(b.nextId() + 1);
  const lh = b.struct("list_head", 16, [{ name: "next", type: lhPtr, bitOffset: 0 }, {
    name: "prev",
    type: lhPtr,
    bitOffset: 64,
  }]);
  const charPtr = b.ptr(char);
  const itemPtr = b.ptr(b.nextId() + 2);
  const name8 = b.array(char, 8, idx);
  const item = b.struct("item", 48, [
    { name: "name", type: name8, bitOffset: 0 },
    { name: "next", type: itemPtr, bitOffset: 64 },
    { name: "list", type: lh, bitOffset: 128 },
    { name: "len", type: long, bitOffset: 256 },
    { name: "ptr", type: charPtr, bitOffset: 320 },
  ]);
  b.variable("items", b.array(item, 3, idx));
  b.variable("head", itemPtr);
  b.variable("item_list", lh);
  b.variable("secret", charPtr);
  b.variable("secret_len", long);
  const btf = Btf.parse(b.build(), "test BTF");
  const syms: Record<string, bigint> = {
    items: BASE + 0x1000n,
    head: BASE + 0x2000n,
    item_list: BASE + 0x2010n,
    secret: BASE + 0x2020n,
    secret_len: BASE + 0x2028n,
    untyped: BASE + 0x2030n, // a symbol without a BTF variable nor a known type
  };
  const vm = new FlatVm();
  const it = (i: number) => 0x1000 + i * 48;
  for (let i = 0; i < 3; i++) {
    vm.str(it(i), `item${i}`);
    vm.dv.setBigInt64(it(i) + 32, BigInt(3 + i), true);
  }
  vm.ptr(it(0) + 40, BASE + 0x3100n); // items[0].ptr -> "abc"
  vm.str(0x3100, "abc");
  // head -> items[2] -> items[0] -> NULL
  vm.ptr(0x2000, BASE + BigInt(it(2)));
  vm.ptr(it(2) + 8, BASE + BigInt(it(0)));
  // item_list -> items[1].list -> items[2].list -> item_list
  vm.ptr(0x2010, BASE + BigInt(it(1) + 16));
  vm.ptr(it(1) + 16, BASE + BigInt(it(2) + 16));
  vm.ptr(it(2) + 16, BASE + 0x2010n);
  vm.ptr(0x2020, BASE + 0x3000n);
  vm.str(0x3000, "top secret");
  vm.dv.setBigInt64(0x2028, 6n, true);
  return { types: new BtfKernelTypes(btf, (n) => syms[n]), vm, it };
}

function run(text: string, dumpable: (pfn: number) => boolean = () => true) {
  const k = kernel();
  const res = resolveErase(parseFilterConfig(text, "t.conf").commands, k.types, k.vm, "t.conf");
  const plan = planErase(res, dumpable, PAGE);
  return { ...k, res, plan, eraseinfo: new TextDecoder().decode(plan.eraseinfo) };
}

Deno.test("erase: symbols, members, pointers followed, char * strings, arrays, size forms, nullify", () => {
  const r = run([
    "erase secret", // char *: the string, strlen
    "erase secret_len", // a long
    "erase items.name", // items is an array: member of the first element
    "erase head.name size 2", // pointer followed
    "erase head.next.name size secret_len", // two pointers, size from a variable
    "erase items.ptr nullify",
  ].join("\n"));
  assert.deepEqual(r.res.ranges.map((x) => [x.paddr, x.size, x.nullify]), [
    [0x1000, 8, false],
    [0x1000 + 40, 8, true],
    [0x1000 + 96, 2, false], // head -> items[2]
    [0x2028, 8, false],
    [0x3000, 10, false],
  ]);
  // head.next.name is items[0].name, at the same address as items.name: it only widens that range (8 >= 6)
  // and gets no ERASEINFO line (makedumpfile's insert_filter_info).
  assert.equal(
    r.eraseinfo,
    "erase secret size 10\nerase secret_len size 8\nerase items.name size 8\nerase head.name size 2\n" +
      "erase items.ptr nullify\n",
  );
  const out = new Uint8Array(16 * PAGE);
  new ErasingMemory(r.vm, r.plan.overlays).readPhys(0, out);
  assert.equal(new TextDecoder().decode(out.subarray(0x3000, 0x300b)), "XXXXXXXXXX\0");
  assert.deepEqual([...out.subarray(0x1000 + 40, 0x1000 + 48)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(new TextDecoder().decode(out.subarray(0x1000 + 96, 0x1000 + 101)), "XXem2");
});

Deno.test("erase: the three loop forms", () => {
  const r = run([
    "for i in items",
    "  erase i.name size i.len",
    "endfor",
    "for h in head via next",
    "  erase h.len",
    "endfor",
    "for l in item_list within item:list",
    "  erase l.ptr nullify",
    "endfor",
  ].join("\n"));
  assert.equal(
    r.eraseinfo,
    "erase i.name size 3\nerase i.name size 4\nerase i.name size 5\n" +
      "erase h.len size 8\nerase h.len size 8\n" + // items[2], items[0]
      "erase l.ptr nullify\nerase l.ptr nullify\n", // items[1], items[2]
  );
});

Deno.test("erase: applied page by page; a range starting on a page not written is not applied", () => {
  const k = kernel();
  // A range crossing from page 3 into page 4: both written, then page 3 not written.
  const cmds = parseFilterConfig("erase big size 5000", "t.conf").commands;
  const types = new BtfKernelTypes(Btf.parse(new BtfBuilder().build()), () => undefined);
  assert.throws(() => resolveErase(cmds, types, k.vm, "t.conf"), /line 1: no symbol 'big'/);
  const res = {
    ranges: [{ vaddr: 0n, paddr: 3 * PAGE + 100, size: 5000, nullify: false, info: 0, sizeIndex: 0 }],
    infos: [{ expr: "big", numSizes: 1 }],
  };
  const all = planErase(res, () => true, PAGE);
  assert.deepEqual(all.overlays, [
    { paddr: 3 * PAGE + 100, len: PAGE - 100, byte: 0x58 },
    { paddr: 4 * PAGE, len: 5000 - (PAGE - 100), byte: 0x58 },
  ]);
  assert.equal(new TextDecoder().decode(all.eraseinfo), "erase big size 5000\n");
  // The -E note: "ERASEINFO\0" (namesz 10), type 0, descsz reckoned before writing (the full 5000).
  const note = new DataView(all.elfNote.buffer);
  assert.deepEqual([note.getUint32(0, true), note.getUint32(4, true), note.getUint32(8, true)], [10, 20, 0]);
  assert.equal(new TextDecoder().decode(all.elfNote.subarray(12, 22)), "ERASEINFO\0");
  assert.equal(new TextDecoder().decode(all.elfNote.subarray(24, 44)), "erase big size 5000\n");
  assert.equal(all.elfNote.length, 44);
  const tailOnly = planErase(res, (pfn) => pfn !== 3, PAGE);
  // Nothing applied: the note keeps its reckoned size, zero-filled (makedumpfile's write_cache_zero).
  assert.deepEqual([...tailOnly.elfNote.subarray(24, 44)], new Array(20).fill(0));
  assert.equal(tailOnly.overlays.length, 0);
  assert.equal(tailOnly.eraseinfo.length, 0);
  const headOnly = planErase(res, (pfn) => pfn !== 4, PAGE);
  assert.equal(new TextDecoder().decode(headOnly.eraseinfo), `erase big size ${PAGE - 100}\n`);
  // The overlay hides the mmap view of a touched range only.
  const m = new ErasingMemory(k.vm, all.overlays);
  assert.equal(m.viewPhys(3 * PAGE, PAGE), null);
});

Deno.test("erase -E: ranges on pages of short excluded runs are applied, as makedumpfile's -E writes them", () => {
  // One PT_LOAD of 1000 pages: 0-99 dumped, 100-109 excluded (a short run: written with their content),
  // 110-199 dumped, 200-599 excluded (256 or more: left out, a new PT_LOAD), 600-989 dumped, 990-999
  // excluded (the end of the segment: left out).
  const bm = new MemBitmap(1000);
  for (const [a, b] of [[0, 100], [110, 200], [600, 990]]) for (let p = a; p < b; p++) bm.set(p);
  const mem: PhysicalMemory = { label: "m", segments: [], readPhys: () => true };
  const layout = planElfDump({
    mem,
    bitmap1: bm,
    bitmap2: bm,
    maxMapnr: 1000,
    pageSize: PAGE,
    noteBytes: new Uint8Array(0),
    segments: [{ paddr: 0, memSize: 1000 * PAGE, fileSize: 1000 * PAGE, fileOffset: 0, vaddr: 0n }],
  });
  const written = elfFilePages(layout, PAGE);
  assert.deepEqual([0, 105, 199, 200, 599, 600, 989, 990].map(written), [
    true,
    true,
    true,
    false,
    false,
    true,
    true,
    false,
  ]);
  const range = (paddr: number, size: number, info: number) => ({
    vaddr: 0n,
    paddr,
    size,
    nullify: false,
    info,
    sizeIndex: 0,
  });
  const res = {
    // On a page of the short run; across the start of the long run; on the excluded tail.
    ranges: [range(105 * PAGE + 8, 16, 0), range(200 * PAGE - 8, 24, 1), range(995 * PAGE, 4, 2)],
    infos: [{ expr: "a", numSizes: 1 }, { expr: "b", numSizes: 1 }, { expr: "c", numSizes: 1 }],
  };
  const elf = planErase(res, written, PAGE);
  assert.deepEqual(elf.overlays, [
    { paddr: 105 * PAGE + 8, len: 16, byte: 0x58 },
    { paddr: 200 * PAGE - 8, len: 8, byte: 0x58 },
  ]);
  assert.equal(new TextDecoder().decode(elf.eraseinfo), "erase a size 16\nerase b size 8\n");
  // A kdump file holds the pages of bitmap 2 only: the short run's page is not written, nor erased.
  const kdump = planErase(res, (pfn) => bm.get(pfn), PAGE);
  assert.equal(new TextDecoder().decode(kdump.eraseinfo), "erase b size 8\n");
});

Deno.test("erase: unknown symbol, member or type is an error naming it", () => {
  const k = kernel();
  const check = (text: string, re: RegExp) =>
    assert.throws(
      () => resolveErase(parseFilterConfig(text, "t.conf").commands, k.types, k.vm, "t.conf"),
      (e: unknown) => e instanceof VmsiftError && re.test(e.message),
    );
  check("erase nosuch", /line 1: no symbol 'nosuch'/);
  check("erase items.nosuch", /struct 'item' has no member with name 'nosuch'/);
  check("for l in item_list\nerase l.len\nendfor", /use 'within' to give StructName:ListHeadMember/);
  check("erase items.name size items.name", /size symbol\/member 'name' is not of base type/);
  check("erase untyped", /line 1: the type of 'untyped' is unknown \(give a size\)/);
  check("erase untyped nullify", /the type of 'untyped' is unknown/);
  check("erase untyped.x size 4", /the type of 'untyped' is unknown/);
});

Deno.test("erase: a symbol of unknown type with a size erases the bytes at its address", () => {
  const r = run("erase untyped size 12", () => true);
  assert.deepEqual(r.res.ranges.map((x) => [x.paddr, x.size, x.nullify]), [[0x2030, 12, false]]);
  assert.equal(r.eraseinfo, "erase untyped size 12\n");
});
