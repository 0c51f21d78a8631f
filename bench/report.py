#!/usr/bin/env python3
"""Writes bench/run.sh's Markdown report (stdout) from the JSON files of one run.

Usage: report.py RESULTS_DIR --idle-rss KIB ... (bench/run.sh passes everything). Reads
wrk's JSON line (`plain-*.json`, `open-*.json`, `soak-wrk.json`), streamload's JSON
(`stream-*.json`, `hold-*.json`, `soak-streams.json`), `soak-rss.txt` (KiB, one sample per
5 s) and criterion's estimates. Exits 3 if a run that must be clean had errors.
"""
import argparse
import glob
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

p = argparse.ArgumentParser()
p.add_argument("results")
p.add_argument("--idle-rss", type=int, required=True)
p.add_argument("--duration", required=True)
p.add_argument("--open-rate", type=int, required=True)
p.add_argument("--soak-secs", type=int, required=True)
p.add_argument("--strategies", required=True)
p.add_argument("--concurrency", required=True)
p.add_argument("--streams", required=True)
p.add_argument("--commit", default="unknown")
p.add_argument("--fd-limit", type=int, default=0)
p.add_argument("--elapsed", type=int, default=0)
p.add_argument("--criterion", default="target/criterion")
a = p.parse_args()
R = a.results
STRATEGIES = a.strategies.split()
CONCS = [int(c) for c in a.concurrency.replace(",", " ").split()]
STREAMS = [int(n) for n in a.streams.split()]
dirty = []


def load(name):
    path = os.path.join(R, name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run(name):
    """{p50, p99 (µs), rps, errors, requests} of a wrk run (run.sh's Lua `done` line)."""
    d = load(name)
    if d is None:
        return None
    return {"p50": d["p50_us"], "p99": d["p99_us"], "rps": d["rps"], "errors": d["errors"],
            "requests": d["requests"]}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    virt = sh("systemd-detect-virt 2>/dev/null") or "unknown"
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Linux {platform.release()}, "
            f"virtualisation: {virt}; {sh('rustc --version')}; {sh('wrk -v 2>&1 | head -1')}")


def fmt_us(v):
    return "-" if v is None else f"{v:,.0f}"


def verdict(ok, miss=""):
    return "PASS" if ok else f"**FAIL**{': ' + miss if miss else ''}"


targets = []  # (figure, target, measured, verdict)
out = []
w = out.append
now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
w(f"# switchyard performance report, {now}\n")
w(f"- commit `{a.commit}`; `bench/run.sh` took {a.elapsed // 60} min {a.elapsed % 60} s")
w(f"- machine: {machine()}")
w("- everything on this one machine: load generator, four mock upstreams and the gateway "
  "share its cores; added = gateway minus direct to the same mock, in the same run")
w(f"- {a.duration} s per measured run after a warm-up; the gateway runs with metrics on "
  "and a JSON access log line per request (`[global.logging]` info/json)\n")
HEADER = len(out)

# --- non-streaming --------------------------------------------------------------------
w("## Added latency, non-streaming (wrk, closed loop, zero-delay upstream, pool of 4)\n")
# HAProxy (HTTP mode, 2 threads) in front of the same mock, when run.sh ran it (REFERENCE).
HAVE_REF = any(run(f"plain-haproxy-c{c}") for c in CONCS)
if HAVE_REF:
    w("HAProxy: a mature C proxy in front of the same mock, in the same run: what one proxy "
      "hop costs on this machine.\n")
head = "| c | direct p50 / p99 µs | direct rps |" + (
    " HAProxy +p50 / +p99 µs | HAProxy rps |" if HAVE_REF else "") + "".join(
    f" {s} +p50 / +p99 µs | {s} rps |" for s in STRATEGIES)
