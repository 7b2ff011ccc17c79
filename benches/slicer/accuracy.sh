#!/usr/bin/env bash
# Accuracy and speed of `farm quote` against PrusaSlicer 2.5, side by side in one run:
# print time and filament volume of one part, and whole-process wall time.
#
#   benches/slicer/accuracy.sh [--farm PATH] [--quick] [--fresh] [--out FILE.md] [--json FILE]
#                              [--check] [--only PATTERN] [--profiles PATTERN] [--features]
#                              [--keep-gcode] [--timeout SECONDS]
#
# Writes generated shapes into benches/slicer/data/models/ (deterministic binary STL) and
# adds six real models from tests/data/corpus/files. For every (model, profile in
# benches/slicer/profiles/) pair it slices with `prusa-slicer --load PROFILE --export-gcode`
# (serially, timed, cached in benches/slicer/.cache/), reads PrusaSlicer's estimates and a
# per-feature breakdown from the G-code, then runs `farm quote --profile PROFILE --format json`
# on the same pair (timed). The Markdown report goes to stdout, progress to stderr.
# Exit status: 0; 1 on a setup error, 2 on a usage error; 3 when the report was printed but some tool
# run failed; 4 with --check when the goal was missed (3 takes precedence).
set -euo pipefail

usage() {
	sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	cat <<'EOF'

Options:
  --farm PATH          farm binary (default: <repo>/target/release/farm, else target/debug/farm)
  --quick              smoke run: cube, sphere, T-shape and hollow box × defaults and one
                       support profile (well under 2 minutes)
  --fresh              ignore the PrusaSlicer cache: re-slice every pair (and refill the cache)
  --out FILE.md        also write the report to FILE.md
  --json FILE          every row as JSON (both tools' figures, PrusaSlicer's per-feature
                       breakdown, per-layer feed times, the farm's whole output): for calibration
  --check              exit 4 when the goal is missed: median |time error| <= 10 %,
                       median |material error| <= 5 %, no row beyond 25 %, speed-up >= 20x
  --only PATTERN       only models whose name contains PATTERN (or matches it, if it is a glob)
  --profiles PATTERN   only profiles whose name contains or matches PATTERN
  --features           add a table of PrusaSlicer's per-feature volume and path length
  --keep-gcode         keep the G-code of the pairs sliced in this run in benches/slicer/data/gcode/
  --timeout SECONDS    kill one tool run after this long; it then counts as failed (default 900)
  -h, --help           this text

Environment: PYTHON (interpreter, default python3; standard library only).
EOF
}

for arg in "$@"; do
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	esac
done

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || {
	printf 'accuracy.sh: %s not found (set PYTHON)\n' "$PY" >&2
	exit 1
}
command -v prusa-slicer >/dev/null || {
	printf 'accuracy.sh: prusa-slicer not found (apt-get install prusa-slicer)\n' >&2
	exit 1
}

ACCURACY_CMDLINE=$(printf '%q ' "$0" "$@")
export ACCURACY_CMDLINE=${ACCURACY_CMDLINE% }
# Relative --farm/--out/--json paths are resolved by the Python side against the caller's cwd.
exec "$PY" "$HERE/accuracy.py" "$@"
