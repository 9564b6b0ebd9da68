//! Delivery end to end, real agent and collector binaries in the lab: SIGKILL at random points
//! loses no acknowledged incident event and stores none twice; a long collector cut loses
//! nothing and keeps the spool within its bound; a full disk is a counted drop and delivery
//! resumes when space returns; a corrupted spool file is quarantined and new incidents flow.

#![allow(clippy::unwrap_used)]

use netmedic_lab::delivery::{PortCut, Tmpfs, spool_files, spooled_events, wait_spool_drained};
use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions};
use netmedic_lab::{Cpe, Lab, wait_for};
use netmedic_proto::{CheckId, IncidentStatus};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn options(extra: &str) -> StackOptions {
    StackOptions {
        fail_threshold: 1,
        ok_threshold: 1,
        extra_agent_toml: extra.to_string(),
        ..StackOptions::default()
    }
}

/// A pseudo-random number (the std hasher is randomly keyed per process).
fn random(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish()
}

/// Deletes the CPE's default route whenever the agent has restored it, until stopped: a steady
/// stream of incidents (opened, planned, done/verified, resolved).
fn churn(cpe: &Cpe, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    let ns = cpe.ns.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if ns.default_route().ok().flatten().is_some() {
                let _ = ns.ip(&["route", "del", "default"]);
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        n
    })
}

