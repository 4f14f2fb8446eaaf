#!/bin/bash
# One kdump boot, end to end, in QEMU (KVM when /dev/kvm is usable, else TCG): boot a Debian kernel with crashkernel=, fill memory, load the
# crash kernel with kexec (-c kexec_load or -s kexec_file_load), crash with sysrq-c; the crash kernel (nr_cpus=1)
# runs makedumpfile and vmsift on the real /proc/vmcore for each command line of the case list, onto an ext4
# virtio disk, recording wall time, peak RSS and MemAvailable. The results are read out of the disk image with
# debugfs (no mount). `kdump/test.ts` (deno task kdump-test) calls this once per boot and checks the results.
#
# Usage: kdump/run.sh [VAR=value ...]  (root; Debian 12; run from anywhere)
#   LAYOUT=initramfs|fedora|debian  where the crash root lives (see docs/kdump.md):
#     initramfs  everything unpacked into the initramfs (rootfs in RAM)
#     fedora     as mkdumprd makes it: the crash root is a squashfs (zstd) image inside the initramfs,
#                loop-mounted, so files are decompressed on demand into reclaimable page cache
#     debian     as kdump-tools: a small initramfs mounts the root file system from a virtio disk (ext4);
#                the binaries stay on disk; the dumps go to the same file system
#   MEM=2G CRASHKERNEL=512M FILL_MB=32 SMP=2 KEXEC_MODE=c|s SAVE_VMCORE=0|1 TIMEOUT=3600
#   ACCEL=auto|kvm|tcg  QEMU's accelerator: auto = kvm when the kernel boots under KVM (a 20 s probe, see
#                   below), else tcg; kvm forced where the probe fails is an error, not a silent fallback
#   CASES=file      the command lines, one per line: NAME FLAT ARGS... (FLAT=1: stdout to NAME.flat)
#   TOOLS="mdf vmsift"  which dumpers run, in this order, for each case
#   KVER=6.1.0-56-amd64 (falls back to the newest installable linux-image-*-amd64 when it is gone)
#   ZSTD_LEVEL=10   zstd level of the initramfs layout's payload (-19: 8 % smaller, minutes slower)
#   VMSIFT_LAUNCHER=path  the launcher installed as /usr/sbin/vmsift (default: packaging/vmsift of this checkout)
#   CODE_CACHE=1|0  install the pre-built Deno code cache /usr/lib/vmsift/deno-dir (packaging/codeCache.ts), as
#                   the package does; 0 measures the launcher without it
#   WORK=/var/tmp/kdump-work  builds (cached) and runs; TAG=name of the run directory
# Results: $WORK/runs/$TAG/{serial.log,res/,*.dump,*.flat,vmcore,boot.env}
set -uo pipefail
for a in "$@"; do export "${a?}"; done
# bash reads a script as it runs it: run from a private copy so that editing kdump/run.sh during a boot
# (tens of minutes) cannot change what this one does
if [ -z "${KDUMP_RUN_HERE:-}" ]; then
  KDUMP_RUN_HERE=$(cd "$(dirname "$0")" && pwd); export KDUMP_RUN_HERE
  copy=$(mktemp /tmp/kdump-run.XXXXXX.sh); cp "$0" "$copy"
  bash "$copy" "$@"; rc=$?; rm -f "$copy"; exit $rc
fi
LAYOUT=${LAYOUT:-initramfs}; MEM=${MEM:-2G}; CRASHKERNEL=${CRASHKERNEL:-512M}; FILL_MB=${FILL_MB:-32}
CODE_CACHE=${CODE_CACHE:-1}; SMP=${SMP:-2}; KEXEC_MODE=${KEXEC_MODE:-c}; SAVE_VMCORE=${SAVE_VMCORE:-0}; TIMEOUT=${TIMEOUT:-3600}
ACCEL=${ACCEL:-auto}; KVER=${KVER:-6.1.0-56-amd64}; ZSTD_LEVEL=${ZSTD_LEVEL:-10}; TOOLS=${TOOLS:-"mdf vmsift"}
HERE=$KDUMP_RUN_HERE; REPO=$(cd "$HERE/.." && pwd)
CASES=${CASES:-$HERE/cases.txt}
WORK=${WORK:-/var/tmp/kdump-work}; B=$WORK/build; mkdir -p "$B" "$WORK/debs"
TAG=${TAG:-$LAYOUT-$KEXEC_MODE-mem$MEM-ck$CRASHKERNEL}
OUT=$WORK/runs/$TAG; rm -rf "$OUT"; mkdir -p "$OUT"
t0=$SECONDS; ts() { echo "[$((SECONDS - t0))s] $*"; }
die() { echo "run.sh: $*" >&2; echo "RUN-ERROR $*" > "$OUT/run-error.txt"; exit 2; }
case $LAYOUT in initramfs | fedora | debian) ;; *) die "LAYOUT must be initramfs, fedora or debian" ;; esac

