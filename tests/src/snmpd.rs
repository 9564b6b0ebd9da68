//! [`Modem`]: net-snmp's `snmpd` inside a CPE namespace playing the DSL/DOCSIS modem, on
//! [`MODEM_IP`] (added to the namespace's `lo`). It answers SNMP v2c (a community) and v3 authPriv
//! (SHA/AES user), and serves the modem's line — IF-MIB ifTable, ADSL-LINE-MIB and DOCSIS-IF-MIB
//! columns — from a values file through `pass` scripts, so a test changes the SNR at run time
//! with [`Modem::set_line`]. Stopped on drop.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{LabError, Result, io_ctx};
use crate::{Lab, LabProcess, wait_for};

/// The modem's management address, on `lo` of the CPE namespace it runs in.
pub const MODEM_IP: Ipv4Addr = Ipv4Addr::new(100, 127, 255, 1);
/// The v2c community the lab's modem accepts.
pub const MODEM_COMMUNITY: &str = "lab-modem-ro";
/// The v3 user (authPriv, SHA + AES-128).
pub const MODEM_V3_USER: &str = "netmedic";
/// Its authentication password (SHA).
pub const MODEM_V3_AUTH_PASSWORD: &str = "lab-auth-secret";
/// Its privacy password (AES).
pub const MODEM_V3_PRIV_PASSWORD: &str = "lab-priv-secret";

/// The served line, in MIB units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemLine {
    /// ifIndex of the DSL line (its channels are `+1` downstream/fast and `+2` upstream).
    pub if_index: u32,
    /// ifOperStatus up (1) or down (2).
    pub oper_up: bool,
    /// ifInErrors (Counter32).
    pub in_errors: u32,
    /// adslAturCurrSnrMgn in tenths of a dB.
    pub snr_margin_tenth_db: i32,
    /// adslAturCurrAtn in tenths of a dB.
    pub attenuation_tenth_db: u32,
    /// adslAtucChanCurrTxRate (downstream), bit/s.
    pub downstream_bps: u32,
    /// adslAturChanCurrTxRate (upstream), bit/s.
    pub upstream_bps: u32,
    /// DOCSIS downstream channels: (ifIndex, docsIfSigQSignalNoise in tenths of a dB,
    /// docsIfSigQUncorrectables). Empty: no DOCSIS table.
    pub docsis: Vec<(u32, i32, u32)>,
}

impl Default for ModemLine {
    /// A healthy ADSL2+ line: 12.0 dB margin, 25.5 dB attenuation, 16 Mbit/s down, 1 Mbit/s up.
    fn default() -> Self {
        Self {
            if_index: 1000,
            oper_up: true,
            in_errors: 0,
            snr_margin_tenth_db: 120,
            attenuation_tenth_db: 255,
            downstream_bps: 16_000_000,
            upstream_bps: 1_000_000,
            docsis: Vec::new(),
        }
    }
}

const IF_TABLE: &str = ".1.3.6.1.2.1.2.2.1";
const ADSL: &str = ".1.3.6.1.2.1.10.94";
const DOCSIS: &str = ".1.3.6.1.2.1.10.127";

impl ModemLine {
    /// Lines `OID TYPE VALUE` for the pass scripts.
    fn values(&self) -> String {
        let i = self.if_index;
        let mut s = String::new();
        let mut row = |oid: String, ty: &str, v: String| {
            let _ = writeln!(s, "{oid} {ty} {v}");
        };
        row(format!("{IF_TABLE}.3.{i}"), "integer", "94".into()); // adsl(94)
        row(
            format!("{IF_TABLE}.8.{i}"),
            "integer",
            if self.oper_up { "1" } else { "2" }.into(),
        );
        row(
            format!("{IF_TABLE}.14.{i}"),
            "counter",
            self.in_errors.to_string(),
        );
        row(
            format!("{ADSL}.1.1.3.1.4.{i}"),
            "integer",
            self.snr_margin_tenth_db.to_string(),
        );
        row(
            format!("{ADSL}.1.1.3.1.5.{i}"),
            "gauge",
            self.attenuation_tenth_db.to_string(),
        );
        row(
            format!("{ADSL}.1.1.4.1.2.{}", i + 1),
            "gauge",
            self.downstream_bps.to_string(),
        );
        row(
            format!("{ADSL}.1.1.5.1.2.{}", i + 2),
            "gauge",
            self.upstream_bps.to_string(),
        );
        for (ch, snr, unc) in &self.docsis {
            row(
                format!("{DOCSIS}.1.1.4.1.4.{ch}"),
                "counter",
                unc.to_string(),
            );
            row(
                format!("{DOCSIS}.1.1.4.1.5.{ch}"),
                "integer",
                snr.to_string(),
            );
        }
        s
    }
}

