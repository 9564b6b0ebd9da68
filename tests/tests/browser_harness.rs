//! End-to-end: the headless-Chromium harness (`netmedic_lab::browser`) itself — chromedriver and
//! Chromium inside the lab's ISP namespace load a page served there, read escaped text, type,
//! click, run scripts, see cookies (HttpOnly included), detect a JavaScript alert (and its
//! absence), take a PNG screenshot, name the selector and URL in errors, and leave no process
//! behind.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use netmedic_lab::browser::{Browser, keys};
use netmedic_lab::httpd::{CannedResponse, HttpServer};
use netmedic_lab::{COLLECTOR_IP, COLLECTOR_NAME, Lab};
use serde_json::json;

const T: Duration = Duration::from_secs(5);

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>static title</title></head>
<body>
<h1 id="heading">NOC harness page</h1>
<p id="escaped">&lt;script&gt;alert('xss')&lt;/script&gt; &amp; more</p>
<form id="form">
  <label for="name">Name</label>
  <input id="name" name="name" type="text" value="prefilled">
  <button id="go" type="submit">Go</button>
</form>
<ul id="list"><li>one</li><li>two</li><li>three</li></ul>
<div id="out"></div>
<div id="hidden" style="display:none">secret</div>
<script>
  document.title = 'netmedic harness ' + (40 + 2);
  document.getElementById('form').addEventListener('submit', function (e) {
    e.preventDefault();
    var out = document.getElementById('out');
    // Rendered later, as a console would after a fetch; as text, never as HTML.
    setTimeout(function () {
      out.textContent = 'hello, ' + document.getElementById('name').value;
    }, 150);
  });
</script>
</body></html>
"#;

const ALERT_PAGE: &str = r#"<!doctype html>
<html><head><title>alerting</title></head><body><p>boom</p><script>alert('x')</script></body></html>
"#;

/// Whether the effective uid is 0 (`Uid:` line of /proc/self/status: real, effective, ...).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

/// Processes in `ns` whose name says chromium or chromedriver (or our `unshare` wrapper).
fn browser_processes(ns: &netmedic_lab::Netns) -> Vec<String> {
    ns.pids()
        .unwrap()
        .into_iter()
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim();
            (comm.contains("chrom") || comm == "unshare").then(|| format!("{pid} {comm}"))
        })
        .collect()
}

