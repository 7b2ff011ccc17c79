#!/usr/bin/env bash
# Whole-process comparison of `farm analyze` with its peers on the same STL files:
# wall time and peak RSS of admesh 0.98, trimesh 5.2 and (when it can be had) PrusaSlicer.
#
#   benches/peers/compare.sh [--farm PATH] [--quick] [--out FILE.md] [--runs N]
#                            [--no-prusa] [--timeout SECONDS]
#
# Installs what it lacks (Debian packages admesh, time, prusa-slicer; a venv at
# benches/peers/.venv with trimesh==5.2.0, numpy, scipy, networkx), generates the
# UV-sphere inputs into benches/peers/data/ (each ordered sphere, and shuffled copies:
# the same facets in a random order with each triangle's corners rotated cyclically,
# seed 17, by shuffle_stl.py), runs every (tool, file) pair N times
# (default 3) after warming the page cache, and prints a Markdown report: header
# with the command line and tool versions, the timing table, and a sanity table of
# the volume and part count each tool reported. Progress goes to stderr, the report
# to stdout (and to --out FILE.md). Works from any directory. Exit status: 0 when every
# tool succeeded on every file, 3 when the report was produced but some run failed.
set -euo pipefail
export LC_ALL=C # '.' as decimal point in EPOCHREALTIME, printf and awk; stable sort

usage() {
	sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	cat <<'EOF'

Options:
  --farm PATH        farm binary (default: <repo>/target/release/farm)
  --quick            smoke run: the ~100k-triangle sphere, ordered and shuffled, and one corpus plate only
  --out FILE.md      also write the report to FILE.md
  --runs N           runs per (tool, file), median wall time is reported (default 3)
  --no-prusa         do not run (or install) PrusaSlicer
  --timeout SECONDS  kill one tool run after this long; it is then reported as failed (default 900)
  -h, --help         this text

Environment: PYTHON (interpreter for the venv, default python3),
PRUSA_DOWNLOAD_TIMEOUT (seconds allowed for downloading prusa-slicer, default 240).
EOF
}

die() {
	printf 'compare.sh: %s\n' "$*" >&2
	exit 1
}
say() { printf '[compare] %s\n' "$*" >&2; }

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$HERE/../.." && pwd -P)
DATA=$HERE/data
LOGS=$DATA/logs
VENV=$HERE/.venv
CORPUS=$REPO/tests/data/corpus/files

CMDLINE=$(printf '%q ' "$0" "$@")
CMDLINE=${CMDLINE% }
START_DIR=$PWD

abspath() { realpath -m -- "$1"; } # relative to the caller's cwd, normalised

FARM=$REPO/target/release/farm
QUICK=0
OUT=""
RUNS=3
USE_PRUSA=1
TIMEOUT=900
PRUSA_DOWNLOAD_TIMEOUT=${PRUSA_DOWNLOAD_TIMEOUT:-240}

