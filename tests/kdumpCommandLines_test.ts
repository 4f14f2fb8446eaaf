/**
 * Fedora/RHEL kdump-utils' command lines for a core collector, run against the sample with vmsift standing
 * in for the collector (a `vmsift` and a `makedumpfile` on PATH that run main.ts). The shell lines are those
 * of kdump-utils' dracut/99kdumpbase/kdump.sh (collector rewriting, dump_fs, dump_ssh, dump_raw), mkdumprd
 * (verify_core_collector's --check-params) and kdumpctl (save_raw's `makedumpfile -R`):
 * - `core_collector vmsift -l --message-level 7 -d 31` is used as written: `vmsift ... /proc/vmcore
 *   DIR/vmcore-incomplete`, then mv to vmcore;
 * - a collector named makedumpfile gets -F stripped, -F re-added for ssh and raw targets, and
 *   `--num-threads=$(nproc)` appended when nproc > 1 and there is no -F/-E;
 * - ssh: the flattened stream is written remotely with dd and renamed vmcore.flat, rebuilt with -R;
 * - raw: the stream goes onto a block device holding older data past its end; -R must stop at the end
 *   marker;
 * - mkdumprd runs `COLLECTOR --check-params PARAMS vmcore dumpfile` (`... -F vmcore` for ssh/raw).
 */
