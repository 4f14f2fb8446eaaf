/**
 * Which level-2 band? `deno run -A bench/deflateBand.ts [--margin PCT] MAKEDUMPFILE.kdump [more.kdump ...]`.
 *
 * The default `-c` codec (formats/codecs/libdeflate.ts) compresses every page with libdeflate level 1 and
 * again at level 2 the pages whose level-1 size lands in [page * RECOMPRESS_FROM, page * RECOMPRESS_TO).
 * This takes makedumpfile `-c -d 31` files of real dumps (every distinct non-zero stored page, decoded),
 * computes each page's level 1 and level 2 sizes once, and then, for every band on a 0.025 grid (from
 * 0..0.65, to 0.6..1.0), the file size the same layout would have, in percent against makedumpfile's file
 * (a result that does not shrink is stored raw), and the share of compressed pages that get a level-2 call.
 * Prints the bands with the fewest level-2 calls (mean share over the dumps) that keep every dump at least
 * --margin percent (default 0) smaller than makedumpfile's file, and the codec's current band beside them.
 * docs/symbols.md "Output size" has the study behind the current band. Needs libdeflate.so.0.
 */
import { parseArgs } from "node:util";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { RECOMPRESS_FROM, RECOMPRESS_TO } from "../formats/codecs/libdeflate.ts";
import { libdeflateCompressor } from "./lib.ts";

const { values: opt, positionals: files } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { margin: { type: "string", default: "0" } },
});
if (files.length === 0) {
  console.error("usage: deno run -A bench/deflateBand.ts [--margin PCT] MAKEDUMPFILE.kdump [more.kdump ...]");
  Deno.exit(2);
}
const margin = Number(opt.margin);

const ld = libdeflateCompressor();

/** One dump: makedumpfile's file size and stored page bytes, each page's level 1 and level 2 sizes. */
interface DumpSizes {
  name: string;
  page: number;
  fileSize: number;
  /** Bytes makedumpfile stored for the non-zero pages counted here. */
  stored: number;
  /** libdeflate's return per page (0: did not fit), levels 1 and 2. */
  l1: Uint32Array;
  l2: Uint32Array;
}

function sizesOf(path: string): DumpSizes {
  const kf = KdumpFile.open(path);
  const page = kf.blockSize;
  const out = new Uint8Array(2 * page);
  const c1 = ld.libdeflate_alloc_compressor(1), c2 = ld.libdeflate_alloc_compressor(2);
  const seen = new Set<number>();
  const d = { offset: 0, size: 0, flags: 0 };
  const p = new Uint8Array(page);
  const l1: number[] = [], l2: number[] = [];
  let stored = 0;
  for (let pfn = 0; pfn < kf.maxMapnr; pfn++) {
    if (!kf.bitmap2.get(pfn)) continue;
    kf.desc(kf.descIndex(pfn), d);
    if (seen.has(d.offset)) continue; // makedumpfile's one shared zero page
    seen.add(d.offset);
    kf.readPage(pfn, p);
    if (!p.some((x) => x !== 0)) continue;
    stored += d.size;
    l1.push(Number(ld.libdeflate_zlib_compress(c1, p, BigInt(page), out, BigInt(out.length))));
    l2.push(Number(ld.libdeflate_zlib_compress(c2, p, BigInt(page), out, BigInt(out.length))));
  }
  kf.close();
  return {
    name: path,
    page,
    fileSize: Deno.statSync(path).size,
    stored,
    l1: new Uint32Array(l1),
    l2: new Uint32Array(l2),
  };
}

/** Size against makedumpfile's file (percent) and the share of compressed pages given a level-2 call. */
function evalBand(s: DumpSizes, from: number, to: number): { pct: number; l2Share: number } {
  const P = s.page;
  // the codec's rule (LibdeflateCodec): len >= P * from and len < P * to
  const lo = Math.ceil(P * from), hi = Math.ceil(P * to);
  const stored = (x: number) => (x > 0 && x < P ? x : P);
  let data = 0, calls = 0, compressed = 0;
  for (let i = 0; i < s.l1.length; i++) {
    const a = s.l1[i];
    if (a > 0 && a < P) compressed++;
    if (a >= lo && a < hi) {
      calls++;
      const b = s.l2[i];
      data += stored(b > 0 && b < a ? b : a);
    } else data += stored(a);
  }
  const file = s.fileSize - s.stored + data;
  return { pct: (file / s.fileSize - 1) * 100, l2Share: compressed > 0 ? calls / compressed : 0 };
}

const dumps = files.map(sizesOf);
const grid: { from: number; to: number; worst: number; meanShare: number; per: string }[] = [];
const row = (from: number, to: number) => {
  const per = dumps.map((d) => evalBand(d, from, to));
  return {
    from,
    to,
    worst: Math.max(...per.map((x) => x.pct)),
    meanShare: per.reduce((t, x) => t + x.l2Share, 0) / per.length,
    per: per.map((x) => `${x.pct.toFixed(2)} % / ${(x.l2Share * 100).toFixed(1)} %`).join("  "),
  };
};
for (let i = 0; i <= 26; i++) {
  for (let j = 0; j <= 16; j++) {
    const from = +(0.025 * i).toFixed(3), to = +(0.6 + 0.025 * j).toFixed(3);
    if (from < to) grid.push(row(from, to));
  }
}
const show = (label: string, g: ReturnType<typeof row>) =>
  console.log(
    `${label.padEnd(9)} [${g.from.toFixed(3)}, ${g.to.toFixed(3)})  worst ${
      g.worst.toFixed(2).padStart(6)
    } %  ` +
      `mean L2 share ${(g.meanShare * 100).toFixed(1).padStart(5)} %   ${g.per}`,
  );
console.log(`dumps (each: size against makedumpfile's / share of compressed pages at level 2):`);
dumps.forEach((d, i) => console.log(`  ${i + 1}. ${d.name}: ${d.l1.length} non-zero pages`));
show("current", row(RECOMPRESS_FROM, RECOMPRESS_TO));
show("L1 only", row(1, 1.1));
show("L2 all", row(0, 1.1));
const ok = grid.filter((g) => g.worst <= -margin).sort((a, b) =>
  a.meanShare - b.meanShare || a.worst - b.worst
);
if (ok.length === 0) console.log(`no band keeps every dump ${margin} % under makedumpfile's file`);
ok.slice(0, 8).forEach((g, i) => show(`best ${i + 1}`, g));
