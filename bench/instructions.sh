#!/usr/bin/env bash
# Counts the gateway's user-space instructions per request with callgrind: a deterministic
# cost figure (repeatable to ~0.2 %) for A/B-testing changes on a noisy machine, where
# latency runs swing by tens of microseconds.
#
# One mock upstream (native speed) and one gateway under `valgrind --tool=callgrind`
# (`--workers 1`, access log at the default `info`). After a warm-up, the counters are
# zeroed, N sequential keep-alive requests are sent, and the counters dumped. Prints
# instructions per request and the top functions by self cost.
#
# Environment:
#   REQUESTS=1000      requests measured
#   WARMUP=100         requests before the counters are zeroed
#   LOG_LEVEL=info     gateway log level
#   LOG_FORMAT=text    access log format: text or json ([global.logging] format)
#   TOP=25             functions listed
#   SWITCHYARD_BIN=... use this binary and skip `cargo build --release`
#   KEEP=1             keep the callgrind output (path printed) for callgrind_annotate
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUESTS="${REQUESTS:-1000}"
WARMUP="${WARMUP:-100}"
LOG_LEVEL="${LOG_LEVEL:-info}"
LOG_FORMAT="${LOG_FORMAT:-text}"
TOP="${TOP:-25}"

SCRIPT=instructions.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_tools valgrind python3 curl
switchyard_bin --bin switchyard
bench_tmp switchyard-instructions

spawn mock "$BIN" --log-level warn mock --listen 127.0.0.1:0
listening mock
MOCK_URL="$URL"
wait_http mock "$MOCK_URL/v1/models"

mkdir -p "$TMP/config/providers"
printf '[providers]\ndirect = { file = "providers/direct.toml" }\n[global.logging]\nformat = "%s"\n' \
    "$LOG_FORMAT" >"$TMP/config/_registry.toml"
printf '[provider]\ntype = "openai"\nbase_url = "%s/v1"\n[models.bench]\n' \
    "$MOCK_URL" >"$TMP/config/providers/direct.toml"

spawn gateway valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
    "$BIN" --log-level "$LOG_LEVEL" --workers 1 serve --config "$TMP/config" \
    --listen 127.0.0.1:0
GW_PID=$PID
WAIT_SECS=120 listening gateway # valgrind starts slowly
GW_PORT="${URL##*:}"
wait_http gateway "$URL/readyz"

send() { # count
    python3 - "$GW_PORT" "$1" <<'PY'
import http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"model": "direct:bench", "messages": [{"role": "user", "content": "hi"}]})
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    reply = conn.getresponse()
    reply.read()
    if reply.status != 200:
        sys.exit(f"HTTP {reply.status}")
PY
}

send "$WARMUP"
callgrind_control --zero "$GW_PID" >/dev/null
send "$REQUESTS"
callgrind_control --dump "$GW_PID" >/dev/null
DUMP="$(find "$TMP" -name 'callgrind.out.*' | head -1)"
TOTAL="$(awk '/^summary:/{print $2}' "$DUMP")"
[ -n "$TOTAL" ] || { echo "instructions.sh: no summary in $DUMP" >&2; exit 2; }

echo "gateway user-space instructions per request: $((TOTAL / REQUESTS))  ($REQUESTS requests, log level $LOG_LEVEL, $LOG_FORMAT)"
echo
echo "top functions by self cost (share of all instructions):"
callgrind_annotate --inclusive=no --auto=no --threshold=100 "$DUMP" 2>/dev/null \
    | grep -E '^ *[0-9,]+ \( *[0-9.]+%\)  ' | grep -v -E "PROGRAM TOTALS|events annotated" \
    | grep -v -E "\((100\.0|99\.[0-9]+)%\)" \
    | head -n "$TOP" \
    | sed -E 's#/root/.cargo/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/library/##; s# \[[^]]*\]$##' | cut -c1-150
