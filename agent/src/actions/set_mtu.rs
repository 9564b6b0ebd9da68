//! `set_mtu`: sets the WAN MTU through netlink — to `checks.mtu.expected_mtu` when the
//! interface differs from it, else (path-MTU blackhole) to the largest size the `mtu` check saw
//! cross the path (`largest_passing_bytes`), never below `healing.set_mtu.min_mtu`. The old
//! MTU is the undo: a change that did not help is set back.

use super::Limit;
use super::Settings;
use super::{ActionError, ActionInput, Applied, Undo};
use crate::context::Context;
use crate::site::Problem;
use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use serde::Deserialize;

/// Not disruptive: the link stays up; the old MTU is the undo.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// `[healing.set_mtu]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SetMtuConfig {
    /// Never set a smaller MTU than this.
    pub min_mtu: u32,
}

impl Default for SetMtuConfig {
    fn default() -> Self {
        Self { min_mtu: 1280 }
    }
}

impl SetMtuConfig {
    /// Problems of `[healing.set_mtu]`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if !(576..=9000).contains(&self.min_mtu) {
            out.push(Problem::new(
                "healing.set_mtu.min_mtu",
                "must be between 576 and 9000",
            ));
        }
    }
}

/// The interface's MTU, through netlink.
pub async fn get(ctx: &Context, ifname: &str) -> Result<u32, ActionError> {
    let index = index(ctx, ifname).await?;
    let mut links = ctx
        .netlink
        .handle()
        .link()
        .get()
        .match_index(index)
        .execute();
    let msg = links
        .try_next()
        .await
        .map_err(|e| ActionError::Failed(format!("reading {ifname}: {e}")))?
        .ok_or_else(|| ActionError::NotApplicable(format!("interface {ifname} is missing")))?;
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .ok_or_else(|| ActionError::Failed(format!("{ifname} reports no MTU")))
}

pub(crate) async fn index(ctx: &Context, ifname: &str) -> Result<u32, ActionError> {
    ctx.netlink
        .link_index(ifname)
        .await
        .map_err(|e| ActionError::Failed(e.to_string()))?
        .ok_or_else(|| ActionError::NotApplicable(format!("interface {ifname} is missing")))
}

/// Sets the MTU of `ifname`.
pub async fn set(ctx: &Context, ifname: &str, mtu: u32) -> Result<(), ActionError> {
    let index = index(ctx, ifname).await?;
    let msg = rtnetlink::LinkUnspec::new_with_index(index)
        .mtu(mtu)
        .build();
    ctx.netlink
        .handle()
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| ActionError::Failed(format!("setting MTU {mtu} on {ifname}: {e}")))
}

/// Sets the old MTU back.
pub async fn rollback(ctx: &Context, ifname: &str, mtu: u32) -> Result<String, ActionError> {
    set(ctx, ifname, mtu).await?;
    Ok(format!("MTU of {ifname} set back to {mtu}"))
}

/// A verified MTU change is kept as it is: nothing was saved aside.
pub fn commit() {}

/// The MTU to set, or why there is none.
pub fn choose(
    current: u32,
    expected: u32,
    largest_passing: Option<u32>,
    min: u32,
) -> Result<u32, String> {
    if expected != 0 && current != expected {
        return Ok(expected);
    }
    match largest_passing {
        Some(p) if p >= min && p < current => Ok(p),
        Some(p) if p < min => Err(format!(
            "largest passing size {p} is below healing.set_mtu.min_mtu ({min})"
        )),
        _ => Err(format!(
            "MTU {current} matches the provisioned one and no smaller passing size is known"
        )),
    }
}

pub async fn run(ctx: &Context, s: &Settings, input: &ActionInput) -> Result<Applied, ActionError> {
    let ifname = ctx.site.wan.interface.clone();
    let current = get(ctx, &ifname).await?;
    let largest = input
        .evidence
        .get("largest_passing_bytes")
        .and_then(|v| v.trim().parse::<u32>().ok());
    let target = choose(current, s.expected_mtu, largest, s.set_mtu.min_mtu)
        .map_err(ActionError::NotApplicable)?;
    set(ctx, &ifname, target).await?;
    Ok(Applied {
        detail: format!("MTU of {ifname} set from {current} to {target}"),
        undo: Some(Undo::Mtu {
            ifname,
            mtu: current,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn chooses_the_provisioned_mtu_then_the_path() {
        assert_eq!(choose(1400, 1500, None, 1280), Ok(1500));
        assert_eq!(choose(1500, 1500, Some(1472), 1280), Ok(1472));
        assert_eq!(choose(1500, 0, Some(1400), 1280), Ok(1400));
        assert!(choose(1500, 1500, None, 1280).is_err());
        assert!(choose(1500, 1500, Some(600), 1280).is_err());
    }
}
