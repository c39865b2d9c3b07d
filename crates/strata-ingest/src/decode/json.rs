//! JSON decoders: [`NdjsonDecoder`] (one object per line) and [`JsonDocumentDecoder`] (a `.json`
//! file holding a top-level array of objects, or a sequence of top-level values).
//!
//! Values are never re-serialised: each field keeps the exact source text of its value (as a
//! borrowed [`RawValue`] turned into a `String`), so a 40-digit integer, `12.50` or an object's
//! inner whitespace survive into bronze unchanged. Objects are read with a map visitor that keeps
//! key order and repeated keys.
//!
//! A `.json` document is streamed: a quote- and escape-aware depth scanner finds where each
//! top-level element ends, so only one element (at most `max_record_bytes`) is in memory.
//! Document rules, which [`super::count::count_json_document`] mirrors:
//! - If the first non-whitespace byte is `[`, the elements of that array are the records, with
//!   `,` and whitespace between them (an empty slot such as `[1,,2]` is no record). Anything
//!   after the closing `]` is read as a sequence. A missing `]` at the end is not a record.
//! - Otherwise the file is a sequence of values separated by whitespace or `,`.
//! - An element starting with `{` or `[` ends at its matching close (brackets are counted, not
//!   paired by kind). Any other element (a scalar or garbage) ends before the next whitespace or
//!   `,` at depth 0, or before a `]` at depth 0 inside the top-level array.
//! - The file ending inside an element makes that element one Corrupt record.

use std::fmt;
use std::io::{self, BufRead};

use memchr::{memchr, memchr2, memchr2_iter};
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    Body, FieldValue, Limits, Reader, Record, RecordDecoder, append_capped, fill_buf, skip_bom,
    too_long,
};

type Fields = Vec<(String, Option<FieldValue>)>;

/// Decodes newline-delimited JSON: every non-blank line is one record and must hold exactly one
/// JSON object.
pub struct NdjsonDecoder {
    reader: Reader,
    limits: Limits,
    started: bool,
    /// Stream offset of the next unread byte.
    offset: u64,
    /// Physical lines read so far (blank ones included).
    line: u64,
    /// The current line, reused so that steady-state decoding allocates only the fields.
    buf: Vec<u8>,
    /// Field count of the previous record: lines of one file usually have the same shape.
    capacity_hint: usize,
}

struct RawLine {
    start: u64,
    /// Length without the `\n` and a trailing `\r`.
    len: u64,
    oversized: bool,
    blank: bool,
}

impl NdjsonDecoder {
    pub fn new<R: BufRead + Send + 'static>(reader: R, limits: Limits) -> Self {
        Self {
            reader: Box::new(reader),
            limits,
            started: false,
            offset: 0,
            line: 0,
            buf: Vec::new(),
            capacity_hint: 0,
        }
    }

    /// Reads the next physical line into `self.buf` (without its terminator), or only measures
    /// it when it outgrows the limit.
    fn read_line(&mut self) -> io::Result<Option<RawLine>> {
        self.buf.clear();
        // One byte of slack so that a line of exactly the limit plus its `\r` still fits.
        let cap = self.limits.max_record_bytes.saturating_add(1);
        let start = self.offset;
        let mut total = 0u64;
        let mut oversized = false;
        let mut nonblank = false;
        let mut last = 0u8;
        loop {
            let chunk = fill_buf(&mut *self.reader)?;
            if chunk.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (piece, newline) = match memchr(b'\n', chunk) {
                Some(i) => (chunk.get(..i).unwrap_or_default(), true),
                None => (chunk, false),
            };
            if let Some(&b) = piece.last() {
                last = b;
            }
            if !nonblank {
                nonblank = !is_blank(piece);
            }
            oversized = append_capped(&mut self.buf, piece, cap, oversized);
            total += piece.len() as u64;
            let used = piece.len() + usize::from(newline);
            self.reader.consume(used);
            self.offset += used as u64;
            if newline {
                break;
            }
        }
        self.line += 1;
        let len = if last == b'\r' {
            total.saturating_sub(1)
        } else {
            total
        };
        if !oversized && last == b'\r' {
            self.buf.pop();
        }
        Ok(Some(RawLine {
            start,
            len,
            oversized: oversized || len > self.limits.max_record_bytes as u64,
            blank: !nonblank,
        }))
    }
}