import assert from "node:assert/strict";
import { writeSample } from "../fixtures/sample.ts";
import { MAIN, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-kdumpcl-");

/** A directory with `vmsift` and `makedumpfile` running main.ts, and `nproc` printing `nproc`. */
function binDir(dir: string, nproc: number): string {
  const bin = `${dir}/bin`;
  Deno.mkdirSync(bin, { recursive: true });
  const run = `#!/bin/sh\nexec "${Deno.execPath()}" run --no-prompt -A "${MAIN}" "$@"\n`;
  for (const name of ["vmsift", "makedumpfile"]) {
    Deno.writeTextFileSync(`${bin}/${name}`, run);
    Deno.chmodSync(`${bin}/${name}`, 0o755);
  }
  Deno.writeTextFileSync(`${bin}/nproc`, `#!/bin/sh\necho ${nproc}\n`);
  Deno.chmodSync(`${bin}/nproc`, 0o755);
  return bin;
}

function sh(bin: string, script: string, env: Record<string, string>): { code: number; out: string } {
  const r = new Deno.Command("/bin/sh", {
    args: ["-c", script],
    env: { ...env, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

/** kdump.sh's rewriting of CORE_COLLECTOR (target is "fs", "ssh" or "raw"), then `echo "$CORE_COLLECTOR"`. */
const REWRITE = `
is_ssh_dump_target() { [ "$TARGET" = ssh ]; }
is_raw_dump_target() { [ "$TARGET" = raw ]; }
case $CORE_COLLECTOR in
    *makedumpfile*)
        CORE_COLLECTOR=$(echo "$CORE_COLLECTOR" | sed -e "s/-F//g")
        if is_ssh_dump_target || is_raw_dump_target; then
            CORE_COLLECTOR="$CORE_COLLECTOR -F"
        fi
        THREADS=$(nproc)
        if [ "$THREADS" -gt 1 ]; then
            case "$CORE_COLLECTOR" in
                *-F* | *-E*) ;;
                *)
                    CORE_COLLECTOR="$CORE_COLLECTOR --num-threads=$THREADS"
                    ;;
            esac
        fi
        ;;
esac
echo "collector: $CORE_COLLECTOR"
`;

/** dump_fs: write vmcore-incomplete, sync, rename. */
const DUMP_FS = `
_dump_fs_path=$OUT/127.0.0.1-2026-12-06-21:00:00/
mkdir -p "$_dump_fs_path"
$CORE_COLLECTOR $VMCORE "$_dump_fs_path/vmcore-incomplete"
_dump_exitcode=$?
if [ $_dump_exitcode -eq 0 ]; then
    sync -f "$_dump_fs_path/vmcore-incomplete" && mv "$_dump_fs_path/vmcore-incomplete" "$_dump_fs_path/vmcore"
fi
vmsift verify "$_dump_fs_path/vmcore" $VMCORE
`;

/** dump_ssh (ssh replaced by a local shell) and the host's `vmsift -R` of vmcore.flat. */
const DUMP_SSH = `
_ssh_dir=$OUT/127.0.0.1-2026-12-06-21:00:00; mkdir -p "$_ssh_dir"
$CORE_COLLECTOR $VMCORE | sh -c "umask 0077 && dd bs=512 of='$_ssh_dir/vmcore-incomplete' 2>/dev/null"
_ret=$?
[ $_ret -eq 0 ] && sh -c "mv '$_ssh_dir/vmcore-incomplete' '$_ssh_dir/vmcore.flat'"
vmsift -R "$_ssh_dir/vmcore" < "$_ssh_dir/vmcore.flat"
vmsift verify "$_ssh_dir/vmcore" $VMCORE
`;

/** dump_raw onto a "device" (a file not truncated, holding older data) and kdumpctl's save_raw. */
const DUMP_RAW = `
DD_BLKSIZE=512
head -c 33554432 /dev/urandom > $OUT/raw.dev
$CORE_COLLECTOR $VMCORE | dd of=$OUT/raw.dev bs=$DD_BLKSIZE conv=notrunc 2>/dev/null || exit 1
makedumpfile -R "$OUT/vmcore" < "$OUT/raw.dev"
vmsift verify "$OUT/vmcore" $VMCORE
`;

function setup(name: string, nproc = 2) {
  const dir = tmp(name);
  Deno.mkdirSync(dir);
  const sample = writeSample(`${dir}/s`);
  return { dir, bin: binDir(dir, nproc), vmcore: sample.path };
}

test("kdump-utils: core_collector vmsift ... is run as written, into vmcore-incomplete, then renamed", () => {
  const { dir, bin, vmcore } = setup("fs-vmsift");
  const env = {
    OUT: `${dir}/crash`,
    VMCORE: vmcore,
    TARGET: "fs",
    CORE_COLLECTOR: "vmsift -l --message-level 7 -d 31",
  };
  const r = sh(bin, REWRITE + DUMP_FS, env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /collector: vmsift -l --message-level 7 -d 31\n/);
  assert.match(r.out, /all correct/);
  assert.ok(!r.out.includes("vmcore-incomplete: "), "no error about the temporary name");
});

test("kdump-utils: a makedumpfile-named collector, local target: -F stripped, --num-threads=2 appended", () => {
  const { dir, bin, vmcore } = setup("fs-mdf");
  const env = {
    OUT: `${dir}/crash`,
    VMCORE: vmcore,
    TARGET: "fs",
    CORE_COLLECTOR: "makedumpfile -F -l --message-level 7 -d 31",
  };
  const r = sh(bin, REWRITE + DUMP_FS, env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /collector: makedumpfile {2}-l --message-level 7 -d 31 --num-threads=2\n/);
  assert.match(r.out, /all correct/);
});

test("kdump-utils: ssh target: -F re-added, no --num-threads, vmcore.flat rebuilt with -R", () => {
  const { dir, bin, vmcore } = setup("ssh");
  const env = {
    OUT: `${dir}/crash`,
    VMCORE: vmcore,
    TARGET: "ssh",
    CORE_COLLECTOR: "makedumpfile -l --message-level 7 -d 31",
  };
  const r = sh(bin, REWRITE + DUMP_SSH, env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /collector: makedumpfile -l --message-level 7 -d 31 -F\n/);
  assert.match(r.out, /all correct/);
});

test("kdump-utils: raw target: the stream on a device with older data after it, rebuilt by -R", () => {
  const { dir, bin, vmcore } = setup("raw");
  Deno.mkdirSync(`${dir}/crash`);
  const env = { OUT: `${dir}/crash`, VMCORE: vmcore, TARGET: "raw", CORE_COLLECTOR: "makedumpfile -c -d 31" };
  const r = sh(bin, REWRITE + DUMP_RAW, env);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /collector: makedumpfile -c -d 31 -F\n/);
  assert.match(r.out, /all correct/);
});

test("kdump-utils: mkdumprd's --check-params lines pass, a bad level fails, nothing is written", () => {
  const { dir, bin } = setup("check", 1);
  // verify_core_collector: _cmd = first word, _params = the rest, then "vmcore dumpfile" or "vmcore" (-F)
  const script = `
cd ${dir}
check() {
  _cmd="\${1%% *}"; _params="\${1#"\${_cmd}"}"
  case $2 in ssh|raw) _params="$_params vmcore" ;; *) _params="$_params vmcore dumpfile" ;; esac
  $_cmd --check-params $_params; echo "rc=$? for $1 ($2)"
}
check "vmsift -l --message-level 7 -d 31" fs
check "makedumpfile -l --message-level 7 -d 31" fs
check "makedumpfile -F -l --message-level 7 -d 31" ssh
check "vmsift -c -d 31 -F" raw
check "vmsift -l --message-level 7 -d 31 --num-threads=4" fs
check "vmsift -l -d 32" fs
ls`;
  const r = sh(bin, script, {});
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out.match(/rc=0 /g)?.length, 5, r.out);
  assert.match(r.out, /rc=1 for vmsift -l -d 32/);
  assert.ok(!/^(vmcore|dumpfile)$/m.test(r.out), "--check-params writes nothing");
});
