//! The HTTP listener against a real server over real sockets: ingest in JSON, NDJSON and CSV
//! lands in the source (read back over the Postgres wire) and in a view over it; every kind of
//! bad request is refused with its status and a JSON error naming the row and field, and
//! appends nothing; `/metrics` parses as Prometheus text and reports the topic, source, view,
//! epoch and listener values the test produced.
//!
//! The client speaks HTTP/1.1 by hand (one request per connection), so the test needs no HTTP
//! library.

mod common;

use std::collections::HashMap;

use common::{WeirServer, first_column, rows};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BARRIER_INTERVAL_MS: u64 = 50;

/// A response: status, headers (lowercase names) and body.
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a new connection. `content_length` overrides the header (the body
/// is sent as given).
async fn request(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    content_length: Option<usize>,
) -> Reply {
    request_as(port, None, method, path, content_type, body, content_length).await
}

/// `request`, logging in with HTTP Basic as `login` (user, password) when given.
async fn request_as(
    port: u16,
    login: Option<(&str, &str)>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    content_length: Option<usize>,
) -> Reply {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the http listener");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        content_length.unwrap_or(body.len())
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    if let Some((user, password)) = login {
        use base64::Engine;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        head.push_str(&format!("Authorization: Basic {credentials}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

async fn post(port: u16, path: &str, content_type: &str, body: &str) -> Reply {
    request(
        port,
        "POST",
        path,
        Some(content_type),
        body.as_bytes(),
        None,
    )
    .await
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    rows(client, sql).await.unwrap()[0][0].parse().unwrap()
}

/// Prometheus text: every sample `name{labels} value`, checked line by line against the
/// format (each sample after its family's TYPE, values that parse).
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no TYPE before it");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

/// A request that must be refused: path, content type, body, Content-Length (when not the
/// body's), the status and `{"row", "field"}` of the answer.
type BadRequest = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<usize>,
    u16,
    Value,
);

#[tokio::test]
async fn ingest_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start_with_http(&dir.path().join("data"), BARRIER_INTERVAL_MS).await;
    let port = server.http_port.unwrap();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE SOURCE clicks (user_id BIGINT, url TEXT, n BIGINT) FORMAT JSON; \
             CREATE SOURCE events (id BIGINT, name TEXT) FORMAT CSV; \
             CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT); \
             CREATE MATERIALIZED VIEW per_user AS \
               SELECT user_id, count(*) AS clicks, sum(n) AS total FROM clicks GROUP BY user_id; \
             CREATE MATERIALIZED VIEW inverse WITH (on_error = 'skip') AS \
               SELECT 100 / (user_id - 1) AS r FROM clicks;",
        )
        .await
        .unwrap();
    let mut http_requests = 0;
    let mut http_errors = 0;

    // The three formats.
    let r = post(
        port,
        "/v1/sources/clicks",
        "application/json",
        r#"[{"user_id": 1, "url": "/a", "n": 10},
            {"user_id": 2, "url": "/b", "n": 20},
            {"user_id": 1, "url": "/c"}]"#,
    )
    .await;
    http_requests += 1;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"rows": 3})),
        "{}",
        r.body
    );
    assert_eq!(r.headers["content-type"], "application/json");
    let r = post(
        port,
        "/v1/sources/clicks",
        "application/x-ndjson",
        "{\"user_id\": 3, \"url\": \"/d\", \"n\": 5}\n\n{\"user_id\": 2, \"url\": \"/e\", \"n\": 1}\n",
    )
    .await;
    http_requests += 1;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"rows": 2})),
        "{}",
        r.body
    );
    let r = post(
        port,
        "/v1/sources/clicks",
        "text/csv; charset=utf-8",
        "url,user_id,n\n\"/f,g\",3,7\n/h,1,\n",
    )
    .await;
    http_requests += 1;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"rows": 2})),
        "{}",
        r.body
    );
    // JSON into a CSV-format source, and into a table.
    let r = post(
        port,
        "/v1/sources/events",
        "application/json",
        r#"[{"id": 1, "name": "a,b"}]"#,
    )
    .await;
    http_requests += 1;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"rows": 1})),
        "{}",
        r.body
    );
    let r = post(
        port,
        "/v1/sources/users",
        "text/csv",
        "id,name\n7,ann\n8,bob\n",
    )
    .await;
    http_requests += 1;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"rows": 2})),
        "{}",
        r.body
    );

    client.batch_execute("FLUSH").await.unwrap();
    let want_clicks = vec![
        vec!["1", "/a", "10"],
        vec!["1", "/c", "NULL"],
        vec!["1", "/h", "NULL"],
        vec!["2", "/b", "20"],
        vec!["2", "/e", "1"],
        vec!["3", "/d", "5"],
        vec!["3", "/f,g", "7"],
    ];
    assert_eq!(
        rows(&client, "SELECT user_id, url, n FROM clicks")
            .await
            .unwrap(),
        want_clicks
    );
    let per_user = vec![
        vec!["1", "3", "10"],
        vec!["2", "2", "21"],
        vec!["3", "2", "12"],
    ];
    assert_eq!(
        rows(&client, "SELECT user_id, clicks, total FROM per_user")
            .await
            .unwrap(),
        per_user
    );
    assert_eq!(
        rows(&client, "SELECT id, name FROM events").await.unwrap(),
        vec![vec!["1", "a,b"]]
    );
    assert_eq!(
        rows(&client, "SELECT id, name FROM users").await.unwrap(),
        vec![vec!["7", "ann"], vec!["8", "bob"]]
    );

    // Bad requests: each refused, with the row and field, and nothing appended.
    let too_big = weir::config::HTTP_INGEST_BODY_BYTES_MAX + 1;
    let cases: Vec<BadRequest> = vec![
        (
            "/v1/sources/clicks",
            Some("application/json"),
            r#"[{"user_id": 4, "n": 1}, {"user_id": 4, "n": "lots"}]"#,
            None,
            400,
            json!({"row": 1, "field": "n"}),
        ),
        (
            "/v1/sources/clicks",
            Some("application/json"),
            r#"[{"user_id": 4, "nn": 1}]"#,
            None,
            400,
            json!({"row": 0, "field": "nn"}),
        ),
        (
            "/v1/sources/clicks",
            Some("application/json"),
            r#"[{"user_id": 4}, [1, 2]]"#,
            None,
            400,
            json!({"row": 1, "field": null}),
        ),
        (
            "/v1/sources/clicks",
            Some("application/json"),
            r#"[{"user_id": 4"#,
            None,
            400,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/clicks",
            Some("application/x-ndjson"),
            "{\"user_id\": 4}\n{\"user_id\": 5}\n{\"user_id\": \n",
            None,
            400,
            json!({"row": 2, "field": null}),
        ),
        (
            "/v1/sources/clicks",
            Some("text/csv"),
            "user_id,n\n4,1\n5,x\n",
            None,
            400,
            json!({"row": 1, "field": "n"}),
        ),
        (
            "/v1/sources/clicks",
            Some("text/csv"),
            "user_id,color\n4,red\n",
            None,
            400,
            json!({"row": null, "field": "color"}),
        ),
        (
            "/v1/sources/clicks",
            Some("text/plain"),
            "user_id\n4\n",
            None,
            415,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/clicks",
            None,
            "[]",
            None,
            415,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/clicks",
            Some("application/json"),
            "",
            Some(too_big),
            413,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/nope",
            Some("application/json"),
            r#"[{"user_id": 4}]"#,
            None,
            404,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/per_user",
            Some("application/json"),
            r#"[{"user_id": 4}]"#,
            None,
            400,
            json!({"row": null, "field": null}),
        ),
        (
            "/v1/sources/users",
            Some("application/json"),
            r#"[{"id": 9}, {"name": "no key"}]"#,
            None,
            400,
            json!({"row": 1, "field": "id"}),
        ),
    ];
    for (path, content_type, body, length, status, position) in cases {
        let r = request(port, "POST", path, content_type, body.as_bytes(), length).await;
        http_requests += 1;
        http_errors += 1;
        assert_eq!(
            r.status, status,
            "{path} {content_type:?} {body}: {}",
            r.body
        );
        let reply = r.json();
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {reply}"
        );
        assert_eq!(
            (&reply["row"], &reply["field"]),
            (&position["row"], &position["field"]),
            "{path} {body}: {reply}"
        );
    }
    let r = request(port, "GET", "/no/such/route", None, b"", None).await;
    http_requests += 1;
    http_errors += 1;
    assert_eq!(r.status, 404);
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM clicks").await, 7);
    assert_eq!(count(&client, "SELECT count(*) FROM users").await, 2);
    assert_eq!(
        rows(&client, "SELECT user_id, clicks, total FROM per_user")
            .await
            .unwrap(),
        per_user,
        "the view saw nothing of the refused requests"
    );
    // A failed statement and one that does not parse, for the Postgres error counter.
    assert!(client.batch_execute("SELEC 1").await.is_err());
    assert!(
        client
            .batch_execute("SELECT * FROM no_such_table")
            .await
            .is_err()
    );

    // Metrics.
    let r = request(port, "GET", "/metrics", None, b"", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let m = parse_prometheus(&r.body);
    let get = |series: &str| -> f64 {
        *m.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", r.body))
    };
    let sum = |prefix: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        sum("weir_topic_partition_end_offset{topic=\"clicks\","),
        7.0
    );
    assert!(sum("weir_topic_partition_bytes{topic=\"clicks\",") > 0.0);
    assert_eq!(
        sum("weir_topic_partition_start_offset{topic=\"clicks\","),
        0.0
    );
    assert_eq!(
        get(r#"weir_source_records_total{source="clicks",topic="clicks"}"#),
        7.0
    );
    assert_eq!(
        get(r#"weir_source_records_total{source="events",topic="events"}"#),
        1.0
    );
    assert_eq!(
        get(r#"weir_source_skipped_records_total{source="clicks",topic="clicks"}"#),
        0.0
    );
    assert_eq!(get(r#"weir_view_rows{view="per_user"}"#), 3.0);
    assert_eq!(get(r#"weir_view_failed{view="per_user"}"#), 0.0);
    // User 1's three clicks divide by zero in `inverse`, which skips them.
    assert_eq!(get(r#"weir_view_rows_skipped_total{view="inverse"}"#), 3.0);
    assert_eq!(get(r#"weir_view_rows{view="inverse"}"#), 4.0);
    assert!(!m.contains_key(r#"weir_view_rows_skipped_total{view="per_user"}"#));
    let epoch = get("weir_epoch_committed");
    assert!(epoch >= 1.0);
    assert_eq!(get(r#"weir_view_committed_epoch{view="per_user"}"#), epoch);
    // per_user's three groups are in memory unless the budget keeps nothing.
    let budget = get("weir_state_cache_budget_bytes");
    let kept = get("weir_state_cache_bytes");
    assert!(kept <= budget || budget == 0.0, "{kept} of {budget}");
    if budget > 0.0 {
        assert!(kept > 0.0, "per_user's groups are reported");
    }
    let freshness = get(r#"weir_view_freshness_seconds{view="per_user"}"#);
    assert!((0.0..10.0).contains(&freshness), "freshness {freshness}");
    let committed_at = get(r#"weir_view_last_commit_timestamp_seconds{view="per_user"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 60.0..=now + 1.0).contains(&committed_at),
        "{committed_at} vs {now}"
    );
    let commits = get("weir_epoch_commits_total");
    assert!(commits >= 1.0);
    assert_eq!(get("weir_epoch_commit_seconds_count"), commits);
    assert_eq!(
        get(r#"weir_epoch_commit_seconds_bucket{le="+Inf"}"#),
        commits
    );
    assert!(get("weir_epoch_commit_seconds_sum") > 0.0);
    assert!(get("weir_epoch_commit_keys_total") > 0.0);
    assert_eq!(
        get(r#"weir_http_ingest_rows_total{relation="clicks"}"#),
        7.0
    );
    assert_eq!(get(r#"weir_http_ingest_rows_total{relation="users"}"#), 2.0);
    // The scrape itself is counted once its response is sent: not in its own numbers.
    assert_eq!(
        get(r#"weir_listener_requests_total{listener="http"}"#),
        http_requests as f64
    );
    assert_eq!(
        get(r#"weir_listener_errors_total{listener="http"}"#),
        http_errors as f64
    );
    assert_eq!(
        get(r#"weir_listener_connections_total{listener="http"}"#),
        (http_requests + 1) as f64
    );
    assert!(get(r#"weir_listener_connections_open{listener="http"}"#) >= 1.0);
    // The test's client (the harness reads the server's ports from its log: no probe).
    assert_eq!(
        get(r#"weir_listener_connections_total{listener="pg"}"#),
        1.0
    );
    assert_eq!(get(r#"weir_listener_connections_open{listener="pg"}"#), 1.0);
    assert!(get(r#"weir_listener_requests_total{listener="pg"}"#) >= 10.0);
    assert_eq!(get(r#"weir_listener_errors_total{listener="pg"}"#), 2.0);
    assert_eq!(
        get(r#"weir_listener_connections_total{listener="kafka"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_logs_each_request_in_as_a_role_with_its_privileges() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--http-auth", "password", "--init-password", "s3cret"];
    let server =
        WeirServer::start_with_http_and_args(&dir.path().join("data"), BARRIER_INTERVAL_MS, &args)
            .await;
    let port = server.http_port.unwrap();
    let sql = server.connect().await;
    sql.batch_execute(
        "CREATE USER app PASSWORD 'app-pw'; CREATE USER other PASSWORD 'other-pw';
         CREATE SOURCE clicks (user_id BIGINT) FORMAT JSON;
         GRANT INSERT ON SOURCE clicks TO app;",
    )
    .await
    .unwrap();
    let body = br#"[{"user_id": 1}, {"user_id": 2}]"#;
    let ingest = |login| {
        request_as(
            port,
            login,
            "POST",
            "/v1/sources/clicks",
            Some("application/json"),
            body,
            None,
        )
    };

    // No credentials, or wrong ones: 401, asking for Basic.
    for login in [None, Some(("app", "wrong")), Some(("ghost", "app-pw"))] {
        let r = ingest(login).await;
        assert_eq!(r.status, 401, "{login:?}: {}", r.body);
        assert!(
            r.headers["www-authenticate"].starts_with("Basic"),
            "{:?}",
            r.headers
        );
    }
    // A role that logs in but may not write the source: 403 naming it.
    let r = ingest(Some(("other", "other-pw"))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "permission denied for source clicks");
    // The granted role appends, again and again (the second login is remembered).
    for _ in 0..2 {
        let r = ingest(Some(("app", "app-pw"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    sql.batch_execute("FLUSH").await.unwrap();
    assert_eq!(count(&sql, "SELECT count(*) FROM clicks").await, 4);
    // A changed password takes effect at once.
    sql.batch_execute("ALTER USER app PASSWORD 'new-pw'")
        .await
        .unwrap();
    assert_eq!(ingest(Some(("app", "app-pw"))).await.status, 401);
    assert_eq!(ingest(Some(("app", "new-pw"))).await.status, 200);
    let r = request_as(
        port,
        Some(("weir", "s3cret")),
        "GET",
        "/metrics",
        None,
        b"",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Wrong logins are listed, oldest first; a request without credentials is not a failed
    // login.
    let failed = first_column(
        &sql,
        "SELECT \"user\" FROM weir_login_failures WHERE listener = 'http'",
    )
    .await;
    assert_eq!(failed, ["app", "ghost", "app"]);
}
