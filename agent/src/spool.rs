//! The spool: incident events on disk until the collector acknowledges them.
//!
//! One file per event, `SEQ-EVENTID.evt`, framed as `NMS1 | len u32 LE | crc32 u32 LE | JSON`.
//! A push is durable before it returns (write temp, fsync, rename, fsync dir). Files are deleted
//! only when the collector acknowledged them. Bounded by count and bytes; when full, the least
//! severe, then oldest, events are dropped first and every drop is counted. A file that fails
//! its CRC or does not parse is moved to `quarantine/` and counted; recovery never stops new
//! events from being spooled, and no file in the spool can make opening it fail.
//!
//! The dropped and quarantined totals persist in `counters` (rewritten atomically, only when a
//! count changes), so the heartbeat's `dropped_total` keeps rising across restarts. A full disk
//! (ENOSPC) is just another counted drop: nothing panics, the counters are written again at the
//! next chance, and delivery (which only deletes) goes on, so space comes back by itself.
//!
//! Local state is not trusted to be sane either: a sequence number above [`MAX_SEQ`] is a
//! corrupt file (quarantined), files are opened without following symlinks and read through a
//! size cap, and a `quarantine` or `rejected` that is not a real directory is replaced by one,
//! so nothing is ever moved or written outside the spool.

use netmedic_proto::{IncidentEvent, Severity};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"NMS1";
const HEADER_LEN: usize = 12;
/// No single event may exceed this; the collector's limits are far below it.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The highest sequence number the agent uses (the collector stores it as a signed 64-bit
/// number; at one event per microsecond it lasts 292,000 years). Anything above is corruption.
pub const MAX_SEQ: u64 = i64::MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("event of {0} bytes exceeds the spool's per-event limit")]
    TooLarge(usize),
    #[error("event sequence number {0} is above {MAX_SEQ}")]
    SeqOutOfRange(u64),
}

/// A sequence number as stored in a `seq` file: `None` when it is not a number or above
/// [`MAX_SEQ`] (a corrupt file must not make the next number overflow).
pub fn parse_seq(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|s| *s <= MAX_SEQ)
}

/// Opens `path` for reading without following a symlink in its last component.
fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Creates or truncates `path` for writing without following a symlink in its last component.
fn create_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Makes `dir` a real directory of its own: a symlink (or a file) in its place is removed and
/// replaced, so nothing is moved through it out of the spool.
fn ensure_real_dir(dir: &Path) -> Result<(), SpoolError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) => {
            log::error!(
                "spool: {} is a {}, not a directory: replaced by an empty directory",
                dir.display(),
                if m.file_type().is_symlink() {
                    "symlink"
                } else {
                    "file"
                }
            );
            fs::remove_file(dir).map_err(io_err(dir))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    fs::create_dir(dir).map_err(io_err(dir))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    bytes: u64,
    severity: Severity,
}

/// What opening the spool found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub events: usize,
    pub quarantined: usize,
    pub temp_files_removed: usize,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    quarantine: PathBuf,
    rejected: PathBuf,
    max_events: usize,
    max_bytes: u64,
    /// Spooled events by (seq, event id).
    index: BTreeMap<(u64, String), Entry>,
    bytes: u64,
    dropped_total: u64,
    quarantined_total: u64,
    max_seq: u64,
    /// The counters changed since they were last written successfully.
    counters_dirty: bool,
}

const COUNTERS_FILE: &str = "counters";

/// `(dropped_total, quarantined_total)` from the counters file; zeros when absent or unreadable.
fn read_counters(path: &Path) -> (u64, u64) {
    let mut bytes = Vec::new();
    let _ = open_nofollow(path).and_then(|f| f.take(4096).read_to_end(&mut bytes));
    let text = String::from_utf8_lossy(&bytes);
    let mut out = (0, 0);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("dropped_total", v)) => out.0 = v.trim().parse().unwrap_or(0),
            Some(("quarantined_total", v)) => out.1 = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    out
}

