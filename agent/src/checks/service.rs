//! `service`: the configured daemons (dnsmasq, hostapd, the firmware's own) are alive.
//!
//! A service is found through its pidfile (pid → `/proc/PID` exists, is not a zombie, and its
//! `comm` matches `process` when given) or, without a pidfile, by scanning `/proc/*/comm` for
//! `process`. With `same_netns`, only processes in the agent's own network namespace count
//! (`/proc/PID/ns/net` equals `/proc/self/ns/net`): /proc shows every process of the PID
//! namespace, so on a host running several routers (or in the lab) another namespace's dnsmasq
//! must not make a dead one look alive.

use super::{Context, Observation, check_settings, common_problems};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &["service_down"];

/// `comm` is the first 15 bytes of the executable's name.
const COMM_LEN: usize = 15;

/// One `[[checks.service.services]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Shown in evidence and used by `restart_service`'s allow-list.
    pub name: String,
    /// The daemon's pidfile.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// The process name (`/proc/PID/comm`, at most 15 characters are compared).
    #[serde(default)]
    pub process: Option<String>,
    /// Only count a process in the agent's network namespace.
    #[serde(default)]
    pub same_netns: bool,
}

/// `[checks.service]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    pub services: Vec<ServiceSpec>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 15,
            fail_threshold: 2,
            ok_threshold: 1,
            services: Vec::new(),
        }
    }
}

check_settings!(ServiceConfig);

impl ServiceConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "service",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        for (i, s) in self.services.iter().enumerate() {
            let field = |f: &str| format!("checks.service.services[{i}].{f}");
            if s.name.is_empty() || s.name.len() > 64 {
                out.push(Problem::new(field("name"), "must be 1-64 characters"));
            } else if self.services[..i].iter().any(|o| o.name == s.name) {
                out.push(Problem::new(
                    field("name"),
                    format!("{:?} is listed twice", s.name),
                ));
            }
            match (&s.pidfile, &s.process) {
                (None, None) => out.push(Problem::new(
                    field("pidfile"),
                    "set pidfile, process, or both",
                )),
                (Some(p), _) if !p.is_absolute() => {
                    out.push(Problem::new(field("pidfile"), "must be an absolute path"));
                }
                _ => {}
            }
            if let Some(p) = &s.process
                && (p.is_empty() || p.contains('/'))
            {
                out.push(Problem::new(
                    field("process"),
                    "must be a process name (no /)",
                ));
            }
        }
    }
}

/// The first integer in a pidfile.
pub fn parse_pidfile(text: &str) -> Option<u32> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

/// The state letter from `/proc/PID/stat` (`R`, `S`, `Z`, ...); the name may contain spaces
/// and parentheses, so it is found after the last `)`.
pub fn parse_stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether a process name matches `comm` as the kernel truncates it.
pub fn comm_matches(comm: &str, process: &str) -> bool {
    let want = &process.as_bytes()[..process.len().min(COMM_LEN)];
    comm.trim_end_matches('\n').as_bytes() == want
}

/// Where /proc is (a parameter so the lookup is unit-tested on a fake tree).
#[derive(Debug, Clone)]
struct Proc {
    root: PathBuf,
}

impl Proc {
    fn comm(&self, pid: u32) -> Option<String> {
        std::fs::read_to_string(self.root.join(pid.to_string()).join("comm")).ok()
    }

    /// Alive: exists and is neither a zombie nor dead.
    fn alive(&self, pid: u32) -> bool {
        std::fs::read_to_string(self.root.join(pid.to_string()).join("stat"))
            .ok()
            .and_then(|s| parse_stat_state(&s))
            .is_some_and(|st| !matches!(st, 'Z' | 'X' | 'x'))
    }

    fn netns(&self, pid: &str) -> Option<PathBuf> {
        std::fs::read_link(self.root.join(pid).join("ns/net")).ok()
    }

