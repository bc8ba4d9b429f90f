#!/usr/bin/env bash
# Nexmark on Apache Flink, side by side with Weir, on the same event files.
#
# Measures: events/s of each Nexmark query in Flink SQL (PyFlink 2.x, local mini cluster,
# streaming mode, filesystem JSON sources, blackhole sink) at parallelism 1 and 2, timed
# by the job's own net runtime (getNetRuntime: processing only, job start-up excluded),
# plus the Flink JVM's CPU seconds for the job (which include that job's start-up).
#
# Run:
#   weir nexmark --events 1000000 --format json --out /tmp/nexmark     # the input
#   benches/nexmark/flink.sh /tmp/nexmark [--parallelism 1|2|both] [--queries q0,q5u,...]
#                            [--runs N] [--weir FILE] [--check]
#
#   --parallelism  1, 2 or both (default both)
#   --queries      default: every benches/nexmark/flink/*.sql (q0 q1 q2 q3 q4 q5u q7u q8u q10
#                  q12u q13 q14 q20 q21 q22; qNu is qN without its window, as in sql-tests/nexmark)
#   --runs N       run each query N times (default 1)
#   --weir FILE    Weir's figures, lines of query<TAB>events_per_s (default EVENTS_DIR/weir.tsv,
#                  or WEIR_EVENTS_PER_S="q0=69000,q1=61000"): printed beside Flink's, with the ratio
#   --check        also print the row count of each result (a batch job after the timed one)
#
# EVENTS_DIR holds person.json, auction.json, bid.json: newline-delimited flat JSON, one event
# a line, timestamps as ISO 8601 strings ("2015-07-15T00:00:00.001"). events = all three files.
# At parallelism 2 each file is first cut in two line-aligned parts (untimed): Flink's file
# source reads one file as one split, so one bid.json would feed only one source subtask.
# All jobs run in one JVM, in order (parallelism 1 first): the first job also warms the JIT,
# so at small inputs use --runs 2 and take the later figures. weir/flink > 1: Weir is faster.
#
# The first run installs PyFlink (apache-flink 2.3) into a virtualenv at
# ~/.cache/weir-flink-venv (about a minute, ~850 MB); later runs reuse it. Needs java 17 on PATH
# (JAVA_HOME is derived from it when unset). Everything binds to 127.0.0.1; the temp dir and
# the JVM go away at exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${WEIR_FLINK_VENV:-$HOME/.cache/weir-flink-venv}"
FLINK_VERSION="${WEIR_FLINK_VERSION:-2.3.*}"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
[[ $# -ge 1 ]] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
EVENTS_DIR="$1"
[[ -d "$EVENTS_DIR" ]] || { echo "flink.sh: $EVENTS_DIR is not a directory" >&2; exit 2; }

# --- the JDK ---
if ! command -v java >/dev/null; then
    echo "flink.sh: java not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)" >&2
    exit 1
fi
if [[ -z "${JAVA_HOME:-}" ]]; then
    JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
    export JAVA_HOME
fi

# --- PyFlink, once ---
if ! "$VENV/bin/python" -c 'import pyflink' 2>/dev/null; then
    echo "# installing apache-flink==$FLINK_VERSION into $VENV (once)" >&2
    start=$(date +%s)
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "apache-flink==$FLINK_VERSION"
    echo "# installed in $(( $(date +%s) - start )) s" >&2
fi

# --- run ---
TMP="$(mktemp -d -t weir-flink-sh.XXXXXX)"
DRIVER_PGID=""   # the driver runs in a process group of its own, with its JVM
group_alive() { [[ -n "$DRIVER_PGID" ]] && kill -0 -- "-$DRIVER_PGID" 2>/dev/null; }
cleanup() {
    # The JVM may outlive the driver by a moment; give the group 5 s, then end it.
    for _ in $(seq 50); do group_alive || break; sleep 0.1; done
    if group_alive; then
        kill -- "-$DRIVER_PGID" 2>/dev/null || true
        for _ in $(seq 50); do group_alive || break; sleep 0.1; done
        kill -9 -- "-$DRIVER_PGID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export TMPDIR="$TMP"      # Flink's and py4j's scratch files land here and go with it
export JVM_ARGS="${JVM_ARGS:-} -Djava.io.tmpdir=$TMP -XX:-UsePerfData"   # the JVM's too
# No Python UDFs here: no loopback gRPC server for Python workers (it would listen on [::]).
export _python_worker_execution_mode=process
# Flink's own log goes to a file in TMP (its tail is printed if the driver fails).
export FLINK_LOG_DIR="$TMP/log"
mkdir -p "$FLINK_LOG_DIR"

echo "# $("$VENV/bin/python" -c 'import pyflink.version as v; print("PyFlink", v.__version__)'), $(java -version 2>&1 | head -1), $(nproc) cores"
# A process group of its own, so cleanup can end the JVM with it.
set +e
setsid "$VENV/bin/python" "$HERE/flink_run.py" "$@" &
DRIVER_PGID=$!
wait "$DRIVER_PGID"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
    echo "flink.sh: the driver failed (exit $rc); Flink's log:" >&2
    tail -n 40 "$FLINK_LOG_DIR"/*.log 2>/dev/null >&2 || true
fi
exit "$rc"
