//! Unit tests of the scheduler and its life cycle, with a fake check and a fake action: the
//! catalogue's `service` check whose runs the fake [`Effects`] answers, and a fake action that
//! heals it (or not) and can be undone. The spool, the detector and the healer are real.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::actions::{ActionError, Applied, Undo};
use futures::future::LocalBoxFuture;
use netmedic_proto::{ActionOutcome, IncidentEvent};
use std::cell::{Cell, RefCell};
use std::path::Path;

/// The fake world: one check that fails until the fake action heals it.
#[derive(Default)]
struct Fake {
    healthy: Cell<bool>,
    /// The action makes the check pass.
    heals: bool,
    /// The action changes config and returns an undo.
    undoable: bool,
    observed: Cell<u32>,
    acted: Cell<u32>,
    rolled_back: Cell<u32>,
    committed: Cell<u32>,
    /// Runs when the action is carried out.
    on_act: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl Effects for Fake {
    fn observe<'a>(&'a self, check: &'a Check) -> LocalBoxFuture<'a, Observation> {
        self.observed.set(self.observed.get() + 1);
        let obs = if self.healthy.get() {
            Observation::ok(check.id(), "fake service runs")
        } else {
            Observation::new(
                check.id(),
                CheckStatus::Failed,
                "service_down",
                "fake is down",
            )
            .evidence("down", "fake")
        };
        Box::pin(async move { obs })
    }

    fn precheck<'a>(&'a self, _: &'a PlannedStep) -> LocalBoxFuture<'a, Option<(String, bool)>> {
        Box::pin(async { None })
    }

    fn act<'a>(&'a self, _: &'a PlannedStep) -> LocalBoxFuture<'a, Result<Applied, ActionError>> {
        self.acted.set(self.acted.get() + 1);
        if self.heals {
            self.healthy.set(true);
        }
        if let Some(f) = self.on_act.borrow_mut().take() {
            f();
        }
        let undo = self.undoable.then(|| Undo::Mtu {
            ifname: "fake0".into(),
            mtu: 1500,
        });
        Box::pin(async move {
            Ok(Applied {
                detail: "fake action carried out".into(),
                undo,
            })
        })
    }

    fn rollback<'a>(&'a self, _: &'a Undo) -> LocalBoxFuture<'a, Result<String, ActionError>> {
        self.rolled_back.set(self.rolled_back.get() + 1);
        Box::pin(async { Ok("fake change undone".to_string()) })
    }

    fn commit(&self, _: &Undo) {
        self.committed.set(self.committed.get() + 1);
    }
}

fn agent(dir: &Path, fx: Rc<Fake>, verify_timeout_secs: u64) -> Agent {
    let text = format!(
        r#"
[agent]
id = "cpe-test"
state_dir = "{dir}/state"
[collector]
url = "http://100.64.0.1:8440"
[wan]
interface = "wan"
[healing]
kill_switch_file = "{dir}/healing.disabled"
verify_timeout_secs = {verify_timeout_secs}
[checks.service]
interval_secs = 1
fail_threshold = 1
ok_threshold = 1
"#,
        dir = dir.display()
    );
    let config = Arc::new(AgentConfig::parse(&text, "test.toml").unwrap());
    std::fs::create_dir_all(&config.agent.state_dir).unwrap();
    let (spool, _) = Spool::open(&config.agent.state_dir.join("spool"), 1000, 10 << 20).unwrap();
    let ctx = Arc::new(Context {
        site: Arc::new(config.site()),
        netlink: Netlink::connect().unwrap(),
        pinger: None,
        shared: Arc::new(Shared::default()),
    });
    let checks = vec![Check::Service(checks::service::ServiceCheck::new(
        &config.site(),
        &config.checks.service,
    ))];
    let heal_settings = Arc::new(config.heal_settings());
    Agent {
        heal: heal::HealState::open(&heal_settings),
        heal_settings,
        config: config.clone(),
        fx,
        ctx,
        checks,
        detector: Detector::default(),
        events: Recorder {
            spool: Arc::new(Mutex::new(spool)),
            seq: SeqGen::open(config.agent.state_dir.join("seq"), 0),
            wake_reporter: Arc::new(tokio::sync::Notify::new()),
        },
    }
}

/// Waits until `cond` holds; panics after 20 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spooled events, in order.
fn events(spool: &Mutex<Spool>) -> Vec<IncidentEvent> {
    let mut v = spool.lock().unwrap().pending(1000);
    v.sort_by_key(|e| e.seq);
    v
}

fn outcomes(events: &[IncidentEvent]) -> Vec<ActionOutcome> {
    events
        .iter()
        .flat_map(|e| e.actions.iter().map(|a| a.outcome))
        .collect()
}

fn resolved(spool: &Mutex<Spool>) -> bool {
    events(spool).iter().any(|e| e.kind == EventKind::Resolved)
}

#[tokio::test]
async fn a_failing_check_is_healed_verified_and_resolved_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake {
        heals: true,
        ..Fake::default()
    });
    let mut a = agent(dir.path(), fx.clone(), 10);
    let spool = a.events.spool.clone();
    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
    let s = spool.clone();
    let shutdown =
        std::pin::pin!(async move { until("the resolved event", || resolved(&s)).await });
    let exit = a.schedule(&mut None, &mut rx, shutdown).await;
    assert!(matches!(exit, Exit::Stop));
    let ev = events(&spool);
    let kinds: Vec<_> = ev.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Opened, EventKind::Updated, EventKind::Resolved]
    );
    assert_eq!(
        outcomes(&ev),
        [
            ActionOutcome::Planned,
            ActionOutcome::Done,
            ActionOutcome::Verified
        ]
    );
    assert_eq!((fx.acted.get(), fx.rolled_back.get()), (1, 0));
    assert!(a.detector.incident(CheckId::Service).is_none());
}

