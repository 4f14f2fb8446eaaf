#!/bin/bash
# --mem-usage on a real running kernel: boot Debian's kernel in QEMU (TCG) with crashkernel= (makedumpfile
# --mem-usage refuses to run without a reservation), make some page cache and user memory, then run in the
# same guest, one after the other: makedumpfile --mem-usage /proc/kcore, vmsift --mem-usage --no-image-guard
# /proc/kcore (makedumpfile's rules), makedumpfile again, and vmsift with its defaults. The tables go to the
# serial log; the host compares each class of vmsift's run with the two makedumpfile runs around it.
#
# no_timer_check: under load, TCG can miss the kernel's IO-APIC timer check (a panic at boot).
# Usage: packaging/test/memusage.sh [MEM=1G] [CRASHKERNEL=192M] [KVER=6.1.0-56-amd64] [TIMEOUT=900]
#   WORK (default /var/tmp/vmsift-memusage): kernel, initramfs and the run's serial log.
#   Exit status 0 when every class agrees (packaging/test/compareMemUsage.ts), 1 otherwise, 77 when it
#   cannot run here.
set -uo pipefail
for a in "$@"; do export "$a"; done
MEM=${MEM:-1G}; CRASHKERNEL=${CRASHKERNEL:-192M}; KVER=${KVER:-6.1.0-56-amd64}; TIMEOUT=${TIMEOUT:-900}
FILL_MB=${FILL_MB:-48}
HERE=$(cd "$(dirname "$0")" && pwd); SRC=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/vmsift-memusage}; mkdir -p "$WORK"
for t in qemu-system-x86_64 busybox makedumpfile cpio gzip deno; do
  command -v $t > /dev/null || { echo "memusage: $t is not installed: skipped"; exit 77; }
done
BUSYBOX=$(command -v busybox); DENO=$(readlink -f "$(command -v deno)")
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || BUSYBOX=/bin/busybox

# kernel: /boot, else the Debian package extracted into WORK
if [ -e "/boot/vmlinuz-$KVER" ]; then VMLINUZ=/boot/vmlinuz-$KVER
else
  VMLINUZ=$WORK/kernel/boot/vmlinuz-$KVER
  if [ ! -e "$VMLINUZ" ]; then
    mkdir -p "$WORK/debs" && (cd "$WORK/debs" && apt-get download "linux-image-$KVER" > /dev/null 2>&1) &&
      dpkg-deb -x "$WORK"/debs/linux-image-"${KVER}"_*.deb "$WORK/kernel" ||
      { echo "memusage: cannot get linux-image-$KVER: skipped"; exit 77; }
  fi
fi
(cd "$SRC" && deno bundle --platform=deno -o "$WORK/vmsift.js" main.ts > /dev/null 2>&1) ||
  { echo "memusage: deno bundle failed"; exit 1; }

# initramfs: busybox, makedumpfile, deno + their libraries, the bundle, /init
# vmsift as the package installs it: the launcher (packaging/vmsift) with the runtime and bundle beside it
R=$WORK/root; rm -rf "$R"; mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/lib/vmsift,proc,sys,dev,tmp,lib/x86_64-linux-gnu,lib64}
cp "$BUSYBOX" "$R/bin/busybox"
cp /usr/bin/makedumpfile "$R/usr/bin/"; cp "$SRC/packaging/vmsift" "$R/usr/sbin/vmsift"
cp "$DENO" "$R/usr/lib/vmsift/deno"; cp "$WORK/vmsift.js" "$R/usr/lib/vmsift/"
for b in /usr/bin/makedumpfile "$DENO"; do
  ldd "$b" | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/lib64/ {print $1}' | while read -r l; do
    case $l in /lib64/*) cp -L "$l" "$R/lib64/" ;; *) cp -L "$l" "$R/lib/x86_64-linux-gnu/" ;; esac
  done
done
cat > "$R/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs -o size=60% tmp /tmp
# page cache (tmpfs: shmem) and user memory, so that every class is non-trivial
dd if=/dev/urandom of=/tmp/rand bs=1M count=$FILL_MB 2>/dev/null
for i in 1 2; do sh -c "x=\\\$(head -c $((FILL_MB * 1024 * 1024 / 8)) /tmp/rand | base64); touch /tmp/ok\$i; sleep 3600" & done
while [ \$(ls /tmp/ok* 2>/dev/null | wc -l) -lt 2 ]; do sleep 1; done
grep -i 'crash kernel' /proc/iomem; sync
echo "=== MDF1"; makedumpfile --mem-usage /proc/kcore 2>&1; echo "=== RC \$?"
echo "=== VMSIFT-NOGUARD"; vmsift --mem-usage --no-image-guard /proc/kcore 2>&1; echo "=== RC \$?"
echo "=== MDF2"; makedumpfile --mem-usage /proc/kcore 2>&1; echo "=== RC \$?"
echo "=== VMSIFT"; vmsift --mem-usage /proc/kcore 2>&1; echo "=== RC \$?"
echo "=== END"; poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.img"; rm -rf "$R"

LOG=$WORK/serial.log; rm -f "$LOG"
echo "memusage: booting $KVER, MEM=$MEM crashkernel=$CRASHKERNEL (TCG; a few minutes)"
timeout "$TIMEOUT" nice -n 5 qemu-system-x86_64 -accel tcg -cpu max,la57=off -m "$MEM" -smp 1 -display none \
  -no-reboot -kernel "$VMLINUZ" -initrd "$WORK/initrd.img" -serial file:"$LOG" -monitor none \
  -append "console=ttyS0 panic=-1 no_timer_check crashkernel=$CRASHKERNEL" > "$WORK/qemu.out" 2>&1
echo "memusage: qemu exited with $? (serial log: $LOG)"
exec deno run --no-prompt --allow-read "$HERE/compareMemUsage.ts" "$LOG"
