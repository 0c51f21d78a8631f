#!/usr/bin/env bash
# Measures the latency switchyard adds over calling its upstream directly.
#
# One mock upstream (`switchyard mock --latency-ms 0`), one gateway in front of it and,
# as a reference, HAProxy (HTTP mode) in front of the same mock. wrk drives
# POST /v1/chat/completions against all three, interleaved per concurrency
# (direct c=1, haproxy c=1, gateway c=1, direct c=64, haproxy c=64, gateway c=64, ...),
# and the script reports added latency = p(proxy) - p(direct) for p50 and p99 in
# microseconds, plus gateway minus haproxy. Targets are checked on gateway minus direct.
#
# Environment:
#   DURATION=10        seconds per measured run
#   WARMUP=2           seconds of warm-up before each measured run (0 disables)
#   CONCURRENCY="1 64" connection counts to run (space or comma separated)
#   WRK_THREADS=2      most wrk threads per run (threads = min(connections, WRK_THREADS))
#   SWITCHYARD_BIN=... use this binary and skip `cargo build --release`
#   STRICT=1           exit 1 when any latency target FAILs
#   VERBOSE=1          also print wrk's own output for every run
#   MOCK_ARGS=...      extra flags for `switchyard mock` (e.g. "--latency-ms 1"), word-split
#   REFERENCE=haproxy  reference proxy run next to the gateway; "none" disables it
#   REF_THREADS=2      haproxy nbthread (match the gateway's worker threads)
#   LOG_LEVEL=info     gateway log level (info: a JSON access line per request; warn: none)
#
# Exit codes: 0 ok (target FAILs only change it with STRICT=1), 1 target FAIL with
# STRICT=1, 2 setup problem, 3 invalid run (non-2xx responses or socket errors).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONCURRENCY="${CONCURRENCY:-1 64}"
WRK_THREADS="${WRK_THREADS:-2}"
STRICT="${STRICT:-0}"
VERBOSE="${VERBOSE:-0}"
REFERENCE="${REFERENCE:-haproxy}"
REF_THREADS="${REF_THREADS:-2}"
LOG_LEVEL="${LOG_LEVEL:-info}"

# Targets in µs: added p50 / p99 at c=1, added p99 at c=64.
TARGET_C1_P50=40
TARGET_C1_P99=100
TARGET_C64_P99=1000

SCRIPT=overhead.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
{ is_uint "$DURATION" && [ "$DURATION" -ge 1 ]; } || die "DURATION must be a whole number of seconds >= 1 (got '$DURATION')"
is_uint "$WARMUP" || die "WARMUP must be a whole number of seconds (got '$WARMUP')"
{ is_uint "$WRK_THREADS" && [ "$WRK_THREADS" -ge 1 ]; } || die "WRK_THREADS must be >= 1 (got '$WRK_THREADS')"
case "$REFERENCE" in
    haproxy) HAVE_REF=1 ;;
    none) HAVE_REF=0 ;;
    *) die "REFERENCE must be 'haproxy' or 'none' (got '$REFERENCE')" ;;
esac
{ is_uint "$REF_THREADS" && [ "$REF_THREADS" -ge 1 ]; } || die "REF_THREADS must be >= 1 (got '$REF_THREADS')"
read -r -a CONCS <<<"${CONCURRENCY//,/ }"
read -r -a EXTRA_MOCK_ARGS <<<"${MOCK_ARGS:-}"
[ "${#CONCS[@]}" -ge 1 ] || die "CONCURRENCY is empty"
for c in "${CONCS[@]}"; do
    { is_uint "$c" && [ "$c" -ge 1 ]; } || die "CONCURRENCY entries must be whole numbers >= 1 (got '$c')"
done

# --- 1. tools -------------------------------------------------------------------------
tools=(wrk curl)
[ "$HAVE_REF" = 1 ] && tools+=(haproxy python3) # python3 picks haproxy's free port
need_tools "${tools[@]}"

# --- 2. binary ------------------------------------------------------------------------
switchyard_bin --bin switchyard

# --- 3. processes -----------------------------------------------------------------------
bench_tmp switchyard-overhead

