#!/usr/bin/env bash
# Load run of the stand-alone HTTPS webhook with the 9.5 KB GPU-pod review: server pinned to
# core 0, load generator to core 1, keep-alive. First the highest sustained rate (wrk, closed
# loop, several connection counts), then fixed rates at 25/50/75% of it (oha -q, open loop).
# Needs: wrk (apt-get install wrk), oha (cargo install oha), openssl, 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANNEXA=${CARGO_TARGET_DIR:-$ROOT/target}/release/annexa
BODY=$ROOT/benches/fixtures/gpu-pod-review.json
DURATION=${DURATION:-20}
PORT=${PORT:-18443}
METRICS_PORT=${METRICS_PORT:-18444}
URL=https://127.0.0.1:$PORT/validate
METRICS=http://127.0.0.1:$METRICS_PORT/metrics
W=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$W/key.pem" \
  -out "$W/cert.pem" -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
RUST_LOG=warn taskset -c 0 "$ANNEXA" webhook --addr 127.0.0.1:$PORT \
  --tls-cert-file "$W/cert.pem" --tls-key-file "$W/key.pem" \
  --metrics-addr 127.0.0.1:$METRICS_PORT \
  --context "$ROOT/benches/fixtures/context.yaml" >"$W/server.log" 2>&1 &
SERVER=$!
sleep 1
# The review is admitted (allowed: true), not rejected as malformed.
curl -sk --data-binary @"$BODY" -H 'Content-Type: application/json' "$URL" | grep -q '"allowed":true'
echo "machine: $(nproc) cores, load $(uptime | sed 's/.*load average: //')"
best=0
for c in 4 16 64; do
  out=$(BODY=$BODY taskset -c 1 wrk -t1 -c$c -d${DURATION}s --latency -s "$ROOT/bench/post.lua" "$URL")
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
  echo "max (wrk -c$c, ${DURATION}s): $rps reviews/s; $(echo "$out" | awk '/ 50%| 99%/ {printf "%s %s  ", $1, $2}') non-2xx: $(echo "$out" | awk '/Non-2xx/ {print $NF}')"
  [ "$rps" -gt "$best" ] && best=$rps
done
echo "highest sustained: $best reviews/s (load $(uptime | sed 's/.*load average: //'))"
# The server's own share of each fixed-rate run: quantiles of the server-side histograms
# (first body byte to encoded answer; decode + decide alone) over the run, from /metrics
# before and after. Buckets are powers of two from 25 us, so a quantile is a bucket bound.
server_share() {
  python3 "$ROOT/bench/histogram.py" "$W/metrics.before" "$W/metrics.after"
}
for pct in 25 50 75; do
  rate=$((best * pct / 100))
  curl -s "$METRICS" >"$W/metrics.before"
  out=$(taskset -c 1 oha --no-tui --insecure -z ${DURATION}s -q "$rate" -c 32 -m POST \
    -H 'Content-Type: application/json' -D "$BODY" --latency-correction "$URL")
  curl -s "$METRICS" >"$W/metrics.after"
  echo "$pct% = $rate/s: $(echo "$out" | awk '/Requests\/sec/ {printf "achieved %s/s  ", $2} /  50.00%|  99.00%|  99.90%/ {printf "p%s %s %s  ", $1, $3, $4}') status: $(echo "$out" | awk '/\[200\]/ {print $1, $2, $3}') (load $(uptime | sed 's/.*load average: //'))"
  echo "  server side: $(server_share)"
done
