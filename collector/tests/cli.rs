//! The `netmedic-collector` binary: `incidents` (table and JSON), `check-config`, and `serve`
//! with a graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use common::serve::ServeProcess;
use common::{action, batch, event, test_config};
use netmedic_collector::store::{self, OpenMode};
use netmedic_proto::{ActionId, ActionOutcome, EventKind, IncidentPage, IncidentStatus};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_netmedic-collector");

/// A database in `dir` holding one resolved (auto-healed) and one open incident.
async fn seeded_db(dir: &tempfile::TempDir) -> String {
    let config = test_config(dir);
    let store = store::open(&config.storage, OpenMode::CreateAndMigrate)
        .await
        .unwrap();
    let mut opened = event("ev-1", "inc-1", 1, EventKind::Opened);
    opened.actions = vec![
        action(ActionId::RestoreRoute, ActionOutcome::Planned, 1),
        action(ActionId::RestoreRoute, ActionOutcome::Done, 2),
    ];
    let mut resolved = event("ev-2", "inc-1", 2, EventKind::Resolved);
    resolved.actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Verified, 3)];
    let mut dns = event("ev-3", "inc-2", 3, EventKind::Opened);
    dns.check = netmedic_proto::CheckId::Dns;
    dns.category = netmedic_proto::Category::DnsFailure;
    dns.started_at = common::ts(50);
    dns.at = common::ts(50);
    dns.summary = "resolver 192.0.2.53 times out".into();
    let b = batch("cpe-0001", vec![opened, resolved, dns]);
    store.ingest_report(&b, common::ts(60)).await.unwrap();
    store.close().await;
    dir.path().join("collector.sqlite").display().to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn incidents_prints_an_aligned_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(&dir).await;
    let (code, out, err) = run(&["incidents", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header = lines[0];
    for h in [
        "STARTED", "AGENT", "INCIDENT", "CHECK", "CATEGORY", "STATUS", "HEALED", "ACTIONS",
        "SUMMARY",
    ] {
        assert!(header.contains(h), "{header}");
    }
    // Newest first: the DNS incident started later.
    assert!(
        lines[1].contains("inc-2") && lines[1].contains("dns_failure"),
        "{out}"
    );
    assert!(lines[2].contains("inc-1"), "{out}");
    assert!(lines[2].contains("restore_route:verified"), "{out}");
    assert!(
        lines[2].contains("resolved") && lines[2].contains("yes"),
        "{out}"
    );
    // Columns line up.
    let col = header.find("ACTIONS").unwrap();
    assert_eq!(lines[2].find("restore_route"), Some(col), "{out}");

    let (code, out, _) = run(&["incidents", "--db", &db, "--status", "open"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("inc-2") && !out.contains("inc-1"), "{out}");
}

#[tokio::test]
async fn incidents_prints_json_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(&dir).await;
    let url = format!("sqlite://{db}");
    let (code, out, err) = run(&["incidents", "--db", &url, "--json", "--limit", "1"]);
    assert_eq!(code, 0, "{err}");
    let page: IncidentPage = serde_json::from_str(&out).unwrap();
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.incidents[0].incident_id, "inc-2");
    let cursor = page.next_cursor.unwrap();
    let (code, out, _) = run(&["incidents", "--db", &db, "--json", "--cursor", &cursor]);
    assert_eq!(code, 0);
    let page: IncidentPage = serde_json::from_str(&out).unwrap();
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.incidents[0].status, IncidentStatus::Resolved);
    assert_eq!(page.next_cursor, None);
}

#[test]
fn incidents_on_a_missing_database_fails_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.sqlite");
    let (code, _, err) = run(&["incidents", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!db.exists());
}

#[test]
fn check_config_reports_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    std::fs::write(
        &path,
        "[server]\nlisten_addr = \"127.0.0.1:1\"\nlistn_addr = 1\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, _, err) = run(&["check-config", p]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{p}:3:1: unknown field `listn_addr`")),
        "{err}"
    );

    std::fs::write(&path, "[fleet]\nheartbeat_interval_secs = 0\n").unwrap();
    let (code, _, err) = run(&["check-config", p]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{p}:2:27: fleet.heartbeat_interval_secs:")),
        "{err}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/collector.toml");
    let (code, out, err) = run(&["check-config", example]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn serve_logs_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    let db = dir.path().join("c.sqlite");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten_addr = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let serve = ServeProcess::spawn(&config);
    let addr = serve.addr.clone();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    });
    assert_eq!(body, "ok");

    let (exit, lines) = serve.terminate();
    assert!(exit.success(), "{exit:?}: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("SIGTERM")), "{lines:?}");
    assert!(db.exists());
}

