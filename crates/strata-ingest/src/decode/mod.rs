//! Record decoders for untrusted text files (NDJSON, JSON documents, CSV) feeding the bronze
//! layer, which keeps every value as the literal text the source spelled.
//!
//! A decoder is a pull iterator over [`Record`]s. Every record it finds comes back, usable
//! ([`Body::Fields`]) or not ([`Body::Corrupt`], with the bytes and a reason), so that nothing
//! in a file is dropped silently. [`count`] counts the same records with separate, deliberately
//! duplicated scanning code; ingestion compares the two numbers to catch decoder bugs. For every
//! input, `records returned + (1 if next_record returned Err) == count.records`.
//!
//! Conventions shared by all formats:
//! - A UTF-8 byte order mark at the very start of the stream is skipped; it belongs to no record
//!   (the first record's `offset` is then 3).
//! - Positions in reasons ("byte N", "column N") are 1-based, as an editor shows them;
//!   [`Record::offset`] is a 0-based stream offset.
//! - Records are never longer in memory than [`Limits::max_record_bytes`] (plus one byte for a
//!   possible `\r`): a longer one is read and discarded in chunks and reported with `raw: None`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, BufRead};

pub mod count;
pub mod csv;
pub mod json;

/// Bounds that keep one hostile record from exhausting memory or the parser's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest record kept in memory, in bytes, excluding the line terminator.
    pub max_record_bytes: usize,
    /// Deepest JSON nesting accepted (a flat object is 1 level).
    pub max_nesting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 64 * 1024 * 1024,
            max_nesting: 64,
        }
    }
}

/// One field value as the source spelled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// The exact JSON text of a non-null JSON value (string with its quotes and escapes, number
    /// literal, true/false, object or array source bytes).
    Json(String),
    /// A CSV field's text (already decoded to UTF-8, quotes removed, escapes resolved).
    Text(String),
}

impl FieldValue {
    /// The text bronze stores: a JSON string unescaped (no quotes), any other JSON value its
    /// exact source text (a 40-digit integer keeps every digit; `12.50` stays `12.50`; an object
    /// keeps its bytes verbatim including inner whitespace); CSV text as is.
    pub fn bronze_text(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Text(text) => Cow::Borrowed(text),
            FieldValue::Json(json) => {
                let Some(inner) = json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
                    return Cow::Borrowed(json);
                };
                if !inner.contains('\\') {
                    return Cow::Borrowed(inner);
                }
                // A value built outside the decoders may not be valid JSON; its text is still
                // the most faithful thing to store.
                match serde_json::from_str::<String>(json) {
                    Ok(unescaped) => Cow::Owned(unescaped),
                    Err(_) => Cow::Borrowed(json),
                }
            }
        }
    }

    /// The value as JSON text for the `_rescued_data` object: JSON values verbatim, CSV text as
    /// a JSON string.
    pub fn rescued_json(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Json(json) => Cow::Borrowed(json),
            FieldValue::Text(text) => Cow::Owned(json_string(text)),
        }
    }
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Fields in source order, duplicates included (the caller decides what to do with a
    /// repeated name). None = JSON null, or an empty unquoted CSV field.
    Fields(Vec<(String, Option<FieldValue>)>),
    /// A record that cannot be used. `raw` is the record's bytes, or None when it is longer than
    /// max_record_bytes (then it was skipped without buffering).
    Corrupt {
        raw: Option<Vec<u8>>,
        reason: String,
    },
}

/// One record and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based physical line where the record starts (NDJSON, CSV); 0-based index of the
    /// document (JSON array elements, or objects of a .json sequence).
    pub line: u64,
    /// Byte offset of the record's first byte in the (decompressed) stream, and its length in
    /// bytes (excluding the line terminator).
    pub offset: u64,
    pub len: u64,
    pub body: Body,
}

/// A pull decoder. `Ok(None)` at the end. An `Err` is an I/O error of the underlying stream (for
/// example a truncated gzip member): the caller records it and stops reading that file, so after
/// an Err the decoder is never called again. A record whose bytes were partly read when the
/// error hit is not returned.
pub trait RecordDecoder: Send {
    fn next_record(&mut self) -> io::Result<Option<Record>>;
}

