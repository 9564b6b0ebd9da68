//! `netmedic-loadgen`: the collector's load generator, run as a separate process from the
//! collector (see scripts/bench-collector.sh and scripts/bench-console.sh). `enrol` provisions N
//! devices and writes their tokens; `heartbeats` sends one heartbeat per request from many
//! keep-alive connections and prints requests/s with p50/p99 latency; `events` sends report
//! batches and prints events/s. `seed-incidents` writes N incidents (with resolutions, action
//! trails and a subscribers mapping for their devices) straight into a store through the library,
//! in big write groups; `pages` logs in to the NOC console and times its pages (incident list,
//! filters, second page, detail, overview) beside the JSON API and `/healthz`, printing
//! p50/p95/max per URL. Loopback only: the target must be a 127.0.0.0/8 or ::1 address. Every
//! load run is bounded by `--duration-secs` (`pages` by `--requests`).
//!
//! The HTTP/1.1 client is a few lines over a tokio `TcpStream` (keep-alive, Content-Length or
//! chunked bodies): light enough that the generator leaves the CPU to the collector on a 2-core
//! box.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use netmedic_collector::config::{StorageConfig, StorageUrl};
use netmedic_collector::import::{
    BadRow, ImportError, ImportFormat, ImportKind, Record, RowSource, SubscriberRow,
};
use netmedic_collector::store::{self, Auth, OpenMode, WriteItem, WriteKind, WriteOk};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, CheckStatus, EventKind, Heartbeat,
    IncidentEvent, ReportBatch, SCHEMA_VERSION, Severity, Timestamp,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(
    name = "netmedic-loadgen",
    about = "Load generator for the netmedic collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Enrol N devices (`bench-NNNNNN`) in one transaction and write `id token` lines.
    Enrol {
        #[arg(long)]
        db: String,
        #[arg(long)]
        devices: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// One heartbeat per request, round-robin over the enrolled devices.
    Heartbeats(Load),
    /// Report batches of `--batch` events (opened + resolved pairs of new incidents).
    Events {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Write N incidents of D devices (`cpe-NNNNNN`) straight into the store, with a
    /// subscribers mapping (customer, region, access node, CPE model, firmware) for the devices.
    SeedIncidents {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 1_000_000)]
        incidents: usize,
        #[arg(long, default_value_t = 100_000)]
        devices: usize,
        /// Incidents per write group (one transaction; ~1.3 events each).
        #[arg(long, default_value_t = 2_500)]
        batch: usize,
        /// Seed of the pseudo-random spread (same seed, same data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Log in to the NOC console and time its pages, the JSON API and /healthz.
    Pages {
        /// Collector address, e.g. 127.0.0.1:8440.
        #[arg(long)]
        addr: SocketAddr,
        /// NOC user (any role).
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        /// API token (any role) for the /api/v1/incidents baseline.
        #[arg(long)]
        token: String,
        /// Timed requests per URL (after one warm-up request).
        #[arg(long, default_value_t = 20)]
        requests: usize,
        /// Region for the `region=` filter (one that `seed-incidents` writes).
        #[arg(long, default_value = REGIONS[0])]
        region: String,
    },
}

#[derive(Debug, clap::Args)]
struct Load {
    /// Collector address, e.g. 127.0.0.1:8440.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    tokens: PathBuf,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Use only the first N devices of the token file (0: all).
    #[arg(long, default_value_t = 0)]
    devices: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Cmd::Enrol { db, devices, out } => enrol(&db, devices, &out).await,
            Cmd::Heartbeats(load) => run(load, None).await,
            Cmd::Events { load, batch } => run(load, Some(batch)).await,
            Cmd::SeedIncidents {
                db,
                incidents,
                devices,
                batch,
                seed,
            } => seed_incidents(&db, incidents, devices, batch, seed).await,
            Cmd::Pages {
                addr,
                user,
                password,
                token,
                requests,
                region,
            } => pages(addr, &user, &password, &token, requests, &region).await,
        }
    })
}