/// A net-snmp `pass` script serving the rows of `values` under `prefix` (GET and GETNEXT, OIDs
/// compared numerically).
fn pass_script(prefix: &str, values: &std::path::Path) -> String {
    format!(
        r#"#!/bin/sh
# netmedic lab: net-snmp pass script for {prefix}
exec awk -v mode="$1" -v req="$2" -v prefix="{prefix}." '
function cmp(a, b,   x, y, n, m, i) {{
  n = split(a, x, "."); m = split(b, y, ".")
  for (i = 2; i <= n && i <= m; i++) {{ if (x[i]+0 < y[i]+0) return -1; if (x[i]+0 > y[i]+0) return 1 }}
  return (n < m) ? -1 : (n > m) ? 1 : 0
}}
index($1, prefix) != 1 {{ next }}
mode == "-g" && cmp($1, req) == 0 {{ print $1; print $2; print $3; exit }}
mode == "-n" && cmp($1, req) > 0 && (best == "" || cmp($1, best) < 0) {{ best = $1; bt = $2; bv = $3 }}
END {{ if (mode == "-n" && best != "") {{ print best; print bt; print bv }} }}
' '{values}'
"#,
        values = values.display()
    )
}

/// The lab's modem. See the module docs.
#[derive(Debug)]
pub struct Modem {
    values: PathBuf,
    process: Option<LabProcess>,
}

impl Modem {
    /// Starts the modem in CPE `cpe`'s namespace serving `line`; returns once snmpd is up.
    pub fn start(lab: &Lab, cpe: usize, line: &ModemLine) -> Result<Self> {
        let c = lab.cpe(cpe);
        let dir = lab.dir().join(format!("modem{cpe}"));
        let persist = dir.join("persist");
        std::fs::create_dir_all(&persist)
            .map_err(io_ctx(format!("creating {}", persist.display())))?;
        let values = dir.join("line.values");
        let me = Self {
            values: values.clone(),
            process: None,
        };
        me.set_line(line)?;
        let mut conf = format!(
            "agentaddress udp:{MODEM_IP}:161\n\
             rocommunity {MODEM_COMMUNITY} default\n\
             createUser {MODEM_V3_USER} SHA \"{MODEM_V3_AUTH_PASSWORD}\" AES \"{MODEM_V3_PRIV_PASSWORD}\"\n\
             rouser {MODEM_V3_USER} priv\n"
        );
        for (name, prefix) in [("ifmib", IF_TABLE), ("adsl", ADSL), ("docsis", DOCSIS)] {
            let script = dir.join(format!("pass-{name}.sh"));
            std::fs::write(&script, pass_script(prefix, &values))
                .map_err(io_ctx(format!("writing {}", script.display())))?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .map_err(io_ctx(format!("chmod {}", script.display())))?;
            let _ = writeln!(conf, "pass -p 1 {prefix} {}", script.display());
        }
        let conf_path = dir.join("snmpd.conf");
        std::fs::write(&conf_path, conf)
            .map_err(io_ctx(format!("writing {}", conf_path.display())))?;

        c.ns.ip(&["addr", "replace", &format!("{MODEM_IP}/32"), "dev", "lo"])?;
        let conf_arg = conf_path.display().to_string();
        let persist_arg = persist.display().to_string();
        let log = lab.log_path(&format!("modem{cpe}-snmpd"));
        let mut process = c.ns.spawn_with_env(
            "snmpd",
            &[
                "-f",  // foreground
                "-Lo", // log to stdout (the log file)
                "-C",  // only our config file
                "-c",
                &conf_arg,
                "-r", // no root-only file checks
                "-I",
                "-ifTable,ifXTable,interfaces", // the pass script serves the modem's ifTable
            ],
            &[("SNMP_PERSISTENT_DIR", &persist_arg), ("MIBS", "")],
            &log,
        )?;
        wait_for(
            "the lab modem's snmpd to start",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if !process.is_running() {
                    return Err(format!("snmpd exited: {}", process.log_tail(20)));
                }
                let text = crate::tail_file(&log, 50);
                if text.contains("NET-SNMP version") {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )?;
        let mut me = me;
        me.process = Some(process);
        Ok(me)
    }

    /// Serves `line` from now on (atomic replace of the values file).
    pub fn set_line(&self, line: &ModemLine) -> Result<()> {
        let tmp = self.values.with_extension("tmp");
        std::fs::write(&tmp, line.values())
            .map_err(io_ctx(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &self.values)
            .map_err(io_ctx(format!("renaming to {}", self.values.display())))
    }

    /// The snmpd log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map_or_else(String::new, |p| p.log_tail(lines))
    }

    /// Stops snmpd. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill()
                .map_err(|e| LabError::Setup(format!("stopping snmpd: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for Modem {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("netmedic-lab: {e}");
        }
    }
}
