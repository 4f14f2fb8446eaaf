import assert from "node:assert/strict";
import { runVmsift, tempDir } from "./support/run.ts";
import { parseCommandLine, parseDumpLevels, UsageError } from "../cli/options.ts";

Deno.test("options: makedumpfile command lines as kdump scripts write them", () => {
  let o = parseCommandLine(["-c", "-d", "31", "/proc/vmcore", "dumpfile"]);
  assert.deepEqual(o.command, { kind: "dump", vmcore: "/proc/vmcore", dumpfile: "dumpfile" });
  assert.equal(o.codec, "zlib");
  assert.deepEqual(o.dumpLevels, [31]);
  assert.equal(o.messageLevel, 7);
  o = parseCommandLine(["-l", "--message-level", "1", "-d", "31", "a", "b"]);
  assert.equal(o.codec, "lzo");
  assert.equal(o.messageLevel, 1);
  o = parseCommandLine(["-cd31", "a", "b"]);
  assert.equal(o.codec, "zlib");
  assert.deepEqual(o.dumpLevels, [31]);
  o = parseCommandLine(["-c", "-z", "-d", "1", "--message-level=23", "a", "b"]);
  assert.equal(o.codec, "zstd", "last codec option wins");
  assert.equal(o.messageLevel, 23);
  o = parseCommandLine(["--show-stats", "a", "b"]);
  assert.equal(o.messageLevel & 16, 16);
  o = parseCommandLine(["--dump-dmesg", "vmcore", "log"]);
  assert.deepEqual(o.command, { kind: "dmesg", vmcore: "vmcore", logfile: "log" });
  o = parseCommandLine(["--vtop", "ffffffff81000000", "vmcore"]);
  assert.deepEqual(o.command, { kind: "vtop", vmcore: "vmcore", vaddr: 0xffffffff81000000n });
  o = parseCommandLine(["info", "--json", "x"]);
  assert.deepEqual(o.command, { kind: "info", dumpfile: "x" });
  assert.equal(o.json, true);
  o = parseCommandLine(["verify", "x", "y"]);
  assert.deepEqual(o.command, { kind: "verify", dumpfile: "x", vmcore: "y" });
  assert.equal(parseCommandLine(["-v"]).command.kind, "version");
  assert.equal(parseCommandLine(["-h"]).command.kind, "help");
});

Deno.test("options: bad command lines are usage errors", () => {
  for (
    const bad of [
      ["-d", "32", "a", "b"],
      ["-d", "x", "a", "b"],
      ["a"],
      ["a", "b", "c"],
      ["--no-such-option", "a", "b"],
      ["--message-level", "99", "a", "b"],
      ["--partial-dmesg", "a", "b"],
      ["--vtop", "zz", "a"],
      ["-d"],
    ]
  ) {
    assert.throws(() => parseCommandLine(bad), UsageError, JSON.stringify(bad));
  }
  assert.deepEqual(parseDumpLevels("31"), [31]);
  assert.deepEqual(parseDumpLevels("0,1"), [0, 1]);
});

Deno.test("options: --codec-engine picks one of the codec's engines", () => {
  assert.equal(parseCommandLine(["-c", "a", "b"]).codecEngine, undefined, "default: auto");
  assert.equal(parseCommandLine(["-c", "--codec-engine", "libz", "a", "b"]).codecEngine, "libz");
  assert.equal(parseCommandLine(["--codec-engine=libdeflate", "-c", "a", "b"]).codecEngine, "libdeflate");
  assert.equal(parseCommandLine(["-l", "--codec-engine", "builtin", "a", "b"]).codecEngine, "builtin");
  assert.equal(parseCommandLine(["-z", "--codec-engine", "node", "a", "b"]).codecEngine, "node");
  assert.equal(parseCommandLine(["-p", "--codec-engine", "auto", "a", "b"]).codecEngine, "auto");
  const bad: [string[], RegExp][] = [
    [["-l", "--codec-engine", "libz", "a", "b"], /"libz" is not an engine of lzo \(liblzo2, builtin/],
    [["-c", "--codec-engine", "zlib-ng", "a", "b"], /unknown codec engine "zlib-ng" \(one of auto, native/],
    [["--codec-engine", "libz", "a", "b"], /--codec-engine needs a codec/],
    [["-c", "--codec-engine", "a", "b"], /unknown codec engine "a"/],
  ];
  for (const [argv, why] of bad) {
    assert.throws(() => parseCommandLine(argv), (e: Error) => e instanceof UsageError && why.test(e.message));
  }
});

Deno.test("options: -b and --non-cyclic are accepted with a warning line each saying they are ignored", async () => {
  assert.equal(parseCommandLine(["-c", "-d", "31", "a", "b"]).ignoredOptions, undefined);
  const o = parseCommandLine(["-c", "-b", "8", "--non-cyclic", "-d", "31", "a", "b"]);
  assert.equal(o.ignoredOptions?.length, 2);
  assert.match(o.ignoredOptions![0], /^-b 8 is ignored: /);
  assert.match(o.ignoredOptions![1], /^--non-cyclic is ignored: /);
  assert.throws(() => parseCommandLine(["-b", "x", "a", "b"]), UsageError);
  // through the CLI: a warning line on stderr, then the command runs (here it fails on the missing input)
  const dir = tempDir();
  try {
    const r = await runVmsift(["-b", "8", "--non-cyclic", "-c", "-d", "31", `${dir}/none`, `${dir}/out`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr + r.stdout, /^vmsift: warning: -b 8 is ignored: .*$/m);
    assert.match(r.stderr + r.stdout, /^vmsift: warning: --non-cyclic is ignored: .*$/m);
    const q = await runVmsift([
      "--message-level",
      "4",
      "-b",
      "8",
      "-c",
      "-d",
      "31",
      `${dir}/none`,
      `${dir}/out`,
    ]);
    assert.doesNotMatch(q.stderr + q.stdout, /warning/, "common messages off: no warning");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
