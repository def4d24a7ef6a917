#!/usr/bin/env bash
# Reruns every measurement of BENCHMARKS.md. Needs 2 cores, wrk, oha, openssl, kubectl, python3
# with PyYAML. Output: bench/results/<date>/*.txt. Quiet the machine first: the numbers are
# only as good as the load next to them (each file records `uptime`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/bench/results/$(date -u +%Y-%m-%dT%H%M)
mkdir -p "$OUT"
machine() { echo "# $(date -u +%FT%TZ) nproc=$(nproc) $(lscpu | sed -n 's/^Model name: *//p') RAM=$(free -g | awk '/Mem:/ {print $2}')G load: $(uptime | sed 's/.*load average: //')"; }

python3 bench/fixtures.py
cargo build --release --bin annexa
cargo build -p annexa-e2e --bin annexa-standin
cargo test --release --manifest-path bench/peers/Cargo.toml   # same verdicts in every engine

# 1. decision vs floor (main crate), then Annexa vs regorus vs cel (bench/peers).
{ machine; cargo bench --bench admission -- --warm-up-time 1 --measurement-time 3; machine; } 2>&1 | tee "$OUT/admission.txt"
{ machine; cargo bench --manifest-path bench/peers/Cargo.toml --bench peers -- --warm-up-time 1 --measurement-time 3; machine; } 2>&1 | tee "$OUT/peers.txt"
# 2. HTTPS load: server on core 0, generator on core 1.
{ machine; bench/load.sh; machine; } 2>&1 | tee "$OUT/load.txt"
# 3. memory of `annexa run` against the stand-in API server, with and without controllers.
{ machine; bench/memory.sh; bench/memory.sh --no-controllers; machine; } 2>&1 | tee "$OUT/memory.txt"
echo "results in $OUT"
