//! A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` run as the `postgres` user
//! (initdb refuses root) in a temp dir, listening only on a unix socket inside that dir (no TCP
//! port, so nothing to collide with and nothing off-host). Stopped and removed on drop, also when
//! the test panics.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

#[derive(Debug)]
pub struct PgServer {
    dir: TempDir,
    data: PathBuf,
}

fn bin(name: &str) -> PathBuf {
    for dir in ["/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    // Any other installed major version.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let p = e.path().join("bin").join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("{name} not found: install the PostgreSQL server (scripts/setup.sh does)");
}

fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("runuser");
    cmd.arg("-u")
        .arg("postgres")
        .arg("--")
        .arg(program)
        .args(args);
    // Do not inherit a cwd the postgres user cannot read.
    cmd.current_dir("/");
    cmd.output().unwrap()
}

impl PgServer {
    /// initdb + start. `fsync` off makes tests fast; durability is SQLite's and PostgreSQL's own
    /// business and not what these tests check.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("nmpg").tempdir().unwrap();
        let status = Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "chown the PostgreSQL temp dir");
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Self { dir, data };
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            server.socket_dir().display()
        );
        let log = server.dir.path().join("postgres.log");
        let out = as_postgres(
            &bin("pg_ctl"),
            &[
                "-D",
                server.data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        server
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// Creates a fresh database and returns its URL.
    pub async fn create_db(&self, db: &str) -> String {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        self.url(db)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres(
            &bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