impl RecordDecoder for NdjsonDecoder {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        if !self.started {
            self.offset = skip_bom(&mut self.reader)?;
            self.started = true;
        }
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(None);
            };
            if line.blank {
                continue;
            }
            let body = if line.oversized {
                Body::Corrupt {
                    raw: None,
                    reason: too_long(line.len, &self.limits),
                }
            } else {
                match decode_line(&self.buf, &self.limits, self.capacity_hint) {
                    Ok(fields) => {
                        self.capacity_hint = fields.len();
                        Body::Fields(fields)
                    }
                    Err(reason) => Body::Corrupt {
                        raw: Some(self.buf.clone()),
                        reason,
                    },
                }
            };
            return Ok(Some(Record {
                line: self.line,
                offset: line.start,
                len: line.len,
                body,
            }));
        }
    }
}

/// A line of only spaces, tabs and `\r` is no record.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r'))
}

fn decode_line(line: &[u8], limits: &Limits, capacity: usize) -> Result<Fields, String> {
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1))?;
    let body = text.trim_ascii();
    let shift = text.len() - text.trim_ascii_start().len();
    if nesting_exceeds(body.as_bytes(), limits.max_nesting) {
        return Err(too_deep(limits));
    }
    match body.as_bytes().first() {
        Some(b'{') => parse_object(body, capacity).map_err(|e| invalid_json(&e, shift)),
        _ => Err(not_an_object(body, shift)),
    }
}

/// Checked before parsing because serde_json's own limit (128) is fixed and its message does not
/// say which limit was hit.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    // Fewer opening brackets than the limit (even counting those inside strings) cannot nest
    // deeper: this settles almost every line with one vectorised pass.
    if memchr2_iter(b'{', b'[', bytes).count() <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn too_deep(limits: &Limits) -> String {
    format!("nesting deeper than {} levels", limits.max_nesting)
}

/// Builds the record's field list straight from the map visitor, so the line is walked once and
/// values stay borrowed source text until they are copied into their `String`.
struct ObjectSeed {
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Fields;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::with_capacity(self.capacity);
        while let Some(name) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            let text = value.get();
            let value = (text != "null").then(|| FieldValue::Json(text.to_owned()));
            fields.push((name, value));
        }
        Ok(fields)
    }
}

fn parse_object(text: &str, capacity: usize) -> Result<Fields, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let fields = ObjectSeed { capacity }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(fields)
}

/// The reason for a value that is not an object: what it is if it is valid JSON, otherwise why
/// it is not.
fn not_an_object(text: &str, shift: usize) -> String {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(_) => {
            let found = match text.as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            format!("not a JSON object: found {found}")
        }
        Err(e) => invalid_json(&e, shift),
    }
}

/// serde_json's message with its position restated relative to the record: `shift` is the
/// whitespace trimmed off the front of the line before parsing.
fn invalid_json(e: &serde_json::Error, shift: usize) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    if e.line() > 1 {
        format!(
            "invalid JSON at line {}, column {} of the value: {message}",
            e.line(),
            e.column()
        )
    } else {
        format!("invalid JSON at column {}: {message}", e.column() + shift)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace seen yet.
    Start,
    /// Inside the top-level array.
    Array,
    /// A sequence of top-level values (also after the top-level array has closed).
    Sequence,
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Decodes a `.json` document: the elements of a top-level array, or a sequence of top-level
/// values. See the module documentation for the exact boundary rules.
pub struct JsonDocumentDecoder {
    reader: Reader,
    limits: Limits,
    started: bool,
    mode: Mode,
    offset: u64,
    /// Index of the next element.
    index: u64,
    buf: Vec<u8>,
    capacity_hint: usize,
}

impl JsonDocumentDecoder {
    pub fn new<R: BufRead + Send + 'static>(reader: R, limits: Limits) -> Self {
        Self {
            reader: Box::new(reader),
            limits,
            started: false,
            mode: Mode::Start,
            offset: 0,
            index: 0,
            buf: Vec::new(),
            capacity_hint: 0,
        }
    }

    /// Consumes separators up to the next element and returns its first byte (still unread), or
    /// None at the end of the stream.
    fn skip_to_element(&mut self) -> io::Result<Option<u8>> {
        loop {
            let chunk = fill_buf(&mut *self.reader)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let mut skipped = 0;
            let mut first = None;
            for &b in chunk {
                let separator = match self.mode {
                    Mode::Start if b == b'[' => {
                        self.mode = Mode::Array;
                        true
                    }
                    Mode::Start if is_json_whitespace(b) => true,
                    Mode::Start => {
                        self.mode = Mode::Sequence;
                        b == b','
                    }
                    Mode::Array if b == b']' => {
                        self.mode = Mode::Sequence;
                        true
                    }
                    Mode::Array | Mode::Sequence => is_json_whitespace(b) || b == b',',
                };
                if !separator {
                    first = Some(b);
                    break;
                }
                skipped += 1;
            }
            self.reader.consume(skipped);
            self.offset += skipped as u64;
            if first.is_some() {
                return Ok(first);
            }
        }
    }
}

