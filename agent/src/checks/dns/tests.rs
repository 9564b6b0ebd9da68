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
    let mut out = Vec::new();
    DnsConfig {
        enabled: true,
        ..DnsConfig::default()
    }
    .problems(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let mut out = Vec::new();
    DnsConfig::default().problems(&mut out);
    assert!(out.is_empty(), "{out:?}");
}
