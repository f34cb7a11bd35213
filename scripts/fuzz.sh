#!/usr/bin/env bash
# Long fuzzing runs (not part of the test command; the suite runs bounded smoke versions of the
# same bodies). Usage: bash scripts/fuzz.sh [TARGET] [SECONDS]
# Works on stable Rust with `--sanitizer none` (coverage-guided, no ASan).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:-virtqueue_reap}
seconds=${2:-300}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds"
