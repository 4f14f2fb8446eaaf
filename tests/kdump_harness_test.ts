// The kdump end-to-end harness's host-side parsers (kdump/results.ts): the command lines it runs, makedumpfile's
// page report, the PT_LOADs of a saved /proc/vmcore header. The harness itself runs with `deno task kdump-test`.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { elfLoads, parseMdfReport, readCases } from "../kdump/results.ts";

const here = new URL(".", import.meta.url).pathname;

Deno.test("kdump cases: kdumpctl's, kdump-tools' (-F) and -c command lines", () => {
  const cases = readCases(`${here}../kdump/cases.txt`);
  assertEquals(cases.map((c) => [c.name, c.flat, c.args.join(" ")]), [
    ["kdumpctl", false, "-l --message-level 7 -d 31"],
    ["debian", true, "-F -c -d 31"],
    ["c", false, "-c -d 31"],
  ]);
});

Deno.test("kdump harness: makedumpfile's page report, hex counts", () => {
  const text = `
Original pages  : 0x00000000000233a8
  Excluded pages   : 0x000000000001c5f2
    Pages filled with zero  : 0x0000000000000e1a
    Non-private cache pages : 0x0000000000003a0e
    Private cache pages     : 0x0000000000000010
    User process data pages : 0x0000000000001c33
    Free pages              : 0x0000000000016187
    Hwpoison pages          : 0x0000000000000000
    Offline pages           : 0x0000000000000000
  Remaining pages  : 0x0000000000006db6
  (The number of pages is reduced to 16%.)
Memory Hole     : 0x000000000000cc58
--------------------------------------------------
Total pages     : 0x0000000000030000
`;
  const r = parseMdfReport(text)!;
  assertEquals(r.original, 0x233a8);
  assertEquals(r.cache_private, 0x10);
  assertEquals(r.free, 0x16187);
  assertEquals(r.remaining, 0x6db6);
  assertEquals(r.original, r.excluded + r.remaining);
  assertEquals(r.total, 0x30000);
  assertEquals(r.excluded, r.zero + r.cache + r.cache_private + r.user + r.free);
  assertEquals(parseMdfReport("makedumpfile Failed."), undefined);
});

Deno.test("kdump harness: PT_LOADs of an ELF64 header, the kernel-image load found by its vaddr", () => {
  const head = new Uint8Array(4096);
  const dv = new DataView(head.buffer);
  head.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(54, 56, true); // e_phentsize
  dv.setUint16(56, 3, true); // e_phnum
  const ph = (i: number, type: number, vaddr: bigint, paddr: bigint, size: bigint) => {
    const o = 64 + i * 56;
    dv.setUint32(o, type, true);
    dv.setBigUint64(o + 16, vaddr, true);
    dv.setBigUint64(o + 24, paddr, true);
    dv.setBigUint64(o + 32, size, true);
    dv.setBigUint64(o + 40, size, true);
  };
  ph(0, 4, 0n, 0n, 0x100n); // PT_NOTE
  ph(1, 1, 0xffffffff8d600000n, 0x2d600000n, 0x3430000n); // the kernel image
  ph(2, 1, 0xffff888000100000n, 0x100000n, 0x3ff00000n); // System RAM
  const loads = elfLoads(head);
  assertEquals(loads.length, 2);
  const image = loads.filter((l) => l.vaddr >= 0xffffffff80000000n);
  assertEquals(image.map((l) => [l.paddr, l.memsz / 4096]), [[0x2d600000, 13360]]);
  assertEquals(elfLoads(new Uint8Array(64)), []);
});
