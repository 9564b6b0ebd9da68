//! The kill switches in force, with the forms to set and clear them.

use super::common::{DoneQuery, store_error};
use crate::AppState;
use crate::web::session::NocSession;
use crate::web::{Chrome, render, visible, when};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

#[derive(Debug)]
struct KillView {
    scope: &'static str,
    target: String,
    target_raw: String,
    reason: String,
    set_at: String,
}

#[derive(Template)]
#[template(path = "killswitches.html")]
struct KillPage {
    chrome: Chrome,
    switches: Vec<KillView>,
}

pub async fn killswitches(
    session: NocSession,
    State(state): State<AppState>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let switches = match state.store.list_killswitches().await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let page = KillPage {
        chrome: Chrome::new("Kill switches", "killswitches", Some(&session))
            .with_done(q.done.as_deref()),
        switches: switches
            .iter()
            .map(|k| KillView {
                scope: k.scope,
                target: if k.target.is_empty() {
                    "whole fleet".into()
                } else {
                    visible(&k.target)
                },
                target_raw: k.target.clone(),
                reason: visible(&k.reason),
                set_at: when(k.set_at),
            })
            .collect(),
    };
    render(&page)
}
