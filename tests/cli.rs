//! The command line tells the truth about the binary: `weir --help` runs the server binary the
//! other suites run (`WEIR_TEST_BIN`, see tests/common) and checks what it promises; the log
//! flags do what they say.

mod common;

#[test]
fn help_names_what_the_http_listener_serves_and_no_dashboard() {
    let out = std::process::Command::new(common::weir_bin())
        .arg("--help")
        .output()
        .expect("run weir --help");
    assert!(out.status.success(), "weir --help failed: {out:?}");
    let help = String::from_utf8(out.stdout).expect("help is UTF-8");
    let http = help
        .lines()
        .skip_while(|l| !l.contains("--http-addr"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        http.contains("POST /v1/sources/{name}") && http.contains("GET /metrics"),
        "--http-addr must name the endpoints it serves: {http}"
    );
    assert!(
        !help.to_lowercase().contains("dashboard"),
        "the HTTP listener has no dashboard yet; --help must not promise one: {help}"
    );
}

/// The log lines of `server` that parse as JSON objects.
fn json_lines(server: &common::WeirServer) -> Vec<serde_json::Value> {
    server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

#[tokio::test]
async fn json_logs_and_the_slow_statement_log() {
    let dir = tempfile::tempdir().unwrap();
    // 0 ms: every statement counts as slow, so each one is logged at info.
    let server = common::WeirServer::start_with_args(
        &dir.path().join("every"),
        50,
        &["--log-format", "json", "--log-slow-statements-ms", "0"],
    )
    .await;
    let client = server.connect().await;
    client
        .simple_query("SELECT 41 + 1 AS answer")
        .await
        .unwrap();
    let bad = client.simple_query("SELECT * FROM no_such_table").await;
    assert!(bad.is_err());
    let lines = json_lines(&server);
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("postgres listener on"))),
        "every line is JSON, the listener's too: {}",
        server.log()
    );
    let slow: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "slow statement")
        .collect();
    let logged = |sql: &str, failed: bool| {
        slow.iter().any(|l| {
            l["fields"]["statement"] == sql
                && l["fields"]["failed"] == failed
                && l["fields"]["user"] == "weir"
                && l["level"] == "INFO"
        })
    };
    assert!(logged("SELECT 41 + 1 AS answer", false), "{slow:?}");
    assert!(logged("SELECT * FROM no_such_table", true), "{slow:?}");

    // -1: no statement is logged at info.
    let quiet = common::WeirServer::start_with_args(
        &dir.path().join("none"),
        50,
        &["--log-format", "json", "--log-slow-statements-ms", "-1"],
    )
    .await;
    quiet
        .connect()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
    assert!(
        !json_lines(&quiet)
            .iter()
            .any(|l| l["fields"]["message"] == "slow statement"),
        "{}",
        quiet.log()
    );
}
