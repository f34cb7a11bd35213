#!/usr/bin/env bash
# Line coverage of the Windows glue (driver/kmdf/) from the glue-host scenarios
# (tests/tests/glue_host*.rs), per file, with cargo-llvm-cov. Not part of the test command
# (instrumented builds take minutes); `COVERAGE_SMOKE=1` runs the property test with 20 seeds
# instead of 1,000. Prints one line per glue file (lines, covered, %) and the total; the JSON
# report is in target/coverage/glue.json, an HTML one with `COVERAGE_HTML=1`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-llvm-cov >/dev/null 2>&1 || cargo install cargo-llvm-cov --locked
rustup component add llvm-tools-preview >/dev/null 2>&1 || true

tests=()
for t in tests/tests/glue_host*.rs; do
    tests+=(--test "$(basename "$t" .rs)")
done
if [ "${COVERAGE_SMOKE:-0}" = 1 ]; then
    export VNET_PROP_SEEDS=20
fi

cargo llvm-cov clean --workspace
cargo llvm-cov --no-report -p vnet-harness "${tests[@]}"
mkdir -p target/coverage
cargo llvm-cov report --json --summary-only --output-path target/coverage/glue.json
if [ "${COVERAGE_HTML:-0}" = 1 ]; then
    cargo llvm-cov report --html --output-dir target/coverage
fi

python3 - target/coverage/glue.json "$PWD/driver/kmdf/" <<'EOF'
import json, sys
report, prefix = sys.argv[1], sys.argv[2]
files = json.load(open(report))["data"][0]["files"]
rows, total, covered = [], 0, 0
for f in files:
    name = f["filename"]
    if not name.startswith(prefix):
        continue
    lines = f["summary"]["lines"]
    rows.append((name[len(prefix):], lines["count"], lines["covered"]))
    total += lines["count"]
    covered += lines["covered"]
print(f"{'driver/kmdf/':<24} {'lines':>6} {'covered':>8} {'%':>6}")
for name, n, c in sorted(rows):
    print(f"{name:<24} {n:>6} {c:>8} {100.0 * c / max(n, 1):>5.1f}%")
print(f"{'total':<24} {total:>6} {covered:>8} {100.0 * covered / max(total, 1):>5.1f}%")
EOF
