//! Unit tests of the decision, the playbooks, the validation and the ladder memory.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{AgentConfig, Mode};
use crate::detector::tests::observation;
use crate::incident::Incident;
use netmedic_proto::{ActionId, CheckId, CheckStatus};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn incident(check: CheckId, cause: &str) -> Incident {
    Incident::open(&observation(check, CheckStatus::Failed, cause))
}

fn facts() -> Facts {
    Facts {
        service_down: true,
        reboot_enabled: true,
        budget_wait_max_secs: 3600,
        ..Facts::default()
    }
}

/// A budget refusal that reopens in `secs`.
fn over(secs: u64) -> Option<budget::Refusal> {
    Some(budget::Refusal {
        reason: "budget: x".into(),
        reopens_in_secs: secs,
    })
}

fn lad(actions: &[ActionId]) -> Ladder {
    Ladder {
        name: "test".into(),
        actions: actions.to_vec(),
        mode: Mode::Enforce,
        origin: "test",
    }
}

#[test]
fn climbs_the_ladder_then_escalates_once() {
    let l = builtin(CheckId::DefaultRoute, "default_route_missing").map(lad);
    let mut i = incident(CheckId::DefaultRoute, "default_route_missing");
    let d = |i: &Incident| decide(Mode::Enforce, l.as_ref(), i, &facts(), |_| None);
    assert_eq!(
        d(&i),
        Decision::Act {
            action: ActionId::RestoreRoute,
            dry_run: false
        }
    );
    i.tried = vec![
        ActionId::RestoreRoute,
        ActionId::RenewDhcp,
        ActionId::BounceIface,
    ];
    assert_eq!(d(&i), Decision::Escalate);
    i.escalated = true;
    assert_eq!(d(&i), Decision::Nothing);
}

#[test]
fn off_mode_unknown_causes_and_backoff_do_nothing() {
    let i = incident(CheckId::DefaultRoute, "default_route_missing");
    let l = lad(&[ActionId::RestoreRoute]);
    assert_eq!(
        decide(Mode::Off, Some(&l), &i, &facts(), |_| None),
        Decision::Nothing
    );
    assert_eq!(
        decide(Mode::Enforce, None, &i, &facts(), |_| None),
        Decision::Nothing
    );
    let f = Facts {
        backing_off: true,
        ..facts()
    };
    assert_eq!(
        decide(Mode::Enforce, Some(&l), &i, &f, |_| None),
        Decision::Nothing
    );
}

#[test]
fn guards_in_order() {
    let i = incident(CheckId::WanAddress, "wan_no_address");
    let l = lad(&[ActionId::BounceIface, ActionId::Reboot]);
    let run = |f: &Facts| decide(Mode::Enforce, Some(&l), &i, f, |_| None);
    let is_wait = |d: Decision, what: &str| match d {
        Decision::Wait { reason, .. } => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected wait ({what}), got {other:?}"),
    };
    is_wait(
        run(&Facts {
            kill_switch: Some("file /x".into()),
            ..facts()
        }),
        "kill switch",
    );
    is_wait(
        run(&Facts {
            upstream_advisory: Some("ne-1".into()),
            ..facts()
        }),
        "upstream outage",
    );
    assert!(matches!(
        run(&Facts {
            upstream_proven: true,
            ..facts()
        }),
        Decision::PassOver {
            action: ActionId::BounceIface,
            ..
        }
    ));
    // Degraded service: disruptive rungs wait for a window.
    is_wait(
        run(&Facts {
            service_down: false,
            ..facts()
        }),
        "maintenance",
    );
    assert!(matches!(
        run(&Facts {
            service_down: false,
            in_window: true,
            ..facts()
        }),
        Decision::Act { .. }
    ));
    is_wait(
        decide(Mode::Enforce, Some(&l), &i, &facts(), |_| over(60)),
        "budget",
    );
    // Dry run reports the rung (no budget needed).
    assert_eq!(
        decide(Mode::DryRun, Some(&l), &i, &facts(), |_| over(86_400)),
        Decision::Act {
            action: ActionId::BounceIface,
            dry_run: true
        }
    );
    let mut i2 = i.clone();
    i2.tried.push(ActionId::BounceIface);
    assert!(matches!(
        decide(
            Mode::Enforce,
            Some(&l),
            &i2,
            &Facts {
                reboot_enabled: false,
                ..facts()
            },
            |_| None
        ),
        Decision::PassOver {
            action: ActionId::Reboot,
            ..
        }
    ));
}

