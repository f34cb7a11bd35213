#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run runs exactly this).
# Sets up what it needs on a fresh Debian machine with rustup, then runs every check.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
have_nightly_miri=0
if rustup toolchain list | grep -q '^nightly'; then
    rustup component add miri --toolchain nightly >/dev/null 2>&1 && have_nightly_miri=1
else
    rustup toolchain install nightly --profile minimal --component miri >/dev/null 2>&1 && have_nightly_miri=1
fi
have_windows_target=0
if rustup target add x86_64-pc-windows-msvc >/dev/null 2>&1; then
    have_windows_target=1
fi

step "QEMU and network tools (tests against the real virtio-net-pci and the Linux kernel)"
missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v ethtool >/dev/null 2>&1 || missing="$missing ethtool"
command -v nstat >/dev/null 2>&1 || missing="$missing iproute2"
if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "installing:$missing"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >/dev/null \
            || echo "WARNING: could not install$missing; the QEMU tests will fail" >&2
    else
        echo "WARNING: no apt-get to install$missing; the QEMU tests will fail" >&2
    fi
fi
command -v qemu-system-x86_64 >/dev/null 2>&1 && qemu-system-x86_64 --version | head -1

step "scapy 2.8.0 (regenerates the offload corpus byte for byte)"
scapy_ok() { python3 -c 'import scapy, sys; sys.exit(scapy.VERSION != "2.8.0")' >/dev/null 2>&1; }
if ! scapy_ok; then
    venv="$PWD/target/scapy-venv"
    if [ ! -x "$venv/bin/python3" ]; then
        if ! python3 -m venv "$venv" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
            rm -rf "$venv"
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip) >/dev/null 2>&1 || true
            python3 -m venv "$venv" >/dev/null 2>&1 || true
        fi
    fi
    if [ -x "$venv/bin/python3" ]; then
        "$venv/bin/python3" -m pip install -q scapy==2.8.0 >/dev/null 2>&1 || true
        export PATH="$venv/bin:$PATH"
    fi
fi
if scapy_ok; then echo "scapy $(python3 -c 'import scapy; print(scapy.VERSION)')"; else
    echo "SKIPPED: scapy 2.8.0 could not be installed; the corpus is still checked, not regenerated" >&2; fi

step "format"
cargo fmt --all --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the Windows glue type-checks and lints (against wdk-standin, a declaration-only stand-in for wdk-sys)"
cargo clippy -p virtionet --features glue-host --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "link-time panic check (nopanic/: no panic path the optimiser cannot remove in the entry points)"
bash scripts/nopanic.sh

step "core crates type-check for the Windows kernel target"
if [ "$have_windows_target" = 1 ]; then
    cargo check --locked --target x86_64-pc-windows-msvc -p netring -p virtio -p offload
else
    echo "SKIPPED: 'rustup target add x86_64-pc-windows-msvc' failed; the no_std core was not checked for Windows" >&2
fi

step "the Windows build graph against the real wdk-sys bindings (needs the wdk-linux tree)"
# `cargo check --workspace` for x86_64-pc-windows-msvc and the driver's clippy -D warnings, against
# bindings generated from the open-source KMDF headers (../shared/tools/wdk-linux). The tree is
# built from two git mirrors, so it exists only on machines set up for it: SKIPPED elsewhere.
bash scripts/windows-check.sh

step "Miri (netring; virtqueues against a hostile device)"
if [ "$have_nightly_miri" = 1 ]; then
    cargo +nightly miri setup >/dev/null 2>&1
    cargo +nightly miri test --locked -p netring
    cargo +nightly miri test --locked -p vnet-harness --test virtqueue_hostile
else
    echo "SKIPPED: no nightly toolchain with Miri could be installed" >&2
fi

step "all checks passed"
