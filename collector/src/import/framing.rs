//! Splits a CSV stream into records by physical lines before the csv parser sees them, so one
//! broken row cannot take the rest of the file with it.
//!
//! A record is one line, or several when a quoted field holds line breaks. A quote that is still
//! open after [`MAX_RECORD_LINES`] lines or [`MAX_RECORD_BYTES`] bytes, or at the end of the
//! input, or a multi-line record whose field count does not match the header, is taken to be an
//! unterminated quote: that row is reported with its own line and reading resumes at the line
//! after it (the lines read ahead are replayed, never dropped).

use std::collections::VecDeque;
use std::io::{self, BufRead};

/// Most physical lines one quoted record may span.
pub const MAX_RECORD_LINES: usize = 100;
/// Most bytes one record may hold.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// One framed record.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// The fields of a record that starts at `line`.
    Record { line: u64, fields: Vec<Vec<u8>> },
    /// A row starting at `line` whose quote never closes (or that is too long).
    Unterminated { line: u64 },
    /// A row starting at `line` the csv parser refused.
    Malformed { line: u64, reason: String },
}

/// Reads physical lines (as bytes) and frames them into records.
pub struct Framer<R> {
    input: R,
    /// Lines read ahead and handed back after an unterminated quote.
    pending: VecDeque<(u64, Vec<u8>)>,
    line: u64,
}

impl<R: BufRead> Framer<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            pending: VecDeque::new(),
            line: 0,
        }
    }

    fn physical(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        if self.input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        Ok(Some((self.line, buf)))
    }

    /// The next record; `expected_fields` (the header's width, once known) decides whether a
    /// multi-line record is real or an unterminated quote that swallowed its neighbours.
    pub fn next_frame(&mut self, expected_fields: Option<usize>) -> io::Result<Option<Frame>> {
        let (line, mut text) = loop {
            match self.physical()? {
                None => return Ok(None),
                Some((_, l)) if l.iter().all(u8::is_ascii_whitespace) => continue,
                Some(l) => break l,
            }
        };
        let mut open = odd_quotes(&text);
        let mut ahead: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut unterminated = false;
        while open {
            if ahead.len() + 1 >= MAX_RECORD_LINES || text.len() > MAX_RECORD_BYTES {
                unterminated = true;
                break;
            }
            let Some(next) = self.physical()? else {
                unterminated = true;
                break;
            };
            text.extend_from_slice(&next.1);
            open ^= odd_quotes(&next.1);
            ahead.push(next);
        }
        if !unterminated && text.len() > MAX_RECORD_BYTES {
            unterminated = true;
        }
        let parsed = if unterminated {
            None
        } else {
            Some(parse(&text))
        };
        let frame = match parsed {
            Some(Ok(fields))
                if ahead.is_empty()
                    || (strict(&text) && expected_fields.is_none_or(|n| n == fields.len())) =>
            {
                return Ok(Some(Frame::Record { line, fields }));
            }
            Some(Err(reason)) if ahead.is_empty() => Frame::Malformed { line, reason },
            _ => Frame::Unterminated { line },
        };
        // Resync: the lines read ahead are read again as rows of their own.
        for l in ahead.into_iter().rev() {
            self.pending.push_front(l);
        }
        Ok(Some(frame))
    }
}

/// Whether a line holds an odd number of quote characters (`""` escapes count two).
fn odd_quotes(line: &[u8]) -> bool {
    line.iter().filter(|b| **b == b'"').count() % 2 == 1
}

/// Whether a record follows RFC 4180 quoting: a closing quote is followed by a comma or the
/// end of the line. A multi-line record must pass this, or it is an unterminated quote that
/// happened to be closed by a quote of a later row.
fn strict(text: &[u8]) -> bool {
    #[derive(Clone, Copy)]
    enum S {
        Start,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut s = S::Start;
    for &b in text {
        s = match (s, b) {
            (S::Start, b'"') => S::Quoted,
            (S::Start | S::Unquoted, b',') => S::Start,
            (S::Start | S::Unquoted, _) => S::Unquoted,
            (S::Quoted, b'"') => S::QuoteInQuoted,
            (S::Quoted, _) => S::Quoted,
            (S::QuoteInQuoted, b'"') => S::Quoted,
            (S::QuoteInQuoted, b',') => S::Start,
            (S::QuoteInQuoted, b'\r' | b'\n') => S::Unquoted,
            (S::QuoteInQuoted, _) => return false,
        };
    }
    !matches!(s, S::Quoted)
}

/// Parses one framed record with the csv parser.
fn parse(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(text.len().clamp(64, 64 * 1024))
        .from_reader(text);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => Ok(record.iter().map(<[u8]>::to_vec).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frames(text: &str, width: usize) -> Vec<Frame> {
        let mut f = Framer::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(x) = f.next_frame(Some(width)).unwrap() {
            out.push(x);
        }
        out
    }

    fn lines(fr: &[Frame]) -> Vec<(u64, bool)> {
        fr.iter()
            .map(|f| match f {
                Frame::Record { line, .. } => (*line, true),
                Frame::Unterminated { line } | Frame::Malformed { line, .. } => (*line, false),
            })
            .collect()
    }

    #[test]
    fn multi_line_fields_are_one_record() {
        let fr = frames("a,b\n1,\"x\ny\"\n2,z\n", 2);
        assert_eq!(lines(&fr), [(1, true), (2, true), (4, true)]);
        assert!(
            matches!(&fr[1], Frame::Record { fields, .. } if fields[1] == b"x\ny"),
            "{fr:?}"
        );
    }

    #[test]
    fn an_unterminated_quote_loses_only_its_own_row() {
        let fr = frames("a,b\n1,\"x\n2,y\n3,z\n", 2);
        assert_eq!(lines(&fr), [(1, true), (2, false), (3, true), (4, true)]);
        // The quote closes later, but the swallowed span has the wrong width.
        let fr = frames("a,b\n1,\"x\n2,y\n3,\"z\"\"\n4,w\n", 2);
        assert_eq!(lines(&fr)[1], (2, false));
        assert_eq!(lines(&fr)[2], (3, true));
    }
}
