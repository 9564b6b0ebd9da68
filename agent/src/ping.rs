//! ICMP echo probes (surge-ping): used by checks to see whether a host answers.

use std::net::IpAddr;
use std::time::Duration;
use surge_ping::{Client, Config, PingIdentifier, PingSequence};

/// Result of a burst of echo requests.
#[derive(Debug, Clone, PartialEq)]
pub struct PingResult {
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies, in milliseconds.
    pub rtts_ms: Vec<f64>,
}

impl PingResult {
    pub fn answered(&self) -> bool {
        self.received > 0
    }
}

/// An ICMPv4 prober; one socket, reused.
pub struct Pinger {
    client: Client,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pinger")
    }
}

impl Pinger {
    /// Opens the ICMP socket (needs CAP_NET_RAW, or a ping_group_range that admits us).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            client: Client::new(&Config::default())?,
        })
    }

    /// Sends up to `count` echo requests, each waiting `timeout`; stops at the first reply
    /// when `stop_on_reply` (a liveness test needs one answer, not a loss measurement).
    pub async fn probe(
        &self,
        host: IpAddr,
        count: u32,
        timeout: Duration,
        stop_on_reply: bool,
    ) -> PingResult {
        let ident = PingIdentifier(crate::ids::random_u16());
        let mut pinger = self.client.pinger(host, ident).await;
        pinger.timeout(timeout);
        let payload = [0u8; 32];
        let mut result = PingResult {
            sent: 0,
            received: 0,
            rtts_ms: Vec::new(),
        };
        for seq in 0..count {
            result.sent += 1;
            if let Ok((_, rtt)) = pinger.ping(PingSequence(seq as u16), &payload).await {
                result.received += 1;
                result.rtts_ms.push(rtt.as_secs_f64() * 1000.0);
                if stop_on_reply {
                    break;
                }
            }
        }
        result
    }
}
