#!/usr/bin/env bash
# The performance suite: one command, bounded in time, that writes bench/results/DATE.md.
#
# Builds release, starts four `switchyard mock` upstreams and one `switchyard serve` in front
# of them (a pool of the four), all on 127.0.0.1, and measures, against the gateway and
# straight against one mock (the same upstream, in the same run, interleaved):
#   1. added latency p50/p99, non-streaming (wrk), at concurrency 1, 64 and 256, for the
#      pool's strategy switched at run time to round_robin, p2c and score;
#   2. the same for streams (examples/streamload.rs): time to first chunk and per-chunk latency
#      (the mock stamps each chunk with the time it wrote it); and per-chunk latency of streams
#      paced 2 ms apart at c=1 (one hop per chunk, no burst to wait behind);
#   3. throughput through the gateway vs direct (the best of the runs above);
#   4. added p99 under load: about 5,000 requests/s for DURATION s on a 60 ms upstream;
#   5. concurrent streams (64 chunks, 20 ms apart) held open at once: 1,000, 5,000, 10,000;
#      lost chunks, stalls and the gateway's peak RSS;
#   6. idle RSS and RSS over a soak (SOAK_SECS of steady load);
#   7. the criterion benchmarks (strategy selection, limiter admission).
#
# Environment:
#   DURATION=4          seconds per measured run (WARMUP=1 s before each)
#   CONCURRENCY="1 64 256"
#   STRATEGIES="round_robin p2c score"
#   OPEN_RATE=5000      requests/s on the 60 ms upstream (connections = rate x 60 ms)
#   STREAMS="1000 5000 10000"   streams held open at once
#   SOAK_SECS=60        soak length (600 for the 10-minute soak)
#   CRITERION=1         0 skips the criterion benchmarks
#   REFERENCE=haproxy   HAProxy in front of the same mock, measured beside the gateway in 1
#                       and 3 (what a mature C proxy costs on this machine); none skips it
#   SWITCHYARD_BIN=...  use this binary (and target/release/examples/streamload beside it)
#   OUT=bench/results/YYYY-MM-DD.md
# Exit codes: 0 report written (targets may FAIL: the report says by how much), 2 setup
# problem, 3 a run had errors that make its figures meaningless.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-4}"
WARMUP="${WARMUP:-1}"
CONCURRENCY="${CONCURRENCY:-1 64 256}"
STRATEGIES="${STRATEGIES:-round_robin p2c score}"
OPEN_RATE="${OPEN_RATE:-5000}"
STREAMS="${STREAMS:-1000 5000 10000}"
SOAK_SECS="${SOAK_SECS:-60}"
CRITERION="${CRITERION:-1}"
REFERENCE="${REFERENCE:-haproxy}"
OUT="${OUT:-$ROOT/bench/results/$(date -u +%F).md}"
TOKEN="bench-admin-token"
STARTED=$(date +%s)

