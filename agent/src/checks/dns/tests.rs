//! Unit tests of the dns check's parsing, wire handling and verdicts.

use super::*;
use crate::checks::causes::assert_declared;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use netmedic_proto::{Category, CheckStatus};
use std::net::{IpAddr, Ipv4Addr};

/// [`super::judge`], asserting that the cause it reports is declared in `CAUSES`.
fn judge(c: &DnsConfig, resolv_error: Option<&str>, results: &[ResolverResult]) -> Observation {
    let o = super::judge(c, resolv_error, results);
    assert_declared(&o);
    o
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(prov: &[&str]) -> DnsConfig {
    DnsConfig {
        enabled: true,
        test_names: vec!["probe.isp.example".into()],
        provisioned_resolvers: prov.iter().map(|s| ip(s)).collect(),
        ..DnsConfig::default()
    }
}

fn res(addr: &str, in_use: bool, prov: bool, o: Outcome) -> ResolverResult {
    ResolverResult {
        resolver: ip(addr),
        in_use,
        provisioned: prov,
        names: vec![("probe.isp.example".into(), o)],
        nonexistent: None,
    }
}

fn ans(ms: f64) -> Outcome {
    Outcome::Answer {
        addrs: vec![ip("192.0.2.1")],
        latency_ms: ms,
    }
}

#[test]
fn parses_resolv_conf() {
    let t = "# generated\nsearch isp.example\nnameserver 192.0.2.53\nnameserver  198.51.100.53 # x\n\
             nameserver fe80::1%wan\nnameserver 192.0.2.53\nnameserver bogus\noptions ndots:1\n";
    assert_eq!(
        parse_resolv_conf(t),
        vec![ip("192.0.2.53"), ip("198.51.100.53"), ip("fe80::1")]
    );
    assert!(parse_resolv_conf("").is_empty());
}

#[test]
fn healthy_resolvers_are_ok_and_slow_ones_degrade() {
    let c = cfg(&["192.0.2.53"]);
    let o = judge(&c, None, &[res("192.0.2.53", true, true, ans(3.0))]);
    assert_eq!((o.status, o.cause.as_str()), (CheckStatus::Ok, "ok"));
    assert!(o.evidence["resolver 192.0.2.53"].contains("192.0.2.1"));
    assert_eq!(o.evidence["resolv_conf_matches_provisioned"], "true");
    let o = judge(&c, None, &[res("192.0.2.53", true, true, ans(2500.0))]);
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Degraded, "dns_slow")
    );
}

#[test]
fn dead_resolvers_fail_and_partial_failure_degrades() {
    let c = cfg(&[]);
    let o = judge(
        &c,
        None,
        &[res("192.0.2.53", true, false, Outcome::Timeout)],
    );
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Failed, "resolver_timeout")
    );
    assert_eq!(o.category, Category::DnsFailure);
    let o = judge(
        &c,
        None,
        &[
            res("192.0.2.53", true, false, Outcome::Timeout),
            res("198.51.100.53", true, false, ans(1.0)),
        ],
    );
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Degraded, "resolver_timeout")
    );
    assert!(o.summary.contains("192.0.2.53"), "{}", o.summary);
}

#[test]
fn nxdomain_servfail_and_hijack_are_named() {
    let c = cfg(&[]);
    let nx = Outcome::Rcode {
        code: ResponseCode::NXDomain,
        latency_ms: 1.0,
    };
    let o = judge(&c, None, &[res("192.0.2.53", true, false, nx)]);
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Failed, "resolver_nxdomain")
    );
    assert!(o.summary.contains("NXDOMAIN"));
    let sf = Outcome::Rcode {
        code: ResponseCode::ServFail,
        latency_ms: 1.0,
    };
    let o = judge(&c, None, &[res("192.0.2.53", true, false, sf)]);
    assert_eq!(o.cause, "resolver_servfail");
    let mut r = res("192.0.2.53", true, false, ans(1.0));
    r.nonexistent = Some(ans(1.0));
    let o = judge(&c, None, &[r]);
    assert_eq!(o.cause, "resolver_hijack");
}

