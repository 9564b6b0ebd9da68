//! SNMP I/O: secrets, the v2c/v3 session over `snmp2`, and the GETBULK walk (per-request
//! timeout, retries, a row cap) that reads a [`LineReading`] from the modem.

use super::mib::*;
use super::{
    AuthProtocol, LineType, ModemSnmpConfig, PrivProtocol, Secret, SecurityLevel, SnmpVersion,
};
use snmp2::{AsyncSession, Oid, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why the modem could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnmpError {
    #[error("no response from {0} (after retries)")]
    Timeout(SocketAddr),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("cannot read a secret: {0}")]
    Secret(String),
    #[error("SNMP error: {0}")]
    Protocol(String),
}

/// Reads a secret: the file (first line, trailing newline removed) when given, else inline.
fn secret(inline: &Secret, file: &Option<PathBuf>, what: &str) -> Result<Vec<u8>, SnmpError> {
    match file {
        Some(p) => std::fs::read_to_string(p)
            .map(|t| t.lines().next().unwrap_or("").as_bytes().to_vec())
            .map_err(|e| SnmpError::Secret(format!("{what} file {}: {}", p.display(), e.kind()))),
        None => Ok(inline.0.as_bytes().to_vec()),
    }
}

/// A session with retries; owns the socket for the duration of one check run.
struct Client {
    sess: AsyncSession,
    target: SocketAddr,
    timeout: Duration,
    retries: u32,
    max_repetitions: u32,
    /// Requests sent, for the evidence.
    requests: u32,
}

fn snmp_err(e: snmp2::Error) -> SnmpError {
    match e {
        snmp2::Error::AuthFailure(k) => SnmpError::Auth(format!("{k:?}")),
        other => SnmpError::Protocol(format!("{other:?}")),
    }
}

fn to_oid(arcs: &[u64]) -> Result<Oid<'static>, SnmpError> {
    Oid::from(arcs).map_err(|e| SnmpError::Protocol(format!("bad OID {arcs:?}: {e:?}")))
}

impl Client {
    async fn connect(c: &ModemSnmpConfig, target: SocketAddr) -> Result<Client, SnmpError> {
        let timeout = Duration::from_millis(c.timeout_ms);
        let req_id = i32::from(std::process::id() as u16);
        let io = |e: std::io::Error| SnmpError::Protocol(format!("socket: {e}"));
        let sess = match c.version {
            SnmpVersion::V2c => {
                let community = secret(&c.community, &c.community_file, "community")?;
                AsyncSession::new_v2c(target, &community, req_id)
                    .await
                    .map_err(io)?
            }
            SnmpVersion::V3 => {
                use snmp2::v3;
                let auth_pw = secret(&c.auth_password, &c.auth_password_file, "auth_password")?;
                let proto = match c.auth_protocol {
                    AuthProtocol::Md5 => v3::AuthProtocol::Md5,
                    AuthProtocol::Sha => v3::AuthProtocol::Sha1,
                    AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
                    AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
                    AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
                    AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
                };
                let mut sec =
                    v3::Security::new(c.user.as_bytes(), &auth_pw).with_auth_protocol(proto);
                if c.security_level == SecurityLevel::AuthPriv {
                    let priv_pw = secret(&c.priv_password, &c.priv_password_file, "priv_password")?;
                    let cipher = match c.priv_protocol {
                        PrivProtocol::Des => v3::Cipher::Des,
                        PrivProtocol::Aes => v3::Cipher::Aes128,
                        PrivProtocol::Aes192 => v3::Cipher::Aes192,
                        PrivProtocol::Aes256 => v3::Cipher::Aes256,
                    };
                    if cipher.priv_key_needs_extension(&proto) {
                        // net-snmp's AES-192/256 key localisation.
                        sec = sec.with_key_extension_method(v3::KeyExtension::Blumenthal);
                    }
                    sec = sec.with_auth(v3::Auth::AuthPriv {
                        cipher,
                        privacy_password: priv_pw,
                    });
                }
                let mut sess = AsyncSession::new_v3(target, req_id, sec)
                    .await
                    .map_err(io)?;
                // Engine discovery, with the same timeout and retries as any request.
                let mut attempt = 0;
                loop {
                    match tokio::time::timeout(timeout, sess.init()).await {
                        Ok(Ok(())) => break,
                        Ok(Err(snmp2::Error::AuthFailure(k))) => {
                            return Err(SnmpError::Auth(format!("{k:?}")));
                        }
                        Ok(Err(e)) if attempt >= c.retries => return Err(snmp_err(e)),
                        Err(_) if attempt >= c.retries => return Err(SnmpError::Timeout(target)),
                        _ => attempt += 1,
                    }
                }
                sess
            }
        };
        Ok(Client {
            sess,
            target,
            timeout,
            retries: c.retries,
            max_repetitions: c.max_repetitions,
            requests: 0,
        })
    }