w(head)
w("|---:|---:|---:|" + "---:|---:|" * (len(STRATEGIES) + HAVE_REF))
best = {"direct": 0.0, "gw": 0.0, "ref": 0.0}
ref_c1 = ""
served = {"requests": 0, "errors": 0}
for c in CONCS:
    d = run(f"plain-direct-c{c}")
    if d is None:
        continue
    best["direct"] = max(best["direct"], d["rps"])
    row = f"| {c} | {fmt_us(d['p50'])} / {fmt_us(d['p99'])} | {d['rps']:,.0f} |"
    if d["errors"]:
        dirty.append(f"plain-direct-c{c}: {d['errors']} errors")
    if HAVE_REF:
        h = run(f"plain-haproxy-c{c}")
        if h is None:
            row += " - | - |"
        else:
            if h["errors"]:
                dirty.append(f"plain-haproxy-c{c}: {h['errors']} errors of {h['requests']}")
            best["ref"] = max(best["ref"], h["rps"])
            row += f" {h['p50'] - d['p50']:+,.0f} / {h['p99'] - d['p99']:+,.0f} | {h['rps']:,.0f} |"
            if c == 1:
                ref_c1 = f" (HAProxy: {h['p50'] - d['p50']:+,.0f} / {h['p99'] - d['p99']:+,.0f} µs)"
    for s in STRATEGIES:
        g = run(f"plain-{s}-c{c}")
        if g is None:
            row += " - | - |"
            continue
        if g["errors"]:
            dirty.append(f"plain-{s}-c{c}: {g['errors']} errors of {g['requests']}")
        best["gw"] = max(best["gw"], g["rps"])
        served["requests"] += g["requests"]
        served["errors"] += g["errors"]
        row += f" {g['p50'] - d['p50']:+,.0f} / {g['p99'] - d['p99']:+,.0f} | {g['rps']:,.0f} |"
        if c == 1:
            a50, a99 = g["p50"] - d["p50"], g["p99"] - d["p99"]
            miss = []
            if a50 > 40:
                miss.append(f"p50 {a50 - 40:.0f} µs over")
            if a99 > 100:
                miss.append(f"p99 {a99 - 100:.0f} µs over")
            targets.append((f"added latency, non-streaming, c=1, {s}",
                            "p50 ≤ 40 µs, p99 ≤ 100 µs", f"{a50:+.0f} / {a99:+.0f} µs{ref_c1}",
                            verdict(not miss, ", ".join(miss))))
    w(row)
w("")
if served["requests"]:
    ok_share = 1 - served["errors"] / served["requests"]
    targets.append(("requests served through the gateway (seed 000: ≥ 95 %)", "≥ 95 %",
                    f"{ok_share:.3%} of {served['requests']:,}", verdict(ok_share >= 0.95)))
if best["direct"]:
    ratio = best["gw"] / best["direct"]
    ref = ""
    if best["ref"]:
        ref = f" (HAProxy: {best['ref']:,.0f} rps = {best['ref'] / best['direct']:.0%})"
    w(f"Throughput: best gateway {best['gw']:,.0f} rps vs best direct {best['direct']:,.0f} rps "
      f"= {ratio:.0%}{ref}. The gateway's CPU comes out of the same two cores as the load "
      "generator's and the mock's.\n")
    targets.append(("throughput through switchyard, zero-delay upstream", "≥ 60 % of direct",
                    f"{ratio:.0%}{ref}", verdict(ratio >= 0.6, f"{(0.6 - ratio) * 100:.0f} points short")))

# --- spread over the pool -------------------------------------------------------------
w("### How each strategy spread the measured requests over the four mocks\n")
w("Counted at the mocks (`GET /mock/stats`) around each measured run. Deviation: the largest "
  "distance of one mock's share from an even 25 %, relative to it.\n")
w("| strategy | c | requests per mock | largest deviation from even |")
w("|---|---:|---|---:|")
for s in STRATEGIES:
    for c in CONCS:
        try:
            with open(os.path.join(R, f"spread-{s}-c{c}.txt")) as f:
                before, after = [list(map(int, line.split())) for line in f.read().splitlines()[:2]]
        except (OSError, ValueError):
            continue
        got = [y - x for x, y in zip(before, after)]
        total = sum(got)
        if not total:
            continue
        dev = max(abs(g - total / len(got)) for g in got) / (total / len(got))
        w(f"| {s} | {c} | {' / '.join(f'{g:,}' for g in got)} | {dev:.1%} |")
        if s == "round_robin" and c == max(CONCS):
            targets.append((f"distribution, round_robin, c={c} (seed 000: variance < 10 %)",
                            "< 10 % from even", f"{dev:.1%}", verdict(dev < 0.1)))
w("")

# --- streaming ------------------------------------------------------------------------
w("## Added latency, streaming (streamload: 16 chunks per stream, unpaced)\n")
w("Time to first chunk: request sent to first content chunk read. Per chunk: the mock's "
  "write (its `sent_us` stamp) to the client's read.\n")
# (column, file prefix): HAProxy's streams first when run.sh ran it.
SCOLS = [("HAProxy", "haproxy")] * any(load(f"stream-haproxy-c{c}") for c in CONCS)
SCOLS += [(s, s) for s in STRATEGIES]
w("| c | direct TTFC p50 / p99 µs | direct chunk p50 / p99 µs |" + "".join(
    f" {s} +TTFC p50 / p99 | {s} +chunk p50 / p99 |" for s, _ in SCOLS))
