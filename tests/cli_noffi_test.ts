/**
 * Without --allow-ffi (a `deno run` by hand; the compiled vmsift always has it): no libc, so no O_DIRECT, no
 * bitmap files and no system codec libraries. The dump must still be written, each degradation said in one
 * warning line, and what cannot be done refused with a message that says how to get it.
 */
import assert from "node:assert/strict";
import { writeSample } from "../fixtures/sample.ts";
import { assertVerifies, runVmsift, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-noffi-");
const NO_FFI = ["--allow-read", "--allow-write"];

test("no FFI: -c dump through the page cache and node:zlib, each said once; verify passes; bitmap files refused", async () => {
  const dir = tmp("noffi");
  writeSample(dir);
  const vmcore = `${dir}/sample.vmcore`;
  const dump = `${dir}/sample.kdump`;
  const r = await runVmsift(["-c", "-d", "31", vmcore, dump], { permissions: NO_FFI });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const text = r.stdout + r.stderr;
  const warnings = text.split("\n").filter((l) => l.startsWith("warning: "));
  assert.equal(warnings.length, 2, text);
  assert.match(
    warnings[0],
    /zlib: libdeflate, libz not usable: FFI is not permitted .*using node:zlib instead/,
  );
  assert.match(
    warnings[1],
    /O_DIRECT needs libc through FFI \(--allow-ffi\); writing through the page cache/,
  );
  await assertVerifies(dump, vmcore, { permissions: NO_FFI });
  // bitmaps bigger than the memory budget need bitmap files, which need libc
  const small = await runVmsift(["-f", "-d", "31", "--cyclic-buffer", "1", vmcore, `${dir}/b.kdump`], {
    permissions: NO_FFI,
  });
  assert.equal(small.code, 1);
  assert.match(
    small.stdout + small.stderr,
    /bitmap files are written through libc \(FFI\): run with --allow-ffi/,
  );
});
