"""Nexmark on Apache Flink (PyFlink), for Weir's side-by-side figures.

Run through flink.sh, which installs PyFlink and sets JAVA_HOME:

    benches/nexmark/flink.sh EVENTS_DIR [--parallelism 1|2|both] [--queries q0,q1,...]

EVENTS_DIR holds person.json, auction.json and bid.json as `weir nexmark --format json`
writes them (newline-delimited flat JSON, timestamps as ISO 8601 strings). Each query's
SELECT is read from flink/<query>.sql beside this file and run, in streaming mode, as
`INSERT INTO <blackhole sink>`: the filesystem source is bounded, so the job ends when the
files are read and its net runtime (getNetRuntime, which excludes job start-up) is the
processing time. One line per query and parallelism:

    query  parallelism  events  seconds  events/s  [cpu_s  events/cpu_s]  [weir events/s  weir/flink]

events counts every event of the input (the three files together), as Nexmark does.
At parallelism P > 1 each file is first cut into P line-aligned parts (untimed), because
Flink's file source reads a file as one split: one part per source subtask.
cpu_s is the CPU time of the Flink JVM from submit to end of job, so it includes the
planning and start-up of that job (about a second or two); events/cpu_s is per core.

Weir's figures, if given (WEIR_EVENTS_PER_S, or a file of `query<TAB>events_per_s` lines:
--weir FILE, default EVENTS_DIR/weir.tsv), are printed beside Flink's with the ratio.
"""

import argparse
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SQL_DIR = os.path.join(HERE, "flink")

# The order queries run and print in, when --queries is not given.
QUERY_ORDER = ["q0", "q1", "q2", "q3", "q4", "q5u", "q7u", "q8u", "q10", "q12u", "q13", "q14", "q20",
               "q21", "q22"]

SIDE_INPUT_ROWS = 10_000

# Standard Nexmark schemas (as Flink's nexmark and RisingWave declare them).
TABLES = {
    "person": """
        id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR,
        state VARCHAR, date_time TIMESTAMP(3), extra VARCHAR""",
    "auction": """
        id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT,
        date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT,
        extra VARCHAR""",
    "bid": """
        auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
        date_time TIMESTAMP(3), extra VARCHAR""",
}


def parse_args():
    p = argparse.ArgumentParser(description="Nexmark queries on PyFlink over Weir's event files")
    p.add_argument("events_dir")
    p.add_argument("--parallelism", default="both", choices=["1", "2", "both"])
    p.add_argument("--queries", default=None,
                   help="comma-separated, e.g. q0,q5u (default: every flink/*.sql)")
    p.add_argument("--runs", type=int, default=1, help="runs of each query (default 1)")
    p.add_argument("--weir", default=None,
                   help="file of query<TAB>events_per_s lines (default EVENTS_DIR/weir.tsv)")
    p.add_argument("--check", action="store_true",
                   help="also print the row count of each query's result (computed by a "
                        "batch job, after the timed one), to compare with Weir's view")
    return p.parse_args()


def available_queries():
    names = [os.path.basename(f)[:-4] for f in glob.glob(os.path.join(SQL_DIR, "*.sql"))]
    known = [q for q in QUERY_ORDER if q in names]
    return known + sorted(q for q in names if q not in QUERY_ORDER)


def read_select(query):
    with open(os.path.join(SQL_DIR, query + ".sql")) as f:
        text = f.read()
    # Drop `--` comment lines and the trailing semicolon: the driver wraps it in INSERT INTO.
    lines = [l for l in text.splitlines() if not l.strip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").strip()


def count_lines(path):
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 24)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def weir_figures(args):
    """query -> Weir's events/s, from WEIR_EVENTS_PER_S and/or the weir.tsv file."""
    figures = {}
    texts = []
    env = os.environ.get("WEIR_EVENTS_PER_S")
    if env:
        texts.append(env)
    path = args.weir or os.path.join(args.events_dir, "weir.tsv")
    if os.path.exists(path):
        with open(path) as f:
            texts.append(f.read())
    elif args.weir:
        sys.exit(f"flink_run: no such file {args.weir}")
    for text in texts:
        for item in re.split(r"[\n,;]+", text):
            parts = re.split(r"[\t =:]+", item.strip())
            if len(parts) >= 2:
                try:
                    figures[parts[0]] = float(parts[-1])
                except ValueError:
                    pass  # a header line
    return figures


