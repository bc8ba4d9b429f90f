"""psycopg 3 and psycopg2 against Weir (driven by tests/psycopg.rs): connect, DDL, a
parameterized INSERT, a point lookup (also as a server-side prepared statement), a query
inside the implicit transaction psycopg opens, INSERTs in that transaction (written at commit(),
dropped by rollback()), and an error that leaves the session usable."""
import sys

import psycopg
import psycopg2

dsn = f"host=127.0.0.1 port={sys.argv[1]} user=weir dbname=weir"

with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("CREATE SOURCE s (a BIGINT, b TEXT) FORMAT JSON")
    c.execute("CREATE SOURCE w (a BIGINT, b TEXT) FORMAT JSON")
    c.execute("INSERT INTO s VALUES (%s, %s), (%s, %s)", (1, "x", 1, "y"))
    c.execute("CREATE MATERIALIZED VIEW v AS SELECT a, count(*) AS n, max(b) AS last FROM s GROUP BY a")
    assert c.execute("SELECT n, last FROM v WHERE a = %s", (1,)).fetchall() == [(2, "y")]
    cur = c.cursor()
    for _ in range(6):
        cur.execute("SELECT n FROM v WHERE a = %s", (1,), prepare=True)
        assert cur.fetchall() == [(2,)]
    try:
        c.execute("SELECT * FROM nope")
        raise AssertionError("expected an error")
    except psycopg.errors.UndefinedTable:
        pass
    assert c.execute("SELECT count(*) FROM s").fetchone() == (2,)

with psycopg.connect(dsn) as c:  # not autocommit: psycopg sends BEGIN first
    assert c.execute("SELECT a FROM v").fetchall() == [(1,)]
    # Ordinary psycopg writing: INSERTs in the implicit transaction, then rollback() / commit().
    assert c.execute("INSERT INTO w VALUES (%s, %s)", (2, "dropped")).rowcount == 1
    c.rollback()
    c.execute("INSERT INTO w VALUES (%s, %s)", (2, "kept"))
    c.execute("INSERT INTO w VALUES (%s, %s)", (2, "kept too"))
    c.commit()
    assert c.execute("SELECT b FROM w WHERE a = 2 ORDER BY b").fetchall() == [("kept",), ("kept too",)]

conn = psycopg2.connect(dsn)
cur = conn.cursor()
cur.execute("SELECT a, n FROM v WHERE n >= %s", (1,))
assert cur.fetchall() == [(1, 2)]
cur.execute("INSERT INTO w VALUES (%s, %s)", (3, "psycopg2"))
conn.rollback()
cur.execute("SELECT count(*) FROM w WHERE a = 3")
assert cur.fetchone() == (0,)
cur.execute("INSERT INTO w VALUES (%s, %s)", (3, "psycopg2"))
conn.commit()
cur.execute("SELECT count(*) FROM w WHERE a = 3")
assert cur.fetchone() == (1,)
conn.commit()
conn.close()
print("ok")
