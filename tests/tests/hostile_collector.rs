//! The real agent binary against a hostile collector (or a man in the middle of an `http://`
//! URL) and hostile local state: an endless reply body, a 200 that acknowledges nothing, a
//! `Retry-After` of 2^64-1 seconds, 5,000 diagnostics requests per reply, escape sequences in a
//! kill-switch reason, sequence numbers of u64::MAX, a lease acquired at i64::MIN, a lease of
//! 2^64-1 seconds, a 64 MiB lease file and a `spool/quarantine` symlink. Each test prints the
//! figure it bounds (memory, requests per window, diagnostics run).

#![allow(clippy::unwrap_used)]

use netmedic_lab::hostile::{HostileCollector, Reply, proc_kib, read_log};
use netmedic_lab::stack::{COLLECTOR_PORT, spawn_agent};
use netmedic_lab::{COLLECTOR_IP, Lab, LabProcess, WAN_IFACE, wait_for};
use netmedic_proto::paths;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Peak RSS the agent must stay under while a collector streams an endless body at it.
const RSS_BOUND_KIB: u64 = 48 * 1024;

const HB_REPLY: &str = r#"{"schema_version":1,"server_time":"2030-01-01T00:00:00Z","heartbeat_interval_secs":300,"advisories":[]}"#;
const NO_ACK: &str = r#"{"accepted":0,"duplicates":0,"acked_event_ids":[]}"#;

fn hb_reply(advisories: &str) -> String {
    format!(
        r#"{{"schema_version":1,"server_time":"2030-01-01T00:00:00Z","heartbeat_interval_secs":300,"advisories":[{advisories}]}}"#
    )
}

struct Setup {
    max_backoff_secs: u64,
    lease_file: Option<PathBuf>,
}

impl Setup {
    /// `max_backoff_secs`, the CPE's own lease file.
    fn backoff(max_backoff_secs: u64) -> Self {
        Self {
            max_backoff_secs,
            lease_file: None,
        }
    }
}

fn start_agent(lab: &Lab, name: &str, s: &Setup) -> LabProcess {
    let cpe = lab.cpe(0);
    let cfg = lab.dir().join(format!("{name}.toml"));
    let lease = s
        .lease_file
        .clone()
        .unwrap_or_else(|| cpe.lease_file.clone());
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"lab-cpe-0\"\nstate_dir = \"{state}\"\nfirmware_version = \"lab-1.0\"\n\n\
             [collector]\nurl = \"http://{COLLECTOR_IP}:{COLLECTOR_PORT}\"\nstart_delay_max_secs = 0\n\
             max_backoff_secs = {backoff}\nrequest_timeout_secs = 5\n\n\
             [heartbeat]\ninterval_secs = 1\njitter_secs = 0\n\n\
             [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n\
             [checks.default_route]\ninterval_secs = 1\nfail_threshold = 1\nok_threshold = 1\n\n\
             [checks.wan_address]\ninterval_secs = 1\n",
            state = state_dir(lab, name).display(),
            backoff = s.max_backoff_secs,
            lease = lease.display(),
        ),
    )
    .unwrap();
    spawn_agent(cpe, &cfg, &lab.log_path(name)).unwrap()
}