def descendants(pid):
    """pid and every process below it (the JVM is a child of this Python process)."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def write_side_input(tmp):
    path = os.path.join(tmp, "side_input.json")
    with open(path, "w") as f:
        for k in range(SIDE_INPUT_ROWS):
            f.write(json.dumps({"key": k, "value": str(k)}) + "\n")
    return path


def split_inputs(events_dir, parts, tmp):
    """Each table's file cut into `parts` line-aligned files in a folder of its own.

    Flink's file source reads one file as one split, so at parallelism 2 a single bid.json
    would be read and parsed by one source subtask only. A folder of `parts` files gives
    every source subtask its split. The copy is made before any job starts (not timed).
    Returns a folder holding person/, auction/ and bid/.
    """
    out = os.path.join(tmp, f"split-{parts}")
    for name in TABLES:
        src = os.path.join(events_dir, name + ".json")
        size = os.path.getsize(src)
        os.makedirs(os.path.join(out, name))
        with open(src, "rb") as f:
            bounds = [0]
            for i in range(1, parts):
                f.seek(max(size * i // parts, bounds[-1]))
                if f.tell() > 0:
                    f.seek(f.tell() - 1)
                    f.readline()  # to the start of the next line
                bounds.append(min(f.tell(), size))
            bounds.append(size)
            for i in range(parts):
                with open(os.path.join(out, name, f"part-{i}.json"), "wb") as g:
                    f.seek(bounds[i])
                    left = bounds[i + 1] - bounds[i]
                    while left > 0:
                        chunk = f.read(min(left, 1 << 24))
                        g.write(chunk)
                        left -= len(chunk)
    return out


def make_env(parallelism, events_dir, side_path, tmp, batch=False):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.in_batch_mode() if batch else EnvironmentSettings.in_streaming_mode()
    env = TableEnvironment.create(settings)
    conf = env.get_config()
    for key, value in {
        "parallelism.default": str(parallelism),
        "io.tmp.dirs": tmp,
        # Everything on loopback.
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
    }.items():
        conf.set(key, value)
    for name, columns in TABLES.items():
        path = os.path.join(events_dir, name) if parallelism > 1 else os.path.join(events_dir, name + ".json")
        env.execute_sql(f"""
            CREATE TEMPORARY TABLE {name} ({columns}) WITH (
                'connector' = 'filesystem',
                'path' = 'file://{path}',
                'format' = 'json',
                'json.timestamp-format.standard' = 'ISO-8601',
                'json.fail-on-missing-field' = 'false',
                'json.ignore-parse-errors' = 'false'
            )""")
    env.execute_sql(f"""
        CREATE TEMPORARY TABLE side_input (`key` BIGINT, `value` VARCHAR) WITH (
            'connector' = 'filesystem',
            'path' = 'file://{side_path}',
            'format' = 'json'
        )""")
    return env


def sink_ddl(env, name, select):
    """A blackhole sink with the columns (names and types) of the query's result."""
    schema = env.sql_query(select)._j_table.getResolvedSchema()
    columns = []
    for col in schema.getColumns():
        columns.append(f"`{col.getName()}` {col.getDataType().getLogicalType().asSerializableString()}")
    return f"CREATE TEMPORARY TABLE {name} ({', '.join(columns)}) WITH ('connector' = 'blackhole')"


def check_rows(events_dir, side_path, tmp, select):
    """Rows in the query's final result, for comparing with Weir's view: the same query over
    the same bounded files in batch mode (which gives what the streaming job ends with), as
    one count, so nothing large crosses into Python."""
    env = make_env(1, events_dir, side_path, tmp, batch=True)
    with env.execute_sql(f"SELECT count(*) FROM ({select})").collect() as results:
        return next(iter(results))[0]


def fmt_rate(x):
    return f"{x:.0f}"


def main():
    args = parse_args()
    events_dir = os.path.abspath(args.events_dir)
    for name in TABLES:
        if not os.path.exists(os.path.join(events_dir, name + ".json")):
            sys.exit(f"flink_run: {events_dir}/{name}.json is missing "
                     f"(write it with: weir nexmark --events N --format json --out {events_dir})")
    queries = args.queries.split(",") if args.queries else available_queries()
    for q in queries:
        if not os.path.exists(os.path.join(SQL_DIR, q + ".sql")):
            sys.exit(f"flink_run: no Flink SQL for {q} (expected {SQL_DIR}/{q}.sql)")
    parallelisms = [1, 2] if args.parallelism == "both" else [int(args.parallelism)]
    weir = weir_figures(args)

    counts = {name: count_lines(os.path.join(events_dir, name + ".json")) for name in TABLES}
    events = sum(counts.values())
    print(f"# events: {events:,} (person {counts['person']:,}, auction {counts['auction']:,}, "
          f"bid {counts['bid']:,}) in {events_dir}", flush=True)

    tmp = tempfile.mkdtemp(prefix="weir-flink-")
    try:
        side_path = write_side_input(tmp)
        header = ["query", "parallelism", "events", "seconds", "events_per_s",
                  "cpu_s", "events_per_cpu_s"]
        if weir:
            header += ["weir_events_per_s", "weir/flink"]
        if args.check:
            header += ["rows"]
        widths = {"query": 7, "parallelism": 11, "events": 11, "seconds": 9,
                  "events_per_s": 12, "cpu_s": 7, "events_per_cpu_s": 16,
                  "weir_events_per_s": 17, "weir/flink": 10, "rows": 9}
        line = lambda cells: "  ".join(str(c).rjust(widths[h]) for c, h in zip(cells, header))
        print(line(header), flush=True)
        for parallelism in parallelisms:
            inputs = events_dir if parallelism == 1 else split_inputs(events_dir, parallelism, tmp)
            for q in queries:
                select = read_select(q)
                for run in range(args.runs):
                    env = make_env(parallelism, inputs, side_path, tmp)
                    env.execute_sql(sink_ddl(env, "sink", select))
                    pids = descendants(os.getpid())
                    cpu0 = cpu_seconds(pids)
                    result = env.execute_sql(f"INSERT INTO sink {select}")
                    job = result.get_job_client().get_job_execution_result().result()
                    cpu = cpu_seconds(pids) - cpu0
                    seconds = job.get_net_runtime() / 1000.0
                    rate = events / seconds if seconds > 0 else float("inf")
                    cells = [q, parallelism, events, f"{seconds:.3f}", fmt_rate(rate),
                             f"{cpu:.2f}", fmt_rate(events / cpu) if cpu > 0 else "-"]
                    if weir:
                        w = weir.get(q)
                        cells += [fmt_rate(w), f"{w / rate:.2f}"] if w else ["-", "-"]
                    if args.check:
                        cells += [check_rows(events_dir, side_path, tmp, select)]
                    print(line(cells), flush=True)
            if inputs != events_dir:
                shutil.rmtree(inputs, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