fn encode(event: &IncidentEvent) -> Result<Vec<u8>, SpoolError> {
    if event.seq > MAX_SEQ {
        return Err(SpoolError::SeqOutOfRange(event.seq));
    }
    let payload = serde_json::to_vec(event)?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(SpoolError::TooLarge(payload.len()));
    }
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

/// The event in one spool file's bytes, or why they are unreadable (bad header, torn, CRC
/// mismatch, bad JSON, sequence number above [`MAX_SEQ`]).
pub fn decode_frame(buf: &[u8]) -> Result<IncidentEvent, String> {
    if buf.len() < HEADER_LEN || &buf[..4] != MAGIC {
        return Err("bad header".into());
    }
    let len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let crc = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let payload = &buf[HEADER_LEN..];
    if payload.len() != len {
        return Err(format!("torn: {} of {len} bytes", payload.len()));
    }
    if crc32fast::hash(payload) != crc {
        return Err("CRC mismatch".into());
    }
    let ev: IncidentEvent =
        serde_json::from_slice(payload).map_err(|e| format!("bad JSON: {e}"))?;
    if ev.seq > MAX_SEQ {
        return Err(format!("sequence number {} above {MAX_SEQ}", ev.seq));
    }
    Ok(ev)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Minor => 0,
        Severity::Major => 1,
        Severity::Critical => 2,
    }
}

impl Spool {
    /// Opens (creating) the spool under `dir`, recovering what is there.
    pub fn open(
        dir: &Path,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<(Self, Recovery), SpoolError> {
        let quarantine = dir.join("quarantine");
        let rejected = dir.join("rejected");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        for d in [&quarantine, &rejected] {
            ensure_real_dir(d)?;
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            quarantine,
            rejected,
            max_events,
            max_bytes,
            index: BTreeMap::new(),
            bytes: 0,
            dropped_total: 0,
            quarantined_total: 0,
            max_seq: 0,
            counters_dirty: false,
        };
        (spool.dropped_total, spool.quarantined_total) = read_counters(&dir.join(COUNTERS_FILE));
        let _ = fs::remove_file(dir.join(format!("{COUNTERS_FILE}.tmp")));
        let mut rec = Recovery::default();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            // One unreadable directory entry must not stop recovery (nor crash-loop the agent).
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if name.ends_with(".tmp") {
                // A push that never reached its rename: it was never acknowledged.
                let _ = fs::remove_file(&path);
                rec.temp_files_removed += 1;
                continue;
            }
            if !name.ends_with(".evt") {
                continue;
            }
            match read_file(&path) {
                Ok(ev) => {
                    let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    spool.max_seq = spool.max_seq.max(ev.seq);
                    spool.bytes += bytes;
                    spool.index.insert(
                        (ev.seq, ev.event_id.clone()),
                        Entry {
                            path,
                            bytes,
                            severity: ev.severity,
                        },
                    );
                    rec.events += 1;
                }
                Err(why) => {
                    log::warn!("spool: quarantining {name}: {why}");
                    spool.quarantine_file(&path, &name);
                    rec.quarantined += 1;
                }
            }
        }
        spool.persist_counters();
        Ok((spool, rec))
    }

    fn quarantine_file(&mut self, path: &Path, name: &str) {
        self.quarantined_total += 1;
        self.counters_dirty = true;
        if fs::rename(path, self.quarantine.join(name)).is_err() {
            // Could not move it aside: delete it rather than trip over it forever.
            let _ = fs::remove_file(path);
        }
    }

