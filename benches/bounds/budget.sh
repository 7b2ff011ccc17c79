#!/usr/bin/env bash
# Does the memory budget hold for shapes it was not fitted on? For each model
# family of models.py (each loads a different stage), grows the model until
# `farm quote` refuses it under FARM_MEMORY_BUDGET_BYTES, and prints every
# run's peak RSS beside the budget.
#
#   benches/bounds/budget.sh [--budget-mib N] [--families "a b"] FARM
#
# The other limits (shells, crossings, triangles) are raised out of the way,
# so the budget is what stops a model. The baseline is the peak RSS of a
# 12-triangle cube: the process, the price book, the runtime. A run within
# the budget is one whose peak, less the baseline, is at most the budget.
# The constants in mesh/src/bounds.rs were fitted on the needles family
# only; the other families are the held-out check.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
budget_mib=256
families="needles sphere cubes shelves soup comb"
while (($# > 1)); do
	case $1 in
	--budget-mib) budget_mib=$2; shift 2 ;;
	--families) families=$2; shift 2 ;;
	*) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
	esac
done
(($# == 1)) || { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }
farm=$1
[[ -x /usr/bin/time ]] || { echo "budget.sh: needs /usr/bin/time (Debian package time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FARM_MEMORY_BUDGET_BYTES=$((budget_mib << 20))
export FARM_MAX_SHELLS=100000000 FARM_MAX_LAYER_CROSSINGS=100000000000 FARM_MAX_RAY_CROSSINGS=100000000000
export FARM_MAX_TRIANGLES=200000000 MALLOC_ARENA_MAX=2

# Peak RSS in KiB and exit status of one quote; the first error line in $work/err.
quote() {
	set +e
	/usr/bin/time -f '%M' -o "$work/time" timeout 600 "$farm" quote "$1" --format json >/dev/null 2>"$work/err"
	local code=$?
	set -e
	echo "$(tail -n 1 "$work/time") $code"
}

python3 "$here/models.py" --family cubes --scale 1 "$work/base.stl"
read -r baseline _ < <(quote "$work/base.stl")
printf 'budget %d MiB; baseline (a 12-triangle cube) %d MiB\n\n' "$budget_mib" $((baseline / 1024))
printf '| family | scale | triangles | peak RSS MiB | over baseline MiB | of budget | exit | message |\n'
printf '|---|--:|--:|--:|--:|--:|---|---|\n'
worst=0
# Runs one model; sets $code.
run() {
	local family=$1 scale=$2
	python3 "$here/models.py" --family "$family" --scale "$scale" "$work/model.stl"
	local triangles=$(( ($(stat -c %s "$work/model.stl") - 84) / 50 ))
	read -r peak code < <(quote "$work/model.stl")
	local over=$(( (peak - baseline) / 1024 ))
	local share
	share=$(awk -v o="$over" -v b="$budget_mib" 'BEGIN { printf "%.2f", o / b }')
	local message
	message=$(grep -m 1 -v '^\s*$' "$work/err" | cut -c1-120 || true)
	printf '| %s | %d | %d | %d | %d | %s | %d | %s |\n' \
		"$family" "$scale" "$triangles" $((peak / 1024)) "$over" "$share" "$code" "${message//|/\\|}"
	if ((code == 0 && over > worst)); then worst=$over; fi
}

for family in $families; do
	# Doubling until refused, then three halvings of the gap, so the
	# largest accepted model is close to where the budget stops it.
	low=0 scale=1000
	while ((scale <= 64000000)); do
		run "$family" "$scale"
		((code == 0)) || break
		low=$scale scale=$((scale * 2))
	done
	high=$scale refused=$((code != 0))
	for _ in 1 2 3; do
		((refused && high - low > 1 && low > 0)) || break
		mid=$(( (low + high) / 2 ))
		run "$family" "$mid"
		if ((code == 0)); then low=$mid; else high=$mid; fi
	done
done
printf '\nlargest accepted run: %d MiB over the baseline, against a budget of %d MiB\n' "$worst" "$budget_mib"
