"""pgcli against the fixture of tests/clients.rs (source clicks, table users with primary key id,
materialized view per_user): the completion refresh pgcli runs at start-up, through pgcli's own
PGExecute and refreshers, then a query and psql-style commands as a user types them.
Prints "ok" at the end."""
import sys

from pgcli.completion_refresher import CompletionRefresher
from pgcli.pgcompleter import PGCompleter
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial

port = sys.argv[1]


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


executor = PGExecute(database="weir", user="weir", host="127.0.0.1", port=port)
check("server_version reported", bool(executor.server_version), True)

# Every query the completer runs, one by one, so a failure names the step.
search_path = executor.search_path()
check("search_path has public", "public" in search_path, True)
check("search_path has pg_catalog", "pg_catalog" in search_path, True)
schemata = executor.schemata()
check("schemata has public", "public" in schemata, True)

tables = set(executor.tables())
for rel in [("public", "users"), ("public", "clicks")]:
    check(f"tables() has {rel}", rel in tables, True)
check("per_user is not a table", ("public", "per_user") in tables, False)
views = set(executor.views())
check("views() has per_user", ("public", "per_user") in views, True)

table_columns = {(s, t, c): ty for s, t, c, ty, _, _ in executor.table_columns()}
for col, ty in [("id", "bigint"), ("name", "text"), ("score", "double precision"), ("active", "boolean")]:
    check(f"table_columns users.{col}", table_columns.get(("public", "users", col)), ty)
check("table_columns clicks.ts", table_columns.get(("public", "clicks", "ts")),
      "timestamp without time zone")
view_columns = {(s, t, c): ty for s, t, c, ty, _, _ in executor.view_columns()}
for col, ty in [("user_id", "bigint"), ("n", "bigint"), ("last_url", "text"),
                ("last_ts", "timestamp without time zone")]:
    check(f"view_columns per_user.{col}", view_columns.get(("public", "per_user", col)), ty)

check("databases has weir", "weir" in executor.databases(), True)
list(executor.datatypes())
list(executor.functions())
check("no foreign keys", list(executor.foreignkeys()), [])

# The refresh as pgcli runs it (in its background thread), into a real completer.
completer = PGCompleter(smart_completion=True, pgspecial=PGSpecial(), settings={})
for name, refresh in CompletionRefresher.refreshers.items():
    try:
        refresh(completer, executor)
    except Exception as e:
        raise AssertionError(f"completion refresher {name!r} failed: {e!r}") from e
meta = completer.dbmetadata
check("completer tables", sorted(t for t in meta["tables"]["public"]), ["clicks", "users"])
check("completer views", sorted(meta["views"]["public"]), ["per_user"])
check("completer columns of users", list(meta["tables"]["public"]["users"]),
      ["id", "name", "score", "active"])

# A query as typed at the prompt, then psql-style commands (pgspecial's own catalog queries).
special = PGSpecial()
results = list(executor.run("SELECT user_id, n FROM per_user WHERE user_id = 1", pgspecial=special))
title, cur, headers, status = results[0][:4]
check("prompt query headers", list(headers), ["user_id", "n"])
check("prompt query rows", [tuple(r) for r in cur], [(1, 2)])

results = list(executor.run("\\dt", pgspecial=special))
rows = [tuple(r) for r in results[0][1]]
names = sorted(r[1] for r in rows)
check("\\dt names", names, ["clicks", "users"])

results = list(executor.run("\\d users", pgspecial=special))
rows = [tuple(r) for r in results[0][1]]
check("\\d users columns", [(r[0], r[1]) for r in rows],
      [("id", "bigint"), ("name", "text"), ("score", "double precision"), ("active", "boolean")])
footer = results[0][3] or ""
check("\\d users shows the primary key", "PRIMARY KEY, btree (id)" in footer, True)

executor.conn.close()
print("ok")