SCRIPT=run.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
log() { printf '[%4ss] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }

need_tools curl python3 wrk
[ "$REFERENCE" = none ] || need_tools haproxy
# 10,000 streams need 20,000+ descriptors in the gateway (client and upstream sides).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

switchyard_bin --bin switchyard --example streamload
LOAD="$(dirname "$BIN")/examples/streamload"
[ -x "$LOAD" ] || die "no streamload at $LOAD (cargo build --release --example streamload)"

bench_tmp switchyard-bench
RES="$TMP/results"; mkdir -p "$RES"

# start NAME ARGS...: switchyard ARGS in the background (no RUST_LOG from the caller's
# shell); waits for its address line and sets PID and URL.
start() {
    local name="$1"; shift
    spawn "$name" env -u RUST_LOG -u SWITCHYARD_LOG "$BIN" "$@"
    listening "$name"
}

MOCKS=()
for i in 1 2 3 4; do
    start "mock$i" --log-level warn mock --listen 127.0.0.1:0 --name "m$i" --stamp-chunks
    MOCKS+=("$URL")
done
mkdir -p "$TMP/config/providers" "$TMP/config/task-groups" "$TMP/config/pools"
cat >"$TMP/config/_registry.toml" <<EOF
[server]
listen = "127.0.0.1:0"
admin_token = "$TOKEN"
timeout = 30
[providers]
bench = { file = "providers/bench.toml", enabled = true }
[task_groups]
bench_group = { file = "task-groups/bench.toml", enabled = true }
[pools]
bench_pool = { file = "pools/bench.toml", enabled = true }
[global]
enable_metrics = true
[global.logging]
level = "info"
format = "json"
enable_request_logging = true
EOF
{
    printf '[provider]\ntype = "openai"\n\n[models.bench]\n'
    for i in 1 2 3 4; do
        printf '\n[[models.bench.instances]]\nid = "m%s"\nbase_url = "%s/v1"\n' "$i" "${MOCKS[$((i - 1))]}"
    done
} >"$TMP/config/providers/bench.toml"
cat >"$TMP/config/task-groups/bench.toml" <<'EOF'
[task_group]
name = "bench_group"
[task_group.echelons.echelon1]
models = ["bench:bench"]
timeout = 30
EOF
cat >"$TMP/config/pools/bench.toml" <<'EOF'
[pool]
name = "bench_pool"
task_groups = ["bench_group"]
[pool.rotation_strategy]
type = "round_robin"
EOF
start gateway --log-level info serve --config "$TMP/config" --listen 127.0.0.1:0
GW_PID="$PID"; GW="$URL"
DIRECT="${MOCKS[0]}"
REF=""
if [ "$REFERENCE" != none ]; then
    start_haproxy haproxy "${DIRECT#http://}" 2
    REF="$URL"
fi
curl -fsS -o /dev/null "$GW/readyz" || die "gateway not ready"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
IDLE_RSS=$(rss_kib "$GW_PID")
log "gateway $GW (pid $GW_PID, idle RSS $IDLE_RSS KiB); mocks ${MOCKS[*]}"

behave() { # JSON behaviour for every mock
    for url in "${MOCKS[@]}"; do
        curl -fsS -o /dev/null -X PUT -H 'content-type: application/json' -d "$1" "$url/mock/behavior" \
            || die "PUT $url/mock/behavior $1"
    done
}
strategy() {
    curl -fsS -o /dev/null -X PUT -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d "{\"strategy\":\"$1\"}" "$GW/admin/pools/bench_pool/strategy" || die "strategy $1"
}
BODY_DIRECT='{"model":"bench","messages":[{"role":"user","content":"hello"}]}'
BODY_GW='{"model":"bench_pool","messages":[{"role":"user","content":"hello"}]}'
cat >"$TMP/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
-- One JSON line; latencies in integer microseconds; errors = status >= 400 + socket errors.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk":1,"p50_us":%d,"p99_us":%d,"max_us":%d,"rps":%.1f,"requests":%d,"errors":%d}\n',
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.max), summary.requests / (summary.duration / 1e6), summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout))
end
LUA
wrk_run() { # NAME URL BODY SECONDS CONNECTIONS
    local name="$1" url="$2" body="$3" secs="$4" c="$5" out
    out="$(BENCH_BODY="$body" wrk -t"$((c < 2 ? c : 2))" -c"$c" -d"${secs}s" --timeout 10s \
        -s "$TMP/chat.lua" "$url/v1/chat/completions" 2>&1)" || { log "$out"; die "wrk $name failed"; }
    grep -m1 '^{"wrk"' <<<"$out" >"$RES/$name.json" || { log "$out"; die "wrk $name: no result line"; }
}
mock_counts() { # chat requests each mock has served, on one line
    local url
    for url in "${MOCKS[@]}"; do
        curl -fsS "$url/mock/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chat"], end=" ")'
    done
    echo
}
pair_runs() { # C: warm-up + measured run, direct then each strategy
    local c="$1"
    [ "$WARMUP" = 0 ] || wrk_run warm "$DIRECT" "$BODY_DIRECT" "$WARMUP" "$c"
    wrk_run "plain-direct-c$c" "$DIRECT" "$BODY_DIRECT" "$DURATION" "$c"
    if [ -n "$REF" ]; then
        [ "$WARMUP" = 0 ] || wrk_run warm "$REF" "$BODY_DIRECT" "$WARMUP" "$c"
        wrk_run "plain-haproxy-c$c" "$REF" "$BODY_DIRECT" "$DURATION" "$c"
    fi
    for s in $STRATEGIES; do
        strategy "$s"
        [ "$WARMUP" = 0 ] || wrk_run warm "$GW" "$BODY_GW" "$WARMUP" "$c"
        mock_counts >"$RES/spread-$s-c$c.txt"
        wrk_run "plain-$s-c$c" "$GW" "$BODY_GW" "$DURATION" "$c"
        mock_counts >>"$RES/spread-$s-c$c.txt"
    done
}
stream_runs() {
    local c="$1"
    "$LOAD" --addr "${DIRECT#http://}" --model bench latency --concurrency "$c" \
        --duration "$DURATION" --warmup "$WARMUP" >"$RES/stream-direct-c$c.json"
    if [ -n "$REF" ]; then
        "$LOAD" --addr "${REF#http://}" --model bench latency --concurrency "$c" \
            --duration "$DURATION" --warmup "$WARMUP" >"$RES/stream-haproxy-c$c.json"
    fi
    for s in $STRATEGIES; do
        strategy "$s"
        "$LOAD" --addr "${GW#http://}" --model bench_pool latency --concurrency "$c" \
            --duration "$DURATION" --warmup "$WARMUP" >"$RES/stream-$s-c$c.json"
    done
}

# 1-3: zero-delay upstream, 16 chunks per stream, unpaced.
behave '{"stamp_chunks":true,"stream_chunks":16}'
for c in $CONCURRENCY; do
    log "non-streaming, c=$c: direct, $STRATEGIES"
    pair_runs "$c"
    log "streaming, c=$c: direct, $STRATEGIES"
    stream_runs "$c"
done
strategy round_robin