async fn enrol(db: &str, n: usize, out: &PathBuf) -> Result<()> {
    let url = StorageUrl::parse(db).map_err(anyhow::Error::msg)?;
    let st = store::open(&StorageConfig::with_url(url), OpenMode::CreateAndMigrate).await?;
    let mut lines = String::new();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("bench-{i:06}");
        let token = netmedic_collector::auth::new_token()?;
        lines.push_str(&format!("{id} {token}\n"));
        devices.push((id, netmedic_collector::auth::token_sha256(&token)));
    }
    for chunk in devices.chunks(5000) {
        st.enrol_devices(chunk, netmedic_collector::now()).await?;
    }
    st.close().await;
    std::fs::write(out, lines).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(s),
            addr,
        })
    }

    /// POSTs JSON; returns the status code (the body is read and dropped).
    async fn post(&mut self, path: &str, token: &str, body: &[u8]) -> Result<u16> {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        Ok(self.request("POST", path, &headers, body).await?.status)
    }
}

fn heartbeat(id: &str) -> Heartbeat {
    Heartbeat {
        schema_version: SCHEMA_VERSION,
        agent_id: id.to_owned(),
        agent_version: "0.1.0".into(),
        firmware_version: "OpenWrt 24.10".into(),
        uptime_secs: 86_400,
        sent_at: netmedic_collector::now(),
        checks: [
            (CheckId::Link, CheckStatus::Ok),
            (CheckId::DefaultRoute, CheckStatus::Ok),
            (CheckId::Dns, CheckStatus::Ok),
        ]
        .into_iter()
        .collect(),
        spool_depth: 0,
        dropped_total: 0,
    }
}

fn events(id: &str, conn: usize, n: u64, batch: usize) -> ReportBatch {
    let now = netmedic_collector::now();
    let events = (0..batch)
        .map(|k| {
            let incident = k / 2;
            let kind = if k % 2 == 0 {
                EventKind::Opened
            } else {
                EventKind::Resolved
            };
            IncidentEvent {
                event_id: format!("c{conn}-b{n}-e{k}"),
                incident_id: format!("c{conn}-b{n}-i{incident}"),
                seq: n * batch as u64 + k as u64,
                kind,
                check: CheckId::Dns,
                cause: "resolver_timeout".into(),
                category: Category::DnsFailure,
                severity: Severity::Major,
                started_at: now,
                at: now,
                summary: "resolver 192.0.2.53 times out".into(),
                evidence: [("resolver".to_owned(), "192.0.2.53".to_owned())]
                    .into_iter()
                    .collect(),
                actions: vec![],
                auto_healed: (kind == EventKind::Resolved).then_some(true),
            }
        })
        .collect();
    ReportBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: id.to_owned(),
        events,
    }
}

