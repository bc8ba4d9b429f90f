//! The command line tells the truth about the binary: `weir --help` runs the server binary the
//! other suites run (`WEIR_TEST_BIN`, see tests/common) and checks what it promises.

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
