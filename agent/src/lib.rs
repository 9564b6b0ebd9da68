//! netmedic-agent: the edge daemon that finds what spoils a subscriber's connection, fixes what
//! is local and safe to fix, and reports every incident to the ISP's collector.
//!
//! Data flow: config → scheduler ([`daemon`]) → [`checks`] → observations → [`detector`] →
//! incidents → [`healer`] → [`actions`]; every incident event goes to the [`spool`] first and the
//! [`reporter`] delivers it.

pub mod actions;
pub mod budget;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detector;
pub mod events;
pub mod healer;
pub mod heartbeat;
pub mod ids;
pub mod incident;
pub mod lease;
pub mod logging;
pub mod net;
pub mod notify;
pub mod ping;
pub mod reporter;
pub mod spool;
pub mod text;
pub mod tls;