async fn run(load: Load, batch: Option<usize>) -> Result<()> {
    if !load.addr.ip().is_loopback() {
        bail!("refusing to load {}: loopback addresses only", load.addr);
    }
    let text = std::fs::read_to_string(&load.tokens)?;
    let mut devices: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    if load.devices > 0 {
        devices.truncate(load.devices);
    }
    if devices.is_empty() {
        bail!("no devices in {}", load.tokens.display());
    }
    let devices = Arc::new(devices);
    let next = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(load.duration_secs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..load.connections {
        let (devices, next, rejected, errors) = (
            devices.clone(),
            next.clone(),
            rejected.clone(),
            errors.clone(),
        );
        let addr = load.addr;
        tasks.spawn(async move {
            let mut lat_us: Vec<u32> = Vec::new();
            let mut ok = 0u64;
            let mut conn = match Conn::open(addr).await {
                Ok(c) => c,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return (lat_us, ok);
                }
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % devices.len();
                let (id, token) = &devices[i];
                let (path, body) = match batch {
                    None => ("/api/v1/heartbeats", serde_json::to_vec(&heartbeat(id))),
                    Some(b) => ("/api/v1/reports", serde_json::to_vec(&events(id, c, n, b))),
                };
                n += 1;
                let Ok(body) = body else { break };
                let t = Instant::now();
                match conn.post(path, token, &body).await {
                    Ok(200) => {
                        ok += 1;
                        lat_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(429 | 503) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        // A real agent backs off; a short pause keeps the generator honest.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(_) | Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat_us, ok)
        });
    }
    let mut lat: Vec<u32> = Vec::new();
    let mut ok = 0u64;
    while let Some(r) = tasks.join_next().await {
        let (l, o) = r?;
        lat.extend(l);
        ok += o;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
    };
    let what = match batch {
        None => "heartbeats".to_owned(),
        Some(b) => format!("events (batches of {b})"),
    };
    let per_req = batch.unwrap_or(1) as f64;
    println!(
        "{what}: {:.0}/s ({} requests ok in {secs:.1} s, {:.0} req/s) p50 {:.2} ms p99 {:.2} ms; \
         429/503: {}, errors: {}; {} connections, {} devices",
        ok as f64 * per_req / secs,
        ok,
        ok as f64 / secs,
        pct(0.50),
        pct(0.99),
        rejected.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        load.connections,
        devices.len()
    );
    Ok(())
}

// ---- seed-incidents -------------------------------------------------------------------------

/// Seeded incidents start within this span before now (30 days).
const SEED_SPAN_MS: i64 = 30 * 86_400_000;

/// Regions of the seeded subscribers mapping; `pages --region` defaults to the first.
const REGIONS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "central",
    "coast",
    "harbour",
    "hills",
    "lakes",
    "valley",
    "metro-a",
    "metro-b",
    "metro-c",
    "riverside",
    "airport",
    "uptown",
    "downtown",
    "forest",
    "plains",
    "islands",
];
/// Access nodes (each in one region).
const ACCESS_NODES: u64 = 200;
const CPE_MODELS: &[&str] = &[
    "fritzbox-7530",
    "archer-c6",
    "vmg3625",
    "fast-5866",
    "gl-mt3000",
];
/// Two firmware builds per CPE model (ten in all).
const FIRMWARES: &[&str] = &[
    "owrt-23.05.3",
    "owrt-23.05.5",
    "owrt-24.10.0",
    "owrt-24.10.1",
    "vendor-5.12.1",
    "vendor-5.13.0",
    "vendor-2.4.7",
    "vendor-2.5.0",
    "owrt-22.03.7",
    "owrt-24.10.2",
];
const PLANS: &[&str] = &["100m", "300m", "1g"];

/// What kinds of incident are seeded, with relative weights.
struct IncidentKind {
    weight: u64,
    check: CheckId,
    cause: &'static str,
    category: Category,
    severity: Severity,
    summary: &'static str,
    evidence: (&'static str, &'static str),
    /// The healer's first rung for this kind, if it has one.
    action: Option<ActionId>,
}

const KINDS: &[IncidentKind] = &[
    IncidentKind {
        weight: 16,
        check: CheckId::Dns,
        cause: "resolver_timeout",
        category: Category::DnsFailure,
        severity: Severity::Major,
        summary: "resolver 192.0.2.53 times out",
        evidence: ("resolver", "192.0.2.53"),
        action: Some(ActionId::ResetDns),
    },
    IncidentKind {
        weight: 5,
        check: CheckId::Service,
        cause: "dnsmasq_down",
        category: Category::DnsFailure,
        severity: Severity::Major,
        summary: "dnsmasq is not running",
        evidence: ("service", "dnsmasq"),
        action: Some(ActionId::RestartService),
    },
    IncidentKind {
        weight: 12,
        check: CheckId::Link,
        cause: "carrier_down",
        category: Category::NoInternet,
        severity: Severity::Critical,
        summary: "WAN port wan has no carrier",
        evidence: ("iface", "wan"),
        action: None,
    },
    IncidentKind {
        weight: 8,
        check: CheckId::WanAddress,
        cause: "dhcp_no_lease",
        category: Category::NoInternet,
        severity: Severity::Critical,
        summary: "no DHCP lease on wan",
        evidence: ("iface", "wan"),
        action: Some(ActionId::RenewDhcp),
    },
    IncidentKind {
        weight: 6,
        check: CheckId::DefaultRoute,
        cause: "default_route_missing",
        category: Category::NoInternet,
        severity: Severity::Critical,
        summary: "no default route",
        evidence: ("table", "main"),
        action: Some(ActionId::RestoreRoute),
    },
    IncidentKind {
        weight: 15,
        check: CheckId::Icmp,
        cause: "packet_loss",
        category: Category::SlowOrLossy,
        severity: Severity::Minor,
        summary: "12% loss to 198.51.100.1",
        evidence: ("target", "198.51.100.1"),
        action: None,
    },
    IncidentKind {
        weight: 10,
        check: CheckId::Http,
        cause: "http_probe_failed",
        category: Category::Intermittent,
        severity: Severity::Major,
        summary: "HTTP probe failed 3 times in 10 minutes",
        evidence: ("url", "http://probe.example.net/204"),
        action: None,
    },
    IncidentKind {
        weight: 5,
        check: CheckId::Mtu,
        cause: "pmtu_blackhole",
        category: Category::LocalMisconfig,
        severity: Severity::Major,
        summary: "packets above 1452 bytes are dropped",
        evidence: ("mtu", "1500"),
        action: Some(ActionId::SetMtu),
    },
    IncidentKind {
        weight: 3,
        check: CheckId::Clock,
        cause: "clock_unsynced",
        category: Category::LocalMisconfig,
        severity: Severity::Minor,
        summary: "clock is 190 s off",
        evidence: ("offset_s", "190"),
        action: None,
    },
    IncidentKind {
        weight: 4,
        check: CheckId::Conntrack,
        cause: "conntrack_full",
        category: Category::DeviceHealth,
        severity: Severity::Major,
        summary: "conntrack table 98% full",
        evidence: ("used_pct", "98"),
        action: Some(ActionId::FlushConntrack),
    },
    IncidentKind {
        weight: 5,
        check: CheckId::Resources,
        cause: "memory_low",
        category: Category::DeviceHealth,
        severity: Severity::Minor,
        summary: "free memory below 4 MiB",
        evidence: ("free_kib", "3812"),
        action: None,
    },
    IncidentKind {
        weight: 6,
        check: CheckId::ModemSnmp,
        cause: "snr_low",
        category: Category::LineDegraded,
        severity: Severity::Minor,
        summary: "downstream SNR margin 4.1 dB",
        evidence: ("snr_db", "4.1"),
        action: None,
    },
];

/// SplitMix64: a deterministic spread without a `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn kind(&mut self) -> &'static IncidentKind {
        let total: u64 = KINDS.iter().map(|k| k.weight).sum();
        let mut r = self.below(total);
        for k in KINDS {
            if r < k.weight {
                return k;
            }
            r -= k.weight;
        }
        &KINDS[0]
    }
}

