/**
 * The arm64 walk (core/arch/arm64Tables.ts) on hand-built tables: the level table of makedumpfile's
 * calculate_plat_config, output addresses above 2^48 (FEAT_LPA with 64 KiB pages, FEAT_LPA2 with 4 KiB),
 * shareability bits ignored in the plain format, pointer-authentication/tag bits ignored, TTBR0 refused,
 * blocks only where the architecture allows them, mapRun merging and stopping at holes.
 */
import assert from "node:assert/strict";
import { arm64Levels, Arm64Translator } from "../core/arch/arm64Tables.ts";
import { FakePhys } from "./support/fakeKernel.ts";

Deno.test("arm64Levels: makedumpfile's table (+ 52-bit rows as Linux runs them)", () => {
  const rows: [number, number, number][] = [
    [16384, 36, 2],
    [65536, 42, 2],
    [65536, 48, 3],
    [65536, 52, 3],
    [4096, 39, 3],
    [16384, 47, 3],
    [4096, 48, 4],
    [16384, 48, 4],
    [16384, 52, 4],
    [4096, 52, 5],
  ];
  for (const [ps, va, lv] of rows) assert.equal(arm64Levels(ps, va), lv, `${ps} ${va}`);
  assert.throws(() => arm64Levels(8192, 48), RangeError);
  assert.throws(() => arm64Levels(4096, 53), RangeError);
});

/** Write a u64 entry (as a bigint) at pa. */
function put(p: FakePhys, pa: number, v: bigint) {
  p.dv.setBigUint64(pa, v, true);
}

Deno.test("arm64 walk: 64 KiB pages, 52-bit PA (LPA): PA[51:48] from bits 15:12", () => {
  const p = new FakePhys(1 << 20);
  // 3 levels: shifts 42 (top, 1024 entries for 52 bits), 29, 16.
  const va = 0xfff0_0000_0000_0000n + (5n << 42n) + (7n << 29n) + (9n << 16n) + 0x1234n;
  put(p, 0x10000 + 5 * 8, 0x20000n | 3n);
  put(p, 0x20000 + 7 * 8, 0x30000n | 3n);
  const leafPa = 0x000a_1234_5678_0000n; // bit 51..48 = 0xa
  put(p, 0x30000 + 9 * 8, (leafPa & 0xffff_ffff_0000n) | ((leafPa >> 48n) << 12n) | 0x703n);
  const t = new Arm64Translator(p, { rootPa: 0x10000, pageSize: 65536, vaBits: 52, addressFormat: "lpa" });
  assert.equal(t.vtop(va), Number(leafPa) + 0x1234);
  const plain = new Arm64Translator(p, { rootPa: 0x10000, pageSize: 65536, vaBits: 52 });
  assert.equal(plain.vtop(va), Number(leafPa & 0xffff_ffff_0000n) + 0x1234, "plain ignores bits 15:12");
});

Deno.test("arm64 walk: 4 KiB pages, 52-bit VA (LPA2, 5 levels): PA[51:50] from bits 9:8; plain ignores SH", () => {
  const p = new FakePhys(1 << 20);
  const idx = [3, 4, 5, 6, 7];
  const va = 0xfff0_0000_0000_0000n + (3n << 48n) + (4n << 39n) + (5n << 30n) + (6n << 21n) + (7n << 12n) +
    0xabcn;
  const tables = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000];
  for (let l = 0; l < 4; l++) put(p, tables[l] + idx[l] * 8, BigInt(tables[l + 1]) | 3n);
  const leafPa = 0x000c_0001_2345_6000n; // PA[51:50] = 3
  put(p, 0x5000 + 7 * 8, (leafPa & 0x0003_ffff_ffff_f000n) | ((leafPa >> 50n) << 8n) | 0x403n);
  const t = new Arm64Translator(p, { rootPa: 0x1000, pageSize: 4096, vaBits: 52, addressFormat: "lpa2" });
  assert.equal(t.levels, 5);
  assert.equal(t.vtop(va), Number(leafPa) + 0xabc);
  assert.deepEqual(t.walk(va).steps.map((s) => s.level), ["PGD", "P4D", "PUD", "PMD", "PTE"]);
  // 48-bit plain tables whose entries carry SH = 0b11 in bits 9:8: not address bits.
  const q = new FakePhys(1 << 20);
  const va48 = 0xffff_0000_0000_0000n + (4n << 39n) + (5n << 30n) + (6n << 21n) + (7n << 12n) + 0x10n;
  for (let l = 0; l < 3; l++) put(q, tables[l] + idx[l + 1] * 8, BigInt(tables[l + 1]) | 0x303n);
  put(q, 0x4000 + 7 * 8, 0x8765_4321_0000n | 0x703n | (3n << 53n)); // + PXN/UXN
  const t48 = new Arm64Translator(q, { rootPa: 0x1000, pageSize: 4096, vaBits: 48 });
  assert.equal(t48.vtop(va48), 0x8765_4321_0010);
  // Tag / PAC bits above bit 55 and between vaBits and 55 do not change the walk; bit 55 clear = TTBR0.
  assert.equal(
    t48.vtop(va48 & 0x00ff_ffff_ffff_ffffn | 0x3d00_0000_0000_0000n | (1n << 55n)),
    0x8765_4321_0010,
  );
  assert.equal(t48.vtop(va48 & ~(1n << 55n)), undefined);
  assert.match(t48.walk(va48 & ~(1n << 55n)).error ?? "", /TTBR1/);
});

Deno.test("arm64 walk: blocks at levels 1-2 only; mapRun merges adjacent blocks and stops at holes", () => {
  const p = new FakePhys(1 << 20);
  // 4 KiB, 39 bits: 3 levels (hardware levels 1, 2, 3): 1 GiB blocks at the top are legal.
  const base = 0xffff_ff80_0000_0000n;
  put(p, 0x1000 + 0 * 8, 0x4000_0000n | 0x401n); // 1 GiB block at VA index 0
  put(p, 0x1000 + 1 * 8, 0x2000n | 3n); // table
  put(p, 0x2000 + 0 * 8, 0x8000_0000n | 0x401n); // 2 MiB block
  put(p, 0x2000 + 1 * 8, 0x8020_0000n | 0x401n); // adjacent 2 MiB block
  const t = new Arm64Translator(p, { rootPa: 0x1000, pageSize: 4096, vaBits: 39 });
  assert.equal(t.vtop(base + 0x1234_5678n), 0x4000_0000 + 0x1234_5678);
  const run = t.mapRun(base + (1n << 30n) + 0x1000n, 6 << 20);
  assert.deepEqual(run.map((r) => [r.paddr, r.len]), [[0x8000_1000, (4 << 20) - 0x1000], [
    undefined,
    (2 << 20) + 0x1000,
  ]]);
  // 4 KiB, 48 bits: the top level is hardware level 0, where a block descriptor is invalid.
  const q = new FakePhys(1 << 20);
  put(q, 0x1000 + 0 * 8, 0x4000_0000n | 0x401n);
  const t48 = new Arm64Translator(q, { rootPa: 0x1000, pageSize: 4096, vaBits: 48 });
  assert.equal(t48.vtop(0xffff_0000_0000_1000n), undefined);
});
