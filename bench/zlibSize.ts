/**
 * zlib page size and CPU per variant: `deno run -A bench/zlibSize.ts MAKEDUMPFILE.kdump [more.kdump ...]`.
 *
 * Takes the pages of makedumpfile `-c -d 31` files (every distinct non-zero stored page, decoded) and
 * compresses each with: libdeflate level 1, level 2, vmsift's default (level 1, and level 2 for the pages
 * level 1 leaves in [0.45, 0.65) of a page: formats/codecs/libdeflate.ts) and zlib's compress2(level 1),
 * makedumpfile's own call. Prints, per variant, the file size the same layout would have, in percent against
 * makedumpfile's file (pages that do not shrink are stored raw, as in a dump), and the CPU µs per page of the
 * calls (thread CPU time from /proc/thread-self/schedstat, best of 5 passes: robust to a loaded machine).
 * Needs libdeflate.so.0 and libz.so.1 (docs/symbols.md "Output size").
 */
import { KdumpFile } from "../formats/kdump/reader.ts";
import { LibdeflateCodec } from "../formats/codecs/libdeflate.ts";
import { libdeflateCompressor } from "./lib.ts";

type Buf = Uint8Array<ArrayBuffer>;

const ld = libdeflateCompressor();
const lz = Deno.dlopen("libz.so.1", {
  compress2: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
}).symbols;

/** The distinct non-zero stored pages of a kdump file, the bytes makedumpfile stored for them, its size. */
function pagesOf(path: string): { pages: Buf[]; stored: number; fileSize: number; pageSize: number } {
  const kf = KdumpFile.open(path);
  const pageSize = kf.blockSize;
  const seen = new Set<number>();
  const d = { offset: 0, size: 0, flags: 0 };
  const pages: Buf[] = [];
  let stored = 0;
  for (let pfn = 0; pfn < kf.maxMapnr; pfn++) {
    if (!kf.bitmap2.get(pfn)) continue;
    kf.desc(kf.descIndex(pfn), d);
    if (seen.has(d.offset)) continue;
    seen.add(d.offset);
    const p = new Uint8Array(pageSize);
    kf.readPage(pfn, p);
    if (!p.some((x) => x !== 0)) continue; // the shared zero page: the same in every variant
    pages.push(p);
    stored += d.size;
  }
  kf.close();
  return { pages, stored, fileSize: Deno.statSync(path).size, pageSize };
}

function cpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}

for (const path of Deno.args) {
  const { pages, stored, fileSize, pageSize: P } = pagesOf(path);
  const out = new Uint8Array(P + 1024);
  const PB = BigInt(P), OB = BigInt(out.length);
  const stored1 = (n: number) => (n > 0 && n < P ? n : P);
  const level = (l: number) => {
    const c = ld.libdeflate_alloc_compressor(l);
    return (p: Buf) => stored1(Number(ld.libdeflate_zlib_compress(c, p, PB, out, OB)));
  };
  const vmsift = new LibdeflateCodec(P);
  const lenCell = new BigUint64Array(1);
  const lenBytes = new Uint8Array(lenCell.buffer);
  const variants: [string, (p: Buf) => number][] = [
    ["libdeflate level 1", level(1)],
    ["libdeflate level 2", level(2)],
    ["vmsift default (L1, L2 band)", (p) => vmsift.compress(p)?.length ?? P],
    ["zlib compress2 level 1", (p) => {
      lenCell[0] = OB;
      lz.compress2(out, lenBytes, p, PB, 1);
      return stored1(Number(lenCell[0]));
    }],
  ];
  const rows = [];
  for (const [name, fn] of variants) {
    let data = 0;
    for (const p of pages) data += fn(p);
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = cpuNs();
      for (const p of pages) fn(p);
      best = Math.min(best, cpuNs() - t0);
    }
    const file = fileSize - stored + data;
    rows.push({
      variant: name,
      "file bytes": file,
      "vs makedumpfile": `${((file / fileSize - 1) * 100).toFixed(2)} %`,
      "CPU µs/page": (best / 1000 / pages.length).toFixed(1),
    });
  }
  console.log(`${path}: ${pages.length} non-zero stored pages, makedumpfile's file ${fileSize} bytes`);
  console.table(rows);
}
