//! Tests of config parsing and validation, against the shipped example too.

use super::*;
use std::path::PathBuf;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/collector.toml");

fn parse(text: &str) -> Result<CollectorConfig, ConfigError> {
    CollectorConfig::parse(Path::new("collector.toml"), text)
}

#[test]
fn the_example_config_parses_and_matches_the_defaults() {
    let cfg = CollectorConfig::load(Path::new(EXAMPLE)).unwrap();
    assert_eq!(cfg, CollectorConfig::default());
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(parse("").unwrap(), CollectorConfig::default());
}

#[test]
fn values_are_read() {
    let cfg = parse(
        "[server]\nlisten_addr = \"[::1]:9000\"\nmax_body_bytes = 4096\n\
             [storage]\nurl = \"/tmp/x.sqlite\"\n[fleet]\nheartbeat_interval_secs = 60\n",
    )
    .unwrap();
    assert_eq!(cfg.server.listen_addr, "[::1]:9000".parse().unwrap());
    assert_eq!(cfg.server.max_body_bytes, 4096);
    assert_eq!(
        cfg.storage.url,
        StorageUrl::Sqlite {
            path: "/tmp/x.sqlite".into()
        }
    );
    assert_eq!(cfg.fleet.heartbeat_interval_secs, 60);
}

#[test]
fn storage_urls() {
    let p = |s: &str| StorageUrl::parse(s);
    let sqlite = |s: &str| {
        Ok(StorageUrl::Sqlite {
            path: PathBuf::from(s),
        })
    };
    assert_eq!(p("sqlite:///var/lib/x.db"), sqlite("/var/lib/x.db"));
    assert_eq!(p("sqlite://rel.db"), sqlite("rel.db"));
    assert_eq!(p("sqlite:rel.db"), sqlite("rel.db"));
    assert_eq!(p("/plain/path.db"), sqlite("/plain/path.db"));
    assert_eq!(
        p("postgres://u:pw@127.0.0.1:5432/db"),
        Ok(StorageUrl::Postgres {
            url: "postgres://u:pw@127.0.0.1:5432/db".into()
        })
    );
    assert_eq!(
        p("postgres://u:pw@127.0.0.1:5432/db").unwrap().to_string(),
        "postgres://u:***@127.0.0.1:5432/db"
    );
    assert!(p("postgres://").is_err());
    assert!(p("mysql://h/db").unwrap_err().contains("mysql"));
    assert!(p("sqlite://").is_err());
    assert!(p("").is_err());
}

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let err = parse("# comment\n[server]\nlistn_addr = \"127.0.0.1:1\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("collector.toml:3:1: unknown field `listn_addr`, expected"),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_the_field() {
    let err = parse("[server]\nmax_body_bytes = \"big\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("collector.toml:2:18: "), "{msg}");
    assert!(msg.contains("server.max_body_bytes"), "{msg}");
}

#[test]
fn syntax_error_has_a_position() {
    let err = parse("[server\n").unwrap_err();
    assert!(err.to_string().starts_with("collector.toml:1:"), "{err}");
}

#[test]
fn all_value_problems_are_reported_at_once() {
    let err = parse(
        "[server]\nlisten_addr = \"localhost\"\nmax_body_bytes = 1\n\
             [storage]\nurl = \"mysql://db/x\"\n[fleet]\nheartbeat_interval_secs = 0\n",
    )
    .unwrap_err();
    let msg = err.to_string();
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 4, "{msg}");
    assert!(
        lines[0].starts_with("collector.toml:2:15: server.listen_addr: \"localhost\""),
        "{msg}"
    );
    assert!(
        lines[1].starts_with("collector.toml:3:18: server.max_body_bytes:"),
        "{msg}"
    );
    assert!(
        lines[2].starts_with("collector.toml:5:7: storage.url:"),
        "{msg}"
    );
    assert!(
        lines[3].starts_with("collector.toml:7:27: fleet.heartbeat_interval_secs:"),
        "{msg}"
    );
    assert_eq!(err.problems().len(), 4);
}

#[test]
fn missing_file_names_the_path() {
    let err = CollectorConfig::load(Path::new("/nonexistent/netmedic/c.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/netmedic/c.toml: cannot read")
    );
}
