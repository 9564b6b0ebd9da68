//! `netmedic-loadgen`: the collector's load generator, run as a separate process from the
//! collector (see scripts/bench-collector.sh and scripts/bench-console.sh). `enrol` provisions N
//! devices and writes their tokens; `heartbeats` sends one heartbeat per request from many
//! keep-alive connections (`wrk-requests` prepares the same load for `wrk`) and prints requests/s with p50/p99 latency; `events` sends report
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
//!
//! One module per concern: `load` (enrol, heartbeats, events), `batch` (the events' report
//! batches, encoded from a template), `seed` (seed-incidents), `pages`
//! (the console timing), `storm` (the reconnect storm), `hello` (the HTTP stack's ceiling, a
//! server) and `http` (the small HTTP/1.1 client they share).

mod batch;
mod hello;
mod http;
mod load;
mod pages;
mod seed;
mod storm;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Write the request file of `bench/wrk/requests.lua`: one heartbeat per enrolled device
    /// for the collector, or one Prometheus-format sample per device for VictoriaMetrics.
    WrkRequests {
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, value_enum)]
        target: load::WrkTarget,
        #[arg(long)]
        out: PathBuf,
    },
    /// The reconnect storm: `--agents` enrolled devices connect at once, each sends a report
    /// batch of `--events` events and a heartbeat (honouring 429/503 + Retry-After); prints the
    /// statuses and the events acked against those stored in `--db`.
    Storm {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 5000)]
        agents: usize,
        #[arg(long, default_value_t = 10)]
        events: usize,
        #[arg(long, default_value_t = 120)]
        deadline_secs: u64,
    },
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
    /// Serve a bare "hello" answer on the collector's HTTP stack (the ceiling `wrk` compares
    /// the collector with) until killed; prints `listening on http://ADDR` on stderr.
    Hello {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
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
        #[arg(long, default_value = seed::REGIONS[0])]
        region: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct Load {
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
            Cmd::Enrol { db, devices, out } => load::enrol(&db, devices, &out).await,
            Cmd::Heartbeats(load) => load::run(load, None).await,
            Cmd::WrkRequests {
                tokens,
                target,
                out,
            } => load::wrk_requests(&tokens, target, &out),
            Cmd::Storm {
                addr,
                tokens,
                db,
                agents,
                events,
                deadline_secs,
            } => storm::storm(addr, &tokens, &db, agents, events, deadline_secs).await,
            Cmd::Events { load, batch } => load::run(load, Some(batch)).await,
            Cmd::SeedIncidents {
                db,
                incidents,
                devices,
                batch,
                seed,
            } => seed::seed_incidents(&db, incidents, devices, batch, seed).await,
            Cmd::Hello { listen } => hello::serve(listen).await,
            Cmd::Pages {
                addr,
                user,
                password,
                token,
                requests,
                region,
            } => pages::pages(addr, &user, &password, &token, requests, &region).await,
        }
    })
}