fn state_dir(lab: &Lab, name: &str) -> PathBuf {
    lab.dir().join(format!("{name}-state"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until `ok(log)` holds, failing early (with the log) if the agent exits.
fn wait_log(lab: &Lab, agent: &mut LabProcess, name: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let path = lab.log_path(name);
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let log = read_log(&path);
            if !agent.is_running() {
                return Err(format!("agent exited:\n{}", tail(&log, 30)));
            }
            if ok(&log) {
                Ok(())
            } else {
                Err(tail(&log, 10))
            }
        },
    )
    .unwrap();
}

/// Starts the agent, waits for its first checks, then deletes the default route: an incident
/// whose events the agent must deliver to the (hostile) collector.
fn agent_with_a_broken_route(lab: &Lab, name: &str, max_backoff_secs: u64) -> LabProcess {
    let mut agent = start_agent(lab, name, &Setup::backoff(max_backoff_secs));
    wait_log(lab, &mut agent, name, "agent runs its checks", |l| {
        l.contains("check default_route:")
    });
    lab.cpe(0).delete_default_route().unwrap();
    agent
}

/// Polls the agent's peak RSS for `window`; returns the highest `VmHWM` seen (KiB). Stops early
/// (and returns what it saw) once it passes `bound` or the agent is gone.
fn watch_peak_rss(agent: &mut LabProcess, window: Duration, bound: u64) -> u64 {
    let end = Instant::now() + window;
    let mut peak = 0;
    while Instant::now() < end && agent.is_running() {
        if let Some(kib) = proc_kib(agent.pid(), "VmHWM") {
            peak = peak.max(kib);
        }
        if peak > bound {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

/// A collector that answers heartbeats normally and acknowledges no report event.
fn no_ack_collector(lab: &Lab) -> HostileCollector {
    HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, |path, _| {
        if path == paths::HEARTBEATS {
            Reply::ok(HB_REPLY)
        } else {
            Reply::ok(NO_ACK)
        }
    })
    .unwrap()
}

/// Item 9: an endless reply body is read through a cap, the connection dropped, memory flat.
#[test]
fn an_endless_reply_body_does_not_grow_the_agent() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake =
        HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, |_, _| Reply::Endless).unwrap();
    let mut agent = start_agent(&lab, "endless", &Setup::backoff(2));
    fake.wait_first(paths::HEARTBEATS, Duration::from_secs(30))
        .unwrap();
    let peak = watch_peak_rss(&mut agent, Duration::from_secs(12), RSS_BOUND_KIB);
    let log = read_log(&lab.log_path("endless"));
    let streamed = fake
        .streamed_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "endless body: agent peak RSS {} KiB, {} heartbeats, {} MiB streamed",
        peak,
        fake.count(paths::HEARTBEATS),
        streamed >> 20
    );
    assert!(agent.is_running(), "agent died:\n{}", tail(&log, 30));
    assert!(
        peak < RSS_BOUND_KIB,
        "peak RSS {peak} KiB (bound {RSS_BOUND_KIB} KiB)"
    );
    assert!(log.contains("reply body over"), "{}", tail(&log, 30));
    assert!(
        fake.count(paths::HEARTBEATS) >= 3,
        "heartbeats go on after an endless reply"
    );
}

/// Item 10: a 200 that acknowledges none of the sent events is a failed delivery with backoff.
#[test]
fn a_200_without_acks_backs_off_instead_of_resending_at_once() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake = no_ack_collector(&lab);
    let mut agent = agent_with_a_broken_route(&lab, "noack", 8);
    let first = fake
        .wait_first(paths::REPORTS, Duration::from_secs(30))
        .unwrap();
    let window = Duration::from_secs(15);
    let deadline = first + window;
    while Instant::now() < deadline && agent.is_running() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = fake
        .times(paths::REPORTS)
        .iter()
        .filter(|t| **t < deadline)
        .count();
    eprintln!("200 without acks: {n} report requests in {window:?}");
    assert!(agent.is_running());
    assert!(n >= 2, "{n}: the agent must keep retrying");
    assert!(n <= 30, "{n} report requests in {window:?}: no backoff");
    let spool = state_dir(&lab, "noack").join("spool");
    assert!(
        !netmedic_lab::delivery::spool_files(&spool).is_empty(),
        "unacknowledged events stay spooled"
    );
}

/// Item 14: a 400 that names no event keeps the batch (spooled, retried with backoff) instead
/// of setting every event aside for ever.
#[test]
fn a_400_naming_no_event_keeps_the_batch() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake = HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, |path, _| {
        if path == paths::REPORTS {
            Reply::Json(
                400,
                Vec::new(),
                r#"{"error":"bad_request","reason":"no event named"}"#.into(),
            )
        } else {
            Reply::ok(HB_REPLY)
        }
    })
    .unwrap();
    let mut agent = agent_with_a_broken_route(&lab, "nameless", 2);
    wait_for(
        "the batch sent again",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let n = fake.count(paths::REPORTS);
            if n >= 3 { Ok(()) } else { Err(n) }
        },
    )
    .unwrap();
    let spool = state_dir(&lab, "nameless").join("spool");
    let rejected = std::fs::read_dir(spool.join("rejected"))
        .map(|d| d.count())
        .unwrap_or(0);
    let kept = netmedic_lab::delivery::spool_files(&spool).len();
    eprintln!("400 naming no event: {kept} event(s) kept, {rejected} file(s) set aside");
    assert_eq!(rejected, 0, "nothing set aside");
    assert!(kept > 0, "the events stay spooled");
    assert!(agent.is_running());
}

