#!/usr/bin/env bash
# deploy/dev/tools.sh - install the checking tools the project's CI uses, when missing:
#
#   deploy/dev/tools.sh cargo-deny     # cargo-deny (pinned), into ~/.cargo/bin, via cargo install
#   deploy/dev/tools.sh schemathesis   # schemathesis (pinned), into deploy/dev/.state/schemathesis/
#
# Each command is idempotent: a tool already at the pinned version is left alone, so a warm
# machine pays nothing. On a fresh machine cargo-deny takes a few minutes to build; schemathesis
# installs from PyPI in under a minute. Progress goes to stderr; the tool's path is printed on stdout.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
STATE_DIR=$SCRIPT_DIR/.state
CARGO_DENY_VERSION=0.20.2
SCHEMATHESIS_VERSION=4.32.5
# Schemathesis trips CPython 3.11.7's "AST constructor recursion depth mismatch" bug (fixed in
# later releases) while describing its strategies, so a newer interpreter is preferred when the
# machine has one (this machine kind ships 3.13 through pyenv).
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    candidates=(python3.13 python3.12)
    if command -v pyenv >/dev/null 2>&1; then
        # pyenv's shims only run the versions pyenv has selected; its others are called directly.
        candidates+=("$(pyenv root)"/versions/3.1[3-9]*/bin/python3 "$(pyenv root)"/versions/3.12.[2-9]*/bin/python3)
    fi
    for candidate in "${candidates[@]}"; do
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] < (3, 12))' >/dev/null 2>&1; then
            PYTHON=$candidate
            break
        fi
    done
fi

log() { printf '[tools] %s\n' "$*" >&2; }
die() {
    printf '[tools] ERROR: %s\n' "$*" >&2
    exit 1
}

cargo_deny() {
    local have=""
    if command -v cargo-deny >/dev/null 2>&1; then
        have=$(cargo-deny --version 2>/dev/null | awk '{print $2}')
    fi
    if [[ $have != "$CARGO_DENY_VERSION" ]]; then
        log "cargo-deny: installing $CARGO_DENY_VERSION (found: ${have:-none}); this builds it from crates.io"
        cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" >&2 ||
            die "cargo install cargo-deny $CARGO_DENY_VERSION failed"
    fi
    command -v cargo-deny
}

schemathesis() {
    local venv=$STATE_DIR/schemathesis
    local have=""
    if [[ -x $venv/bin/st ]]; then
        have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
    fi
    if [[ -n $have ]] && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' 2>/dev/null; then
        have="" # made with an interpreter that has the AST bug: rebuild it
        rm -rf "$venv"
    fi
    if [[ $have != "$SCHEMATHESIS_VERSION" ]]; then
        log "schemathesis: installing $SCHEMATHESIS_VERSION into $venv (found: ${have:-none})"
        mkdir -p "$STATE_DIR"
        [[ -x $venv/bin/python ]] || "$PYTHON" -m venv "$venv" >&2 || die "cannot create the venv $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" >&2 || die "pip install schemathesis failed"
    fi
    printf '%s\n' "$venv/bin/st"
}

case ${1:-} in
cargo-deny) cargo_deny ;;
schemathesis) schemathesis ;;
*)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
