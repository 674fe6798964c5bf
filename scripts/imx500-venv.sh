#!/bin/sh
# The Sony IMX500 toolchain (Edge MDT: MCT + imx500-converter) in its own venv: it pins Python < 3.12,
# TensorFlow < 2.16 and numpy < 2, which clash with the project's TensorFlow 2.21, so `edgelite convert
# --formats imx500` drives it as a subprocess. ~2.3 GB, ~1 min with a warm pip cache. Idempotent: a venv whose
# stamp matches the pins is left alone. The converter needs Java 17: `sh scripts/system-deps.sh imx500`.
#   sh scripts/imx500-venv.sh [DIR]      (default: $EDGELITE_IMX500_VENV or ~/.cache/edgelite/imx500-venv)
set -e
here=$(dirname "$0")
reqs="$here/imx500-requirements.txt"
venv=${1:-${EDGELITE_IMX500_VENV:-$HOME/.cache/edgelite/imx500-venv}}
stamp="$venv/.edgelite-imx500"
want=$(sha256sum "$reqs" | cut -c1-64)
if [ -x "$venv/bin/imxconv-tf" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "imx500-venv: $venv is up to date"
  exit 0
fi
py=${IMX500_PYTHON:-}
if [ -z "$py" ]; then
  for cand in python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] < (3, 12))'; then
      py=$cand
      break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "imx500-venv: Sony's edge-mdt needs Python 3.9-3.11 (none on PATH); install python3.11 or set IMX500_PYTHON" >&2
  exit 2
fi
command -v java >/dev/null 2>&1 ||
  echo "imx500-venv: imx500-converter needs Java 17: sh scripts/system-deps.sh imx500 (root) installs it" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --no-deps -r "$reqs"
if ! problems=$("$venv/bin/python" -m pip check 2>/dev/null); then
  echo "imx500-venv: the pinned set is inconsistent (scripts/imx500-requirements.txt): $problems" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "imx500-venv: $venv ready ($(du -sh "$venv" | cut -f1))"
