//! End-to-end: the `dns` check as shipped — on, with no test name configured — run by the real
//! agent binary (`netmedic-agent check --json --only dns`) in a CPE namespace. It asks the
//! resolvers of resolv.conf and of the lease for the collector's host name: a working resolver
//! passes even when that name is NXDOMAIN and no collector runs; an emptied resolv.conf and a
//! dead resolver fail; an IP-literal collector URL leaves only resolv.conf to judge.

#![allow(clippy::unwrap_used)]

use netmedic_lab::dns::DEAD_RESOLVER_IP;
use netmedic_lab::stack::bin_path;
use netmedic_lab::{COLLECTOR_NAME, ISP_GATEWAY, Lab, WAN_IFACE};
use serde_json::Value;

/// `netmedic-agent check --only dns` on a config with no `[checks.dns]` table at all.
fn check_dns(lab: &Lab, collector_url: &str) -> Value {
    let cpe = lab.cpe(0);
    let dir = lab.dir().join("dns-defaults");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"lab-cpe-0\"\nstate_dir = \"{}\"\n\n[collector]\nurl = \"{collector_url}\"\n\n\
             [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{}\"\n",
            dir.join("state").display(),
            cpe.lease_file.display()
        ),
    )
    .unwrap();
    let bin = bin_path("netmedic-agent").unwrap().display().to_string();
    let cfg = config.display().to_string();
    let out = cpe
        .ns
        .exec_unchecked(&[&bin, "check", "--config", &cfg, "--json", "--only", "dns"])
        .unwrap();
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    parsed
        .as_array()
        .and_then(|a| a.iter().find(|o| o["check"] == "dns"))
        .cloned()
        .unwrap_or_else(|| panic!("the dns check is not on by default: {parsed}"))
}

fn status_cause(o: &Value) -> (String, String) {
    (
        o["status"].as_str().unwrap_or("?").to_string(),
        o["cause"].as_str().unwrap_or("?").to_string(),
    )
}

#[test]
fn shipped_dns_check_asks_for_the_collectors_name_and_catches_local_faults() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    let url = format!("http://{COLLECTOR_NAME}:8440");

    // No collector runs in this lab: the check only asks the resolvers for its name.
    let o = check_dns(&lab, &url);
    assert_eq!(status_cause(&o), ("ok".into(), "ok".into()), "{o:#}");
    assert!(
        o["threshold"].as_str().unwrap().contains(COLLECTOR_NAME),
        "{o:#}"
    );
    let key = format!("resolver {ISP_GATEWAY}");
    assert!(
        o["evidence"][&key]
            .as_str()
            .unwrap()
            .contains("203.0.113.10"),
        "{o:#}"
    );

    // A collector name the ISP's DNS does not know (NXDOMAIN): the resolver still works.
    let o = check_dns(&lab, "http://gone.isp.test:8440");
    assert_eq!(status_cause(&o), ("ok".into(), "ok".into()), "{o:#}");
    assert!(
        o["evidence"][&key].as_str().unwrap().contains("NXDOMAIN"),
        "{o:#}"
    );

    // A dead resolver in resolv.conf: a fault (the lease's working one is only evidence).
    let original = cpe.resolv_conf().unwrap();
    cpe.point_resolv_conf_at(DEAD_RESOLVER_IP).unwrap();
    let o = check_dns(&lab, &url);
    assert_eq!(
        status_cause(&o),
        ("failed".into(), "resolver_timeout".into()),
        "{o:#}"
    );
    assert!(o["evidence"][&key].is_string(), "lease resolver: {o:#}");

    // An emptied resolv.conf: caught with the collector's name and without any name.
    cpe.write_resolv_conf("").unwrap();
    for url in [url.as_str(), "http://203.0.113.10:8440"] {
        let o = check_dns(&lab, url);
        assert_eq!(
            status_cause(&o),
            ("failed".into(), "no_resolvers_configured".into()),
            "{url}: {o:#}"
        );
    }

    // An IP-literal collector URL and a good resolv.conf: nothing to ask, said so.
    cpe.write_resolv_conf(&original).unwrap();
    let o = check_dns(&lab, "http://203.0.113.10:8440");
    assert_eq!(status_cause(&o), ("ok".into(), "ok".into()), "{o:#}");
    assert!(
        o["summary"].as_str().unwrap().contains("test_names"),
        "{o:#}"
    );
}
