//! Unit tests of the `wan6` judgement: each cause from the facts that produce it.

use super::*;
use crate::checks::causes::assert_declared;
use std::net::Ipv6Addr;

fn check(lan: &str) -> Wan6Check {
    Wan6Check {
        config: Wan6Config {
            enabled: true,
            lan_interface: lan.into(),
            ..Wan6Config::default()
        },
        wan_interface: "wan".into(),
        ra_memory: Arc::default(),
    }
}

fn addr(a: &str, len: u8) -> Addr6 {
    Addr6 {
        addr: a.parse().unwrap(),
        prefix_len: len,
        global: true,
        valid_secs: Some(30),
        preferred_secs: Some(20),
        tentative: false,
        dad_failed: false,
    }
}

fn ra(lifetime: u16) -> RouterAdvert {
    RouterAdvert {
        router: "fe80::1".parse().unwrap(),
        lifetime_secs: lifetime,
        managed: false,
        other: false,
        prefixes: vec!["2001:db8:0:1::/64".into()],
        mtu: None,
    }
}

fn route() -> DefaultRoute6 {
    DefaultRoute6 {
        gateway: Some("fe80::1".parse().unwrap()),
        oif: Some(2),
        metric: 1002,
        protocol: "ra".into(),
        expires_secs: Some(60),
    }
}

fn pd() -> DelegatedPrefix {
    DelegatedPrefix {
        prefix: "2001:db8:100::".parse().unwrap(),
        len: 56,
        preferred_secs: 20,
        valid_secs: 30,
    }
}

/// A healthy dual-stack CPE with a delegated prefix on the LAN.
fn healthy() -> Facts {
    Facts {
        ra: Some(ra(60)),
        routes: vec![route()],
        wan_addrs: vec![addr("2001:db8:0:1::1000", 128)],
        lan_addrs: Some(vec![addr("2001:db8:100::1", 64)]),
        delegated: Some(vec![(pd(), 25)]),
        lan_ra: None,
    }
}

fn judged(c: &Wan6Check, f: &Facts) -> Observation {
    let o = c.judge(f);
    assert_declared(&o);
    assert_eq!(o.category, Category::Ipv6Degraded);
    assert_eq!(o.evidence.get("family").map(String::as_str), Some("ipv6"));
    o
}

#[test]
fn healthy_dual_stack_is_ok() {
    let o = judged(&check("lan"), &healthy());
    assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
    assert_eq!(o.evidence["ra_router"], "fe80::1");
}

#[test]
fn each_fault_has_its_cause() {
    let c = check("lan");
    type Fault = Box<dyn Fn(&mut Facts)>;
    let cases: Vec<(&str, CheckStatus, Fault)> = vec![
        (
            "ra_missing",
            CheckStatus::Degraded,
            Box::new(|f| f.ra = None),
        ),
        (
            "ra_missing",
            CheckStatus::Failed,
            Box::new(|f| {
                f.ra = None;
                f.routes.clear();
            }),
        ),
        (
            "ra_missing",
            CheckStatus::Degraded,
            Box::new(|f| f.ra = Some(ra(0))),
        ),
        (
            "ipv6_default_route_missing",
            CheckStatus::Failed,
            Box::new(|f| f.routes.clear()),
        ),
        (
            "no_global_ipv6",
            CheckStatus::Failed,
            Box::new(|f| {
                f.wan_addrs = vec![Addr6 {
                    tentative: true,
                    ..addr("2001:db8:0:1::1000", 128)
                }]
            }),
        ),
        (
            "prefix_delegation_missing",
            CheckStatus::Failed,
            Box::new(|f| f.delegated = Some(Vec::new())),
        ),
        (
            "lan_prefix_missing",
            CheckStatus::Failed,
            Box::new(|f| f.lan_addrs = Some(Vec::new())),
        ),
        (
            "lan_prefix_missing",
            CheckStatus::Failed,
            // A /64 from another prefix is not the delegated one.
            Box::new(|f| f.lan_addrs = Some(vec![addr("2001:db8:999::1", 64)])),
        ),
    ];
    for (cause, status, fault) in cases {
        let mut f = healthy();
        fault(&mut f);
        let o = judged(&c, &f);
        assert_eq!((o.cause.as_str(), o.status), (cause, status), "{o:?}");
    }
}

#[test]
fn lan_prefix_missing_names_the_address_to_reapply() {
    let mut f = healthy();
    f.lan_addrs = Some(Vec::new());
    let o = judged(&check("lan"), &f);
    assert_eq!(o.evidence["lan_address_expected"], "2001:db8:100::1/64");
}

#[test]
fn without_a_lan_interface_prefix_delegation_is_not_judged() {
    let mut f = healthy();
    f.lan_addrs = None;
    f.delegated = None;
    let o = judged(&check(""), &f);
    assert_eq!(o.status, CheckStatus::Ok);
    // Without a lease file a global /64 on the LAN is enough.
    let mut f = healthy();
    f.delegated = None;
    assert_eq!(judged(&check("lan"), &f).status, CheckStatus::Ok);
    f.lan_addrs = Some(vec![addr("2001:db8:100::1", 128)]);
    assert_eq!(judged(&check("lan"), &f).cause, "lan_prefix_missing");
    let _: Ipv6Addr = f.wan_addrs[0].addr;
}

#[test]
fn ra_memory_forgets_after_max_age() {
    let m = RaMemory::default();
    assert!(m.fresh(Duration::from_secs(60)).is_none());
    m.remember(ra(60));
    assert_eq!(m.fresh(Duration::from_secs(60)).unwrap().0, ra(60));
    assert!(m.fresh(Duration::ZERO).is_none_or(|(_, age)| age.is_zero()));
}

#[test]
fn the_lan_prefix_must_be_advertised_on_the_lan_by_the_cpe_itself() {
    let c = check("lan");
    let lan_ll = Addr6 {
        global: false,
        ..addr("fe80::99", 64)
    };
    let own_ra = |prefix: &str| RouterAdvert {
        router: lan_ll.addr,
        lifetime_secs: 1800,
        managed: false,
        other: false,
        prefixes: vec![prefix.into()],
        mtu: None,
    };
    let mut f = healthy();
    f.lan_addrs = Some(vec![addr("2001:db8:100::1", 64), lan_ll.clone()]);
    f.lan_ra = Some(vec![own_ra("2001:db8:100::/64")]);
    assert_eq!(
        judged(&c, &f).status,
        CheckStatus::Ok,
        "{:?}",
        judged(&c, &f)
    );

    for (what, heard) in [
        ("nothing heard", vec![]),
        ("another prefix", vec![own_ra("2001:db8:999::/64")]),
        (
            "another router",
            vec![RouterAdvert {
                router: "fe80::666".parse().unwrap(),
                ..own_ra("2001:db8:100::/64")
            }],
        ),
    ] {
        f.lan_ra = Some(heard);
        let o = judged(&c, &f);
        assert_eq!(
            (o.cause.as_str(), o.status),
            ("lan_ra_missing", CheckStatus::Failed),
            "{what}: {o:?}"
        );
        assert!(o.evidence.contains_key("lan_ra_heard"), "{what}");
    }
    // A missing LAN prefix is named first (the RA cannot carry what the LAN lacks).
    f.lan_addrs = Some(vec![lan_ll]);
    assert_eq!(judged(&c, &f).cause, "lan_prefix_missing");
}
