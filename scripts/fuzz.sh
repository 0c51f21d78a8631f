#!/usr/bin/env bash
# Run every cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time each.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECS (default 60) seconds each
#   scripts/fuzz.sh request sse     just these
#   FUZZ_SECS=600 scripts/fuzz.sh
#
# cargo-fuzz wants nightly (-Zsanitizer=address); only stable is installed here, so the build
# runs with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed when missing. New corpus entries
# go to fuzz/work/<target>/ (ignored by git), seeded from fuzz/corpus/<target>/ (committed).
# Exits non-zero when a target crashes, naming the saved input (fuzz/artifacts/<target>/).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${FUZZ_SECS:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/fuzz/target}}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# -a: debug assertions (and so overflow checks) on, as in `cargo test`.
cargo fuzz build --fuzz-dir fuzz -a

failed=()
for target in "${targets[@]}"; do
    work="fuzz/work/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"
    log="fuzz/work/$target.log"
    echo "fuzz.sh: $target for ${secs}s" >&2
    status=0
    cargo fuzz run --fuzz-dir fuzz -a "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    if [ "$status" -ne 0 ]; then
        crash="$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //' || true)"
        echo "fuzz.sh: $target FAILED (exit $status) after ${execs:-?} execs; input saved to ${crash:-$artifacts/}" >&2
        grep -m1 -B2 -A12 "panicked at\|ERROR: AddressSanitizer\|ERROR: libFuzzer" "$log" >&2 || tail -20 "$log" >&2
        echo "fuzz.sh: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -a $target ${crash:-<input>}" >&2
        failed+=("$target")
    else
        echo "fuzz.sh: $target ok: ${execs:-?} execs in ${secs}s, corpus $(ls "$work" | wc -l) inputs" >&2
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${secs}s without a crash" >&2