fn device_id(d: usize) -> String {
    format!("cpe-{d:06}")
}

/// The subscribers mapping of the seeded devices, as an import source.
struct Subscribers {
    next: usize,
    devices: usize,
    rng: Rng,
}

impl RowSource for Subscribers {
    fn kind(&self) -> ImportKind {
        ImportKind::Subscribers
    }

    fn format(&self) -> ImportFormat {
        ImportFormat::Csv
    }

    fn next_row(
        &mut self,
    ) -> std::result::Result<Option<std::result::Result<Record, BadRow>>, ImportError> {
        if self.next >= self.devices {
            return Ok(None);
        }
        let d = self.next;
        self.next += 1;
        let node = self.rng.below(ACCESS_NODES) as usize;
        let region = REGIONS[node % REGIONS.len()];
        let model = self.rng.below(CPE_MODELS.len() as u64) as usize;
        let firmware = FIRMWARES[(model * 2 + self.rng.below(2) as usize) % FIRMWARES.len()];
        Ok(Some(Ok(Record::Subscriber(SubscriberRow {
            agent_id: device_id(d),
            customer_id: format!("cust-{d:06}"),
            region: Some(region.to_owned()),
            access_node: Some(format!("an-{region}-{:02}", node / REGIONS.len())),
            plan: Some(PLANS[d % PLANS.len()].to_owned()),
            cpe_model: Some(CPE_MODELS[model].to_owned()),
            firmware: Some(firmware.to_owned()),
        }))))
    }
}

