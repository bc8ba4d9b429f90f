"""psycopg2 and psycopg 3 doing what applications and notebooks do, against the fixture of
tests/clients.rs (source clicks, table users with a primary key, materialized view per_user):
list relations and columns through information_schema, read the view, parameterized queries,
a statement psycopg 3 prepares on the server after 5 runs, a server-side cursor, COPY TO,
the type lookups both drivers make. Prints "ok" at the end; any failure raises."""
import datetime
import sys

import psycopg
import psycopg.types
import psycopg2
import psycopg2.extras

dsn = f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir"

TABLES_SQL = """
    SELECT table_name, table_type FROM information_schema.tables
    WHERE table_schema = 'public' ORDER BY table_name"""
COLUMNS_SQL = """
    SELECT column_name, data_type, is_nullable FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position"""

EXPECTED_COLUMNS = {
    "users": [
        ("id", "bigint", "NO"),
        ("name", "text", "YES"),
        ("score", "double precision", "YES"),
        ("active", "boolean", "YES"),
    ],
    "clicks": [
        ("user_id", "bigint", "YES"),
        ("url", "text", "YES"),
        ("ts", "timestamp without time zone", "YES"),
    ],
}


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def check_catalog(cur, driver):
    cur.execute(TABLES_SQL)
    tables = dict(cur.fetchall())
    # information_schema.tables lists tables as BASE TABLE; Postgres leaves materialized
    # views out of it, so the view is not asserted here (see pg_matviews below).
    check(f"{driver} clicks in information_schema.tables", tables.get("clicks"), "BASE TABLE")
    check(f"{driver} users in information_schema.tables", tables.get("users"), "BASE TABLE")
    for table, want in EXPECTED_COLUMNS.items():
        cur.execute(COLUMNS_SQL, (table,))
        check(f"{driver} columns of {table}", [tuple(r) for r in cur.fetchall()], want)
    cur.execute(
        """SELECT kcu.column_name FROM information_schema.table_constraints tc
           JOIN information_schema.key_column_usage kcu
             ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name
           WHERE tc.table_schema = 'public' AND tc.table_name = %s
             AND tc.constraint_type = 'PRIMARY KEY' ORDER BY kcu.ordinal_position""",
        ("users",),
    )
    check(f"{driver} primary key of users", [r[0] for r in cur.fetchall()], ["id"])
    cur.execute("SELECT matviewname FROM pg_catalog.pg_matviews WHERE schemaname = 'public'")
    check(f"{driver} pg_matviews", [r[0] for r in cur.fetchall()], ["per_user"])


# ---- psycopg 3
with psycopg.connect(dsn) as conn:  # not autocommit: BEGIN first, as psycopg does by default
    with conn.cursor() as cur:
        check_catalog(cur, "psycopg")

        cur.execute("SELECT user_id, n, last_url, last_ts FROM per_user ORDER BY user_id")
        check("psycopg description", [c.name for c in cur.description],
              ["user_id", "n", "last_url", "last_ts"])
        check("psycopg per_user", cur.fetchall(), [
            (1, 2, "/c", datetime.datetime(2026, 1, 1, 0, 0, 3)),
            (2, 1, "/b", datetime.datetime(2026, 1, 1, 0, 0, 2)),
        ])

        # The default prepare_threshold is 5: the 6th run uses a named server-side statement.
        for i in range(8):
            cur.execute("SELECT name, score FROM users WHERE id = %s", (1 + i % 2,))
            check("psycopg prepared", cur.fetchall(), [("ann", 1.5)] if i % 2 == 0 else [("bob", 2.5)])
        # Binary results.
        with conn.cursor(binary=True) as bcur:
            for _ in range(6):
                bcur.execute("SELECT user_id, n, last_ts FROM per_user WHERE user_id = %s", (1,))
                check("psycopg binary", bcur.fetchall(),
                      [(1, 2, datetime.datetime(2026, 1, 1, 0, 0, 3))])

    # Type lookups (to_regtype, ::regtype), as adapters and register_* do.
    info = psycopg.types.TypeInfo.fetch(conn, "text")
    check("psycopg TypeInfo text", (info.name, info.oid), ("text", 25))

    # A server-side (named) cursor: DECLARE / FETCH / CLOSE.
    with conn.cursor(name="clicks_cursor") as scur:
        scur.itersize = 2
        scur.execute("SELECT user_id, url FROM clicks ORDER BY ts")
        check("psycopg server cursor fetchone", scur.fetchone(), (1, "/a"))
        check("psycopg server cursor rest", scur.fetchall(), [(2, "/b"), (1, "/c")])

    # COPY TO STDOUT.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, name FROM users ORDER BY id) TO STDOUT") as copy:
            rows = [tuple(r) for r in copy.rows()]
        check("psycopg copy to", rows, [("1", "ann"), ("2", "bob")])
    conn.commit()

# ---- psycopg2
conn = psycopg2.connect(dsn)
cur = conn.cursor()
check_catalog(cur, "psycopg2")
cur.execute("SELECT user_id, n, last_url FROM per_user WHERE n >= %s ORDER BY user_id", (1,))
check("psycopg2 per_user", cur.fetchall(), [(1, 2, "/c"), (2, 1, "/b")])
for i in range(6):
    cur.execute("SELECT name FROM users WHERE id = %(id)s", {"id": 2})
    check("psycopg2 repeated", cur.fetchall(), [("bob",)])
# A named cursor (DECLARE ... CURSOR WITHOUT HOLD FOR ...), as pandas/ETL code uses for big reads.
named = conn.cursor(name="users_cursor")
named.itersize = 1
named.execute("SELECT id FROM users ORDER BY id")
check("psycopg2 named cursor", [r[0] for r in named], [1, 2])
named.close()
# DictCursor and the composite-type lookup psycopg2 makes for register_composite.
dcur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
dcur.execute("SELECT * FROM users WHERE id = %s", (1,))
check("psycopg2 dict row", dcur.fetchone(),
      {"id": 1, "name": "ann", "score": 1.5, "active": True})
conn.rollback()
composite = psycopg2.extras.register_composite("users", conn)
check("psycopg2 composite users", [a for a in composite.attnames], ["id", "name", "score", "active"])
conn.rollback()
conn.close()
print("ok")
