// pgJDBC (the driver of DBeaver, Metabase, DataGrip, Tableau's PostgreSQL connector and most Java
// tools) against the fixture of tests/clients.rs: source clicks, table users (primary key id),
// materialized view per_user. DatabaseMetaData as the tools call it, a PreparedStatement run 10
// times (from the 5th run pgJDBC uses a named server-side statement and binary results), a
// fetch size with autocommit off (a portal read in pieces).
//
//     java -cp /usr/share/java/postgresql.jar tests/clients/JdbcCheck.java PORT
//
// Prints "ok" at the end; any failure throws.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

public class JdbcCheck {
    static void check(String what, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(what + ": got " + got + ", want " + want);
        }
    }

    /** Runs one step; a failure names the step and keeps the driver's message (SQLSTATE too). */
    interface Step {
        void run() throws Exception;
    }

    static void step(String name, Step step) throws Exception {
        try {
            step.run();
        } catch (SQLException e) {
            throw new AssertionError(name + ": " + e.getSQLState() + " " + e.getMessage(), e);
        }
    }

    static Map<String, String> tables(DatabaseMetaData meta, String[] types) throws SQLException {
        Map<String, String> out = new TreeMap<>();
        try (ResultSet rs = meta.getTables(null, "public", "%", types)) {
            while (rs.next()) {
                out.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
            }
        }
        return out;
    }

    static List<String> columns(DatabaseMetaData meta, String table) throws SQLException {
        List<String> out = new ArrayList<>();
        try (ResultSet rs = meta.getColumns(null, "public", table, null)) {
            while (rs.next()) {
                out.add(rs.getInt("ORDINAL_POSITION") + " " + rs.getString("COLUMN_NAME") + " "
                        + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE") + " "
                        + rs.getString("IS_NULLABLE") + " " + rs.getString("IS_AUTOINCREMENT"));
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/weir?user=weir&connectTimeout=10";
        try (Connection conn = DriverManager.getConnection(url)) {
            DatabaseMetaData meta = conn.getMetaData();
            step("product", () -> {
                check("product name", meta.getDatabaseProductName(), "PostgreSQL");
                check("major version >= 9", meta.getDatabaseMajorVersion() >= 9, true);
            });

            step("getSchemas", () -> {
                List<String> schemas = new ArrayList<>();
                try (ResultSet rs = meta.getSchemas()) {
                    while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
                }
                check("schemas has public", schemas.contains("public"), true);
            });
            step("getCatalogs", () -> {
                List<String> catalogs = new ArrayList<>();
                try (ResultSet rs = meta.getCatalogs()) {
                    while (rs.next()) catalogs.add(rs.getString("TABLE_CAT"));
                }
                check("catalogs has weir", catalogs.contains("weir"), true);
            });

            // DBeaver's navigator asks for every type; Metabase for the types it syncs.
            step("getTables (all types)", () -> {
                Map<String, String> all = tables(meta, null);
                check("clicks", all.get("clicks"), "TABLE");
                check("users", all.get("users"), "TABLE");
                check("per_user", all.get("per_user"), "MATERIALIZED VIEW");
            });
            step("getTables (Metabase types)", () -> {
                Map<String, String> synced = tables(meta, new String[] {
                    "TABLE", "PARTITIONED TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW"});
                check("Metabase tables", synced.keySet().toString(), "[clicks, per_user, users]");
                check("only views", tables(meta, new String[] {"VIEW"}).toString(), "{}");
            });

            step("getColumns users", () -> check("columns of users", columns(meta, "users"), List.of(
                "1 id int8 " + Types.BIGINT + " NO NO",
                "2 name text " + Types.VARCHAR + " YES NO",
                "3 score float8 " + Types.DOUBLE + " YES NO",
                "4 active bool " + Types.BIT + " YES NO")));
            step("getColumns clicks", () -> check("columns of clicks", columns(meta, "clicks"), List.of(
                "1 user_id int8 " + Types.BIGINT + " YES NO",
                "2 url text " + Types.VARCHAR + " YES NO",
                "3 ts timestamp " + Types.TIMESTAMP + " YES NO")));
            step("getColumns per_user", () -> check("columns of per_user", columns(meta, "per_user"), List.of(
                "1 user_id int8 " + Types.BIGINT + " YES NO",
                "2 n int8 " + Types.BIGINT + " YES NO",
                "3 last_url text " + Types.VARCHAR + " YES NO",
                "4 last_ts timestamp " + Types.TIMESTAMP + " YES NO")));

            step("getPrimaryKeys", () -> {
                List<String> keys = new ArrayList<>();
                try (ResultSet rs = meta.getPrimaryKeys(null, "public", "users")) {
                    while (rs.next()) {
                        keys.add(rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ") + " " + rs.getString("PK_NAME"));
                    }
                }
                check("primary key of users", keys, List.of("id 1 users_pkey"));
                try (ResultSet rs = meta.getPrimaryKeys(null, "public", "clicks")) {
                    check("a source has no primary key", rs.next(), false);
                }
            });
            step("getImportedKeys", () -> {
                try (ResultSet rs = meta.getImportedKeys(null, "public", "users")) {
                    check("no foreign keys", rs.next(), false);
                }
            });
            step("getIndexInfo", () -> {
                List<String> indexes = new ArrayList<>();
                try (ResultSet rs = meta.getIndexInfo(null, "public", "users", false, true)) {
                    while (rs.next()) {
                        indexes.add(rs.getString("INDEX_NAME") + " " + rs.getString("COLUMN_NAME") + " unique="
                                + !rs.getBoolean("NON_UNIQUE"));
                    }
                }
                check("indexes of users", indexes, List.of("users_pkey id unique=true"));
            });
            step("getProcedures", () -> {
                try (ResultSet rs = meta.getProcedures(null, "public", "%")) {
                    while (rs.next()) { }
                }
            });

            // A PreparedStatement run 10 times: unnamed for 4 runs, then a named server-side
            // statement with binary results (prepareThreshold=5).
            step("prepared users x10", () -> {
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT id, name, score, active FROM users WHERE id = ?")) {
                    for (int i = 0; i < 10; i++) {
                        long id = 1 + i % 2;
                        ps.setLong(1, id);
                        try (ResultSet rs = ps.executeQuery()) {
                            check("run " + i + " has a row", rs.next(), true);
                            check("run " + i + " id", rs.getLong(1), id);
                            check("run " + i + " name", rs.getString(2), id == 1 ? "ann" : "bob");
                            check("run " + i + " score", rs.getDouble(3), id == 1 ? 1.5 : 2.5);
                            check("run " + i + " active", rs.getBoolean(4), id == 1);
                            check("run " + i + " one row", rs.next(), false);
                        }
                    }
                }
            });
            step("prepared view x10", () -> {
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT user_id, n, last_url, last_ts FROM per_user WHERE user_id = ?")) {
                    for (int i = 0; i < 10; i++) {
                        ps.setLong(1, 1);
                        try (ResultSet rs = ps.executeQuery()) {
                            check("view run " + i + " has a row", rs.next(), true);
                            check("view run " + i + " n", rs.getLong("n"), 2L);
                            check("view run " + i + " last_url", rs.getString("last_url"), "/c");
                            check("view run " + i + " last_ts", rs.getTimestamp("last_ts"),
                                    Timestamp.valueOf("2026-01-01 00:00:03"));
                            ResultSetMetaData md = rs.getMetaData();
                            check("view column types", md.getColumnTypeName(1) + " " + md.getColumnTypeName(2) + " "
                                    + md.getColumnTypeName(3) + " " + md.getColumnTypeName(4),
                                    "int8 int8 text timestamp");
                            md.isAutoIncrement(1); // DBeaver: looks the columns up in pg_attribute
                        }
                    }
                }
            });

            // Statement, ResultSetMetaData of a plain query.
            step("statement over the view", () -> {
                try (Statement st = conn.createStatement();
                        ResultSet rs = st.executeQuery("SELECT * FROM per_user ORDER BY user_id")) {
                    check("column count", rs.getMetaData().getColumnCount(), 4);
                    List<String> rows = new ArrayList<>();
                    while (rs.next()) rows.add(rs.getLong(1) + " " + rs.getLong(2) + " " + rs.getString(3));
                    check("per_user rows", rows, List.of("1 2 /c", "2 1 /b"));
                }
            });

            // An error leaves the connection usable.
            step("error then go on", () -> {
                try (Statement st = conn.createStatement()) {
                    try {
                        st.executeQuery("SELECT * FROM nope");
                        throw new AssertionError("expected an error");
                    } catch (SQLException e) {
                        check("sqlstate", e.getSQLState(), "42P01");
                    }
                    try (ResultSet rs = st.executeQuery("SELECT count(*) FROM clicks")) {
                        rs.next();
                        check("count after error", rs.getLong(1), 3L);
                    }
                }
            });

            // setFetchSize with autocommit off: a named portal read 1 row at a time.
            step("fetch size, autocommit off", () -> {
                conn.setAutoCommit(false);
                try (Statement st = conn.createStatement()) {
                    st.setFetchSize(1);
                    List<String> rows = new ArrayList<>();
                    try (ResultSet rs = st.executeQuery("SELECT user_id, url FROM clicks ORDER BY ts")) {
                        while (rs.next()) rows.add(rs.getLong(1) + " " + rs.getString(2));
                    }
                    check("clicks in pieces", rows, List.of("1 /a", "2 /b", "1 /c"));
                }
                try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM users WHERE id >= ? ORDER BY id")) {
                    ps.setFetchSize(1);
                    ps.setLong(1, 1);
                    List<Long> ids = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) ids.add(rs.getLong(1));
                    }
                    check("users in pieces", ids, List.of(1L, 2L));
                }
                conn.commit();
                conn.setAutoCommit(true);
            });
        }
        System.out.println("ok");
    }
}