#[tokio::test]
async fn stopping_mid_verification_rolls_the_change_back_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake {
        undoable: true,
        ..Fake::default()
    });
    // Verification would take 10 minutes: only the stop can end it.
    let mut a = agent(dir.path(), fx.clone(), 600);
    let spool = a.events.spool.clone();
    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
    let f = fx.clone();
    let shutdown = std::pin::pin!(async move { until("the action", || f.acted.get() > 0).await });
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        a.schedule(&mut None, &mut rx, shutdown),
    )
    .await
    .expect("the scheduler stops without waiting out the verification");
    assert!(matches!(exit, Exit::Stop));
    assert_eq!((fx.acted.get(), fx.rolled_back.get()), (1, 1));
    assert_eq!(fx.committed.get(), 0);
    let ev = events(&spool);
    assert_eq!(
        outcomes(&ev),
        [
            ActionOutcome::Planned,
            ActionOutcome::Done,
            ActionOutcome::NotEffective,
            ActionOutcome::RolledBack
        ]
    );
    let done = ev
        .iter()
        .flat_map(|e| &e.actions)
        .find(|r| r.outcome == ActionOutcome::Done)
        .unwrap();
    assert!(done.detail.contains("stopping"), "{}", done.detail);
    // The incident stays open (it is still failing); nothing was started after the stop.
    assert!(a.detector.incident(CheckId::Service).is_some());
}

#[tokio::test]
async fn a_reload_is_applied_only_after_the_heal_step_in_flight_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let fx = Rc::new(Fake {
        heals: true,
        undoable: true,
        ..Fake::default()
    });
    // The reload arrives while the action runs.
    *fx.on_act.borrow_mut() = Some(Box::new(move || {
        tx.send("reload").unwrap();
    }));
    let mut a = agent(dir.path(), fx.clone(), 10);
    let spool = a.events.spool.clone();
    let never = std::pin::pin!(std::future::pending::<()>());
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        a.schedule(&mut None, &mut rx, never),
    )
    .await
    .expect("the reload is returned");
    assert!(matches!(exit, Exit::Reload("reload")));
    // By then the step had verified, committed and resolved the incident.
    assert_eq!((fx.acted.get(), fx.committed.get()), (1, 1));
    assert!(resolved(&spool));
}