w("|---:|---:|---:|" + "---:|---:|" * len(SCOLS))
ref_s1 = ""
for c in CONCS:
    d = load(f"stream-direct-c{c}")
    if d is None:
        continue
    if d["errors"]:
        dirty.append(f"stream-direct-c{c}: {d['errors']} errors")
    row = (f"| {c} | {d['ttfc_us']['p50']:,} / {d['ttfc_us']['p99']:,} | "
           f"{d['chunk_us']['p50']:,} / {d['chunk_us']['p99']:,} |")
    for s, f in SCOLS:
        g = load(f"stream-{f}-c{c}")
        if g is None:
            row += " - | - |"
            continue
        if g["errors"]:
            dirty.append(f"stream-{f}-c{c}: {g['errors']} errors")
        t50 = g["ttfc_us"]["p50"] - d["ttfc_us"]["p50"]
        t99 = g["ttfc_us"]["p99"] - d["ttfc_us"]["p99"]
        c50 = g["chunk_us"]["p50"] - d["chunk_us"]["p50"]
        c99 = g["chunk_us"]["p99"] - d["chunk_us"]["p99"]
        row += f" {t50:+,} / {t99:+,} | {c50:+,} / {c99:+,} |"
        if c == 1 and f == "haproxy":
            ref_s1 = f" (HAProxy: {t99:+} / {c99:+} µs)"
        elif c == 1:
            miss = []
            if t99 > 200:
                miss.append(f"TTFC {t99 - 200} µs over")
            if c99 > 5:
                miss.append(f"chunk {c99 - 5} µs over")
            targets.append((f"streaming, c=1, {s}: added TTFC p99 / per-chunk p99",
                            "≤ 200 µs / ≤ 5 µs", f"{t99:+} / {c99:+} µs{ref_s1}",
                            verdict(not miss, ", ".join(miss))))
    w(row)
w("")

pd, ph, pg = load("paced-direct"), load("paced-haproxy"), load("paced-gw")
if pd and pg:
    w("### One hop per chunk: streams paced 2 ms apart, c=1\n")
    w("The mock writes each of 16 chunks 2 ms after the last, so a chunk never waits behind "
      "another: its latency is one trip (for a proxy, two hops and a wake-up more).\n")
    w("| | chunk p50 / p99 µs | added p50 / p99 µs | streams |")
    w("|---|---:|---:|---:|")
    w(f"| direct | {pd['chunk_us']['p50']:,} / {pd['chunk_us']['p99']:,} | | {pd['streams']:,} |")
    for name, r in (("HAProxy", ph), ("gateway, round_robin", pg)):
        if r is None:
            continue
        if r["errors"]:
            dirty.append(f"paced {name}: {r['errors']} errors")
        a50 = r["chunk_us"]["p50"] - pd["chunk_us"]["p50"]
        a99 = r["chunk_us"]["p99"] - pd["chunk_us"]["p99"]
        w(f"| {name} | {r['chunk_us']['p50']:,} / {r['chunk_us']['p99']:,} | "
          f"{a50:+,} / {a99:+,} | {r['streams']:,} |")
        if r is pg:
            ref = ""
            if ph:
                ref = (f" (HAProxy: {ph['chunk_us']['p50'] - pd['chunk_us']['p50']:+,} / "
                       f"{ph['chunk_us']['p99'] - pd['chunk_us']['p99']:+,} µs)")
            targets.append(("streaming, paced 2 ms apart, c=1: added per-chunk p50 / p99",
                            "≤ 5 µs (p99)", f"{a50:+,} / {a99:+,} µs{ref}",
                            verdict(a99 <= 5, f"{a99 - 5:,} µs over")))
    w("")

# --- open loop ------------------------------------------------------------------------
w(f"## Under load: about {a.open_rate:,} requests/s on a 60 ms upstream (wrk, "
  f"{a.open_rate * 60 // 1000} connections, closed loop)\n")
od, og = run("open-direct"), run("open-gw")
if od and og:
    w("| | p50 µs | p99 µs | achieved rps | errors |")
    w("|---|---:|---:|---:|---:|")
    for name, r in (("direct", od), ("gateway", og)):
        w(f"| {name} | {fmt_us(r['p50'])} | {fmt_us(r['p99'])} | {r['rps']:,.0f} | {r['errors']} |")
    added = og["p99"] - od["p99"]
    w(f"\nAdded p99: {added:,.0f} µs.\n")
    ok = added <= 1000 and og["errors"] == 0
    miss = []
    if added > 1000:
        miss.append(f"{added - 1000:,.0f} µs over")
    if og["errors"]:
        miss.append(f"{og['errors']} errors")
    targets.append((f"added p99 under load, 60 ms upstream, {a.open_rate:,} requests/s",
                    "≤ 1 ms, zero errors", f"{added:+,.0f} µs, {og['errors']} errors",
                    verdict(ok, ", ".join(miss))))

# --- held streams ---------------------------------------------------------------------
w("## Streams open at once (64 chunks, 20 ms apart; a stall is a gap over 500 ms)\n")
if a.fd_limit:
    w(f"Open-files limit {a.fd_limit:,}: with two descriptors per stream in the gateway, "
      f"at most {(a.fd_limit - 1000) // 2:,} streams are held (run.sh caps larger counts).\n")
