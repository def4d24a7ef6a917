#!/usr/bin/env bash
# RSS of `annexa run` against the stand-in API server (e2e/): idle, then with 1k and 10k
# governed objects. Usage: bench/memory.sh [--no-controllers]   (binaries built beforehand:
# cargo build --release --bin annexa; cargo build -p annexa-e2e --bin annexa-standin)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ANNEXA=${ANNEXA_BIN:-$TARGET/release/annexa}
STANDIN=${STANDIN:-$TARGET/release/annexa-standin}
[ -x "$STANDIN" ] || STANDIN=$TARGET/debug/annexa-standin
EXTRA=("$@")
# ANNEXA_WRAP runs annexa under a profiler (e.g. "heaptrack -o /tmp/annexa"); RSS is then the
# wrapper's and not meaningful.
read -r -a WRAP <<<"${ANNEXA_WRAP:-}"
W=$(mktemp -d)
trap 'kill $RUN_PID $STANDIN_PID 2>/dev/null || true; wait 2>/dev/null || true' EXIT

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$1/status; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$1/status; }

"$STANDIN" --port 0 --kubeconfig "$W/kubeconfig" --ready-file "$W/ready.json" \
  --max-objects 200000 >"$W/standin.log" 2>&1 &
STANDIN_PID=$!
for _ in $(seq 100); do [ -s "$W/ready.json" ] && break; sleep 0.1; done
export KUBECONFIG=$W/kubeconfig
K="kubectl --cache-dir $W/kube-cache"
"$ANNEXA" crd | $K apply -f - >/dev/null
$K create namespace annexa-system >/dev/null
for i in $(seq 0 9); do $K create namespace "mem-$i" >/dev/null; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$W/key.pem" \
  -out "$W/cert.pem" -days 1 -subj /CN=annexa-webhook -addext subjectAltName=DNS:localhost 2>/dev/null
python3 "$ROOT/bench/objects.py" 1000 "$W/1k"
python3 "$ROOT/bench/objects.py" 10000 "$W/10k"

"${WRAP[@]}" "$ANNEXA" run --webhook-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  --tls-cert-file "$W/cert.pem" --tls-key-file "$W/key.pem" --namespace annexa-system \
  "${EXTRA[@]}" >"$W/annexa.log" 2>&1 &
RUN_PID=$!
sleep 15
echo "mode: ${EXTRA[*]:-controllers}"
echo "idle: rss $(rss $RUN_PID) MiB (peak $(hwm $RUN_PID) MiB)"

load() { # $1 = dir of YAML files
  for f in "$1"/*.yaml; do $K create -f "$f" >/dev/null; done
}
# Waits until every governed object carries a status for its generation (the controllers have
# reconciled it; without controllers, returns at once). Prints how many are reconciled.
settle() { # $1 = expected objects
  [ "${EXTRA[*]:-}" = "--no-controllers" ] && return 0
  local done=0
  for _ in $(seq 360); do
    done=$($K get trainingdatasets,modeldeployments,agentpolicies -A \
      -o jsonpath='{range .items[*]}{.status.observedGeneration}{"\n"}{end}' 2>/dev/null | grep -c . || true)
    [ "$done" -ge "$1" ] && break
    sleep 5
  done
  echo "  reconciled: $done of $1"
}
t0=$(date +%s); load "$W/1k"; t1=$(date +%s); settle 1000; t2=$(date +%s)
sleep 10
echo "1k objects (created in $((t1 - t0)) s, all reconciled after $((t2 - t0)) s): rss $(rss $RUN_PID) MiB (peak $(hwm $RUN_PID) MiB)"
# 9k more, with new names: the 10k set starts at index 0, so skip the first 1000 (same names).
for f in "$W"/10k/objects-00{0,1}.yaml; do rm "$f"; done
t0=$(date +%s); load "$W/10k"; t1=$(date +%s); settle 10000; t2=$(date +%s)
sleep 10
echo "10k objects (9k more created in $((t1 - t0)) s, all reconciled after $((t2 - t0)) s): rss $(rss $RUN_PID) MiB (peak $(hwm $RUN_PID) MiB)"
echo "stand-in objects: $($K get trainingdatasets,modeldeployments,agentpolicies -A --no-headers 2>/dev/null | wc -l)"
METRICS=$(sed 's/\x1b\[[0-9;]*m//g' "$W/annexa.log" | sed -n 's/.*serving metrics over HTTP addr=\([0-9.:]*\).*/\1/p' | head -1)
echo "reconciles: $(curl -s "http://$METRICS/metrics" | awk '/^annexa_reconciles_total/ {printf "%s ", $0}')"
echo "annexa log warn+error lines: $(grep -ciE "error|warn" "$W/annexa.log" || true)"
cp "$W/annexa.log" "/tmp/annexa-run-${EXTRA[*]:-controllers}.log" 2>/dev/null || true
