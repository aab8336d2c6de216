#!/bin/sh
# quietly.sh LOG "what it does" COMMAND [ARGS...]
#
# Runs COMMAND with its output in LOG and prints one line saying what it does.
# On failure the whole log is printed, then where it is, and the exit status is
# COMMAND's: `make run` shows a few lines when all goes well and everything when
# it does not (issue 17, item 2).
set -u
log=$1
what=$2
shift 2
mkdir -p "$(dirname "$log")"
printf '%s ... ' "$what"
start=$(date +%s)
if "$@" >"$log" 2>&1; then
    echo "done ($(( $(date +%s) - start )) s)"
    exit 0
else
    status=$?
    echo "FAILED (exit $status); the full log ($log):"
    cat "$log"
    echo "--- end of $log"
    exit "$status"
fi