/// Item 11: `Retry-After: 18446744073709551615` is capped at `max_backoff_secs`.
#[test]
fn a_huge_retry_after_is_capped() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake = HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, |_, _| {
        Reply::Json(
            429,
            vec![("retry-after".into(), u64::MAX.to_string())],
            r#"{"error":"busy","reason":"forever"}"#.into(),
        )
    })
    .unwrap();
    let mut agent = agent_with_a_broken_route(&lab, "retry", 2);
    let start = Instant::now();
    let wanted = 3;
    let got = wait_for(
        "more heartbeats and reports after Retry-After: 2^64-1",
        Duration::from_secs(40),
        Duration::from_millis(100),
        || {
            let (h, r) = (fake.count(paths::HEARTBEATS), fake.count(paths::REPORTS));
            if h >= wanted && r >= wanted {
                Ok((h, r))
            } else {
                Err(format!("{h} heartbeats, {r} reports"))
            }
        },
    );
    eprintln!(
        "Retry-After 2^64-1: {:?} after {:?}",
        got.as_ref().map_err(|e| e.to_string()),
        start.elapsed()
    );
    got.unwrap();
    assert!(agent.is_running());
}

/// Item 12: 5,000 diagnostics requests per reply run a few, capped per reply and per hour.
#[test]
fn a_diagnostics_flood_is_capped() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake = HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, |path, index| {
        if path != paths::HEARTBEATS {
            return Reply::ok(r#"{"accepted":0,"duplicates":0,"acked_event_ids":[]}"#);
        }
        // Fresh ids in every reply (repeats are refused anyway).
        let advisories: Vec<String> = (0..5000)
            .map(|i| {
                format!(
                    r#"{{"type":"diagnostics","request_id":"d{index}-{i}","checks":["link","default_route"]}}"#
                )
            })
            .collect();
        Reply::ok(hb_reply(&advisories.join(",")))
    })
    .unwrap();
    let mut agent = start_agent(&lab, "diag", &Setup::backoff(2));
    let first = fake
        .wait_first(paths::HEARTBEATS, Duration::from_secs(30))
        .unwrap();
    let window = Duration::from_secs(12);
    while Instant::now() < first + window && agent.is_running() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = read_log(&lab.log_path("diag"));
    let runs = log.lines().filter(|l| l.contains(": running ")).count();
    let replies = fake.count(paths::HEARTBEATS);
    eprintln!("diagnostics flood: {runs} requests run in {window:?} ({replies} replies of 5,000)");
    assert!(agent.is_running(), "{}", tail(&log, 30));
    assert!(replies >= 3, "{replies} heartbeats");
    assert!(runs >= 1, "some diagnostics still run");
    assert!(runs <= 12, "{runs} diagnostics requests run");
    assert!(log.contains("diagnostics: refused"), "{}", tail(&log, 30));
}

/// Item 13: control characters and escapes in collector text are neutralised before logging.
#[test]
fn escapes_in_a_kill_switch_reason_never_reach_the_log() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let reason = r#"maintenance\u001b[2J\u001b[31m\r\nERROR forged line\u202egnp.exe\u200b\u0007"#;
    let reply = hb_reply(&format!(r#"{{"type":"kill_switch","reason":"{reason}"}}"#));
    let fake = HostileCollector::start(&lab.isp().ns, COLLECTOR_PORT, move |path, _| {
        if path == paths::HEARTBEATS {
            Reply::ok(reply.clone())
        } else {
            Reply::ok(NO_ACK)
        }
    })
    .unwrap();
    let mut agent = start_agent(&lab, "escape", &Setup::backoff(2));
    wait_log(&lab, &mut agent, "escape", "the kill switch", |l| {
        l.contains("kill switch on")
    });
    let bytes = std::fs::read(lab.log_path("escape")).unwrap();
    let log = String::from_utf8_lossy(&bytes);
    assert!(fake.count(paths::HEARTBEATS) >= 1);
    let raw = ['\u{1b}', '\u{202e}', '\u{200b}', '\u{7}'];
    let found: Vec<char> = raw.iter().copied().filter(|c| log.contains(*c)).collect();
    eprintln!("kill-switch reason: raw control/bidi characters in the log: {found:?}");
    assert!(found.is_empty(), "{found:?} in the log");
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")),
        "a forged log line"
    );
    assert!(
        log.contains(r"maintenance\u{001b}[2J"),
        "{}",
        tail(&log, 10)
    );
}

/// CRC-32 (IEEE), as the spool frames use.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A well-framed spool file holding an event with sequence number `seq`.
fn spool_frame(seq: u64) -> Vec<u8> {
    let json = format!(
        r#"{{"event_id":"e-max","incident_id":"i-max","seq":{seq},"kind":"opened","check":"default_route","cause":"default_route_missing","category":"no_internet","severity":"critical","started_at":"2026-01-01T00:00:00Z","at":"2026-01-01T00:00:00Z","summary":"no default route","evidence":{{}},"actions":[]}}"#
    );
    let mut buf = b"NMS1".to_vec();
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32(json.as_bytes()).to_le_bytes());
    buf.extend_from_slice(json.as_bytes());
    buf
}

