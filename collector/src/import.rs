//! Imports of customer-experience data (docs/design.md, "Customer-experience model"): subscribers,
//! surveys and contacts, from CSV (with a header row) or JSON Lines, **streamed** — a source hands
//! out one validated row at a time, and the store commits them in batches
//! ([`IMPORT_BATCH_ROWS`]), so a file of millions of rows needs little memory.
//!
//! A bad row is reported with its line number and reason and skipped; nothing already accepted
//! is ever dropped. In strict mode the whole import runs in one transaction and any bad row rolls
//! it back: nothing is written. Rows are upserted by their id, so re-importing a file changes
//! nothing.

use netmedic_proto::Timestamp;
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

mod framing;
pub use crate::store::records::{
    BadRow, ContactRow, IMPORT_BATCH_ROWS, ImportError, ImportFormat, ImportKind, ImportReport,
    MAX_LISTED_BAD_ROWS, Record, RowSource, SubscriberRow, SurveyRow,
};

/// Longest id (customer, survey, contact, access node, ...).
const MAX_ID_CHARS: usize = 128;
/// Longest free text (a survey verbatim).
const MAX_TEXT_CHARS: usize = 4096;

/// Opens a source over `input` (CSV reads and checks its header now).
pub fn source(
    kind: ImportKind,
    format: ImportFormat,
    input: Box<dyn Read + Send>,
) -> Result<Box<dyn RowSource>, ImportError> {
    match format {
        ImportFormat::Csv => Ok(Box::new(CsvSource::new(kind, input)?)),
        ImportFormat::Jsonl => Ok(Box::new(JsonlSource {
            kind,
            input: BufReader::with_capacity(64 * 1024, input),
            line: 0,
            buf: Vec::new(),
        })),
    }
}

struct CsvSource {
    kind: ImportKind,
    framer: framing::Framer<BufReader<Box<dyn Read + Send>>>,
    /// Index of each of `kind.columns()` in the file, if present.
    index: Vec<Option<usize>>,
    width: usize,
}

impl CsvSource {
    fn new(kind: ImportKind, input: Box<dyn Read + Send>) -> Result<Self, ImportError> {
        let mut framer = framing::Framer::new(BufReader::with_capacity(64 * 1024, input));
        let header = match framer.next_frame(None) {
            Err(e) => return Err(ImportError::Header(e.to_string())),
            Ok(None) => return Err(ImportError::Header("the input is empty".into())),
            Ok(Some(framing::Frame::Record { fields, .. })) => fields,
            Ok(Some(framing::Frame::Unterminated { .. })) => {
                return Err(ImportError::Header("unterminated quote".into()));
            }
            Ok(Some(framing::Frame::Malformed { reason, .. })) => {
                return Err(ImportError::Header(reason));
            }
        };
        let names = header
            .iter()
            .map(|h| {
                std::str::from_utf8(h)
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
                    .map_err(|_| ImportError::Header("not valid UTF-8".into()))
            })
            .collect::<Result<Vec<String>, _>>()?;
        let known = kind.columns();
        for n in &names {
            let n = if n == "agent_id" { "device_id" } else { n };
            if !known.iter().any(|(k, _)| *k == n) {
                let all: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
                return Err(ImportError::Header(format!(
                    "unknown column {n:?} for {}; the columns are {}",
                    kind.as_str(),
                    all.join(", ")
                )));
            }
        }
        let index: Vec<Option<usize>> = known
            .iter()
            .map(|(k, _)| {
                names
                    .iter()
                    .position(|n| n == k || (*k == "device_id" && n == "agent_id"))
            })
            .collect();
        for ((k, required), i) in known.iter().zip(&index) {
            if *required && i.is_none() {
                return Err(ImportError::Header(format!(
                    "the required column {k:?} is missing"
                )));
            }
        }
        Ok(Self {
            kind,
            framer,
            index,
            width: names.len(),
        })
    }
}

