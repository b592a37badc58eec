#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (all, or the ones named) for SECONDS
# each, niced, JOBS at a time, and prints per target the executions, the
# executions per second and whether it found a crash.
#
#   contrib/fuzz.sh [-j JOBS] [SECONDS] [TARGET...]
#   contrib/fuzz.sh 1800                   # 30 minutes each, 2 at a time
#   contrib/fuzz.sh -j 1 60 smtp_session   # a one-minute smoke of one target
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Seeds are read from fuzz/seeds/TARGET; new inputs go to fuzz/corpus/TARGET
# and crashes to fuzz/artifacts/TARGET (both ignored by git). Logs go to
# $FUZZ_LOG_DIR (default /tmp/listd-fuzz-logs), one TARGET.log per target,
# and summary.txt. Extra libFuzzer flags come from $FUZZ_ARGS (for example
# FUZZ_ARGS="-fork=1 -ignore_crashes=1" to go on after a crash).
set -euo pipefail

jobs=2
if [[ "${1:-}" == "-j" ]]; then
    jobs="${2:?-j needs a number}"
    shift 2
fi
seconds="${1:-60}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [-j JOBS] [SECONDS] [TARGET...]" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
logs="${FUZZ_LOG_DIR:-/tmp/listd-fuzz-logs}"
mkdir -p "$logs"

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cd "$fuzz" && cargo +nightly fuzz list)
fi

echo "building the fuzz targets (niced)..."
(cd "$fuzz" && nice -n 19 cargo +nightly fuzz build -O)

# Runs one target; prints its summary line.
run_one() {
    local t="$1" log="$logs/$1.log"
    mkdir -p "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
    local status=0
    touch "$log.start"
    (cd "$fuzz" && nice -n 19 cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=20 -print_final_stats=1 ${FUZZ_ARGS:-}) >"$log" 2>&1 || status=$?
    local execs rate result
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    local found
    found="$(find "$fuzz/artifacts/$t" -newer "$log.start" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)"
    if [[ $status -eq 0 && $found -eq 0 ]]; then
        result="no crash"
    elif [[ $status -eq 0 ]]; then
        result="CRASH: $found input(s) in fuzz/artifacts/$t"
    else
        local artifact
        artifact="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')"
        if [[ -z "$artifact" && $found -eq 0 ]]; then
            # libFuzzer itself failed (fork mode's final merge, say): no input crashed
            result="no crash (libFuzzer exited $status: see $log)"
        else
            result="CRASH (exit $status) ${artifact:-see $log}"
        fi
    fi
    # fork mode prints no final stats: take the last status line's count
    if [[ -z "$execs" ]]; then
        execs="$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')"
    fi
    printf '%-14s execs=%-10s exec/s=%-7s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
}
export -f run_one
export fuzz logs seconds

echo "running ${targets[*]} for ${seconds}s each, $jobs at a time; logs in $logs"
printf '%s\n' "${targets[@]}" |
    xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} | tee "$logs/summary.txt"
! grep -q CRASH "$logs/summary.txt"
