//! `restore_route6`: reinstates the IPv6 default route via the WAN from the router
//! advertisement that the `wan6` check just received (its link-local source), expiring with the
//! router lifetime that advertisement promised, through netlink.

use super::{ActionError, ActionInput, Limit};
use crate::context::Context;
use std::net::Ipv6Addr;

/// Not disruptive: adding a missing route interrupts nothing.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// The router and lifetime to restore from the incident's evidence; only a link-local router
/// (the only source an RA may have) with a lifetime between 1 and 9000 s (RFC 4861) is taken.
pub fn router_from(input: &ActionInput) -> Result<(Ipv6Addr, u32), ActionError> {
    let router: Ipv6Addr = input
        .evidence
        .get("ra_router")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| {
            ActionError::NotApplicable("no router advertisement names a router".into())
        })?;
    if !router.is_unicast_link_local() {
        return Err(ActionError::NotApplicable(format!(
            "router {router} is not link-local; an RA never comes from such an address"
        )));
    }
    let lifetime: u32 = input
        .evidence
        .get("ra_lifetime_secs")
        .and_then(|l| l.parse().ok())
        .filter(|l| (1..=9000).contains(l))
        .ok_or_else(|| {
            ActionError::NotApplicable("the router advertisement offers no default route".into())
        })?;
    Ok((router, lifetime))
}

pub async fn run(ctx: &Context, input: &ActionInput) -> Result<String, ActionError> {
    let (router, lifetime) = router_from(input)?;
    let (ifname, oif) = super::restore_route::wan_oif(ctx).await?;
    ctx.netlink
        .add_default_route_v6(router, oif, Some(lifetime))
        .await
        .map_err(|e| {
            ActionError::Failed(format!("adding default via {router} dev {ifname}: {e}"))
        })?;
    Ok(format!(
        "added IPv6 default via {router} dev {ifname}, expires in {lifetime} s (from the router advertisement)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(router: &str, lifetime: &str) -> ActionInput {
        let mut i = ActionInput::default();
        i.evidence.insert("ra_router".into(), router.into());
        i.evidence
            .insert("ra_lifetime_secs".into(), lifetime.into());
        i
    }

    #[test]
    fn takes_only_a_link_local_router_with_a_lifetime() {
        assert_eq!(
            router_from(&input("fe80::1", "1800")).unwrap(),
            ("fe80::1".parse().unwrap(), 1800)
        );
        for (r, l) in [
            ("2001:db8::1", "1800"),
            ("not an address", "1800"),
            ("fe80::1", "0"),
            ("fe80::1", "70000"),
            ("fe80::1", "-1"),
        ] {
            assert!(router_from(&input(r, l)).is_err(), "{r} {l}");
        }
        assert!(router_from(&ActionInput::default()).is_err());
    }
}