# ---- 0. tools and inputs
PKGS="qemu-system-x86 busybox-static makedumpfile kexec-tools cpio zstd kmod e2fsprogs squashfs-tools time"
dpkg -s $PKGS >/dev/null 2>&1 || die "missing packages: apt-get install $PKGS"
DENO=$(readlink -f "${VMSIFT_DENO:-$(command -v deno)}") || die "no deno"
VMSIFT_LAUNCHER=${VMSIFT_LAUNCHER:-$REPO/packaging/vmsift}
[ -x "$VMSIFT_LAUNCHER" ] || die "no launcher $VMSIFT_LAUNCHER"
# the kernel: from /boot, else extracted from its .deb (no installation); fallback: newest installable
kernel_root() { # KVER -> prints the root holding boot/vmlinuz-KVER and lib/modules/KVER ("" = /)
  if [ -e "/boot/vmlinuz-$1" ] && [ -d "/lib/modules/$1" ]; then echo ""; return 0; fi
  local kr=$WORK/kernels/$1
  if [ ! -e "$kr/boot/vmlinuz-$1" ]; then
    (cd "$WORK/debs" && apt-get download "linux-image-$1" >/dev/null 2>&1) || return 1
    mkdir -p "$kr" && dpkg-deb -x "$WORK"/debs/linux-image-"$1"_*.deb "$kr" && depmod -b "$kr" "$1" || return 1
  fi
  echo "$kr"
}
KNOTE=""
if ! KROOT=$(kernel_root "$KVER"); then
  NEWEST=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' | awk '{print $1}' |
    sed 's/^linux-image-//' | sort -V | tail -1)
  KNOTE="linux-image-$KVER is not installable; fell back to the newest, linux-image-$NEWEST"
  echo "$KNOTE"; KVER=$NEWEST; KROOT=$(kernel_root "$KVER") || die "no kernel package"
fi
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
(cd "$REPO" && deno task bundle >/dev/null 2>&1) || die "deno task bundle failed"

# ---- the accelerator. KVM runs the guest at the host's speed, so the crash kernel's timings are a machine's,
# not an emulator's; TCG where KVM cannot run this kernel. /dev/kvm opening is not enough: some hosts
# (nested PVM-style KVM in a micro-VM) accept the ioctls but never get a stock kernel past its decompressor.
# So auto boots the kernel under KVM for at most 20 s, with the CPU model the real boot uses, and takes KVM
# only if the kernel prints its banner ("Linux version") on the serial console.
KVM_CPU=host,la57=off
kvm_probe() { # -> 0 when KVM boots $VMLINUZ to its banner; why not: the last line of $OUT/accel-probe.txt
  # (call with 2>/dev/null: bash reports an aborted QEMU on stderr)
  local log=$OUT/accel-probe.serial pid i=0 rc
  if ! { [ -c /dev/kvm ] && { : <>/dev/kvm; } 2>/dev/null; }; then
    echo "kvm: /dev/kvm missing or not openable read-write" >"$OUT/accel-probe.txt"; return 1
  fi
  : >"$log"
  timeout 20 qemu-system-x86_64 -accel kvm -cpu "$KVM_CPU" -m 256M -smp 1 -display none -no-reboot \
    -kernel "$VMLINUZ" -append "console=ttyS0 earlyprintk=serial panic=-1" -serial file:"$log" -monitor none \
    >"$OUT/accel-probe.txt" 2>&1 &
  pid=$!
  while [ $i -lt 40 ] && kill -0 $pid 2>/dev/null && ! grep -q "Linux version" "$log"; do sleep 0.5; i=$((i + 1)); done
  kill $pid 2>/dev/null; wait $pid; rc=$?
  if grep -q "Linux version" "$log"; then echo "kvm: kernel banner after $((i / 2)) s" >>"$OUT/accel-probe.txt"; return 0; fi
  echo "kvm: no kernel banner ($([ $rc = 124 ] && echo 'none within 20 s' || echo "QEMU exited rc=$rc"):" \
    "$(head -c 200 "$OUT/accel-probe.txt" | tr '\n' ' '))" >>"$OUT/accel-probe.txt"
  return 1
}
case $ACCEL in
  auto) if kvm_probe 2>/dev/null; then ACCEL=kvm; else ACCEL=tcg; fi; ts "accel auto -> $ACCEL: $(tail -1 "$OUT/accel-probe.txt")" ;;
  kvm) kvm_probe 2>/dev/null || die "ACCEL=kvm but KVM cannot boot the kernel: $(tail -1 "$OUT/accel-probe.txt")" ;;
  tcg) ;;
  *) die "ACCEL must be auto, kvm or tcg" ;;
