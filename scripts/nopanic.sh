#!/usr/bin/env bash
# Link-time panic check (issue 16): builds nopanic/ - datapath entry points exported from a
# no_std shared object, release, panic = abort, whose panic handler (the driver's, feature
# no-std-host) calls a function defined nowhere, linked with -z defs. The link succeeds only if
# the optimiser removed every panic path from the exported entry points. Run by scripts/test.sh.
#
# Groups: always the virtqueues (split and packed: add, publish, pop_used, notifications,
# reset), control completion (ControlQueue::poll) and the interrupt pieces (ISR read, Vectors
# decoding, NotifyGate); `adapter`: Adapter::poll_control, control_tick, config_changed; `tx`:
# TxQueue::advance/arm/disarm/flush/abandon_in_flight; `rx`: RxQueue::advance/return_buffer/arm.
#
# Usage: bash scripts/nopanic.sh [FEATURES]   (default "adapter tx rx": every group)
# NOPANIC_DIAGNOSE=1 links without -z defs, to find the paths with objdump/addr2line: e.g.
#   NOPANIC_DIAGNOSE=1 CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release \
#     --features "adapter tx rx" in nopanic/, then `addr2line -f -i -C -e <the .so> <address>`
#   for each call to core::panicking::*, core::slice::index::* or RawVec::grow_one that
#   `objdump -d` shows.
set -euo pipefail
cd "$(dirname "$0")/../nopanic"
features=${1:-adapter tx rx}
log=target/nopanic-build.log
mkdir -p target
if cargo build --release --locked --features "$features" >"$log" 2>&1; then
    echo "no panic path in the entry points checked (nopanic/ linked; groups: core $features)"
else
    grep -E "undefined symbol|undefined reference|^error" "$log" | head -20 >&2
    echo "FAILED: a panic path remains in the entry points (groups: core $features), or the check did not build; see nopanic/$log" >&2
    exit 1
fi