#[tokio::test]
async fn nothing_starts_after_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake::default());
    let mut a = agent(dir.path(), fx.clone(), 10);
    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
    let stopped = std::pin::pin!(std::future::ready(()));
    let exit = a.schedule(&mut None, &mut rx, stopped).await;
    assert!(matches!(exit, Exit::Stop));
    assert_eq!((fx.observed.get(), fx.acted.get()), (0, 0));
    assert!(events(&a.events.spool).is_empty());
}

/// Puts `a` in the control or treated arm of an experiment on the `service` playbook (500‰).
fn start_experiment(a: &Agent, control: bool) {
    let salt = (0..1000)
        .map(|n| format!("salt-{n}"))
        .find(|s| (crate::experiment::bucket(s, "cpe-test") < 500) == control)
        .unwrap();
    let e = netmedic_proto::Experiment {
        id: "svc-holdout".into(),
        scope: netmedic_proto::ExperimentScope::Playbook {
            name: "service".into(),
        },
        control_permille: 500,
        salt,
    };
    let (assigned, refused) = crate::experiment::assign(&[e], "cpe-test");
    assert!(refused.is_empty());
    a.ctx.shared.set_experiments(assigned);
}

fn arm_of(ev: &IncidentEvent) -> Option<netmedic_proto::Arm> {
    ev.experiment
        .as_ref()
        .filter(|x| x.experiment_id == "svc-holdout")
        .map(|x| x.arm)
}

#[tokio::test]
async fn a_control_device_reports_the_plan_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake {
        heals: true,
        ..Fake::default()
    });
    let mut a = agent(dir.path(), fx.clone(), 10);
    start_experiment(&a, true);
    let spool = a.events.spool.clone();
    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
    let s = spool.clone();
    let shutdown = std::pin::pin!(async move {
        until("the skipped rung", || {
            outcomes(&events(&s)).contains(&ActionOutcome::Skipped)
        })
        .await
    });
    let exit = a.schedule(&mut None, &mut rx, shutdown).await;
    assert!(matches!(exit, Exit::Stop));
    assert_eq!(fx.acted.get(), 0, "the control arm changes nothing");
    let ev = events(&spool);
    assert_eq!(
        &outcomes(&ev)[..2],
        [ActionOutcome::Planned, ActionOutcome::Skipped]
    );
    let skipped = ev
        .iter()
        .flat_map(|e| &e.actions)
        .find(|r| r.outcome == ActionOutcome::Skipped)
        .unwrap();
    assert_eq!(
        skipped.detail,
        "holdout experiment svc-holdout: control arm"
    );
    assert!(
        ev.iter()
            .all(|e| arm_of(e) == Some(netmedic_proto::Arm::Control))
    );
    assert_eq!(
        ev[0].kind,
        EventKind::Opened,
        "the arm is on the first event"
    );
    assert!(a.detector.incident(CheckId::Service).is_some());
}

