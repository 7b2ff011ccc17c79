#!/usr/bin/env bash
# Peak memory of `farm serve` while it takes one large model upload, for one
# or more farm binaries side by side (say, before and after a change).
#
#   benches/uploads/measure.sh [--triangles N] LABEL=PATH [LABEL=PATH ...]
#
# Writes a binary STL sphere of about N triangles (default 4,000,000: 200 MB),
# starts each binary's `farm serve` in a fresh data directory (never on the
# caller's services), uploads the file once with curl, and prints a Markdown
# table: the upload's HTTP status and wall time, and the server's peak RSS
# (VmHWM) before and after the upload.
set -euo pipefail
export LC_ALL=C
triangles=4000000
binaries=()
while (($#)); do
	case $1 in
	--triangles) triangles=$2; shift 2 ;;
	*=*) binaries+=("$1"); shift ;;
	*) sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
	esac
done
((${#binaries[@]})) || { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }
command -v curl >/dev/null || { echo "measure.sh: needs curl" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# A sphere of about N triangles: 2·rings·segments facets.
side=$(python3 -c "import math; print(max(8, int(math.sqrt($triangles / 2))))")
python3 - "$work/model.stl" "$side" <<'PY'
import math, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
def p(i, j):
    t, f = math.pi * i / n, 2 * math.pi * j / n
    return (50 * math.sin(t) * math.cos(f), 50 * math.sin(t) * math.sin(f), 50 + 50 * math.cos(t))
with open(path, "wb") as out:
    facets = 2 * n * n
    out.write(b"sphere".ljust(80, b" ") + struct.pack("<I", facets))
    for i in range(n):
        for j in range(n):
            a, b, c, d = p(i, j), p(i + 1, j), p(i + 1, j + 1), p(i, j + 1)
            for tri in ((a, b, c), (a, c, d)):
                out.write(struct.pack("<12fH", 0, 0, 0, *tri[0], *tri[1], *tri[2], 0))
PY
size=$(stat -c %s "$work/model.stl")

hwm() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
printf '| farm | file MB | status | upload s | peak RSS before, MiB | peak RSS after, MiB |\n|---|--:|---|--:|--:|--:|\n'
for entry in "${binaries[@]}"; do
	label=${entry%%=*} farm=${entry#*=}
	data="$work/data-$label"
	token=$(env -u FARM_DATABASE_URL -u FARM_AMQP_URL -u FARM_S3_ENDPOINT -u FARM_REDIS_URL \
		"$farm" keys create-seller --name bench --data-dir "$data" | tail -n 1)
	env -u FARM_DATABASE_URL -u FARM_AMQP_URL -u FARM_S3_ENDPOINT -u FARM_REDIS_URL FARM_LOG_FORMAT=json \
		"$farm" serve --data-dir "$data" --listen 127.0.0.1:0 2>"$work/log-$label" &
	pid=$!
	pids+=("$pid")
	addr=""
	for _ in $(seq 600); do
		addr=$(sed -n 's/.*"message":"api listening".*"addr":"\([^"]*\)".*/\1/p; s/.*"addr":"\([^"]*\)".*"message":"api listening".*/\1/p' "$work/log-$label" | head -n 1)
		[[ -n $addr ]] && break
		sleep 0.1
	done
	[[ -n $addr ]] || { echo "measure.sh: $label never listened" >&2; cat "$work/log-$label" >&2; exit 1; }
	before=$(hwm "$pid")
	start=$(date +%s%N)
	status=$(curl -s -o "$work/answer" -w '%{http_code}' -H "Authorization: Bearer $token" \
		--data-binary @"$work/model.stl" "http://$addr/v1/models")
	end=$(date +%s%N)
	after=$(hwm "$pid")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	awk -v l="$label" -v mb="$size" -v st="$status" -v t0="$start" -v t1="$end" -v b="$before" -v a="$after" \
		'BEGIN { printf "| %s | %.0f | %s | %.1f | %s | %s |\n", l, mb / 1e6, st, (t1 - t0) / 1e9, b, a }' 
done
