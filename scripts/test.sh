#!/usr/bin/env bash
# The project's test command: formatting, lints and every test of the workspace.
# Needs only the Rust toolchain; `kubectl` on the PATH for the end-to-end suite.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
