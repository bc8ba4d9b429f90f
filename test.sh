#!/usr/bin/env bash
# Runs every test Weir has: unit tests, the sqllogictest files against a real server, the
# wire-protocol tests, the crash test, the EXPLAIN snapshots, the Kafka client tests and the
# Postgres client tests (tests/clients.rs); then the SQL suite and the crash test again with 1
# and with 4 workers per view, and with no operator state kept in memory past an epoch.
# Installs what the tests need first, skipping whatever is already there:
#  - from Debian: kcat, psql 15, openssl (tests/auth.rs makes its TLS certificates), curl
#    (tests/auth.rs's https requests), a JDK
#    (java runs tests/clients/JdbcCheck.java as a source file, which needs the compiler) and
#    pgJDBC, psqlODBC and unixODBC, node and npm;
#  - into a virtualenv outside the clone, reused between runs: real Kafka clients
#    (confluent-kafka, which bundles librdkafka, and kafka-python), psycopg 3 and psycopg2,
#    SQLAlchemy 2, pandas, pyodbc and pgcli;
#  - into an npm cache folder outside the clone: node-postgres (pg).
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages, each installed only when what it brings is missing.
apt_wanted=()
command -v kcat >/dev/null || apt_wanted+=(kcat)
command -v psql >/dev/null || apt_wanted+=(postgresql-client)
command -v openssl >/dev/null || apt_wanted+=(openssl)
command -v curl >/dev/null || apt_wanted+=(curl)
command -v javac >/dev/null || apt_wanted+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || apt_wanted+=(libpostgresql-jdbc-java)
compgen -G "/usr/lib/*/odbc/psqlodbcw.so" >/dev/null || apt_wanted+=(odbc-postgresql)
command -v odbcinst >/dev/null || apt_wanted+=(unixodbc)
[ -f /usr/include/sql.h ] || apt_wanted+=(unixodbc-dev)
command -v node >/dev/null || apt_wanted+=(nodejs)
command -v npm >/dev/null || apt_wanted+=(npm)
if [ ${#apt_wanted[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "test.sh: installing from Debian: ${apt_wanted[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${apt_wanted[@]}" >/dev/null
fi
export WEIR_TEST_JDBC_JAR=/usr/share/java/postgresql.jar
WEIR_TEST_ODBC_DRIVER="$(compgen -G "/usr/lib/*/odbc/psqlodbcw.so" | head -n 1 || true)"
export WEIR_TEST_ODBC_DRIVER

# Python clients (pyodbc links unixODBC, installed above).
venv="${WEIR_TEST_VENV:-$HOME/.cache/weir-test-venv}"
if ! "$venv/bin/python" -c "import confluent_kafka, kafka, psycopg, psycopg2, sqlalchemy, pandas, pyodbc, pgcli" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        confluent-kafka==2.16.1 kafka-python==3.0.12 "psycopg[binary]==3.2.*" psycopg2-binary==2.9.* \
        "sqlalchemy==2.0.*" "pandas==2.2.*" "pyodbc==5.2.*" "pgcli==4.3.*"
fi
export WEIR_TEST_PYTHON="$venv/bin/python"

# node-postgres.
node_dir="${WEIR_TEST_NODE_DIR:-$HOME/.cache/weir-test-node}"
if [ ! -f "$node_dir/node_modules/pg/package.json" ]; then
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --silent --no-audit --no-fund pg@8.23.1 >/dev/null
fi
export WEIR_TEST_NODE_MODULES="$node_dir/node_modules"

# The end-to-end suites run against the optimized binary users run (tests/common/mod.rs starts
# $WEIR_TEST_BIN); the test programs themselves stay in the dev profile. Set WEIR_TEST_BIN to test
# another server binary and skip this build.
if [ -z "${WEIR_TEST_BIN:-}" ]; then
    cargo build --release --locked --bin weir
    target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
    export WEIR_TEST_BIN="$target_dir/release/weir"
fi
echo "test.sh: end-to-end suites run $WEIR_TEST_BIN"

cargo test --locked "$@"

# Results must not depend on the number of workers per view: the full run above uses the
# default (one per core); the SQL suite and the crash test run again with 1 and with 4.
if [ $# -eq 0 ]; then
    for workers in 1 4; do
        echo "test.sh: sqllogictest and crash with --workers $workers"
        WEIR_TEST_WORKERS=$workers cargo test --locked --test sqllogictest --test crash
    done
    # Nor on how much operator state fits in memory: with none, every group is read back from
    # the store whenever its key comes again.
    echo "test.sh: sqllogictest, crash and workers with --state-cache-mb 0"
    WEIR_TEST_STATE_CACHE_MB=0 cargo test --locked --test sqllogictest --test crash --test workers
fi