#[test]
fn device_add_prints_only_the_token_and_the_fleet_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite").display().to_string();
    // Enrolment may precede the first `serve`: it creates the database.
    let (code, out, err) = run(&["device", "add", "cpe-7", "--region", "north", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let token = out.strip_suffix('\n').unwrap();
    assert_eq!(token.len(), 64, "{out:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
    assert!(err.contains("enrolled device cpe-7"), "{err}");
    // The database holds only the hash.
    let raw = std::fs::read(dir.path().join("c.sqlite")).unwrap();
    assert!(!raw.windows(64).any(|w| w == token.as_bytes()));

    let (code, _, err) = run(&["device", "add", "cpe-7", "--db", &db]);
    assert_eq!(code, 1);
    assert!(err.contains("already enrolled"), "{err}");
    let (code, _, err) = run(&["device", "add", "bad id", "--db", &db]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = run(&["device", "list", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("DEVICE"), "{out}");
    assert!(out.contains("cpe-7") && out.contains("never_seen") && out.contains("north"));

    let (code, _, err) = run(&[
        "killswitch",
        "set",
        "--region",
        "north",
        "--reason",
        "storm",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["killswitch", "list", "--db", &db]);
    assert_eq!(code, 0);
    assert!(
        out.contains("region\tnorth") && out.contains("storm"),
        "{out}"
    );
    let (code, _, err) = run(&[
        "killswitch",
        "set",
        "--fleet",
        "--device",
        "x",
        "--reason",
        "r",
    ]);
    assert_eq!(code, 2, "one scope only: {err}");
    let (code, _, err) = run(&["killswitch", "clear", "--region", "north", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run(&["killswitch", "clear", "--region", "north", "--db", &db]);
    assert_eq!(code, 1);

    let (code, out, err) = run(&[
        "diag", "request", "cpe-7", "--checks", "dns,icmp", "--db", &db,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("diag-"), "{out}");
    let (code, _, err) = run(&[
        "diag",
        "request",
        "cpe-7",
        "--checks",
        "telepathy",
        "--db",
        &db,
    ]);
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = run(&["device", "revoke", "cpe-7", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["device", "list", "--json", "--db", &db]);
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["devices"][0]["state"], "revoked");
    let (code, _, _) = run(&["device", "revoke", "cpe-7", "--db", &db]);
    assert_eq!(code, 1);
}

#[test]
fn experiments_are_started_listed_and_stopped_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite").display().to_string();
    // The database exists once a device is enrolled.
    let (code, _, err) = run(&["device", "add", "cpe-7", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "experiment",
        "start",
        "--id",
        "dns-holdout",
        "--playbook",
        "dns",
        "--control-percent",
        "5",
        "--salt",
        "salt-1",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "experiment",
        "start",
        "--id",
        "link-2",
        "--check",
        "link",
        "--cause",
        "carrier_down",
        "--control-percent",
        "2.5",
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["experiment", "list", "--db", &db]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID\tSTATE"), "{out}");
    assert!(
        out.contains("dns-holdout\tactive\tplaybook dns\t5.0%") && out.contains("\tcli\tsalt-1"),
        "{out}"
    );
    assert!(
        out.contains("link-2\tactive\tcheck link/carrier_down\t2.5%"),
        "{out}"
    );
    // Usage errors exit 2: the id taken exits 1.
    for (args, want, why) in [
        (
            vec!["--id", "x", "--playbook", "dns", "--control-percent", "51"],
            2,
            "over 50 %",
        ),
        (
            vec![
                "--id",
                "x",
                "--playbook",
                "dns",
                "--control-percent",
                "0.05",
            ],
            2,
            "under 0.1 %",
        ),
        (
            vec![
                "--id",
                "bad id",
                "--playbook",
                "dns",
                "--control-percent",
                "5",
            ],
            2,
            "bad id",
        ),
        (
            vec![
                "--id",
                "x",
                "--playbook",
                "dns",
                "--check",
                "dns",
                "--control-percent",
                "5",
            ],
            2,
            "two scopes",
        ),
        (
            vec![
                "--id",
                "x",
                "--playbook",
                "dns",
                "--cause",
                "c",
                "--control-percent",
                "5",
            ],
            2,
            "cause without check",
        ),
        (
            vec![
                "--id",
                "dns-holdout",
                "--playbook",
                "dns",
                "--control-percent",
                "5",
            ],
            1,
            "id taken",
        ),
    ] {
        let mut all = vec!["experiment", "start"];
        all.extend(args);
        all.extend(["--db", &db]);
        let (code, _, err) = run(&all);
        assert_eq!(code, want, "{why}: {err}");
    }
    let (code, _, err) = run(&["experiment", "stop", "dns-holdout", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["experiment", "stop", "dns-holdout", "--db", &db]);
    assert_eq!(code, 1, "already ended: {err}");
    let (code, out, _) = run(&["experiment", "list", "--json", "--db", &db]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ended = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "dns-holdout")
        .unwrap();
    assert!(ended["ended_at"].is_string(), "{out}");
}
