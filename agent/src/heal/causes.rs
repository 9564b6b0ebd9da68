//! Causes are a closed vocabulary per check: each check declares the causes it reports
//! (`CAUSES` in its module, gathered by [`crate::checks::causes`]), and a `[[playbook]]` whose cause
//! or `prefix_*` pattern selects none of its check's causes is a config error naming the known
//! causes — a typo would otherwise silently never match.

use super::PlaybookConfig;
use crate::site::Problem;

/// Whether a playbook's selector `pattern` (an exact name or `prefix_*`) selects `cause`; the
/// same rule as [`PlaybookConfig::matches`].
pub fn selects(pattern: &str, cause: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => !prefix.is_empty() && cause.starts_with(prefix),
        None => pattern == cause,
    }
}

/// A selector the healer accepts as a name or pattern; malformed ones are reported there, not
/// here again.
fn well_formed(pattern: &str) -> bool {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Problems of `[[playbook]]` causes that select none of their check's declared causes.
pub fn playbook_cause_problems(playbooks: &[PlaybookConfig], out: &mut Vec<Problem>) {
    for (i, p) in playbooks.iter().enumerate() {
        let known = crate::checks::causes(p.check);
        for (j, pattern) in p.causes.iter().enumerate() {
            if !well_formed(pattern) || known.iter().any(|c| selects(pattern, c)) {
                continue;
            }
            let what = if pattern.ends_with('*') {
                "matches no cause"
            } else {
                "is not a cause"
            };
            out.push(Problem::new(
                format!("playbook[{i}].causes[{j}]"),
                format!(
                    "{pattern:?} {what} of check {}; its causes are: {}",
                    p.check,
                    known.join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, Mode};
    use crate::heal::{UPSTREAM_CAUSE, builtin};
    use netmedic_proto::{ActionId, CheckId};

    fn playbook(check: CheckId, causes: &[&str]) -> PlaybookConfig {
        PlaybookConfig {
            name: None,
            check,
            causes: causes.iter().map(|s| s.to_string()).collect(),
            actions: vec![],
            mode: Mode::DryRun,
        }
    }

    #[test]
    fn every_check_declares_distinct_well_formed_causes() {
        for c in CheckId::ALL {
            let known = crate::checks::causes(*c);
            assert!(!known.is_empty(), "{c} declares no cause");
            for (i, cause) in known.iter().enumerate() {
                assert!(
                    well_formed(cause) && !cause.ends_with('*') && *cause != "ok",
                    "{c}: {cause:?}"
                );
                assert!(!known[..i].contains(cause), "{c}: {cause} twice");
            }
        }
        assert!(crate::checks::causes(CheckId::Icmp).contains(&UPSTREAM_CAUSE));
    }

    #[test]
    fn builtin_playbooks_select_declared_causes_only() {
        // Every cause a built-in ladder exists for, as written in `healer::builtin`.
        let with_ladder: &[(CheckId, &[&str])] = &[
            (CheckId::Link, &["wan_admin_down", "wan_carrier_lost"]),
            (
                CheckId::WanAddress,
                &[
                    "wan_no_address",
                    "dhcp_lease_expired",
                    "dhcp_lease_missing",
                    "dhcp_lease_mismatch",
                ],
            ),
            (
                CheckId::DefaultRoute,
                &[
                    "default_route_missing",
                    "default_route_wrong_interface",
                    "gateway_arp_failed",
                    "gateway_icmp_silent",
                ],
            ),
            (CheckId::Icmp, &["gateway_unreachable"]),
            (
                CheckId::Dns,
                &["resolv_conf_not_provisioned", "no_resolvers_configured"],
            ),
            (CheckId::Mtu, &["mtu_mismatch", "pmtu_blackhole"]),
            (
                CheckId::Conntrack,
                &["conntrack_table_full", "conntrack_table_filling"],
            ),
            (CheckId::Service, &["service_down"]),
            (CheckId::Resources, &["low_memory"]),
            (
                CheckId::Wan6,
                &[
                    "ipv6_default_route_missing",
                    "no_global_ipv6",
                    "prefix_delegation_missing",
                    "lan_prefix_missing",
                ],
            ),
            (
                CheckId::WifiAp,
                &[
                    "hostapd_down",
                    "hostapd_frozen",
                    "ap_disabled",
                    "security_open",
                    "security_mismatch",
                    "ssid_mismatch",
                    "sticky_client",
                    "channel_busy",
                ],
            ),
        ];
        for (check, causes) in with_ladder {
            for cause in *causes {
                assert!(builtin(*check, cause).is_some(), "{check}/{cause}");
                assert!(
                    crate::checks::causes(*check).contains(cause),
                    "{check}/{cause} has a built-in ladder but is not declared"
                );
            }
        }
        // The dns ladder is for every `resolver_*` cause: each declared one gets it.
        let resolver: Vec<_> = crate::checks::causes(CheckId::Dns)
            .iter()
            .filter(|c| c.starts_with("resolver_"))
            .collect();
        assert_eq!(resolver.len(), 8);
        for c in resolver {
            assert_eq!(builtin(CheckId::Dns, c), Some(&[ActionId::ResetDns][..]));
        }
        // And no declared cause outside that list has a built-in ladder: the list is complete.
        for check in CheckId::ALL {
            for cause in crate::checks::causes(*check) {
                let listed = with_ladder
                    .iter()
                    .any(|(c, cs)| c == check && cs.contains(cause))
                    || (*check == CheckId::Dns && cause.starts_with("resolver_"));
                assert_eq!(builtin(*check, cause).is_some(), listed, "{check}/{cause}");
            }
        }
    }

    #[test]
    fn typo_and_empty_patterns_are_refused_with_the_known_causes() {
        let mut out = Vec::new();
        playbook_cause_problems(
            &[
                playbook(CheckId::Dns, &["resolver_timeout", "resolvr_timeout"]),
                playbook(CheckId::Http, &["http_*", "captive_*", "dns_*"]),
                // Malformed selectors are the healer's to report, once.
                playbook(CheckId::Link, &["*", "Wan"]),
            ],
            &mut out,
        );
        let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["playbook[0].causes[1]", "playbook[1].causes[2]"]);
        assert!(
            out[0].message.starts_with(
                "\"resolvr_timeout\" is not a cause of check dns; its causes are: resolver_hijack,"
            ),
            "{}",
            out[0].message
        );
        assert!(out[0].message.contains("resolver_timeout"));
        assert!(
            out[1]
                .message
                .starts_with("\"dns_*\" matches no cause of check http; its causes are: "),
            "{}",
            out[1].message
        );
    }

    #[test]
    fn a_typo_in_a_config_file_names_file_line_and_known_causes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");
        let text = std::fs::read_to_string(path).unwrap();
        AgentConfig::parse(&text, "agent.toml").unwrap();
        let typo = text.replacen(
            "causes = [\"mtu_mismatch\", \"pmtu_blackhole\"]",
            "causes = [\"mtu_mismatch\", \"pmtu_blackhol\"]",
            1,
        );
        assert_ne!(typo, text, "the shipped config changed: adapt the test");
        let (line, column) = typo
            .lines()
            .enumerate()
            .find_map(|(n, l)| l.find("\"pmtu_blackhol\"").map(|c| (n + 1, c + 1)))
            .unwrap();
        let msg = AgentConfig::parse(&typo, "/etc/netmedic/agent.toml")
            .unwrap_err()
            .to_string();
        let want = format!(
            "/etc/netmedic/agent.toml:{line}:{column}: field `playbook[10].causes[1]`: \"pmtu_blackhol\" \
             is not a cause of check mtu; its causes are: {}",
            crate::checks::mtu::CAUSES.join(", ")
        );
        assert!(msg.contains(&want), "{msg}\nwanted: {want}");
    }
}
