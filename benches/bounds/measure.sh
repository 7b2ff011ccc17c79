#!/usr/bin/env bash
# Time and peak memory of `farm quote` on the models built to be expensive,
# for one or more farm binaries side by side (say, before and after a change).
#
#   benches/bounds/measure.sh [--runs N] LABEL=PATH [LABEL=PATH ...]
#
# Generates the models (benches/bounds/models.py) into a temporary folder,
# runs every (binary, model) pair N times (default 3) under an address-space
# cap of 12 GiB and a 300 s timeout, and prints a Markdown table: median
# wall time, the largest peak RSS of the runs, the exit status, and the
# first line of the error when there is one.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runs=3
binaries=()
while (($#)); do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	*=*) binaries+=("$1"); shift ;;
	*) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
	esac
done
((${#binaries[@]})) || { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }
[[ -x /usr/bin/time ]] || { echo "measure.sh: needs /usr/bin/time (Debian package time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/models.py" "$work/models"

printf '| farm | model | wall s (median of %s) | peak RSS MiB | exit | message |\n|---|---|---|---|---|---|\n' "$runs"
for entry in "${binaries[@]}"; do
	label=${entry%%=*} farm=${entry#*=}
	for model in needle needle_dense needle_crowded sphere_1m; do
		walls=() peak=0 code=0 message=""
		for ((i = 0; i < runs; i++)); do
			set +e
			MALLOC_ARENA_MAX=2 /usr/bin/time -f '%e %M' -o "$work/time" \
				timeout 300 prlimit --as=$((12 << 30)) "$farm" quote "$work/models/$model.stl" --format json \
				>/dev/null 2>"$work/err"
			code=$?
			set -e
			# The last line: /usr/bin/time puts "Command exited ..." above it on failure.
			read -r wall rss_kib < <(tail -n 1 "$work/time") || true
			walls+=("${wall:-nan}")
			if ((${rss_kib:-0} > peak)); then peak=$rss_kib; fi
			message=$(grep -m 1 -v '^\s*$' "$work/err" | cut -c1-140 || true)
		done
		median=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
		printf '| %s | %s | %s | %d | %s | %s |\n' "$label" "$model" "$median" $((peak / 1024)) "$code" "${message//|/\\|}"
	done
done
