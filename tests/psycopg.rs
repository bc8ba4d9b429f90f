//! psycopg 3 and psycopg2 (the Python drivers notebooks and apps use) against a real Weir;
//! `./test.sh` installs them into the test virtualenv.

mod common;

use common::WeirServer;

#[tokio::test]
async fn psycopg_and_psycopg2_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = WeirServer::start(&dir.path().join("data"), 50).await;
    let python = std::env::var("WEIR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weir-test-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/psycopg_check.py"
    );
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); run ./test.sh, which installs psycopg")
        });
    assert!(
        out.status.success(),
        "psycopg check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
