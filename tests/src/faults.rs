//! Faults and services for the host-health checks (`icmp`, `mtu`, `conntrack`, `service`,
//! `clock`): a gateway that ignores pings, a path-MTU blackhole, a LAN-side dnsmasq in the CPE
//! that can crash, a conntrack filler, and an HTTP server whose `Date` header is skewed.
//!
//! Everything happens inside the lab's namespaces, to lab addresses.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;

use crate::error::{LabError, Result, io_ctx, sys_ctx};
use crate::{Cpe, ISP_GATEWAY, Isp, LAN_IFACE, Lab, LabProcess, NETNS_RUN_DIR, Netns, wait_for};

const POLL: Duration = Duration::from_millis(50);

/// Fault: the ISP's gateway stops answering ICMP echo requests (everything else it does —
/// routing, DHCP, DNS — keeps working), like a gateway whose control plane filters ICMP or
/// is overloaded. Idempotent; undo with [`restore_gateway_icmp`].
pub fn silence_gateway_icmp(isp: &Isp) -> Result<()> {
    isp.ns.nft(&format!(
        "table inet nmfault_gw {{}}\ndelete table inet nmfault_gw\ntable inet nmfault_gw {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip daddr {ISP_GATEWAY} icmp type echo-request drop\n }}\n}}\n"
    ))
}

/// Undoes [`silence_gateway_icmp`]. Idempotent.
pub fn restore_gateway_icmp(isp: &Isp) -> Result<()> {
    isp.ns
        .nft("table inet nmfault_gw {}\ndelete table inet nmfault_gw\n")
}

/// Fault: a path-MTU blackhole. The ISP silently drops every IPv4 packet from `cpe` longer
/// than `max_ip_bytes` (nftables `netdev` ingress on the ISP end of the CPE's link) and sends
/// no ICMP "fragmentation needed", so the CPE cannot learn the path MTU. Replaces an earlier
/// setting; coexists with [`Isp::inject_loss_percent`].
pub fn mtu_blackhole(isp: &Isp, cpe: &Cpe, max_ip_bytes: u16) -> Result<()> {
    let table = format!("nmfault_mtu_{}", cpe.isp_port);
    isp.ns.nft(&format!(
        "table netdev {table} {{}}\ndelete table netdev {table}\ntable netdev {table} {{\n chain ingress {{\n  type filter hook ingress device \"{}\" priority 10; policy accept;\n  meta protocol ip ip length > {max_ip_bytes} drop\n }}\n}}\n",
        cpe.isp_port
    ))
}

/// Undoes [`mtu_blackhole`]. Idempotent.
pub fn clear_mtu_blackhole(isp: &Isp, cpe: &Cpe) -> Result<()> {
    let table = format!("nmfault_mtu_{}", cpe.isp_port);
    isp.ns.nft(&format!(
        "table netdev {table} {{}}\ndelete table netdev {table}\n"
    ))
}