#[test]
fn resolv_conf_differing_from_provisioned_is_a_misconfiguration() {
    let c = cfg(&["192.0.2.53"]);
    let o = judge(
        &c,
        None,
        &[
            res("198.51.100.99", true, false, Outcome::Timeout),
            res("192.0.2.53", false, true, ans(1.0)),
        ],
    );
    assert_eq!(
        (o.status, o.cause.as_str(), o.category),
        (
            CheckStatus::Failed,
            "resolv_conf_not_provisioned",
            Category::LocalMisconfig
        )
    );
    // Working but not the provisioned one: still a misconfiguration, degraded.
    let o = judge(
        &c,
        None,
        &[
            res("198.51.100.99", true, false, ans(1.0)),
            res("192.0.2.53", false, true, ans(1.0)),
        ],
    );
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Degraded, "resolv_conf_not_provisioned")
    );
    // Nothing works at all: the resolvers' failure is the cause, not the config.
    let o = judge(
        &c,
        None,
        &[
            res("198.51.100.99", true, false, Outcome::Timeout),
            res("192.0.2.53", false, true, Outcome::Timeout),
        ],
    );
    assert_eq!(o.cause, "resolver_timeout");
}

#[test]
fn empty_or_unreadable_resolv_conf_fails() {
    let c = cfg(&[]);
    assert_eq!(judge(&c, None, &[]).cause, "no_resolvers_configured");
    assert_eq!(
        judge(&c, Some("cannot read"), &[]).cause,
        "resolv_conf_unreadable"
    );
}

#[test]
fn interprets_responses_and_ignores_strangers() {
    let name = Name::from_ascii("probe.isp.example.").unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(name.clone(), RecordType::A));
    let id = q.metadata.id;
    let mut r = Message::response(id, hickory_proto::op::OpCode::Query);
    r.add_query(Query::query(name.clone(), RecordType::A));
    r.add_answer(hickory_proto::rr::Record::from_rdata(
        name.clone(),
        60,
        RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1))),
    ));
    let bytes = r.to_vec().unwrap();
    let parsed = Message::from_vec(&bytes).unwrap();
    assert_eq!(
        interpret(&parsed, id, &name, RecordType::A, 1.0),
        Some(ans(1.0))
    );
    assert_eq!(
        interpret(&parsed, id.wrapping_add(1), &name, RecordType::A, 1.0),
        None
    );
    let mut nx = Message::response(id, hickory_proto::op::OpCode::Query);
    nx.metadata.response_code = ResponseCode::NXDomain;
    nx.add_query(Query::query(name.clone(), RecordType::A));
    assert_eq!(
        interpret(&nx, id, &name, RecordType::A, 2.0),
        Some(Outcome::Rcode {
            code: ResponseCode::NXDomain,
            latency_ms: 2.0
        })
    );
}

#[test]
fn config_problems() {
    let mut out = Vec::new();
    DnsConfig {
        enabled: true,
        record_type: "MX".into(),
        timeout_ms: 0,
        test_names: vec!["bad name..x".into()],
        ..DnsConfig::default()
    }
    .problems(&mut out);
    let fields: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"checks.dns.record_type"), "{fields:?}");
    assert!(fields.contains(&"checks.dns.timeout_ms"), "{fields:?}");
    assert!(fields.contains(&"checks.dns.test_names[0]"), "{fields:?}");
    // On without names is valid: the collector's host name is asked for instead.
    let mut out = Vec::new();
    DnsConfig::default().problems(&mut out);
    assert!(DnsConfig::default().enabled);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn shipped_config_shows_the_defaults_and_enables_the_check() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");
    let c = crate::config::AgentConfig::load(std::path::Path::new(path)).unwrap();
    assert_eq!(c.checks.dns, DnsConfig::default());
    // The placeholder collector's name is what the shipped config asks for.
    let (eff, note) = c.checks.dns.effective(&c.collector.url);
    assert_eq!(eff.test_names, ["collector.isp.example"]);
    assert!(eff.names_from_collector_url && note.is_none());
}

