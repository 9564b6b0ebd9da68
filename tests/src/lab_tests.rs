//! Tests of the lab against real namespaces (needs root, `ip`, dnsmasq, busybox, nft).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use crate::*;

const T: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

fn root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn netns_names() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn assert_gone(prefix: &str, dir: &std::path::Path, pids: &[i32]) {
    let left: Vec<String> = netns_names()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc.is_empty(), "/etc/netns entries left behind: {etc:?}");
    assert!(!dir.exists(), "lab dir {} left behind", dir.display());
    for &p in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok();
        assert!(!alive, "pid {p} still alive after teardown");
    }
}

fn lab_pids(lab: &Lab) -> Vec<i32> {
    lab.namespaces()
        .iter()
        .flat_map(|ns| ns.pids().unwrap())
        .collect()
}

#[test]
fn two_cpe_lab_leases_routes_dns_and_teardown() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap();
    let lab = Lab::builder().cpes(2).build().unwrap();
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_path_buf();
    assert!(prefix.starts_with("nm") && prefix.len() <= 12, "{prefix}");
    let mut wan_ips = Vec::new();

    for cpe in lab.cpes() {
        // Lease in the pool, default route via the gateway on wan.
        let ip = cpe.wan_ip().unwrap().expect("wan address");
        assert_eq!(&ip.octets()[..3], &[100, 64, 1], "{ip}");
        wan_ips.push(ip);
        let route = cpe.default_route().unwrap().expect("default route");
        assert_eq!(route.gateway, Some(ISP_GATEWAY));
        assert_eq!(route.dev, WAN_IFACE);
        let lease = cpe.lease().unwrap().expect("lease file");
        assert_eq!(lease.ip, ip);
        assert_eq!(lease.router, Some(ISP_GATEWAY));
        assert_eq!(lease.dns, vec![ISP_GATEWAY]);
        assert_eq!(lease.interface, "wan");
        assert_eq!(lease.lease_secs, u64::from(MIN_LEASE_SECS));
        let raw = std::fs::read_to_string(&cpe.lease_file).unwrap();
        assert!(raw.lines().any(|l| l == "router=100.64.0.1"), "{raw}");

        // The internet answers, from the CPE and (through NAT) from its LAN host.
        assert!(cpe.ping("192.0.2.1").unwrap());
        assert!(cpe.ping("198.51.100.1").unwrap());
        assert!(cpe.lan_ns.ping("192.0.2.1").unwrap());

        // resolv.conf: written by the udhcpc script through the bind mount.
        assert!(cpe.resolv_conf().unwrap().contains("nameserver 100.64.0.1"));
        let inside = cpe.ns.exec(&["cat", "/etc/resolv.conf"]).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&inside.stdout),
            cpe.resolv_conf().unwrap()
        );
        let looked_up = cpe.ns.exec(&["busybox", "nslookup", PROBE_NAME]).unwrap();
        assert!(String::from_utf8_lossy(&looked_up.stdout).contains("192.0.2.1"));
    }
    assert_ne!(wan_ips[0], wan_ips[1]);
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap(),
        host_resolv,
        "host resolv.conf changed"
    );

    // Sockets inside a namespace via Netns::run: HTTP from CPE 1 to a server in the ISP.
    let server_addr = SocketAddr::from((COLLECTOR_IP, 18080));
    let listener = lab
        .isp()
        .ns
        .run(|| TcpListener::bind(server_addr))
        .unwrap()
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        let body = format!("{{\"peer\":\"{}\"}}", peer.ip());
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        req
    });
    let resp = lab
        .cpe(1)
        .ns
        .run(|| http_post_json(server_addr, "/v1/x", &serde_json::json!({"a": 1})))
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json().unwrap()["peer"], wan_ips[1].to_string());
    let req = server.join().unwrap();
    assert!(req.starts_with("POST /v1/x HTTP/1.1"), "{req}");
    assert!(req.ends_with("{\"a\":1}"), "{req}");

    // Fault: the default route really goes away.
    let cpe = lab.cpe(0);
    cpe.delete_default_route().unwrap();
    assert_eq!(cpe.default_route().unwrap(), None);
    assert!(!cpe.ping("192.0.2.1").unwrap());
    assert!(
        cpe.delete_default_route().is_err(),
        "deleting a missing route must fail"
    );
    // The other CPE is unaffected.
    assert!(lab.cpe(1).default_route().unwrap().is_some());

    let pids = lab_pids(&lab);
    assert!(
        pids.len() >= 4,
        "dnsmasq x2 + udhcpc x2 expected, got {pids:?}"
    );
    drop(lab);
    assert_gone(&prefix, &dir, &pids);
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap(),
        host_resolv,
        "host resolv.conf changed"
    );
}

