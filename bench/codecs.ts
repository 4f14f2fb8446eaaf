/**
 * Page codec throughput per engine: `deno run -A bench/codecs.ts [vmcore.elf] [pages]`.
 *
 * Compresses and decompresses a mix of real non-zero 4 KiB pages (sampled evenly over the PT_LOAD data of
 * the fixture vmcore; synthetic pages when it is absent) with every engine of every codec
 * (formats/codecs/engines.ts: libdeflate, libz, node:zlib for zlib; liblzo2 and the TypeScript port for lzo;
 * libsnappy and TypeScript for snappy; libzstd and node:zlib for zstd), each forced through the registry as
 * `--codec-engine` does; engines whose library is missing are listed as such. zlib is also measured with
 * compress2() per page, makedumpfile's own call. Single thread.
 *
 * Prints µs per page and MB/s (of uncompressed data) per direction, and the stored/raw size ratio (pages
 * that do not shrink count at full size, as in a dump).
 */
import type { PageCodec } from "../formats/codecs/codec.ts";
import { CODEC_NAMES, createCodec } from "../formats/codecs/registry.ts";
import { CODEC_ENGINES } from "../formats/codecs/engines.ts";
import { NativeZlibCodec } from "../formats/codecs/nativeZlib.ts";
import { sampleElfPages } from "../tests/support/refCodecs.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

const PAGE = 4096;
const path = Deno.args[0] ??
  `${Deno.env.get("VMSIFT_FIXTURE_CACHE") ?? "/var/tmp/vmsift-fixtures"}/vmcore.elf`;
const want = Number(Deno.args[1] ?? 4000);

function loadPages(): { pages: Uint8Array<ArrayBuffer>[]; source: string } {
  const sampled = sampleElfPages(path, want * 2).filter((p) => p.some((b) => b !== 0));
  if (sampled.length > 0) {
    return { pages: sampled.slice(0, want).map((p) => new Uint8Array(p)), source: path };
  }
  // synthetic fallback: text, records and random runs
  const pages: Uint8Array<ArrayBuffer>[] = [];
  let x = 12345;
  for (let i = 0; i < want; i++) {
    const p = new Uint8Array(PAGE);
    for (let k = 0; k < PAGE; k++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      p[k] = (k + i) % 97 < 40 ? x >>> 24 : (k * 7 + i) & 0x3f;
    }
    pages.push(p);
  }
  return { pages, source: "synthetic" };
}

const { pages, source } = loadPages();
const totalBytes = pages.length * PAGE;

/**
 * Runs `fn` over all pages in 5 rounds of at least `roundMs` each; returns the best round's pages per
 * second (the machine is shared, so the best round is the least disturbed one).
 */
function measure(fn: (i: number) => void, roundMs = 150): number {
  for (let i = 0; i < pages.length; i++) fn(i); // warm-up
  let best = 0;
  for (let round = 0; round < 5; round++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < roundMs) {
      for (let i = 0; i < pages.length; i++) fn(i);
      n += pages.length;
      t = performance.now();
    }
    best = Math.max(best, n / ((t - t0) / 1000));
  }
  return best;
}

interface Row {
  codec: string;
  engine: string;
  impl: string;
  comp: number;
  decomp: number;
  ratio: number;
}

function bench(c: PageCodec, engine: string): Row {
  const stored: Uint8Array[] = pages.map((p) => c.compress(p)?.slice() ?? p);
  const size = stored.reduce((s, z) => s + z.length, 0);
  const comp = measure((i) => c.compress(pages[i]));
  const out = new Uint8Array(PAGE);
  const decomp = measure((i) => {
    const z = stored[i];
    if (z === pages[i]) out.set(z);
    else if (!c.decompress(z, out)) throw new Error(`${c.name} ${engine}: page ${i} does not decode`);
  });
  return { codec: c.name, engine, impl: c.impl, comp, decomp, ratio: size / totalBytes };
}

const rows: Row[] = [];
const missing: string[] = [];
for (const name of CODEC_NAMES) {
  for (const engine of CODEC_ENGINES[name]) {
    let c: PageCodec;
    try {
      c = createCodec(name, PAGE, { impl: engine });
    } catch (e) {
      missing.push(`${name} ${engine}: ${(e as Error).message}`);
      continue;
    }
    rows.push(bench(c, engine));
    if (engine === "libz") {
      const r = bench(new NativeZlibCodec(PAGE, { perPageCompress2: true }), engine);
      rows.push({ ...r, engine: "libz, compress2() per page (makedumpfile's call)" });
    }
  }
}

const us = (pps: number) => (1e6 / pps).toFixed(2);
const mb = (pps: number) => (pps * PAGE / 1e6).toFixed(0);
console.log(`${pages.length} non-zero 4 KiB pages from ${source}; single thread; MB/s of uncompressed data`);
console.log(
  "| codec | engine | impl | compress µs/page | compress MB/s | decompress µs/page | decompress MB/s | stored/raw |",
);
console.log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(
    `| ${r.codec} | ${r.engine} | ${r.impl} | ${us(r.comp)} | ${mb(r.comp)} | ${us(r.decomp)} | ` +
      `${mb(r.decomp)} | ${r.ratio.toFixed(3)} |`,
  );
}
for (const m of missing) console.log(`not measured: ${m}`);