#[tokio::test]
async fn a_treated_device_heals_and_records_its_arm_but_the_kill_switch_wins_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake {
        heals: true,
        ..Fake::default()
    });
    let mut a = agent(dir.path(), fx.clone(), 10);
    start_experiment(&a, false);
    let spool = a.events.spool.clone();
    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
    let s = spool.clone();
    let shutdown =
        std::pin::pin!(async move { until("the resolved event", || resolved(&s)).await });
    a.schedule(&mut None, &mut rx, shutdown).await;
    assert_eq!(fx.acted.get(), 1);
    let ev = events(&spool);
    assert!(
        ev.iter()
            .all(|e| arm_of(e) == Some(netmedic_proto::Arm::Treated))
    );
    assert_eq!(ev.last().unwrap().auto_healed, Some(true));

    // Control arm with the kill switch on: the kill switch's reason, not the holdout's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("healing.disabled"), "").unwrap();
    let fx = Rc::new(Fake::default());
    let mut a = agent(dir.path(), fx.clone(), 10);
    start_experiment(&a, true);
    let spool = a.events.spool.clone();
    let s = spool.clone();
    let shutdown = std::pin::pin!(async move {
        until("the skipped rung", || {
            outcomes(&events(&s)).contains(&ActionOutcome::Skipped)
        })
        .await
    });
    a.schedule(&mut None, &mut rx, shutdown).await;
    let ev = events(&spool);
    let skipped = ev
        .iter()
        .flat_map(|e| &e.actions)
        .find(|r| r.outcome == ActionOutcome::Skipped)
        .unwrap();
    assert!(
        skipped.detail.starts_with("kill switch"),
        "{}",
        skipped.detail
    );
    assert_eq!(fx.acted.get(), 0);
    assert!(
        ev.iter()
            .all(|e| arm_of(e) == Some(netmedic_proto::Arm::Control))
    );
}

#[test]
fn next_run_keeps_checks_in_phase() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let ten = s(10);
    // A run that took 2 s: the next is one interval after its slot, not after it ended, so it
    // stays in phase with the other checks due at t0.
    assert_eq!(next_run(t0, t0, t0 + s(2), ten), t0 + ten);
    // The same a few slots later, started a little after its slot (the timer's latency).
    let slot = t0 + s(50);
    let started = slot + Duration::from_millis(3);
    assert_eq!(next_run(t0, started, started + s(1), ten), t0 + s(60));
    // A run longer than its interval: the first slot after it ended.
    assert_eq!(next_run(t0, t0, t0 + s(15), ten), t0 + s(20));
    // A run an event started 6 s before its slot at t0 + 20 s: back to that slot (its start
    // is at least half an interval before it), not on a phase of its own 10 s after its end.
    let event = t0 + s(14);
    assert_eq!(next_run(t0, event, event + s(1), ten), t0 + s(20));
    // One an event started 3 s before the slot skips it: starts stay half an interval apart.
    let event = t0 + s(17);
    assert_eq!(next_run(t0, event, event + s(1), ten), t0 + s(30));
    // A confirmation run 1 s after a slot (off the grid by design) returns to the grid too.
    let confirm = t0 + s(31);
    assert_eq!(next_run(t0, confirm, confirm, ten), t0 + s(40));
}

#[test]
fn next_run_stays_on_the_grid_and_spaces_runs() {
    // Whatever the start (event runs at any offset), the next run is the first slot of the grid
    // that is not before the end and at least half an interval after the start; for a run of at
    // most half its interval, that is at most one and a half intervals after the start.
    let t0 = Instant::now();
    for interval_ms in [1_000u64, 5_000, 10_000, 15_000, 60_000] {
        let interval = Duration::from_millis(interval_ms);
        for offset_ms in (0..3 * interval_ms).step_by(370) {
            let started = t0 + Duration::from_millis(offset_ms);
            for run_ms in [0, 1, interval_ms / 3, interval_ms / 2, interval_ms - 1] {
                let now = started + Duration::from_millis(run_ms);
                let next = next_run(t0, started, now, interval);
                let gap = next - started;
                assert!(next >= now, "{interval_ms}/{offset_ms}/{run_ms}");
                assert!(
                    gap >= interval / 2,
                    "{interval_ms}/{offset_ms}/{run_ms}: {gap:?}"
                );
                let earliest = now.max(started + interval / 2);
                assert!(
                    next - earliest < interval,
                    "{interval_ms}/{offset_ms}/{run_ms}"
                );
                if run_ms <= interval_ms / 2 {
                    assert!(
                        gap <= interval * 3 / 2,
                        "{interval_ms}/{offset_ms}/{run_ms}: {gap:?}"
                    );
                }
                assert_eq!((next - t0).as_millis() % interval.as_millis(), 0);
            }
        }
    }
}