fn action(action: ActionId, outcome: ActionOutcome, at: Timestamp, detail: &str) -> ActionRecord {
    ActionRecord {
        action,
        outcome,
        at,
        detail: detail.to_owned(),
    }
}

/// What one seeded incident wrote.
#[derive(Default)]
struct Seeded {
    events: u64,
    resolved: u64,
    with_actions: u64,
}

/// The events of incident `i`: `opened`, then `resolved` for about 30 %; about a quarter of
/// the kinds the healer acts on carry an action trail.
fn incident_events(
    rng: &mut Rng,
    i: usize,
    seq: &mut u64,
    started_ms: i64,
    now_ms: i64,
    out: &mut Vec<IncidentEvent>,
    tally: &mut Seeded,
) {
    let kind = rng.kind();
    let started = Timestamp::EPOCH.add_millis(started_ms);
    let opened_at = started.add_millis(15_000);
    let resolved_at = started
        .add_millis(60_000 + rng.below(4 * 3_600_000) as i64)
        .unix_millis()
        .min(now_ms);
    let resolved = rng.chance(30) && resolved_at > opened_at.unix_millis();
    let acts = kind.action.filter(|_| rng.chance(25));
    let healed = resolved && rng.chance(70);
    let incident_id = format!("inc-{i:07}");
    let mut opened_actions = Vec::new();
    let mut resolved_actions = Vec::new();
    if let Some(a) = acts {
        tally.with_actions += 1;
        opened_actions.push(action(
            a,
            ActionOutcome::Planned,
            started.add_millis(5_000),
            "",
        ));
        opened_actions.push(action(
            a,
            ActionOutcome::Done,
            started.add_millis(10_000),
            "",
        ));
        let at = Timestamp::EPOCH.add_millis(resolved_at);
        if healed {
            resolved_actions.push(action(a, ActionOutcome::Verified, at, ""));
        } else {
            let end = if resolved {
                &mut resolved_actions
            } else {
                &mut opened_actions
            };
            end.push(action(
                a,
                ActionOutcome::NotEffective,
                started.add_millis(12_000),
                "check still fails",
            ));
            end.push(action(
                a,
                ActionOutcome::Escalated,
                started.add_millis(13_000),
                "ladder exhausted",
            ));
        }
    }
    let event =
        |kind_: EventKind, seq: u64, at: Timestamp, actions: Vec<ActionRecord>| IncidentEvent {
            event_id: format!("{incident_id}-{}", kind_.as_str()),
            incident_id: incident_id.clone(),
            seq,
            kind: kind_,
            check: kind.check,
            cause: kind.cause.to_owned(),
            category: kind.category,
            severity: kind.severity,
            started_at: started,
            at,
            summary: kind.summary.to_owned(),
            evidence: [(kind.evidence.0.to_owned(), kind.evidence.1.to_owned())]
                .into_iter()
                .collect(),
            actions,
            auto_healed: (kind_ == EventKind::Resolved).then_some(healed && acts.is_some()),
        };
    *seq += 1;
    out.push(event(EventKind::Opened, *seq, opened_at, opened_actions));
    tally.events += 1;
    if resolved {
        *seq += 1;
        out.push(event(
            EventKind::Resolved,
            *seq,
            Timestamp::EPOCH.add_millis(resolved_at),
            resolved_actions,
        ));
        tally.events += 1;
        tally.resolved += 1;
    }
}

