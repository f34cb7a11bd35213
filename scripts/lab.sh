#!/usr/bin/env bash
# The main job on Linux: installs what it needs on a fresh Debian machine (QEMU from Debian's
# packages), builds vnet-lab and runs it against QEMU's real virtio-net-pci with sensible
# defaults. Extra arguments go to vnet-lab (e.g. --frames 100000 --pcap traffic.pcap,
# --props packed=on, --peer inproc).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "installing qemu-system-x86 (Debian) ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
cargo build --release --locked -p vnet-harness --bin vnet-lab
exec ./target/release/vnet-lab "$@"
