/**
 * makedumpfile 1.7.2's arm64 build (Debian bookworm, run through qemu-aarch64-static -L SYSROOT) reading
 * vmsift's arm64 files of the real arm64 fixture: re-filtering vmsift's -d 0 file gives makedumpfile's own
 * -l -d 31 file byte for byte, and --dump-dmesg of vmsift's -d 31 file gives dmesg.txt.
 *
 * Needs qemu-aarch64-static on PATH and an arm64 sysroot with usr/bin/makedumpfile: $VMSIFT_ARM64_SYSROOT,
 * else /tmp/vmcore-arm64/root (what ../shared/vmcore/make-arm64-vmcore.sh makes; .ci/run builds a small
 * one). Ignored without them.
 */
import assert from "node:assert/strict";
import { ARM64_DIR, arm64Expected, arm64Vmcore, haveArm64 } from "./support/arm64Fixture.ts";
import { isFile } from "./support/fixture.ts";
import { sha256File } from "./support/compare.ts";
import { haveProgram, runVmsift, tempDir } from "./support/run.ts";

const SYSROOT = Deno.env.get("VMSIFT_ARM64_SYSROOT") ?? "/tmp/vmcore-arm64/root";

function haveSysroot(): boolean {
  return isFile(`${SYSROOT}/usr/bin/makedumpfile`);
}

/** Run the arm64 makedumpfile under user-mode emulation. */
async function makedumpfileArm64(args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("qemu-aarch64-static", {
    args: ["-L", SYSROOT, `${SYSROOT}/usr/bin/makedumpfile`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test({
  name:
    "arm64 qemu-user: makedumpfile (arm64) re-filters vmsift's -d 0 file into its own -l -d 31 file; reads its dmesg",
  ignore: !haveArm64() || !haveProgram("qemu-aarch64-static") || !haveSysroot(),
  async fn() {
    const vmcore = await arm64Vmcore();
    const dir = tempDir();
    try {
      const d0 = `${dir}/v-d0.kdump`;
      assert.equal((await runVmsift(["-l", "-d", "0", "--no-image-guard", vmcore, d0])).code, 0);
      const out = `${dir}/md.kdump`;
      const r = await makedumpfileArm64(["-l", "-d", "31", d0, out]);
      assert.equal(r.code, 0, r.out);
      assert.equal(await sha256File(out), arm64Expected().outputs_d31["makedumpfile -l -d 31"].sha256);
      const d31 = `${dir}/v-d31.kdump`;
      assert.equal((await runVmsift(["-c", "-d", "31", "--no-image-guard", vmcore, d31])).code, 0);
      const log = `${dir}/dmesg.txt`;
      const m = await makedumpfileArm64(["--dump-dmesg", d31, log]);
      assert.equal(m.code, 0, m.out);
      assert.deepEqual(Deno.readFileSync(log), Deno.readFileSync(`${ARM64_DIR}/dmesg.txt`));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
