import assert from "node:assert/strict";
import { formatReport, type PageStats, statsJson } from "../core/stats.ts";
import { haveReal, REAL_DIR, realExpected } from "./support/fixture.ts";
import { assertCounts } from "./support/compare.ts";

function fromExpected(e: Record<string, number>): PageStats {
  return {
    original: e.original,
    zero: e.zero,
    cache: e.cache,
    cachePrivate: e.cache_private,
    user: e.user,
    free: e.free,
    hwpoison: e.hwpoison,
    offline: e.offline,
    memoryHole: e.memory_hole,
    total: e.total,
    keptKernelImage: 0,
    keptUnreadable: 0,
  };
}

Deno.test({
  name: "report table is byte-identical to makedumpfile's for every level of the real fixture",
  ignore: !haveReal(),
  fn() {
    const exp = realExpected();
    for (const level of ["0", "1", "2", "4", "8", "16", "31"]) {
      const want = Deno.readTextFileSync(`${REAL_DIR}/makedumpfile-d${level}.report.txt`);
      assert.equal(formatReport(fromExpected(exp.dump_levels[level])), want, `level ${level}`);
      const j = statsJson(fromExpected(exp.dump_levels[level]));
      assertCounts(j, exp.dump_levels[level], `level ${level}`);
    }
  },
});

Deno.test("report: reduction percentage is floored and excluded is the sum of classes", () => {
  const s: PageStats = {
    original: 3,
    zero: 1,
    cache: 0,
    cachePrivate: 0,
    user: 0,
    free: 0,
    hwpoison: 0,
    offline: 0,
    memoryHole: 1,
    total: 4,
    keptKernelImage: 0,
    keptUnreadable: 0,
  };
  const r = formatReport(s);
  assert.match(r, /Excluded pages {3}: 0x0000000000000001\n/);
  assert.match(r, /reduced to 66%/);
});