/// Waits until the collector holds every event the agent's spool acknowledged (by incident:
/// at least that many distinct events), and checks that no action record is stored twice.
fn assert_all_delivered(stack: &Stack<'_>, log: &str, timeout: Duration) {
    let spooled = spooled_events(log);
    assert!(!spooled.is_empty(), "no event was spooled: {log}");
    let mut per_incident: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ev, inc) in &spooled {
        per_incident
            .entry(inc.clone())
            .or_default()
            .insert(ev.clone());
    }
    wait_for(
        "collector holds every spooled event",
        timeout,
        Duration::from_millis(500),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            let stored: BTreeMap<&str, u32> = page
                .incidents
                .iter()
                .map(|i| (i.incident_id.as_str(), i.event_count))
                .collect();
            let missing: Vec<_> = per_incident
                .iter()
                .filter(|(inc, evs)| {
                    stored.get(inc.as_str()).copied().unwrap_or(0) < evs.len() as u32
                })
                .map(|(inc, evs)| {
                    format!(
                        "{inc}: {} spooled, {:?} stored",
                        evs.len(),
                        stored.get(inc.as_str())
                    )
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{missing:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log tail:\n{}", tail(log, 40)));
    for inc in stack.incidents().unwrap().incidents {
        let mut seen = BTreeSet::new();
        for a in &inc.actions {
            let key = format!("{}|{}|{}|{}", a.action, a.outcome, a.at, a.detail);
            assert!(
                seen.insert(key.clone()),
                "incident {} stores {key} twice",
                inc.incident_id
            );
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_event() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut stack = Stack::start(&lab, options("")).expect("stack");
    let cpe = lab.cpe(0);
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(cpe, stop.clone());
    let rounds = 12;
    for round in 0..rounds {
        let before = spooled_events(&stack.agent_log(0)).len();
        // Let some incident events be written, then kill at a random point in the stream.
        wait_for(
            "the agent spools events",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                let n = spooled_events(&stack.agent_log(0)).len();
                if n > before {
                    Ok(())
                } else {
                    Err(format!("{n} spooled"))
                }
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", tail(&stack.agent_log(0), 30)));
        let extra_ms = random(round) % 1500;
        std::thread::sleep(Duration::from_millis(extra_ms)); // the random kill point
        let mut agent = stack.agents[0].take().expect("agent running");
        agent.signal(Signal::SIGKILL).unwrap();
        assert!(
            agent.wait_exit(Duration::from_secs(5)).is_some(),
            "SIGKILL kills"
        );
        drop(agent);
        stack.start_agent(0).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let deletions = churner.join().unwrap();
    eprintln!("{rounds} SIGKILLs, {deletions} route deletions");
    let log = stack.agent_log(0);
    assert!(
        log.matches("spool: ").count() >= rounds as usize,
        "recovered after each kill"
    );
    assert_all_delivered(&stack, &log, Duration::from_secs(90));
}

#[test]
fn a_long_collector_cut_loses_nothing_and_keeps_the_spool_bounded() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let max_events = 60;
    let stack = Stack::start(
        &lab,
        options(&format!("\n[spool]\nmax_events = {max_events}\n")),
    )
    .expect("stack");
    let cpe = lab.cpe(0);
    let spool_dir = lab.dir().join("agent0-state/spool");
    let cut = PortCut::new(&lab.isp().ns, COLLECTOR_PORT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(cpe, stop.clone());
    let mut peak = 0;
    // Incidents pile up in the spool while the collector is unreachable.
    wait_for(
        "12 events spooled during the cut",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            let files = spool_files(&spool_dir).len();
            peak = peak.max(files);
            assert!(
                files <= max_events,
                "spool holds {files} > {max_events} events"
            );
            if files >= 12 {
                Ok(())
            } else {
                Err(format!("{files} spooled"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0), 30)));
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert!(
        stack.incidents().unwrap().incidents.is_empty(),
        "nothing reached the collector during the cut"
    );
    let log = stack.agent_log(0);
    assert!(
        !log.contains("spool full"),
        "the bound was not hit, nothing dropped"
    );
    cut.heal();
    assert_all_delivered(&stack, &stack.agent_log(0), Duration::from_secs(60));
    wait_spool_drained(&spool_dir, Duration::from_secs(30)).unwrap();
    eprintln!("peak spool depth {peak} of {max_events}");
}

#[test]
fn a_full_disk_is_a_counted_drop_and_delivery_resumes() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let state = lab.dir().join("agent0-state");
    let tmpfs = Tmpfs::mount(&state, "64k").unwrap();
    let stack = Stack::start(&lab, options("")).expect("stack");
    let cpe = lab.cpe(0);
    // The lab starts healthy; fill the disk, then cause an incident.
    let filler = tmpfs.fill("filler").unwrap();
    cpe.delete_default_route().unwrap();
    stack
        .wait_agent_log(0, &["dropped:"], Duration::from_secs(30))
        .unwrap();
    wait_for(
        "route restored",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            cpe.default_route()
                .map_err(|e| e.to_string())?
                .ok_or("no route".to_string())
        },
    )
    .unwrap();
    let mut agent_alive = stack.agents[0].is_some();
    if let Some(a) = &stack.agents[0] {
        agent_alive &= a.pid() > 0;
    }
    assert!(agent_alive);
    let log = stack.agent_log(0);
    assert!(!log.contains("panicked"), "{log}");
    // Space returns: the next incident is delivered, and the drop count is on disk.
    std::fs::remove_file(&filler).unwrap();
    let before = stack.incidents().unwrap().incidents.len();
    cpe.delete_default_route().unwrap();
    stack
        .wait_incident(
            "an incident after space returned",
            Duration::from_secs(60),
            |i| i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0), 40)));
    assert!(stack.incidents().unwrap().incidents.len() > before);
    let counters = std::fs::read_to_string(state.join("spool/counters")).unwrap();
    let dropped: u64 = counters
        .lines()
        .find_map(|l| l.strip_prefix("dropped_total="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(dropped >= 1, "{counters}");
    drop(stack);
    drop(tmpfs);
}

#[test]
fn a_corrupted_spool_file_is_quarantined_and_new_incidents_flow() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut stack = Stack::start(&lab, options("")).expect("stack");
    let cpe = lab.cpe(0);
    let spool_dir = lab.dir().join("agent0-state/spool");
    let cut = PortCut::new(&lab.isp().ns, COLLECTOR_PORT).unwrap();
    cpe.delete_default_route().unwrap();
    wait_for(
        "events spooled",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let n = spool_files(&spool_dir).len();
            if n >= 2 { Ok(()) } else { Err(format!("{n}")) }
        },
    )
    .unwrap();
    let mut agent = stack.agents[0].take().unwrap();
    agent.signal(Signal::SIGTERM).unwrap();
    assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
    drop(agent);
    let files = spool_files(&spool_dir);
    let victim = files[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&victim, bytes).unwrap();
    cut.heal();
    stack.start_agent(0).unwrap();
    let name = victim.file_name().unwrap();
    // (start_agent may return on the previous run's log lines: wait for the recovery.)
    wait_for(
        "the corrupted file quarantined",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let quarantined: Vec<_> = std::fs::read_dir(spool_dir.join("quarantine"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            if quarantined.iter().any(|q| q == name) {
                Ok(())
            } else {
                Err(format!("{name:?} not in {quarantined:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0), 40)));
    assert!(stack.agent_log(0).contains("quarantining"));
    // The rest of the spool and new incidents reach the collector.
    wait_spool_drained(&spool_dir, Duration::from_secs(30)).unwrap();
    let before = stack.incidents().unwrap().incidents.len();
    cpe.delete_default_route().unwrap();
    wait_for(
        "a new incident stored",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let n = stack
                .incidents()
                .map_err(|e| e.to_string())?
                .incidents
                .len();
            if n > before {
                Ok(())
            } else {
                Err(format!("{n} incidents"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0), 40)));
}
