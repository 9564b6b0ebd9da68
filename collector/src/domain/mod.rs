//! The domain layer: rules that the HTTP API, the NOC console and the CLI share, free of any
//! transport. Each function takes plain values (and the store where it must), returns domain
//! errors, and leaves it to its caller to turn them into a status code, an HTML message or an
//! exit code. Nothing here imports `api`, `web` or `cli`.

pub mod diagnostics;
pub mod experiment;
pub mod incident_query;
pub mod kill_switch;
pub mod network_events;
pub mod paging;

pub use diagnostics::{DiagError, queue_diagnostics};
pub use experiment::{ExperimentError, arm_of, new_experiment, permille_from_percent};
pub use incident_query::{IncidentQuery, InvalidQuery, parse_query};
pub use kill_switch::{MAX_REASON_BYTES, kill_scope, valid_reason};
pub use network_events::NetworkEventList;
pub use paging::parse_limit;
