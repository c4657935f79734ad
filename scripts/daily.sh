#!/usr/bin/env bash
# Cron wrapper of the daily job: one run at a time, a log file, then `lakehouse daily`.
#
# The job itself (ingest -> build -> train when due -> recommend -> report -> status,
# its alerts and its exit code) is the library's: see `lakehouse daily --help`.
#
# One run at a time per lake: an flock on <lake>/.locks/daily.lock; a second run started
# meanwhile logs that it skipped and exits 0 (the running one does the work; `lakehouse
# status` flags the lake if that run hangs long enough to go stale).
# Output goes to <lake>/logs/daily-<date>.log (and to the terminal).
#
# Environment (all optional):
#   LAKEHOUSE_LAKE             the lake (default: <repo>/lake)
#   LAKEHOUSE_API_URL ...      every LAKEHOUSE_* setting is read by `lakehouse daily`
#   LAKEHOUSE_RETRAIN_WEEKDAY  0 = Monday .. 6 = Sunday (default 0); -1: only when no champion
#   LAKEHOUSE_DATE             the day to process, YYYY-MM-DD (default: today, UTC)
#   LAKEHOUSE_BIN              the lakehouse command (default: <repo>/.venv/bin/lakehouse)
#   LAKEHOUSE_DAILY_WAIT       seconds to wait for a running job instead of skipping (default 0)
#
# Exit codes: 0 done (or skipped), 2 bad date or no command, otherwise `lakehouse daily`'s.
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${LAKEHOUSE_BIN:-$repo/.venv/bin/lakehouse}"
export LAKEHOUSE_LAKE="${LAKEHOUSE_LAKE:-$repo/lake}"
day="${LAKEHOUSE_DATE:-$(date -u +%F)}"
wait_seconds="${LAKEHOUSE_DAILY_WAIT:-0}"

# The date names the log file, so it is checked here rather than by the command.
if [[ ! "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || ! date -u -d "$day" +%F >/dev/null 2>&1
then
    echo "daily.sh: LAKEHOUSE_DATE=$day is not a date; use YYYY-MM-DD" >&2
    exit 2
fi
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

note "start daily job for $day on lake $LAKEHOUSE_LAKE"
rc=0
"$bin" daily --date "$day" || rc=$?
if (( rc != 0 )); then
    note "FAILED (exit $rc); see the steps above"
    exit "$rc"
fi
note "done: healthy"