#[test]
fn upstream_advisory_stops_even_non_disruptive_actions() {
    let i = incident(CheckId::Dns, "resolver_timeout");
    let l = lad(&[ActionId::ResetDns]);
    let f = Facts {
        upstream_advisory: Some("ne-7 until 12:00".into()),
        ..facts()
    };
    assert!(matches!(
        decide(Mode::Enforce, Some(&l), &i, &f, |_| None),
        Decision::Wait { .. }
    ));
}

#[test]
fn every_check_of_the_catalogue_has_a_decision_and_config_overrides() {
    // The built-in table covers the catalogue: each check has at least one cause with a
    // ladder or is explicitly report-only (the default arm); the shipped config lists one
    // playbook per check.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
            .unwrap();
    let cfg = AgentConfig::parse(&text, "agent.toml")
        .unwrap()
        .heal_settings();
    for c in CheckId::ALL {
        assert!(
            cfg.playbooks.iter().any(|p| p.check == *c),
            "config/agent.toml has no playbook for {c}"
        );
    }
    let l = ladder(&cfg, CheckId::DefaultRoute, "default_route_missing").unwrap();
    assert_eq!(l.origin, "config");
}

#[test]
fn playbook_selectors_must_be_explicit() {
    let p = |causes: &[&str]| PlaybookConfig {
        name: None,
        check: CheckId::Dns,
        causes: causes.iter().map(|s| s.to_string()).collect(),
        actions: vec![ActionId::ResetDns],
        mode: Mode::Enforce,
    };
    let mut out = Vec::new();
    playbook_problems(&[p(&[]), p(&["*"]), p(&["resolver_*"])], &mut out);
    let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["playbook[0].causes", "playbook[1].causes[0]"]);
    assert!(p(&["resolver_*"]).matches(CheckId::Dns, "resolver_timeout"));
    assert!(!p(&["resolver_*"]).matches(CheckId::Dns, "dns_slow"));
    assert!(!p(&["resolver_*"]).matches(CheckId::Http, "resolver_timeout"));
}

#[test]
fn backoff_doubles_with_bounded_jitter() {
    let cfg = HealingConfig {
        backoff_initial_secs: 10,
        backoff_max_secs: 60,
        backoff_jitter_percent: 20,
        ..HealingConfig::default()
    };
    assert_eq!(backoff(&cfg, 0, 0.5), Duration::ZERO);
    assert_eq!(backoff(&cfg, 1, 0.5), Duration::from_secs(10));
    assert_eq!(backoff(&cfg, 2, 0.5), Duration::from_secs(20));
    assert_eq!(backoff(&cfg, 9, 0.5), Duration::from_secs(60));
    assert_eq!(backoff(&cfg, 1, 0.0), Duration::from_secs(8));
    assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(12));
}

#[test]
fn maintenance_windows_wrap_midnight() {
    let w = vec!["23:30-01:00".to_string()];
    let at = |h: i64, m: i64| h * 3600 + m * 60;
    assert!(in_window(&w, at(23, 45), 0));
    assert!(in_window(&w, at(0, 59), 0));
    assert!(!in_window(&w, at(1, 0), 0));
    // 22:45 UTC is 23:45 at UTC+1.
    assert!(in_window(&w, at(22, 45), 60));
    assert!(!in_window(&[], at(0, 0), 0));
    assert_eq!(parse_window("02:00-02:00"), None);
    assert_eq!(parse_window("2:00-03:00"), None);
}