    fn pids(&self) -> Vec<u32> {
        std::fs::read_dir(&self.root)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Where one service was found, or why not.
fn find(proc: &Proc, s: &ServiceSpec, own_netns: Option<&Path>) -> Result<u32, String> {
    let netns_ok = |pid: u32| {
        !s.same_netns || {
            let theirs = proc.netns(&pid.to_string());
            theirs.is_some() && theirs.as_deref() == own_netns
        }
    };
    if let Some(pidfile) = &s.pidfile {
        let text = std::fs::read_to_string(pidfile)
            .map_err(|e| format!("pidfile {}: {e}", pidfile.display()))?;
        let pid = parse_pidfile(&text)
            .ok_or_else(|| format!("pidfile {} holds no pid", pidfile.display()))?;
        if !proc.alive(pid) {
            return Err(format!(
                "pidfile {} names pid {pid}, which is not running",
                pidfile.display()
            ));
        }
        if let Some(want) = &s.process {
            let comm = proc.comm(pid).unwrap_or_default();
            if !comm_matches(&comm, want) {
                return Err(format!(
                    "pid {pid} from {} is {:?}, not {want:?} (stale pidfile, pid reused)",
                    pidfile.display(),
                    comm.trim()
                ));
            }
        }
        if !netns_ok(pid) {
            return Err(format!("pid {pid} runs in another network namespace"));
        }
        return Ok(pid);
    }
    let want = s.process.as_deref().unwrap_or_default();
    let mut elsewhere = 0;
    for pid in proc.pids() {
        if proc.comm(pid).is_some_and(|c| comm_matches(&c, want)) && proc.alive(pid) {
            if netns_ok(pid) {
                return Ok(pid);
            }
            elsewhere += 1;
        }
    }
    Err(if elsewhere > 0 {
        format!("no {want:?} process in this network namespace ({elsewhere} in others)")
    } else {
        format!("no {want:?} process")
    })
}

/// The pid of one service as the check finds it in the real /proc (the agent's process
/// watcher opens a pidfd on it).
pub fn find_pid(s: &ServiceSpec) -> Result<u32, String> {
    let proc = Proc {
        root: PathBuf::from("/proc"),
    };
    find(&proc, s, proc.netns("self").as_deref())
}

#[derive(Debug, Clone)]
pub struct ServiceCheck {
    pub config: ServiceConfig,
}

impl ServiceCheck {
    pub fn new(_site: &Site, config: &ServiceConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let proc = Proc {
            root: PathBuf::from("/proc"),
        };
        self.check(&proc)
    }

    fn check(&self, proc: &Proc) -> Observation {
        let own_netns = proc.netns("self");
        let names: Vec<_> = self
            .config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let mut down = Vec::new();
        let mut evidence = Vec::new();
        for s in &self.config.services {
            match find(proc, s, own_netns.as_deref()) {
                Ok(pid) => evidence.push((s.name.clone(), format!("running, pid {pid}"))),
                Err(why) => {
                    evidence.push((s.name.clone(), format!("down: {why}")));
                    down.push(s.name.clone());
                }
            }
        }
        let up = names.len() - down.len();
        let mut o = if self.config.services.is_empty() {
            Observation::ok(CheckId::Service, "no services configured")
        } else if down.is_empty() {
            Observation::ok(
                CheckId::Service,
                format!("{} service(s) running: {}", up, names.join(", ")),
            )
        } else {
            Observation::new(
                CheckId::Service,
                CheckStatus::Failed,
                "service_down",
                format!("not running: {}", down.join(", ")),
            )
            .severity(Severity::Major)
            .hint("restart_service restarts allow-listed services; see the evidence for why each is considered down")
            .evidence("down", down.join(","))
        };
        o = o
            .category(Category::DeviceHealth)
            .value(format!("{up}/{} running", names.len()))
            .threshold("every configured service running");
        for (k, v) in evidence {
            o = o.evidence(format!("service.{k}"), v);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_pidfile("1234\n"), Some(1234));
        assert_eq!(parse_pidfile("  77  extra"), Some(77));
        assert_eq!(parse_pidfile(""), None);
        assert_eq!(parse_pidfile("0"), None);
        assert_eq!(
            parse_stat_state("42 (my (odd) daemon) S 1 42 42 0"),
            Some('S')
        );
        assert_eq!(parse_stat_state("42 (x) Z 1"), Some('Z'));
        assert!(comm_matches("dnsmasq\n", "dnsmasq"));
        assert!(comm_matches("netmedic-agent\n", "netmedic-agent"));
        assert!(comm_matches("a-very-long-dae\n", "a-very-long-daemon-name"));
        assert!(!comm_matches("dnsmasq2\n", "dnsmasq"));
    }

    /// A fake /proc with processes (pid, comm, state, netns link target).
    fn fake_proc(procs: &[(u32, &str, char, &str)]) -> (tempfile::TempDir, Proc) {
        let dir = tempfile::tempdir().unwrap();
        for (pid, comm, state, ns) in procs {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir_all(d.join("ns")).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} ({comm}) {state} 1 2 3")).unwrap();
            std::os::unix::fs::symlink(ns, d.join("ns/net")).unwrap();
        }
        let selfdir = dir.path().join("self/ns");
        std::fs::create_dir_all(&selfdir).unwrap();
        std::os::unix::fs::symlink("net:[1]", selfdir.join("net")).unwrap();
        let proc = Proc {
            root: dir.path().to_path_buf(),
        };
        (dir, proc)
    }

    fn check(services: Vec<ServiceSpec>, proc: &Proc) -> Observation {
        let o = ServiceCheck {
            config: ServiceConfig {
                services,
                ..ServiceConfig::default()
            },
        }
        .check(proc);
        crate::checks::causes::assert_declared(&o);
        o
    }

    fn spec(name: &str, pidfile: Option<PathBuf>, process: &str, same_netns: bool) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            pidfile,
            process: Some(process.into()),
            same_netns,
        }
    }

    #[test]
    fn finds_services_by_pidfile_and_name_in_our_netns() {
        let (dir, proc) = fake_proc(&[
            (10, "dnsmasq", 'S', "net:[2]"),
            (11, "hostapd", 'S', "net:[1]"),
            (12, "udhcpc", 'Z', "net:[1]"),
        ]);
        // By name: the only dnsmasq is in another namespace.
        let o = check(vec![spec("dns", None, "dnsmasq", true)], &proc);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Failed, "service_down")
        );
        assert!(o.evidence["service.dns"].contains("1 in others"), "{o:?}");
        let o = check(vec![spec("dns", None, "dnsmasq", false)], &proc);
        assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
        // A zombie is dead.
        let o = check(vec![spec("dhcp", None, "udhcpc", false)], &proc);
        assert_eq!(o.status, CheckStatus::Failed);
        // Pidfiles: good, stale (pid reused by another program), missing.
        let pf = dir.path().join("hostapd.pid");
        std::fs::write(&pf, "11\n").unwrap();
        let o = check(vec![spec("wifi", Some(pf.clone()), "hostapd", true)], &proc);
        assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
        assert_eq!(o.evidence["service.wifi"], "running, pid 11");
        let o = check(vec![spec("wifi", Some(pf), "dnsmasq", false)], &proc);
        assert!(
            o.evidence["service.wifi"].contains("stale pidfile"),
            "{o:?}"
        );
        let o = check(
            vec![spec("x", Some(dir.path().join("none.pid")), "x", false)],
            &proc,
        );
        assert_eq!(o.status, CheckStatus::Failed);
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        ServiceConfig {
            services: vec![
                ServiceSpec {
                    name: "a".into(),
                    pidfile: None,
                    process: None,
                    same_netns: false,
                },
                spec("a", Some("rel.pid".into()), "x/y", false),
            ],
            ..ServiceConfig::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.service.services[0].pidfile",
                "checks.service.services[1].name",
                "checks.service.services[1].pidfile",
                "checks.service.services[1].process"
            ]
        );
    }
}