/// The reader every decoder holds; boxing keeps the decoder types free of a reader parameter,
/// and one virtual call per buffer refill costs nothing measurable.
pub(crate) type Reader = Box<dyn BufRead + Send>;

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// `fill_buf`, retrying `Interrupted` (which is not a stream failure).
pub(crate) fn fill_buf(reader: &mut dyn BufRead) -> io::Result<&[u8]> {
    let available = loop {
        match reader.fill_buf() {
            Ok(chunk) => break chunk.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    // The borrow checker cannot return the slice out of the retry loop, so it is asked for
    // again: with bytes buffered that does not read. At the end of the stream it would read
    // again (and could fail where the first call did not), hence the early return.
    if available == 0 {
        return Ok(&[]);
    }
    reader.fill_buf()
}

/// Grows a record buffer at most to `cap`: amortised doubling alone could reserve twice the
/// limit for one long record.
fn reserve_capped(buf: &mut Vec<u8>, additional: usize, cap: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed > buf.capacity() {
        let target = needed
            .max(buf.capacity().saturating_mul(2))
            .min(cap)
            .max(needed);
        buf.reserve_exact(target - buf.len());
    }
}

/// Skips a UTF-8 byte order mark at the start of the stream and returns how many bytes it took.
/// A reader may hand out fewer than three bytes at a time, so the mark is matched byte by byte
/// and a partial match is pushed back in front of the reader.
pub(crate) fn skip_bom(reader: &mut Reader) -> io::Result<u64> {
    let chunk = fill_buf(&mut **reader)?;
    if chunk.len() >= BOM.len() || chunk.is_empty() {
        if chunk.starts_with(BOM) {
            reader.consume(BOM.len());
            return Ok(BOM.len() as u64);
        }
        return Ok(0);
    }
    if !BOM.starts_with(chunk) {
        return Ok(0);
    }
    let mut matched = Vec::with_capacity(BOM.len());
    for &expected in BOM {
        let chunk = fill_buf(&mut **reader)?;
        match chunk.first() {
            Some(&b) if b == expected => {
                reader.consume(1);
                matched.push(b);
            }
            _ => {
                let rest = std::mem::replace(reader, Box::new(io::empty()));
                *reader = Box::new(io::Read::chain(io::Cursor::new(matched), rest));
                return Ok(0);
            }
        }
    }
    Ok(BOM.len() as u64)
}

/// Appends `piece` to a record buffer unless the record has outgrown `cap`; once it has, the
/// buffer is emptied and stays empty, so memory never exceeds the cap however long the record.
/// Returns whether the record is (now) oversized.
pub(crate) fn append_capped(buf: &mut Vec<u8>, piece: &[u8], cap: usize, oversized: bool) -> bool {
    if oversized {
        return true;
    }
    if buf.len().saturating_add(piece.len()) <= cap {
        reserve_capped(buf, piece.len(), cap);
        buf.extend_from_slice(piece);
        false
    } else {
        buf.clear();
        true
    }
}

pub(crate) fn too_long(len: u64, limits: &Limits) -> String {
    format!(
        "record of {len} bytes exceeds max_record_bytes ({})",
        limits.max_record_bytes
    )
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> FieldValue {
        FieldValue::Json(s.to_owned())
    }

    #[test]
    fn bronze_text_of_json_values() {
        assert_eq!(json(r#""plain""#).bronze_text(), "plain");
        assert_eq!(json(r#""a\"b\\c\n\u00e9""#).bronze_text(), "a\"b\\c\né");
        assert_eq!(json(r#""""#).bronze_text(), "");
        assert_eq!(json("12.50").bronze_text(), "12.50");
        let big = "1234567890123456789012345678901234567890";
        assert_eq!(json(big).bronze_text(), big);
        assert_eq!(json("-1e400").bronze_text(), "-1e400");
        assert_eq!(json("true").bronze_text(), "true");
        assert_eq!(json("false").bronze_text(), "false");
        let obj = r#"{ "x" :  [1, 2 ],"y":{}}"#;
        assert_eq!(json(obj).bronze_text(), obj);
        assert_eq!(json("[ 1,\"]\" ]").bronze_text(), "[ 1,\"]\" ]");
        // Not produced by the decoders, but must not panic.
        assert_eq!(json("\"").bronze_text(), "\"");
        assert_eq!(json(r#""bad\""#).bronze_text(), r#""bad\""#);
    }

    #[test]
    fn rescued_json_of_values() {
        assert_eq!(json(r#""a\u0041""#).rescued_json(), r#""a\u0041""#);
        assert_eq!(json("12.50").rescued_json(), "12.50");
        let text = FieldValue::Text("say \"hi\"\\\n\t\u{1}é".to_owned());
        assert_eq!(text.rescued_json(), r#""say \"hi\"\\\n\t\u0001é""#);
        assert_eq!(text.bronze_text(), "say \"hi\"\\\n\t\u{1}é");
        let parsed: String = serde_json::from_str(&text.rescued_json()).expect("valid JSON");
        assert_eq!(parsed, "say \"hi\"\\\n\t\u{1}é");
    }

    #[test]
    fn limits_default() {
        let limits = Limits::default();
        assert_eq!(limits.max_record_bytes, 67_108_864);
        assert_eq!(limits.max_nesting, 64);
    }

    /// Hands out one byte per read, so a BOM straddles reads.
    struct Trickle(Vec<u8>, usize);
    impl io::Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match (self.0.get(self.1), out.first_mut()) {
                (Some(&b), Some(slot)) => {
                    *slot = b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn after_bom(data: &[u8]) -> (u64, Vec<u8>) {
        let mut reader: Reader =
            Box::new(io::BufReader::with_capacity(1, Trickle(data.to_vec(), 0)));
        let skipped = skip_bom(&mut reader).expect("no I/O error");
        let mut rest = Vec::new();
        io::Read::read_to_end(&mut reader, &mut rest).expect("no I/O error");
        (skipped, rest)
    }

    #[test]
    fn bom_is_skipped_across_tiny_reads() {
        assert_eq!(after_bom(b"\xEF\xBB\xBFab"), (3, b"ab".to_vec()));
        assert_eq!(after_bom(b"\xEF\xBBab"), (0, b"\xEF\xBBab".to_vec()));
        assert_eq!(after_bom(b"\xEF"), (0, b"\xEF".to_vec()));
        assert_eq!(after_bom(b""), (0, Vec::new()));
        assert_eq!(after_bom(b"x"), (0, b"x".to_vec()));
    }
}