#[test]
fn a_flapping_incident_resumes_its_ladder() {
    let cfg = HealingConfig {
        ladder_memory_secs: 600,
        ..HealingConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let budget = budget::Budget::open_at(
        dir.path().join("b"),
        BTreeMap::new(),
        cfg.global_budget,
        "x",
        0,
    );
    let mut st = HealState::with_budget(budget);
    let t0 = Instant::now();
    let mut first = incident(CheckId::DefaultRoute, "default_route_missing");
    st.on_opened(&mut first, &cfg, t0);
    first.tried.push(ActionId::RestoreRoute);
    st.attempted(CheckId::DefaultRoute, &cfg, t0);
    st.on_resolved(&first, t0);
    // Back after 60 s: the ladder continues at the second rung, after a backoff.
    let mut again = incident(CheckId::DefaultRoute, "default_route_missing");
    assert_eq!(
        st.on_opened(&mut again, &cfg, t0 + Duration::from_secs(60)),
        1
    );
    assert_eq!(again.tried, [ActionId::RestoreRoute]);
    let l = builtin(CheckId::DefaultRoute, "default_route_missing").map(lad);
    assert_eq!(
        decide(Mode::Enforce, l.as_ref(), &again, &facts(), |_| None),
        Decision::Act {
            action: ActionId::RenewDhcp,
            dry_run: false
        }
    );
    // After the memory window it starts over.
    st.on_resolved(&again, t0 + Duration::from_secs(61));
    let mut later = incident(CheckId::DefaultRoute, "default_route_missing");
    assert_eq!(
        st.on_opened(&mut later, &cfg, t0 + Duration::from_secs(61 + 601)),
        0
    );
    assert!(later.tried.is_empty());
}

#[test]
fn a_reboot_over_its_budget_escalates_instead_of_waiting() {
    // The ladder's last rung, reboot, refused by its persisted 3-per-24 h budget.
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    let limits = BTreeMap::from([(
        ActionId::Reboot,
        crate::actions::Limit {
            max: 3,
            window_secs: 86_400,
        },
    )]);
    let global = HealingConfig::default().global_budget;
    let mut b = budget::Budget::open_at(dir.path().join("b"), limits, global, "x", 0);
    for n in 0..3 {
        b.charge(ActionId::Reboot, n * hour);
    }
    let l = lad(&[ActionId::RestoreRoute, ActionId::Reboot]);
    let mut i = incident(CheckId::DefaultRoute, "default_route_missing");
    i.tried.push(ActionId::RestoreRoute);
    let now = 3 * hour;
    let d = decide(Mode::Enforce, Some(&l), &i, &facts(), |a| b.refused(a, now));
    match d {
        Decision::EscalateRefused { action, reason } => {
            assert_eq!(action, ActionId::Reboot);
            assert!(reason.contains("limit 3"), "{reason}");
            assert!(reason.contains("75600 s"), "reopens at 24 h: {reason}");
            assert!(reason.contains("NOC"), "{reason}");
        }
        other => panic!("expected an escalation, got {other:?}"),
    }
    // Escalated: nothing more happens for it, the reboot least of all.
    i.escalated = true;
    assert_eq!(
        decide(Mode::Enforce, Some(&l), &i, &facts(), |a| b.refused(a, now)),
        Decision::Nothing
    );
    // A budget that reopens within the wait limit still only waits (a short global window).
    i.escalated = false;
    let f = Facts {
        budget_wait_max_secs: 86_400,
        ..facts()
    };
    assert!(matches!(
        decide(Mode::Enforce, Some(&l), &i, &f, |a| b.refused(a, now)),
        Decision::Wait {
            action: ActionId::Reboot,
            ..
        }
    ));
    // Once the window reopens the reboot is allowed again.
    assert_eq!(
        decide(Mode::Enforce, Some(&l), &i, &facts(), |a| b
            .refused(a, 24 * hour)),
        Decision::Act {
            action: ActionId::Reboot,
            dry_run: false
        }
    );
    // A limit of 0 never reopens: escalate, whatever the wait limit.
    let f = Facts {
        budget_wait_max_secs: 30 * 86_400,
        ..facts()
    };
    assert!(matches!(
        decide(Mode::Enforce, Some(&l), &i, &f, |_| over(u64::MAX)),
        Decision::EscalateRefused { .. }
    ));
}

#[test]
fn a_holdout_runs_the_playbook_dry_but_the_kill_switch_and_outages_still_win() {
    let i = incident(CheckId::Dns, "resolver_timeout");
    let l = lad(&[ActionId::ResetDns]);
    let held = Facts {
        holdout: Some("dns-q4".into()),
        ..facts()
    };
    // Control arm: the rung is reported, not run, and needs no budget.
    assert_eq!(
        decide(Mode::Enforce, Some(&l), &i, &held, |_| over(86_400)),
        Decision::Act {
            action: ActionId::ResetDns,
            dry_run: true
        }
    );
    // The kill switch and the upstream advisory keep their own reasons.
    for (f, what) in [
        (
            Facts {
                kill_switch: Some("file /x".into()),
                ..held.clone()
            },
            "kill switch",
        ),
        (
            Facts {
                upstream_advisory: Some("ne-1".into()),
                ..held.clone()
            },
            "upstream outage",
        ),
    ] {
        match decide(Mode::Enforce, Some(&l), &i, &f, |_| None) {
            Decision::Wait { reason, .. } => assert!(reason.contains(what), "{reason}"),
            other => panic!("expected a wait ({what}), got {other:?}"),
        }
    }
    // A playbook that is off stays off.
    let off = Ladder {
        mode: Mode::Off,
        ..l.clone()
    };
    assert_eq!(
        decide(Mode::Enforce, Some(&off), &i, &held, |_| None),
        Decision::Nothing
    );
}

/// A salt that puts `agent` in the control arm (`true`) or the treated arm at 500‰.
fn salt_for(agent: &str, control: bool) -> String {
    (0..1000)
        .map(|n| format!("salt-{n}"))
        .find(|s| (crate::experiment::bucket(s, agent) < 500) == control)
        .unwrap()
}

fn experiments(
    agent: &str,
    scope: netmedic_proto::ExperimentScope,
    control: bool,
) -> Vec<crate::experiment::Assigned> {
    let e = netmedic_proto::Experiment {
        id: "exp-1".into(),
        scope,
        control_permille: 500,
        salt: salt_for(agent, control),
    };
    let (a, refused) = crate::experiment::assign(&[e], agent);
    assert!(refused.is_empty());
    a
}

#[test]
fn the_arm_is_recorded_once_and_scopes_match_playbook_names() {
    use netmedic_proto::{Arm, ExperimentScope};
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
            .unwrap();
    let mut cfg = AgentConfig::parse(&text, "agent.toml")
        .unwrap()
        .heal_settings();
    let by_name = |n: &str| ExperimentScope::Playbook { name: n.into() };
    // Unnamed playbooks are named by their check.
    let control = experiments("cpe-1", by_name("dns"), true);
    let mut i = incident(CheckId::Dns, "resolver_timeout");
    assign_arm(&cfg, &control, &mut i);
    let rec = i.experiment.clone().unwrap();
    assert_eq!(
        (rec.experiment_id.as_str(), rec.arm),
        ("exp-1", Arm::Control)
    );
    assert_eq!(held_out_by(&cfg, &control, &i).as_deref(), Some("exp-1"));
    // Fixed once: a later list does not rewrite it, but behaviour follows the list in force.
    let treated = experiments("cpe-1", by_name("dns"), false);
    assign_arm(&cfg, &treated, &mut i);
    assert_eq!(i.experiment.as_ref().unwrap().arm, Arm::Control);
    assert_eq!(held_out_by(&cfg, &treated, &i), None);
    assert_eq!(
        held_out_by(&cfg, &[], &i),
        None,
        "an ended experiment heals again"
    );
    // Another playbook's incident is not covered.
    let mut r = incident(CheckId::DefaultRoute, "default_route_missing");
    assign_arm(&cfg, &control, &mut r);
    assert_eq!(r.experiment, None);
    // A named playbook: the name, not the check, is what the scope matches.
    cfg.playbooks
        .iter_mut()
        .filter(|p| p.check == CheckId::Dns)
        .for_each(|p| p.name = Some("dns-reset".into()));
    let mut j = incident(CheckId::Dns, "resolver_timeout");
    assign_arm(&cfg, &control, &mut j);
    assert_eq!(j.experiment, None);
    let named = experiments("cpe-1", by_name("dns-reset"), true);
    assign_arm(&cfg, &named, &mut j);
    assert!(j.experiment.is_some());
    // A check+cause scope covers built-in and configured playbooks alike.
    let by_check = experiments(
        "cpe-1",
        ExperimentScope::Check {
            check: CheckId::DefaultRoute,
            cause: Some("default_route_missing".into()),
        },
        false,
    );
    assign_arm(&cfg, &by_check, &mut r);
    assert_eq!(r.experiment.as_ref().unwrap().arm, Arm::Treated);
    assert_eq!(held_out_by(&cfg, &by_check, &r), None);
    // Every event carries it.
    let ev = r.take_event(
        netmedic_proto::EventKind::Opened,
        1,
        netmedic_proto::Timestamp::EPOCH,
    );
    assert_eq!(ev.experiment, r.experiment);
}

#[test]
fn playbook_names_are_validated() {
    let p = |name: &str| PlaybookConfig {
        name: Some(name.into()),
        check: CheckId::Dns,
        causes: vec!["resolver_timeout".into()],
        actions: vec![ActionId::ResetDns],
        mode: Mode::Enforce,
    };
    let mut out = Vec::new();
    playbook_problems(&[p("dns-reset_2"), p("DNS"), p("")], &mut out);
    let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"playbook[1].name"), "{fields:?}");
    assert!(fields.contains(&"playbook[2].name"), "{fields:?}");
    assert!(!fields.contains(&"playbook[0].name"), "{fields:?}");
}