/// The CPE namespace's connection-tracking count (`nf_conntrack_count`, per namespace).
pub fn conntrack_count(cpe: &Cpe) -> Result<u64> {
    let out = cpe
        .ns
        .exec(&["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|e| crate::error::parse_err("nf_conntrack_count", e))
}

/// Fault: fills the CPE's connection-tracking table the way a game console or a P2P client
/// does — the LAN host sends one UDP datagram to each of `flows` ports of `dest`, each a new
/// flow the CPE tracks and NATs. Returns once the CPE tracks at least `flows` more entries
/// than before (unreplied UDP entries live 30 s by default: assert within that).
pub fn fill_conntrack(cpe: &Cpe, dest: Ipv4Addr, flows: u16) -> Result<u64> {
    let before = conntrack_count(cpe)?;
    cpe.lan_ns.run(|| -> Result<()> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .map_err(io_ctx("binding the conntrack filler socket"))?;
        for i in 0..flows {
            sock.send_to(b"x", (dest, 20_000 + i))
                .map_err(io_ctx(format!("sending to {dest}:{}", 20_000 + i)))?;
        }
        Ok(())
    })??;
    let want = before + u64::from(flows);
    wait_for(
        &format!("{} to track {want} connections", cpe.ns.name()),
        Duration::from_secs(10),
        POLL,
        || match conntrack_count(cpe) {
            Ok(n) if n >= want => Ok(n),
            Ok(n) => Err(format!("{n} tracked")),
            Err(e) => Err(e.to_string()),
        },
    )
}

/// The "dnsmasq on the LAN" of a CPE (docs/design.md, "The lab"): DHCP and DNS (forwarding to the ISP)
/// for the LAN host, running in the CPE namespace with a pidfile, as on a real router.
/// Stopped on drop.
#[derive(Debug)]
pub struct LanDnsmasq {
    process: Option<LabProcess>,
    pidfile: PathBuf,
}

impl LanDnsmasq {
    /// Starts it on the CPE's `lan` interface and waits until its pidfile names it.
    pub fn start(lab: &Lab, cpe: &Cpe) -> Result<Self> {
        let i = cpe.index;
        let pidfile = lab.dir().join(format!("cpe{i}-lan-dnsmasq.pid"));
        let pid_arg = format!("--pid-file={}", pidfile.display());
        let leases = format!(
            "--dhcp-leasefile={}",
            lab.dir().join(format!("cpe{i}-lan.leases")).display()
        );
        let o = cpe.lan_ip.octets();
        let range = format!(
            "--dhcp-range={}.{}.{}.100,{}.{}.{}.199,255.255.255.0,1h",
            o[0], o[1], o[2], o[0], o[1], o[2]
        );
        let iface = format!("--interface={LAN_IFACE}");
        let server = format!("--server={ISP_GATEWAY}");
        let args = [
            "--conf-file=/dev/null",
            "--keep-in-foreground",
            "--log-facility=-",
            &pid_arg,
            "--user=root",
            "--group=root",
            &iface,
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            &server,
            &range,
            &leases,
        ];
        let mut process = cpe.ns.spawn(
            "dnsmasq",
            &args,
            lab.log_path(&format!("cpe{i}-lan-dnsmasq")),
        )?;
        let pid = process.pid();
        let ready = wait_for(
            &format!("LAN dnsmasq of {} to write its pidfile", cpe.ns.name()),
            Duration::from_secs(10),
            POLL,
            || {
                if !process.is_running() {
                    return Err(format!("dnsmasq exited: {}", process.log_tail(10)));
                }
                match std::fs::read_to_string(&pidfile) {
                    Ok(t) if t.trim() == pid.to_string() => Ok(()),
                    Ok(t) => Err(format!("pidfile holds {:?}", t.trim())),
                    Err(e) => Err(e.to_string()),
                }
            },
        );
        ready?;
        Ok(Self {
            process: Some(process),
            pidfile,
        })
    }

    /// The pidfile it writes.
    pub fn pidfile(&self) -> &Path {
        &self.pidfile
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(LabProcess::pid)
    }

    /// Fault: dnsmasq crashes (SIGKILL: the pidfile stays behind, naming a dead pid). Returns
    /// once it has exited and been reaped.
    pub fn crash(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.signal(Signal::SIGKILL)?;
            if p.wait_exit(Duration::from_secs(5)).is_none() {
                return Err(LabError::Setup(format!("{} did not die", p.desc())));
            }
        }
        Ok(())
    }
}

/// An HTTP server in a lab namespace whose responses carry a `Date` header `skew_secs` off
/// the real time (negative: in the past) — a reference clock for the `clock` check. Every
/// request gets `200 ok`. Stopped on drop.
#[derive(Debug)]
pub struct SkewedHttpd {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SkewedHttpd {
    /// Binds `addr` inside `ns` (e.g. the ISP namespace and an address on its `lo`) and serves
    /// from a background thread that joined the namespace.
    pub fn start(ns: &Netns, addr: SocketAddr, skew_secs: i64) -> Result<Self> {
        let path = Path::new(NETNS_RUN_DIR).join(ns.name());
        let handle = File::open(&path).map_err(io_ctx(format!("opening {}", path.display())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let name = ns.name().to_owned();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("httpd-{name}"))
            .spawn(move || {
                let bound = setns(&handle, CloneFlags::CLONE_NEWNET)
                    .map_err(sys_ctx(format!("setns into {name}")))
                    .and_then(|()| {
                        let l =
                            TcpListener::bind(addr).map_err(io_ctx(format!("binding {addr}")))?;
                        l.set_nonblocking(true)
                            .map_err(io_ctx("non-blocking listener"))?;
                        Ok(l)
                    });
                let listener = match bound {
                    Ok(l) => {
                        let _ = tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, skew_secs),
                        // Poll for the stop flag between connections.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(io_ctx("spawning the httpd thread"))?;
        let started = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| LabError::Setup(format!("httpd on {addr}: {e}")))?;
        let server = Self {
            addr,
            stop,
            thread: Some(thread),
        };
        started.map(|()| server)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/healthz`.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }
}

impl Drop for SkewedHttpd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, skew_secs: i64) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let resp = format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
        http_date(now + skew_secs)
    );
    let _ = stream.write_all(resp.as_bytes());
}

/// Formats Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_835_481_599), "Tue, 29 Feb 2028 23:59:59 GMT");
    }
}
