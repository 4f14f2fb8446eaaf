/**
 * crash 8.0.2, the reference reader, on vmsift's outputs of the real fixture: it must open them (osrelease
 * without a vmlinux) and, with the -dbg vmlinux installed, show what ../shared/fixtures/real-6.1/crash.txt
 * shows for makedumpfile's -c -d 31 output (sys, log | wc -l, kmem -i, the task-list walk, ps).
 */
import assert from "node:assert/strict";
import { haveReal, haveVmlinux, REAL_DIR, realVmcore, VMLINUX } from "./support/fixture.ts";
import { haveProgram, runVmsift, tempDir } from "./support/run.ts";

const haveCrash = haveProgram("crash");

/** Run crash in batch mode with `commands` on stdin; returns what it printed. */
async function crash(args: string[], commands: string): Promise<string> {
  const child = new Deno.Command("crash", { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(commands + "\nquit\n"));
  await w.close();
  const out = await child.output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** The output of one command in crash.txt (between "crash> CMD" and the next prompt). */
function section(text: string, cmd: string): string {
  const start = text.indexOf(`crash> ${cmd}\n`);
  assert.ok(start >= 0, `crash.txt has ${cmd}`);
  const body = text.slice(start + cmd.length + 8);
  const end = body.indexOf("crash> ");
  return end < 0 ? body : body.slice(0, end);
}

Deno.test({
  name: "crash: opens vmsift -c -d 1 and -c -d 31 dumps (crash --osrelease)",
  ignore: !haveReal() || !haveCrash,
  async fn() {
    const dir = tempDir();
    try {
      for (const level of ["1", "31"]) {
        const out = `${dir}/c${level}.kdump`;
        const r = await runVmsift(["-c", "-d", level, await realVmcore(), out]);
        assert.equal(r.code, 0, r.stderr);
        const c = new Deno.Command("crash", { args: ["--osrelease", out], stdout: "piped", stderr: "piped" })
          .outputSync();
        assert.equal(c.code, 0, new TextDecoder().decode(c.stderr));
        assert.equal(new TextDecoder().decode(c.stdout).trim(), "6.1.0-56-amd64");
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "crash: with the debug vmlinux, sys/log/kmem -i/task walk/ps of vmsift -c -d 31 equal crash.txt",
  ignore: !haveReal() || !haveCrash || !haveVmlinux(),
  async fn() {
    const want = Deno.readTextFileSync(`${REAL_DIR}/crash.txt`);
    const dir = tempDir();
    try {
      const out = `${dir}/c31.kdump`;
      const r = await runVmsift(["-c", "-d", "31", await realVmcore(), out]);
      assert.equal(r.code, 0, r.stderr);
      const cmds = [
        "sys",
        "log | wc -l",
        "kmem -i",
        "list task_struct.tasks -s task_struct.pid,comm -h init_task",
        "ps",
      ];
      const got = await crash(["-s", VMLINUX, out], cmds.join("\n"));
      assert.doesNotMatch(got, /page excluded|read error|seek error/i);
      // sys: every line but DUMPFILE (the path differs).
      for (const line of section(want, "sys").split("\n")) {
        if (line.trim() === "" || line.includes("DUMPFILE")) continue;
        assert.ok(got.includes(line), `sys line missing: ${line}`);
      }
      assert.match(got, /DUMPFILE: .*c31\.kdump {2}\[PARTIAL DUMP\]/);
      assert.ok(got.includes("\n384\n"), "log | wc -l = 384");
      for (const cmd of cmds.slice(2)) {
        const block = section(want, cmd).trimEnd();
        assert.ok(got.includes(block), `${cmd} differs from crash.txt`);
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