impl RowSource for CsvSource {
    fn kind(&self) -> ImportKind {
        self.kind
    }

    fn format(&self) -> ImportFormat {
        ImportFormat::Csv
    }

    fn next_row(&mut self) -> Result<Option<Result<Record, BadRow>>, ImportError> {
        let frame = self
            .framer
            .next_frame(Some(self.width))
            .map_err(|e| ImportError::Read {
                line: 0,
                message: e.to_string(),
            })?;
        let (line, fields) = match frame {
            None => return Ok(None),
            Some(framing::Frame::Record { line, fields }) => (line, fields),
            Some(framing::Frame::Unterminated { line }) => {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: format!(
                        "unterminated quote (a quoted field must close within {} lines); \
                         reading resumed at the next line",
                        framing::MAX_RECORD_LINES
                    ),
                })));
            }
            Some(framing::Frame::Malformed { line, reason }) => {
                return Ok(Some(Err(BadRow { line, reason })));
            }
        };
        if fields.len() != self.width {
            return Ok(Some(Err(BadRow {
                line,
                reason: format!("{} fields, the header has {}", fields.len(), self.width),
            })));
        }
        let Ok(fields) = fields
            .into_iter()
            .map(String::from_utf8)
            .collect::<Result<Vec<String>, _>>()
        else {
            return Ok(Some(Err(BadRow {
                line,
                reason: "not valid UTF-8".into(),
            })));
        };
        let index = &self.index;
        let get = |i: usize| -> Result<Option<Cow<'_, str>>, String> {
            Ok(index
                .get(i)
                .copied()
                .flatten()
                .and_then(|c| fields.get(c))
                .map(|f| Cow::Borrowed(f.as_str())))
        };
        Ok(Some(
            parse_record(self.kind, get).map_err(|reason| BadRow { line, reason }),
        ))
    }
}

struct JsonlSource {
    kind: ImportKind,
    input: BufReader<Box<dyn Read + Send>>,
    line: u64,
    buf: Vec<u8>,
}

impl RowSource for JsonlSource {
    fn kind(&self) -> ImportKind {
        self.kind
    }

    fn format(&self) -> ImportFormat {
        ImportFormat::Jsonl
    }

    fn next_row(&mut self) -> Result<Option<Result<Record, BadRow>>, ImportError> {
        loop {
            self.buf.clear();
            self.line += 1;
            let line = self.line;
            // Bytes up to the newline, decoded per line: a bad line never touches the next.
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ImportError::Read {
                    line,
                    message: e.to_string(),
                })?;
            if n == 0 {
                return Ok(None);
            }
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: "not valid UTF-8".into(),
                })));
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
                Ok(o) => o,
                Err(e) => {
                    return Ok(Some(Err(BadRow {
                        line,
                        reason: format!("not a JSON object: {e}"),
                    })));
                }
            };
            let cols = self.kind.columns();
            if let Some(k) = obj.keys().find(|k| {
                let k = if *k == "agent_id" {
                    "device_id"
                } else {
                    k.as_str()
                };
                !cols.iter().any(|(c, _)| *c == k)
            }) {
                return Ok(Some(Err(BadRow {
                    line,
                    reason: format!("unknown field {k:?}"),
                })));
            }
            let get = |i: usize| -> Result<Option<Cow<'_, str>>, String> {
                let Some((name, _)) = cols.get(i) else {
                    return Ok(None);
                };
                let v = obj.get(*name).or_else(|| {
                    (*name == "device_id")
                        .then(|| obj.get("agent_id"))
                        .flatten()
                });
                match v {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(Cow::Borrowed(s.as_str()))),
                    Some(serde_json::Value::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
                    Some(_) => Err(format!("{name}: expected a string or a number")),
                }
            };
            return Ok(Some(
                parse_record(self.kind, get).map_err(|reason| BadRow { line, reason }),
            ));
        }
    }
}

