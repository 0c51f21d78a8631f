#!/usr/bin/env python3
"""Prints the results table of `cargo bench --bench select` from target/criterion.

Run after the bench: `python3 bench/select-table.py` (from the repo root, or pass the
criterion directory). Point estimates (criterion's mean); verdicts against the issue's
targets: 64 members ≤ 50 ns (score, cost ≤ 500 ns), 10,000 members ≤ 50 µs, contended ≤ 2×.
"""
import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
STRATEGIES = ["round_robin", "weighted", "least_connections", "random", "p2c", "latency",
              "score", "cost"]


def ns(group, strategy, n):
    path = os.path.join(ROOT, group, strategy, str(n), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def show(v):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v / 1000:.1f} µs"
    return f"{v:.1f} ns"


print("| strategy | n=3 | n=64 | n=10,000 | filtered 64 | contended 64 (× single) "
      "| 64 target | 10k ≤ 50 µs | contended ≤ 2× |")
print("|---|---:|---:|---:|---:|---:|---|---|---|")
failed = False
for s in STRATEGIES:
    v3, v64, v10k = (ns("select", s, n) for n in (3, 64, 10000))
    filtered, contended = ns("select_filtered", s, 64), ns("select_contended", s, 64)
    limit = 500 if s in ("score", "cost") else 50
    ratio = contended / v64 if contended and v64 else None

    def verdict(ok):
        global failed
        if ok is None:
            return "-"
        failed |= not ok
        return "PASS" if ok else "FAIL"

    t64 = verdict(None if v64 is None else v64 <= limit)
    t10k = verdict(None if v10k is None else v10k <= 50_000)
    tc = verdict(None if ratio is None else ratio <= 2.0)
    r = f" ({ratio:.1f}×)" if ratio else ""
    print(f"| {s} | {show(v3)} | {show(v64)} | {show(v10k)} | {show(filtered)} | "
          f"{show(contended)}{r} | {t64} (≤ {limit} ns) | {t10k} | {tc} |")
sys.exit(1 if failed else 0)
