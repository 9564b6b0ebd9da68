//! NOC console stories over HTTP against the real server, each on SQLite and on a real
//! PostgreSQL: login, sessions and CSRF; operators act and viewers are refused; hostile device
//! strings come back escaped; the incident list filters and pages; the `user` CLI. (The same
//! pages are driven in headless Chromium by the lab's browser tests.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, action, backend_stories, batch, event, ts};
use netmedic_collector::auth::Role;
use netmedic_collector::store::{IncidentFilter, KillScope};
use netmedic_proto::{ActionId, ActionOutcome, Category, CheckId, EventKind, Severity};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;

async fn start(backend: Backend) -> TestServer {
    let tweak = |c: &mut netmedic_collector::config::CollectorConfig| {
        c.outage.interval_secs = 3600;
        c.web.max_failed_logins = 3;
    };
    backend.start(tweak).await
}

// Each story runs once per backend.
backend_stories!(
    login_sessions_and_csrf,
    operators_act_and_viewers_are_refused,
    hostile_device_strings_are_escaped,
    incident_list_filters_and_pages,
    overview_counts_devices_and_open_incidents,
    experience_page_takes_a_date_range,
    experiments_page_for_operators_and_viewers,
    lan_incidents_show_their_offender_on_the_device_and_incident_pages,
);

const PASSWORD: &str = "a long enough password";

