//! The netmedic stack inside a lab: the real collector binary in the ISP namespace and the real
//! agent binary in each CPE namespace, with generated configs, and helpers to ask the
//! collector what it stored. Used by the end-to-end tests and the demo.

use crate::{
    COLLECTOR_IP, Cpe, HttpResponse, Lab, LabError, LabProcess, Result, WAN_IFACE, http_get,
    http_request, wait_for,
};
use netmedic_proto::{IncidentPage, IncidentView};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Port the lab's collector listens on (inside the ISP namespace).
pub const COLLECTOR_PORT: u16 = 8440;

/// How the agents are configured.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `agent.mode`: enforce, dry_run or off.
    pub mode: String,
    /// `checks.default_route.interval_secs`.
    pub check_interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Extra TOML appended to every agent config.
    pub extra_agent_toml: String,
    /// Address the collector listens on in the ISP namespace (default [`COLLECTOR_IP`]). The
    /// gateway address 100.64.0.1 keeps it reachable while `isp.cut_upstream()` drops traffic to
    /// the upstream ranges (which include `COLLECTOR_IP`).
    pub collector_ip: Option<std::net::Ipv4Addr>,
    /// Extra TOML appended to the collector config (e.g. an `[outage]` section).
    pub extra_collector_toml: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            mode: "enforce".into(),
            check_interval_secs: 1,
            fail_threshold: 2,
            ok_threshold: 2,
            extra_agent_toml: String::new(),
            collector_ip: None,
            extra_collector_toml: String::new(),
        }
    }
}

/// Starts the real agent binary in `cpe`'s namespace on `config`, logging at debug level to `log`.
pub fn spawn_agent(cpe: &Cpe, config: &Path, log: &Path) -> Result<LabProcess> {
    let bin = bin_path("netmedic-agent")?;
    cpe.ns.spawn_with_env(
        &bin.display().to_string(),
        &["run", "--config", &config.display().to_string()],
        &[("NETMEDIC_LOG", "debug")],
        log,
    )
}

/// Finds a workspace binary (`netmedic-agent`, `netmedic-collector`) next to the running
/// executable: test executables live in `target/<profile>/deps/`, binaries one level up.
/// `NETMEDIC_BIN_DIR` overrides the search.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("NETMEDIC_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_path_buf());
        if let Some(up) = dir.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Setup(format!(
                "binary {name} not found in {dirs:?}: run `cargo build --workspace --bins` first"
            ))
        })
}

/// A running collector and one agent per CPE.
#[derive(Debug)]
pub struct Stack<'a> {
    lab: &'a Lab,
    pub collector: LabProcess,
    pub collector_addr: SocketAddr,
    pub collector_config: PathBuf,
    pub db_path: PathBuf,
    /// `None` where the agent was stopped.
    pub agents: Vec<Option<LabProcess>>,
    pub agent_configs: Vec<PathBuf>,
    /// An operator API token for the query/admin API (`token add lab-operator`).
    pub api_token: String,
    options: StackOptions,
}

