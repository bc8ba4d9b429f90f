"""psqlODBC (the driver Power BI, Tableau and Excel use on Windows, and unixODBC tools on Linux)
through pyodbc, against the fixture of tests/clients.rs: source clicks, table users (primary key
id), materialized view per_user. The driver is registered DSN-less, by path:
    odbc_check.py PORT /path/to/psqlodbcw.so
Prints "ok" at the end."""
import datetime
import sys

import pyodbc

port, driver = sys.argv[1], sys.argv[2]
conn = pyodbc.connect(
    f"DRIVER={{{driver}}};SERVER=127.0.0.1;PORT={port};DATABASE=weir;UID=weir;PWD=;SSLMODE=disable",
    autocommit=False,
    timeout=10,
)


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


check("DBMS name", conn.getinfo(pyodbc.SQL_DBMS_NAME), "PostgreSQL")
cur = conn.cursor()

# SQLTables: every relation of the public schema, with its ODBC table type.
tables = {
    row.table_name: row.table_type
    for row in cur.tables(schema="public")
}
check("SQLTables clicks", tables.get("clicks"), "TABLE")
check("SQLTables users", tables.get("users"), "TABLE")
check("SQLTables per_user", tables.get("per_user"), "MATVIEW")  # psqlODBC's name for it
view_types = {row.table_name for row in cur.tables(schema="public", tableType="VIEW")}
check("SQLTables type VIEW", "clicks" in view_types, False)

# SQLColumns: names, type names, nullability, in order.
columns = [
    (row.column_name, row.type_name, row.nullable)
    for row in cur.columns(table="users", schema="public")
]
check("SQLColumns users", columns, [
    ("id", "int8", 0),
    ("name", "text", 1),
    ("score", "float8", 1),
    ("active", "bool", 1),
])
columns = [(row.column_name, row.type_name) for row in cur.columns(table="per_user", schema="public")]
check("SQLColumns per_user", columns, [
    ("user_id", "int8"), ("n", "int8"), ("last_url", "text"), ("last_ts", "timestamp"),
])

# SQLPrimaryKeys.
keys = [(row.column_name, row.key_seq, row.pk_name) for row in cur.primaryKeys("users", schema="public")]
check("SQLPrimaryKeys users", keys, [("id", 1, "users_pkey")])
check("SQLPrimaryKeys clicks", list(cur.primaryKeys("clicks", schema="public")), [])
check("SQLForeignKeys users", list(cur.foreignKeys(table="users", schema="public")), [])
list(cur.statistics("users", schema="public"))  # SQLStatistics: the indexes

# Reading the view; parameterized queries (server-side prepared by psqlODBC), run repeatedly.
cur.execute("SELECT user_id, n, last_url, last_ts FROM per_user ORDER BY user_id")
check("per_user", [tuple(r) for r in cur.fetchall()], [
    (1, 2, "/c", datetime.datetime(2026, 1, 1, 0, 0, 3)),
    (2, 1, "/b", datetime.datetime(2026, 1, 1, 0, 0, 2)),
])
for i in range(8):
    cur.execute("SELECT name, score, active FROM users WHERE id = ?", 1 + i % 2)
    # psqlODBC's default BoolsAsChar=1 hands booleans over as the characters '1' and '0'.
    want = [("ann", 1.5, "1")] if i % 2 == 0 else [("bob", 2.5, "0")]
    check(f"parameterized users run {i}", [tuple(r) for r in cur.fetchall()], want)
cur.execute("SELECT count(*) FROM clicks WHERE url <> ? AND ts > ?", "/a",
            datetime.datetime(2026, 1, 1, 0, 0, 1))
check("parameterized clicks", cur.fetchone()[0], 2)
check("description", [d[0] for d in cur.description], ["count"])
conn.commit()
conn.close()
print("ok")