#[test]
fn chromium_drives_a_page_inside_a_lab_namespace_and_cleans_up() {
    if !is_root() {
        eprintln!(
            "SKIPPED browser_harness: the lab builds network namespaces and needs root \
             (run as root, after scripts/setup.sh)"
        );
        return;
    }
    let started = Instant::now();
    let lab = Lab::builder().cpes(0).build().expect("lab");
    let ns = lab.isp().ns.clone();
    let mut page = CannedResponse::page(200, PAGE);
    page.headers.push((
        "Set-Cookie".into(),
        "nm_session=s3cr3t; Path=/; HttpOnly; SameSite=Strict".into(),
    ));
    let site = HttpServer::start(&ns, IpAddr::V4(COLLECTOR_IP), page).unwrap();
    let alerting = HttpServer::start(
        &ns,
        IpAddr::V4(COLLECTOR_IP),
        CannedResponse::page(200, ALERT_PAGE),
    )
    .unwrap();

    let b = Browser::start(&ns, None).expect("browser");
    let t_start = started.elapsed();
    println!("artifacts dir: {}", b.artifacts_dir().display());

    // Chromium lives in the lab namespace.
    let pids = b.pids().unwrap();
    assert!(pids.len() >= 3, "unshare, chromedriver, chromium: {pids:?}");
    assert!(
        browser_processes(&ns)
            .iter()
            .any(|p| p.ends_with("chromium")),
        "{:?}",
        browser_processes(&ns)
    );

    // Navigate; the inline script ran; escaped markup is text.
    let url = site.url("/console?x=1");
    b.goto(&url).unwrap();
    assert_eq!(b.current_url().unwrap(), url);
    assert_eq!(b.title().unwrap(), "netmedic harness 42");
    assert_eq!(
        b.find("#heading").unwrap().text().unwrap(),
        "NOC harness page"
    );
    assert_eq!(
        b.find("#escaped").unwrap().text().unwrap(),
        "<script>alert('xss')</script> & more"
    );
    assert!(
        b.page_source()
            .unwrap()
            .contains("&lt;script&gt;alert('xss')&lt;/script&gt;")
    );
    assert_eq!(b.alert_text().unwrap(), None);

    // Elements: lists, visibility, attributes, properties.
    let items = b.find_all("#list li").unwrap();
    let texts: Vec<String> = items.iter().map(|e| e.text().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(items[1].selector(), "#list li[1]");
    let list = b.find("#list").unwrap();
    assert_eq!(list.find_all("li").unwrap().len(), 3);
    assert_eq!(list.find("li").unwrap().text().unwrap(), "one");
    assert!(b.find_all("table").unwrap().is_empty());
    assert!(b.find("#heading").unwrap().is_displayed().unwrap());
    assert!(!b.find("#hidden").unwrap().is_displayed().unwrap());
    let name = b.find("#name").unwrap();
    assert_eq!(name.attr("value").unwrap().as_deref(), Some("prefilled"));
    assert_eq!(name.attr("data-missing").unwrap(), None);
    assert_eq!(name.prop("value").unwrap(), json!("prefilled"));

    // Type (markup as text), submit with a click, wait for the delayed render.
    name.clear().unwrap();
    name.send_keys("NOC <b>op</b>").unwrap();
    assert_eq!(name.prop("value").unwrap(), json!("NOC <b>op</b>"));
    b.find("#go").unwrap().click().unwrap();
    let out = b
        .wait_until("the greeting", T, |b| {
            let text = b.find("#out").map_err(|e| e.to_string())?.text();
            match text {
                Ok(t) if !t.is_empty() => Ok(t),
                other => Err(format!("#out is {other:?}")),
            }
        })
        .unwrap();
    assert_eq!(out, "hello, NOC <b>op</b>");
    assert_eq!(b.wait_for("#out", T).unwrap().text().unwrap(), out);
    // Enter submits too.
    name.clear().unwrap();
    name.send_keys(&format!("again{}", keys::ENTER)).unwrap();
    assert_eq!(b.wait_for_text("#out", "again", T).unwrap(), "hello, again");
    // A text that never comes: the error names the selector and what it said last.
    let e = b
        .wait_for_text("#out", "never said", Duration::from_millis(200))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("#out") && e.contains("hello, again"), "{e}");

    // Names resolve through the lab's DNS (the namespace's /etc/netns resolv.conf).
    let by_name = format!("http://{COLLECTOR_NAME}:{}/named", site.addr().port());
    b.goto(&by_name).unwrap();
    assert_eq!(b.title().unwrap(), "netmedic harness 42");
    b.goto(&url).unwrap();

    // Scripts: arguments, elements as arguments, results.
    assert_eq!(
        b.execute(
            "return arguments[0] + arguments[1];",
            &[json!(40), json!(2)]
        )
        .unwrap(),
        json!(42)
    );
    assert_eq!(
        b.execute(
            "return arguments[0].children.length;",
            &[b.find("#list").unwrap().to_arg()]
        )
        .unwrap(),
        json!(3)
    );
    assert_eq!(
        b.execute(
            "return document.querySelectorAll('#out b, script[src]').length;",
            &[]
        )
        .unwrap(),
        json!(0)
    );

    // The console: messages since the last read, errors as SEVERE.
    b.execute("console.error('harness-error', 7);", &[])
        .unwrap();
    let log = b.console_log().unwrap();
    assert!(
        log.iter()
            .any(|m| m.level == "SEVERE" && m.message.contains("harness-error")),
        "{log:?}"
    );
    assert!(b.console_log().unwrap().is_empty());

    // Cookies: the HttpOnly session cookie is there but invisible to scripts.
    let cookies = b.cookies().unwrap();
    let session = cookies.iter().find(|c| c.name == "nm_session").unwrap();
    assert_eq!(session.value, "s3cr3t");
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    assert_eq!(
        b.execute("return document.cookie;", &[]).unwrap(),
        json!("")
    );
    b.delete_all_cookies().unwrap();
    assert!(b.cookies().unwrap().is_empty());

    // Errors name the selector, the page and the WebDriver message.
    let e = b.find("#nope").err().unwrap().to_string();
    assert!(e.contains("#nope") && e.contains("no such element"), "{e}");
    assert!(e.contains(&url), "{e}");
    let e = b
        .wait_for("#hidden", Duration::from_millis(300))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("#hidden") && e.contains("not displayed"), "{e}");
    let e = b.find("p[").err().unwrap().to_string();
    assert!(e.contains("p[") && e.contains("invalid selector"), "{e}");
    let e = b
        .execute("throw new Error('kaboom');", &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("kaboom"), "{e}");
    let e = b
        .wait_until("the impossible", Duration::from_millis(200), |_| None::<()>)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("the impossible") && e.contains(&url), "{e}");
    // Navigation errors name the URL and the network error: a closed port, and a port
    // Chromium refuses to use (for which chromedriver itself reports nothing).
    let mut dead =
        HttpServer::start(&ns, IpAddr::V4(COLLECTOR_IP), CannedResponse::no_content()).unwrap();
    dead.stop().unwrap();
    for (url, code) in [
        (dead.url("/down"), "ERR_CONNECTION_REFUSED"),
        (format!("http://{COLLECTOR_IP}:6000/x11"), "ERR_UNSAFE_PORT"),
    ] {
        let e = b.goto(&url).err().unwrap().to_string();
        assert!(e.contains(&url) && e.contains(code), "{e}");
    }

    // An alert is detected, stays open until handled, and blocks other commands meanwhile.
    b.goto(&alerting.url("/")).unwrap();
    assert_eq!(b.alert_text().unwrap().as_deref(), Some("x"));
    let e = b.wait_for("p", T).err().unwrap().to_string();
    assert!(e.contains("unexpected alert open"), "{e}");
    assert_eq!(b.alert_text().unwrap().as_deref(), Some("x"));
    b.accept_alert().unwrap();
    assert_eq!(b.alert_text().unwrap(), None);
    assert_eq!(b.title().unwrap(), "alerting");

    // Screenshot.
    b.goto(&site.url("/")).unwrap();
    b.wait_for("#heading", T).unwrap();
    let shot = b.screenshot("browser-harness").unwrap();
    println!("screenshot: {}", shot.display());
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", shot.display());
    assert!(png.len() > 1000, "{} bytes", png.len());
    assert!(site.requests() >= 3);

    // Closing leaves nothing behind: not in the namespace, not even a zombie.
    let pids = b.pids().unwrap();
    let t_close = Instant::now();
    drop(b);
    let t_close = t_close.elapsed();
    assert!(
        browser_processes(&ns).is_empty(),
        "{:?}",
        browser_processes(&ns)
    );
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(
            !comm.contains("chrom") && !comm.contains("unshare"),
            "pid {pid} ({}) is still there",
            comm.trim()
        );
    }
    println!(
        "timings: lab + browser start {t_start:?}, browser close {t_close:?}, total {:?}",
        started.elapsed()
    );
}
