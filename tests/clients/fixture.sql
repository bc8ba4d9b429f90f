-- What every client test in tests/clients.rs finds in Weir before its client connects: a source
-- (append-only, no key), a table with a primary key, and a materialized view over the source.
-- One statement per `;`, applied in order by tests/clients.rs.
CREATE SOURCE clicks (user_id BIGINT, url TEXT, ts TIMESTAMP) FORMAT JSON;
INSERT INTO clicks VALUES (1, '/a', '2026-01-01 00:00:01'), (2, '/b', '2026-01-01 00:00:02'), (1, '/c', '2026-01-01 00:00:03');
CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, active BOOLEAN);
INSERT INTO users VALUES (1, 'ann', 1.5, true), (2, 'bob', 2.5, false);
CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n, max(url) AS last_url, max(ts) AS last_ts FROM clicks GROUP BY user_id;
FLUSH;
