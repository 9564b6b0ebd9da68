//! `pages`: logs in to the NOC console and times its pages (incident list, filters, second
//! pages, detail, overview) beside the JSON API and `/healthz`, printing p50/p95/max per URL.

use crate::http::{Client, anchor_href, form_enc};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Logs in to the console; returns the `Cookie` header value of the session.
async fn console_login(c: &mut Client, user: &str, password: &str) -> Result<String> {
    let r = c.send("GET", "/login", &[], b"").await?;
    if r.status != 200 {
        bail!("GET /login answered {}", r.status);
    }
    let login = r
        .set_cookie("netmedic_login")
        .context("GET /login set no netmedic_login cookie")?
        .to_owned();
    let html = r.text();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).context("no csrf field on /login")? + marker.len();
    let csrf = &html[at..at + html[at..].find('"').context("unterminated csrf value")?];
    let form = format!(
        "username={}&password={}&csrf={}&next=%2F",
        form_enc(user),
        form_enc(password),
        form_enc(csrf)
    );
    let cookie = format!("netmedic_login={login}");
    let r = c
        .send(
            "POST",
            "/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
            ],
            form.as_bytes(),
        )
        .await?;
    if r.status != 303 {
        bail!(
            "POST /login answered {} instead of 303 (wrong user name or password?)",
            r.status
        );
    }
    let session = r
        .set_cookie("netmedic_session")
        .context("POST /login set no netmedic_session cookie")?;
    Ok(format!("netmedic_session={session}"))
}

