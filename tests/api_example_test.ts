/**
 * The library examples users copy: the first TypeScript block of docs/api.md and the one in README.md's
 * "Library API" section are run as scripts (their `@vmsift/vmsift` import pointed at this checkout's mod.ts)
 * on the synthetic sample vmcore, and the dump they write must pass verifyDump.
 */
import assert from "node:assert/strict";
import { writeSample } from "../fixtures/sample.ts";
import { verifyDump } from "../mod.ts";
import { tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-api-example-");
const MOD = new URL("../mod.ts", import.meta.url).href;

/** The first TypeScript code block after `heading` (or the first of the file) in the Markdown file `rel`. */
function tsBlock(rel: string, heading?: string): string {
  let text = Deno.readTextFileSync(new URL(`../${rel}`, import.meta.url));
  if (heading !== undefined) {
    const at = text.indexOf(heading);
    assert.ok(at >= 0, `${rel}: no "${heading}"`);
    text = text.slice(at);
  }
  const m = /```ts\n([\s\S]*?)```/.exec(text);
  assert.ok(m !== null, `${rel}: no ts block`);
  return m[1];
}

async function runExample(code: string, label: string): Promise<void> {
  const script = tmp("example.ts");
  const dir = script.slice(0, script.lastIndexOf("/"));
  assert.ok(code.includes('"@vmsift/vmsift"'), `${label} imports the package`);
  Deno.writeTextFileSync(script, code.replaceAll('"@vmsift/vmsift"', JSON.stringify(MOD)));
  const vmcore = writeSample(dir).path;
  const out = `${dir}/out.kdump`;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-A", script, vmcore, out],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.equal(r.code, 0, `${label}: ${dec.decode(r.stderr)}${dec.decode(r.stdout)}`);
  const v = verifyDump(out, vmcore);
  assert.ok(v.ok, `${label}: ${v.summary}\n${v.problems.join("\n")}`);
  assert.ok(v.counts.descriptors > 0);
}

test("docs/api.md: the dump example writes a dump that verifies", async () => {
  await runExample(tsBlock("docs/api.md"), "docs/api.md");
});

test("README.md: the Library API example writes a dump that verifies", async () => {
  await runExample(tsBlock("README.md", "## Library API"), "README.md");
});