# Children: quiet logs, and no RUST_LOG from the caller's shell overriding --log-level.
spawn mock env -u RUST_LOG -u SWITCHYARD_LOG "$BIN" --log-level warn \
    mock --listen 127.0.0.1:0 --latency-ms 0 "${EXTRA_MOCK_ARGS[@]}"
MOCK_PID=$PID
listening mock
MOCK_BASE="$URL/v1"
wait_http mock "$MOCK_BASE/models"

mkdir -p "$TMP/config/providers"
# Metrics and request logging on (the defaults, written out): the figures include recording
# every request's counters and histograms and writing its log line.
cat >"$TMP/config/_registry.toml" <<'EOF'
[server]
listen = "127.0.0.1:0"
[providers]
direct = { file = "providers/direct.toml", enabled = true }
[global]
enable_metrics = true
[global.logging]
level = "info"
format = "json"
enable_request_logging = true
EOF
cat >"$TMP/config/providers/direct.toml" <<EOF
[provider]
type = "openai"
base_url = "$MOCK_BASE"
[models.bench]
EOF

# The gateway logs at LOG_LEVEL (default info: one JSON access line per request).
spawn gateway env -u RUST_LOG -u SWITCHYARD_LOG "$BIN" --log-level "$LOG_LEVEL" \
    serve --config "$TMP/config" --listen 127.0.0.1:0
GW_PID=$PID
listening gateway
GW_BASE="$URL"
wait_http gateway "$GW_BASE/readyz"

REF_PID=""
if [ "$HAVE_REF" = 1 ]; then
    mock_hostport="${MOCK_BASE#http://}"
    start_haproxy haproxy "${mock_hostport%/v1}" "$REF_THREADS"
    REF_PID=$PID
    REF_BASE="$URL"
    REF_URL="$REF_BASE/v1/chat/completions"
fi

DIRECT_URL="$MOCK_BASE/chat/completions"
GATEWAY_URL="$GW_BASE/v1/chat/completions"
log "mock:    $MOCK_BASE (pid $MOCK_PID)"
[ "$HAVE_REF" = 1 ] && log "haproxy: $REF_BASE (pid $REF_PID, nbthread $REF_THREADS)"
log "gateway: $GW_BASE (pid $GW_PID)"

# One request each way first, so a routing or config mistake fails here with the body
# instead of as a wall of non-2xx counts.
smoke() { # URL MODEL
    local code
    code="$(curl -sS -o "$TMP/smoke.body" -w '%{http_code}' --max-time 5 \
        -H 'Content-Type: application/json' \
        -d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$1")" || code=000
    if [[ "$code" != 2* ]]; then
        log "POST $1 (model $2) -> HTTP $code:"; head -c 2000 "$TMP/smoke.body" >&2 || true; log ""
        show_logs mock; show_logs gateway
        [ "$HAVE_REF" = 1 ] && show_logs haproxy
        die "smoke request failed"
    fi
}
smoke "$DIRECT_URL" bench
[ "$HAVE_REF" = 1 ] && smoke "$REF_URL" bench
smoke "$GATEWAY_URL" direct:bench

# --- 4./5. load -----------------------------------------------------------------------
cat >"$TMP/chat.lua" <<'EOF'
local model = os.getenv("BENCH_MODEL") or "bench"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"hi"}]}'

-- One machine-readable line; latencies are integer microseconds.
-- non2xx is wrk's status error count (responses with status >= 400).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH p50_us=%d p99_us=%d mean_us=%d max_us=%d rps=%.1f requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.mean), math.floor(latency.max),
    summary.requests / (summary.duration / 1e6), summary.requests,
    e.status, e.connect, e.read, e.write, e.timeout))
end
EOF

declare -A R # R[target,conc,field]
INVALID=()

field() { sed -nE "s/.*[ ]$2=([0-9.]+).*/\1/p" <<<"$1"; }