/// One timed URL of the `pages` run.
struct Target {
    label: String,
    path: String,
    /// `Cookie` or `Authorization` header, if the URL needs one.
    auth: Option<(&'static str, String)>,
    /// Before timing: wait (up to [`SETTLE_DEADLINE`]) until the page no longer says this.
    settle_until_gone: Option<&'static str>,
}

/// How long a target may take to settle (the overview's 30-day report over a million
/// incidents takes seconds to tens of seconds on a loaded 2-core box).
const SETTLE_DEADLINE: Duration = Duration::from_secs(600);

/// What the overview says while its cached experience report is being computed.
const REPORT_COMPUTING: &str = "the experience report is being computed";

pub(crate) async fn pages(
    addr: SocketAddr,
    user: &str,
    password: &str,
    token: &str,
    requests: usize,
    region: &str,
) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to load {addr}: loopback addresses only");
    }
    let requests = requests.max(1);
    let mut c = Client { addr, conn: None };
    let t = Instant::now();
    let cookie = console_login(&mut c, user, password).await?;
    let login_ms = t.elapsed().as_secs_f64() * 1000.0;

    let session = || Some(("Cookie", cookie.clone()));
    let first = c
        .send("GET", "/incidents", &[("Cookie", &cookie)], b"")
        .await?;
    if first.status != 200 {
        bail!("GET /incidents answered {} after login", first.status);
    }
    let html = first.text();
    let page = |label: &str, path: String| Target {
        label: label.to_owned(),
        path,
        auth: session(),
        settle_until_gone: None,
    };
    let mut targets = vec![
        page("/incidents (first page)", "/incidents".into()),
        page("/incidents?status=open", "/incidents?status=open".into()),
        page(
            "/incidents?category=dns_failure",
            "/incidents?category=dns_failure".into(),
        ),
        page(
            &format!("/incidents?region={region}"),
            format!("/incidents?region={}", form_enc(region)),
        ),
        page("/incidents?order=oldest", "/incidents?order=oldest".into()),
        page(
            "/incidents?order=severity",
            "/incidents?order=severity".into(),
        ),
    ];
    match anchor_href(&html, "id=\"next-page\"") {
        Some(h) => targets.push(page("/incidents?cursor=… (2nd page)", h)),
        None => println!("(the first page has no next-page link: fewer than 51 incidents?)"),
    }
    let by_severity = c
        .send(
            "GET",
            "/incidents?order=severity",
            &[("Cookie", &cookie)],
            b"",
        )
        .await?;
    if let Some(h) = anchor_href(&by_severity.text(), "id=\"next-page\"") {
        targets.push(page("/incidents?order=severity&cursor=… (2nd page)", h));
    }
    match anchor_href(&html, "class=\"incident-link\"") {
        Some(h) => {
            // `/incidents/{agent}/{incident}`: that device's page, and its customer's (the
            // seeder maps `cpe-NNNNNN` to `cust-NNNNNN`) page and incident list.
            let agent = h.split('/').nth(2).unwrap_or_default().to_owned();
            targets.push(page(&format!("{h} (detail)"), h));
            if !agent.is_empty() {
                targets.push(page(
                    &format!("/devices/{agent} (device)"),
                    format!("/devices/{}", form_enc(&agent)),
                ));
                let customer = agent.replacen("cpe-", "cust-", 1);
                targets.push(page(
                    &format!("/customers/{customer} (customer)"),
                    format!("/customers/{}", form_enc(&customer)),
                ));
                targets.push(page(
                    &format!("/incidents?customer_id={customer}"),
                    format!("/incidents?customer_id={}", form_enc(&customer)),
                ));
            }
        }
        None => println!("(the first page lists no incident)"),
    }
    // The first overview starts the 30-day experience report in the background (it competes
    // for the CPU while it runs); the second is timed once the report is cached.
    targets.push(page("/ (overview, report computing)", "/".into()));
    targets.push(Target {
        settle_until_gone: Some(REPORT_COMPUTING),
        ..page("/ (overview, report cached)", "/".into())
    });
    targets.push(Target {
        label: "/api/v1/incidents?limit=50 (JSON)".into(),
        path: "/api/v1/incidents?limit=50".into(),
        auth: Some(("Authorization", format!("Bearer {token}"))),
        settle_until_gone: None,
    });
    targets.push(Target {
        label: "/healthz".into(),
        path: "/healthz".into(),
        auth: None,
        settle_until_gone: None,
    });

    println!(
        "console pages on {addr}: {requests} sequential requests per URL after 1 warm-up, one \
         keep-alive connection; login took {login_ms:.1} ms"
    );
    println!(
        "{:<48} {:>6} {:>9} {:>8} {:>8} {:>8}  server",
        "url", "status", "bytes", "p50 ms", "p95 ms", "max ms"
    );
    let mut p50s: Vec<f64> = Vec::new();
    for t in &targets {
        let headers: Vec<(&str, &str)> = t.auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(text) = t.settle_until_gone {
            let t0 = Instant::now();
            while c
                .send("GET", &t.path, &headers, b"")
                .await?
                .text()
                .contains(text)
            {
                if t0.elapsed() > SETTLE_DEADLINE {
                    bail!("{} still says {text:?} after {SETTLE_DEADLINE:?}", t.path);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            println!(
                "({} settled after {:.1} s)",
                t.path,
                t0.elapsed().as_secs_f64()
            );
        }
        let warm = c.send("GET", &t.path, &headers, b"").await?;
        let mut lat: Vec<f64> = Vec::with_capacity(requests);
        let mut statuses = std::collections::BTreeSet::from([warm.status]);
        let mut last = warm;
        for _ in 0..requests {
            let t0 = Instant::now();
            let r = c.send("GET", &t.path, &headers, b"").await?;
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            statuses.insert(r.status);
            last = r;
        }
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[(((lat.len() - 1) as f64) * p).round() as usize];
        // What the page itself says it took ("served in 12.3 ms"), for the HTML list pages.
        let body = last.text();
        let server = body
            .find("served in ")
            .and_then(|i| {
                let rest = &body[i + 10..];
                rest.find('<').map(|e| rest[..e].trim().to_owned())
            })
            .unwrap_or_default();
        let status = statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("/");
        let mut label = t.label.clone();
        if label.chars().count() > 48 {
            label = label.chars().take(47).collect::<String>() + "…";
        }
        println!(
            "{label:<48} {status:>6} {:>9} {:>8.1} {:>8.1} {:>8.1}  {server}",
            last.body.len(),
            pct(0.50),
            pct(0.95),
            lat[lat.len() - 1],
        );
        p50s.push(pct(0.50));
    }
    let api = targets
        .iter()
        .position(|t| t.path.starts_with("/api/v1/incidents"))
        .map(|i| p50s[i]);
    if let (Some(&page), Some(api)) = (p50s.first(), api) {
        println!(
            "first page p50 {page:.1} ms (target ≤ 200 ms); JSON API p50 {api:.1} ms; \
             first page / API = {:.2}×",
            page / api.max(1e-3)
        );
    }
    Ok(())
}