w("| streams | complete | lost chunks | stalls | worst gap p50 / p99 / max ms | most open at once "
  "| gateway peak RSS MiB | per 1,000 streams MiB |")
w("|---:|---:|---:|---:|---:|---:|---:|---:|")
clean_max, per_k = 0, []
for n in STREAMS:
    h = load(f"hold-{n}")
    if h is None:
        continue
    g = h["max_gap_ms"]
    grow = max(h["rss_peak_kib"] - a.idle_rss, 0) / 1024
    per = grow / n * 1000
    per_k.append((n, per))
    if h["complete"] == n and h["stalls"] == 0:
        clean_max = max(clean_max, n)
    w(f"| {n:,} | {h['complete']:,} | {h['lost_chunks']:,} | {h['stalls']:,} | "
      f"{g['p50']} / {g['p99']} / {g['max']} | {h['max_open']:,} | "
      f"{h['rss_peak_kib'] / 1024:.1f} | {per:.1f} |")
    if h.get("first_error"):
        w(f"\n{n:,} streams, first error: `{h['first_error'][:200]}`\n")
w("")
if STREAMS:
    targets.append(("concurrent streams (64 chunks, 20 ms apart) without a stall or lost chunk",
                    "≥ 5,000", f"{clean_max:,}",
                    verdict(clean_max >= 5000, f"{5000 - clean_max:,} short")))

# --- memory ---------------------------------------------------------------------------
w("## Memory\n")
idle = a.idle_rss / 1024
w(f"- idle RSS (after start-up, before any request): {idle:.1f} MiB")
targets.append(("idle RSS", "≤ 20 MiB", f"{idle:.1f} MiB", verdict(idle <= 20, f"{idle - 20:.1f} MiB over")))
if per_k:
    worst = max(per for _, per in per_k)
    targets.append(("RSS per 1,000 open streams", "≤ 48 MiB", f"{worst:.1f} MiB (worst of "
                    + ", ".join(f"{n:,}" for n, _ in per_k) + ")",
                    verdict(worst <= 48, f"{worst - 48:.1f} MiB over")))
try:
    with open(os.path.join(R, "soak-rss.txt")) as f:
        rss = [int(x) / 1024 for x in f.read().split()]
except (OSError, ValueError):
    rss = []
if len(rss) >= 3:
    third = max(len(rss) // 3, 1)
    early, late = max(rss[:third]), max(rss[-third:])
    growth = late - early
    flat = growth <= max(2.0, early * 0.05)
    so, ss = run("soak-wrk"), load("soak-streams")
    if so and so["errors"]:
        dirty.append(f"soak: {so['errors']} errors")
    load_desc = ""
    if so and ss:
        load_desc = (f" ({so['requests']:,} requests at {so['rps']:,.0f}/s and "
                     f"{ss['streams']:,} streams, {ss['errors']} stream errors)")
    w(f"- soak, {a.soak_secs} s{load_desc}: RSS every 5 s, MiB: "
      + " ".join(f"{x:.1f}" for x in rss))
    w(f"- largest in the first third {early:.1f} MiB, in the last third {late:.1f} MiB: "
      f"{growth:+.1f} MiB")
    targets.append((f"RSS over a {a.soak_secs} s soak", "flat (10-minute soak: SOAK_SECS=600)",
                    f"{growth:+.1f} MiB", verdict(flat, f"grew {growth:.1f} MiB")))
w("")

# --- criterion ------------------------------------------------------------------------
sel = os.path.join(R, "select.md")
if os.path.exists(sel):
    w("## Strategy selection (criterion, `cargo bench --bench select`, short measurement)\n")
    with open(sel) as f:
        w(f.read())
lim = sorted(glob.glob(os.path.join(a.criterion, "admit", "*", "new", "estimates.json")))
if lim:
    w("## Limiter admission (criterion, `cargo bench --bench limit`)\n")
    w("| benchmark | mean |")
    w("|---|---:|")
    for path in lim:
        name = path.split(os.sep)[-3]
        with open(path) as f:
            ns = json.load(f)["mean"]["point_estimate"]
        w(f"| admit/{name} | {ns:.0f} ns |")
    w("")

# --- targets first --------------------------------------------------------------------
summary = ["## Targets\n", "| figure | target | measured | verdict |", "|---|---|---|---|"]
summary += [f"| {f} | {t} | {m} | {v} |" for f, t, m, v in targets]
summary.append("")
if dirty:
    summary.append("**Runs with errors (their figures do not count):** " + "; ".join(dirty) + "\n")
print("\n".join(out[:HEADER] + summary + out[HEADER:]))
sys.exit(3 if dirty else 0)
