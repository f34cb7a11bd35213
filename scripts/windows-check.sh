#!/usr/bin/env bash
# The Windows build graph, checked on Linux against the REAL wdk-sys bindings (the wdk-linux tree
# of ../shared/tools/wdk-linux, README there): `cargo check --workspace` for
# x86_64-pc-windows-msvc (every member must build for Windows: the harness is empty there), then
# the driver's clippy with the lints the Windows workflow uses (-D warnings), then netcx.rs's
# layouts and table indices against the real NetAdapterCx 2.2 headers.
#
# Prints `SKIPPED: <why>` and exits 0 when the tree is not on this machine (it is built from two
# git mirrors no CI machine has), so the test command can always call it. Otherwise the last line
# is `windows build graph vs real wdk-sys: N errors, M warnings` and the exit status is 1 unless
# both are 0. Counts are for this workspace's crates only (dependencies' warnings, such as the
# patched wdk-build copy's, are not ours).
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
TOOL=$SRC/../shared/tools/wdk-linux
BASE=${WDK_LINUX:-/var/tmp/wdkcheck}
WDK=${WDK:-$BASE/wdk}
WDKBUILD=${WDKBUILD:-$BASE/wdk-build-0.6.0}

skip() { echo "SKIPPED: $*" >&2; exit 0; }
[ -x "$TOOL/check.sh" ] || skip "no ../shared/tools/wdk-linux beside the repository"
[ -d "$WDK/Include/wdf/kmdf/1.33" ] || skip "no wdk-linux tree at $WDK (set it up: $TOOL/README.md)"
[ -f "$WDKBUILD/Cargo.toml" ] || skip "no patched wdk-build at $WDKBUILD ($TOOL/README.md)"
command -v clang >/dev/null 2>&1 || skip "no clang (apt-get install clang libclang-dev)"
rustup target list --installed 2>/dev/null | grep -q '^x86_64-pc-windows-msvc$' \
    || skip "no x86_64-pc-windows-msvc target (rustup target add x86_64-pc-windows-msvc)"

# The same environment and project copy as the tool's check.sh (wdk-build finds the workspace by
# walking up from OUT_DIR, and the patch of wdk-build rewrites Cargo.lock: both want a copy).
python3 "$TOOL/patch-wdk-build.py" "$WDKBUILD" >/dev/null
PROJ=$BASE/proj
mkdir -p "$PROJ" "$BASE/bin"
find "$PROJ" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
tar -C "$SRC" --exclude=./target --exclude=./.git -cf - . | tar -C "$PROJ" -xf -
cat > "$BASE/bin/clang-cl" <<'EOS'
#!/bin/sh
exec clang --driver-mode=cl --target=x86_64-pc-windows-msvc /clang:-fgnuc-version=10.0.0 "$@"
EOS
chmod +x "$BASE/bin/clang-cl"
export WDKContentRoot="$WDK"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-14/lib}
BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_msvc="-fgnuc-version=10.0.0 -resource-dir=$(clang -print-resource-dir)"
export BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_msvc
export CC_x86_64_pc_windows_msvc="$BASE/bin/clang-cl"
export AR_x86_64_pc_windows_msvc=llvm-lib
export CARGO_TARGET_DIR=$PROJ/target

LOG=$BASE/workspace-check.json
(cd "$PROJ" && cargo check --workspace --target x86_64-pc-windows-msvc --message-format=json \
    --config "patch.crates-io.wdk-build.path=\"$WDKBUILD\"" >"$LOG" 2>"$BASE/workspace-check.stderr")
check_rc=$?
read -r E W < <(python3 - "$LOG" "$PROJ" <<'EOF'
import json, sys
errors = warnings = 0
proj = sys.argv[2]
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-message":
        continue
    # Only this workspace's packages (path sources inside the project copy).
    if not m.get("manifest_path", "").startswith(proj + "/"):
        continue
    level = m["message"]["level"]
    if level == "error":
        errors += 1
        sys.stderr.write(m["message"].get("rendered") or "")
    elif level == "warning":
        warnings += 1
        sys.stderr.write(m["message"].get("rendered") or "")
print(errors, warnings)
EOF
)
if [ "$check_rc" != 0 ] && [ "$E" = 0 ]; then
    tail -20 "$BASE/workspace-check.stderr" >&2
    echo "windows build graph: SETUP FAILURE (cargo check failed without a compiler error of ours; $BASE/workspace-check.stderr)"
    exit 3
fi
echo "cargo check --workspace --target x86_64-pc-windows-msvc: $E errors, $W warnings"

# The driver's clippy against the real bindings (the tool's own script and counts).
last=$(bash "$TOOL/check.sh" clippy 2>&1 | tail -n 1)
echo "$last"
CE=$(echo "$last" | grep -oE '[0-9]+ errors' | grep -oE '[0-9]+')
CW=$(echo "$last" | grep -oE '[0-9]+ warnings' | grep -oE '[0-9]+')
[ -n "$CE" ] && [ -n "$CW" ] || { echo "windows build graph: clippy did not report counts"; exit 3; }
# netcx.rs (the hand-written NetAdapterCx function table and structures) against the real
# NetAdapterCx 2.2 headers: layouts and table indices.
nlast=$(bash "$TOOL/netcx-check.sh" 2>&1 | tail -n 1)
echo "$nlast"
NE=$(echo "$nlast" | grep -oE '[0-9]+ layout errors' | grep -oE '[0-9]+')
[ -n "$NE" ] || { echo "windows build graph: netcx-check did not report counts"; exit 3; }
echo "windows build graph vs real wdk-sys: check $E errors, $W warnings; clippy $CE errors, $CW warnings; netcx $NE layout errors"
[ "$E" = 0 ] && [ "$W" = 0 ] && [ "$CE" = 0 ] && [ "$CW" = 0 ] && [ "$NE" = 0 ]