while (($# > 0)); do
	case $1 in
	--farm)
		(($# >= 2)) || die "--farm needs a path"
		FARM=$(abspath "$2")
		shift 2
		;;
	--farm=*)
		FARM=$(abspath "${1#--farm=}")
		shift
		;;
	--out)
		(($# >= 2)) || die "--out needs a file"
		OUT=$(abspath "$2")
		shift 2
		;;
	--out=*)
		OUT=$(abspath "${1#--out=}")
		shift
		;;
	--runs)
		(($# >= 2)) || die "--runs needs a number"
		RUNS=$2
		shift 2
		;;
	--timeout)
		(($# >= 2)) || die "--timeout needs a number of seconds"
		TIMEOUT=$2
		shift 2
		;;
	--quick)
		QUICK=1
		shift
		;;
	--no-prusa)
		USE_PRUSA=0
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "--runs must be 1..99, got '$RUNS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$TIMEOUT'"
[[ $PRUSA_DOWNLOAD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "PRUSA_DOWNLOAD_TIMEOUT must be a positive number"
[[ -x $FARM && -f $FARM ]] || die "farm binary not found or not executable: $FARM (build it with 'cargo build --release' or pass --farm PATH)"
if [[ -n $OUT ]]; then
	[[ -d $(dirname -- "$OUT") ]] || die "directory of --out does not exist: $OUT"
fi

mkdir -p "$DATA" "$LOGS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/farm-peers.XXXXXX")
CHILD=""
cleanup() { rm -rf -- "$TMP"; }
on_signal() {
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null || true
	fi
	say "interrupted"
	exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

now_s() { date +%s; }

# ---------------------------------------------------------------- installs
APT_UPDATED=0
INSTALL_NOTES=()

apt_update_once() {
	((APT_UPDATED == 1)) && return 0
	[[ $(id -u) == 0 ]] || return 1
	say "apt-get update"
	apt-get update -qq >>"$LOGS/apt.log" 2>&1 || return 1
	APT_UPDATED=1
}

apt_install() {
	local t0
	t0=$(now_s)
	apt_update_once || return 1
	say "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOGS/apt.log" 2>&1 || return 1
	INSTALL_NOTES+=("installed $* with apt-get in $(($(now_s) - t0)) s")
}

[[ -x /usr/bin/time ]] || apt_install time || die "/usr/bin/time is missing and could not be installed (apt-get install time)"
command -v timeout >/dev/null || die "coreutils 'timeout' is missing"
command -v admesh >/dev/null || apt_install admesh || die "admesh is missing and could not be installed (apt-get install admesh)"

PRUSA_NOTE=""
if ((USE_PRUSA == 0)); then
	PRUSA_NOTE="not run (--no-prusa)"
elif ! command -v prusa-slicer >/dev/null; then
	# The download is bounded; dpkg itself is never interrupted half-way.
	t0=$(now_s)
	if ! apt_update_once; then
		PRUSA_NOTE="skipped: prusa-slicer is not installed and apt-get is unavailable (not root?)"
	else
		say "downloading prusa-slicer (at most ${PRUSA_DOWNLOAD_TIMEOUT} s)"
		dl_rc=0
		DEBIAN_FRONTEND=noninteractive timeout "$PRUSA_DOWNLOAD_TIMEOUT" \
			apt-get install -y -qq --download-only prusa-slicer >>"$LOGS/apt.log" 2>&1 || dl_rc=$?
		if ((dl_rc == 124)); then
			PRUSA_NOTE="skipped: downloading prusa-slicer took more than ${PRUSA_DOWNLOAD_TIMEOUT} s"
		elif ((dl_rc != 0)); then
			PRUSA_NOTE="skipped: apt-get could not download prusa-slicer (exit $dl_rc, see $LOGS/apt.log)"
		else
			say "installing prusa-slicer"
			if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prusa-slicer >>"$LOGS/apt.log" 2>&1; then
				INSTALL_NOTES+=("installed prusa-slicer with apt-get in $(($(now_s) - t0)) s")
			else
				PRUSA_NOTE="skipped: apt-get install prusa-slicer failed (see $LOGS/apt.log)"
			fi
		fi
	fi
fi
if ((USE_PRUSA == 1)) && [[ -z $PRUSA_NOTE ]] && ! command -v prusa-slicer >/dev/null; then
	PRUSA_NOTE="skipped: prusa-slicer not found after install"
fi
HAVE_PRUSA=0
if [[ -z $PRUSA_NOTE ]]; then HAVE_PRUSA=1; fi

PY=$VENV/bin/python
venv_ok() {
	[[ -x $PY ]] && "$PY" -c 'import trimesh, numpy, scipy, networkx; assert trimesh.__version__ == "5.2.0", trimesh.__version__' >/dev/null 2>&1
}
if ! venv_ok; then
	t0=$(now_s)
	if [[ ! -x $PY ]]; then
		say "creating venv $VENV"
		"${PYTHON:-python3}" -m venv "$VENV" || die "could not create the venv with ${PYTHON:-python3} -m venv"
	fi
	say "pip install trimesh==5.2.0 numpy scipy networkx"
	"$PY" -m pip install --disable-pip-version-check -q 'trimesh==5.2.0' numpy scipy networkx >>"$LOGS/pip.log" 2>&1 ||
		die "pip install failed, see $LOGS/pip.log"
	venv_ok || die "the venv at $VENV still cannot import trimesh 5.2.0, numpy, scipy and networkx"
	INSTALL_NOTES+=("set up $VENV (pip install trimesh==5.2.0 numpy scipy networkx) in $(($(now_s) - t0)) s")
fi

# ---------------------------------------------------------------- inputs
NAMES=()
FILES=()
INPUT_NOTES=()

ensure_sphere() { # label segments rings
	local label=$1 s=$2 r=$3 f n want
	f=$DATA/sphere_$label.stl
	n=$((2 * s * (r - 1)))
	want=$((84 + 50 * n))
	if [[ ! -f $f || $(stat -c %s "$f") != "$want" ]]; then
		say "generating $f ($n triangles)"
		"$PY" "$HERE/gen_sphere.py" "$s" "$r" "$f" --radius 20 >&2 || die "gen_sphere.py failed for $f"
	fi
	[[ $(stat -c %s "$f") == "$want" ]] || die "$f is not $want bytes (84 + 50 * $n)"
	NAMES+=("sphere_$label (S=$s, R=$r)")
	FILES+=("$f")
}

SHUFFLE_SEED=17
ensure_shuffled() { # label: a shuffled copy of sphere_<label>.stl (ensure_sphere it first)
	local label=$1 src f
	src=$DATA/sphere_$label.stl
	f=$DATA/sphere_${label}_shuffled.stl
	if [[ ! -f $f || $(stat -c %s "$f") != $(stat -c %s "$src") || $src -nt $f ]]; then
		say "generating $f (shuffled, seed $SHUFFLE_SEED)"
		"$PY" "$HERE/shuffle_stl.py" "$src" "$f" --seed "$SHUFFLE_SEED" >&2 || die "shuffle_stl.py failed for $f"
	fi
	[[ $(stat -c %s "$f") == $(stat -c %s "$src") ]] || die "$f is not the size of $src"
	NAMES+=("sphere_${label} shuffled (seed $SHUFFLE_SEED)")
	FILES+=("$f")
}

add_corpus() { # basename
	local f=$CORPUS/$1
	if [[ -f $f ]]; then
		NAMES+=("${1%.stl}")
		FILES+=("$(cd -- "$(dirname -- "$f")" && pwd -P)/$1")
		return 0
	fi
	INPUT_NOTES+=("missing, skipped: $f")
	return 1
}

ensure_sphere 100k 224 224
if ((QUICK == 1)); then
	ensure_shuffled 100k
	add_corpus composite_plate_m3x10_screw_x33.stl ||
		add_corpus composite_plate_benchy_robot_disc_gunwale.stl || true
else
	ensure_sphere 1M 1000 501
	ensure_shuffled 1M
	ensure_sphere 4M 2000 1001
	ensure_shuffled 4M
	add_corpus composite_plate_benchy_robot_disc_gunwale.stl || true
	add_corpus composite_plate_m3x10_screw_x33.stl || true
fi

triangles_of() { # binary STL: the count in the header when the size matches; else ASCII facets
	local f=$1 size n
	size=$(stat -c %s "$f")
	if ((size >= 84)); then
		n=$(od -An -t u4 -j 80 -N 4 "$f" | tr -d ' ')
		if ((84 + 50 * n == size)); then
			printf '%s' "$n"
			return 0
		fi
	fi
	grep -ci '^[[:space:]]*facet[[:space:]]' "$f" || true
}

# ---------------------------------------------------------------- measuring
TOOLS=(farm admesh trimesh)
if ((HAVE_PRUSA == 1)); then TOOLS+=(prusa); fi

tool_cmd() { # tool file -> CMD array
	case $1 in
	farm) CMD=("$FARM" analyze "$2" --format json) ;;
	admesh) CMD=(admesh "$2") ;;
	trimesh) CMD=("$PY" "$HERE/trimesh_analyze.py" "$2") ;;
	prusa) CMD=(prusa-slicer --info "$2") ;;
	*) die "unknown tool $1" ;;
	esac
}

