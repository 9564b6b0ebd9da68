//! The agent as a daemon in the lab: SIGHUP with a broken config keeps the running one, with a
//! good one applies it without a restart (same pid, incidents keep flowing); the agent opens no
//! listening socket; HTTPS to the collector through a TLS-terminating proxy (socat) with a
//! throwaway CA pinned and a client certificate (mutual TLS), and a wrong CA refused.

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions};
use netmedic_lab::{COLLECTOR_IP, COLLECTOR_NAME, Lab, wait_for};
use netmedic_proto::{CheckId, IncidentStatus};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn options() -> StackOptions {
    StackOptions {
        fail_threshold: 1,
        ok_threshold: 1,
        ..StackOptions::default()
    }
}

fn wait_log(stack: &Stack<'_>, what: &str, from: usize) {
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let log = stack.agent_log(0);
            if log[from.min(log.len())..].contains(what) {
                Ok(())
            } else {
                Err(log[log.len().saturating_sub(2000)..].to_string())
            }
        },
    )
    .unwrap();
}

#[test]
fn sighup_keeps_a_broken_config_and_applies_a_good_one_without_restart() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut stack = Stack::start(&lab, options()).expect("stack");
    let cfg = stack.agent_configs[0].clone();
    let good = std::fs::read_to_string(&cfg).unwrap();
    let pid = stack.agents[0].as_ref().unwrap().pid();

    std::fs::write(&cfg, good.replace("[wan]", "[wan]\nbogus_key = 1")).unwrap();
    let mark = stack.agent_log(0).len();
    stack.agents[0]
        .as_mut()
        .unwrap()
        .signal(Signal::SIGHUP)
        .unwrap();
    wait_log(
        &stack,
        "reload refused, keeping the running configuration",
        mark,
    );
    assert!(
        stack.agent_log(0)[mark..].contains("bogus_key"),
        "the reason names the field"
    );
    assert!(stack.agents[0].as_mut().unwrap().is_running());

    // A good config with a new interval: applied in place.
    std::fs::write(
        &cfg,
        good.replace("interval_secs = 1\n", "interval_secs = 2\n"),
    )
    .unwrap();
    let mark = stack.agent_log(0).len();
    stack.agents[0]
        .as_mut()
        .unwrap()
        .signal(Signal::SIGHUP)
        .unwrap();
    wait_log(&stack, "configuration reloaded", mark);
    assert!(stack.agent_log(0)[mark..].contains("default_route/2s"));
    assert_eq!(stack.agents[0].as_ref().unwrap().pid(), pid, "no restart");
    // Still detecting, healing and reporting.
    lab.cpe(0).delete_default_route().unwrap();
    stack
        .wait_incident("incident after reload", Duration::from_secs(60), |i| {
            i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)));
    // SIGTERM: a clean exit.
    let mut agent = stack.agents[0].take().unwrap();
    agent.signal(Signal::SIGTERM).unwrap();
    let st = agent
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}");
}

#[test]
fn the_agent_opens_no_listening_socket() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let stack = Stack::start(&lab, options()).expect("stack");
    let pid = stack.agents[0].as_ref().unwrap().pid();
    // Wait for a heartbeat-free steady state: the agent has delivered or checked at least once.
    wait_log(&stack, "check default_route:", 0);
    let out = lab
        .cpe(0)
        .ns
        .exec(&["ss", "-H", "-l", "-n", "-t", "-u", "-p"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect();
    assert!(
        mine.is_empty(),
        "listening sockets of the agent: {mine:?}\n{text}"
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA, a server certificate for the collector and a client certificate.
fn make_pki(dir: &Path, ca: &str) {
    let subj = format!("/CN={ca}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &subj,
        ],
    );
}

fn sign(dir: &Path, ca: &str, name: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

#[test]
fn https_with_a_pinned_ca_and_a_client_certificate() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut stack = Stack::start(&lab, options()).expect("stack");
    let pki = lab.dir().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki, "ca");
    make_pki(&pki, "otherca");
    sign(
        &pki,
        "ca",
        "server",
        &format!(
            "subjectAltName=DNS:{COLLECTOR_NAME},IP:{COLLECTOR_IP}\nextendedKeyUsage=serverAuth\n"
        ),
    );
    sign(&pki, "ca", "client", "extendedKeyUsage=clientAuth\n");
    std::fs::set_permissions(
        pki.join("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // TLS terminator in front of the collector, requiring a client certificate of our CA.
    let tls_port = 8443;
    let _proxy = lab
        .isp()
        .ns
        .spawn(
            "socat",
            &[
                &format!(
                    "OPENSSL-LISTEN:{tls_port},bind={COLLECTOR_IP},reuseaddr,fork,cert={},key={},cafile={},verify=1",
                    pki.join("server.pem").display(),
                    pki.join("server.key").display(),
                    pki.join("ca.pem").display()
                ),
                &format!("TCP:{COLLECTOR_IP}:{COLLECTOR_PORT}"),
            ],
            lab.log_path("socat"),
        )
        .expect("socat (scripts/setup.sh installs it)");
    let cfg = stack.agent_configs[0].clone();
    let plain = std::fs::read_to_string(&cfg).unwrap();
    let https = |ca: &str| {
        plain.replace(
            &format!("url = \"http://{COLLECTOR_IP}:{COLLECTOR_PORT}\""),
            &format!(
                "url = \"https://{COLLECTOR_IP}:{tls_port}\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
                pki.join(format!("{ca}.pem")).display(),
                pki.join("client.pem").display(),
                pki.join("client.key").display()
            ),
        )
    };
    // A CA that did not sign the collector's certificate: nothing is delivered.
    let mut agent = stack.agents[0].take().unwrap();
    agent.kill().unwrap();
    std::fs::write(&cfg, https("otherca")).unwrap();
    let mark = stack.agent_log(0).len();
    stack.start_agent(0).unwrap();
    lab.cpe(0).delete_default_route().unwrap();
    // (The first attempts may fail with no route yet: wait for the certificate refusal.)
    wait_log(&stack, "UnknownIssuer", mark);
    assert!(
        stack.incidents().unwrap().incidents.is_empty(),
        "an unpinned CA is refused"
    );
    // The right CA: the spooled incident goes through TLS.
    let mut agent = stack.agents[0].take().unwrap();
    agent.kill().unwrap();
    std::fs::write(&cfg, https("ca")).unwrap();
    stack.start_agent(0).unwrap();
    stack
        .wait_incident(
            "incident delivered over HTTPS",
            Duration::from_secs(60),
            |i| i.check == CheckId::DefaultRoute,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)));
}
