//! CSV decoder. Records are split by a quote-aware scanner over the raw bytes, so each record's
//! exact bytes (and physical line) are known before it is decoded; then the record is split
//! into fields and each field is decoded from the file's encoding to UTF-8.
//!
//! Syntax (which [`super::count::count_csv`] mirrors):
//! - A record ends at a `\n` outside quotes; a `\r` just before it belongs to the terminator.
//!   An empty record (`\n` or `\r\n` alone) is a blank line and skipped; a line of spaces is not.
//! - A field is quoted only if its first byte is the quote. Inside quotes the delimiter and
//!   `\n` are data, a doubled quote is one quote, and the escape byte (if set) makes the next
//!   quote or escape byte literal (before any other byte it is kept as is, so `C:\temp` stays
//!   intact). Text after the closing quote is appended unquoted, and a quote inside an unquoted
//!   field is literal, as in most CSV readers.
//! - An empty unquoted field is null; `""` is the empty string.
//! - A quote left open runs to the end of the file: that last record is Corrupt.
//! - With a header, the first record names the fields. A header that cannot be used (too long,
//!   or not valid in the encoding) turns every data record Corrupt instead of guessing names.
//!   Without a header the first record's field count is the expected one.

use std::fmt;
use std::io::{self, BufRead};
use std::str::FromStr;

use super::{
    Body, FieldValue, Limits, Reader, Record, RecordDecoder, append_capped, fill_buf, skip_bom,
    too_long,
};

/// How a CSV file is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
    /// Inside a quoted field, makes the next quote (or escape) byte literal. Equal to `quote`
    /// means the same as None: quotes are escaped by doubling.
    pub escape: Option<u8>,
    pub encoding: Encoding,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: b',',
            quote: b'"',
            escape: None,
            encoding: Encoding::Utf8,
        }
    }
}

impl CsvOptions {
    /// Rejects options that make records ambiguous. The decoder and counter accept any options
    /// (they never panic), but with these the split would surprise the user.
    pub fn validate(&self) -> Result<(), String> {
        let mut bytes = vec![("delimiter", self.delimiter), ("quote", self.quote)];
        if let Some(escape) = self.escape {
            bytes.push(("escape", escape));
        }
        for (name, b) in &bytes {
            if matches!(b, b'\n' | b'\r') {
                return Err(format!("the CSV {name} cannot be a line break"));
            }
        }
        if self.delimiter == self.quote {
            return Err("the CSV delimiter and quote must differ".to_owned());
        }
        if self.escape == Some(self.delimiter) {
            return Err("the CSV delimiter and escape must differ".to_owned());
        }
        Ok(())
    }
}

/// The character encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// Like Latin-1 except 0x80-0x9F, which hold `€`, curly quotes and so on.
    Windows1252,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin1",
            Encoding::Windows1252 => "windows-1252",
        })
    }
}

/// An encoding name [`Encoding::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEncoding(pub String);

impl fmt::Display for UnknownEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown encoding `{}`; accepted: utf-8 (or utf8), latin1 (or latin-1, iso-8859-1), \
             windows-1252 (or cp1252)",
            self.0
        )
    }
}

impl std::error::Error for UnknownEncoding {}

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    fn from_str(name: &str) -> Result<Self, UnknownEncoding> {
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" => Ok(Encoding::Latin1),
            "windows-1252" | "cp1252" => Ok(Encoding::Windows1252),
            _ => Err(UnknownEncoding(name.to_owned())),
        }
    }
}

const UTF8_HINT: &str =
    "if the file is Latin-1 or Windows-1252, pass --encoding latin1 or --encoding windows-1252";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after the escape byte inside quotes.
    QuotedEscape,
    /// Just after a quote inside quotes: a doubled quote or the closing one.
    QuoteInQuoted,
}

#[derive(Debug, Clone, Copy)]
struct Syntax {
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
}

impl Syntax {
    fn new(opts: &CsvOptions) -> Self {
        Self {
            delimiter: opts.delimiter,
            quote: opts.quote,
            escape: opts.escape.filter(|&e| e != opts.quote),
        }
    }

