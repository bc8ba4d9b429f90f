// node-postgres (pg) against the fixture of tests/clients.rs: source clicks, table users
// (primary key id), materialized view per_user. Connect, list relations and columns, $1
// parameters, a named prepared statement run 6+ times, read the view, a Pool as web apps use.
// Run with NODE_PATH pointing at a node_modules holding pg. Prints "ok" at the end.
"use strict";
const assert = require("assert/strict");
const { Client, Pool } = require("pg");

const port = Number(process.argv[2]);
const config = { host: "127.0.0.1", port, user: "weir", database: "weir" };

async function main() {
  const client = new Client(config);
  await client.connect();

  const version = await client.query("select version()");
  assert.match(version.rows[0].version, /PostgreSQL/);

  // Relations and columns, as ORMs (Prisma, Knex, TypeORM) and admin UIs list them.
  const tables = await client.query(
    "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
    ["public"],
  );
  const byName = Object.fromEntries(tables.rows.map((r) => [r.table_name, r.table_type]));
  assert.equal(byName.clicks, "BASE TABLE");
  assert.equal(byName.users, "BASE TABLE");
  const columns = await client.query(
    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    ["users"],
  );
  assert.deepEqual(
    columns.rows.map((r) => [r.column_name, r.data_type]),
    [["id", "bigint"], ["name", "text"], ["score", "double precision"], ["active", "boolean"]],
  );

  // Parameters ($1), unnamed statement; bigint comes back as a string in pg by default.
  const user = await client.query("select id, name, score, active from users where id = $1", [2]);
  assert.deepEqual(user.rows, [{ id: "2", name: "bob", score: 2.5, active: false }]);
  assert.deepEqual(user.fields.map((f) => f.name), ["id", "name", "score", "active"]);

  // A named prepared statement: parsed once, then bound and executed each time.
  for (let i = 0; i < 8; i++) {
    const id = 1 + (i % 2);
    const res = await client.query({ name: "user_by_id", text: "select name from users where id = $1", values: [id] });
    assert.deepEqual(res.rows, [{ name: id === 1 ? "ann" : "bob" }]);
  }
  for (let i = 0; i < 6; i++) {
    const res = await client.query({
      name: "per_user_lookup",
      text: "select n, last_url, last_ts from per_user where user_id = $1",
      values: [1],
    });
    assert.equal(res.rows.length, 1);
    assert.equal(res.rows[0].n, "2");
    assert.equal(res.rows[0].last_url, "/c");
    assert.ok(res.rows[0].last_ts instanceof Date);
  }

  // Reading the view (simple query protocol), and row mode arrays.
  const view = await client.query("select * from per_user order by user_id");
  assert.deepEqual(view.rows.map((r) => [r.user_id, r.n, r.last_url]), [["1", "2", "/c"], ["2", "1", "/b"]]);
  const arrays = await client.query({ text: "select user_id, n from per_user order by user_id", rowMode: "array" });
  assert.deepEqual(arrays.rows, [["1", "2"], ["2", "1"]]);

  // An error does not break the connection.
  await assert.rejects(client.query("select * from nope"), (e) => e.code === "42P01");
  const after = await client.query("select count(*) as c from clicks where user_id = $1", [1]);
  assert.equal(after.rows[0].c, "2");
  await client.end();

  // A pool, as web servers use it: concurrent queries over several connections.
  const pool = new Pool({ ...config, max: 3 });
  const counts = await Promise.all(
    [1, 2, 1, 2].map((id) => pool.query("select count(*) as c from clicks where user_id = $1", [id])),
  );
  assert.deepEqual(counts.map((r) => r.rows[0].c), ["2", "1", "2", "1"]);
  await pool.end();
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