#[test]
fn default_name_is_the_collector_host_unless_names_are_set_or_the_url_is_an_ip() {
    assert_eq!(
        collector_host_name("https://Collector.ISP.example:8440/x").as_deref(),
        Some("collector.isp.example")
    );
    assert_eq!(
        collector_host_name("http://noc.example./").as_deref(),
        Some("noc.example")
    );
    for ip_or_bad in [
        "http://203.0.113.10:8440",
        "https://[2001:db8::1]:8440",
        "http://localhost:8440",
        "not a url",
    ] {
        assert_eq!(collector_host_name(ip_or_bad), None, "{ip_or_bad}");
    }
    let explicit = cfg(&[]);
    let (eff, note) = explicit.effective("https://collector.isp.example");
    assert_eq!(eff.test_names, ["probe.isp.example"]);
    assert!(!eff.names_from_collector_url && note.is_none());
    let (eff, note) = DnsConfig::default().effective("http://203.0.113.10:8440");
    assert!(eff.test_names.is_empty());
    assert!(note.unwrap().contains("checks.dns.test_names"));
}

/// The collector's name judged leniently: `c` as [`DnsConfig::effective`] makes it.
fn collector_name_cfg() -> DnsConfig {
    DnsConfig::default()
        .effective("https://collector.isp.example:8440")
        .0
}

#[test]
fn with_the_collector_name_any_answer_is_a_working_resolver() {
    let c = collector_name_cfg();
    for o in [
        ans(3.0),
        Outcome::Rcode {
            code: ResponseCode::NXDomain,
            latency_ms: 2.0,
        },
        Outcome::NoData { latency_ms: 2.0 },
    ] {
        let r = res("100.64.0.1", true, false, o.clone());
        let obs = judge(&c, None, &[r]);
        assert_eq!(obs.status, CheckStatus::Ok, "{o:?}: {obs:?}");
    }
    for (o, cause) in [
        (Outcome::Timeout, "resolver_timeout"),
        (
            Outcome::Rcode {
                code: ResponseCode::ServFail,
                latency_ms: 2.0,
            },
            "resolver_servfail",
        ),
        (
            Outcome::Rcode {
                code: ResponseCode::Refused,
                latency_ms: 2.0,
            },
            "resolver_refused",
        ),
    ] {
        let obs = judge(&c, None, &[res("100.64.0.1", true, false, o)]);
        assert_eq!(obs.status, CheckStatus::Failed);
        assert_eq!(obs.cause, cause);
    }
    // An explicit name that must exist stays strict.
    let strict = judge(
        &cfg(&[]),
        None,
        &[res(
            "100.64.0.1",
            true,
            false,
            Outcome::Rcode {
                code: ResponseCode::NXDomain,
                latency_ms: 2.0,
            },
        )],
    );
    assert_eq!(strict.cause, "resolver_nxdomain");
}

#[test]
fn an_empty_resolv_conf_fails_with_default_names_and_without_any() {
    for c in [
        collector_name_cfg(),
        DnsConfig::default().effective("http://203.0.113.10").0,
    ] {
        // The lease's resolver answers, but nothing in resolv.conf uses it.
        let leased = res("100.64.0.1", false, true, ans(1.0));
        let obs = judge(&c, None, &[leased]);
        assert_eq!(obs.status, CheckStatus::Failed);
        assert_eq!(obs.cause, "no_resolvers_configured");
        assert_eq!(obs.category, Category::LocalMisconfig);
    }
    // Without a name nothing is queried and a resolv.conf naming a resolver passes.
    let c = DnsConfig::default().effective("http://203.0.113.10").0;
    let r = ResolverResult {
        resolver: ip("100.64.0.1"),
        in_use: true,
        provisioned: false,
        names: vec![],
        nonexistent: None,
    };
    let obs = judge(&c, None, &[r]);
    assert_eq!(obs.status, CheckStatus::Ok);
    assert!(obs.summary.contains("none queried"), "{}", obs.summary);
}