# run_wrk TARGET URL MODEL CONNS SECONDS [warmup]
run_wrk() {
    local target="$1" url="$2" model="$3" c="$4" secs="$5" phase="${6:-measure}"
    local t=$((c < WRK_THREADS ? c : WRK_THREADS)) out bench errs f
    out="$(BENCH_MODEL="$model" wrk -t"$t" -c"$c" -d"${secs}s" --timeout 5s --latency \
        -s "$TMP/chat.lua" "$url" 2>&1)" || { log "$out"; die "wrk failed ($target c=$c)"; }
    bench="$(grep -m1 '^BENCH ' <<<"$out" || true)"
    [ -n "$bench" ] || { log "$out"; die "wrk printed no BENCH line ($target c=$c)"; }
    [ "$phase" = warmup ] && return 0
    [ "$VERBOSE" = 1 ] && log "$out"
    for f in p50_us p99_us mean_us max_us rps requests non2xx connect read write timeout; do
        R[$target,$c,$f]="$(field "$bench" "$f")"
    done
    errs=$(( R[$target,$c,non2xx] + R[$target,$c,connect] + R[$target,$c,read] + R[$target,$c,write] + R[$target,$c,timeout] ))
    log "$(printf '  %-7s c=%-3s t=%s %ss: p50=%sus p99=%sus rps=%s requests=%s errors=%s' \
        "$target" "$c" "$t" "$secs" "${R[$target,$c,p50_us]}" "${R[$target,$c,p99_us]}" \
        "${R[$target,$c,rps]}" "${R[$target,$c,requests]}" "$errs")"
    if [ "$errs" -gt 0 ] || [ "${R[$target,$c,requests]}" -eq 0 ]; then
        INVALID+=("$target c=$c: $bench")
        log "!!!!! $target c=$c: non-2xx or socket errors -- this run is INVALID !!!!!"
        log "$out"
    fi
}

TARGETS=(direct)
[ "$HAVE_REF" = 1 ] && TARGETS+=(haproxy)
TARGETS+=(gateway)
log "load: ${DURATION}s per run, ${WARMUP}s warm-up, concurrency ${CONCS[*]}, order ${TARGETS[*]}"
for c in "${CONCS[@]}"; do
    for target in "${TARGETS[@]}"; do
        case "$target" in
            direct) url="$DIRECT_URL" model=bench ;;
            haproxy) url="$REF_URL" model=bench ;; # haproxy does not rewrite the model
            gateway) url="$GATEWAY_URL" model=direct:bench ;;
        esac
        [ "$WARMUP" -gt 0 ] && run_wrk "$target" "$url" "$model" "$c" "$WARMUP" warmup
        run_wrk "$target" "$url" "$model" "$c" "$DURATION"
    done
done

# Every process must have survived the load; anything they logged (warn and up) is shown.
names=(mock gateway)
[ "$HAVE_REF" = 1 ] && names+=(haproxy)
for name in "${names[@]}"; do
    case "$name" in mock) pid=$MOCK_PID ;; gateway) pid=$GW_PID ;; haproxy) pid=$REF_PID ;; esac
    kill -0 "$pid" 2>/dev/null || { show_logs "$name"; INVALID+=("$name exited during the run"); }
    if [ -s "$TMP/$name.err" ]; then
        log "note: $name logged $(wc -l <"$TMP/$name.err") line(s) on stderr during the run; last 5:"
        tail -n 5 "$TMP/$name.err" >&2
    fi
done

# --- 6. report ------------------------------------------------------------------------
echo
echo "switchyard overhead: ${DURATION}s per run, POST /v1/chat/completions, mock --latency-ms 0"
for c in "${CONCS[@]}"; do
    R[added,$c,p50]=$(( R[gateway,$c,p50_us] - R[direct,$c,p50_us] ))
    R[added,$c,p99]=$(( R[gateway,$c,p99_us] - R[direct,$c,p99_us] ))
done
if [ "$HAVE_REF" = 0 ]; then
    printf '%5s | %8s %8s %9s | %8s %8s %9s | %9s %9s\n' \
        conc "dir p50" "dir p99" "dir rps" "gw p50" "gw p99" "gw rps" "+p50 us" "+p99 us"
    printf -- '------+----------------------------+----------------------------+--------------------\n'
    for c in "${CONCS[@]}"; do
        printf '%5s | %8s %8s %9.0f | %8s %8s %9.0f | %9s %9s\n' "$c" \
            "${R[direct,$c,p50_us]}" "${R[direct,$c,p99_us]}" "${R[direct,$c,rps]}" \
            "${R[gateway,$c,p50_us]}" "${R[gateway,$c,p99_us]}" "${R[gateway,$c,rps]}" \
            "${R[added,$c,p50]}" "${R[added,$c,p99]}"
    done
    echo "(latencies in microseconds; +p = gateway minus direct)"