/// Runs the fake `service` check (hourly, so only the first run and the changes sent run it;
/// `healthy` decides its first verdict), waits for the first run, sends `changes` and returns
/// the runs once the scheduler has handled them; then also a real change ([`NetChange::Wake`])
/// and returns the runs after it.
async fn runs_after(healthy: bool, changes: &[NetChange]) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Rc::new(Fake::default());
    fx.healthy.set(healthy);
    let mut a = agent(dir.path(), fx.clone(), 1);
    let mut svc = a.config.checks.service.clone();
    svc.interval_secs = 3600;
    svc.fail_threshold = 3;
    a.checks = vec![Check::Service(checks::service::ServiceCheck::new(
        &a.config.site(),
        &svc,
    ))];
    let (tx, rx) = mpsc::unbounded_channel();
    let mut net = Some(rx);
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel();
    let never = std::pin::pin!(std::future::pending::<()>());
    let driver = async {
        // The scheduler runs in this task: a few yields let it handle all that was sent.
        let settle = || async {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
        };
        until("the first run", || fx.observed.get() == 1).await;
        settle().await;
        for c in changes {
            tx.send(*c).unwrap();
        }
        settle().await;
        let after_same = fx.observed.get();
        tx.send(NetChange::Wake(CheckId::Service)).unwrap();
        until("the run a real change starts", || {
            fx.observed.get() > after_same
        })
        .await;
        let after_wake = fx.observed.get();
        reload_tx.send(()).unwrap();
        (after_same, after_wake)
    };
    let (exit, runs) = tokio::join!(a.schedule(&mut net, &mut reload_rx, never), driver);
    assert!(matches!(exit, Exit::Reload(())));
    runs
}

#[tokio::test]
async fn a_rewrite_that_changed_nothing_runs_no_check_that_is_ok() {
    let (same, wake) = runs_after(true, &[NetChange::Rewritten(CheckId::Service)]).await;
    assert_eq!(same, 1, "a rewrite of the same lease ran an ok check");
    assert_eq!(wake, 2);
    // `service` is not netlink-driven: a repeated address message never runs it; a repeated
    // one beside a real change (one batch) is a change.
    let (same, _) = runs_after(true, &[NetChange::Same]).await;
    assert_eq!(same, 1);
    let batch = [
        NetChange::Rewritten(CheckId::Service),
        NetChange::Wake(CheckId::Service),
    ];
    let (same, _) = runs_after(true, &batch).await;
    assert_eq!(same, 2);
}

#[tokio::test]
async fn a_rewrite_that_changed_nothing_still_runs_a_check_that_is_not_ok() {
    let (same, _) = runs_after(false, &[NetChange::Rewritten(CheckId::Service)]).await;
    assert_eq!(
        same, 2,
        "a failing check missed the renewal that may have fixed it"
    );
}

#[test]
fn only_real_changes_run_a_settled_check() {
    let (route, wan) = (CheckId::DefaultRoute, CheckId::WanAddress);
    for settled in [true, false] {
        assert!(wakes(&NetChange::Address, route, settled));
        assert!(wakes(&NetChange::Route, route, settled));
        assert!(wakes(&NetChange::Wake(route), route, settled));
        assert!(!wakes(&NetChange::Wake(wan), route, settled));
        assert!(!wakes(&NetChange::Rewritten(wan), route, settled));
        assert!(!wakes(&NetChange::Address, CheckId::Dns, settled));
        // A repeat of what was known wakes only a check that is not ok.
        assert_eq!(wakes(&NetChange::Same, route, settled), !settled);
        assert_eq!(
            wakes(&NetChange::Rewritten(route), route, settled),
            !settled
        );
        assert!(!wakes(&NetChange::Same, CheckId::Dns, settled));
    }
}
