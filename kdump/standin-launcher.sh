#!/bin/sh
# Stand-in for packaging/vmsift (the project's launcher, contract in the coordinator's notes) until it lands:
# same layout rules (runtime and bundle in ../lib/vmsift), --allow-all because Deno 2.9 asks for it on
# /proc/vmcore with its own file API. kdump/run.sh uses packaging/vmsift when that exists.
libdir=$(dirname "$(readlink -f "$0")")/../lib/vmsift
deno=${VMSIFT_DENO:-$libdir/deno}
[ -x "$deno" ] || deno=deno
# Deno needs a cache directory even for a bundle; without HOME it has none (the real launcher must solve this)
[ -n "${DENO_DIR:-}" ] || [ -n "${HOME:-}" ] || export DENO_DIR=/tmp/vmsift-deno-dir
exec "$deno" run --no-prompt --v8-flags=--max-semi-space-size=1 --allow-all "$libdir/vmsift.js" "$@"