impl<'a> Stack<'a> {
    /// Starts the collector and an agent on every CPE, waiting until the collector answers.
    pub fn start(lab: &'a Lab, options: StackOptions) -> Result<Self> {
        let collector_ip = options.collector_ip.unwrap_or(COLLECTOR_IP);
        let collector_addr = SocketAddr::from((collector_ip, COLLECTOR_PORT));
        let db_path = lab.dir().join("collector.sqlite");
        let collector_config = lab.dir().join("collector.toml");
        std::fs::write(
            &collector_config,
            format!(
                "[server]\nlisten_addr = \"{collector_addr}\"\n\n[storage]\nurl = \"sqlite://{}\"\n{}",
                db_path.display(),
                options.extra_collector_toml
            ),
        )
        .map_err(|e| LabError::Setup(format!("writing collector config: {e}")))?;
        let collector_bin = bin_path("netmedic-collector")?;
        let cfg = collector_config.display().to_string();
        let collector = lab.isp().ns.spawn(
            &collector_bin.display().to_string(),
            &["serve", "--config", &cfg],
            lab.log_path("collector"),
        )?;
        let mut stack = Stack {
            lab,
            collector,
            collector_addr,
            collector_config,
            db_path,
            agents: Vec::new(),
            agent_configs: Vec::new(),
            api_token: String::new(),
            options,
        };
        stack.wait_collector_ready(Duration::from_secs(30))?;
        let out = std::process::Command::new(&collector_bin)
            .args([
                "token",
                "add",
                "lab-operator",
                "--role",
                "operator",
                "--config",
                &cfg,
            ])
            .output()
            .map_err(|e| LabError::Setup(format!("running netmedic-collector token add: {e}")))?;
        if !out.status.success() {
            return Err(LabError::Setup(format!(
                "netmedic-collector token add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        stack.api_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        for cpe in lab.cpes() {
            // Enrol the agent: `device add` prints only the token; the agent sends it as
            // `Authorization: Bearer` from a 0600 token file.
            let id = format!("lab-cpe-{}", cpe.index);
            let out = std::process::Command::new(&collector_bin)
                .args(["device", "add", &id, "--config", &cfg])
                .output()
                .map_err(|e| {
                    LabError::Setup(format!("running netmedic-collector device add: {e}"))
                })?;
            if !out.status.success() {
                return Err(LabError::Setup(format!(
                    "netmedic-collector device add {id} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let token_path = lab.dir().join(format!("agent{}.token", cpe.index));
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&token_path)
                    .and_then(|mut f| f.write_all(&out.stdout).map(|()| f))
                    .map_err(|e| {
                        LabError::Setup(format!("writing {}: {e}", token_path.display()))
                    })?;
                f.flush().map_err(|e| {
                    LabError::Setup(format!("writing {}: {e}", token_path.display()))
                })?;
            }
            let path = stack.write_agent_config(cpe)?;
            stack.agent_configs.push(path);
            stack.agents.push(None);
            stack.start_agent(cpe.index)?;
        }
        Ok(stack)
    }

    fn wait_collector_ready(&mut self, timeout: Duration) -> Result<()> {
        let addr = self.collector_addr;
        let ns = &self.lab.isp().ns;
        let collector = &mut self.collector;
        wait_for(
            "collector /readyz answers 200",
            timeout,
            Duration::from_millis(100),
            || {
                if !collector.is_running() {
                    return Err(format!("collector exited: {}", collector.log_tail(20)));
                }
                match ns.run(|| http_get(addr, "/readyz")) {
                    Ok(Ok(r)) if r.status == 200 => Ok(()),
                    Ok(Ok(r)) => Err(format!("status {}", r.status)),
                    Ok(Err(e)) | Err(e) => Err(e.to_string()),
                }
            },
        )
    }

    /// The agent config for a CPE, written into the lab dir.
    fn write_agent_config(&self, cpe: &Cpe) -> Result<PathBuf> {
        let o = &self.options;
        let state = self.lab.dir().join(format!("agent{}-state", cpe.index));
        let text = format!(
            r#"# generated by the netmedic lab
[agent]
id = "lab-cpe-{idx}"
state_dir = "{state}"
mode = "{mode}"
firmware_version = "lab"

[collector]
url = "http://{collector}"
token_file = "{token}"
request_timeout_secs = 5
max_backoff_secs = 2
start_delay_max_secs = 0

[wan]
interface = "{wan}"
lease_file = "{lease}"

[checks.default_route]
interval_secs = {interval}
fail_threshold = {fail}
ok_threshold = {ok}
ping_timeout_ms = 500
ping_count = 2
{extra}"#,
            idx = cpe.index,
            state = state.display(),
            mode = o.mode,
            collector = self.collector_addr,
            token = self
                .lab
                .dir()
                .join(format!("agent{}.token", cpe.index))
                .display(),
            wan = WAN_IFACE,
            lease = cpe.lease_file.display(),
            interval = o.check_interval_secs,
            fail = o.fail_threshold,
            ok = o.ok_threshold,
            extra = o.extra_agent_toml,
        );
        let path = self.lab.dir().join(format!("agent{}.toml", cpe.index));
        std::fs::write(&path, text)
            .map_err(|e| LabError::Setup(format!("writing agent config: {e}")))?;
        Ok(path)
    }

    /// Starts (or restarts) the agent of CPE `i` and waits until it runs its checks.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let log = self.lab.log_path(&format!("agent{i}"));
        let mut agent = spawn_agent(self.lab.cpe(i), &self.agent_configs[i], &log)?;
        wait_for(
            "agent starts its checks",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                if !agent.is_running() {
                    return Err(format!("agent exited: {}", agent.log_tail(20)));
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("check default_route:") {
                    Ok(())
                } else {
                    Err(agent.log_tail(5))
                }
            },
        )?;
        self.agents[i] = Some(agent);
        Ok(())
    }

    /// The log of agent `i`.
    pub fn agent_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.lab.log_path(&format!("agent{i}"))).unwrap_or_default()
    }

    /// Waits until agent `i`'s log contains every one of `what`; the error shows the log's
    /// tail (without DEBUG lines).
    pub fn wait_agent_log(&self, i: usize, what: &[&str], timeout: Duration) -> Result<()> {
        wait_for(
            &format!("agent {i}'s log to show {what:?}"),
            timeout,
            Duration::from_millis(50),
            || {
                let log = self.agent_log(i);
                if what.iter().all(|w| log.contains(w)) {
                    Ok(())
                } else {
                    Err(crate::heal_faults::tail(&log))
                }
            },
        )
    }

    /// All incidents the collector stored (first page, up to 500), via its HTTP API.
    pub fn incidents(&self) -> Result<IncidentPage> {
        let resp = self.api("GET", "/api/v1/incidents?limit=500", None)?;
        if resp.status != 200 {
            return Err(LabError::Setup(format!(
                "GET /api/v1/incidents: {} {}",
                resp.status, resp.body
            )));
        }
        serde_json::from_str(&resp.body)
            .map_err(|e| LabError::Setup(format!("unreadable incident page: {e}: {}", resp.body)))
    }

    /// A request to the collector's query/admin API with the stack's operator token, sent from
    /// the ISP namespace. `body` is JSON.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Result<HttpResponse> {
        let addr = self.collector_addr;
        let auth = format!("Bearer {}", self.api_token);
        self.lab.isp().ns.run(|| {
            http_request(
                addr,
                method,
                path,
                &[("Authorization", auth.as_str())],
                body.map(|b| ("application/json", b.as_bytes())),
            )
        })?
    }

    /// Waits until the collector holds an incident matching `pred`.
    pub fn wait_incident(
        &self,
        desc: &str,
        timeout: Duration,
        pred: impl Fn(&IncidentView) -> bool,
    ) -> Result<IncidentView> {
        wait_for(desc, timeout, Duration::from_millis(200), || {
            match self.incidents() {
                Ok(page) => match page.incidents.iter().find(|i| pred(i)) {
                    Some(i) => Ok(i.clone()),
                    None => Err(format!(
                        "{} incident(s) stored: {:?}",
                        page.incidents.len(),
                        summarize(&page)
                    )),
                },
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Runs `netmedic-collector incidents` against the stack's database and returns its output.
    pub fn incidents_cli(&self, json: bool) -> Result<String> {
        let bin = bin_path("netmedic-collector")?;
        let cfg = self.collector_config.display().to_string();
        let mut args = vec!["incidents", "--config", cfg.as_str()];
        if json {
            args.push("--json");
        }
        let out = std::process::Command::new(bin)
            .args(&args)
            .output()
            .map_err(|e| LabError::Setup(format!("running netmedic-collector incidents: {e}")))?;
        if !out.status.success() {
            return Err(LabError::Setup(format!(
                "netmedic-collector incidents failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The lab the stack runs in.
    pub fn lab(&self) -> &'a Lab {
        self.lab
    }
}

/// One line per incident (agent, check/cause, status, auto-healed), for failure messages.
pub fn summarize(page: &IncidentPage) -> Vec<String> {
    page.incidents
        .iter()
        .map(|i| {
            format!(
                "{}:{}/{}:{:?}:healed={:?}",
                i.agent_id, i.check, i.cause, i.status, i.auto_healed
            )
        })
        .collect()
}

/// Runs the real `netmedic-agent check --json --only CHECK` inside a CPE's namespace with a
/// config made of the lab's basics (agent id, collector, WAN, lease file) plus `extra_toml`
/// (typically a `[checks.CHECK]` table), and returns the observation of that check.
///
/// Every check test goes through this: real binary, real kernel, real fault.
pub fn agent_check(
    lab: &Lab,
    cpe: usize,
    check: &str,
    extra_toml: &str,
) -> Result<serde_json::Value> {
    let c = lab.cpe(cpe);
    let dir = lab.dir().join(format!("check-{check}-{cpe}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| LabError::Setup(format!("{}: {e}", dir.display())))?;
    let config = dir.join("agent.toml");
    let text = format!(
        "[agent]\nid = \"lab-cpe-{cpe}\"\nstate_dir = \"{state}\"\n\n[collector]\nurl = \"http://{COLLECTOR_IP}:{COLLECTOR_PORT}\"\n\n\
         [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n{extra_toml}\n",
        state = dir.join("state").display(),
        lease = c.lease_file.display(),
    );
    std::fs::write(&config, text)
        .map_err(|e| LabError::Setup(format!("{}: {e}", config.display())))?;
    let bin = bin_path("netmedic-agent")?.display().to_string();
    let cfg = config.display().to_string();
    let out =
        c.ns.exec_unchecked(&[&bin, "check", "--config", &cfg, "--json", "--only", check])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        LabError::Setup(format!(
            "netmedic-agent check ({}) printed no JSON ({e}): {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    parsed
        .as_array()
        .and_then(|a| a.iter().find(|o| o["check"] == check))
        .cloned()
        .ok_or_else(|| {
            LabError::Setup(format!(
                "no {check} observation in {parsed} (is it enabled?)"
            ))
        })
}
