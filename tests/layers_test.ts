/**
 * The layer rules of HACKING.md and docs/internals.md, checked on the sources: core/ imports only core/,
 * io/ only core/ and io/, formats/ nothing of dump/ or cli/, dump/ nothing of cli/, and nothing but main.ts
 * (and the tests) imports cli/; bench/ and fuzz/ may use the test fixtures. Every relative import and
 * dynamic import of every .ts file is looked at.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** Folders each top-level folder (or file) may import from, besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  "core": [],
  "io": ["core"],
  "formats": ["core", "io"],
  "dump": ["core", "io", "formats"],
  "cli": ["core", "io", "formats", "dump"],
  "mod.ts": ["core", "io", "formats", "dump"],
  "bench": ["core", "io", "formats", "dump", "fixtures", "scripts", "tests"],
  "fuzz": ["core", "io", "formats", "dump", "fixtures", "tests"],
  "main.ts": ["core", "io", "formats", "dump", "cli"],
};

function* tsFiles(dir: URL, rel = ""): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) yield* tsFiles(new URL(`${e.name}/`, dir), `${rel}${e.name}/`);
    else if (e.isFile && e.name.endsWith(".ts")) yield `${rel}${e.name}`;
  }
}

/** The top-level folder (or file) of a path relative to the repository. */
function layerOf(rel: string): string {
  const i = rel.indexOf("/");
  return i < 0 ? rel : rel.slice(0, i);
}

Deno.test("layers: every import goes down (core < io < formats < dump < cli; only main.ts imports cli/)", () => {
  const wrong: string[] = [];
  let checked = 0;
  for (const layer of Object.keys(ALLOWED)) {
    const files = layer.endsWith(".ts") ? [layer] : [...tsFiles(new URL(`${layer}/`, ROOT), `${layer}/`)];
    for (const file of files) {
      const text = Deno.readTextFileSync(new URL(file, ROOT));
      for (const m of text.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)) {
        const target = new URL(m[1], new URL(file, ROOT)).href.slice(ROOT.href.length);
        const to = layerOf(target);
        checked++;
        if (to !== layer && !ALLOWED[layer].includes(to)) wrong.push(`${file} imports ${target}`);
      }
    }
  }
  assert.ok(checked > 300, `only ${checked} imports seen`);
  assert.deepEqual(wrong, []);
});