impl RecordDecoder for JsonDocumentDecoder {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        if !self.started {
            self.offset = skip_bom(&mut self.reader)?;
            self.started = true;
        }
        let Some(first) = self.skip_to_element()? else {
            return Ok(None);
        };
        let start = self.offset;
        let mut scan = ElementScan::new(first, self.mode == Mode::Array);
        self.buf.clear();
        let mut total = 0u64;
        let mut oversized = false;
        let complete = loop {
            let chunk = fill_buf(&mut *self.reader)?;
            if chunk.is_empty() {
                break scan.complete_at_eof();
            }
            let (n, done) = scan.feed(chunk);
            let piece = chunk.get(..n).unwrap_or_default();
            oversized = append_capped(
                &mut self.buf,
                piece,
                self.limits.max_record_bytes,
                oversized,
            );
            total += n as u64;
            self.reader.consume(n);
            self.offset += n as u64;
            if done {
                break true;
            }
        };
        let index = self.index;
        self.index += 1;
        let body = if !complete {
            let mut reason = "truncated: the file ends inside a JSON value".to_owned();
            if oversized {
                reason.push_str(" (");
                reason.push_str(&too_long(total, &self.limits));
                reason.push(')');
            }
            Body::Corrupt {
                raw: (!oversized).then(|| self.buf.clone()),
                reason,
            }
        } else if oversized {
            Body::Corrupt {
                raw: None,
                reason: too_long(total, &self.limits),
            }
        } else {
            match decode_element(&self.buf, scan.max_depth, &self.limits, self.capacity_hint) {
                Ok(fields) => {
                    self.capacity_hint = fields.len();
                    Body::Fields(fields)
                }
                Err(reason) => Body::Corrupt {
                    raw: Some(self.buf.clone()),
                    reason,
                },
            }
        };
        Ok(Some(Record {
            line: index,
            offset: start,
            len: total,
            body,
        }))
    }
}

/// Finds where one top-level element ends, fed the stream chunk by chunk.
struct ElementScan {
    /// The element opened with `{` or `[` and ends at the matching close.
    container: bool,
    /// The element is inside the top-level array, where a `]` at depth 0 ends it.
    in_array: bool,
    depth: u64,
    max_depth: u64,
    in_string: bool,
    escaped: bool,
}

impl ElementScan {
    fn new(first: u8, in_array: bool) -> Self {
        Self {
            container: matches!(first, b'{' | b'['),
            in_array,
            depth: 0,
            max_depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// Returns how many bytes of `chunk` belong to the element and whether it ended there.
    fn feed(&mut self, chunk: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            if self.escaped {
                self.escaped = false;
            } else if self.in_string {
                // Long strings are the bulk of most documents: jump to the next byte that can
                // end the string or escape a quote.
                let rest = chunk.get(i..).unwrap_or_default();
                let Some(j) = memchr2(b'"', b'\\', rest) else {
                    return (chunk.len(), false);
                };
                i += j;
                if rest.get(j) == Some(&b'"') {
                    self.in_string = false;
                } else {
                    self.escaped = true;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        self.depth += 1;
                        self.max_depth = self.max_depth.max(self.depth);
                    }
                    b'}' | b']' if self.depth > 0 => {
                        self.depth -= 1;
                        if self.depth == 0 && self.container {
                            return (i + 1, true);
                        }
                    }
                    b']' if self.in_array => return (i, true),
                    b' ' | b'\t' | b'\n' | b'\r' | b',' if self.depth == 0 => return (i, true),
                    _ => {}
                }
            }
            i += 1;
        }
        (chunk.len(), false)
    }

