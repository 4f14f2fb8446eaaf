/**
 * arm64 against the synthetic generator's manifest, for every granule (4/16/64 KiB) and VA size (2 to 5
 * levels, a VA_BITS=52 kernel running 48 bits, LPA2 and LPA descriptors): every count at every dump level,
 * the kernel log, the walk (levels, descriptor format, init_uts_ns), phys_base (PHYS_OFFSET, often negative),
 * the kernel image range; and a kdump file of 16 KiB and 64 KiB pages verifies page by page.
 */
import assert from "node:assert/strict";
import { openElfInput } from "../dump/input.ts";
import type { Arm64Translator } from "../core/arch/arm64Tables.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { extractDmesg } from "../core/printk.ts";
import { generateArm64 } from "../fixtures/synthetic/arm64.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { runVmsift, withTempDir } from "./support/run.ts";
import { assertManifestCounts } from "./support/synthCounts.ts";

/** [page size, VA_BITS, running VA bits, walk levels]. */
const CONFIGS: [number, number, number, number][] = [
  [4096, 39, 39, 3],
  [4096, 48, 48, 4],
  [4096, 52, 52, 5],
  [4096, 52, 48, 4],
  [16384, 36, 36, 2],
  [16384, 47, 47, 3],
  [16384, 48, 48, 4],
  [16384, 52, 52, 4],
  [16384, 52, 48, 4],
  [65536, 42, 42, 2],
  [65536, 48, 48, 3],
  [65536, 52, 52, 3],
  [65536, 52, 48, 3],
];

function generateIn(dir: string, ps: number, va: number, running: number, seed: number): string {
  const path = `${dir}/a.vmcore`;
  const params = normalizeParams({ memBytes: 128 * MiB, seed, content: "text", scheme: "6.12" });
  generateArm64(params, { pageSize: ps, vaBits: va, runningVaBits: running }, path);
  return path;
}

for (const [ps, va, running, levels] of CONFIGS) {
  Deno.test(`synthetic arm64 ${ps / 1024}K pages, VA_BITS=${va} running ${running}: counts, dmesg, walk, image`, async () => {
    await withTempDir(async (dir) => {
      const path = generateIn(dir, ps, va, running, 3 + va + ps / 4096);
      const m = JSON.parse(Deno.readTextFileSync(`${path}.manifest.json`));
      assert.equal(m.levels, levels, "generator levels");
      await assertManifestCounts(path, m.dump_levels, dir);
      const input = openElfInput(path);
      try {
        const model = buildMemoryModel(input.core, input.info);
        assert.equal(model.arch.name, "arm64");
        assert.equal(model.pageSize, ps);
        const vm = model.vm as Arm64Translator;
        assert.equal(vm.levels, levels);
        assert.equal(vm.vaBits, running);
        assert.equal(vm.addressFormat, m.descriptor_format);
        assert.equal(vm.rootPa, m.swapper_pg_dir_pa);
        assert.equal(model.physBase, BigInt(m.phys_base_int));
        assert.equal(vm.vtop(BigInt(m.init_uts_ns)), m.init_uts_ns_pa);
        const w = vm.walk(BigInt(m.init_uts_ns));
        assert.equal(w.steps.length, levels);
        assert.equal(w.pageSize, ps);
        assert.deepEqual([model.kernelImage?.startPfn, model.kernelImage?.endPfn], m.kernel_image_pfns);
        assert.equal(extractDmesg(model.vm, input.info).text, m.dmesg);
      } finally {
        input.core.close();
      }
    });
  });
}

Deno.test("synthetic arm64 16K and 64K pages: -c/-l/-E files verify; -e; the header says aarch64", async () => {
  await withTempDir(async (dir) => {
    for (const ps of [16384, 65536]) {
      const path = generateIn(dir, ps, 48, 48, 11);
      const m = JSON.parse(Deno.readTextFileSync(`${path}.manifest.json`));
      for (const args of [["-c"], ["-l", "-e"], ["-z", "--num-threads", "2"]]) {
        const out = `${dir}/o.kdump`;
        const r = await runVmsift(["-f", ...args, "-d", "31", "--no-image-guard", path, out]);
        assert.equal(r.code, 0, r.stderr);
        const v = await runVmsift(["verify", out, path]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const info = await runVmsift(["info", out]);
        assert.match(info.stdout, new RegExp(`block_size +${ps} `));
        assert.match(info.stdout, / aarch64 /);
      }
      const elf = `${dir}/o.elf`;
      const json = `${dir}/e.json`;
      const e = await runVmsift([
        "-f",
        "-E",
        "-d",
        "31",
        "--no-image-guard",
        "--stats-json",
        json,
        path,
        elf,
      ]);
      assert.equal(e.code, 0, e.stderr);
      assert.equal(JSON.parse(Deno.readTextFileSync(json)).remaining, m.dump_levels["31"].remaining);
      assert.equal(new DataView(Deno.readFileSync(elf).buffer).getUint16(18, true), 183);
      // The -E file is an input again: -d 31 of it keeps the same pages.
      const again = await runVmsift([
        "-f",
        "-l",
        "-d",
        "31",
        "--no-image-guard",
        "--stats-json",
        json,
        elf,
        `${dir}/r.kdump`,
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(Deno.readTextFileSync(json)).remaining, m.dump_levels["31"].remaining);
    }
  });
});
