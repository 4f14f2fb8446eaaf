/**
 * The packaging files agree with the program: every option of `vmsift -h` (cli/options.ts USAGE) is in the
 * man page and in the bash completion, and the shell scripts parse.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { USAGE } from "../cli/options.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const read = (rel: string) => Deno.readTextFileSync(`${ROOT}${rel}`);

/** Options named in USAGE's option lines (`  -c, -l`, `  --work-dir DIR`, ...). */
function usageOptions(): string[] {
  const opts = new Set<string>();
  for (const line of USAGE.split("\n")) {
    for (const o of line.matchAll(/(?:^ {2}|, )(--?[a-zA-Z][a-zA-Z-]*)/g)) opts.add(o[1]);
  }
  return [...opts].sort();
}

Deno.test("packaging: the man page and bash completion name every option of vmsift -h", () => {
  const opts = usageOptions();
  assert.ok(opts.length >= 34, opts.join(" "));
  const man = read("packaging/vmsift.8").replaceAll("\\-", "-");
  const completion = read("packaging/vmsift.bash-completion");
  for (const o of opts) {
    assert.ok(new RegExp(`(^|[^a-zA-Z-])${o}([^a-zA-Z-]|$)`, "m").test(man), `${o} in vmsift.8`);
    assert.ok(new RegExp(`(^|[\\s"])${o}(\\s|")`).test(completion), `${o} in the bash completion`);
  }
});

Deno.test("packaging: the shell scripts parse (sh -n, bash -n)", () => {
  for (
    const [shell, rel] of [
      ["sh", "packaging/vmsift"],
      ["sh", "packaging/vmsift-as-makedumpfile"],
      ["bash", "packaging/dracut/99vmsift/module-setup.sh"],
      ["bash", "packaging/vmsift.bash-completion"],
      ["bash", "packaging/test/memusage.sh"],
    ]
  ) {
    const r = new Deno.Command(shell, { args: ["-n", `${ROOT}${rel}`], stderr: "piped" }).outputSync();
    assert.equal(r.code, 0, `${rel}: ${new TextDecoder().decode(r.stderr)}`);
  }
});
