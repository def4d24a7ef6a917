#!/usr/bin/env bash
# Renders the chart as `helm template` would (Helm v4 through helm-python-sdk, no helm binary),
# CRDs first, to stdout: what the end-to-end suite installs. Examples:
#   bash charts/tests/render.sh --namespace annexa-system > annexa.yaml
#   bash charts/tests/render.sh --set-json '{"replicaCount": 1}' --no-crds
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(bash "$here/venv.sh")"
PYTHONDONTWRITEBYTECODE=1 exec "$python" "$here/render.py" "$@"
