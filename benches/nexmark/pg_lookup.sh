#!/usr/bin/env bash
# Point lookups under load: Weir's materialized view against a real PostgreSQL, side by side.
#
# Measures: QPS and per-lookup latency (p50, p99 from pgbench's per-transaction log) of
#   SELECT n, total FROM kv_view WHERE k = :k        (k uniform over N keys)
# with pgbench -n -f lookup.sql -T T at
#   -M prepared  -c 8 -j 2      -M prepared  -c 1 -j 1      -M extended  -c 8 -j 2
# against
#   Weir:       CREATE SOURCE kv (k BIGINT, v BIGINT) FORMAT CSV; \copy of N rows (k = 0..N-1);
#               CREATE MATERIALIZED VIEW kv_view AS SELECT k, count(*) AS n, sum(v) AS total
#               FROM kv GROUP BY k   (its time and Weir's peak RSS, VmHWM, are printed);
#   PostgreSQL: a table kv_view (k BIGINT PRIMARY KEY, n BIGINT, total BIGINT) with the same rows,
#               in a private cluster (initdb in a temp dir, Debian's postgresql package).
#
# Run (after `cargo build --release`):
#   benches/nexmark/pg_lookup.sh [--keys N] [--seconds T] [--servers weir,postgres]
#   defaults: --keys 1000000 --seconds 30 --servers weir,postgres
#   WEIR_BIN=path/to/weir picks the binary (default target/release/weir of this repo);
#   WEIR_ARGS="--store sled" passes extra flags to it.
#
# Installs Debian's postgresql server (which brings pgbench) with apt-get if it is missing.
# Both servers listen on free ports of 127.0.0.1 only; both are stopped and the temp dir
# (data, logs, pgbench logs) removed at exit, whatever happens. pgbench runs on the same
# 2-core machine as the server it measures.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WEIR_BIN="${WEIR_BIN:-$REPO/target/release/weir}"
KEYS=1000000
SECONDS_PER_RUN=30
SERVERS="weir,postgres"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --keys) KEYS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --servers) SERVERS="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "pg_lookup.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
[[ "$KEYS" =~ ^[0-9]+$ && "$KEYS" -ge 1 ]] || { echo "pg_lookup.sh: --keys must be a positive integer" >&2; exit 2; }
[[ "$SECONDS_PER_RUN" =~ ^[0-9]+$ && "$SECONDS_PER_RUN" -ge 1 ]] || { echo "pg_lookup.sh: --seconds must be a positive integer" >&2; exit 2; }
want() { [[ ",$SERVERS," == *",$1,"* ]]; }
want weir || want postgres || { echo "pg_lookup.sh: --servers takes weir, postgres or both" >&2; exit 2; }

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# --- PostgreSQL's binaries (server, pgbench, psql of one version) ---
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
PGBIN="$(pg_bindir)"
if [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" || ! -x "$PGBIN/pgbench" ]]; then
    echo "# installing Debian's postgresql (server and pgbench)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PGBIN="$(pg_bindir)"
fi
PGBENCH="$PGBIN/pgbench"
PSQL="$PGBIN/psql"
if want weir && [[ ! -x "$WEIR_BIN" ]]; then
    echo "pg_lookup.sh: no Weir binary at $WEIR_BIN (cargo build --release, or set WEIR_BIN)" >&2
    exit 1
fi

# --- temp dir and cleanup ---
TMP="$(mktemp -d -t weir-pg-lookup.XXXXXX)"
chmod 755 "$TMP"
WEIR_PID=""
PG_STARTED=""
PG_USER=""   # the OS user running PostgreSQL (initdb refuses root)
CHILD_PID=""  # a long step (pgbench, COPY, CREATE MATERIALIZED VIEW) runs as a waited-for child,
              # so a signal ends the script at once (bash runs traps only between commands)
run_pg() { if [[ -n "$PG_USER" ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }
run_child() {
    local rc=0
    "$@" <&0 &     # (an async command's stdin would be /dev/null; keep ours, e.g. a here-doc)
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}
stop_weir() {
    if [[ -n "$WEIR_PID" ]] && kill -0 "$WEIR_PID" 2>/dev/null; then
        kill "$WEIR_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$WEIR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$WEIR_PID" 2>/dev/null
    fi
    [[ -z "$WEIR_PID" ]] || wait "$WEIR_PID" 2>/dev/null
    WEIR_PID=""
}
cleanup() {
    set +e
    if [[ -n "$CHILD_PID" ]]; then kill "$CHILD_PID" 2>/dev/null; wait "$CHILD_PID" 2>/dev/null; fi
    stop_weir
    if [[ -n "$PG_STARTED" ]]; then
        run_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# --- the rows and the lookup script ---
echo "# $KEYS keys, $SECONDS_PER_RUN s per run, $(nproc) cores, $("$PGBENCH" --version)"
awk -v n="$KEYS" 'BEGIN { for (k = 0; k < n; k++) printf "%d,%d\n", k, k * 3 }' > "$TMP/kv.csv"
cat > "$TMP/lookup.sql" <<EOF
\\set k random(0, $((KEYS - 1)))
SELECT n, total FROM kv_view WHERE k = :k;
EOF
chmod 644 "$TMP/kv.csv" "$TMP/lookup.sql"

# --- results ---
RESULTS="$TMP/results.tsv"
: > "$RESULTS"

# bench SERVER PORT USER DB MODE CLIENTS THREADS: one pgbench run, a line in $RESULTS.
bench() {
    local server=$1 port=$2 user=$3 db=$4 mode=$5 clients=$6 threads=$7
    local tag="$server-$mode-c$clients"
    local logdir="$TMP/pgbench-$tag"
    mkdir -p "$logdir"
    local out="$logdir/pgbench.out"
    if ! run_child "$PGBENCH" -h 127.0.0.1 -p "$port" -U "$user" -n -M "$mode" \
            -f "$TMP/lookup.sql" -c "$clients" -j "$threads" -T "$SECONDS_PER_RUN" \
            -l --log-prefix="$logdir/tx" "$db" > "$out" 2>&1; then
        echo "pgbench failed against $server ($mode, $clients clients):" >&2
        tail -n 20 "$out" >&2
        printf '%s\t%s\t%s\tfailed\t-\t-\t-\n' "$server" "$mode" "$clients" >> "$RESULTS"
        return 0
    fi
    local tps failed
    tps="$(awk '/^tps = / { printf "%.0f", $3 }' "$out")"
    failed="$(awk '/number of failed transactions:/ { print $5 }' "$out")"
    # Per-transaction log: client_id transaction_no time_us script_no time_epoch time_epoch_us
    # (one file per thread). Latency percentiles over every transaction, in ms.
    local pct
    pct="$(cat "$logdir"/tx.* | awk '{ print $3 }' | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- - 0"; exit }
            i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
            printf "%.3f %.3f %d\n", v[i50] / 1000, v[i99] / 1000, NR
        }')"
    read -r p50 p99 count <<< "$pct"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$mode" "$clients" "${tps:--}" "$p50" "$p99" \
        "${failed:-0}" >> "$RESULTS"
    rm -rf "$logdir"
}

bench_all() {
    local server=$1 port=$2 user=$3 db=$4
    bench "$server" "$port" "$user" "$db" prepared 8 2
    bench "$server" "$port" "$user" "$db" prepared 1 1
    bench "$server" "$port" "$user" "$db" extended 8 2
}

# --- Weir ---
if want weir; then
    WEIR_PORT="$(free_port)"
    "$WEIR_BIN" --data-dir "$TMP/weir-data" --pg-addr "127.0.0.1:$WEIR_PORT" \
        --kafka-addr off --http-addr off ${WEIR_ARGS:-} > "$TMP/weir.log" 2>&1 &
    WEIR_PID=$!
    WPSQL=("$PSQL" -h 127.0.0.1 -p "$WEIR_PORT" -U weir -d weir -X -q -v ON_ERROR_STOP=1)
    wpsql() { "${WPSQL[@]}" "$@"; }
    for _ in $(seq 100); do
        wpsql -c 'SELECT 1' >/dev/null 2>&1 && break
        kill -0 "$WEIR_PID" 2>/dev/null || { echo "Weir exited at start:" >&2; tail -n 20 "$TMP/weir.log" >&2; exit 1; }
        sleep 0.2
    done
    wpsql -c 'SELECT 1' >/dev/null || { echo "Weir does not answer on port $WEIR_PORT:" >&2; tail -n 20 "$TMP/weir.log" >&2; exit 1; }
    echo "# Weir $WEIR_BIN (pid $WEIR_PID) on 127.0.0.1:$WEIR_PORT"
    wpsql -c 'CREATE SOURCE kv (k BIGINT, v BIGINT) FORMAT CSV'
    t=$(now_s)
    run_child "${WPSQL[@]}" -c "\\copy kv FROM '$TMP/kv.csv' WITH (FORMAT csv)"
    echo "# Weir: COPY of $KEYS rows: $(elapsed "$t") s"
    t=$(now_s)
    run_child "${WPSQL[@]}" -c 'CREATE MATERIALIZED VIEW kv_view AS SELECT k, count(*) AS n, sum(v) AS total FROM kv GROUP BY k'
    mv_s="$(elapsed "$t")"
    hwm="$(awk '/^VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$WEIR_PID/status")"
    rss="$(awk '/^VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$WEIR_PID/status")"
    echo "# Weir: CREATE MATERIALIZED VIEW kv_view over $KEYS keys: $mv_s s; peak RSS (VmHWM) $hwm, RSS now $rss"
    check="$(wpsql -A -t -c "SELECT n, total FROM kv_view WHERE k = $((KEYS - 1))")"
    [[ "$check" == "1|$(( (KEYS - 1) * 3 ))" ]] || { echo "Weir: kv_view lookup gave '$check'" >&2; exit 1; }
    bench_all weir "$WEIR_PORT" weir weir
    hwm="$(awk '/^VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$WEIR_PID/status")"
    echo "# Weir: peak RSS after the lookups $hwm"
    stop_weir || true
