//! [`Netns`]: a named network namespace — run commands in it, spawn processes in it,
//! run Rust closures inside it, and query its routes and addresses.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use nix::sched::{CloneFlags, setns};
use serde_json::Value;

use crate::error::{LabError, Result, io_ctx, parse_err, sys_ctx};
use crate::process::LabProcess;

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A named network namespace (as in `ip netns list`). Cheap to clone: just the name.
///
/// Commands started through it go through `ip netns exec`, which also bind-mounts
/// the files in `/etc/netns/<name>/` over `/etc/` for that command (that is how each
/// namespace gets its own `/etc/resolv.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
}

/// A route as reported by `ip -j route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `default` or a prefix such as `100.64.0.0/16`.
    pub dst: String,
    /// The next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The outgoing interface.
    pub dev: String,
}

/// An IPv4 address on an interface, as reported by `ip -j -4 addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name.
    pub ifname: String,
    /// The address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
}

impl Netns {
    /// Refers to an existing namespace by name (does not create it).
    pub fn from_name(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// Creates the namespace (`ip netns add`) and brings its loopback up.
    pub(crate) fn create(name: &str) -> Result<Self> {
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Self::from_name(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the namespace still exists.
    pub fn exists(&self) -> bool {
        Path::new(NETNS_RUN_DIR).join(&self.name).exists()
    }

    /// Runs `args[0] args[1..]` inside the namespace (`ip netns exec NAME ...`) and waits
    /// for it. A non-zero exit is an error ([`LabError::Command`], with stderr).
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        run_checked(&mut self.command(args))
    }

    /// Like [`exec`](Self::exec) but a non-zero exit is not an error: check
    /// `output.status` yourself.
    pub fn exec_unchecked(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .output()
            .map_err(io_ctx(format!("running {}", describe(&cmd))))
    }

    /// Runs `args[0] args[1..]` inside the namespace with `stdin` fed to it.
    pub fn exec_with_stdin(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let mut cmd = self.command(args);
        let desc = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_ctx(format!("spawning {desc}")))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(io_ctx(format!("writing stdin of {desc}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io_ctx(format!("waiting for {desc}")))?;
        check(desc, out)
    }

    /// Runs `ip -n NAME <args>` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run_checked(Command::new("ip").args(["-n", &self.name]).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies an nftables script (`nft -f -`) inside the namespace.
    pub fn nft(&self, script: &str) -> Result<()> {
        self.exec_with_stdin(&["nft", "-f", "-"], script).map(drop)
    }

    /// Sets a sysctl inside the namespace (e.g. `net.ipv4.ip_forward`, `1`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Starts `program args...` inside the namespace, in its own process group, with
    /// stdout and stderr appended to `log_path` (created if missing). The returned
    /// [`LabProcess`] kills and reaps it on drop.
    pub fn spawn(
        &self,
        program: &str,
        args: &[&str],
        log_path: impl AsRef<Path>,
    ) -> Result<LabProcess> {
        self.spawn_with_env(program, args, &[], log_path)
    }

    /// Like [`spawn`](Self::spawn) with extra environment variables.
    pub fn spawn_with_env(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log_path: impl AsRef<Path>,
    ) -> Result<LabProcess> {
        use std::os::unix::process::CommandExt as _;

        let log_path = log_path.as_ref();
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_ctx(format!("creating {}", parent.display())))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(io_ctx(format!("opening log {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_ctx(format!("cloning log {}", log_path.display())))?;
        let mut full = vec![program];
        full.extend_from_slice(args);
        let mut cmd = self.command(&full);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let desc = describe(&cmd);
        // `ip netns exec` execs the program in place (no extra fork), so the pid we get
        // is the program's own.
        let child = cmd.spawn().map_err(io_ctx(format!("spawning {desc}")))?;
        Ok(LabProcess::new(child, desc, log_path.to_path_buf()))
    }

    /// Runs `f` on a fresh thread that has joined this namespace's network stack
    /// (`setns(CLONE_NEWNET)`), and returns its result. Sockets opened inside `f` live in
    /// the namespace; the calling thread (and the host namespace) are untouched.
    ///
    /// Only the network namespace changes: the file system, including `/etc/resolv.conf`,
    /// is the host's, so resolve names yourself (or use addresses). A panic in `f` is
    /// propagated to the caller.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = Path::new(NETNS_RUN_DIR).join(&self.name);
        let handle = File::open(&path).map_err(io_ctx(format!("opening {}", path.display())))?;
        let name = self.name.clone();
        std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name(format!("netns-{name}"))
                .spawn_scoped(s, move || -> Result<T> {
                    setns(&handle, CloneFlags::CLONE_NEWNET)
                        .map_err(sys_ctx(format!("setns into {name}")))?;
                    Ok(f())
                })
                .map_err(io_ctx("spawning a netns thread"))?;
            match thread.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// One ICMP echo from inside the namespace (busybox `ping -c1 -W1`); `Ok(true)` if a
    /// reply came back.
    pub fn ping(&self, addr: &str) -> Result<bool> {
        Ok(self
            .exec_unchecked(&["busybox", "ping", "-c", "1", "-W", "1", addr])?
            .status
            .success())
    }

    /// Pids of the processes living in the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let out = run_checked(Command::new("ip").args(["netns", "pids", &self.name]))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// The IPv4 default route, if there is one (`ip -j route show default`).
    pub fn default_route(&self) -> Result<Option<Route>> {
        Ok(self.routes(&["default"])?.into_iter().next())
    }

    /// IPv4 routes of the main table matching `selector` (e.g. `&["default"]`,
    /// `&["dev", "wan"]`, `&[]` for all).
    pub fn routes(&self, selector: &[&str]) -> Result<Vec<Route>> {
        let mut args = vec!["-j", "-4", "route", "show"];
        args.extend_from_slice(selector);
        parse_routes(&self.ip(&args)?)
    }

    /// IPv4 addresses of all interfaces, or of `dev` only.
    pub fn addresses(&self, dev: Option<&str>) -> Result<Vec<IfAddr>> {
        let mut args = vec!["-j", "-4", "addr", "show"];
        if let Some(dev) = dev {
            args.extend(["dev", dev]);
        }
        parse_addresses(&self.ip(&args)?)
    }

    /// The MTU of `dev`.
    pub fn mtu(&self, dev: &str) -> Result<u32> {
        let v = parse_json(&self.ip(&["-j", "link", "show", "dev", dev])?, "ip -j link")?;
        v.get(0)
            .and_then(|l| l.get("mtu"))
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| parse_err("ip -j link", format!("no mtu for {dev}")))
    }

    /// Whether `dev` has carrier (`LOWER_UP` in its flags).
    pub fn has_carrier(&self, dev: &str) -> Result<bool> {
        let v = parse_json(&self.ip(&["-j", "link", "show", "dev", dev])?, "ip -j link")?;
        Ok(v.get(0)
            .and_then(|l| l.get("flags"))
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("LOWER_UP"))))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }
}

/// Runs a command to completion; a non-zero exit becomes [`LabError::Command`].
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Output> {
    let desc = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_ctx(format!("running {desc}")))?;
    check(desc, out)
}

fn check(desc: String, out: Output) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(LabError::Command {
        cmd: desc,
        status: out.status.to_string(),
        stderr,
    })
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_str(text).map_err(|e| parse_err(what, e))
}

fn parse_routes(text: &str) -> Result<Vec<Route>> {
    let v = parse_json(text, "ip -j route")?;
    let arr = v
        .as_array()
        .ok_or_else(|| parse_err("ip -j route", "not an array"))?;
    arr.iter()
        .map(|r| {
            let gateway = match r.get("gateway").and_then(Value::as_str) {
                Some(g) => Some(g.parse().map_err(|e| parse_err("route gateway", e))?),
                None => None,
            };
            Ok(Route {
                dst: r
                    .get("dst")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                gateway,
                dev: r
                    .get("dev")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

fn parse_addresses(text: &str) -> Result<Vec<IfAddr>> {
    let v = parse_json(text, "ip -j addr")?;
    let arr = v
        .as_array()
        .ok_or_else(|| parse_err("ip -j addr", "not an array"))?;
    let mut out = Vec::new();
    for link in arr {
        let ifname = link
            .get("ifname")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let infos = link.get("addr_info").and_then(Value::as_array);
        for info in infos.into_iter().flatten() {
            if info.get("family").and_then(Value::as_str) != Some("inet") {
                continue;
            }
            let (Some(local), Some(plen)) = (
                info.get("local").and_then(Value::as_str),
                info.get("prefixlen").and_then(Value::as_u64),
            ) else {
                continue;
            };
            out.push(IfAddr {
                ifname: ifname.to_owned(),
                addr: local
                    .parse()
                    .map_err(|e| parse_err("interface address", e))?,
                prefix_len: u8::try_from(plen).map_err(|e| parse_err("prefix length", e))?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_route() {
        let r =
            parse_routes(r#"[{"dst":"default","gateway":"100.64.0.1","dev":"wan","flags":[]}]"#)
                .unwrap();
        assert_eq!(
            r,
            vec![Route {
                dst: "default".into(),
                gateway: Some(Ipv4Addr::new(100, 64, 0, 1)),
                dev: "wan".into()
            }]
        );
        assert!(parse_routes("").unwrap().is_empty());
        assert!(parse_routes("[]").unwrap().is_empty());
    }

    #[test]
    fn parses_addresses() {
        let j = r#"[{"ifindex":2,"ifname":"wan","addr_info":[{"family":"inet","local":"100.64.1.7","prefixlen":16},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        let a = parse_addresses(j).unwrap();
        assert_eq!(
            a,
            vec![IfAddr {
                ifname: "wan".into(),
                addr: Ipv4Addr::new(100, 64, 1, 7),
                prefix_len: 16
            }]
        );
    }
}
