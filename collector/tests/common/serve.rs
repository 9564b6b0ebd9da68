//! A real `netmedic-collector serve` process: spawned on a config file, its address read from
//! its log, killed on drop (also when the test panics).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_netmedic-collector");

pub struct ServeProcess {
    child: Child,
    /// `127.0.0.1:port` from the "listening on" log line.
    pub addr: String,
    /// Collects the process's stderr lines until it exits.
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `serve --config config` and waits for its "listening on" line (a condition, not a
    /// sleep: the bound only stops a hang).
    pub fn spawn(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                lines.push(line);
            }
            lines
        });
        let mut p = Self {
            child,
            addr: String::new(),
            stderr: Some(reader),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => p.addr = addr,
            Err(e) => {
                let _ = p.child.kill();
                let lines = p.stderr.take().map(|r| r.join());
                panic!("no listening line: {e}; stderr: {lines:?}");
            }
        }
        assert!(p.addr.starts_with("127.0.0.1:"), "{}", p.addr);
        p
    }

    /// Sends SIGTERM and waits for the exit; returns its status and every stderr line.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let lines = self.stderr.take().unwrap().join().unwrap();
        (exit, lines)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