fi

# --- PostgreSQL ---
if want postgres; then
    if [[ $EUID -eq 0 ]]; then
        PG_USER=postgres
        id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
        chown -R "$PG_USER" "$TMP"
    fi
    PG_PORT="$(free_port)"
    run_pg "$PGBIN/initdb" -D "$TMP/pg" -U weir --auth=trust -E UTF8 --no-instructions >/dev/null
    run_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $TMP -c max_connections=50" start >/dev/null
    PG_STARTED=1
    PPSQL=("$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U weir -X -q -v ON_ERROR_STOP=1)
    ppsql() { "${PPSQL[@]}" "$@"; }
    ppsql -d postgres -c 'CREATE DATABASE weir'
    echo "# PostgreSQL $(ppsql -d weir -A -t -c 'SHOW server_version') on 127.0.0.1:$PG_PORT"
    t=$(now_s)
    run_child "${PPSQL[@]}" -d weir <<EOF
CREATE TABLE kv (k BIGINT, v BIGINT);
\\copy kv FROM '$TMP/kv.csv' WITH (FORMAT csv)
CREATE TABLE kv_view (k BIGINT PRIMARY KEY, n BIGINT, total BIGINT);
INSERT INTO kv_view SELECT k, count(*), sum(v) FROM kv GROUP BY k;
DROP TABLE kv;
VACUUM ANALYZE kv_view;
EOF
    echo "# PostgreSQL: kv_view loaded, indexed and analyzed in $(elapsed "$t") s"
    check="$(ppsql -d weir -A -t -c "SELECT n, total FROM kv_view WHERE k = $((KEYS - 1))")"
    [[ "$check" == "1|$(( (KEYS - 1) * 3 ))" ]] || { echo "PostgreSQL: kv_view lookup gave '$check'" >&2; exit 1; }
    bench_all postgres "$PG_PORT" weir weir
fi

# --- the table ---
echo
{
    printf 'server\tmode\tclients\tQPS\tp50_ms\tp99_ms\tfailed\n'
    cat "$RESULTS"
} | column -t -s $'\t' -R 3,4,5,6,7
if want weir && want postgres; then
    echo
    awk -F'\t' '
        { qps[$1 FS $2 FS $3] = $4; key[$2 FS $3] = 1 }
        END {
            for (k in key) {
                split(k, m, FS); w = qps["weir" FS k]; p = qps["postgres" FS k]
                if (w + 0 > 0 && p + 0 > 0)
                    printf "# weir/postgres QPS, %s, %s clients: %.2f\n", m[1], m[2], w / p
            }
        }' "$RESULTS" | sort
fi