    /// One GETBULK from `from`, retried after timeouts and stale replies.
    async fn bulk(&mut self, from: &[u64]) -> Result<Vec<(Vec<u64>, Val)>, SnmpError> {
        let oid = to_oid(from)?;
        let mut attempt = 0;
        loop {
            self.requests += 1;
            let res = tokio::time::timeout(
                self.timeout,
                self.sess.getbulk(&[&oid], 0, self.max_repetitions),
            )
            .await;
            let retryable = match res {
                Ok(Ok(pdu)) => {
                    if pdu.error_status != 0 {
                        return Err(SnmpError::Protocol(format!(
                            "error-status {} at index {}",
                            pdu.error_status, pdu.error_index
                        )));
                    }
                    let mut out = Vec::new();
                    for (name, value) in pdu.varbinds {
                        let Some(arcs) = name.iter() else {
                            return Err(SnmpError::Protocol("OID arc too large".into()));
                        };
                        let arcs: Vec<u64> = arcs.collect();
                        let end = matches!(
                            value,
                            Value::EndOfMibView | Value::NoSuchObject | Value::NoSuchInstance
                        );
                        out.push((
                            arcs,
                            if end {
                                Val::Other("end".into())
                            } else {
                                Val::from_snmp(&value)
                            },
                        ));
                        if end {
                            break;
                        }
                    }
                    return Ok(out);
                }
                // A late reply to an abandoned request, or the v3 engine clock was resynced.
                Ok(Err(snmp2::Error::RequestIdMismatch | snmp2::Error::AuthUpdated)) => true,
                Ok(Err(snmp2::Error::Receive)) => true,
                Ok(Err(e)) => return Err(snmp_err(e)),
                Err(_) => true,
            };
            if !retryable || attempt >= self.retries {
                return Err(SnmpError::Timeout(self.target));
            }
            attempt += 1;
        }
    }

    /// Every row of the subtree `base`, in order; bounded by `max_rows`.
    async fn walk(
        &mut self,
        base: &[u64],
        max_rows: usize,
    ) -> Result<Vec<(Vec<u64>, Val)>, SnmpError> {
        let mut rows: Vec<(Vec<u64>, Val)> = Vec::new();
        let mut cur = base.to_vec();
        loop {
            let batch = self.bulk(&cur).await?;
            if batch.is_empty() {
                return Ok(rows);
            }
            for (oid, v) in batch {
                if !oid.starts_with(base) || v == Val::Other("end".into()) {
                    return Ok(rows);
                }
                if oid <= cur {
                    return Err(SnmpError::Protocol(format!(
                        "agent returned OIDs out of order after {}",
                        dotted(&cur)
                    )));
                }
                cur.clone_from(&oid);
                rows.push((oid, v));
                if rows.len() >= max_rows {
                    return Ok(rows);
                }
            }
        }
    }
}

fn dotted(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Walks the columns the line type needs.
pub(super) async fn read_modem(
    c: &ModemSnmpConfig,
    target: SocketAddr,
) -> Result<LineReading, SnmpError> {
    let mut cl = Client::connect(c, target).await?;
    let mut r = LineReading::default();
    let get = async |cl: &mut Client, base: &[u64]| -> Result<BTreeMap<u32, i64>, SnmpError> {
        Ok(column(&cl.walk(base, c.max_rows).await?, base))
    };
    r.oper_status = get(&mut cl, IF_OPER_STATUS).await?;
    r.if_type = get(&mut cl, IF_TYPE).await?;
    r.in_errors = get(&mut cl, IF_IN_ERRORS).await?;
    if matches!(
        c.line_type,
        LineType::Adsl | LineType::Vdsl | LineType::Auto
    ) {
        r.adsl_snr_margin_tenth_db = get(&mut cl, ADSL_SNR_MARGIN).await?;
        r.adsl_attenuation_tenth_db = get(&mut cl, ADSL_ATTENUATION).await?;
        r.adsl_down_bps = get(&mut cl, ADSL_DOWN_RATE).await?;
        r.adsl_up_bps = get(&mut cl, ADSL_UP_RATE).await?;
    }
    if matches!(c.line_type, LineType::Docsis | LineType::Auto) {
        r.docsis_snr_tenth_db = get(&mut cl, DOCSIS_SNR).await?;
        r.docsis_uncorrectables = get(&mut cl, DOCSIS_UNCORRECTABLES).await?;
    }
    log::debug!("modem_snmp: {} requests to {}", cl.requests, cl.target);
    Ok(r)
}
