/**
 * vmsift against the synthetic generator's manifest (page classes known by construction): every count at
 * every dump level, for all three page-type schemes, 4- and 5-level paging, 2 MiB and 4 KiB vmemmap
 * mappings; and the kernel log.
 */
import assert from "node:assert/strict";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { extractDmesg } from "../core/printk.ts";
import { openElfInput } from "../dump/input.ts";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import { tempDir } from "./support/run.ts";
import { assertManifestCounts } from "./support/synthCounts.ts";

for (const scheme of ["4.17", "4.18", "6.12"] as const) {
  for (const levels of [4, 5] as const) {
    for (const vmemmap4k of [false, true]) {
      const name = `synthetic ${scheme} scheme, ${levels}-level, ${vmemmap4k ? "4 KiB" : "2 MiB"} vmemmap`;
      Deno.test(`${name}: counts equal the manifest at every level; dmesg equals it`, async () => {
        const dir = tempDir();
        try {
          const path = `${dir}/s.vmcore`;
          const params = normalizeParams({
            memBytes: 64 * MiB,
            seed: 7 + levels,
            content: "text",
            scheme,
            levels,
            vmemmap4k,
          });
          generate(params, path);
          const manifest = JSON.parse(Deno.readTextFileSync(`${path}.manifest.json`));
          await assertManifestCounts(path, manifest.dump_levels, dir);
          const input = openElfInput(path);
          try {
            const model = buildMemoryModel(input.core, input.info);
            assert.equal(extractDmesg(model.vm, input.info).text, manifest.dmesg);
          } finally {
            input.core.close();
          }
        } finally {
          Deno.removeSync(dir, { recursive: true });
        }
      });
    }
  }
}