/// Item 14: u64::MAX sequence numbers (spool and seq file), a lease acquired at i64::MIN and a
/// `spool/quarantine` symlink out of the state dir: the agent starts, spools, and says why.
#[test]
fn hostile_local_state_does_not_crash_the_agent() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let _fake = no_ack_collector(&lab);
    let state = state_dir(&lab, "local");
    let spool = state.join("spool");
    let outside = lab.dir().join("outside");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(state.join("seq"), u64::MAX.to_string()).unwrap();
    std::fs::write(
        spool.join("00000000000000000001-e-max.evt"),
        spool_frame(u64::MAX),
    )
    .unwrap();
    std::fs::write(spool.join("00000000000000000002-bad.evt"), b"not a frame").unwrap();
    std::os::unix::fs::symlink(&outside, spool.join("quarantine")).unwrap();
    let lease = lab.dir().join("hostile.lease");
    std::fs::write(
        &lease,
        format!(
            "ip=100.64.1.7\nrouter=100.64.0.1\nlease_secs=120\nacquired_at_unix={}\n",
            i64::MIN
        ),
    )
    .unwrap();
    let setup = Setup {
        max_backoff_secs: 2,
        lease_file: Some(lease),
    };
    let mut agent = start_agent(&lab, "local", &setup);
    wait_log(&lab, &mut agent, "local", "the agent checks", |l| {
        l.contains("check default_route:") && l.contains("outside 1970..=9999")
    });
    lab.cpe(0).delete_default_route().unwrap();
    wait_log(&lab, &mut agent, "local", "an event spooled", |l| {
        l.contains("spooled event ")
    });
    let log = read_log(&lab.log_path("local"));
    assert!(!log.contains("panicked"), "{}", tail(&log, 30));
    assert!(
        log.contains("symlink, not a directory"),
        "{}",
        tail(&log, 30)
    );
    let escaped: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(
        escaped.is_empty(),
        "moved out of the state dir: {escaped:?}"
    );
    let q = std::fs::symlink_metadata(spool.join("quarantine")).unwrap();
    assert!(q.is_dir(), "quarantine is a real directory again");
    assert_eq!(
        std::fs::read_dir(spool.join("quarantine")).unwrap().count(),
        2
    );
    for f in netmedic_lab::delivery::spool_files(&spool) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let seq: u64 = name.split('-').next().unwrap().parse().unwrap();
        assert!(seq < i64::MAX as u64, "{name}");
    }
    assert!(agent.is_running());
}

fn write_lease(path: &Path, lease_secs: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "ip=100.64.1.7\nrouter=100.64.0.1\nlease_secs={lease_secs}\nacquired_at_unix={now}\n"
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Item 14: a lease of 2^64-1 seconds is not expired; a 64 MiB lease file is not read whole.
#[test]
fn huge_leases_are_read_safely() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let _fake = no_ack_collector(&lab);
    let lease = lab.dir().join("huge.lease");
    write_lease(&lease, &u64::MAX.to_string());
    let setup = Setup {
        max_backoff_secs: 2,
        lease_file: Some(lease.clone()),
    };
    let mut agent = start_agent(&lab, "lease", &setup);
    wait_log(&lab, &mut agent, "lease", "three wan_address runs", |l| {
        l.matches("check wan_address:").count() >= 3
    });
    let log = read_log(&lab.log_path("lease"));
    assert!(
        !log.contains("lease_expired") && !log.contains("expired"),
        "{}",
        tail(&log, 20)
    );

    // 64 MiB of nothing (sparse): refused by its size, never read whole.
    let big = lease.with_extension("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    std::fs::rename(&big, &lease).unwrap();
    let before = read_log(&lab.log_path("lease")).len();
    let path = lab.log_path("lease");
    wait_for(
        "the agent refuses the 64 MiB lease",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let hwm = proc_kib(agent.pid(), "VmHWM").unwrap_or(0);
            if hwm > RSS_BOUND_KIB {
                return Ok(());
            }
            let log = read_log(&path);
            if log.get(before..).is_some_and(|l| l.contains("larger than")) {
                Ok(())
            } else {
                Err(hwm)
            }
        },
    )
    .unwrap();
    let peak = watch_peak_rss(&mut agent, Duration::from_secs(3), RSS_BOUND_KIB);
    let log_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("64 MiB lease: agent peak RSS {peak} KiB, log {log_bytes} bytes");
    assert!(agent.is_running());
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
    assert!(log_bytes < 1 << 20, "the log grew to {log_bytes} bytes");
}
