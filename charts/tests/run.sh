#!/usr/bin/env bash
# Tests of the Helm chart (charts/annexa) and of the Argo CD health checks
# (examples/gitops/argocd-cm.yaml). Installs the pinned tools of requirements.txt from PyPI into
# charts/tests/.venv on first use (or when requirements.txt changes); later runs are offline.
# Extra arguments go to pytest, e.g. `bash charts/tests/run.sh -k webhook -v`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${ANNEXA_CHART_VENV:-$here/.venv}"

# One installer at a time (cargo may run this from several test processes).
exec 9>"$here/.venv.lock"
flock 9
if ! cmp -s "$here/requirements.txt" "$venv/.installed-requirements" 2>/dev/null; then
    echo "chart tests: installing $here/requirements.txt into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.installed-requirements"
fi
flock -u 9

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