    /// The state after `b`, or None when `b` is the `\n` ending the record.
    fn step(&self, state: State, b: u8) -> Option<State> {
        Some(match state {
            State::Quoted if Some(b) == self.escape => State::QuotedEscape,
            State::Quoted if b == self.quote => State::QuoteInQuoted,
            State::Quoted | State::QuotedEscape => State::Quoted,
            _ if b == b'\n' => return None,
            State::FieldStart if b == self.quote => State::Quoted,
            State::QuoteInQuoted if b == self.quote => State::Quoted,
            _ if b == self.delimiter => State::FieldStart,
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => State::Unquoted,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Header {
    /// The options say there is no header: fields are `_c0`, `_c1`, ...
    Absent,
    /// The next record is the header.
    Pending,
    Names(Vec<String>),
    /// Why the header cannot name fields.
    Unusable(String),
}

struct RawRecord {
    line: u64,
    start: u64,
    /// Length without the terminator.
    len: u64,
    oversized: bool,
    /// The line where a quote that never closed was opened.
    unterminated: Option<u64>,
}

/// Decodes CSV records; see the module documentation for the syntax.
pub struct CsvDecoder {
    reader: Reader,
    syntax: Syntax,
    encoding: Encoding,
    limits: Limits,
    started: bool,
    offset: u64,
    /// Physical line of the next unread byte.
    line: u64,
    buf: Vec<u8>,
    header: Header,
    /// Without a header: the first record's field count, and names generated so far.
    expected: Option<usize>,
    generated: Vec<String>,
    /// One field's unquoted bytes, reused across fields.
    scratch: Vec<u8>,
}

impl CsvDecoder {
    pub fn new<R: BufRead + Send + 'static>(reader: R, opts: CsvOptions, limits: Limits) -> Self {
        Self {
            reader: Box::new(reader),
            syntax: Syntax::new(&opts),
            encoding: opts.encoding,
            limits,
            started: false,
            offset: 0,
            line: 1,
            buf: Vec::new(),
            header: if opts.header {
                Header::Pending
            } else {
                Header::Absent
            },
            expected: None,
            generated: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Reads the next non-blank record into `self.buf` (without its terminator), or only
    /// measures it when it outgrows the limit.
    fn read_raw(&mut self) -> io::Result<Option<RawRecord>> {
        // One byte of slack for the `\r` of a record exactly at the limit.
        let cap = self.limits.max_record_bytes.saturating_add(1);
        loop {
            self.buf.clear();
            let start = self.offset;
            let line = self.line;
            let mut state = State::FieldStart;
            let mut total = 0u64;
            let mut oversized = false;
            let mut newlines = 0u64;
            let mut quote_line = line;
            let mut last = 0u8;
            loop {
                let chunk = fill_buf(&mut *self.reader)?;
                if chunk.is_empty() {
                    if total == 0 {
                        return Ok(None);
                    }
                    break;
                }
                let mut end = None;
                for (i, &b) in chunk.iter().enumerate() {
                    let Some(next) = self.syntax.step(state, b) else {
                        end = Some(i);
                        break;
                    };
                    if next == State::Quoted && state == State::FieldStart {
                        quote_line = line + newlines;
                    }
                    if b == b'\n' {
                        newlines += 1;
                    }
                    state = next;
                }
                let n = end.unwrap_or(chunk.len());
                let piece = chunk.get(..n).unwrap_or_default();
                if let Some(&b) = piece.last() {
                    last = b;
                }
                oversized = append_capped(&mut self.buf, piece, cap, oversized);
                total += n as u64;
                let used = n + usize::from(end.is_some());
                self.reader.consume(used);
                self.offset += used as u64;
                if end.is_some() {
                    newlines += 1;
                    break;
                }
            }
            self.line += newlines;
            let unterminated = matches!(state, State::Quoted | State::QuotedEscape);
            let mut len = total;
            if last == b'\r' && !unterminated {
                len = len.saturating_sub(1);
                if !oversized {
                    self.buf.pop();
                }
            }
            if len == 0 {
                continue;
            }
            return Ok(Some(RawRecord {
                line,
                start,
                len,
                oversized: oversized || len > self.limits.max_record_bytes as u64,
                unterminated: unterminated.then_some(quote_line),
            }));
        }
    }

    /// Splits `self.buf` into field values decoded to UTF-8 (None = empty unquoted field).
    fn split_fields(&mut self) -> Result<Vec<Option<String>>, String> {
        let syntax = self.syntax;
        let mut values = Vec::with_capacity(self.expected.unwrap_or(8));
        let mut state = State::FieldStart;
        let mut quoted = false;
        self.scratch.clear();
        for &b in &self.buf {
            let next = syntax.step(state, b).unwrap_or(State::Unquoted);
            match (state, next) {
                (State::FieldStart, State::Quoted) => quoted = true,
                (_, State::FieldStart) => {
                    let index = values.len();
                    values.push(finish_field(
                        &mut self.scratch,
                        self.encoding,
                        quoted,
                        index,
                    )?);
                    quoted = false;
                }
                (State::Quoted, State::QuotedEscape | State::QuoteInQuoted) => {}
                (State::QuotedEscape, _) => {
                    if b != syntax.quote && Some(b) != syntax.escape {
                        self.scratch.extend(syntax.escape);
                    }
                    self.scratch.push(b);
                }
                _ => self.scratch.push(b),
            }
            state = next;
        }
        let index = values.len();
        values.push(finish_field(
            &mut self.scratch,
            self.encoding,
            quoted,
            index,
        )?);
        Ok(values)
    }

    fn check_utf8(&self, what: &str) -> Result<(), String> {
        if self.encoding != Encoding::Utf8 {
            return Ok(());
        }
        std::str::from_utf8(&self.buf).map(|_| ()).map_err(|e| {
            format!(
                "invalid UTF-8 at byte {} of the {what}; {UTF8_HINT}",
                e.valid_up_to() + 1
            )
        })
    }

    fn parse_header(&mut self) -> Result<Vec<String>, String> {
        self.check_utf8("header")?;
        let names = self.split_fields()?;
        Ok(names
            .into_iter()
            .enumerate()
            .map(|(i, name)| match name {
                Some(name) if !name.is_empty() => name,
                _ => format!("_c{i}"),
            })
            .collect())
    }

    fn decode_record(&mut self) -> Result<Vec<(String, Option<FieldValue>)>, String> {
        if let Header::Unusable(why) = &self.header {
            return Err(format!("the header is unusable: {why}"));
        }
        self.check_utf8("record")?;
        let values = self.split_fields()?;
        let names = match &self.header {
            Header::Names(names) => {
                if names.len() != values.len() {
                    return Err(format!(
                        "expected {} fields (from the header), found {}",
                        names.len(),
                        values.len()
                    ));
                }
                names
            }
            _ => {
                let expected = *self.expected.get_or_insert(values.len());
                if expected != values.len() {
                    return Err(format!(
                        "expected {expected} fields (from the first record), found {}",
                        values.len()
                    ));
                }
                while self.generated.len() < expected {
                    self.generated.push(format!("_c{}", self.generated.len()));
                }
                &self.generated
            }
        };
        Ok(names
            .iter()
            .cloned()
            .zip(values.into_iter().map(|v| v.map(FieldValue::Text)))
            .collect())
    }
}

/// Decodes one field's unquoted bytes and empties `scratch` for the next field.
fn finish_field(
    scratch: &mut Vec<u8>,
    encoding: Encoding,
    quoted: bool,
    index: usize,
) -> Result<Option<String>, String> {
    if !quoted && scratch.is_empty() {
        return Ok(None);
    }
    let text = match encoding {
        Encoding::Utf8 => std::str::from_utf8(scratch)
            .map(str::to_owned)
            // The record was valid UTF-8, so only a non-ASCII delimiter, quote or escape byte
            // removed from inside a character can get here.
            .map_err(|_| {
                format!(
                    "field {} is not valid UTF-8 once quotes are removed: a non-ASCII \
                         delimiter, quote or escape byte split a character",
                    index + 1
                )
            })?,
        Encoding::Latin1 => scratch.iter().map(|&b| char::from(b)).collect(),
        Encoding::Windows1252 => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(scratch)
            .0
            .into_owned(),
    };
    scratch.clear();
    Ok(Some(text))
}

impl RecordDecoder for CsvDecoder {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        if !self.started {
            self.offset = skip_bom(&mut self.reader)?;
            self.started = true;
        }
        loop {
            let Some(raw) = self.read_raw()? else {
                return Ok(None);
            };
            let is_header = self.header == Header::Pending;
            let body = if let Some(quote_line) = raw.unterminated {
                let mut reason = format!("unterminated quoted field starting at line {quote_line}");
                if raw.oversized {
                    reason.push_str("; ");
                    reason.push_str(&too_long(raw.len, &self.limits));
                }
                if is_header {
                    self.header = Header::Unusable(reason.clone());
                }
                Body::Corrupt {
                    raw: (!raw.oversized).then(|| self.buf.clone()),
                    reason,
                }
            } else if raw.oversized {
                let reason = too_long(raw.len, &self.limits);
                if is_header {
                    self.header = Header::Unusable(format!("the header {reason}"));
                    continue;
                }
                Body::Corrupt { raw: None, reason }
            } else if is_header {
                self.header = match self.parse_header() {
                    Ok(names) => Header::Names(names),
                    Err(why) => Header::Unusable(why),
                };
                continue;
            } else {
                match self.decode_record() {
                    Ok(fields) => Body::Fields(fields),
                    Err(reason) => Body::Corrupt {
                        raw: Some(self.buf.clone()),
                        reason,
                    },
                }
            };
            return Ok(Some(Record {
                line: raw.line,
                offset: raw.start,
                len: raw.len,
                body,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn decode_with(input: &[u8], opts: CsvOptions, limits: Limits) -> Vec<Record> {
        let run = |capacity: usize| {
            let reader = BufReader::with_capacity(capacity, Cursor::new(input.to_vec()));
            let mut decoder = CsvDecoder::new(reader, opts, limits);
            let mut out = Vec::new();
            while let Some(record) = decoder.next_record().expect("no I/O error") {
                out.push(record);
            }
            out
        };
        let reference = run(8192);
        for capacity in [1, 2, 3, 7] {
            assert_eq!(run(capacity), reference, "buffer capacity {capacity}");
        }
        // Raw bytes, offsets and lengths agree with the input.
        for record in &reference {
            let start = record.offset as usize;
            if let Body::Corrupt { raw: Some(raw), .. } = &record.body {
                assert_eq!(&input[start..start + record.len as usize], &raw[..]);
            }
        }
        reference
    }

    fn decode(input: &[u8], opts: CsvOptions) -> Vec<Record> {
        decode_with(input, opts, Limits::default())
    }

    fn csv(input: &str) -> Vec<Record> {
        decode(input.as_bytes(), CsvOptions::default())
    }

    /// Fields as (name, text) with None for null.
    fn row(record: &Record) -> Vec<(&str, Option<&str>)> {
        match &record.body {
            Body::Fields(fields) => fields
                .iter()
                .map(|(name, value)| {
                    let text = value.as_ref().map(|v| match v {
                        FieldValue::Text(t) => t.as_str(),
                        FieldValue::Json(j) => panic!("CSV produced JSON {j}"),
                    });
                    (name.as_str(), text)
                })
                .collect(),
            Body::Corrupt { reason, .. } => panic!("line {}: corrupt: {reason}", record.line),
        }
    }

    fn values(record: &Record) -> Vec<Option<&str>> {
        row(record).into_iter().map(|(_, v)| v).collect()
    }

    fn corrupt(record: &Record) -> (Option<&[u8]>, &str) {
        match &record.body {
            Body::Corrupt { raw, reason } => (raw.as_deref(), reason.as_str()),
            Body::Fields(f) => panic!("line {}: expected corrupt, got {f:?}", record.line),
        }
    }

    #[test]
    fn quoting() {
        let records = csv(concat!(
            "id,text,n\n",
            "1,\"a, b\",3\n",
            "2,\"say \"\"hi\"\"\",\n",
            "3,\"\",\"\"\n",
            "4,plain \"quote\" inside,\"ab\"cd\n",
        ));
        assert_eq!(records.len(), 4);
        assert_eq!(
            row(&records[0]),
            vec![("id", Some("1")), ("text", Some("a, b")), ("n", Some("3"))]
        );
        assert_eq!(
            values(&records[1]),
            vec![Some("2"), Some("say \"hi\""), None]
        );
        assert_eq!(values(&records[2]), vec![Some("3"), Some(""), Some("")]);
        assert_eq!(
            values(&records[3]),
            vec![Some("4"), Some("plain \"quote\" inside"), Some("abcd")]
        );
        let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
    }

    #[test]
    fn escape_character() {
        let opts = CsvOptions {
            escape: Some(b'\\'),
            ..CsvOptions::default()
        };
        let input = "a,b\n\"x \\\"q\\\" y\",\"C:\\temp\\\\dir\"\n\"\\\\\",\"end\\\\\"\n";
        let records = decode(input.as_bytes(), opts);
        assert_eq!(
            values(&records[0]),
            vec![Some("x \"q\" y"), Some("C:\\temp\\dir")]
        );
        assert_eq!(values(&records[1]), vec![Some("\\"), Some("end\\")]);
        // Without the escape option a backslash is an ordinary byte.
        let records = csv("a\n\"x\\\"\"\"\n");
        assert_eq!(values(&records[0]), vec![Some("x\\\"")]);
    }

    #[test]
    fn embedded_newlines_keep_line_numbers() {
        let input = "id,note\n1,\"two\nlines\"\n2,\"three\r\nphysical\nlines\"\n\n3,last\n";
        let records = csv(input);
        assert_eq!(records.len(), 3);
        assert_eq!(values(&records[0]), vec![Some("1"), Some("two\nlines")]);
        assert_eq!(
            values(&records[1]),
            vec![Some("2"), Some("three\r\nphysical\nlines")]
        );
        assert_eq!(values(&records[2]), vec![Some("3"), Some("last")]);
        let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 8]);
        assert_eq!(records[2].offset as usize, input.len() - 7);
    }

    #[test]
    fn crlf_and_blank_lines() {
        let records = csv("a,b\r\n\r\n1,2\r\n\n  \r\n3,\r\n");
        assert_eq!(records.len(), 3);
        assert_eq!(values(&records[0]), vec![Some("1"), Some("2")]);
        assert_eq!((records[0].line, records[0].len), (3, 3));
        assert_eq!(
            corrupt(&records[1]),
            (
                Some(&b"  "[..]),
                "expected 2 fields (from the header), found 1"
            )
        );
        assert_eq!(records[1].line, 5);
        assert_eq!(values(&records[2]), vec![Some("3"), None]);
        // The last record may lack its newline.
        let records = csv("a,b\n1,\"2\"");
        assert_eq!(values(&records[0]), vec![Some("1"), Some("2")]);
    }

    #[test]
    fn wrong_field_count() {
        let records = csv("a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5,6,7\n1\n");
        assert_eq!(values(&records[0]).len(), 5);
        assert_eq!(
            corrupt(&records[1]),
            (
                Some(&b"1,2,3,4,5,6,7"[..]),
                "expected 5 fields (from the header), found 7"
            )
        );
        assert_eq!(
            corrupt(&records[2]).1,
            "expected 5 fields (from the header), found 1"
        );
    }

    #[test]
    fn header_names() {
        let header = "id,,name,id,\"\",\"a,b\"\n";
        let records = csv(&format!("\u{FEFF}{header}1,2,3,4,5,6\n"));
        assert_eq!(records[0].offset as usize, 3 + header.len());
        let names: Vec<&str> = row(&records[0]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["id", "_c1", "name", "id", "_c4", "a,b"]);
        // Only a header: no records.
        assert!(csv("a,b\n").is_empty());
        assert!(csv("").is_empty());
        assert!(csv("\n\n").is_empty());
    }

    #[test]
    fn no_header() {
        let opts = CsvOptions {
            header: false,
            delimiter: b';',
            ..CsvOptions::default()
        };
        let records = decode(b"\xEF\xBB\xBF1;x\n2;y\n3\n", opts);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].line, 1);
        assert_eq!(
            row(&records[0]),
            vec![("_c0", Some("1")), ("_c1", Some("x"))]
        );
        assert_eq!(
            row(&records[1]),
            vec![("_c0", Some("2")), ("_c1", Some("y"))]
        );
        assert_eq!(
            corrupt(&records[2]).1,
            "expected 2 fields (from the first record), found 1"
        );
    }

    #[test]
    fn encodings() {
        let input = b"name,city\nJos\xE9,Sevilla\n\x80,\x9F\n";
        let latin1 = CsvOptions {
            encoding: Encoding::Latin1,
            ..CsvOptions::default()
        };
        let records = decode(input, latin1);
        assert_eq!(values(&records[0]), vec![Some("José"), Some("Sevilla")]);
        assert_eq!(values(&records[1]), vec![Some("\u{80}"), Some("\u{9F}")]);
        let cp1252 = CsvOptions {
            encoding: Encoding::Windows1252,
            ..CsvOptions::default()
        };
        let records = decode(input, cp1252);
        assert_eq!(values(&records[0]), vec![Some("José"), Some("Sevilla")]);
        assert_eq!(values(&records[1]), vec![Some("€"), Some("Ÿ")]);
        let records = decode(input, CsvOptions::default());
        assert_eq!(
            corrupt(&records[0]),
            (
                Some(&b"Jos\xE9,Sevilla"[..]),
                "invalid UTF-8 at byte 4 of the record; if the file is Latin-1 or Windows-1252, \
                 pass --encoding latin1 or --encoding windows-1252"
            )
        );
        let records = decode("a\nJosé\n".as_bytes(), CsvOptions::default());
        assert_eq!(values(&records[0]), vec![Some("José")]);
    }

    #[test]
    fn unusable_header() {
        let records = decode(b"caf\xE9,b\n1,2\n", CsvOptions::default());
        assert_eq!(records.len(), 1);
        assert_eq!(
            corrupt(&records[0]),
            (
                Some(&b"1,2"[..]),
                "the header is unusable: invalid UTF-8 at byte 4 of the header; if the file is \
                 Latin-1 or Windows-1252, pass --encoding latin1 or --encoding windows-1252"
            )
        );
        let limits = Limits {
            max_record_bytes: 8,
            ..Limits::default()
        };
        let records = decode_with(b"aaaa,bbbb,cccc\n1,2\n", CsvOptions::default(), limits);
        assert_eq!(
            corrupt(&records[0]).1,
            "the header is unusable: the header record of 14 bytes exceeds max_record_bytes (8)"
        );
        assert_eq!(records[0].line, 2);
    }

    #[test]
    fn unterminated_quote() {
        let input = "a,b\n1,2\n3,\"open\n\nrest,of\nfile\n";
        let records = csv(input);
        assert_eq!(records.len(), 2);
        assert_eq!(values(&records[0]), vec![Some("1"), Some("2")]);
        assert_eq!(records[1].line, 3);
        assert_eq!(
            corrupt(&records[1]),
            (
                Some(&b"3,\"open\n\nrest,of\nfile\n"[..]),
                "unterminated quoted field starting at line 3"
            )
        );
        // The quote that stays open is the one reported, not the record's first line.
        let records = csv("a,b\n\"x\ny\",\"never\nclosed");
        assert_eq!(
            corrupt(&records[0]).1,
            "unterminated quoted field starting at line 3"
        );
        // Also when it is the header, and when it is too long to keep.
        let records = csv("\"a,b\n1,2\n");
        assert_eq!(
            corrupt(&records[0]),
            (
                Some(&b"\"a,b\n1,2\n"[..]),
                "unterminated quoted field starting at line 1"
            )
        );
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let records = decode_with(b"a\n\"0123456789abc", CsvOptions::default(), limits);
        assert_eq!(
            corrupt(&records[0]),
            (
                None,
                "unterminated quoted field starting at line 2; record of 14 bytes exceeds \
                 max_record_bytes (10)"
            )
        );
    }

    #[test]
    fn oversized_record_is_skipped() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let input = b"a,b\n1,\"0123456789\n0123456789\"\n2,\"123456\"\r\n3,4";
        let records = decode_with(input, CsvOptions::default(), limits);
        assert_eq!(records.len(), 3);
        assert_eq!(
            corrupt(&records[0]),
            (None, "record of 25 bytes exceeds max_record_bytes (10)")
        );
        assert_eq!(values(&records[1]), vec![Some("2"), Some("123456")]);
        assert_eq!((records[1].line, records[1].len), (4, 10));
        assert_eq!(records[2].line, 5);
    }

    #[test]
    fn tab_delimiter_and_other_quote() {
        let opts = CsvOptions {
            delimiter: b'\t',
            quote: b'\'',
            ..CsvOptions::default()
        };
        let records = decode(b"a\tb\n'x\ty'\t\"z\"\n", opts);
        assert_eq!(values(&records[0]), vec![Some("x\ty"), Some("\"z\"")]);
    }

    #[test]
    fn encoding_names() {
        for (name, encoding) in [
            ("utf-8", Encoding::Utf8),
            ("UTF8", Encoding::Utf8),
            ("latin1", Encoding::Latin1),
            ("Latin-1", Encoding::Latin1),
            ("ISO-8859-1", Encoding::Latin1),
            ("windows-1252", Encoding::Windows1252),
            ("CP1252", Encoding::Windows1252),
        ] {
            assert_eq!(name.parse::<Encoding>(), Ok(encoding));
        }
        let err = "ascii".parse::<Encoding>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown encoding `ascii`; accepted: utf-8 (or utf8), latin1 (or latin-1, \
             iso-8859-1), windows-1252 (or cp1252)"
        );
        assert_eq!(Encoding::Windows1252.to_string(), "windows-1252");
    }

    #[test]
    fn option_validation() {
        assert_eq!(CsvOptions::default().validate(), Ok(()));
        let bad = CsvOptions {
            delimiter: b'"',
            ..CsvOptions::default()
        };
        assert!(bad.validate().is_err());
        let bad = CsvOptions {
            escape: Some(b'\n'),
            ..CsvOptions::default()
        };
        assert!(bad.validate().is_err());
    }
}