esac
case $ACCEL in kvm) CPU=$KVM_CPU ;; *) CPU=max,la57=off ;; esac

# copy a binary's shared libraries (ldd closure) into root $1
addlibs() {
  local R=$1; shift
  mkdir -p "$R/lib/x86_64-linux-gnu" "$R/lib64"
  ldd "$@" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $1, $3} /^\t\/lib64/ {print "LD", $1}' | sort -u |
    while read -r name path; do
      if [ "$name" = LD ]; then cp -L "$path" "$R/lib64/"; else cp -L "$path" "$R/lib/x86_64-linux-gnu/$name"; fi
    done
  if ldd "$@" 2>/dev/null | grep -q 'not found'; then die "missing libs for $*"; fi
}
# copy modules (with dependencies) into root $1, listing them in load order in $1/modules.order
addmods() {
  local R=$1; shift; : >"$R/modules.order"
  for m in $(for k in "$@"; do modprobe ${KROOT:+-d "$KROOT"} -S "$KVER" --show-depends "$k"; done |
    awk '$1=="insmod"{print $2}'); do
    local rel=${m#"$KROOT"}; grep -qx "${rel#/}" "$R/modules.order" && continue
    mkdir -p "$R$(dirname "$rel")"; cp "$m" "$R$rel"; echo "${rel#/}" >>"$R/modules.order"
  done
}
busybox_root() { # DIR: static busybox with its applet links (made here: the root may be read-only)
  mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,usr/lib,proc,sys,dev,tmp,mnt,etc,sysroot}
  cp /bin/busybox "$1/bin/"
  for a in $(/bin/busybox --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
}

# ---- 1. the crash root: busybox, makedumpfile, vmsift as installed (launcher /usr/sbin/vmsift, bundle and
#         runtime in /usr/lib/vmsift), the codec libraries vmsift loads, the stage-2 script and the cases.
#         The base (everything but the project's files) is cached.
BASE=$B/root-base-$(basename "$DENO")-$(stat -c %s "$DENO")
if [ ! -e "$BASE/.done" ]; then
  rm -rf "$BASE"; busybox_root "$BASE"; ln -s ../lib/x86_64-linux-gnu "$BASE/usr/lib/x86_64-linux-gnu"
  cp /usr/bin/makedumpfile "$BASE/usr/bin/"; addlibs "$BASE" /usr/bin/makedumpfile
  mkdir -p "$BASE/usr/lib/vmsift"; cp "$DENO" "$BASE/usr/lib/vmsift/deno"
  FFI=""; for l in libdeflate.so.0 libz.so.1 liblzo2.so.2 libsnappy.so.1 libzstd.so.1 libc.so.6 librt.so.1; do
    for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do [ -e $d/$l ] && { FFI="$FFI $d/$l"; break; }; done
  done
  addlibs "$BASE" "$DENO" $FFI
  for f in $FFI; do cp -L "$f" "$BASE/lib/x86_64-linux-gnu/"; done
  touch "$BASE/.done"
fi
R=$OUT/crash-root; rm -rf "$R"; cp -a "$BASE" "$R"; rm -f "$R/.done"
cp "$VMSIFT_LAUNCHER" "$R/usr/sbin/vmsift"; chmod 755 "$R/usr/sbin/vmsift"
cp "$REPO/dist/vmsift.js" "$R/usr/lib/vmsift/vmsift.js"
if [ "$CODE_CACHE" = 1 ]; then
  (cd "$REPO" && "$DENO" run -A packaging/codeCache.ts --bundle dist/vmsift.js --installed /usr/lib/vmsift/vmsift.js \
    --out "$R/usr/lib/vmsift/deno-dir" --deno "$DENO") >"$OUT/code-cache.txt" 2>&1 || die "codeCache.ts failed: $(tail -3 "$OUT/code-cache.txt")"
fi
mkdir -p "$R/kdump"; cp "$HERE/crash-run.sh" "$R/kdump/run.sh"; chmod +x "$R/kdump/run.sh"
grep -v '^ *#' "$CASES" | grep -v '^ *$' >"$R/kdump/cases.txt"; cp "$R/kdump/cases.txt" "$OUT/cases.txt"
printf 'TOOLS="%s"\nSAVE=%s\nLAYOUT=%s\n' "$TOOLS" "$SAVE_VMCORE" "$LAYOUT" >"$R/kdump/config.sh"
# the launcher in a minimal root: no HOME, no DENO_DIR, no /etc/passwd (checked by kdump/checks.ts)
mount -t proc proc "$R/proc" && {
  timeout 300 chroot "$R" /bin/env -i PATH=/bin:/usr/bin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu \
    /usr/sbin/vmsift -h >"$OUT/launcher-probe.txt" 2>&1
  echo "rc=$?" >>"$OUT/launcher-probe.txt"; umount "$R/proc"
}
# then the root user's entries, as every real crash root has them (dracut's base module, Debian's root fs)
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
ROOT_BYTES=$(du -sb "$R" | cut -f1)

# ---- 2. the crash initramfs, by layout (stage 1 = kdump/crash-init.sh as /init)
CI=$OUT/crash-initrd.img; S1=$OUT/stage1
MEMMB=$(($(numfmt --from=iec "$MEM") >> 20))
DISK_MB=$((512 + (SAVE_VMCORE ? MEMMB + 64 : 0)))
newc() { (cd "$1" && find . | sort | cpio -o -H newc --quiet); }
case $LAYOUT in
  initramfs)
    # the root itself is the initramfs; the big part (identical between runs) is a cached compressed archive,
    # the project's files a small second one (the kernel unpacks concatenated archives in order)
    PAY=$B/payload-$(basename "$BASE")-zstd$ZSTD_LEVEL.img
    if [ ! -s "$PAY" ]; then newc "$BASE" | zstd -q -"$ZSTD_LEVEL" -T2 -c >"$PAY.tmp" && mv "$PAY.tmp" "$PAY"; fi
    rm -rf "$S1"; mkdir -p "$S1"; addmods "$S1" virtio_pci virtio_blk ext4
    (cd "$R" && tar cf - usr/sbin/vmsift usr/lib/vmsift/vmsift.js $(ls -d usr/lib/vmsift/deno-dir 2>/dev/null) kdump \
      etc/passwd etc/group) | (cd "$S1" && tar xf -)
    cp "$HERE/crash-init.sh" "$S1/init"; chmod +x "$S1/init"
    cat "$PAY" <(newc "$S1" | gzip -6 -c) >"$CI"
    ;;
  fedora)
    # mkdumprd's squash layout: the root as a squashfs (zstd) image in an uncompressed outer archive (no
    # point compressing a compressed image twice) with busybox, the modules to mount it and stage 1
    SQ=$B/squash-$( (cd "$R" && find . -type f -print0 | sort -z | xargs -0 sha1sum) | sha1sum | cut -c1-16).img
    if [ ! -s "$SQ" ]; then
      rm -f "$B"/squash-*.img
      mksquashfs "$R" "$SQ.tmp" -comp zstd -b 128K -noappend -no-progress -all-root -quiet >/dev/null 2>&1 &&
        mv "$SQ.tmp" "$SQ" || die "mksquashfs failed"
    fi
    rm -rf "$S1"; busybox_root "$S1"; addmods "$S1" loop squashfs virtio_pci virtio_blk ext4
    cp "$HERE/crash-init.sh" "$S1/init"; chmod +x "$S1/init"; ln "$SQ" "$S1/squash-root.img" 2>/dev/null ||
      cp "$SQ" "$S1/squash-root.img"
    newc "$S1" >"$CI"
    ;;
  debian)
    # kdump-tools: the crash kernel mounts the real root file system; here an ext4 disk made from the root
    # (mke2fs -d), also the dump target. The initramfs has busybox, the modules and stage 1 only.
    DISK_MB=$((DISK_MB + (ROOT_BYTES >> 20) + 32))
    rm -rf "$S1"; busybox_root "$S1"; addmods "$S1" virtio_pci virtio_blk ext4
    cp "$HERE/crash-init.sh" "$S1/init"; chmod +x "$S1/init"
    newc "$S1" | gzip -6 -c >"$CI"
    ;;