# What a successful run must print, so a tool that exits 0 without analysing is caught.
tool_marker() {
	case $1 in
	farm) printf '"triangles"' ;;
	admesh) printf 'Number of facets' ;;
	trimesh) printf '"volume_mm3"' ;;
	prusa) printf 'number_of_facets' ;;
	esac
}

RAW=$DATA/last-run.tsv
printf 'tool\tfile\trun\twall_s\ttime_e_s\tmax_rss_kb\tuser_s\tsys_s\texit\n' >"$RAW"

# One timed run: sets M_WALL (s, from EPOCHREALTIME around the call, ms resolution),
# M_E (/usr/bin/time %e, 10 ms resolution), M_RSS (KB), M_USER, M_SYS, M_RC; output in $TMP/out, $TMP/err.
measure() {
	local t0 t1 line
	t0=$EPOCHREALTIME
	timeout -k 10 "$TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$TMP/time" -- "$@" \
		</dev/null >"$TMP/out" 2>"$TMP/err" &
	CHILD=$!
	M_RC=0
	wait "$CHILD" || M_RC=$?
	CHILD=""
	t1=$EPOCHREALTIME
	M_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
	line=$(tail -n 1 "$TMP/time" 2>/dev/null || true)
	read -r M_E M_RSS M_USER M_SYS <<<"${line:-x x x x}" || true
	[[ $M_RSS =~ ^[0-9]+$ ]] || M_RSS=0
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A WALL RSS STATUS

# Launch overhead of the timing wrapper itself, for the header.
over=()
for ((r = 1; r <= 5; r++)); do
	measure true
	over+=("$M_WALL")
done
OVERHEAD_MS=$(awk -v s="$(median "${over[@]}")" 'BEGIN { printf "%.1f", s * 1000 }')

measure "$PY" -c 'import trimesh'
IMPORT_NOTE=$(awk -v w="$M_WALL" -v k="$M_RSS" 'BEGIN { printf "%.2f s / %.0f MB", w, k * 1024 / 1e6 }')

nfiles=${#FILES[@]}
((nfiles > 0)) || die "no input files"
for ((i = 0; i < nfiles; i++)); do
	f=${FILES[i]}
	base=$(basename -- "$f" .stl)
	for tool in "${TOOLS[@]}"; do
		tool_cmd "$tool" "$f"
		cat -- "$f" >/dev/null # warm the page cache
		walls=()
		maxrss=0
		status=ok
		for ((r = 1; r <= RUNS; r++)); do
			say "$tool  $base  run $r/$RUNS"
			measure "${CMD[@]}"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$base" "$r" "$M_WALL" "$M_E" "$M_RSS" \
				"$M_USER" "$M_SYS" "$M_RC" >>"$RAW"
			cp -- "$TMP/out" "$LOGS/$base.$tool.out"
			cp -- "$TMP/err" "$LOGS/$base.$tool.err"
			if ((M_RC == 124 || M_RC == 137)); then
				status="failed (timeout ${TIMEOUT} s)"
			elif ((M_RC != 0)); then
				status="failed (exit $M_RC)"
			elif ! grep -q -- "$(tool_marker "$tool")" "$TMP/out"; then
				status="failed (no result printed)"
			fi
			if [[ $status != ok ]]; then
				say "$tool on $base: $status; stderr: $(head -c 300 "$TMP/err" | tr '\n' ' ')"
				break
			fi
			walls+=("$M_WALL")
			if ((M_RSS > maxrss)); then maxrss=$M_RSS; fi
		done
		STATUS[$tool,$i]=$status
		if [[ $status == ok ]]; then
			WALL[$tool,$i]=$(median "${walls[@]}")
			RSS[$tool,$i]=$maxrss
		fi
	done
done

# ---------------------------------------------------------------- report
cell() { # tool index
	local t=$1 j=$2
	if [[ ${STATUS[$t,$j]} != ok ]]; then
		printf '%s' "${STATUS[$t,$j]}"
		return
	fi
	awk -v w="${WALL[$t,$j]}" -v k="${RSS[$t,$j]}" 'BEGIN { printf "%.3f s / %.0f MB", w, k * 1024 / 1e6 }'
}

ratio() { # tool index: tool time / farm time
	local t=$1 j=$2
	if [[ ${STATUS[$t,$j]} != ok || ${STATUS[farm,$j]} != ok ]]; then
		printf 'n/a'
		return
	fi
	awk -v a="${WALL[$t,$j]}" -v b="${WALL[farm,$j]}" 'BEGIN { if (b <= 0) printf "n/a"; else if (a / b < 10) printf "%.2f×", a / b; else printf "%.1f×", a / b }'
}

field() { # file regex(sed, one group) -> first match
	sed -n "s/$2/\\1/p" "$1" 2>/dev/null | head -n 1
}

sanity() { # tool index base -> "volume / parts"
	local t=$1 j=$2 base=$3 out vol parts
	out=$LOGS/$base.$t.out
	if [[ ${STATUS[$t,$j]} != ok ]]; then
		printf '—'
		return
	fi
	case $t in
	farm)
		vol=$(field "$out" '.*"volume_mm3": *\([-0-9.eE+]*\).*')
		parts=$(field "$out" '.*"shells": *\([0-9]*\).*')
		;;
	admesh)
		vol=$(field "$out" '.*Volume *: *\([-0-9.eE+]*\).*')
		parts=$(field "$out" '.*Number of parts *: *\([0-9]*\).*')
		;;
	trimesh)
		vol=$(field "$out" '.*"volume_mm3": *\([-0-9.eE+]*\).*')
		parts=$(field "$out" '.*"bodies": *\([0-9]*\).*')
		;;
	prusa)
		vol=$(field "$out" '^volume *= *\([-0-9.eE+]*\).*')
		parts=$(field "$out" '^number_of_parts *= *\([0-9]*\).*')
		;;
	esac
	awk -v v="${vol:-}" -v p="${parts:-?}" 'BEGIN { if (v == "") printf "? / %s", p; else printf "%.2f / %s", v, p }'
}

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || printf 'not from dpkg'; }

