/**
 * Page codec throughput: `deno run -A bench/codecs.ts [vmcore.elf] [pages]`.
 *
 * Compresses and decompresses a mix of real non-zero 4 KiB pages (sampled evenly over the PT_LOAD data of
 * the fixture vmcore; synthetic pages when it is absent) with our codecs and, where the library is
 * installed, with the system library through FFI (liblzo2, libsnappy, libzstd with reused contexts).
 * zlib and zstd are measured in both vmsift implementations: native (libz / libzstd through FFI, what
 * createCodec picks with --allow-ffi) and built in (node:zlib, the fallback); zlib also with compress2()
 * per page (makedumpfile's call) to show what reusing the deflate stream saves.
 * Prints pages/s and MB/s (of uncompressed data) per direction, and the compression ratio.
 */
import type { PageCodec } from "../formats/codecs/codec.ts";
import { createCodec } from "../formats/codecs/registry.ts";
import { NativeZlibCodec } from "../formats/codecs/nativeZlib.ts";
import { refFast, sampleElfPages } from "../tests/support/refCodecs.ts";

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
  impl: string;
  comp: number;
  decomp: number;
  ratio: number;
}

function benchOurs(c: PageCodec): Row {
  const stored: Uint8Array[] = pages.map((p) => c.compress(p)?.slice() ?? p);
  const size = stored.reduce((s, z) => s + z.length, 0);
  const comp = measure((i) => c.compress(pages[i]));
  const out = new Uint8Array(PAGE);
  const decomp = measure((i) => {
    const z = stored[i];
    if (z === pages[i]) out.set(z);
    else if (!c.decompress(z, out)) throw new Error(`${c.name}: page ${i} does not decode`);
  });
  return { impl: `vmsift ${c.name}: ${c.impl}`, comp, decomp, ratio: size / totalBytes };
}

function benchRef(codec: "lzo" | "snappy" | "zstd"): Row | null {
  const r = refFast(codec);
  if (!r) return null;
  const dst = new Uint8Array(PAGE * 2);
  const stored: Uint8Array<ArrayBuffer>[] = pages.map((p) => {
    const n = r.compressInto(p, dst);
    return n < PAGE ? dst.slice(0, n) : p;
  });
  const size = stored.reduce((s, z) => s + z.length, 0);
  const comp = measure((i) => r.compressInto(pages[i], dst));
  const out = new Uint8Array(PAGE);
  const decomp = measure((i) => {
    const z = stored[i];
    if (z === pages[i]) out.set(z);
    else if (r.decompressInto(z, out) !== PAGE) throw new Error(`${r.name}: page ${i} does not decode`);
  });
  return { impl: `${r.name} (FFI)`, comp, decomp, ratio: size / totalBytes };
}

const rows: Row[] = [];
for (const name of ["lzo", "snappy", "zstd"] as const) {
  const auto = createCodec(name, PAGE);
  rows.push(benchOurs(auto));
  if (name === "zstd" && auto.fallback === undefined) {
    rows.push(benchOurs(createCodec(name, PAGE, { impl: "builtin" })));
  }
  const ref = benchRef(name);
  if (ref) rows.push(ref);
}
const zlibAuto = createCodec("zlib", PAGE);
rows.push(benchOurs(zlibAuto));
if (zlibAuto.fallback === undefined) {
  const perPage = benchOurs(new NativeZlibCodec(PAGE, { perPageCompress2: true }));
  rows.push({ ...perPage, impl: `${perPage.impl}, compress2() per page` });
  rows.push(benchOurs(createCodec("zlib", PAGE, { impl: "builtin" })));
} else {
  console.log(`note: ${zlibAuto.fallback}`);
}

const mb = (pps: number) => (pps * PAGE / 1e6).toFixed(0);
const k = (pps: number) => (pps / 1000).toFixed(0) + "k";
console.log(`${pages.length} non-zero pages from ${source}; single thread; MB/s of uncompressed data`);
console.log(
  "| codec | compress pages/s | compress MB/s | decompress pages/s | decompress MB/s | stored/raw |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(
    `| ${r.impl} | ${k(r.comp)} | ${mb(r.comp)} | ${k(r.decomp)} | ${mb(r.decomp)} | ${r.ratio.toFixed(3)} |`,
  );
}
