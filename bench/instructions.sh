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
KEEP="${KEEP:-0}"

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing ${need[*]} ..." >&2
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -n "${SWITCHYARD_BIN:-}" ]; then
    BIN="$SWITCHYARD_BIN"
else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/switchyard"
fi

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then echo "callgrind output kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url tries
    for _ in $(seq "$2"); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done
    echo "instructions.sh: $1 never answered" >&2; exit 2
}

MOCK_PORT="$(free_port)"
"$BIN" --log-level warn mock --listen "127.0.0.1:$MOCK_PORT" >"$TMP/mock.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/v1/models" 50

mkdir -p "$TMP/config/providers"
printf '[providers]\ndirect = { file = "providers/direct.toml" }\n[global.logging]\nformat = "%s"\n' \
    "$LOG_FORMAT" >"$TMP/config/_registry.toml"
printf '[provider]\ntype = "openai"\nbase_url = "http://127.0.0.1:%s/v1"\n[models.bench]\n' \
    "$MOCK_PORT" >"$TMP/config/providers/direct.toml"

GW_PORT="$(free_port)"
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
    "$BIN" --log-level "$LOG_LEVEL" --workers 1 serve --config "$TMP/config" \
    --listen "127.0.0.1:$GW_PORT" >"$TMP/gateway.out" 2>"$TMP/gateway.err" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$GW_PORT/readyz" 300

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
