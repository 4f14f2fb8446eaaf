/**
 * The kernel-image guard (core/imageGuard.ts): live sections from constructed symbol sets, the page-table form
 * for kernels without kallsyms, and the size target on real dumps: vmsift's default `-c -d 31` (guard on)
 * within 1 % of makedumpfile's `-c -d 31`, compressed with the same zlib (`--codec-engine libz`) so that
 * only the page selection differs. Dumps: the real 6.1 fixture (makedumpfile's file is in the fixture), and,
 * when present, the vmcores listed in $VMSIFT_GUARD_VMCORES (colon-separated) and real /proc/vmcore copies
 * of the kdump test (saved with its --save), for which makedumpfile 1.7.2 is run here.
 */
import assert from "node:assert/strict";
import { liveImageSections, mappedImagePfns } from "../core/imageGuard.ts";
import { haveReal, realExpected, realVmcore } from "./support/fixture.ts";
import { haveProgram, MDF_C31_ARGS, runVmsift, withTempDir } from "./support/run.ts";

const K = 0xffffffff81000000n;
/** The real 6.1 kernel's layout (System.map of 6.1.0-56-amd64, unrelocated). */
const X86_61: Record<string, bigint> = {
  _text: K,
  _stext: K,
  _etext: 0xffffffff81e01d32n,
  __start_rodata: 0xffffffff82000000n,
  __end_rodata: 0xffffffff828eb000n,
  _sdata: 0xffffffff82a00000n,
  __init_begin: 0xffffffff83044000n,
  __init_end: 0xffffffff83306000n,
  __smp_locks: 0xffffffff83306000n,
  __smp_locks_end: 0xffffffff8330f000n,
  __nosave_begin: 0xffffffff8330f000n,
  __nosave_end: 0xffffffff83310000n,
  __bss_start: 0xffffffff83310000n,
  __start_bss_decrypted_unused: 0xffffffff84203000n,
  __end_bss_decrypted: 0xffffffff84400000n,
  __bss_stop: 0xffffffff84400000n,
  __brk_base: 0xffffffff84400000n,
  __brk_limit: 0xffffffff84430000n,
  _end: 0xffffffff84430000n,
  _brk_end: 0xffffffff82a2cce0n, // a variable; its value is the end of the brk in use
};

function lookupIn(map: Record<string, bigint>) {
  return { lookup: (n: string) => map[n] };
}

Deno.test("image guard: x86_64 6.1 layout, every part the kernel frees left out", () => {
  const s = liveImageSections(
    lookupIn(X86_61),
    (v) => (v === X86_61._brk_end ? 0xffffffff84410a00n : undefined),
  )!;
  assert.deepEqual(s.map((x) => [x.name, x.start.toString(16), x.end.toString(16)]), [
    ["text", "ffffffff81000000", "ffffffff81e02000"],
    ["rodata", "ffffffff82000000", "ffffffff828eb000"],
    ["data", "ffffffff82a00000", "ffffffff83044000"],
    ["nosave+bss", "ffffffff8330f000", "ffffffff84203000"],
    ["brk", "ffffffff84400000", "ffffffff84411000"],
  ]);
  // Without _brk_end's value the whole brk area stays protected (its used part is live page tables).
  const noBrk = liveImageSections(lookupIn(X86_61))!;
  assert.deepEqual(noBrk[noBrk.length - 1].end, X86_61._end);
});

Deno.test("image guard: missing bounds", () => {
  assert.equal(liveImageSections(lookupIn({ _stext: K })), undefined); // no _end
  // Only _text and _end: the whole image.
  const s = liveImageSections(lookupIn({ _text: K, _end: K + 0x100000n }))!;
  assert.deepEqual(s, [{ name: "image", start: K, end: K + 0x100000n }]);
  // arm64-like: init between rodata and data, no x86 gaps.
  const arm = liveImageSections(lookupIn({
    _text: K,
    _etext: K + 0x10000n,
    __start_rodata: K + 0x10000n,
    __init_begin: K + 0x40000n,
    __init_end: K + 0x60000n,
    _sdata: K + 0x60000n,
    _end: K + 0x80000n,
  }))!;
  assert.deepEqual(arm.map((x) => [x.start - K, x.end - K]), [[0n, 0x40000n], [0x60000n, 0x80000n]]);
});