# 2b: one hop per chunk: streams paced like a model's tokens (2 ms apart), c=1, so a chunk's
# latency is its own trip, not its wait behind the burst before it.
behave '{"stamp_chunks":true,"stream_chunks":16,"tokens_per_s":500}'
log "paced streams, c=1: direct, haproxy, gateway"
"$LOAD" --addr "${DIRECT#http://}" --model bench latency --concurrency 1 \
    --duration "$DURATION" --warmup "$WARMUP" >"$RES/paced-direct.json"
if [ -n "$REF" ]; then
    "$LOAD" --addr "${REF#http://}" --model bench latency --concurrency 1 \
        --duration "$DURATION" --warmup "$WARMUP" >"$RES/paced-haproxy.json"
fi
"$LOAD" --addr "${GW#http://}" --model bench_pool latency --concurrency 1 \
    --duration "$DURATION" --warmup "$WARMUP" >"$RES/paced-gw.json"

# 4: a steady 5,000 requests/s on a 60 ms upstream. wrk is closed loop: it keeps
# OPEN_RATE x 60 ms connections busy, which makes that rate as long as latency holds; the
# report gives the rate reached.
behave '{"latency_ms":60,"stamp_chunks":true}'
OPEN_C=$(( OPEN_RATE * 60 / 1000 ))
log "under load: $OPEN_C connections on a 60 ms upstream (about $OPEN_RATE requests/s)"
[ "$WARMUP" = 0 ] || wrk_run warm "$DIRECT" "$BODY_DIRECT" "$WARMUP" "$OPEN_C"
wrk_run open-direct "$DIRECT" "$BODY_DIRECT" "$DURATION" "$OPEN_C"
[ "$WARMUP" = 0 ] || wrk_run warm "$GW" "$BODY_GW" "$WARMUP" "$OPEN_C"
wrk_run open-gw "$GW" "$BODY_GW" "$DURATION" "$OPEN_C"

# 5: streams held open at once, 64 chunks 20 ms apart.
behave '{"stream_chunks":64,"tokens_per_s":50}'
# Each stream takes two descriptors in the gateway (client and upstream side, HTTP/1.1).
FD_LIMIT=$(ulimit -n)
MAX_STREAMS=$(( (FD_LIMIT - 1000) / 2 ))
HELD=""
for n in $STREAMS; do
    if [ "$n" -gt "$MAX_STREAMS" ]; then
        log "$n streams need $((2 * n + 1000)) descriptors; the limit is $FD_LIMIT (hard limit $(ulimit -Hn)): holding $MAX_STREAMS"
        n="$MAX_STREAMS"
    fi
    HELD="$HELD $n"
    log "$n streams at once (64 chunks, 20 ms apart)"
    "$LOAD" --addr "${GW#http://}" --model bench_pool hold --streams "$n" --chunks 64 \
        --stall-ms 500 --pid "$GW_PID" --timeout-s 120 >"$RES/hold-$n.json" \
        || die "streamload hold $n failed"
done

# 6: soak: steady mixed load, RSS sampled every 5 s.
behave '{"stamp_chunks":true,"stream_chunks":16,"latency_ms":5}'
log "soak: ${SOAK_SECS} s: 16 connections of requests (5 ms upstream) plus 32 of streams"
BENCH_BODY="$BODY_GW" wrk -t1 -c16 -d"${SOAK_SECS}s" --timeout 10s -s "$TMP/chat.lua" \
    "$GW/v1/chat/completions" 2>&1 | grep -m1 '^{"wrk"' >"$RES/soak-wrk.json" &
SOAK_WRK=$!
"$LOAD" --addr "${GW#http://}" --model bench_pool latency --concurrency 32 --warmup 0 \
    --duration "$SOAK_SECS" >"$RES/soak-streams.json" &
SOAK_LOAD=$!
: >"$RES/soak-rss.txt"
for _ in $(seq $(( SOAK_SECS / 5 ))); do
    sleep 5
    printf '%s\n' "$(rss_kib "$GW_PID")" >>"$RES/soak-rss.txt"
done
wait "$SOAK_WRK" || die "soak: wrk failed"
wait "$SOAK_LOAD" || die "soak: streamload failed"

# 7: criterion.
CRIT="${CARGO_TARGET_DIR:-$ROOT/target}/criterion"
if [ "$CRITERION" = 1 ]; then
    log "criterion: select and limit (short measurement)"
    (cd "$ROOT" && cargo bench --locked --bench select --bench limit -- \
        --warm-up-time 0.3 --measurement-time 1 --noplot >"$TMP/criterion.log" 2>&1) \
        || { tail -30 "$TMP/criterion.log" >&2; die "cargo bench failed"; }
    python3 "$ROOT/bench/select-table.py" "$CRIT" >"$RES/select.md" || true
fi

# --- report -----------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
status=0
python3 "$ROOT/bench/report.py" "$RES" \
    --idle-rss "$IDLE_RSS" --duration "$DURATION" --open-rate "$OPEN_RATE" \
    --soak-secs "$SOAK_SECS" --strategies "$STRATEGIES" --concurrency "$CONCURRENCY" \
    --streams "${HELD:-}" --fd-limit "$FD_LIMIT" --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --criterion "$CRIT" --elapsed "$(($(date +%s) - STARTED))" >"$OUT" || status=$?
log "report: $OUT"
cat "$OUT"
exit "$status"
