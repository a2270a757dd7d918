//! The binary as an operator runs it: configuration errors, `account create`, `migrate`,
//! `serve` with graceful shutdown, and secrets kept out of logs (`demo` in `demo.rs`).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::storage::Storage;

use crate::helpers::{Backend, test_db};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// The binary with a clean environment (no developer settings leak in), run in `dir`.
pub(crate) fn switchboard(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// `account create --json` in `dir` with no configuration (SQLite under ./data): what it printed.
fn created_account(dir: &Path, name: &str) -> Value {
    let out = run(switchboard(dir, &[]).args(["account", "create", "--name", name, "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn wait_until_up(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/health/ping"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not come up on port {port}");
}

pub(crate) fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no graceful stop within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signs in to the dashboard of the service at `base` with `key`, as a browser does, and opens
/// it; returns the session cookie (`name=value`) and the page.
pub(crate) async fn dashboard_of(base: &str, key: &str) -> (String, reqwest::Response) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = crate::helpers::post_form(
        &browser,
        &format!("{base}/dashboard/sign-in"),
        &[("api_key", key)],
    )
    .send()
    .await
    .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = browser
        .get(format!("{base}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    (cookie, page)
}

#[test]
fn configuration_errors_name_the_setting_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("SWITCHBOARD_BIND", "not-an-address", "SWITCHBOARD_BIND"),
        (
            "SWITCHBOARD_TRUSTED_PROXIES",
            "10.0.0.0/8,nope",
            "SWITCHBOARD_TRUSTED_PROXIES",
        ),
        ("DATABASE_URL", "mysql://u:pw@h/db", "DATABASE_URL"),
        (
            "TWILIO_AUTH_TOKEN",
            "token-without-public-url",
            "SWITCHBOARD_PUBLIC_URL",
        ),
    ];
    for (var, value, named) in cases {
        let out = run(switchboard(dir.path(), &[(var, value)]).arg("migrate"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains(named), "{var}: {stderr}");
        assert!(!stderr.contains(":pw@"), "passwords are redacted: {stderr}");
    }
    // A TOML file is read too, and the environment wins over it.
    std::fs::write(dir.path().join("switchboard.toml"), "bind = \"also bad\"\n").unwrap();
    let out = run(switchboard(dir.path(), &[]).arg("migrate"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_BIND"));
    let out = run(switchboard(dir.path(), &[("SWITCHBOARD_BIND", "127.0.0.1:0")]).arg("migrate"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn account_create_prints_a_key_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default: no configuration at all; SQLite appears under ./data.
    let printed = created_account(dir.path(), "Acme");
    assert_eq!(printed["name"], "Acme");
    let key = printed["api_key"].as_str().unwrap().to_owned();
    let db = dir.path().join("data/switchboard.db");
    assert!(db.exists(), "created on first start");

    let storage = Storage::connect(&format!("sqlite://{}", db.display()), &Default::default())
        .await
        .unwrap();
    let account = storage
        .account_for_api_key(&SecretString::from(key.clone()))
        .await
        .unwrap()
        .expect("the printed key authenticates");
    assert_eq!(account.id, printed["id"]);
    let hashes = storage.api_key_hashes(&account.id).await.unwrap();
    assert!(!hashes[0].contains(&key));
    let raw = std::fs::read(&db).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&key),
        "the key itself is nowhere in the database file"
    );
    storage.close().await;

    let out = run(switchboard(dir.path(), &[]).args(["account", "create", "--name", "Beta"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("API key: sb_key_") && text.contains("shown this once"),
        "{text}"
    );
    let out = run(switchboard(dir.path(), &[]).args(["account", "create", "--name", "  "]));
    assert!(!out.status.success());
}

#[tokio::test]
async fn postgres_is_migrated_by_the_migrate_command_then_served_and_stopped_gracefully() {
    let Some(db) = test_db(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("SWITCHBOARD_BIND", bind.as_str()),
    ];

    let out = run(&mut switchboard(dir.path(), &env));
    assert!(!out.status.success(), "an unmigrated PostgreSQL is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("switchboard migrate"));

    let out = run(switchboard(dir.path(), &env).arg("migrate"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = format!("{} migration(s) applied", Storage::known_migrations());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&applied));

    let mut child = switchboard(dir.path(), &env)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_up(port, &mut child).await;
    let health: Value = reqwest::get(format!("http://{bind}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["components"]["database"]["backend"], "postgres");
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    // PostgreSQL in CI trusts local connections, so a password in the URL is accepted and unused;
    // without it, SQLite carries no password and Redis's URL carries one instead.
    let pg = test_db(Backend::Postgres).await;
    let db_url = match &pg {
        Some(db) => db.url.replacen("://", "://postgres:db-pass-7731@", 1),
        None => format!("sqlite://{}/sb.db", dir.path().display()),
    };
    let env = [
        ("DATABASE_URL", db_url.as_str()),
        ("SWITCHBOARD_MIGRATE_ON_START", "true"),
        ("SWITCHBOARD_BIND", bind.as_str()),
        ("SWITCHBOARD_PUBLIC_URL", "https://calls.example.com"),
        ("REDIS_URL", "redis://:redis-pass-5512@127.0.0.1:1"),
        ("TWILIO_AUTH_TOKEN", "twilio-token-9926"),
        ("SWITCHBOARD_LOG_FORMAT", "json"),
        ("SWITCHBOARD_LOG", "debug"),
    ];
    let out =
        run(switchboard(dir.path(), &env).args(["account", "create", "--name", "A", "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let account_log = String::from_utf8_lossy(&out.stderr).into_owned();

    let mut child = switchboard(dir.path(), &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_up(port, &mut child).await;
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let res = client
        .get(format!("{base}/v1/properties"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = client.get(format!("{base}/health")).send().await.unwrap();
    let _ = client
        .get(format!("{base}/v1/properties"))
        .bearer_auth("sb_key_wrong-key-that-is-still-secret-0000000000")
        .send()
        .await
        .unwrap();
    // A dashboard sign-in: neither the key in the form nor the session token may be logged.
    let (cookie, page) = dashboard_of(&base, &key).await;
    let token = cookie.split_once('=').unwrap().1.to_owned();
    assert_eq!(page.status(), 200);
    terminate(&mut child);
    let output = child.wait_with_output().unwrap();
    let serve_log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(serve_log.contains("switchboard starting"), "{serve_log}");
    for line in serve_log.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("JSON log lines");
    }
    for secret in [
        "db-pass-7731",
        "redis-pass-5512",
        "twilio-token-9926",
        key.as_str(),
        "wrong-key-that-is-still-secret",
        token.as_str(),
    ] {
        assert!(
            !serve_log.contains(secret),
            "{secret} leaked into: {serve_log}"
        );
        assert!(
            !account_log.contains(secret),
            "{secret} leaked into: {account_log}"
        );
    }
}

#[test]
fn account_keys_are_issued_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let account = created_account(dir.path(), "Acme");
    let id = account["id"].as_str().unwrap();
    let first_key = account["api_key"].as_str().unwrap();

    let out = run(switchboard(dir.path(), &[]).args([
        "account",
        "key",
        "create",
        "--account",
        id,
        "--name",
        "zapier",
        "--json",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["name"], "zapier");
    let new_key = key["api_key"].as_str().unwrap();

    let out = run(switchboard(dir.path(), &[]).args(["account", "key", "list", "--account", id]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("zapier") && text.contains("never used"),
        "{text}"
    );
    assert!(
        !text.contains(new_key) && !text.contains(first_key),
        "{text}"
    );

    let key_id = key["id"].as_str().unwrap();
    let out = run(switchboard(dir.path(), &[]).args([
        "account",
        "key",
        "revoke",
        "--account",
        id,
        key_id,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(switchboard(dir.path(), &[]).args([
        "account",
        "key",
        "list",
        "--account",
        id,
        "--json",
    ]));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let revoked = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{listed}");
    // The last live key stays.
    let first_id = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run(switchboard(dir.path(), &[]).args([
        "account",
        "key",
        "revoke",
        "--account",
        id,
        &first_id,
    ]));
    assert!(!out.status.success());
    // An account that does not exist is named.
    let out =
        run(switchboard(dir.path(), &[]).args(["account", "key", "create", "--account", "nobody"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account nobody"));
}

/// The embedded default's data folder holds tenants' carrier tokens and callers' numbers:
/// everything the service creates in it is its user's own (folders 0700, files 0600), whatever
/// the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_everything_in_it_are_the_users_own() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let account = created_account(dir.path(), "Acme");
    let key = account["api_key"].as_str().unwrap();
    let mut child = switchboard(dir.path(), &[("SWITCHBOARD_BIND", bind.as_str())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_up(port, &mut child).await;
    let client = reqwest::Client::new();
    let res = client
        .put(format!("http://{bind}/v1/account/telephony"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "twilio_account_sid": "AC0123456789abcdef0123456789abcdef",
            "twilio_auth_token": "a-tenant-token-of-its-own-0042"
        }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_server_error());
    terminate(&mut child);
    let _ = child.wait();

    let data = dir.path().join("data");
    let mut seen = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
        seen.push(path.strip_prefix(&data).unwrap().display().to_string());
    }
    for expected in ["switchboard.db", "spool", "spool/calls.spool"] {
        assert!(seen.iter().any(|p| p == expected), "{expected} in {seen:?}");
    }
}

/// The request log names the client by the trusted-proxy rule (a forged `X-Forwarded-For` is
/// not believed), names no visitor on page views, and never the number of an erased caller.
#[tokio::test]
async fn the_request_log_keeps_no_visitor_address_and_no_caller_number() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let db_url = format!("sqlite://{}/sb.db", dir.path().display());
    let env = [
        ("DATABASE_URL", db_url.as_str()),
        ("SWITCHBOARD_MIGRATE_ON_START", "true"),
        ("SWITCHBOARD_BIND", bind.as_str()),
        ("SWITCHBOARD_PUBLIC_URL", "https://calls.example.com"),
        // Connections from 127.0.0.2 come through a trusted proxy; from 127.0.0.1, not.
        ("SWITCHBOARD_TRUSTED_PROXIES", "127.0.0.2/32"),
        ("SWITCHBOARD_LOG_FORMAT", "json"),
        ("SWITCHBOARD_LOG", "debug"),
    ];
    let key = created_account_with(dir.path(), &env);
    let mut child = switchboard(dir.path(), &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_up(port, &mut child).await;
    let base = format!("http://{bind}");
    let direct = reqwest::Client::new();
    let proxied = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let property: Value = direct
        .post(format!("{base}/v1/properties"))
        .bearer_auth(&key)
        .json(&crate::helpers::property_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_key = property["public_key"].as_str().unwrap();
    for (client, who) in [(&direct, "untrusted-peer"), (&proxied, "trusted-proxy")] {
        // Every request claims to come from 203.0.113.7.
        let send = async |req: reqwest::RequestBuilder, agent: &str| {
            let res = req
                .header("user-agent", format!("{who} {agent}"))
                .header("x-forwarded-for", "203.0.113.7")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{agent}");
        };
        let page_view = client
            .post(format!("{base}/v1/dni/session"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "https://acme.example")
            .body(json!({"key": public_key, "url": "https://acme.example/"}).to_string());
        send(page_view, "page view").await;
        send(client.get(format!("{base}/dni.js")), "page view").await;
        let api = client
            .get(format!("{base}/v1/properties"))
            .bearer_auth(&key);
        send(api, "api").await;
    }
    let res = direct
        .delete(format!("{base}/v1/callers/%2B14155559999"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    terminate(&mut child);
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!log.contains("4155559999"), "the erased number: {log}");

    // The span each request's lines carry, by the user agent that sent it.
    let spans: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l.get("span").cloned())
        .filter(|s| s.get("http.route").is_some())
        .collect();
    let client_ips = |agent: &str| -> Vec<String> {
        let ips: Vec<String> = spans
            .iter()
            .filter(|s| s["http.user_agent"] == agent)
            .map(|s| s["http.client_ip"].as_str().unwrap().to_owned())
            .collect();
        assert!(!ips.is_empty(), "no line of {agent}'s requests: {log}");
        ips
    };
    for agent in ["untrusted-peer page view", "trusted-proxy page view"] {
        for ip in client_ips(agent) {
            assert_eq!(ip, "", "a page view names no visitor: {log}");
        }
    }
    for ip in client_ips("untrusted-peer api") {
        assert_eq!(ip, "127.0.0.1", "a forged X-Forwarded-For is not believed");
    }
    for ip in client_ips("trusted-proxy api") {
        assert_eq!(ip, "203.0.113.7", "the trusted proxy's client");
    }
    let erase = spans
        .iter()
        .find(|s| s["http.method"] == "DELETE")
        .expect("the erasure's lines");
    assert_eq!(erase["http.target"], "/v1/callers/{e164}");
    for line in log.lines().filter(|l| l.contains("/v1/dni/session")) {
        assert!(!line.contains("203.0.113.7"), "{line}");
    }
}

/// `account create --json` with `env`: the new account's API key.
fn created_account_with(dir: &Path, env: &[(&str, &str)]) -> String {
    let out = run(switchboard(dir, env).args(["account", "create", "--name", "A", "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}