Deno.test("image guard: page tables (no kallsyms): the pieces mapped at the linear offset", () => {
  const lin = (v: bigint) => Number(v - K) + 0x1000000;
  const piece = (off: number, len: number, mapped = true) => ({
    vaddr: K + BigInt(off),
    len,
    paddr: mapped ? 0x1000000 + off : undefined,
  });
  // PTI: freed parts unmapped from the image alias.
  assert.deepEqual(
    mappedImagePfns([piece(0, 0x200000), piece(0x200000, 0x3000, false), piece(0x203000, 0x1000)], lin),
    [{ startPfn: 0x1000, endPfn: 0x1200 }, { startPfn: 0x1203, endPfn: 0x1204 }],
  );
  // No PTI: one mapped run (freed parts included; buildMemoryModel then keeps the PG_reserved pages).
  assert.deepEqual(mappedImagePfns([piece(0, 0x3600000), piece(0x3600000, 0x4a00000, false)], lin), [
    { startPfn: 0x1000, endPfn: 0x4600 },
  ]);
  // A piece mapped elsewhere than the linear offset is not the image.
  const other = { vaddr: K + 0x300000n, len: 0x1000, paddr: 0x5000 };
  assert.deepEqual(mappedImagePfns([piece(0, 0x200000), other], lin), [{ startPfn: 0x1000, endPfn: 0x1200 }]);
  assert.equal(mappedImagePfns([other], lin), undefined);
});

/** vmsift `-c -d 31 --codec-engine libz` (guard on, the default) against makedumpfile's size. */
async function checkSize(vmcore: string, makedumpfileBytes: number, dir: string): Promise<void> {
  const out = `${dir}/vmsift.kdump`;
  const r = await runVmsift([
    ...MDF_C31_ARGS,
    "--message-level",
    "16",
    vmcore,
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /image guard off/);
  const ours = Deno.statSync(out).size;
  const ratio = ours / makedumpfileBytes;
  console.log(
    `${vmcore}: vmsift ${ours} bytes, makedumpfile ${makedumpfileBytes} (${
      ((ratio - 1) * 100).toFixed(3)
    } %)`,
  );
  assert.ok(Math.abs(ratio - 1) <= 0.01, `${ours} vs ${makedumpfileBytes}`);
}

Deno.test({
  name: "image guard: real 6.1 fixture, default -c -d 31 within 1 % of makedumpfile's size (libz pages)",
  ignore: !haveReal(),
  async fn() {
    await withTempDir(async (dir) => {
      const exp = realExpected() as unknown as { outputs_d31: Record<string, { size: number }> };
      await checkSize(await realVmcore(), exp.outputs_d31["makedumpfile-c-d31.kdump"].size, dir);
    });
  },
});

/** $VMSIFT_GUARD_VMCORES only: the suite does not pick up files earlier runs left. */
function extraVmcores(): string[] {
  return (Deno.env.get("VMSIFT_GUARD_VMCORES") ?? "").split(":").filter((s) => s !== "");
}

for (const vmcore of extraVmcores()) {
  Deno.test({
    name: `image guard: ${vmcore}, -c -d 31 within 1 % of makedumpfile 1.7.2's size`,
    ignore: !haveProgram("makedumpfile"),
    async fn() {
      await withTempDir(async (dir) => {
        const ref = `${dir}/makedumpfile.kdump`;
        const p = await new Deno.Command("makedumpfile", {
          args: ["-c", "-d", "31", vmcore, ref],
          stdout: "null",
        })
          .output();
        assert.equal(p.code, 0, new TextDecoder().decode(p.stderr));
        await checkSize(vmcore, Deno.statSync(ref).size, dir);
      });
    },
  });
}
