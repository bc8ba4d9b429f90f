"""SQLAlchemy 2 reflection (what Superset, Jupyter SQL and ORMs run) with both the psycopg2 and
the psycopg (3) dialects, and pandas.read_sql, against the fixture of tests/clients.rs: source
clicks, table users (primary key id), materialized view per_user. Prints "ok" at the end."""
import sys

import pandas
import sqlalchemy
from sqlalchemy import MetaData, Table, inspect, text, types

port = sys.argv[1]


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def column_types(columns):
    return [(c["name"], type(c["type"]).__name__, c["nullable"]) for c in columns]


for driver in ("psycopg2", "psycopg"):
    engine = sqlalchemy.create_engine(f"postgresql+{driver}://weir@127.0.0.1:{port}/weir")
    insp = inspect(engine)  # connects: version(), current_schema(), standard_conforming_strings ...
    check(f"{driver} default schema", insp.default_schema_name, "public")
    check(f"{driver} schemas", "public" in insp.get_schema_names(), True)

    check(f"{driver} tables", sorted(insp.get_table_names()), ["clicks", "users"])
    check(f"{driver} views", insp.get_view_names(), [])
    check(f"{driver} materialized views", insp.get_materialized_view_names(), ["per_user"])
    check(f"{driver} has_table", (insp.has_table("users"), insp.has_table("nope")), (True, False))

    check(f"{driver} columns of users", column_types(insp.get_columns("users")), [
        ("id", "BIGINT", False),
        ("name", "TEXT", True),
        ("score", "DOUBLE_PRECISION", True),
        ("active", "BOOLEAN", True),
    ])
    check(f"{driver} columns of clicks", column_types(insp.get_columns("clicks")), [
        ("user_id", "BIGINT", True),
        ("url", "TEXT", True),
        ("ts", "TIMESTAMP", True),
    ])
    check(f"{driver} columns of per_user", column_types(insp.get_columns("per_user")), [
        ("user_id", "BIGINT", True),
        ("n", "BIGINT", True),
        ("last_url", "TEXT", True),
        ("last_ts", "TIMESTAMP", True),
    ])
    pk = insp.get_pk_constraint("users")
    check(f"{driver} pk of users", (pk["constrained_columns"], pk["name"]), (["id"], "users_pkey"))
    check(f"{driver} pk of clicks", insp.get_pk_constraint("clicks")["constrained_columns"], [])
    check(f"{driver} foreign keys", insp.get_foreign_keys("users"), [])
    check(f"{driver} indexes", insp.get_indexes("users"), [])
    check(f"{driver} unique constraints", insp.get_unique_constraints("users"), [])
    check(f"{driver} check constraints", insp.get_check_constraints("users"), [])
    check(f"{driver} table comment", insp.get_table_comment("users")["text"], None)
    check(f"{driver} view definition is text",
          isinstance(insp.get_view_definition("per_user"), str), True)

    # Full reflection, as an ORM or Superset's dataset editor does.
    users = Table("users", MetaData(), autoload_with=engine)
    check(f"{driver} reflected users", [c.name for c in users.primary_key], ["id"])
    check(f"{driver} reflected type", isinstance(users.c.score.type, types.Float), True)
    per_user = Table("per_user", MetaData(), autoload_with=engine)
    check(f"{driver} reflected per_user", [c.name for c in per_user.columns],
          ["user_id", "n", "last_url", "last_ts"])

    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.select(users.c.name).where(users.c.id == sqlalchemy.bindparam("id")),
            {"id": 2},
        ).all()
        check(f"{driver} select users", rows, [("bob",)])
        for _ in range(6):
            got = conn.execute(text("SELECT n FROM per_user WHERE user_id = :u"), {"u": 1}).scalar()
            check(f"{driver} repeated", got, 2)

    frame = pandas.read_sql("SELECT user_id, n, last_url FROM per_user ORDER BY user_id", engine)
    check(f"{driver} read_sql columns", list(frame.columns), ["user_id", "n", "last_url"])
    check(f"{driver} read_sql rows", frame.values.tolist(), [[1, 2, "/c"], [2, 1, "/b"]])
    frame = pandas.read_sql(
        text("SELECT name, score FROM users WHERE score > :s ORDER BY id"), engine, params={"s": 2.0}
    )
    check(f"{driver} read_sql params", frame.values.tolist(), [["bob", 2.5]])
    frame = pandas.read_sql_table("users", engine)  # reflection, then SELECT of every column
    check(f"{driver} read_sql_table", sorted(frame["name"].tolist()), ["ann", "bob"])
    engine.dispose()

print("ok")
