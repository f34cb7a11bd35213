#!/usr/bin/env bash
# Instructions per packet of the TX and RX engines (and of rcore-os virtio-drivers, the peer of
# benches/datapath.rs), counted by callgrind inside the driver's work only
# (`--toggle-collect` on the example's `driver` wrapper): the Advance callbacks and
# EvtAdapterReturnRxBuffer, not the OS simulator or the device.
#
# Per packet = (Ir of B2 batches − Ir of B1 batches) / ((B2 − B1) × 64): the set-up and the
# first batches cancel out. With --functions, the self cost per function of the B2 run (top 10,
# per packet) follows each case.
#
#   bash scripts/datapath_cost.sh [--functions] [CASE...]
#   CASE: tx tx-csum rx rx-csum rcore-tx rcore-rx (default: all), each at 64 and 1514 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
functions=0
if [[ "${1:-}" == --functions ]]; then
  functions=1
  shift
fi
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(tx tx-csum rx rx-csum rcore-tx rcore-rx)
B1=20
B2=120
cargo build --release --quiet -p vnet-harness --example datapath_cost
bin=target/release/examples/datapath_cost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ir() { # case len batches -> total collected Ir
  local f="$out/cg.$1.$2.$3"
  valgrind --tool=callgrind --callgrind-out-file="$f" --toggle-collect='*datapath_cost::driver*' \
    "$bin" "$1" "$2" "$3" >/dev/null 2>&1
  callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
printf '%-10s %6s %12s\n' case bytes Ir/packet
for c in "${cases[@]}"; do
  for len in 64 1514; do
    a=$(ir "$c" "$len" "$B1")
    b=$(ir "$c" "$len" "$B2")
    per=$(( (b - a) / ((B2 - B1) * 64) ))
    printf '%-10s %6s %12s\n' "$c" "$len" "$per"
    if [[ $functions == 1 ]]; then
      total=$(( B2 * 64 ))
      # Self cost by function (callgrind_annotate splits a function by the file its inlined
      # code came from: summed here), per packet.
      callgrind_annotate --inclusive=no --auto=no --threshold=100 "$out/cg.$c.$len.$B2" 2>/dev/null \
        | awk -v n="$total" '
            /PROGRAM TOTALS/ { next }
            $1 ~ /^[0-9,]+$/ && $2 ~ /^\(/ {
              ir = $1; gsub(",", "", ir); $1 = ""; $2 = "";
              f = $0; sub(/^ +/, "", f); sub(/ \[[^]]*\]$/, "", f); sub(/^[^:]*:/, "", f);
              cost[f] += ir }
            END { for (f in cost) printf "%10.1f  %s\n", cost[f] / n, f }' \
        | sort -rn | head -10
    fi
  done
done