    /// A scalar may end with the file; anything else still open there is truncated.
    fn complete_at_eof(&self) -> bool {
        !self.container && !self.in_string && self.depth == 0
    }
}

fn decode_element(
    bytes: &[u8],
    max_depth: u64,
    limits: &Limits,
    capacity: usize,
) -> Result<Fields, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "invalid UTF-8 at byte {} of the record",
            e.valid_up_to() + 1
        )
    })?;
    let first = bytes.first().copied();
    if matches!(first, Some(b'{' | b'[')) && max_depth > limits.max_nesting as u64 {
        return Err(too_deep(limits));
    }
    if first == Some(b'{') {
        parse_object(text, capacity).map_err(|e| invalid_json(&e, 0))
    } else {
        Err(not_an_object(text, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn decode_all(mut decoder: impl RecordDecoder) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(record) = decoder.next_record().expect("no I/O error") {
            out.push(record);
        }
        out
    }

    /// Decodes through several buffer sizes (1 byte upwards) and checks they all agree, so that
    /// every test also exercises chunk boundaries.
    fn ndjson_with(input: &[u8], limits: Limits) -> Vec<Record> {
        let reference = decode_all(NdjsonDecoder::new(Cursor::new(input.to_vec()), limits));
        for capacity in [1, 2, 3, 5, 64] {
            let reader = BufReader::with_capacity(capacity, Cursor::new(input.to_vec()));
            assert_eq!(
                decode_all(NdjsonDecoder::new(reader, limits)),
                reference,
                "buffer capacity {capacity}"
            );
        }
        reference
    }

    fn ndjson(input: &[u8]) -> Vec<Record> {
        ndjson_with(input, Limits::default())
    }

    fn document_with(input: &[u8], limits: Limits) -> Vec<Record> {
        let reference = decode_all(JsonDocumentDecoder::new(
            Cursor::new(input.to_vec()),
            limits,
        ));
        for capacity in [1, 2, 3, 5, 64] {
            let reader = BufReader::with_capacity(capacity, Cursor::new(input.to_vec()));
            assert_eq!(
                decode_all(JsonDocumentDecoder::new(reader, limits)),
                reference,
                "buffer capacity {capacity}"
            );
        }
        reference
    }

    fn document(input: &[u8]) -> Vec<Record> {
        document_with(input, Limits::default())
    }

    fn fields(record: &Record) -> &Fields {
        match &record.body {
            Body::Fields(fields) => fields,
            Body::Corrupt { reason, .. } => panic!("line {}: corrupt: {reason}", record.line),
        }
    }

    fn names(record: &Record) -> Vec<&str> {
        fields(record).iter().map(|(n, _)| n.as_str()).collect()
    }

    fn corrupt(record: &Record) -> (Option<&[u8]>, &str) {
        match &record.body {
            Body::Corrupt { raw, reason } => (raw.as_deref(), reason.as_str()),
            Body::Fields(f) => panic!("line {}: expected corrupt, got {f:?}", record.line),
        }
    }

    /// (bronze_text, rescued_json) per field; None for null.
    fn texts(record: &Record) -> Vec<(String, Option<(String, String)>)> {
        fields(record)
            .iter()
            .map(|(name, value)| {
                let value = value
                    .as_ref()
                    .map(|v| (v.bronze_text().into_owned(), v.rescued_json().into_owned()));
                (name.clone(), value)
            })
            .collect()
    }

    fn some(bronze: &str, rescued: &str) -> Option<(String, String)> {
        Some((bronze.to_owned(), rescued.to_owned()))
    }

    #[test]
    fn value_kinds_keep_their_source_text() {
        let line = br#"{"s":"caf\u00e9 \"q\"","n":12.50,"big":1234567890123456789012345678901234567890,"t":true,"f":false,"z":null,"o":{ "a" : [1, 2],  "b":"x" },"arr":[ 1,"two",null ],"e":-0.0e-5}"#;
        let records = ndjson(line);
        assert_eq!(records.len(), 1);
        let big = "1234567890123456789012345678901234567890";
        assert_eq!(
            texts(&records[0]),
            vec![
                ("s".into(), some("café \"q\"", r#""caf\u00e9 \"q\"""#)),
                ("n".into(), some("12.50", "12.50")),
                ("big".into(), some(big, big)),
                ("t".into(), some("true", "true")),
                ("f".into(), some("false", "false")),
                ("z".into(), None),
                (
                    "o".into(),
                    some(
                        r#"{ "a" : [1, 2],  "b":"x" }"#,
                        r#"{ "a" : [1, 2],  "b":"x" }"#
                    )
                ),
                (
                    "arr".into(),
                    some(r#"[ 1,"two",null ]"#, r#"[ 1,"two",null ]"#)
                ),
                ("e".into(), some("-0.0e-5", "-0.0e-5")),
            ]
        );
        assert_eq!(records[0].line, 1);
        assert_eq!(records[0].offset, 0);
        assert_eq!(records[0].len, line.len() as u64);
    }

    #[test]
    fn whitespace_around_values_is_not_part_of_them() {
        let records = ndjson(b"  { \"a\" :  1 , \"b\"\t:\t\"x\" }  \n");
        assert_eq!(
            texts(&records[0]),
            vec![
                ("a".into(), some("1", "1")),
                ("b".into(), some("x", "\"x\""))
            ]
        );
    }

    #[test]
    fn duplicate_keys_kept_in_order() {
        let records = ndjson(br#"{"b":1,"a":2,"b":3,"a":null}"#);
        assert_eq!(
            texts(&records[0]),
            vec![
                ("b".into(), some("1", "1")),
                ("a".into(), some("2", "2")),
                ("b".into(), some("3", "3")),
                ("a".into(), None),
            ]
        );
    }

    #[test]
    fn unusual_field_names() {
        let records = ndjson(
            "{\"ünï\u{1F600}\":1,\"a.b.c\":2,\"with space\":3,\"say \\\"hi\\\"\":4,\"_source_file\":\"x.json\",\"\":5,\"\\u0041\":6}\n{}\n"
                .as_bytes(),
        );
        assert_eq!(
            names(&records[0]),
            vec![
                "ünï\u{1F600}",
                "a.b.c",
                "with space",
                "say \"hi\"",
                "_source_file",
                "",
                "A"
            ]
        );
        assert_eq!(fields(&records[1]).len(), 0);
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        let input = b"\n{\"a\":1}\n   \n\t\r\n\r\n{\"a\":2}\n\n";
        let records = ndjson(input);
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].line, records[0].offset, records[0].len),
            (2, 1, 7)
        );
        assert_eq!(
            (records[1].line, records[1].offset, records[1].len),
            (6, 18, 7)
        );
        // A last line without a newline is still a record.
        let records = ndjson(b"{\"a\":1}\n{\"a\":2}");
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[1].line, records[1].offset, records[1].len),
            (2, 8, 7)
        );
    }

    #[test]
    fn crlf_lines() {
        let records = ndjson(b"{\"a\":\"x\"}\r\n\r\n{\"a\":\"y\"}\r\n");
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].line, records[0].len), (1, 9));
        assert_eq!(texts(&records[0]), vec![("a".into(), some("x", "\"x\""))]);
        assert_eq!(
            (records[1].line, records[1].offset, records[1].len),
            (3, 13, 9)
        );
        // A bad CRLF line keeps its bytes without the terminator.
        let records = ndjson(b"{oops}\r\n");
        assert_eq!(corrupt(&records[0]).0, Some(&b"{oops}"[..]));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let records = ndjson(b"\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].line, records[0].offset, records[0].len),
            (1, 3, 7)
        );
        assert_eq!(names(&records[0]), vec!["a"]);
    }

    #[test]
    fn invalid_json_and_non_objects() {
        let input = concat!(
            "{\"a\":1,\"b\":\"unterminated}\n",
            "[1,2]\n",
            "\"text\"\n",
            "42\n",
            "true\n",
            "null\n",
            "{\"a\":1} {\"b\":2}\n",
            "{\"a\" 1}\n",
            "  {\"a\":}\n",
            "nope\n",
        );
        let records = ndjson(input.as_bytes());
        let reasons: Vec<&str> = records.iter().map(|r| corrupt(r).1).collect();
        assert_eq!(
            reasons,
            vec![
                "invalid JSON at column 25: EOF while parsing a string",
                "not a JSON object: found an array",
                "not a JSON object: found a string",
                "not a JSON object: found a number",
                "not a JSON object: found a boolean",
                "not a JSON object: found null",
                "invalid JSON at column 9: trailing characters",
                "invalid JSON at column 6: expected `:`",
                "invalid JSON at column 8: expected value",
                "invalid JSON at column 2: expected ident",
            ]
        );
        assert_eq!(corrupt(&records[1]).0, Some(&b"[1,2]"[..]));
        assert_eq!(records[9].line, 10);
    }

    #[test]
    fn invalid_utf8_keeps_the_raw_bytes() {
        let input = b"{\"a\":\"caf\xE9\"}\n{\"a\":\"ok\"}\n";
        let records = ndjson(input);
        let (raw, reason) = corrupt(&records[0]);
        assert_eq!(raw, Some(&b"{\"a\":\"caf\xE9\"}"[..]));
        assert_eq!(reason, "invalid UTF-8 at byte 10 of the line");
        assert_eq!(texts(&records[1]), vec![("a".into(), some("ok", "\"ok\""))]);
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn nesting_limit() {
        let input = format!("{}\n{}\n", nested(64), nested(65));
        let records = ndjson(input.as_bytes());
        assert_eq!(names(&records[0]), vec!["a"]);
        assert_eq!(corrupt(&records[1]).1, "nesting deeper than 64 levels");
        // Brackets inside strings are not nesting.
        let brackets = "[{".repeat(100);
        let input = format!("{{\"a\":\"{brackets}\",\"b\":\"\\\"{brackets}\"}}");
        assert_eq!(names(&ndjson(input.as_bytes())[0]), vec!["a", "b"]);
        // Arrays count as levels too.
        let input = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert_eq!(
            corrupt(&ndjson(input.as_bytes())[0]).1,
            "nesting deeper than 64 levels"
        );
        let limits = Limits {
            max_nesting: 3,
            ..Limits::default()
        };
        let records = ndjson_with(nested(3).as_bytes(), limits);
        assert_eq!(names(&records[0]), vec!["a"]);
        let records = ndjson_with(nested(4).as_bytes(), limits);
        assert_eq!(corrupt(&records[0]).1, "nesting deeper than 3 levels");
    }

    #[test]
    fn oversized_line_is_skipped_without_buffering() {
        let limits = Limits {
            max_record_bytes: 1 << 20,
            ..Limits::default()
        };
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(5 << 20));
        let input = format!("{{\"a\":0}}\n{big}\n\n{{\"a\":2}}\n");
        let reader = BufReader::with_capacity(8192, Cursor::new(input.into_bytes()));
        let mut decoder = NdjsonDecoder::new(reader, limits);
        let first = decoder.next_record().expect("read").expect("record");
        assert_eq!(names(&first), vec!["a"]);
        let skipped = decoder.next_record().expect("read").expect("record");
        assert_eq!(skipped.line, 2);
        assert_eq!(skipped.offset, 8);
        assert_eq!(skipped.len, big.len() as u64);
        let (raw, reason) = corrupt(&skipped);
        assert_eq!(raw, None);
        assert_eq!(
            reason,
            format!(
                "record of {} bytes exceeds max_record_bytes (1048576)",
                big.len()
            )
        );
        // The line buffer never grew past the limit (plus the `\r` slack).
        assert!(decoder.buf.capacity() <= (1 << 20) + 1);
        let next = decoder.next_record().expect("read").expect("record");
        assert_eq!(next.line, 4);
        assert_eq!(next.offset, 8 + big.len() as u64 + 2);
        assert_eq!(texts(&next), vec![("a".into(), some("2", "2"))]);
        assert!(decoder.next_record().expect("read").is_none());
    }

    #[test]
    fn limit_edges() {
        let limits = Limits {
            max_record_bytes: 7,
            ..Limits::default()
        };
        // Exactly the limit, with and without `\r`; one byte over; a long blank line.
        let input = b"{\"a\":1}\n{\"a\":1}\r\n{\"a\":12}\n          \n{\"a\":1}";
        let records = ndjson_with(input, limits);
        assert_eq!(records.len(), 4);
        assert_eq!(names(&records[0]), vec!["a"]);
        assert_eq!(names(&records[1]), vec!["a"]);
        assert_eq!(records[1].len, 7);
        assert_eq!(
            corrupt(&records[2]),
            (None, "record of 8 bytes exceeds max_record_bytes (7)")
        );
        assert_eq!(records[3].line, 5);
    }

    #[test]
    fn empty_input() {
        assert!(ndjson(b"").is_empty());
        assert!(ndjson(b"\n\n  \n").is_empty());
        assert!(document(b"").is_empty());
        assert!(document(b"  \n ").is_empty());
        assert!(document(b"[]").is_empty());
        assert!(document(b" [ \n ] \n").is_empty());
    }

    #[test]
    fn document_array_with_tricky_strings() {
        let input = concat!(
            "[\n",
            "  {\"a\": \"]\", \"b\": \"}\"},\n",
            "  {\"a\": \"say \\\"]}\\\" \\\\\", \"b\": \"line\\nbreak\"},\n",
            "  42,\n",
            "  \"str]\" , [1, 2],{\"x\":{ \"y\" : [ ] }}\n",
            "]\n",
        );
        let records = document(input.as_bytes());
        assert_eq!(records.len(), 6);
        let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![0, 1, 2, 3, 4, 5]);
        for record in &records {
            let start = record.offset as usize;
            let end = start + record.len as usize;
            if let Body::Corrupt { raw: Some(raw), .. } = &record.body {
                assert_eq!(&input.as_bytes()[start..end], &raw[..]);
            }
        }
        assert_eq!(
            texts(&records[0]),
            vec![
                ("a".into(), some("]", "\"]\"")),
                ("b".into(), some("}", "\"}\""))
            ]
        );
        assert_eq!(
            texts(&records[1]),
            vec![
                ("a".into(), some("say \"]}\" \\", r#""say \"]}\" \\""#)),
                ("b".into(), some("line\nbreak", r#""line\nbreak""#)),
            ]
        );
        assert_eq!(
            corrupt(&records[2]),
            (Some(&b"42"[..]), "not a JSON object: found a number")
        );
        assert_eq!(
            corrupt(&records[3]),
            (Some(&b"\"str]\""[..]), "not a JSON object: found a string")
        );
        assert_eq!(
            corrupt(&records[4]),
            (Some(&b"[1, 2]"[..]), "not a JSON object: found an array")
        );
        assert_eq!(
            texts(&records[5]),
            vec![("x".into(), some(r#"{ "y" : [ ] }"#, r#"{ "y" : [ ] }"#))]
        );
    }

    #[test]
    fn document_pretty_printed_sequence() {
        let input = concat!(
            "{\n  \"id\": 1,\n  \"tags\": [\n    \"a]\",\n    \"b}\"\n  ]\n}\n",
            "{\n  \"id\": 2,\n  \"note\": \"quote \\\" and {\"\n}\n",
            "\n\n{\"id\":3}{\"id\":4},{\"id\":5}",
        );
        let records = document(input.as_bytes());
        assert_eq!(records.len(), 5);
        assert_eq!(
            texts(&records[0]),
            vec![
                ("id".into(), some("1", "1")),
                (
                    "tags".into(),
                    some(
                        "[\n    \"a]\",\n    \"b}\"\n  ]",
                        "[\n    \"a]\",\n    \"b}\"\n  ]"
                    )
                ),
            ]
        );
        assert_eq!(
            texts(&records[1])[1],
            ("note".into(), some("quote \" and {", r#""quote \" and {""#))
        );
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.line, i as u64);
            assert!(matches!(record.body, Body::Fields(_)));
        }
        assert_eq!(records[4].offset as usize, input.len() - 8);
    }

    #[test]
    fn document_garbage_and_truncation() {
        let input = b"{\"a\":1} garbage, 12 {\"b\": [1, {\"c\": \"}\"";
        let records = document(input);
        assert_eq!(records.len(), 4);
        assert_eq!(names(&records[0]), vec!["a"]);
        assert_eq!(
            corrupt(&records[1]),
            (
                Some(&b"garbage"[..]),
                "invalid JSON at column 1: expected value"
            )
        );
        assert_eq!(
            corrupt(&records[2]),
            (Some(&b"12"[..]), "not a JSON object: found a number")
        );
        assert_eq!(
            corrupt(&records[3]),
            (
                Some(&b"{\"b\": [1, {\"c\": \"}\""[..]),
                "truncated: the file ends inside a JSON value"
            )
        );
        // A truncated string in an array element; the missing `]` is no record.
        let records = document(b"[{\"a\":1}, {\"b\":\"x");
        assert_eq!(records.len(), 2);
        assert_eq!(
            corrupt(&records[1]).1,
            "truncated: the file ends inside a JSON value"
        );
        let records = document(b"[{\"a\":1}, {\"b\":2}\n");
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| matches!(r.body, Body::Fields(_))));
        // Stray closers, a multi-line invalid object, and content after the array.
        let records = document(b"[1,,2]\n} {\"a\":\n\n 1 x} [3] {\"ok\":true}");
        let reasons: Vec<&str> = records.iter().map(corrupt_or_ok).collect();
        assert_eq!(
            reasons,
            vec![
                "not a JSON object: found a number",
                "not a JSON object: found a number",
                "invalid JSON at column 1: expected value",
                "invalid JSON at line 3, column 4 of the value: expected `,` or `}`",
                "not a JSON object: found an array",
                "ok",
            ]
        );
        // An element ending a scalar at the end of the file is complete.
        let records = document(b"[1, 2");
        assert_eq!(records.len(), 2);
        assert_eq!(corrupt(&records[1]).1, "not a JSON object: found a number");
        let records = document(b"\"abc");
        assert_eq!(
            corrupt(&records[0]).1,
            "truncated: the file ends inside a JSON value"
        );
    }

    fn corrupt_or_ok(record: &Record) -> &str {
        match &record.body {
            Body::Corrupt { reason, .. } => reason,
            Body::Fields(_) => "ok",
        }
    }

    #[test]
    fn document_limits() {
        let limits = Limits {
            max_record_bytes: 64,
            max_nesting: 4,
        };
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(1000));
        let input = format!(
            "[{big}, {{\"a\":[[[1]]]}}, {{\"a\":[[[[1]]]]}}, {{\"a\":1}}, {}",
            &big[..big.len() - 1]
        );
        let records = document_with(input.as_bytes(), limits);
        assert_eq!(records.len(), 5);
        assert_eq!(
            corrupt(&records[0]),
            (None, "record of 1008 bytes exceeds max_record_bytes (64)")
        );
        assert_eq!(names(&records[1]), vec!["a"]);
        assert_eq!(corrupt(&records[2]).1, "nesting deeper than 4 levels");
        assert_eq!(records[3].line, 3);
        assert_eq!(names(&records[3]), vec!["a"]);
        assert_eq!(
            corrupt(&records[4]),
            (
                None,
                "truncated: the file ends inside a JSON value (record of 1007 bytes exceeds max_record_bytes (64))"
            )
        );
    }

    #[test]
    fn document_invalid_utf8_and_bom() {
        let records = document(b"\xEF\xBB\xBF[{\"a\":\"\xFF\"}, {\"a\":\"\xC3\xA9\"}]");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].offset, 4);
        assert_eq!(
            corrupt(&records[0]),
            (
                Some(&b"{\"a\":\"\xFF\"}"[..]),
                "invalid UTF-8 at byte 7 of the record"
            )
        );
        assert_eq!(texts(&records[1]), vec![("a".into(), some("é", "\"é\""))]);
    }
}