async fn seed_incidents(db: &str, n: usize, devices: usize, batch: usize, seed: u64) -> Result<()> {
    if devices == 0 || batch == 0 {
        bail!("--devices and --batch must be at least 1");
    }
    let url = StorageUrl::parse(db).map_err(anyhow::Error::msg)?;
    let st = store::open(&StorageConfig::with_url(url), OpenMode::CreateAndMigrate).await?;

    let t = Instant::now();
    let mut subs = Subscribers {
        next: 0,
        devices,
        rng: Rng(seed ^ 0x5EED_5EED),
    };
    let report = st.import(&mut subs, false).await?;
    println!(
        "subscribers: {} of {devices} devices mapped ({} regions, {} access nodes, {} CPE models, \
         {} firmware builds) in {:.1} s",
        report.taken,
        REGIONS.len(),
        ACCESS_NODES,
        CPE_MODELS.len(),
        FIRMWARES.len(),
        t.elapsed().as_secs_f64()
    );

    // One heartbeat per device, so the fleet looks live: 95 % online, every 20th device last
    // heard from 2 hours ago (offline).
    let t = Instant::now();
    let now = netmedic_collector::now();
    let ids: Vec<usize> = (0..devices).collect();
    for chunk in ids.chunks(5000) {
        let items: Vec<WriteItem> = chunk
            .iter()
            .map(|&d| WriteItem {
                auth: Auth::Trusted,
                kind: WriteKind::Heartbeat(heartbeat(&device_id(d))),
                received_at: if d % 20 == 19 {
                    now.add_millis(-2 * 3_600_000)
                } else {
                    now
                },
            })
            .collect();
        for r in st.write_group(&items).await? {
            if !matches!(r, Ok(WriteOk::Heartbeat(_))) {
                bail!("write group refused a heartbeat: {r:?}");
            }
        }
    }
    println!(
        "heartbeats: {devices} devices ({} offline) in {:.1} s",
        devices / 20,
        t.elapsed().as_secs_f64()
    );

    let now_ms = now.unix_millis();
    let mut rng = Rng(seed);
    let mut seqs = vec![0u64; devices];
    // The 30 days are cut into `passes` slices; each slice sweeps the devices in id order while
    // its clock advances: a Poisson process over the devices, so a device gets 0, 1, 2...
    // incidents per slice (N/D/passes ≈ 3 on average, close together like a flapping line's,
    // each start jittered by up to an hour). Every device's incidents spread over the 30 days,
    // and consecutive incidents (one write group) come from few devices and touch nearby keys
    // of both the time and the device indexes, as agents reporting live do: inserts stay in a
    // small part of each index instead of all over a 1 GB file, and a group holds a few hundred
    // report batches rather than thousands (each costs the store a statement).
    let passes = (n / devices / 3).clamp(1, 30);
    let slice_ms = SEED_SPAN_MS / passes as i64;
    let per_pass = n.div_ceil(passes);
    // Mean device step per incident, so that one pass covers the devices once.
    let step = devices as f64 / per_pass as f64;
    let mut pos = 0.0f64;
    let mut tally = Seeded::default();
    let (mut written, mut duplicates, mut groups) = (0usize, 0u64, 0u64);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while written < n {
        let take = batch.min(n - written);
        let mut by_device: std::collections::BTreeMap<usize, Vec<IncidentEvent>> =
            std::collections::BTreeMap::new();
        for i in written..written + take {
            if i % per_pass == 0 {
                pos = 0.0;
            }
            let pass = (i / per_pass) as i64;
            let device = (pos as usize) % devices;
            let within = (pos / devices as f64).min(1.0);
            let started_ms =
                (now_ms - SEED_SPAN_MS + pass * slice_ms + (within * slice_ms as f64) as i64
                    - rng.below(3_600_000) as i64)
                    .min(now_ms - 60_000);
            let evs = by_device.entry(device).or_default();
            incident_events(
                &mut rng,
                i,
                &mut seqs[device],
                started_ms,
                now_ms,
                evs,
                &mut tally,
            );
            // Exponential with mean `step`.
            let u = (rng.below(1 << 20) + 1) as f64 / f64::from(1 << 20);
            pos -= step * u.ln();
        }
        let received_at = netmedic_collector::now();
        let mut items = Vec::with_capacity(by_device.len());
        for (d, evs) in by_device {
            // A report batch holds at most 500 events (the API's limit); an opened/resolved
            // pair split across two items of one group is still assembled together.
            for chunk in evs.chunks(500) {
                items.push(WriteItem {
                    auth: Auth::Trusted,
                    kind: WriteKind::Report(ReportBatch {
                        schema_version: SCHEMA_VERSION,
                        agent_id: device_id(d),
                        events: chunk.to_vec(),
                    }),
                    received_at,
                });
            }
        }
        for r in st.write_group(&items).await? {
            match r {
                Ok(WriteOk::Report(ack)) => duplicates += u64::from(ack.duplicates),
                other => bail!("write group refused an item: {other:?}"),
            }
        }
        written += take;
        groups += 1;
        if last_progress.elapsed() >= Duration::from_secs(5) || written == n {
            last_progress = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  {written}/{n} incidents in {secs:.1} s ({:.0} incidents/s, {:.0} events/s)",
                written as f64 / secs,
                tally.events as f64 / secs
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    st.close().await;
    println!(
        "seeded {n} incidents ({} events, {} resolved, {} with an action trail) over {devices} \
         devices in {secs:.1} s: {:.0} incidents/s, {:.0} events/s; {groups} write groups of up \
         to {batch} incidents{}",
        tally.events,
        tally.resolved,
        tally.with_actions,
        n as f64 / secs.max(1e-9),
        tally.events as f64 / secs.max(1e-9),
        if duplicates > 0 {
            format!("; {duplicates} events were already stored (re-seeded database)")
        } else {
            String::new()
        }
    );
    Ok(())
}

// ---- pages ----------------------------------------------------------------------------------

/// A whole HTTP response.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The server closes the connection after this response.
    close: bool,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` header gives cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

impl Conn {
    /// Sends one request and reads the whole response (Content-Length, chunked, or until the
    /// server closes).
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut resp = Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        };
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                resp.headers
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        resp.close = resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        } else if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size.trim(), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        line.clear();
                        if self.stream.read_line(&mut line).await? == 0
                            || line.trim_end().is_empty()
                        {
                            break;
                        }
                    }
                    break;
                }
                let at = resp.body.len();
                resp.body.resize(at + size, 0);
                self.stream.read_exact(&mut resp.body[at..]).await?;
                line.clear();
                self.stream.read_line(&mut line).await?;
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().context("bad Content-Length")?;
            resp.body = vec![0u8; len];
            self.stream.read_exact(&mut resp.body).await?;
        } else {
            self.stream.read_to_end(&mut resp.body).await?;
            resp.close = true;
        }
        Ok(resp)
    }
}

/// A keep-alive connection that is reopened when the server closes it.
struct Client {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Client {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(Conn::open(self.addr).await?),
            };
            match conn.request(method, path, headers, body).await {
                Ok(r) => {
                    if r.close {
                        self.conn = None;
                    }
                    return Ok(r);
                }
                // A kept-alive connection the server dropped meanwhile: retry once on a new one.
                Err(_) if attempt == 1 => self.conn = None,
                Err(e) => return Err(e.context(format!("{method} {path}"))),
            }
        }
    }
}

/// `application/x-www-form-urlencoded` value.
fn form_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes the HTML escaping of an attribute value.
fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The `href` of the first `<a ...>` tag that contains `marker` (e.g. `id="next-page"`).
fn anchor_href(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind("<a ")?;
    let end = start + html[start..].find('>')?;
    let tag = &html[start..end];
    let h = tag.find("href=\"")? + 6;
    let len = tag[h..].find('"')?;
    Some(html_unescape(&tag[h..h + len]))
}

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

async fn pages(
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
