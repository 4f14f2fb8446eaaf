/** cli/argParser.ts against getopt_long's rules (what makedumpfile's users type), and directoryOf. */
import assert from "node:assert/strict";
import { ArgError, parseOptions } from "../cli/argParser.ts";
import { directoryOf } from "../dump/outputs.ts";

const SPECS = {
  c: { type: "boolean", short: "c" },
  l: { type: "boolean", short: "l" },
  d: { type: "string", short: "d" },
  f: { type: "boolean", short: "f" },
  "message-level": { type: "string" },
  "num-threads": { type: "string" },
  "no-direct-io": { type: "boolean" },
  "non-mmap": { type: "boolean" },
} as const;

Deno.test("argParser: clusters, attached and separate values, permutation, --, prefixes", () => {
  const p = (...a: string[]) => parseOptions(a, SPECS);
  assert.deepEqual(p("-cd", "31", "in", "out").values, { c: true, d: "31" });
  assert.deepEqual(p("-cd31", "in", "out").values, { c: true, d: "31" });
  assert.deepEqual(p("-d31").values, { d: "31" });
  assert.deepEqual(p("-d", "-5").values, { d: "-5" }, "getopt takes the next word whatever it is");
  const mixed = p("in", "-c", "--message-level=7", "out", "--num-threads", "2", "-f");
  assert.deepEqual(mixed.positionals, ["in", "out"]);
  assert.deepEqual(mixed.values, { c: true, "message-level": "7", "num-threads": "2", f: true });
  assert.deepEqual(p("-c", "--", "-l", "x").positionals, ["-l", "x"]);
  assert.deepEqual(p("-", "x").positionals, ["-", "x"]);
  assert.deepEqual(p("--message", "31").values, { "message-level": "31" }, "unambiguous prefix");
  assert.deepEqual(p("--no-d").values, { "no-direct-io": true });
  assert.deepEqual(p("-c", "-l", "-c").order, ["c", "l", "c"]);
  assert.deepEqual(p("-d", "1", "-d", "31").values, { d: "31" }, "last one wins");
});

Deno.test("argParser: what getopt refuses", () => {
  const bad = (re: RegExp, ...a: string[]) =>
    assert.throws(() => parseOptions(a, SPECS), (e) => e instanceof ArgError && re.test(e.message));
  bad(/unrecognized option '--bogus'/, "--bogus");
  bad(/option '--no' is ambiguous; possibilities: '--no-direct-io' '--non-mmap'/, "--no");
  bad(/invalid option -- 'q'/, "-cq");
  bad(/option requires an argument -- 'd'/, "-c", "-d");
  bad(/option '--num-threads' requires an argument/, "--num-threads");
  bad(/option '--no-direct-io' doesn't allow an argument/, "--no-direct-io=1");
});

Deno.test("directoryOf: the absolute directory of a path, without node:path", () => {
  const cwd = Deno.cwd();
  assert.equal(directoryOf("/var/tmp/x.kdump"), "/var/tmp");
  assert.equal(directoryOf("x.kdump"), cwd);
  assert.equal(directoryOf("./a/../b/x"), `${cwd === "/" ? "" : cwd}/b`);
  assert.equal(directoryOf("/x"), "/");
});
