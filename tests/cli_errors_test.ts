/**
 * Bad input: a one-line error naming the file and what is wrong, exit 1, and no partial DUMPFILE left.
 */
import assert from "node:assert/strict";
import { buildElfCore } from "../fixtures/miniElf.ts";
import { runVmsift, tempDir } from "./support/run.ts";

function validCore(withVmcoreinfo: boolean): Uint8Array {
  return buildElfCore(
    [{ paddr: 0, data: new Uint8Array(16384) }],
    [
      { name: "CORE", type: 1, desc: new Uint8Array(336) },
      ...(withVmcoreinfo
        ? [{ name: "VMCOREINFO", type: 0, desc: new TextEncoder().encode("OSRELEASE=x\n") }]
        : []),
    ],
  );
}

async function expectFailure(args: string[], dumpfile: string | null, re: RegExp, code = 1) {
  const r = await runVmsift(args);
  assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("vmsift:"));
  assert.equal(lines.length, 1, `exactly one error line: ${r.stderr}`);
  assert.match(lines[0], re);
  // the error is the last thing printed, and nothing follows it (no "Failed." lines, no blank line)
  assert.ok(
    r.stderr.endsWith(`${lines[0]}\n`),
    `the error line ends the output: ${JSON.stringify(r.stderr)}`,
  );
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  if (dumpfile !== null) {
    assert.throws(() => Deno.statSync(dumpfile), Deno.errors.NotFound, "no partial DUMPFILE left behind");
  }
}

Deno.test("cli errors: bad vmcores and outputs give one line naming the file, exit 1, no DUMPFILE", async () => {
  const dir = tempDir();
  try {
    const out = `${dir}/out.kdump`;
    const notElf = `${dir}/not-elf`;
    Deno.writeTextFileSync(
      notElf,
      "this is plainly not an ELF core file, but long enough to read a header...",
    );
    await expectFailure(["-d", "31", notElf, out], out, new RegExp(`${notElf}: offset 0x0: not an ELF file`));

    const good = validCore(true);
    const truncPh = `${dir}/trunc-ph`;
    Deno.writeFileSync(truncPh, good.slice(0, 64 + 30));
    await expectFailure(
      ["-d", "1", truncPh, out],
      out,
      /trunc-ph: offset 0x40: program headers .* truncated/,
    );

    const beyond = `${dir}/beyond`;
    Deno.writeFileSync(beyond, good.slice(0, good.length - 4096));
    await expectFailure(
      ["-d", "1", beyond, out],
      out,
      /beyond: offset 0x[0-9a-f]+: program header 1 \(PT_LOAD/,
    );

    const noVi = `${dir}/no-vmcoreinfo`;
    Deno.writeFileSync(noVi, validCore(false));
    await expectFailure(
      ["-d", "1", noVi, out],
      out,
      /no-vmcoreinfo: offset 0x[0-9a-f]+: .*no VMCOREINFO note.*-i/,
    );

    await expectFailure(["-d", "1", `${dir}/missing`, out], out, /missing: cannot open for reading/);

    const exists = `${dir}/exists.kdump`;
    Deno.writeTextFileSync(exists, "keep me");
    await expectFailure(["-d", "1", noVi, exists], null, /exists\.kdump: .*already exists.*-f/);
    assert.equal(
      Deno.readTextFileSync(exists),
      "keep me",
      "an existing DUMPFILE is never touched without -f",
    );

    await expectFailure(
      ["-i", `${dir}/no-such-vmcoreinfo`, "-d", "1", noVi, out],
      out,
      /no-such-vmcoreinfo: cannot read/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli errors: usage errors exit 1 with makedumpfile's message; -h, -v and --check-params exit 0", async () => {
  const r = await runVmsift(["-d", "32", "a", "b"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^vmsift: Dump_level\(32\) is invalid.*: Commandline parameter is invalid \(try `vmsift --help'\)\n$/,
  );
  assert.equal(r.stdout, "");
  assert.equal((await runVmsift(["-E", "a", "b"])).code, 1);
  assert.equal((await runVmsift(["--check-params", "-c", "-d", "31", "a", "b"])).code, 0);
  const h = await runVmsift(["-h"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Usage:/);
  const v = await runVmsift(["-v"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /vmsift: version/);
});
