#!/usr/bin/env bash
# Hostile input and load against a release build of the stand-alone HTTPS webhook, all on
# 127.0.0.1, bounded in count (at most 1,500 connections) and time (DURATION s per attack,
# about 2 minutes in all). Per attack it prints whether health stayed answered within 100 ms
# p99, RSS stayed under the chart's memory limit, no request was answered past the 4 s
# deadline, and legitimate reviews kept succeeding (bench/abuse.py has the attacks).
# Needs: python3, openssl; the server runs with a 1024 open-file limit, as in a container.
# Usage: bench/abuse.sh [ATTACK NUMBER...]   (cargo build --release --bin annexa first)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANNEXA=${ANNEXA_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/annexa}
export PORT=${PORT:-18443} DURATION=${DURATION:-10} LIMIT_MIB=${LIMIT_MIB:-256}
W=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$W/key.pem" \
  -out "$W/cert.pem" -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
# The server on core 0 when there are two or more, the attacker on the others.
PIN_SERVER=() PIN_CLIENT=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c 0) PIN_CLIENT=(taskset -c 1-$(($(nproc) - 1)))
fi
(ulimit -n 1024; RUST_LOG=warn exec "${PIN_SERVER[@]}" "$ANNEXA" webhook --addr 127.0.0.1:$PORT \
  --tls-cert-file "$W/cert.pem" --tls-key-file "$W/key.pem" \
  --metrics-addr 127.0.0.1:$((PORT + 1)) \
  --context "$ROOT/benches/fixtures/context.yaml" ${ANNEXA_FLAGS:-}) >"$W/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do
  curl -sk -o /dev/null https://127.0.0.1:$PORT/healthz && break
  sleep 0.1
done
echo "# bench/abuse.sh $(date -u +%FT%TZ), $(nproc) cores, load $(uptime | sed 's/.*load average: //')"
echo "# server: $ANNEXA (pid $SERVER), ${DURATION}s per attack, chart limit ${LIMIT_MIB} MiB"
SERVER_PID=$SERVER "${PIN_CLIENT[@]}" python3 "$ROOT/bench/abuse.py" "$@"
curl -sk -o /dev/null https://127.0.0.1:$PORT/healthz && echo "# server still answering"
echo "# server metrics after the attacks (sheds, connections, decision time by kind):"
curl -s http://127.0.0.1:$((PORT + 1))/metrics |
  grep -E '^annexa_(webhook_shed_total|webhook_connections_open|admission_decision_seconds_(sum|count)|admission_reviews_total)' || true