esac
CI_SIZE=$(stat -c %s "$CI"); S1_BYTES=$(du -sb "$S1" | cut -f1)
ts "crash initramfs ($LAYOUT): $((CI_SIZE >> 10)) KiB; crash root $((ROOT_BYTES >> 10)) KiB"

# ---- 3. the output disk (ext4; for the debian layout also the crash root)
DISK=$OUT/out.img; rm -f "$DISK"; truncate -s "${DISK_MB}M" "$DISK"
if [ "$LAYOUT" = debian ]; then mke2fs -q -F -t ext4 -L KDUMPOUT -d "$R" "$DISK" || die "mke2fs -d failed"
else mke2fs -q -F -t ext4 -L KDUMPOUT "$DISK" || die "mke2fs failed"; fi
rm -rf "$R" "$S1"

# ---- 4. first-kernel initramfs: busybox, kexec (+libs), the crash kernel and initramfs, modules
FI=$OUT/first-initrd.img; F=$OUT/first-root; rm -rf "$F"; busybox_root "$F"; mkdir -p "$F/boot"
cp "$HERE/first-init.sh" "$F/init"; chmod +x "$F/init"
cp /sbin/kexec "$F/sbin/"; addlibs "$F" /sbin/kexec
cp "$VMLINUZ" "$F/boot/vmlinuz"; mv "$CI" "$F/crash-initrd.img"
addmods "$F" virtio_pci virtio_blk ext4
newc "$F" | gzip -1 -c >"$FI"; rm -rf "$F"

