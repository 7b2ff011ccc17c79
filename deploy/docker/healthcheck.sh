#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on the port this container's farm
# process serves, with nothing but bash (no curl in the image).
#
# The port comes from FARM_LISTEN when set, otherwise from the role in PID
# 1's command line: 9091 for `farm worker`, 8080 for everything else (the
# binary's own defaults). Exit 0 when the answer is HTTP 200.
set -euo pipefail

listen=${FARM_LISTEN:-}
if [[ -z $listen ]]; then
    if tr '\0' ' ' </proc/1/cmdline | grep -qw worker; then
        listen=127.0.0.1:9091
    else
        listen=127.0.0.1:8080
    fi
fi
port=${listen##*:}

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 4 status <&3
[[ $status =~ ^HTTP/1\.[01]\ 200 ]]
