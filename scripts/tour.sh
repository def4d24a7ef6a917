#!/usr/bin/env bash
# A local tour of Annexa without a cluster: builds `annexa`, the stand-in API server and the
# tour, then starts the stand-in, installs Annexa from the chart, runs the README's cluster
# walkthrough as the people it names and stays running with a kubeconfig per person to play
# with. Ctrl-C stops it. `--exit-after-setup` exits at the ready point instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build of the three binaries (a `cargo run` of the e2e package alone would build the shared
# dependencies a second time with other features).
cargo build --locked -p annexa -p annexa-e2e --bin annexa --bin annexa-standin --bin annexa-tour
target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/annexa-tour" "$@"