#[test]
fn panic_in_a_test_still_tears_down() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::builder().cpes(1).build().unwrap();
        *seen.lock().unwrap() = Some((
            lab.prefix().to_owned(),
            lab.dir().to_path_buf(),
            lab_pids(&lab),
        ));
        panic!("deliberate test failure");
    }));
    assert!(result.is_err());
    let (prefix, dir, pids) = seen.lock().unwrap().take().expect("lab was built");
    assert!(!pids.is_empty());
    assert_gone(&prefix, &dir, &pids);
}

#[test]
fn fault_injection_and_recovery() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let lab = Lab::builder().cpes(1).build().unwrap();
    let cpe = lab.cpe(0);
    let isp = lab.isp();
    let ok = |what: &str| {
        wait_for(what, T, POLL, || {
            cpe.ping("192.0.2.1").unwrap().then_some(())
        })
        .unwrap();
    };

    // Carrier.
    assert!(cpe.wan_has_carrier().unwrap());
    cpe.drop_wan_carrier().unwrap();
    wait_for("carrier off", T, POLL, || {
        (!cpe.wan_has_carrier().unwrap()).then_some(())
    })
    .unwrap();
    assert!(!cpe.ping("192.0.2.1").unwrap());
    cpe.restore_wan_carrier().unwrap();
    wait_for("carrier on", T, POLL, || {
        cpe.wan_has_carrier().unwrap().then_some(())
    })
    .unwrap();
    ok("ping after carrier restore");

    // MTU.
    cpe.set_wan_mtu(1280).unwrap();
    assert_eq!(cpe.wan_mtu().unwrap(), 1280);
    cpe.set_wan_mtu(1500).unwrap();

    // Loss: 100% drops everything from this CPE; 0 removes the rule.
    isp.inject_loss_percent(cpe, 100).unwrap();
    assert!(!cpe.ping("192.0.2.1").unwrap());
    isp.inject_loss_percent(cpe, 50).unwrap();
    isp.clear_loss(cpe).unwrap();
    ok("ping after loss cleared");
    assert!(isp.inject_loss_percent(cpe, 101).is_err());

    // Upstream cut: internet gone, gateway still there.
    isp.cut_upstream().unwrap();
    isp.cut_upstream().unwrap();
    assert!(!cpe.ping("192.0.2.1").unwrap());
    assert!(!cpe.ping("203.0.113.10").unwrap());
    assert!(cpe.ping("100.64.0.1").unwrap());
    isp.restore_upstream().unwrap();
    isp.restore_upstream().unwrap();
    ok("ping after upstream restore");

    // resolv.conf pointed at a dead resolver, seen inside the namespace.
    cpe.point_resolv_conf_at(Ipv4Addr::new(192, 0, 2, 53))
        .unwrap();
    let inside = cpe.ns.exec(&["cat", "/etc/resolv.conf"]).unwrap();
    assert!(String::from_utf8_lossy(&inside.stdout).contains("nameserver 192.0.2.53"));

    // A DHCP renew heals a deleted default route; a release removes the lease.
    cpe.delete_default_route().unwrap();
    cpe.renew_lease().unwrap();
    // The hook script sets the route before it rewrites resolv.conf: wait for both.
    wait_for(
        "default route and resolv.conf back after renew",
        T,
        POLL,
        || {
            let route = cpe.default_route().unwrap();
            let resolv = cpe.resolv_conf().unwrap();
            (route.is_some() && resolv.contains("nameserver 100.64.0.1")).then_some(())
        },
    )
    .unwrap();
    cpe.release_lease().unwrap();
    wait_for("lease file gone after release", T, POLL, || {
        cpe.lease().unwrap().is_none().then_some(())
    })
    .unwrap();
    assert_eq!(cpe.wan_ip().unwrap(), None);
    cpe.renew_lease().unwrap();
    wait_for("lease back after renew", T, POLL, || cpe.lease().unwrap()).unwrap();

    // Netns::run propagates panics and really changes the namespace only for the closure.
    let caught = std::panic::catch_unwind(|| cpe.ns.run(|| panic!("inside")));
    assert!(caught.is_err());
    assert!(!cpe.ns.run(in_host_netns).unwrap());
    assert!(in_host_netns());

    // DHCP server off and on; DNS unaffected.
    isp.stop_dhcp().unwrap();
    assert!(!isp.dhcp_running());
    assert!(isp.dns_running());
    isp.start_dhcp().unwrap();
    assert!(isp.dhcp_running());

    // Address flush, then a fresh DHCP round (restart udhcpc) heals it.
    cpe.flush_wan_address().unwrap();
    assert_eq!(cpe.wan_ip().unwrap(), None);
    assert_eq!(cpe.default_route().unwrap(), None);
    cpe.stop_udhcpc().unwrap();
    assert!(!cpe.udhcpc_running());
    cpe.start_udhcpc().unwrap();
    lab.wait_ready(Duration::from_secs(30)).unwrap();
    assert!(cpe.resolv_conf().unwrap().contains("nameserver 100.64.0.1"));
    ok("ping after re-lease");
}

