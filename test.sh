#!/usr/bin/env bash
# Runs every test Weir has: unit tests, the sqllogictest files against a real server, the
# wire-protocol tests, the crash test and the EXPLAIN snapshots. Installs nothing today: all
# of it is Rust. (Client tests with psql/JDBC/ODBC will install their clients here.)
set -euo pipefail
cd "$(dirname "$0")"
cargo test --locked "$@"
