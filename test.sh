#!/usr/bin/env bash
# Runs every test Weir has: unit tests, the sqllogictest files against a real server, the
# wire-protocol tests, the crash test, the EXPLAIN snapshots and the Kafka client tests.
# Installs what the tests need first: real Kafka clients (confluent-kafka, which bundles
# librdkafka, and kafka-python) and the psycopg drivers into a virtualenv outside the clone, reused between runs, and
# kcat from Debian.
set -euo pipefail
cd "$(dirname "$0")"

venv="${WEIR_TEST_VENV:-$HOME/.cache/weir-test-venv}"
if ! "$venv/bin/python" -c "import confluent_kafka, kafka, psycopg, psycopg2" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        confluent-kafka==2.16.1 kafka-python==3.0.12 "psycopg[binary]==3.2.*" psycopg2-binary==2.9.*
fi
export WEIR_TEST_PYTHON="$venv/bin/python"
# kcat, the Kafka command-line client, from Debian.
if ! command -v kcat >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kcat >/dev/null
fi

cargo test --locked "$@"
