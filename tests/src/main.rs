//! `netmedic-lab`: runs the lab demo (an ISP in network namespaces, a fault injected, the real
//! agent heals it, the real collector shows the incident) and sweeps labs left behind.

use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, LabError, PROBE_IP};
use netmedic_proto::IncidentStatus;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "\
netmedic-lab — the netmedic lab (run as root)

USAGE:
    netmedic-lab demo     build the lab, inject a fault, watch the agent heal it, tear down
    netmedic-lab sweep    remove namespaces left behind by lab processes that died

The benchmarks are `netmedic-bench` and `netmedic-loadgen` (crate bench/).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {
            let interrupted = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                if let Err(e) = signal_hook::flag::register(sig, interrupted.clone()) {
                    eprintln!("netmedic-lab: cannot handle signal {sig}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let demo = Demo {
                interrupted,
                start: Instant::now(),
            };
            match demo.run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("\nnetmedic-lab demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("sweep") => match Lab::sweep_stale() {
            Ok(removed) => {
                println!("removed {} stale namespace(s)", removed.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netmedic-lab sweep: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("netmedic-lab: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(64)
        }
    }
}

struct Demo {
    interrupted: Arc<AtomicBool>,
    start: Instant,
}

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("interrupted; the lab has been torn down")]
    Interrupted,
    #[error("{0}")]
    Failed(String),
}

impl Demo {
    fn say(&self, step: &str, text: &str) {
        println!(
            "[{:>6.1}s] {step:<9} {text}",
            self.start.elapsed().as_secs_f64()
        );
    }

    /// Polls `probe` until it yields, the deadline passes or Ctrl-C is pressed.
    fn wait<T>(
        &self,
        desc: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T, DemoError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(DemoError::Interrupted);
            }
            if let Some(v) = probe() {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(DemoError::Failed(format!(
                    "gave up after {timeout:?} waiting for {desc}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_interrupt(&self) -> Result<(), DemoError> {
        if self.interrupted.load(Ordering::SeqCst) {
            Err(DemoError::Interrupted)
        } else {
            Ok(())
        }
    }

    fn run(&self) -> Result<(), DemoError> {
        self.say(
            "lab",
            "building an ISP out of network namespaces: isp, cpe, lan (dnsmasq, udhcpc)...",
        );
        let lab = Lab::builder().cpes(1).build()?;
        let result = self.run_in(&lab);
        self.say(
            "teardown",
            "stopping processes and removing the lab's namespaces...",
        );
        let prefix = lab.prefix().to_string();
        drop(lab);
        let left: Vec<String> = std::fs::read_dir(netmedic_lab::NETNS_RUN_DIR)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            self.say(
                "teardown",
                &format!("done: no namespace {prefix}-* left behind"),
            );
        } else {
            self.say(
                "teardown",
                &format!("WARNING: namespaces left behind: {left:?}; run `netmedic-lab sweep`"),
            );
        }
        result
    }

    fn run_in(&self, lab: &Lab) -> Result<(), DemoError> {
        let cpe = lab.cpe(0);
        self.say(
            "lab",
            &format!(
                "ready: namespaces {}; CPE leased {} from the ISP's DHCP, gateway {ISP_GATEWAY}",
                lab.namespaces()
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                cpe.wan_ip()?.map_or("-".into(), |ip| ip.to_string()),
            ),
        );
        self.check_interrupt()?;
        self.say(
            "collector",
            "starting netmedic-collector in the ISP namespace (SQLite store)...",
        );
        let mut stack = Stack::start(lab, StackOptions::default())?;
        self.say(
            "collector",
            &format!("listening on http://{}", stack.collector_addr),
        );
        self.say(
            "agent",
            "netmedic-agent is running on the CPE (check default_route every 1 s)",
        );
        self.check_interrupt()?;
        let lan_ok = cpe.lan_ns.ping(&PROBE_IP.to_string())?;
        self.say(
            "subscriber",
            &format!(
                "LAN host pings {PROBE_IP} on the internet: {}",
                if lan_ok { "ok" } else { "FAILS" }
            ),
        );
        self.say(
            "FAULT",
            "deleting the CPE's default route (ip route del default)",
        );
        let injected = Instant::now();
        cpe.delete_default_route()?;
        let lan_ok = cpe.lan_ns.ping(&PROBE_IP.to_string())?;
        self.say(
            "subscriber",
            &format!(
                "LAN host pings {PROBE_IP}: {}",
                if lan_ok {
                    "ok (already healed)"
                } else {
                    "FAILS — no internet"
                }
            ),
        );
        self.say(
            "agent",
            "detecting, restoring the route from the DHCP lease, verifying...",
        );
        let route = self.wait(
            "the default route to come back",
            Duration::from_secs(60),
            || cpe.default_route().ok().flatten(),
        )?;
        self.say(
            "healed",
            &format!(
                "{:.1} s after the fault: default via {} dev {}",
                injected.elapsed().as_secs_f64(),
                route.gateway.map_or("-".into(), |g| g.to_string()),
                route.dev
            ),
        );
        let lan_ok = self.wait(
            "the LAN host to reach the internet",
            Duration::from_secs(20),
            || cpe.lan_ns.ping(&PROBE_IP.to_string()).ok().filter(|ok| *ok),
        )?;
        self.say(
            "subscriber",
            &format!(
                "LAN host pings {PROBE_IP}: {}",
                if lan_ok { "ok" } else { "FAILS" }
            ),
        );
        self.say("collector", "waiting for the agent's report...");
        let inc = self.wait(
            "the resolved incident at the collector",
            Duration::from_secs(60),
            || {
                stack.incidents().ok().and_then(|p| {
                    p.incidents.into_iter().find(|i| {
                        i.status == IncidentStatus::Resolved && i.check.as_str() == "default_route"
                    })
                })
            },
        )?;
        self.say(
            "collector",
            &format!(
                "incident {} stored: check {}, category {}, auto-healed {}, {} action step(s)",
                inc.incident_id,
                inc.check,
                inc.category,
                inc.auto_healed.map_or("?".into(), |h| h.to_string()),
                inc.actions.len()
            ),
        );
        self.say("collector", "$ netmedic-collector incidents");
        println!("{}", stack.incidents_cli(false)?);
        if let Some(agent) = stack.agents[0].as_mut() {
            let _ = agent.kill();
        }
        Ok(())
    }
}
