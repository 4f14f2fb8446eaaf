#!/bin/busybox sh
# /init of the first kernel: load modules, create memory use (init.sh's fill, on the disk with
# serial "scratch"), load the crash kernel with kexec -p (-c kexec_load or -s kexec_file_load, kexec_mode=),
# then crash with sysrq-c.
export PATH=/bin:/sbin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /$m 2>/dev/null || echo "insmod $m failed"; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
MB=$(arg fill_mb); MB=${MB:-32}
mkdir -p /tmp /mnt; mount -t tmpfs -o size=90% tmp /tmp
grep -E 'MemTotal' /proc/meminfo; grep -i crash /proc/iomem
# 1) shmem/tmpfs page cache with random content
dd if=/dev/urandom of=/tmp/rand bs=1M count=$MB 2>/dev/null
# 2) disk-backed page cache on the scratch disk (non-private and private cache)
SCR=; for i in $(seq 1 40); do
  for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = scratch ] && SCR=/dev/${b##*/}; done
  [ -n "$SCR" ] && [ -b "$SCR" ] && break; sleep 0.25; done
if [ -n "$SCR" ]; then
  mke2fs -q $SCR && mount -t ext2 $SCR /mnt &&
  dd if=/tmp/rand of=/mnt/file bs=1M 2>/dev/null && sync && umount /mnt &&
  echo 3 > /proc/sys/vm/drop_caches && mount -t ext2 -o ro $SCR /mnt &&
  cat /mnt/file > /dev/null && dd if=$SCR of=/dev/null bs=1M count=$((MB/2)) skip=1 2>/dev/null &&
  mount -o remount,rw /mnt && dd if=/tmp/rand of=/mnt/file2 bs=1M count=$((MB/4)) 2>/dev/null && sync
else echo "no scratch disk"; fi
# 3) anonymous user memory (see init.sh)
for i in 1 2 3; do
  sh -c "x=\$(head -c $((MB*1024*1024/8)) /tmp/rand | base64); touch /tmp/ok$i; while :; do sleep 3600; done" &
done
sh -c "y=\$(head -c $((MB*1024*1024/8)) /dev/zero | tr '\0' A); touch /tmp/ok4; while :; do sleep 3600; done" &
while [ $(ls /tmp/ok* 2>/dev/null | wc -l) -lt 4 ]; do sleep 1; done; sync
free -m; grep -E 'MemFree|^Cached|Buffers|AnonPages|Shmem:' /proc/meminfo
echo FILL-DONE

# load the crash kernel
KEXEC_MODE=$(arg kexec_mode); KEXEC_MODE=${KEXEC_MODE:-c}
# as Debian's kdump-tools and Fedora's kdumpctl append: one CPU, irqpoll, reset_devices
# (no_timer_check: see kdump/run.sh)
CAPPEND="console=ttyS0 no_timer_check irqpoll nr_cpus=1 reset_devices panic=-1 nousb"
CAPPEND="$CAPPEND kdump_layout=$(arg kdump_layout)"
echo "kexec_crash_size=$(cat /sys/kernel/kexec_crash_size)"
ls -l /boot/vmlinuz /crash-initrd.img
ok=0
for mode in $KEXEC_MODE; do  # no fallback: each mode is tested on its own
  echo "KEXEC-LOAD mode=-$mode append=$CAPPEND"
  kexec -$mode -p /boot/vmlinuz --initrd=/crash-initrd.img --append="$CAPPEND" 2>&1; rc=$?
  echo "KEXEC-RC mode=-$mode rc=$rc loaded=$(cat /sys/kernel/kexec_crash_loaded)"
  [ "$(cat /sys/kernel/kexec_crash_loaded)" = 1 ] && { ok=1; break; }
done
if [ $ok != 1 ]; then echo "KEXEC-FAILED"; sync; poweroff -f; fi
# free the initramfs copy of the crash initrd (it is in the crash region now)
rm -f /crash-initrd.img /boot/vmlinuz
echo "KDUMP-TRIGGER"; sync; sleep 1
echo c > /proc/sysrq-trigger
echo "sysrq-c returned?"; sleep 30; poweroff -f
