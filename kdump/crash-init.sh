#!/bin/busybox sh
# /init of the crash (kdump) kernel, stage 1: mount the crash root the way the layout (kdump_layout= on the
# command line) has it, mount the output disk (virtio, serial "kdumpout", ext4), then run stage 2
# (/kdump/run.sh in the crash root: the dump tools). See kdump/run.sh for the layouts.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "KDUMP-CRASH-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
grep -E 'MemTotal|MemAvailable' /proc/meminfo
for m in $(cat /modules.order); do insmod "/$m" || echo "insmod $m failed"; done
LAYOUT=$(sed -n 's/.*kdump_layout=\([a-z]*\).*/\1/p' /proc/cmdline)
fail() { echo "KDUMP-ERROR: $*"; ls /sys/block; poweroff -f; }
DEV=
for i in $(seq 1 40); do
  for b in /sys/block/vd*; do [ "$(cat "$b/serial" 2>/dev/null)" = kdumpout ] && DEV=/dev/${b##*/}; done
  [ -n "$DEV" ] && [ -b "$DEV" ] && break; sleep 0.25
done
[ -n "$DEV" ] || fail "no output disk"
case $LAYOUT in
  initramfs)
    mount -t ext4 "$DEV" /mnt || fail "cannot mount $DEV"
    OUTDIR=/mnt exec /kdump/run.sh ;;
  fedora)
    # the squashfs root stays compressed in the initramfs; pages are decompressed when read
    mount -t squashfs -o ro,loop /squash-root.img /sysroot || fail "cannot mount the squashfs root"
    mount -t ext4 "$DEV" /sysroot/mnt || fail "cannot mount $DEV" ;;
  debian)
    mount -t ext4 "$DEV" /sysroot || fail "cannot mount the root file system $DEV"
    mkdir -p /sysroot/out ;;
  *) fail "unknown layout '$LAYOUT'" ;;
esac
for d in proc sys dev; do mount --move /$d /sysroot/$d; done
OUTDIR=/mnt; [ "$LAYOUT" = debian ] && OUTDIR=/out
OUTDIR=$OUTDIR exec chroot /sysroot /kdump/run.sh
