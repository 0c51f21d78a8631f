# Shared by the bench scripts (sourced, after `set -euo pipefail` and with SCRIPT set to the
# script's name for messages): tools, the binary, child processes and their cleanup.
#
#   need_tools TOOL...         install what is missing from Debian (apt-get, sudo if not root)
#   switchyard_bin [ARG...]    BIN = $SWITCHYARD_BIN, or `cargo build --release --locked ARG...`
#   bench_tmp PREFIX           TMP (a new directory) and PIDS; on exit every child is stopped
#                              (TERM, then KILL after 5 s) and TMP removed (kept if KEEP=1)
#   spawn NAME CMD...          CMD in the background, stdout/stderr in $TMP/NAME.out/.err;
#                              PID is the command itself (so the cleanup's kill reaches it)
#   wait_line NAME PATTERN     print the first stdout line of NAME matching PATTERN (WAIT_SECS,
#                              default 30 s)
#   listening NAME             spawn's child printed "... listening on http://HOST:PORT...":
#                              URL = http://HOST:PORT
#   wait_http NAME URL         until GET URL answers 2xx (10 s)
#   show_logs NAME             NAME's stdout and the end of its stderr, on stderr
#   free_port                  a port on 127.0.0.1 that was free a moment ago
#   start_haproxy NAME HOST:PORT THREADS
#                              HAProxy (HTTP mode, keep-alive both sides) in front of HOST:PORT,
#                              the reference proxy: PID, URL = http://127.0.0.1:ITS_PORT

log() { printf '%s\n' "$*" >&2; }
die() { log "$SCRIPT: error: $*"; exit 2; }

need_tools() {
    local missing=() tool sudo=()
    for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log "installing ${missing[*]} from Debian ..."
    command -v apt-get >/dev/null 2>&1 || die "need ${missing[*]} and apt-get is not available; install them by hand"
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need ${missing[*]}: not root and no sudo"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    for tool in "${missing[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after apt-get install"
    done
}

switchyard_bin() {
    if [ -n "${SWITCHYARD_BIN:-}" ]; then
        BIN="$SWITCHYARD_BIN"
        log "using SWITCHYARD_BIN=$BIN (no build)"
    else
        if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
            PATH="$HOME/.cargo/bin:$PATH"
        fi
        command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or set SWITCHYARD_BIN)"
        log "cargo build --release $* ..."
        (cd "$ROOT" && cargo build --release --locked "$@" >&2)
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
    fi
    [[ "$BIN" = /* ]] || BIN="$PWD/$BIN"
    [ -x "$BIN" ] || die "switchyard binary not found or not executable: $BIN"
}

bench_tmp() {
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
bench_cleanup() {
    local pid tries
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        tries=50
        while kill -0 "$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then log "$SCRIPT: kept $TMP"; else rm -rf "$TMP"; fi
}

spawn() {
    local name="$1"; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PIDS+=("$PID")
    eval "PID_$name=$PID"
}

show_logs() {
    log "---- $1 stdout ----"; cat "$TMP/$1.out" >&2 || true
    log "---- $1 stderr (last 40 lines) ----"; tail -n 40 "$TMP/$1.err" >&2 || true
}

wait_line() {
    local name="$1" pattern="$2" tries=$((${WAIT_SECS:-30} * 10)) line pid
    pid="$(eval "echo \$PID_$name")"
    while [ "$tries" -gt 0 ]; do
        line="$(grep -m1 -E "$pattern" "$TMP/$name.out" 2>/dev/null || true)"
        if [ -n "$line" ]; then printf '%s\n' "$line"; return 0; fi
        kill -0 "$pid" 2>/dev/null || { show_logs "$name"; die "$name exited before printing '$pattern'"; }
        sleep 0.1; tries=$((tries - 1))
    done
    show_logs "$name"; die "$name printed no line matching '$pattern' within ${WAIT_SECS:-30} s"
}

listening() {
    local line
    line="$(wait_line "$1" 'listening on http://')"
    URL="$(grep -oE 'http://[0-9.:]+' <<<"$line" | head -1)"
    [[ "$URL" =~ ^http://[0-9.]+:[0-9]+$ ]] || die "cannot parse $1's address from: $line"
}

wait_http() {
    local name="$1" url="$2" tries=100 pid
    pid="$(eval "echo \$PID_$name")"
    while [ "$tries" -gt 0 ]; do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { show_logs "$name"; die "$name exited while waiting for $url"; }
        sleep 0.1; tries=$((tries - 1))
    done
    show_logs "$name"; die "$name: $url not ready after 100 tries"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_haproxy() {
    local name="$1" backend="$2" threads="$3" attempt port tries
    # HAProxy cannot listen on :0 and report the port: pick a free one and, if another
    # process grabs it in between, try again.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)" || die "could not pick a free port with python3"
        cat >"$TMP/$name.cfg" <<EOF
global
    nbthread $threads
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    option http-no-delay
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 30s

frontend bench
    bind 127.0.0.1:$port
    default_backend upstream

backend upstream
    server upstream $backend
EOF
        haproxy -c -q -f "$TMP/$name.cfg" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
            { show_logs "$name"; die "haproxy rejected the generated config $TMP/$name.cfg"; }
        # -db: stay in the foreground, single process.
        spawn "$name" haproxy -db -f "$TMP/$name.cfg"
        URL="http://127.0.0.1:$port"
        tries=100 # ~10 s; GET /v1/models goes through haproxy to the upstream
        while [ "$tries" -gt 0 ] && kill -0 "$PID" 2>/dev/null; do
            curl -fsS -o /dev/null --max-time 1 "$URL/v1/models" 2>/dev/null && return 0
            sleep 0.1; tries=$((tries - 1))
        done
        if ! kill -0 "$PID" 2>/dev/null && grep -qiE 'cannot bind|address already in use' "$TMP/$name.err"; then
            log "haproxy could not bind 127.0.0.1:$port; trying another port (attempt $attempt)"
            continue
        fi
        show_logs "$name"
        die "haproxy: $URL/v1/models not ready"
    done
    die "haproxy found no free port in 5 attempts"
}