REPORT=$TMP/report.md
{
	farm_version=$("$FARM" --version 2>&1 | head -n 1 || true)
	admesh_version=$(admesh --version 2>&1 | head -n 1 || true)
	py_versions=$("$PY" -c 'import sys, trimesh, numpy, scipy, networkx; print(f"trimesh {trimesh.__version__} (numpy {numpy.__version__}, scipy {scipy.__version__}, networkx {networkx.__version__}, Python {sys.version.split()[0]})")')
	git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || printf 'unknown')
	git_dirty=""
	if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]]; then git_dirty=" (work tree has uncommitted changes)"; fi
	cpu=$(grep -m 1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
	mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)

	echo "## Whole-process comparison: farm analyze vs admesh, trimesh, PrusaSlicer"
	echo
	echo "- command: \`$CMDLINE\` (cwd \`$START_DIR\`)"
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores (${cpu:-unknown CPU}), ${mem:-? GiB}; repo $git_rev$git_dirty"
	farm_note=""
	case $FARM in */debug/*) farm_note=" — **debug build: farm's figures are not meaningful**" ;; esac
	echo "- farm: \`$farm_version\` at \`$FARM\`$farm_note — \`farm analyze FILE --format json\`"
	echo "- admesh: \`$admesh_version\` (Debian admesh $(pkgver admesh)) — \`admesh FILE\` (all checks and repairs: weld, topology, volume; writes nothing)"
	echo "- trimesh: $py_versions — \`$PY $HERE/trimesh_analyze.py FILE\` (load, volume, area, bounds, is_watertight, split); \`import trimesh\` alone costs $IMPORT_NOTE"
	if ((HAVE_PRUSA == 1)); then
		prusa_version=$(prusa-slicer --help 2>/dev/null | grep -m 1 '^PrusaSlicer' | cut -d ' ' -f 1 || true)
		echo "- PrusaSlicer: \`${prusa_version:-unknown}\` (Debian prusa-slicer $(pkgver prusa-slicer)) — \`prusa-slicer --info FILE\`"
	else
		echo "- PrusaSlicer: $PRUSA_NOTE"
	fi
	echo "- method: each tool runs $RUNS time(s) per file, one tool at a time, after \`cat FILE >/dev/null\`; time = median wall time of the whole process (measured with ms resolution around \`/usr/bin/time -f '%e %M'\`, whose launch overhead is ${OVERHEAD_MS} ms), memory = largest peak RSS (\`%M\`) over the runs; MB = 10^6 bytes; ratios = peer time ÷ farm time (how many times faster farm is); raw runs in \`$RAW\`, tool output in \`$LOGS/\`"
	for note in "${INSTALL_NOTES[@]}" "${INPUT_NOTES[@]}"; do
		echo "- $note"
	done
	echo "- inputs:"
	for ((i = 0; i < nfiles; i++)); do
		echo "  - \`${FILES[i]}\` sha256 $(sha256sum -- "${FILES[i]}" | cut -c 1-16)…"
	done
	echo

	hdr="| file | triangles | size MB | farm s / MB | admesh s / MB | trimesh s / MB |"
	sep="| --- | ---: | ---: | ---: | ---: | ---: |"
	if ((HAVE_PRUSA == 1)); then
		hdr+=" prusa s / MB |"
		sep+=" ---: |"
	fi
	hdr+=" admesh÷farm | trimesh÷farm |"
	sep+=" ---: | ---: |"
	if ((HAVE_PRUSA == 1)); then
		hdr+=" prusa÷farm |"
		sep+=" ---: |"
	fi
	hdr+=" farm RSS ÷ file |"
	sep+=" ---: |"
	echo "$hdr"
	echo "$sep"
	for ((i = 0; i < nfiles; i++)); do
		f=${FILES[i]}
		size=$(stat -c %s "$f")
		row="| ${NAMES[i]} | $(triangles_of "$f") | $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') |"
		for tool in "${TOOLS[@]}"; do
			row+=" $(cell "$tool" "$i") |"
		done
		row+=" $(ratio admesh "$i") | $(ratio trimesh "$i") |"
		if ((HAVE_PRUSA == 1)); then row+=" $(ratio prusa "$i") |"; fi
		if [[ ${STATUS[farm,$i]} == ok ]]; then
			row+=" $(awk -v k="${RSS[farm,$i]}" -v s="$size" 'BEGIN { printf "%.2f", k * 1024 / s }') |"
		else
			row+=" n/a |"
		fi
		echo "$row"
	done
	echo
	echo "Sanity check — volume mm³ / parts (farm shells, admesh parts, trimesh bodies, PrusaSlicer parts) as each tool reported them:"
	echo
	shdr="| file |"
	ssep="| --- |"
	for tool in "${TOOLS[@]}"; do
		shdr+=" $tool |"
		ssep+=" ---: |"
	done
	echo "$shdr"
	echo "$ssep"
	for ((i = 0; i < nfiles; i++)); do
		base=$(basename -- "${FILES[i]}" .stl)
		row="| ${NAMES[i]} |"
		for tool in "${TOOLS[@]}"; do
			row+=" $(sanity "$tool" "$i" "$base") |"
		done
		echo "$row"
	done
} >"$REPORT"

cat -- "$REPORT"
if [[ -n $OUT ]]; then
	cp -- "$REPORT" "$OUT"
	say "report written to $OUT"
fi

for key in "${!STATUS[@]}"; do
	if [[ ${STATUS[$key]} != ok ]]; then
		say "some runs failed (see the table)"
		exit 3
	fi
done