#[test]
fn a_rung_held_by_the_kill_switch_or_an_advisory_is_taken_once_they_are_lifted() {
    // The same open incident, planned again on every run: held while either is in force, the
    // first rung as soon as both are gone (nothing of the hold is remembered on the incident).
    let i = incident(CheckId::DefaultRoute, "default_route_missing");
    let l = builtin(CheckId::DefaultRoute, "default_route_missing").map(lad);
    let d = |f: &Facts| decide(Mode::Enforce, l.as_ref(), &i, f, |_| None);
    let held = [
        Facts {
            kill_switch: Some("collector advisory: NOC".into()),
            ..facts()
        },
        Facts {
            upstream_advisory: Some("ne-1 until 12:00".into()),
            ..facts()
        },
    ];
    for f in &held {
        assert!(matches!(d(f), Decision::Wait { .. }), "{f:?}");
    }
    assert_eq!(
        d(&facts()),
        Decision::Act {
            action: ActionId::RestoreRoute,
            dry_run: false
        }
    );
    assert!(i.tried.is_empty());
}

#[test]
fn an_advisory_extended_by_each_heartbeat_is_the_same_reason_to_wait() {
    use crate::context::Advisories;
    use netmedic_proto::Timestamp;
    let adv = |until_ms: i64| Advisories {
        upstream_outage: Some((
            "ne-1".to_string(),
            Timestamp::from_unix_millis(until_ms).unwrap(),
        )),
        ..Advisories::default()
    };
    let (a, b) = (
        upstream_advisory(&adv(1_000)),
        upstream_advisory(&adv(301_000)),
    );
    assert_eq!(a, b);
    assert!(a.unwrap().contains("ne-1"));
}
