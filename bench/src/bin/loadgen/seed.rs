//! `seed-incidents`: N incidents of D devices, with resolutions, action trails and a
//! subscribers mapping, written straight into a store through the collector library in big
//! write groups; a deterministic pseudo-random spread (same seed, same data).

use crate::load::heartbeat;
use anyhow::{Result, bail};
use netmedic_collector::config::{StorageConfig, StorageUrl};
use netmedic_collector::import::{
    BadRow, ImportError, ImportFormat, ImportKind, Record, RowSource, SubscriberRow,
};
use netmedic_collector::store::{self, Auth, OpenMode, WriteItem, WriteKind, WriteOk};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, EventKind, IncidentEvent,
    ReportBatch, SCHEMA_VERSION, Severity, Timestamp,
};
use std::time::{Duration, Instant};

/// Seeded incidents start within this span before now (30 days).
const SEED_SPAN_MS: i64 = 30 * 86_400_000;

/// Regions of the seeded subscribers mapping; `pages --region` defaults to the first.
pub(crate) const REGIONS: &[&str] = &[
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
            experiment: None,
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

pub(crate) async fn seed_incidents(
    db: &str,
    n: usize,
    devices: usize,
    batch: usize,
    seed: u64,
) -> Result<()> {
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
                    kind: WriteKind::report(ReportBatch {
                        schema_version: SCHEMA_VERSION,
                        agent_id: device_id(d),
                        events: chunk.to_vec(),
                    })?,
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
