#!/usr/bin/env bash
# The scheduled daily job: ingest -> build -> train (on the retrain weekday, or while
# there is no champion yet) -> recommend -> report -> maintain (on the maintain weekday)
# -> status --alert.
#
# One run at a time per lake: the job holds an flock on <lake>/.locks/daily.lock; a
# second run started meanwhile logs that it skipped and exits 0 (the running one does
# the work; `lakehouse status` flags the lake if that run hangs long enough to go stale).
# Output goes to <lake>/logs/daily-<date>.log (and to the terminal).
#
# Environment (all optional):
#   LAKEHOUSE_LAKE             the lake (default: <repo>/lake)
#   LAKEHOUSE_API_URL ...      every LAKEHOUSE_* setting is read by the commands
#   LAKEHOUSE_RETRAIN_WEEKDAY  0 = Monday .. 6 = Sunday (default 0); -1: only when no champion
#   LAKEHOUSE_MAINTAIN_WEEKDAY the weekday of `lakehouse maintain` (default 6, Sunday); -1: never
#   LAKEHOUSE_DATE             the day to process, YYYY-MM-DD (default: today, UTC)
#   LAKEHOUSE_BIN              the lakehouse command (default: <repo>/.venv/bin/lakehouse)
#   LAKEHOUSE_DAILY_WAIT       seconds to wait for a running job instead of skipping (default 0)
#
# Exit codes: 0 done (or skipped), otherwise the failing step's exit code, after a
# job_failed alert was sent (the step itself alerts on failed runs too).
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${LAKEHOUSE_BIN:-$repo/.venv/bin/lakehouse}"
export LAKEHOUSE_LAKE="${LAKEHOUSE_LAKE:-$repo/lake}"
day="${LAKEHOUSE_DATE:-$(date -u +%F)}"
retrain_weekday="${LAKEHOUSE_RETRAIN_WEEKDAY:-0}"
maintain_weekday="${LAKEHOUSE_MAINTAIN_WEEKDAY:-6}"
wait_seconds="${LAKEHOUSE_DAILY_WAIT:-0}"

if [[ ! "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || ! iso_day=$(date -u -d "$day" +%u 2>/dev/null)
then
    echo "daily.sh: LAKEHOUSE_DATE=$day is not a date; use YYYY-MM-DD" >&2
    exit 2
fi
weekday=$(( iso_day - 1 ))  # Python's weekday(): Monday is 0
if [[ ! -x "$bin" ]]; then
    echo "daily.sh: $bin is not executable; run 'make install' or set LAKEHOUSE_BIN" >&2
    exit 2
fi

mkdir -p "$LAKEHOUSE_LAKE/logs" "$LAKEHOUSE_LAKE/.locks"
log="$LAKEHOUSE_LAKE/logs/daily-$day.log"
# Everything below, including a skip, is logged; tee keeps `make daily` readable.
exec > >(tee -a "$log") 2>&1

note() { echo "$(date -u +%FT%TZ) daily[$$] $*"; }

exec 9>"$LAKEHOUSE_LAKE/.locks/daily.lock"
if [[ "$wait_seconds" == 0 ]]; then lock_args=(-n); else lock_args=(-w "$wait_seconds"); fi
if ! flock "${lock_args[@]}" 9; then
    note "another daily run holds $LAKEHOUSE_LAKE/.locks/daily.lock; skipped"
    exit 0
fi

step() {  # step NAME ARGS...: run one command; on failure alert and stop
    local name=$1 rc=0
    shift
    note "start $name"
    "$bin" "$@" || rc=$?
    if (( rc != 0 )); then
        note "FAILED $name (exit $rc)"
        "$bin" alert --job daily \
            --message "daily job for $day failed at step '$name' (exit $rc); see $log" \
            || note "could not send the job_failed alert"
        exit "$rc"
    fi
    note "done $name"
}

has_champion() {
    "$bin" models list --format json 2>/dev/null | grep -q '"alias": "champion"'
}

note "daily job for $day on lake $LAKEHOUSE_LAKE"
step ingest ingest --date "$day" --no-progress
step build build --date "$day"
if [[ "$weekday" == "$retrain_weekday" ]]; then
    step train train --date "$day"
elif ! has_champion; then
    note "no champion model yet: training now rather than waiting for weekday $retrain_weekday"
    step train train --date "$day"
fi
step recommend recommend --date "$day"
step report report
if [[ "$weekday" == "$maintain_weekday" ]]; then
    step maintain maintain
fi
# The final verdict: stale data or missed scoring alert here; exit 1 when unhealthy.
note "start status"
if ! "$bin" status --alert; then
    note "UNHEALTHY: see the problems above"
    exit 1
fi
note "done: healthy"
