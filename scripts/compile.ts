/**
 * `deno task compile`: one self-contained executable with the narrowest permissions that work.
 * `deno compile` needs the denort runtime: it downloads it, or takes it from DENORT_BIN (offline builders
 * point DENORT_BIN at a denort binary of the same Deno version, 2.9.6).
 */
import { V8_FLAGS_ARG } from "./runtimeFlags.ts";

const out = Deno.args[0] ?? "dist/vmsift";
const denort = Deno.env.get("DENORT_BIN");
if (denort !== undefined) {
  try {
    Deno.statSync(denort);
  } catch {
    console.error(`compile: DENORT_BIN=${denort} does not exist`);
    Deno.exit(1);
  }
  console.error(`compile: using denort from DENORT_BIN=${denort}`);
}
const cmd = new Deno.Command(Deno.execPath(), {
  args: [
    "compile",
    "--no-prompt",
    // read: the vmcore, VMCOREINFO files, /proc/self for memory stats; write: the dump and bitmap file;
    // ffi: libc open/pread/pwrite/posix_memalign for O_DIRECT; env: DENO-free, only VMSIFT_* settings.
    "--allow-read",
    "--allow-write",
    "--allow-ffi",
    // baked into the executable like the permissions (scripts/runtimeFlags.ts)
    V8_FLAGS_ARG,
    "--output",
    out,
    "main.ts",
  ],
  env: denort !== undefined ? { DENORT_BIN: denort } : {},
  stdout: "inherit",
  stderr: "inherit",
});
const { code } = cmd.outputSync();
if (code !== 0) {
  console.error(
    "compile: deno compile failed. It needs the denort runtime: network access to download it, " +
      "or DENORT_BIN pointing at a denort 2.9.6 binary.",
  );
}
Deno.exit(code);