else
    echo "reference: haproxy $(haproxy -v 2>/dev/null | sed -nE '1s/^HAProxy version ([^ ]+).*/\1/p'), nbthread $REF_THREADS, http-reuse always"
    printf '%5s | %7s %7s %7s | %7s %7s %7s | %7s %7s | %7s %7s %7s | %7s %7s\n' conc \
        "dir p50" "dir p99" "dir rps" "ha p50" "ha p99" "ha rps" "ha +p50" "ha +p99" \
        "gw p50" "gw p99" "gw rps" "gw +p50" "gw +p99"
    printf -- '------+-------------------------+-------------------------+-----------------+-------------------------+----------------\n'
    for c in "${CONCS[@]}"; do
        R[ref,$c,p50]=$(( R[haproxy,$c,p50_us] - R[direct,$c,p50_us] ))
        R[ref,$c,p99]=$(( R[haproxy,$c,p99_us] - R[direct,$c,p99_us] ))
        printf '%5s | %7s %7s %7.0f | %7s %7s %7.0f | %7s %7s | %7s %7s %7.0f | %7s %7s\n' "$c" \
            "${R[direct,$c,p50_us]}" "${R[direct,$c,p99_us]}" "${R[direct,$c,rps]}" \
            "${R[haproxy,$c,p50_us]}" "${R[haproxy,$c,p99_us]}" "${R[haproxy,$c,rps]}" \
            "${R[ref,$c,p50]}" "${R[ref,$c,p99]}" \
            "${R[gateway,$c,p50_us]}" "${R[gateway,$c,p99_us]}" "${R[gateway,$c,rps]}" \
            "${R[added,$c,p50]}" "${R[added,$c,p99]}"
    done
    echo "(latencies in microseconds; ha/gw +p = haproxy/gateway minus direct)"
    for c in "${CONCS[@]}"; do
        printf 'c=%-3s gateway minus haproxy: +p50 %s us, +p99 %s us\n' "$c" \
            "$(( R[gateway,$c,p50_us] - R[haproxy,$c,p50_us] ))" \
            "$(( R[gateway,$c,p99_us] - R[haproxy,$c,p99_us] ))"
    done
fi

# Proof that recording was on: what /metrics counted and how many request lines were logged.
recorded="$(curl -s "$GW_BASE/metrics" | awk '/^switchyard_instance_requests_total/ { n += $NF } END { printf "%d", n }')"
logged="$(grep -c '"route"' "$TMP/gateway.err" || true)"
echo
echo "recording on: /metrics counted $recorded upstream requests; $logged request log lines"
[ "${recorded:-0}" -gt 0 ] || die "/metrics counted no requests: was recording off?"

echo
FAILS=0
check() { # CONC PCT LIMIT
    local c="$1" p="$2" limit="$3" v verdict
    if [ -z "${R[added,$c,$p]+x}" ]; then
        printf 'c=%-3s added %s <= %5s us: %6s      SKIP (c=%s not run)\n' "$c" "$p" "$limit" - "$c"
        return
    fi
    v="${R[added,$c,$p]}"
    if [ "$v" -le "$limit" ]; then verdict=PASS; else verdict=FAIL; FAILS=$((FAILS + 1)); fi
    printf 'c=%-3s added %s <= %5s us: %6s us   %s\n' "$c" "$p" "$limit" "$v" "$verdict"
}
check 1 p50 "$TARGET_C1_P50"
check 1 p99 "$TARGET_C1_P99"
check 64 p99 "$TARGET_C64_P99"

if [ "${#INVALID[@]}" -gt 0 ]; then
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "INVALID RUN: non-2xx responses or socket errors; the numbers above mean nothing:"
    printf '  %s\n' "${INVALID[@]}"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    exit 3
fi
if [ "$FAILS" -gt 0 ]; then
    echo "$FAILS target(s) FAILED"
    [ "$STRICT" = 1 ] && exit 1
else
    echo "all targets PASS"
fi
exit 0
