#!/usr/bin/env bash
# Makes sure charts/tests/.venv holds the pinned tools of requirements.txt (installing them from
# PyPI on first use or when requirements.txt changed) and prints the path of its python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${ANNEXA_CHART_VENV:-$here/.venv}"

# One installer at a time (cargo may run the tests from several processes).
exec 9>"$here/.venv.lock"
flock 9
if ! cmp -s "$here/requirements.txt" "$venv/.installed-requirements" 2>/dev/null; then
    echo "charts/tests: installing requirements.txt into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    cp "$here/requirements.txt" "$venv/.installed-requirements"
fi
echo "$venv/bin/python"
