/**
 * crash on a vmcore of the CURRENT Debian kernel, whose -dbg vmlinux is always in the archive (the real-6.1
 * fixture's linux-image-6.1.0-56-amd64-dbg leaves it when a newer kernel ABI replaces 6.1.0-56). The oracle
 * is crash itself on the original ELF vmcore: `sys`, `log`, `kmem -i` and `ps` of vmsift's `-c -d 31` dump
 * must print what they print on the vmcore (but the DUMPFILE line).
 *
 * Input: VMSIFT_CURRENT_VMCORE, an ELF vmcore (.ci/run makes one with QEMU from the newest installable
 * kernel when the fixture's -dbg package is gone, or when VMSIFT_CI_CURRENT_KERNEL=1: docs/testing.md), and
 * the vmlinux of its release: VMSIFT_CURRENT_VMLINUX, else /usr/lib/debug/boot/vmlinux-OSRELEASE. Ignored
 * (visibly) when either or crash is missing.
 */
import assert from "node:assert/strict";
import { ElfCore } from "../formats/elfCore.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { isFile } from "./support/fixture.ts";
import { haveProgram, runVmsift, tempDir } from "./support/run.ts";

const VMCORE = Deno.env.get("VMSIFT_CURRENT_VMCORE");

/** The vmcore's kernel release (VMCOREINFO OSRELEASE), or undefined. */
function osrelease(path: string): string | undefined {
  const core = ElfCore.open(path);
  try {
    const note = core.vmcoreinfoNote;
    return note === undefined ? undefined : VmcoreInfo.parse(new TextDecoder().decode(note.desc)).osrelease;
  } finally {
    core.close();
  }
}

const RELEASE = isFile(VMCORE) ? osrelease(VMCORE) : undefined;
const VMLINUX = Deno.env.get("VMSIFT_CURRENT_VMLINUX") ??
  (RELEASE === undefined ? undefined : `/usr/lib/debug/boot/vmlinux-${RELEASE}`);

/** crash in batch mode: each command's output, split at markers crash echoes between them. */
async function crashOutputs(vmlinux: string, dump: string, cmds: string[]): Promise<string[]> {
  const script = cmds.map((c, i) => `${c}\n!echo @@@${i}@@@`).join("\n") + "\nquit\n";
  const child = new Deno.Command("crash", {
    args: ["-s", vmlinux, dump],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const o = await child.output();
  const text = new TextDecoder().decode(o.stdout);
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < cmds.length; i++) {
    const at = rest.indexOf(`@@@${i}@@@\n`);
    assert.ok(
      at >= 0,
      `crash did not finish "${cmds[i]}": ${text.slice(-400)}${new TextDecoder().decode(o.stderr)}`,
    );
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + `@@@${i}@@@\n`.length);
  }
  return parts;
}

Deno.test({
  name: "crash (current kernel): sys, log, kmem -i and ps of vmsift -c -d 31 equal crash on the ELF vmcore",
  ignore: !haveProgram("crash") || !isFile(VMCORE) || !isFile(VMLINUX),
  async fn() {
    const dir = tempDir();
    try {
      const out = `${dir}/current.kdump`;
      const r = await runVmsift(["-c", "-d", "31", VMCORE!, out]);
      assert.equal(r.code, 0, r.stderr);
      const cmds = ["sys", "log", "kmem -i", "ps"];
      const want = await crashOutputs(VMLINUX!, VMCORE!, cmds);
      const got = await crashOutputs(VMLINUX!, out, cmds);
      const noDumpfile = (s: string) => s.split("\n").filter((l) => !/^\s*DUMPFILE:/.test(l)).join("\n");
      assert.match(got[0], /DUMPFILE: .*current\.kdump {2}\[PARTIAL DUMP\]/);
      assert.match(want[0], new RegExp(`RELEASE: ${RELEASE!.replaceAll(".", "\\.")}`));
      for (const [i, cmd] of cmds.entries()) {
        assert.ok(want[i].trim().length > 0, `${cmd}: crash printed nothing on the vmcore`);
        assert.equal(noDumpfile(got[i]), noDumpfile(want[i]), `${cmd} differs`);
      }
      assert.doesNotMatch(got.join(""), /page excluded|read error|seek error/i);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
