/**
 * The synthetic machines' count oracle: dump a generated vmcore in-process at every dump level and compare
 * vmsift's page counts with the generator's manifest.
 */
import assert from "node:assert/strict";
import { statsJson } from "../../core/stats.ts";
import { NullSink } from "../../dump/outputs.ts";
import { dumpVmcore } from "../../dump/run.ts";
import { assertCounts } from "./compare.ts";

/** The dump levels the synthetic tests check: none, each class alone, all. */
export const SYNTH_LEVELS = [0, 1, 2, 4, 8, 16, 31];

/**
 * Dump `vmcore` at each of SYNTH_LEVELS (bitmaps in `bitmapDir`, output discarded) and assert that its counts
 * equal the manifest's `dump_levels` and that no kept page was unreadable.
 */
export async function assertManifestCounts(
  vmcore: string,
  dumpLevels: Record<string, Record<string, number>>,
  bitmapDir: string,
): Promise<void> {
  for (const level of SYNTH_LEVELS) {
    const r = await dumpVmcore(vmcore, {
      dumpLevel: level,
      openSinks: () => [new NullSink()],
      bitmapDir,
      bitmapBudget: 8 << 20,
    });
    assertCounts(statsJson(r.stats), dumpLevels[String(level)], `-d ${level}`);
    assert.equal(r.stats.keptUnreadable, 0, `-d ${level}: kept unreadable pages`);
  }
}
