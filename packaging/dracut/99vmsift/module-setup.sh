#!/bin/bash
# dracut module "vmsift": puts vmsift (the launcher /usr/sbin/vmsift, the bundle and the Deno runtime under
# /usr/lib/vmsift) and the codec libraries it loads (libdeflate, zlib, liblzo2, libsnappy, libzstd) into an
# initramfs, so that a kdump initramfs can run it on /proc/vmcore.
#
# Fedora/RHEL kdump-utils: with `core_collector vmsift ...` in /etc/kdump.conf, mkdumprd (which exports
# IN_KDUMP=1) includes this module by itself. To have kdump.sh treat vmsift as makedumpfile (strip and re-add
# -F for ssh/raw targets, append --num-threads=$(nproc)), keep `core_collector makedumpfile ...` and set
# vmsift_as_makedumpfile=yes in a dracut configuration file (e.g. /etc/kdump/dracut.conf.d/vmsift.conf or
# /etc/dracut.conf.d/vmsift.conf): /usr/sbin/makedumpfile in the initramfs is then vmsift.
# Other initramfs builds: `dracut --add vmsift`.

vmsift_kdump_conf() {
    echo "${KDUMP_CONFIG_FILE:-/etc/kdump.conf}"
}

# true when kdump.conf's core_collector runs vmsift
vmsift_is_core_collector() {
    local conf
    conf=$dracutsysrootdir$(vmsift_kdump_conf)
    [[ -f $conf ]] && grep -Eq '^[[:space:]]*core_collector[[:space:]]+([^[:space:]]*/)?vmsift([[:space:]]|$)' "$conf"
}

# called by dracut
check() {
    require_binaries /usr/sbin/vmsift || return 1
    [[ -f $dracutsysrootdir/usr/lib/vmsift/vmsift.js ]] || return 1
    if [[ $IN_KDUMP ]] && { vmsift_is_core_collector || [[ $vmsift_as_makedumpfile == yes ]]; }; then
        return 0
    fi
    # only when asked for (dracut --add vmsift)
    return 255
}

# called by dracut
depends() {
    return 0
}

# called by dracut
install() {
    local lib
    # the launcher (POSIX sh) and what it runs; dracut-install adds the runtime's shared libraries
    inst_multiple /usr/sbin/vmsift /usr/lib/vmsift/vmsift.js /usr/lib/vmsift/deno sh readlink dirname
    # the bundle's pre-built V8 code cache (the launcher's DENO_DIR when present): its SQLite files only
    # (inst_multiple, not inst_simple: inst_simple tests its source without the --sysroot prefix)
    local f cache=()
    for f in "$dracutsysrootdir"/usr/lib/vmsift/deno-dir/*_v2 "$dracutsysrootdir"/usr/lib/vmsift/deno-dir/*_v2-wal \
        "$dracutsysrootdir"/usr/lib/vmsift/deno-dir/*_v2-shm; do
        [[ -f $f ]] && cache+=("${f#"$dracutsysrootdir"}")
    done
    ((${#cache[@]})) && inst_multiple "${cache[@]}"
    # loaded at run time with dlopen (Deno FFI), so no ldd can find them: by name, from the library dirs;
    # dracut resolves the dependencies of executable files only, so libsnappy's libstdc++ is named too
    for lib in libdeflate.so.0 libz.so.1 liblzo2.so.2 libsnappy.so.1 libstdc++.so.6 libzstd.so.1 librt.so.1; do
        inst_libdir_file "$lib" || dwarn "vmsift: $lib not found; vmsift falls back to its built-in codec"
    done
    if [[ $vmsift_as_makedumpfile == yes ]]; then
        rm -f "${initdir}/usr/sbin/makedumpfile" "${initdir}/usr/bin/makedumpfile"
        [[ -L ${initdir}/sbin ]] || rm -f "${initdir}/sbin/makedumpfile"
        ln_r /usr/sbin/vmsift /usr/sbin/makedumpfile
        [[ -L ${initdir}/sbin ]] || ln_r /usr/sbin/vmsift /sbin/makedumpfile
    fi
}
