#!/usr/bin/env bash
# The fault-injection suite's long form: the `faults` test target (tests/faults/) against a
# release gateway, FAULTS_SECS of load per scenario, one scenario at a time, and its
# `FAULT scenario=...` report lines as a Markdown table on stdout.
#
#   bench/faults.sh                                   # release build, 20 s per scenario
#   FAULTS_SECS=5 bench/faults.sh                     # shorter
#   SWITCHYARD_BIN=target/release/switchyard bench/faults.sh   # skip the release build
#   FILTER=kill bench/faults.sh                       # only tests whose name contains "kill"
#
# Exit status: that of the test run (non-zero when a scenario failed; the table still shows
# every scenario that reported). The full test output is kept in $LOG (default: a temp file).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export FAULTS_SECS="${FAULTS_SECS:-20}"
log="${LOG:-$(mktemp -t faults.XXXXXX.log)}"

if [[ -z "${SWITCHYARD_BIN:-}" ]]; then
    echo "building the release binary..." >&2
    cargo build --release --locked --bin switchyard >&2
    target="${CARGO_TARGET_DIR:-$root/target}"
    export SWITCHYARD_BIN="$target/release/switchyard"
fi
[[ -x "$SWITCHYARD_BIN" ]] || { echo "error: $SWITCHYARD_BIN is not an executable" >&2; exit 2; }
# A relative path must still name the binary when the tests run from the package root.
SWITCHYARD_BIN="$(cd "$(dirname "$SWITCHYARD_BIN")" && pwd)/$(basename "$SWITCHYARD_BIN")"
export SWITCHYARD_BIN

echo "gateway: $SWITCHYARD_BIN, FAULTS_SECS=$FAULTS_SECS, log: $log" >&2
started=$(date +%s)
status=0
cargo test --locked --test faults -- --nocapture --test-threads=1 ${FILTER:+"$FILTER"} \
    >"$log" 2>&1 || status=$?
took=$(( $(date +%s) - started ))

echo "| scenario | requests | success % | failover ms (first) | failover ms (max) | p50 ms | lost |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
grep -o 'FAULT scenario=.*' "$log" | while read -r _ fields; do
    declare -A f=()
    for kv in $fields; do f["${kv%%=*}"]="${kv#*=}"; done
    echo "| ${f[scenario]} | ${f[requests]} | ${f[success]%\%} | ${f[failover_ms]} | ${f[failover_max_ms]} | ${f[p50_ms]} | ${f[lost]} |"
    unset f
done
echo
echo "$(grep -c 'FAULT scenario=' "$log" || true) scenarios, ${took} s in all (FAULTS_SECS=$FAULTS_SECS); $(grep -E '^test result:' "$log" || echo 'no test result line')"
if [[ $status -ne 0 ]]; then
    echo >&2
    echo "the test run failed (exit $status); its failures:" >&2
    sed -n '/^failures:/,$p' "$log" | head -80 >&2
fi
exit "$status"
