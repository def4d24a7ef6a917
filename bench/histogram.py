#!/usr/bin/env python3
"""Quantiles of the webhook's server-side latency histograms between two /metrics scrapes.

Usage: histogram.py BEFORE AFTER

Prints, for `annexa_admission_duration_seconds` (first body byte to encoded answer) and
`annexa_admission_decision_seconds` (decode and decide only), the number of reviews observed
between the two scrapes and the upper bound of the bucket holding p50, p99 and p99.9. A bucket
bound is all a histogram can tell: the true quantile lies at or below it, above the bound before.
"""

import re
import sys

LINE = re.compile(r'^(annexa_admission_(?:duration|decision)_seconds)_bucket\{(.*)\} (\S+)$')
LE = re.compile(r'le="([^"]+)"')


def buckets(path):
    """{metric: {le: cumulative count}} summed over every label set but `le`."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            le = LE.search(m.group(2))
            if not le:
                continue
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            series = out.setdefault(m.group(1), {})
            series[bound] = series.get(bound, 0) + float(m.group(3))
    return out


def quantile(series, q):
    total = series[float("inf")]
    for bound in sorted(series):
        if series[bound] >= q * total:
            return bound
    return float("inf")


def show(bound):
    if bound == float("inf"):
        return "over the last bucket"
    return f"<= {bound * 1000:.3g} ms"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: histogram.py BEFORE AFTER")
    before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
    parts = []
    for metric, label in (
        ("annexa_admission_duration_seconds", "answer"),
        ("annexa_admission_decision_seconds", "decision"),
    ):
        if metric not in after:
            parts.append(f"{label}: no histogram in /metrics")
            continue
        old = before.get(metric, {})
        delta = {b: n - old.get(b, 0) for b, n in after[metric].items()}
        if delta.get(float("inf"), 0) <= 0:
            parts.append(f"{label}: no reviews observed")
            continue
        parts.append(
            f"{label} ({int(delta[float('inf')])} reviews): p50 {show(quantile(delta, 0.5))}, "
            f"p99 {show(quantile(delta, 0.99))}, p99.9 {show(quantile(delta, 0.999))}"
        )
    print("; ".join(parts))


if __name__ == "__main__":
    main()