    /// Writes the counters when they changed (temp, fsync, rename). On failure (a full disk)
    /// they stay dirty and are written at the next chance.
    fn persist_counters(&mut self) {
        if !self.counters_dirty {
            return;
        }
        let path = self.dir.join(COUNTERS_FILE);
        let tmp = self.dir.join(format!("{COUNTERS_FILE}.tmp"));
        let text = format!(
            "dropped_total={}\nquarantined_total={}\n",
            self.dropped_total, self.quarantined_total
        );
        let written = (|| {
            let mut f = create_nofollow(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        match written {
            Ok(()) => self.counters_dirty = false,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                log::debug!("spool: cannot persist counters yet: {e}");
            }
        }
    }

    /// Changes the bounds (config reload); an overfull spool is trimmed at the next push.
    pub fn set_bounds(&mut self, max_events: usize, max_bytes: u64) {
        self.max_events = max_events;
        self.max_bytes = max_bytes;
    }

    /// Highest sequence number ever seen in the spool.
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    pub fn depth(&self) -> usize {
        self.index.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    pub fn quarantined_total(&self) -> u64 {
        self.quarantined_total
    }

    /// Makes room for `incoming` bytes by dropping the least severe, oldest events.
    fn make_room(&mut self, incoming: u64, incoming_severity: Severity) -> bool {
        while self.index.len() + 1 > self.max_events || self.bytes + incoming > self.max_bytes {
            let victim = self
                .index
                .iter()
                .min_by_key(|((seq, _), e)| (severity_rank(e.severity), *seq))
                .map(|(k, e)| (k.clone(), e.severity));
            match victim {
                // Never drop a more severe event to keep a less severe one.
                Some((key, sev)) if severity_rank(sev) <= severity_rank(incoming_severity) => {
                    if let Some(e) = self.index.remove(&key) {
                        let _ = fs::remove_file(&e.path);
                        self.bytes = self.bytes.saturating_sub(e.bytes);
                        self.dropped_total += 1;
                        self.counters_dirty = true;
                        log::warn!("spool full: dropped event {} (seq {})", key.1, key.0);
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Durably stores an event. On `Ok` it survives a power cut; on `Err` it was dropped and
    /// counted, and the spool is as it was.
    pub fn push(&mut self, event: &IncidentEvent) -> Result<(), SpoolError> {
        let result = self.push_inner(event);
        if result.is_err() {
            self.dropped_total += 1;
            self.counters_dirty = true;
        }
        self.persist_counters();
        result
    }

    fn push_inner(&mut self, event: &IncidentEvent) -> Result<(), SpoolError> {
        let buf = encode(event)?;
        if !self.make_room(buf.len() as u64, event.severity) {
            log::warn!(
                "spool full of more severe events: dropping new event {}",
                event.event_id
            );
            return Err(SpoolError::Io {
                path: self.dir.display().to_string(),
                source: io::Error::other("spool full"),
            });
        }
        let name = format!("{:020}-{}.evt", event.seq, event.event_id);
        let final_path = self.dir.join(&name);
        let tmp_path = self.dir.join(format!("{name}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp_path)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            fs::rename(&tmp_path, &final_path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp_path);
            return Err(io_err(&tmp_path)(e));
        }
        sync_dir(&self.dir)?;
        self.bytes += buf.len() as u64;
        self.max_seq = self.max_seq.max(event.seq);
        self.index.insert(
            (event.seq, event.event_id.clone()),
            Entry {
                path: final_path,
                bytes: buf.len() as u64,
                severity: event.severity,
            },
        );
        Ok(())
    }

    /// Up to `limit` undelivered events, oldest first. Files that turn out unreadable are
    /// quarantined on the way.
    pub fn pending(&mut self, limit: usize) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for (key, entry) in &self.index {
            if out.len() >= limit {
                break;
            }
            match read_file(&entry.path) {
                Ok(ev) => out.push(ev),
                Err(why) => {
                    log::warn!("spool: quarantining {}: {why}", entry.path.display());
                    bad.push(key.clone());
                }
            }
        }
        for key in bad {
            if let Some(e) = self.index.remove(&key) {
                self.bytes = self.bytes.saturating_sub(e.bytes);
                let name = e
                    .path
                    .file_name()
                    .map_or_else(|| key.1.clone(), |n| n.to_string_lossy().into_owned());
                self.quarantine_file(&e.path, &name);
            }
        }
        self.persist_counters();
        out
    }

    /// Deletes events the collector acknowledged.
    pub fn ack(&mut self, event_ids: &[String]) -> Result<usize, SpoolError> {
        let wanted: std::collections::HashSet<&str> =
            event_ids.iter().map(String::as_str).collect();
        let keys: Vec<_> = self
            .index
            .keys()
            .filter(|(_, id)| wanted.contains(id.as_str()))
            .cloned()
            .collect();
        for key in &keys {
            if let Some(e) = self.index.remove(key) {
                match fs::remove_file(&e.path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err(&e.path)(err)),
                }
                self.bytes = self.bytes.saturating_sub(e.bytes);
            }
        }
        if !keys.is_empty() {
            sync_dir(&self.dir)?;
            // Space was freed: counters that could not be written on a full disk go now.
            self.persist_counters();
        }
        Ok(keys.len())
    }

    /// Moves an event the collector refused (400) out of the delivery queue, keeping it with
    /// the reason for an engineer to inspect. It is never retried.
    pub fn set_aside(&mut self, event_id: &str, reason: &str) -> Result<(), SpoolError> {
        let Some(key) = self.index.keys().find(|(_, id)| id == event_id).cloned() else {
            return Ok(());
        };
        if let Some(e) = self.index.remove(&key) {
            self.bytes = self.bytes.saturating_sub(e.bytes);
            let name = e.path.file_name().map_or_else(
                || format!("{event_id}.evt"),
                |n| n.to_string_lossy().into_owned(),
            );
            let target = self.rejected.join(&name);
            fs::rename(&e.path, &target).map_err(io_err(&e.path))?;
            let mut reason_file = self.rejected.join(name);
            reason_file.set_extension("reason");
            create_nofollow(&reason_file)
                .and_then(|mut f| f.write_all(reason.as_bytes()))
                .map_err(io_err(&reason_file))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<IncidentEvent, String> {
    let mut buf = Vec::new();
    open_nofollow(path)
        .and_then(|f| {
            f.take(MAX_EVENT_BYTES as u64 + HEADER_LEN as u64 + 1)
                .read_to_end(&mut buf)
        })
        .map_err(|e| format!("unreadable: {e}"))?;
    decode_frame(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmedic_proto::{Category, CheckId, EventKind, Timestamp};

    fn ev(seq: u64, severity: Severity) -> IncidentEvent {
        IncidentEvent {
            event_id: format!("e{seq}"),
            incident_id: "i1".into(),
            seq,
            kind: EventKind::Opened,
            check: CheckId::DefaultRoute,
            cause: "default_route_missing".into(),
            category: Category::NoInternet,
            severity,
            started_at: Timestamp::EPOCH,
            at: Timestamp::EPOCH,
            summary: "no default route".into(),
            evidence: Default::default(),
            actions: vec![],
            auto_healed: None,
            experiment: None,
        }
    }

    #[test]
    fn events_survive_reopen_and_leave_only_when_acked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        for i in 1..=3 {
            s.push(&ev(i, Severity::Critical)).unwrap();
        }
        drop(s);
        let (mut s, rec) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        assert_eq!(rec.events, 3);
        assert_eq!(s.max_seq(), 3);
        let pending: Vec<_> = s.pending(10).into_iter().map(|e| e.seq).collect();
        assert_eq!(pending, [1, 2, 3]);
        assert_eq!(s.ack(&["e2".into(), "unknown".into()]).unwrap(), 1);
        drop(s);
        let (mut s, _) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        let pending: Vec<_> = s.pending(10).into_iter().map(|e| e.seq).collect();
        assert_eq!(pending, [1, 3]);
    }

    #[test]
    fn corrupt_and_torn_files_are_quarantined_and_new_events_still_flow() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        s.push(&ev(1, Severity::Critical)).unwrap();
        s.push(&ev(2, Severity::Critical)).unwrap();
        drop(s);
        let mut files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "evt"))
            .collect();
        files.sort();
        let mut bytes = fs::read(&files[0]).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        fs::write(&files[0], bytes).unwrap();
        let torn = fs::read(&files[1]).unwrap();
        fs::write(&files[1], &torn[..torn.len() / 2]).unwrap();
        fs::write(dir.path().join("x.evt.tmp"), b"partial").unwrap();
        let (mut s, rec) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        assert_eq!(
            rec,
            Recovery {
                events: 0,
                quarantined: 2,
                temp_files_removed: 1
            }
        );
        assert_eq!(
            fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
            2
        );
        s.push(&ev(3, Severity::Minor)).unwrap();
        assert_eq!(s.pending(10).len(), 1);
    }

    #[test]
    fn bound_drops_least_severe_oldest_first_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 3, 1 << 20).unwrap();
        s.push(&ev(1, Severity::Critical)).unwrap();
        s.push(&ev(2, Severity::Minor)).unwrap();
        s.push(&ev(3, Severity::Minor)).unwrap();
        s.push(&ev(4, Severity::Major)).unwrap();
        let seqs: Vec<_> = s.pending(10).into_iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3, 4]);
        assert_eq!(s.dropped_total(), 1);
        // A minor event never evicts more severe ones: it is the one dropped.
        s.push(&ev(5, Severity::Critical)).unwrap();
        assert!(s.push(&ev(6, Severity::Minor)).is_err());
        let seqs: Vec<_> = s.pending(10).into_iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 4, 5]);
        assert_eq!(s.dropped_total(), 3);
    }

    #[test]
    fn counters_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1, 1 << 20).unwrap();
        s.push(&ev(1, Severity::Critical)).unwrap();
        assert!(s.push(&ev(2, Severity::Minor)).is_err());
        drop(s);
        let name = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "evt"))
            .unwrap();
        fs::write(&name, b"garbage").unwrap();
        let (s, _) = Spool::open(dir.path(), 1, 1 << 20).unwrap();
        assert_eq!((s.dropped_total(), s.quarantined_total()), (1, 1));
        drop(s);
        let (s, _) = Spool::open(dir.path(), 1, 1 << 20).unwrap();
        assert_eq!((s.dropped_total(), s.quarantined_total()), (1, 1));
    }

    #[test]
    fn a_seq_beyond_max_is_quarantined_and_never_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = ev(1, Severity::Critical);
        e.seq = u64::MAX;
        let payload = serde_json::to_vec(&e).unwrap();
        let mut buf = MAGIC.to_vec();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        assert!(decode_frame(&buf).unwrap_err().contains("sequence number"));
        fs::write(dir.path().join("x.evt"), &buf).unwrap();
        let (mut s, rec) = Spool::open(dir.path(), 10, 1 << 20).unwrap();
        assert_eq!((rec.events, rec.quarantined, s.max_seq()), (0, 1, 0));
        assert!(matches!(s.push(&e), Err(SpoolError::SeqOutOfRange(_))));
        assert_eq!(parse_seq("18446744073709551615"), None);
        assert_eq!(parse_seq(" 42\n"), Some(42));
    }

    #[test]
    fn a_quarantine_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        fs::create_dir(&spool).unwrap();
        std::os::unix::fs::symlink(outside.path(), spool.join("quarantine")).unwrap();
        std::os::unix::fs::symlink(outside.path(), spool.join("rejected")).unwrap();
        fs::write(spool.join("bad.evt"), b"garbage").unwrap();
        let (_s, rec) = Spool::open(&spool, 10, 1 << 20).unwrap();
        assert_eq!(rec.quarantined, 1);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let q = fs::symlink_metadata(spool.join("quarantine")).unwrap();
        assert!(q.is_dir());
        assert_eq!(fs::read_dir(spool.join("quarantine")).unwrap().count(), 1);
    }

    #[test]
    fn set_aside_keeps_the_event_and_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 10, 1 << 20).unwrap();
        s.push(&ev(1, Severity::Critical)).unwrap();
        s.set_aside("e1", "400 invalid_report: summary too long")
            .unwrap();
        assert_eq!(s.depth(), 0);
        let names: Vec<_> = fs::read_dir(dir.path().join("rejected"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