/// Validates one row given a getter of the `i`-th column of `kind.columns()`.
fn parse_record<'a>(
    kind: ImportKind,
    get: impl Fn(usize) -> Result<Option<Cow<'a, str>>, String>,
) -> Result<Record, String> {
    let cols = kind.columns();
    // Trimmed, empty → None.
    let opt = |i: usize| -> Result<Option<String>, String> {
        Ok(get(i)?
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()))
    };
    let name = |i: usize| cols.get(i).map_or("?", |c| c.0);
    let req = |i: usize| -> Result<String, String> {
        opt(i)?.ok_or_else(|| format!("{} is missing", name(i)))
    };
    let id = |i: usize, v: String| -> Result<String, String> {
        if v.chars().count() > MAX_ID_CHARS || v.chars().any(char::is_control) {
            Err(format!(
                "{}: {:?} is not an id (1..={MAX_ID_CHARS} characters, no control characters)",
                name(i),
                trunc(&v)
            ))
        } else {
            Ok(v)
        }
    };
    let opt_id =
        |i: usize| -> Result<Option<String>, String> { opt(i)?.map(|v| id(i, v)).transpose() };
    let time = |i: usize, v: String| -> Result<i64, String> {
        v.parse::<Timestamp>()
            .map(|t| t.unix_millis())
            .map_err(|_| format!("{}: {:?} is not an RFC 3339 timestamp", name(i), trunc(&v)))
    };
    let int = |i: usize, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, String> {
        match opt(i)? {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(format!(
                    "{}: {:?} is not an integer in {}..={}",
                    name(i),
                    trunc(&v),
                    range.start(),
                    range.end()
                )),
            },
        }
    };
    match kind {
        ImportKind::Subscribers => {
            let agent_id = req(0)?;
            if !crate::fleet::valid_id(&agent_id) {
                return Err(format!(
                    "device_id: {:?} is not a device id (1..=64 of A-Z a-z 0-9 . _ : -)",
                    trunc(&agent_id)
                ));
            }
            Ok(Record::Subscriber(SubscriberRow {
                agent_id,
                customer_id: id(1, req(1)?)?,
                region: opt_id(2)?,
                access_node: opt_id(3)?,
                plan: opt_id(4)?,
                cpe_model: opt_id(5)?,
                firmware: opt_id(6)?,
            }))
        }
        ImportKind::Surveys => {
            let survey_id = id(0, req(0)?)?;
            let customer_id = id(1, req(1)?)?;
            let answered_at_ms = time(2, req(2)?)?;
            let nps = int(3, 0..=10)?;
            let csat = int(4, 1..=5)?;
            if nps.is_none() && csat.is_none() {
                return Err("neither nps nor csat is given".into());
            }
            let verbatim = opt(6)?;
            if let Some(v) = &verbatim
                && v.chars().count() > MAX_TEXT_CHARS
            {
                return Err(format!("verbatim: longer than {MAX_TEXT_CHARS} characters"));
            }
            Ok(Record::Survey(SurveyRow {
                survey_id,
                customer_id,
                answered_at_ms,
                nps,
                csat,
                channel: opt_id(5)?,
                verbatim,
            }))
        }
        ImportKind::Contacts => {
            let contact_id = id(0, req(0)?)?;
            let customer_id = id(1, req(1)?)?;
            let created_at_ms = time(2, req(2)?)?;
            let resolved_at_ms = opt(5)?.map(|v| time(5, v)).transpose()?;
            if let Some(r) = resolved_at_ms
                && r < created_at_ms
            {
                return Err("resolved_at is before created_at".into());
            }
            Ok(Record::Contact(ContactRow {
                contact_id,
                customer_id,
                created_at_ms,
                channel: opt_id(3)?,
                reason: opt_id(4)?,
                resolved_at_ms,
            }))
        }
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rows(kind: ImportKind, format: ImportFormat, text: &str) -> Vec<Result<Record, BadRow>> {
        let mut src = source(
            kind,
            format,
            Box::new(std::io::Cursor::new(text.to_owned())),
        )
        .unwrap();
        let mut out = Vec::new();
        while let Some(r) = src.next_row().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn csv_rows_are_validated_with_their_line_numbers() {
        let text = "survey_id,customer_id,answered_at,nps,csat,channel,verbatim\n\
                    s1,c1,2025-01-02T03:04:05Z,9,,email,\"great, thanks\"\n\
                    s2,c1,yesterday,9,,email,\n\
                    s3,c2,2025-01-02T03:04:05Z,11,,,\n\
                    s4,c2,2025-01-02T03:04:05Z,,,,\n\
                    s5,c2\n\
                    s6,c3,2025-01-02T03:04:05Z,,4,sms,\"multi\nline\"\n\
                    s7,c3,2025-01-02T03:04:05Z,0,1,,\n";
        let r = rows(ImportKind::Surveys, ImportFormat::Csv, text);
        assert_eq!(r.len(), 7);
        assert!(
            matches!(&r[0], Ok(Record::Survey(s)) if s.nps == Some(9) && s.verbatim.as_deref() == Some("great, thanks"))
        );
        let bad: Vec<(u64, &str)> = r
            .iter()
            .filter_map(|x| x.as_ref().err().map(|b| (b.line, b.reason.as_str())))
            .collect();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert_eq!(bad[0].0, 3);
        assert!(bad[0].1.contains("answered_at"), "{bad:?}");
        assert_eq!(bad[1].0, 4);
        assert!(bad[1].1.contains("nps"));
        assert_eq!(bad[2].0, 5);
        assert!(bad[2].1.contains("neither"));
        assert_eq!(bad[3].0, 6);
        assert!(bad[3].1.contains("fields"));
        assert!(r[5].is_ok());
        assert!(r[6].is_ok());
    }

    #[test]
    fn csv_header_problems_are_fatal() {
        let bad = |t: &str| {
            source(
                ImportKind::Contacts,
                ImportFormat::Csv,
                Box::new(std::io::Cursor::new(t.to_owned())),
            )
            .err()
            .unwrap()
            .to_string()
        };
        assert!(bad("contact_id,customer_id\n").contains("created_at"));
        assert!(bad("contact_id,customer_id,created_at,colour\n").contains("colour"));
    }

    #[test]
    fn jsonl_rows_with_line_numbers() {
        let text = "{\"device_id\":\"cpe-1\",\"customer_id\":\"c1\",\"access_node\":\"olt-1\"}\n\
                    \n\
                    {\"device_id\":\"bad id!\",\"customer_id\":\"c1\"}\n\
                    not json\n\
                    {\"device_id\":\"cpe-2\",\"customer_id\":7,\"plan\":null}\n\
                    {\"device_id\":\"cpe-3\",\"customer_id\":\"c\",\"colour\":\"red\"}\n";
        let r = rows(ImportKind::Subscribers, ImportFormat::Jsonl, text);
        assert_eq!(r.len(), 5);
        assert!(r[0].is_ok());
        assert_eq!(r[1].as_ref().unwrap_err().line, 3);
        assert_eq!(r[2].as_ref().unwrap_err().line, 4);
        assert!(matches!(&r[3], Ok(Record::Subscriber(s)) if s.customer_id == "7"));
        assert!(r[4].as_ref().unwrap_err().reason.contains("colour"));
    }

    #[test]
    fn contacts_resolved_before_created_is_refused() {
        let r = rows(
            ImportKind::Contacts,
            ImportFormat::Csv,
            "contact_id,customer_id,created_at,resolved_at\n\
             k1,c1,2025-01-02T00:00:00Z,2025-01-01T00:00:00Z\n",
        );
        assert!(r[0].as_ref().unwrap_err().reason.contains("before"));
    }
}
