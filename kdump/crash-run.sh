#!/bin/sh
# Stage 2 in the crash kernel, run in the crash root: for each case of /kdump/cases.txt (NAME FLAT ARGS...)
# run each tool (makedumpfile, vmsift) with ARGS on /proc/vmcore, onto $OUTDIR/TOOL-NAME.dump (FLAT=1: stdout
# to $OUTDIR/TOOL-NAME.flat), recording rc, wall time, peak RSS (busybox time -v) and memory every 0.5 s.
# Results in $OUTDIR/res; SAVE=1 also copies all of /proc/vmcore to $OUTDIR/vmcore. Then power off.
. /kdump/config.sh
OUTDIR=${OUTDIR:-/mnt}
# no HOME, no DENO_DIR: the launcher must not need them
unset HOME DENO_DIR
export PATH=/bin:/sbin:/usr/bin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu NO_COLOR=1
mount -t tmpfs -o size=8m tmp /tmp
R=$OUTDIR/res; rm -rf "$R"; mkdir -p "$R"
up() { cut -d' ' -f1 /proc/uptime; }
{
  echo "uptime_at_stage2=$(up)"; echo "cmdline=$(cat /proc/cmdline)"; uname -a
  grep -E 'MemTotal|MemFree|MemAvailable' /proc/meminfo; free -k
  ls -l /proc/vmcore; grep -iE 'system ram|crash|kernel' /proc/iomem; mount
} >"$R/env.txt" 2>&1
cat /proc/meminfo >"$R/meminfo-start.txt"
dd if=/proc/vmcore of="$R/vmcore-head.bin" bs=64k count=1 2>/dev/null

# sampler every 0.5 s: uptime MemFree MemAvailable Cached Dirty (kB) [VmRSS RssAnon RssFile RssShmem of a dumper]
(while :; do
  p=$(pidof makedumpfile deno | cut -d' ' -f1)
  r=; [ -n "$p" ] && r=$(grep -E '^(VmRSS|RssAnon|RssFile|RssShmem):' "/proc/$p/status" 2>/dev/null |
    awk '{printf "%s ", $2}')
  echo "$(up) $(grep -E '^(MemFree|MemAvailable|Cached|Dirty):' /proc/meminfo | awk '{printf "%s ", $2}')$r"
  sleep 0.5
done) >/tmp/memsamples.txt &
SAMPLER=$!

runtool() { # RUN STDOUT CMD...
  local rn=$1 stdout=$2 t0 t1 rc; shift 2
  sync; echo 3 >/proc/sys/vm/drop_caches
  echo "KDUMP-RUN $rn start uptime=$(up)"; echo "$*" >"$R/$rn.cmd"
  t0=$(up)
  time -v -o "$R/$rn.time" "$@" <"/dev/null" >"$stdout" 2>"$R/$rn.err"
  rc=$?; t1=$(up)
  echo "$rc" >"$R/$rn.rc"; echo "$t0 $t1" >"$R/$rn.uptime"
  sync
  echo "KDUMP-RUN $rn done rc=$rc wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
  tail -3 "$R/$rn.err"
}
while read -r name flat args; do
  for t in $TOOLS; do
    case $t in mdf) bin=makedumpfile ;; *) bin=vmsift ;; esac
    if [ "$flat" = 1 ]; then
      # shellcheck disable=SC2086
      runtool "$t-$name" "$OUTDIR/$t-$name.flat" $bin $args /proc/vmcore
    else
      # shellcheck disable=SC2086
      runtool "$t-$name" "$R/$t-$name.out" $bin $args /proc/vmcore "$OUTDIR/$t-$name.dump"
    fi
  done
done </kdump/cases.txt
kill $SAMPLER; cp /tmp/memsamples.txt "$R/"
# vmsift's fixed start-up cost here: `vmsift -h` through the launcher (shipped code cache when installed) and
# the same `deno run` with no usable cache (a DENO_DIR that cannot be created), caches dropped before each,
# three rounds: "NAME ROUND SECONDS" lines in res/startup.txt
F="--no-prompt --no-config --no-remote --no-npm --v8-flags=--max-semi-space-size=1 --allow-read --allow-write --allow-ffi"
for i in 1 2 3; do
  for how in launcher nocache; do
    sync; echo 3 >/proc/sys/vm/drop_caches; t0=$(up)
    # shellcheck disable=SC2086
    case $how in
      launcher) vmsift -h >/dev/null 2>&1 ;;
      nocache) DENO_DIR=/proc/vmsift-no-cache DENO_NO_UPDATE_CHECK=1 /usr/lib/vmsift/deno run $F \
        /usr/lib/vmsift/vmsift.js -h >/dev/null 2>&1 ;;
    esac
    echo "$how $i $(awk -v a="$t0" -v b="$(up)" 'BEGIN{print b-a}')" >>"$R/startup.txt"
  done
done
# does Deno use the shipped code cache here (the launcher's DENO_DIR)? Deno's debug log says so per module
if [ -d /usr/lib/vmsift/deno-dir ]; then
  # shellcheck disable=SC2086
  DENO_DIR=/usr/lib/vmsift/deno-dir DENO_NO_UPDATE_CHECK=1 /usr/lib/vmsift/deno run --log-level=debug $F \
    /usr/lib/vmsift/vmsift.js -h 2>&1 >/dev/null | grep -i 'code cache' >"$R/codecache.txt"
fi
if [ "$SAVE" = 1 ]; then
  echo "KDUMP-SAVE start uptime=$(up)"
  dd if=/proc/vmcore of="$OUTDIR/vmcore" bs=1M 2>"$R/save.err"; echo "$?" >"$R/save.rc"
  echo "KDUMP-SAVE done uptime=$(up)"
fi
dmesg >"$R/dmesg.txt"; cat /proc/meminfo >"$R/meminfo-end.txt"
echo "uptime_at_end=$(up)" >>"$R/env.txt"
sync; umount "$OUTDIR" 2>/dev/null; sync
echo KDUMP-DONE
poweroff -f
