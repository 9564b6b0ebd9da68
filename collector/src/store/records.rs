//! The records of customer-experience imports (subscribers, surveys, contacts), the import's
//! report and error, and the row stream the store consumes. They belong to the store, which
//! defines what it can import; the `import` module parses files into them.

use serde::{Deserialize, Serialize};

/// Rows committed per transaction in a non-strict import.
pub const IMPORT_BATCH_ROWS: usize = 5000;
/// Bad rows listed in an [`ImportReport`] (all are counted).
pub const MAX_LISTED_BAD_ROWS: usize = 10_000;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Subscribers,
    Surveys,
    Contacts,
}

impl ImportKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscribers" => Some(Self::Subscribers),
            "surveys" => Some(Self::Surveys),
            "contacts" => Some(Self::Contacts),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribers => "subscribers",
            Self::Surveys => "surveys",
            Self::Contacts => "contacts",
        }
    }

    /// (column, required) in the documented order.
    pub fn columns(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Subscribers => &[
                ("device_id", true),
                ("customer_id", true),
                ("region", false),
                ("access_node", false),
                ("plan", false),
                ("cpe_model", false),
                ("firmware", false),
            ],
            Self::Surveys => &[
                ("survey_id", true),
                ("customer_id", true),
                ("answered_at", true),
                ("nps", false),
                ("csat", false),
                ("channel", false),
                ("verbatim", false),
            ],
            Self::Contacts => &[
                ("contact_id", true),
                ("customer_id", true),
                ("created_at", true),
                ("channel", false),
                ("reason", false),
                ("resolved_at", false),
            ],
        }
    }
}

/// File format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    Csv,
    Jsonl,
}

impl ImportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }

    /// From a file name's extension (`.jsonl`/`.ndjson` → JSON Lines, anything else CSV).
    pub fn guess(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Self::Jsonl,
            _ => Self::Csv,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRow {
    pub agent_id: String,
    pub customer_id: String,
    pub region: Option<String>,
    pub access_node: Option<String>,
    pub plan: Option<String>,
    pub cpe_model: Option<String>,
    pub firmware: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyRow {
    pub survey_id: String,
    pub customer_id: String,
    pub answered_at_ms: i64,
    pub nps: Option<i64>,
    pub csat: Option<i64>,
    pub channel: Option<String>,
    pub verbatim: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub contact_id: String,
    pub customer_id: String,
    pub created_at_ms: i64,
    pub channel: Option<String>,
    pub reason: Option<String>,
    pub resolved_at_ms: Option<i64>,
}

/// One validated row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Subscriber(SubscriberRow),
    Survey(SurveyRow),
    Contact(ContactRow),
}

/// A refused row: its 1-based line in the file and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub kind: ImportKind,
    pub format: ImportFormat,
    pub strict: bool,
    /// Data rows read (header and blank lines excluded).
    pub rows: u64,
    /// Rows written (inserted or updated in place; 0 when a strict import was rolled back).
    pub taken: u64,
    /// Rows refused.
    pub skipped: u64,
    /// The refused rows (the first [`MAX_LISTED_BAD_ROWS`]).
    pub bad_rows: Vec<BadRow>,
    /// Refused rows beyond those listed.
    pub bad_rows_not_listed: u64,
    /// False when a strict import found bad rows and wrote nothing.
    pub committed: bool,
}

impl ImportReport {
    pub fn new(kind: ImportKind, format: ImportFormat, strict: bool) -> Self {
        Self {
            kind,
            format,
            strict,
            rows: 0,
            taken: 0,
            skipped: 0,
            bad_rows: Vec::new(),
            bad_rows_not_listed: 0,
            committed: true,
        }
    }

    pub fn refuse(&mut self, bad: BadRow) {
        self.skipped += 1;
        if self.bad_rows.len() < MAX_LISTED_BAD_ROWS {
            self.bad_rows.push(bad);
        } else {
            self.bad_rows_not_listed += 1;
        }
    }

    /// One line for people: `surveys: 10 rows read, 8 taken, 2 skipped`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} rows read, {} taken, {} skipped",
            self.kind.as_str(),
            self.rows,
            self.taken,
            self.skipped
        );
        if !self.committed {
            s.push_str(" (strict: bad rows found, nothing was written)");
        }
        s
    }
}

/// Why an import stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the input at line {line}: {message}")]
    Read { line: u64, message: String },
    #[error("bad header: {0}")]
    Header(String),
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// A stream of validated rows.
pub trait RowSource: Send {
    fn kind(&self) -> ImportKind;
    fn format(&self) -> ImportFormat;
    /// The next row (`Ok(None)` at the end); a bad row is `Some(Err(..))` and reading goes on;
    /// `Err` is fatal (unreadable input).
    fn next_row(&mut self) -> Result<Option<Result<Record, BadRow>>, ImportError>;
}