/// A browser-like client: keeps cookies, does not follow redirects.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(LOCATION).unwrap().to_str().unwrap()
    }

    /// The value of the first hidden input named `name`.
    fn hidden(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let i = self
            .body
            .find(&needle)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + needle.len();
        self.body[i..].split('"').next().unwrap().to_owned()
    }
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Self {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        for sc in resp.headers().get_all(SET_COOKIE) {
            let sc = sc.to_str().unwrap();
            let (kv, _) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        Page {
            status,
            headers,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Page {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.hidden("csrf");
        self.post(
            "/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
        .await
    }

    /// The session's CSRF token (from the logout form every page has).
    async fn csrf(&mut self) -> String {
        self.get("/killswitches").await.hidden("csrf")
    }
}

/// The text of HTML after entity decoding (what a browser shows).
fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    use netmedic_collector::web::enc;
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn add_user(server: &TestServer, name: &str, role: Role) {
    let phc = netmedic_collector::web::password::hash(PASSWORD).unwrap();
    server
        .store()
        .noc_user_add(name, role, &phc, netmedic_collector::now())
        .await
        .unwrap();
}

async fn login_sessions_and_csrf(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "alice", Role::Operator).await;
    let mut b = Browser::new(&server);

    // Not logged in: every page sends to the login page, remembering where it was going.
    let page = b.get("/incidents?status=open").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fincidents%3Fstatus%3Dopen");

    // The login form has a double-submit token; a post without the cookie is refused.
    let login = b.get("/login").await;
    let csp = login
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(login.headers.get("x-frame-options").unwrap(), "DENY");
    let csrf = login.hidden("csrf");
    let mut stranger = Browser::new(&server);
    let page = stranger
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(!stranger.cookies.contains_key("netmedic_session"));

    // Wrong password, then right.
    let page = b.login("alice", "not the password at all").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Unknown user name or wrong password."));
    let page = b.login("alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/");
    let set = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("netmedic_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let page = b.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice · operator"), "{}", page.body);
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");

    // Logout needs the CSRF token; afterwards the old cookie is worthless.
    let old_cookie = b.cookies.clone();
    let page = b.post("/logout", &[("csrf", "0000")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let csrf = b.csrf().await;
    let page = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    b.cookies = old_cookie;
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);

    // A removed user's sessions end at once.
    b.login("alice", PASSWORD).await;
    assert_eq!(b.get("/").await.status, StatusCode::OK);
    assert!(server.store().noc_user_remove("alice").await.unwrap());
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);

    // Throttle: after max_failed_logins (3) failures even the right password waits.
    add_user(&server, "bob", Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(
            b.login("bob", "wrong wrong wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let page = b.login("bob", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    server.stop().await;
}

/// The overview's numbers from the store: device states, degraded (online with an open
/// incident, counted once however many it has), open incidents by category, recent ones.
async fn overview_counts_devices_and_open_incidents(backend: Backend) {
    let server = start(backend).await;
    let store = server.store();
    let now = ts(10_000);
    let offline_before = ts(9_000).unix_millis();
    let before = store
        .overview(now, offline_before, ts(0).unix_millis())
        .await
        .unwrap();
    for d in ["ov-1", "ov-2", "ov-3", "ov-4", "ov-5", "ov-6"] {
        server.enrol(d).await;
    }
    let open = |id: &str, category: Category| {
        let mut e = event(&format!("{id}-e1"), id, 1, EventKind::Opened);
        e.category = category;
        e
    };
    let resolved = |id: &str| {
        vec![
            event(&format!("{id}-e1"), id, 1, EventKind::Opened),
            event(&format!("{id}-e2"), id, 2, EventKind::Resolved),
        ]
    };
    let mut ov1 = vec![open("i-1a", Category::DnsFailure)];
    ov1.extend(resolved("i-1b"));
    let seeded = [
        ("ov-1", ov1),
        (
            "ov-2",
            vec![
                open("i-2a", Category::NoInternet),
                open("i-2b", Category::DnsFailure),
                open("i-2c", Category::LanDegraded),
            ],
        ),
        ("ov-3", resolved("i-3a")),
        ("ov-4", vec![open("i-4a", Category::SlowOrLossy)]),
        ("ov-5", vec![open("i-5a", Category::LineDegraded)]),
    ];
    for (agent, events) in seeded {
        store
            .ingest_report(&batch(agent, events), ts(30))
            .await
            .unwrap();
    }
    // ov-1..3 online, ov-4 offline, ov-5 revoked (still seen), ov-6 never seen.
    let recent = ts(9_500).unix_millis();
    let old = ts(100).unix_millis();
    server
        .exec(&format!(
            "UPDATE devices SET last_seen_at = {recent}
             WHERE agent_id IN ('ov-1', 'ov-2', 'ov-3', 'ov-5')"
        ))
        .await;
    server
        .exec(&format!(
            "UPDATE devices SET last_seen_at = {old} WHERE agent_id = 'ov-4'"
        ))
        .await;
    server
        .exec(&format!(
            "UPDATE devices SET revoked_at = {recent} WHERE agent_id = 'ov-5'"
        ))
        .await;
    // Fresh planner statistics (SQLite `PRAGMA optimize`) change no answer.
    store.maintain().await.unwrap();
    let o = store
        .overview(now, offline_before, ts(0).unix_millis())
        .await
        .unwrap();
    assert_eq!(o.devices_online - before.devices_online, 3);
    assert_eq!(o.devices_offline - before.devices_offline, 1);
    assert_eq!(o.devices_revoked - before.devices_revoked, 1);
    assert_eq!(o.devices_never_seen - before.devices_never_seen, 1);
    // ov-1 (one open) and ov-2 (two open); not ov-3 (resolved), ov-4 (offline), ov-5 (revoked).
    assert_eq!(o.devices_degraded - before.devices_degraded, 2);
    // Ordered by the category's name, as the SQL does.
    let mut expected = vec![
        (Category::NoInternet, 1),
        (Category::DnsFailure, 2),
        (Category::SlowOrLossy, 1),
        (Category::LineDegraded, 1),
        (Category::LanDegraded, 1),
    ];
    expected.sort_by_key(|(c, _)| c.as_str());
    assert_eq!(o.open_by_category, expected);
    assert_eq!(o.started - before.started, 8);
    assert_eq!(o.resolved - before.resolved, 2);
    server.stop().await;
}

/// Stores one incident with an action trail; returns (agent, incident).
async fn seed_incident(server: &TestServer, agent: &str, incident: &str) {
    let mut opened = event(&format!("{incident}-e1"), incident, 1, EventKind::Opened);
    opened.actions = vec![
        action(ActionId::RestoreRoute, ActionOutcome::Planned, 1),
        action(ActionId::RestoreRoute, ActionOutcome::Done, 2),
    ];
    let mut resolved = event(&format!("{incident}-e2"), incident, 2, EventKind::Resolved);
    resolved.actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Verified, 3)];
    server
        .store()
        .ingest_report(&batch(agent, vec![opened, resolved]), ts(30))
        .await
        .unwrap();
}

async fn operators_act_and_viewers_are_refused(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "op", Role::Operator).await;
    add_user(&server, "viewer", Role::Viewer).await;
    seed_incident(&server, "cpe-0001", "inc-1").await;
    let detail = "/incidents/cpe-0001/inc-1";

    let mut v = Browser::new(&server);
    v.login("viewer", PASSWORD).await;
    let page = v.get(detail).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("restore_route"), "action trail shown");
    assert!(page.body.contains("verified"));
    assert!(
        !page.body.contains("id=\"ack-form\""),
        "no action forms for a viewer"
    );
    let csrf = v.csrf().await;
    for (path, form) in [
        (format!("{detail}/ack"), vec![("csrf", csrf.as_str())]),
        (
            format!("{detail}/notes"),
            vec![("csrf", csrf.as_str()), ("body", "hello")],
        ),
        (
            "/killswitches".to_owned(),
            vec![("csrf", csrf.as_str()), ("scope", "fleet"), ("reason", "x")],
        ),
        (
            "/devices/cpe-0001/diagnostics".to_owned(),
            vec![("csrf", csrf.as_str()), ("check_dns", "on")],
        ),
    ] {
        let page = v.post(&path, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        assert!(page.body.contains("only operators"), "{}", page.body);
    }
    let (ack, notes) = server
        .store()
        .incident_notes("cpe-0001", "inc-1")
        .await
        .unwrap();
    assert!(ack.is_none() && notes.is_empty());
    assert!(server.store().list_killswitches().await.unwrap().is_empty());

    let mut op = Browser::new(&server);
    op.login("op", PASSWORD).await;
    let csrf = op.csrf().await;
    // A wrong token or a foreign Origin changes nothing.
    let page = op.post(&format!("{detail}/ack"), &[("csrf", "nope")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let resp = op
        .client
        .post(format!("{}{detail}/ack", op.base))
        .header("cookie", op.cookie_header())
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        server
            .store()
            .incident_notes("cpe-0001", "inc-1")
            .await
            .unwrap()
            .0
            .is_none()
    );

    let page = op.post(&format!("{detail}/ack"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = op
        .post(
            &format!("{detail}/notes"),
            &[("csrf", &csrf), ("body", "called the customer\nall good")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = op.get(detail).await;
    assert!(page.body.contains("Acknowledged by op"), "{}", page.body);
    assert!(page.body.contains("called the customer\nall good"));
    let page = op
        .post(
            &format!("{detail}/notes"),
            &[("csrf", &csrf), ("body", "  ")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = op
        .post("/incidents/cpe-0001/nope/ack", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // Kill switch for the device: set, seen on its page, cleared.
    let page = op
        .post(
            "/killswitches",
            &[
                ("csrf", &csrf),
                ("scope", "device"),
                ("target", "cpe-0001"),
                ("reason", "line work"),
                ("back", "device"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/devices/cpe-0001?done=kill_set");
    let switches = server.store().list_killswitches().await.unwrap();
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].reason, "line work");
    assert!(
        op.get("/devices/cpe-0001")
            .await
            .body
            .contains("Remediation stopped: device cpe-0001")
    );
    let page = op
        .post(
            "/killswitches",
            &[("csrf", &csrf), ("scope", "region"), ("reason", "x")],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "a region switch needs a region"
    );
    let page = op
        .post(
            "/killswitches/clear",
            &[("csrf", &csrf), ("scope", "device"), ("target", "cpe-0001")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(server.store().list_killswitches().await.unwrap().is_empty());
    let _ = KillScope::Fleet;

    // Diagnostics: queued for the device's next heartbeat, listed on its page.
    let page = op
        .post(
            "/devices/cpe-0001/diagnostics",
            &[
                ("csrf", &csrf),
                ("check_dns", "on"),
                ("check_default_route", "on"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let diags = server
        .store()
        .list_diagnostics("cpe-0001", 10)
        .await
        .unwrap();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].checks, vec![CheckId::DefaultRoute, CheckId::Dns]);
    let page = op
        .post("/devices/cpe-0001/diagnostics", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "no check ticked");
    server.stop().await;
}

async fn hostile_device_strings_are_escaped(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "op", Role::Operator).await;
    let mut e = event("x-e1", "inc-x", 1, EventKind::Opened);
    e.summary = "<script>alert(1)</script> \u{7}bell \u{202e}reversed".into();
    e.evidence
        .insert("resolver".into(), "\"><img src=x onerror=alert(2)>".into());
    e.actions = vec![netmedic_proto::ActionRecord {
        action: ActionId::ResetDns,
        outcome: ActionOutcome::Failed,
        at: ts(1),
        detail: "</td><script>alert(3)</script>".into(),
    }];
    server
        .store()
        .ingest_report(&batch("cpe-0001", vec![e]), ts(2))
        .await
        .unwrap();
    let mut b = Browser::new(&server);
    b.login("op", PASSWORD).await;
    for path in [
        "/incidents",
        "/incidents/cpe-0001/inc-x",
        "/devices/cpe-0001",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for raw in ["<script>alert", "<img src=x", "</td><script>"] {
            assert!(!page.body.contains(raw), "{path} carries raw {raw:?}");
        }
        assert!(
            unescape(&page.body).contains("<script>alert(1)</script>"),
            "{path} shows the summary as text: {}",
            page.body
        );
        assert!(
            page.body.contains("␇bell"),
            "control character made visible on {path}"
        );
        assert!(
            page.body.contains("⟨U+202E⟩reversed"),
            "bidi override made visible on {path}"
        );
    }
    let page = b.get("/incidents/cpe-0001/inc-x").await;
    let text = unescape(&page.body);
    assert!(text.contains("\"><img src=x onerror=alert(2)>"));
    assert!(text.contains("</td><script>alert(3)"));
    // Hostile query strings are not reflected raw either.
    let page = b
        .get("/incidents?region=%3Cscript%3Ealert(4)%3C/script%3E")
        .await;
    assert!(!page.body.contains("<script>alert(4)"));
    server.stop().await;
}

async fn lan_incidents_show_their_offender_on_the_device_and_incident_pages(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "viewer", Role::Viewer).await;
    let mut e = event("lan-e1", "inc-lan", 1, EventKind::Opened);
    e.check = CheckId::LanDhcp;
    e.cause = "rogue_dhcp_server".into();
    e.category = Category::LanDegraded;
    e.severity = Severity::Major;
    e.summary = "rogue DHCP server 198.51.100.1 (02:52:4f:47:55:01) on the LAN".into();
    e.evidence
        .insert("offender_mac".into(), "02:52:4f:47:55:01".into());
    e.evidence.insert("server_id".into(), "198.51.100.1".into());
    server
        .store()
        .ingest_report(&batch("cpe-0001", vec![e]), ts(2))
        .await
        .unwrap();
    let mut b = Browser::new(&server);
    b.login("viewer", PASSWORD).await;
    for path in [
        "/incidents/cpe-0001/inc-lan",
        "/devices/cpe-0001",
        "/incidents",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for text in ["lan_dhcp", "lan_degraded", "02:52:4f:47:55:01"] {
            assert!(
                page.body.contains(text),
                "{path} lacks {text}: {}",
                page.body
            );
        }
    }
    let page = b.get("/incidents/cpe-0001/inc-lan").await;
    assert!(page.body.contains("rogue_dhcp_server"), "{}", page.body);
    assert!(
        page.body.contains("02:52:4f:47:55:01"),
        "offender MAC in evidence"
    );
    let page = b.get("/incidents?category=lan_degraded").await;
    assert!(
        page.body.contains("/incidents/cpe-0001/inc-lan"),
        "{}",
        page.body
    );
    server.stop().await;
}

async fn incident_list_filters_and_pages(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "v", Role::Viewer).await;
    // 130 incidents on 3 devices; every 5th is a DNS failure, every 3rd major (else critical).
    let mut events = Vec::new();
    for i in 0..130u64 {
        let mut e = event(
            &format!("ev-{i}"),
            &format!("inc-{i:03}"),
            1,
            EventKind::Opened,
        );
        e.started_at = ts(i as i64);
        e.at = ts(i as i64);
        if i % 5 == 0 {
            e.category = Category::DnsFailure;
            e.check = CheckId::Dns;
        }
        if i % 3 == 0 {
            e.severity = Severity::Major;
        }
        events.push(e);
    }
    for (n, chunk) in events.chunks(50).enumerate() {
        let agent = format!("cpe-{:04}", n + 1);
        server
            .store()
            .ingest_report(&batch(&agent, chunk.to_vec()), ts(200))
            .await
            .unwrap();
    }
    let csv = "agent_id,customer_id,region,access_node,plan,cpe_model,firmware\n\
               cpe-0002,cust-2,north,olt-7,fiber-500,HG8245,1.2.3\n";
    let resp = server
        .client
        .post(server.url("/api/v1/import/subscribers?format=csv"))
        .bearer_auth(&server.admin_token)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    let mut b = Browser::new(&server);
    b.login("v", PASSWORD).await;
    let rows = |body: &str| body.matches("class=\"incident-row").count();
    // Newest first, 50 a page, pages chain without repeats or gaps.
    let mut seen = Vec::new();
    let mut path = "/incidents".to_owned();
    loop {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        for part in page.body.split("/incidents/").skip(1) {
            if let Some(id) = part.split('"').next().and_then(|s| s.split('/').nth(1))
                && id.starts_with("inc-")
            {
                seen.push(id.to_owned());
            }
        }
        match page
            .body
            .split("id=\"next-page\"")
            .next()
            .and_then(|s| s.rsplit("href=\"").next())
        {
            Some(h) if page.body.contains("id=\"next-page\"") => {
                path = h.split('"').next().unwrap().replace("&amp;", "&");
            }
            _ => break,
        }
    }
    let expected: Vec<String> = (0..130).rev().map(|i| format!("inc-{i:03}")).collect();
    assert_eq!(seen, expected);

    let page = b.get("/incidents?category=dns_failure").await;
    assert_eq!(rows(&page.body), 26);
    assert!(!page.body.contains("id=\"next-page\""));
    let page = b.get("/incidents?cpe_model=HG8245&order=oldest").await;
    assert_eq!(rows(&page.body), 50, "the second device's incidents");
    let first = page.body.find("inc-050").unwrap();
    let later = page.body.find("inc-099").unwrap();
    assert!(first < later, "oldest first");
    // Most severe first: every critical row before the first major one, newest first within.
    let page = b.get("/incidents?category=dns_failure").await;
    assert!(
        page.body
            .contains("href=\"/incidents?category=dns_failure&#38;order=severity\" id=\"sort-severity\">Severity<"),
        "{}",
        page.body
    );
    let page = b
        .get("/incidents?category=dns_failure&order=severity")
        .await;
    assert_eq!(rows(&page.body), 26);
    assert!(page.body.contains("id=\"sort-severity\">Severity ↓<"));
    let last_critical = page.body.rfind("<td>critical</td>").unwrap();
    let first_major = page.body.find("<td>major</td>").unwrap();
    assert!(last_critical < first_major, "critical before major");
    assert!(page.body.find("inc-125").unwrap() < page.body.find("inc-005").unwrap());
    assert!(page.body.find("inc-120").unwrap() < page.body.find("inc-000").unwrap());
    let page = b
        .get("/incidents?region=north&category=dns_failure&check=dns")
        .await;
    assert_eq!(rows(&page.body), 10);
    let page = b.get("/incidents?category=nonsense&order=sideways").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        unescape(&page.body).contains("category: \"nonsense\" is not a known category"),
        "{}",
        page.body
    );
    assert!(page.body.contains("order:"));
    // The same filters through the store agree.
    let n = server
        .store()
        .list_incidents(
            &IncidentFilter {
                firmware: Some("1.2.3".into()),
                ..IncidentFilter::default()
            },
            500,
            None,
        )
        .await
        .unwrap()
        .incidents
        .len();
    assert_eq!(n, 50);

    // Pages a viewer can read all answer.
    for p in [
        "/",
        "/devices",
        "/devices/cpe-0002",
        "/customers/cust-2",
        "/experience",
        "/network-events",
        "/killswitches",
    ] {
        let page = b.get(p).await;
        assert_eq!(page.status, StatusCode::OK, "{p}: {}", page.body);
    }
    assert_eq!(
        b.get("/customers/nobody").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

/// `netmedic-collector user add|passwd|list|remove` on a real database file.
#[tokio::test]
async fn user_cli_adds_users_who_can_log_in() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = start(Backend::Sqlite).await;
    let db = format!("sqlite://{}", server.db_path.display());
    let bin = env!("CARGO_BIN_EXE_netmedic-collector");
    // The server runs on this test's runtime: the command runs on a blocking thread, never on
    // the runtime's own, or a server transaction caught mid-way would hold the write lock the
    // command waits for until its busy timeout.
    let run = |args: &[&str], stdin: &str| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(bin)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
    };
    let out = run(
        &[
            "user",
            "add",
            "carol",
            "--role",
            "operator",
            "--password-stdin",
            "--db",
            &db,
        ],
        &format!("{PASSWORD}\n"),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "user",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-stdin",
            "--db",
            &db,
        ],
        &format!("{PASSWORD}\n"),
    )
    .await
    .unwrap();
    assert!(!out.status.success(), "duplicate refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    let out = run(
        &[
            "user",
            "add",
            "dave",
            "--role",
            "viewer",
            "--password-stdin",
            "--db",
            &db,
        ],
        "short\n",
    )
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    // A generated password is printed once on stdout.
    let out = run(
        &["user", "add", "erin", "--role", "viewer", "--db", &db],
        "",
    )
    .await
    .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(generated.len(), 24);
    let out = run(&["user", "list", "--db", &db], "").await.unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("carol  operator") && list.contains("erin  viewer"),
        "{list}"
    );

    let mut b = Browser::new(&server);
    assert_eq!(
        b.login("carol", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/").await.status, StatusCode::OK);
    let mut e = Browser::new(&server);
    assert_eq!(
        e.login("erin", &generated).await.status,
        StatusCode::SEE_OTHER
    );
    // passwd ends carol's session.
    let out = run(
        &["user", "passwd", "carol", "--password-stdin", "--db", &db],
        "another long password\n",
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.login("carol", "another long password").await.status,
        StatusCode::SEE_OTHER
    );
    let out = run(&["user", "remove", "carol", "--db", &db], "")
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    server.stop().await;
}

/// The Experience page reports the range asked for (not a fixed 30 days), its counts describe
/// the table's answers, and a bad range is a clear 400.
async fn experience_page_takes_a_date_range(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "v", Role::Viewer).await;
    let mut b = Browser::new(&server);
    b.login("v", PASSWORD).await;
    // An incident at ts(0) (200 days before the run, see `common::ts`), and survey answers on
    // days of 2026-01 (before ts(0), since this suite runs after 2026-08).
    let mut e = event("ev-x", "inc-x", 1, EventKind::Opened);
    e.started_at = ts(0);
    e.at = ts(0);
    server
        .store()
        .ingest_report(&batch("cpe-0001", vec![e]), ts(10))
        .await
        .unwrap();
    let csv = "survey_id,customer_id,answered_at,nps\n\
               s1,cust-9,2026-01-10T10:00:00Z,9\n\
               s2,cust-9,2026-01-20T10:00:00Z,3\n\
               s3,cust-9,2026-01-21T10:00:00Z,10\n";
    let resp = server
        .client
        .post(server.url("/api/v1/import/surveys?format=csv"))
        .bearer_auth(&server.admin_token)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = b.get("/experience?from=2026-01-15&to=2026-01-20").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = unescape(&page.body);
    assert!(body.contains("value=\"2026-01-15\""), "{body}");
    assert!(body.contains("value=\"2026-01-20\""), "{body}");
    // Only s2 (the 20th is included, the 21st is not); no incident in January.
    assert!(
        body.contains("0 incidents of 0 customers · 1 survey answers: 1 without an incident"),
        "{body}"
    );
    let page = b.get("/experience?from=2026-01-01&to=2026-01-31").await;
    assert!(
        unescape(&page.body).contains("3 survey answers: 3 without an incident"),
        "{}",
        page.body
    );
    let incident_day = &ts(0).to_string()[..10];
    let page = b.get(&format!("/experience?from={incident_day}")).await;
    assert!(
        unescape(&page.body).contains("1 incidents of 0 customers · 0 survey answers"),
        "{}",
        page.body
    );
    for bad in [
        "/experience?from=2026-13-01",
        "/experience?from=yesterday",
        "/experience?from=2026-01-20&to=2026-01-10",
        "/experience?since=2026-01-01",
    ] {
        let page = b.get(bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}: {}", page.body);
    }
    server.stop().await;
}

async fn experiments_page_for_operators_and_viewers(backend: Backend) {
    let server = start(backend).await;
    add_user(&server, "op", Role::Operator).await;
    add_user(&server, "viewer", Role::Viewer).await;
    let mut v = Browser::new(&server);
    v.login("viewer", PASSWORD).await;
    let page = v.get("/experiments").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"no-experiments\""), "{}", page.body);
    assert!(
        !page.body.contains("id=\"experiment-form\""),
        "no form for a viewer"
    );
    let csrf = v.csrf().await;
    let start_form = [
        ("csrf", csrf.as_str()),
        ("id", "dns-holdout"),
        ("scope", "playbook"),
        ("playbook", "dns"),
        ("check", ""),
        ("cause", ""),
        ("control_percent", "5"),
    ];
    let page = v.post("/experiments", &start_form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(server.store().list_experiments().await.unwrap().is_empty());

    let mut op = Browser::new(&server);
    op.login("op", PASSWORD).await;
    let csrf = op.csrf().await;
    assert!(
        op.get("/experiments")
            .await
            .body
            .contains("id=\"experiment-form\"")
    );
    // A wrong CSRF token changes nothing.
    let mut forged = start_form;
    forged[0] = ("csrf", "nope");
    assert_eq!(
        op.post("/experiments", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    let mut form = start_form;
    form[0] = ("csrf", csrf.as_str());
    let page = op.post("/experiments", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/experiments?done=experiment_started");
    let list = server.store().list_experiments().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].created_by, "op");
    assert_eq!(list[0].experiment.control_permille, 50);
    assert_eq!(list[0].experiment.salt.len(), 32);
    // Taken id, bad share, check scope without a check: refused with a message.
    assert_eq!(
        op.post("/experiments", &form).await.status,
        StatusCode::CONFLICT
    );
    let mut bad = form;
    bad[6] = ("control_percent", "60");
    assert_eq!(
        op.post("/experiments", &bad).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut bad = form;
    bad[1] = ("id", "other");
    bad[2] = ("scope", "check");
    assert_eq!(
        op.post("/experiments", &bad).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut bad = form;
    bad[1] = ("id", "<b>x</b>");
    let page = op.post("/experiments", &bad).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.body.contains("<b>x</b>"), "escaped: {}", page.body);
    // Listed for both; only the operator gets the stop button, and it works once.
    let page = v.get("/experiments").await;
    assert!(page.body.contains("dns-holdout") && page.body.contains("playbook dns"));
    assert!(!page.body.contains("experiment-stop"), "{}", page.body);
    let page = op.get("/experiments").await;
    assert!(page.body.contains("experiment-stop"), "{}", page.body);
    let stop = [("csrf", csrf.as_str()), ("id", "dns-holdout")];
    assert_eq!(
        v.post("/experiments/stop", &[("csrf", "x"), ("id", "dns-holdout")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let page = op.post("/experiments/stop", &stop).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        op.post("/experiments/stop", &stop).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!server.store().list_experiments().await.unwrap()[0].is_active());
    // The Experience page shows the ended experiment's causal entry beside the observational
    // figure and its assumption (the report is computed in the background: wait for it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let page = v.get("/experience").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if !page.body.contains("being computed") {
            break unescape(&page.body);
        }
        assert!(std::time::Instant::now() < deadline, "report never ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(body.contains("id=\"causal-dns-holdout\""), "{body}");
    assert!(body.contains("randomized (holdout)"), "{body}");
    assert!(body.contains("not randomized"), "{body}");
    server.stop().await;
}