# ---- 5. boot; the guest runs to poweroff (or panic, then exit with -no-reboot)
SCR=$OUT/scratch.img; truncate -s $((FILL_MB * 2 + 64))M "$SCR"
LOG=$OUT/serial.log
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail ("IO-APIC + timer
# doesn't work!" panic at boot); it tests the emulator's speed, not the kernel
APPEND="console=ttyS0 no_timer_check panic=-1 crashkernel=$CRASHKERNEL fill_mb=$FILL_MB kexec_mode=$KEXEC_MODE"
APPEND="$APPEND kdump_layout=$LAYOUT"
{
  echo "LAYOUT=$LAYOUT"; echo "MEM=$MEM"; echo "CRASHKERNEL=$CRASHKERNEL"; echo "KEXEC_MODE=$KEXEC_MODE"
  echo "KVER=$KVER"; echo "KNOTE=\"$KNOTE\""; echo "SAVE_VMCORE=$SAVE_VMCORE"; echo "SMP=$SMP"
  echo "CRASH_INITRD_BYTES=$CI_SIZE"; echo "CRASH_ROOT_BYTES=$ROOT_BYTES"; echo "STAGE1_BYTES=$S1_BYTES"
  echo "LAUNCHER=$VMSIFT_LAUNCHER"; echo "ACCEL=$ACCEL"; echo "CODE_CACHE=$CODE_CACHE"
} >"$OUT/boot.env"
ts "boot: $LAYOUT MEM=$MEM crashkernel=$CRASHKERNEL kexec -$KEXEC_MODE kernel $KVER accel $ACCEL"
tq=$SECONDS
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" -smp "$SMP" \
  -display none -no-reboot -kernel "$VMLINUZ" -initrd "$FI" -append "$APPEND" \
  -drive if=none,id=scr,file="$SCR",format=raw -device virtio-blk-pci,drive=scr,serial=scratch \
  -drive if=none,id=out,file="$DISK",format=raw -device virtio-blk-pci,drive=out,serial=kdumpout \
  -serial file:"$LOG" -monitor none >"$OUT/qemu.out" 2>&1
QRC=$?; rm -f "$SCR" "$FI"
echo "QEMU_RC=$QRC" >>"$OUT/boot.env"; echo "QEMU_SECONDS=$((SECONDS - tq))" >>"$OUT/boot.env"
ts "qemu exited rc=$QRC after $((SECONDS - tq))s$([ $QRC = 124 ] && echo ' (TIMEOUT)')"

# ---- 6. read the results out of the disk image (no mount)
P=/; [ "$LAYOUT" = debian ] && P=/out/
debugfs -R "rdump ${P}res $OUT" "$DISK" >/dev/null 2>&1
for f in $(debugfs -R "ls -l $P" "$DISK" 2>/dev/null | awk '{print $NF}' | grep -E '\.(dump|flat)$|^vmcore$'); do
  debugfs -R "dump $P$f $OUT/$f" "$DISK" >/dev/null 2>&1
done
rm -f "$DISK"
[ -d "$OUT/res" ] || { tail -40 "$LOG" | sed 's/\r//'; die "no results on the disk (see $LOG)"; }
ts "done; results in $OUT"
