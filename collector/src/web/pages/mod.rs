//! The console's read-only pages, one module each: overview, incident list and detail, devices,
//! a device, a customer's timeline, the experience report, network events, kill switches and experiments;
//! what several of them share is in [`common`]. Handlers turn store records into small view
//! structs of display strings (made [`visible`](super::visible)); the templates escape them.

mod causal;
mod common;
mod customer;
mod device;
mod devices;
mod experience;
mod experiments;
mod findings;
mod incident;
mod incidents;
mod killswitches;
mod network_events;
mod overview;

pub use common::DoneQuery;
pub use customer::customer;
pub use device::device;
pub use devices::{DevicesQuery, devices};
pub use experience::experience;
pub use experiments::experiments;
pub use incident::incident;
pub use incidents::{ListQuery, incidents};
pub use killswitches::killswitches;
pub use network_events::network_events;
pub use overview::overview;
