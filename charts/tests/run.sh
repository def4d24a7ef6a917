#!/usr/bin/env bash
# Tests of the Helm chart (charts/annexa) and of the Argo CD health checks
# (examples/gitops/argocd-cm.yaml). The first run installs the pinned tools of requirements.txt
# into charts/tests/.venv (see venv.sh); later runs are offline.
# Extra arguments go to pytest, e.g. `bash charts/tests/run.sh -k webhook -v`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(bash "$here/venv.sh")"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
exec "$python" -m pytest -q -p no:cacheprovider "$@"
