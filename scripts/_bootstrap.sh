# Sourced by scripts/demo and scripts/test: create .venv and install the project into it.
# Re-installs only when pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "error: Python 3.11 or 3.12 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 2; }
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)
PY
VENV="${EVERREACH_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.everreach-install-stamp"
WANT="$(cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing EverReach Pipelines and its dependencies (first time: about a minute)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c constraints.txt -e ".[dev]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# dbt and Dagster must not phone home
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1