#[test]
fn spawned_processes_log_and_die_with_the_lab() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let lab = Lab::builder().cpes(1).wait_ready(false).build().unwrap();
    let ns = &lab.cpe(0).ns;
    let mut echo = ns
        .spawn_with_env(
            "sh",
            &["-c", "echo hello $WHO; ip -o link show wan"],
            &[("WHO", "lab")],
            lab.log_path("echo"),
        )
        .unwrap();
    assert!(echo.wait_exit(T).is_some_and(|s| s.success()));
    let tail = echo.log_tail(10);
    assert!(tail.contains("hello lab") && tail.contains("wan"), "{tail}");

    let mut sleeper = ns.spawn("sleep", &["1000"], lab.log_path("sleep")).unwrap();
    assert!(sleeper.is_running());
    // `ip netns exec` enters the namespace after the fork: on a loaded machine the new process
    // can be seen before it switched.
    let pid = i32::try_from(sleeper.pid()).unwrap();
    wait_for("the sleeper in the CPE namespace", T, POLL, || {
        let pids = ns.pids().map_err(|e| e.to_string())?;
        if pids.contains(&pid) {
            Ok(())
        } else {
            Err(format!("{pid} not among {pids:?}"))
        }
    })
    .unwrap();
    sleeper.kill().unwrap();
    assert!(!sleeper.is_running());

    // A process the test forgot about: the lab's teardown kills it.
    let orphan = ns
        .spawn("sleep", &["1000"], lab.log_path("orphan"))
        .unwrap();
    let orphan_pid = i32::try_from(orphan.pid()).unwrap();
    std::mem::forget(orphan);
    let (prefix, dir) = (lab.prefix().to_owned(), lab.dir().to_path_buf());
    drop(lab);
    // Reap the zombie we leaked, then it must be gone.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(orphan_pid), None);
    assert_gone(&prefix, &dir, &[orphan_pid]);
}

#[test]
fn sweep_removes_namespaces_of_dead_processes_only() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let stale = format!("nm{dead_pid}x99-isp");
    let live = format!("nm{}x999-isp", std::process::id());
    for n in [&stale, &live] {
        std::process::Command::new("ip")
            .args(["netns", "add", n])
            .status()
            .unwrap();
    }
    std::fs::create_dir_all(format!("/etc/netns/{stale}")).unwrap();
    let removed = Lab::sweep_stale().unwrap();
    let names = netns_names();
    let live_still_there = names.contains(&live);
    std::process::Command::new("ip")
        .args(["netns", "del", &live])
        .status()
        .unwrap();
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!names.contains(&stale));
    assert!(live_still_there, "sweep removed a live lab's namespace");
    assert!(!std::path::Path::new(&format!("/etc/netns/{stale}")).exists());
}
