//! An independent record counter for every format the decoders read.
//!
//! Ingestion compares these counts with the number of records a decoder produced, so this
//! module must not share the decoders' code: the small scanning state machines are written
//! again here on purpose, byte by byte, so that a bug in one is caught by the other. The rules
//! are those documented in [`super::json`] and [`super::csv`]. The counter never looks at a
//! record's content (validity, size limits), only at where records begin and end, and it reads
//! through one fixed buffer without keeping any record in memory.
//!
//! The agreement every caller relies on: `records returned by the decoder + (1 if it returned
//! Err) == Count::records`. On a read error the counter therefore stops and counts one record
//! for the unreadable rest: `records = complete records before the error + 1`.

use std::io::{self, Read};

use memchr::memchr;

use super::csv::CsvOptions;

/// What [`count_ndjson`], [`count_json_document`] and [`count_csv`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub records: u64,
    /// Bytes read from the stream (all of it, unless `error` is set).
    pub bytes: u64,
    /// Whether every byte read is valid UTF-8 (a character cut by the end of the stream or by
    /// an error is not).
    pub valid_utf8: bool,
    /// The read error that stopped counting.
    pub error: Option<String>,
}

const CHUNK: usize = 64 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Counts non-blank lines of an NDJSON stream (a line of only spaces, tabs and `\r` is blank; a
/// last line without `\n` counts).
pub fn count_ndjson(r: impl Read) -> Count {
    let mut input = Input::new(r);
    let mut records = 0u64;
    // Whether the line read so far has a byte other than space, tab or `\r`.
    let mut line_has_content = false;
    while let Some(chunk) = input.next_chunk() {
        let mut rest = chunk;
        while let Some(i) = memchr(b'\n', rest) {
            let (line, after) = rest.split_at(i);
            if line_has_content || has_content(line) {
                records += 1;
            }
            line_has_content = false;
            rest = after.get(1..).unwrap_or_default();
        }
        if !line_has_content {
            line_has_content = has_content(rest);
        }
    }
    input.finish(records, line_has_content)
}

fn has_content(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| !matches!(b, b' ' | b'\t' | b'\r'))
}

/// Counts the top-level elements of a `.json` document: the elements of a top-level array, or
/// the values of a sequence, garbage tokens and an unterminated tail included.
pub fn count_json_document(r: impl Read) -> Count {
    let mut input = Input::new(r);
    let mut doc = DocumentCounter::default();
    while let Some(chunk) = input.next_chunk() {
        for &b in chunk {
            doc.byte(b);
        }
    }
    let pending = doc.element.is_some();
    input.finish(doc.records, pending)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Top {
    #[default]
    Start,
    InArray,
    Sequence,
}

#[derive(Debug, Clone, Copy)]
struct Element {
    /// Opened with `{` or `[`: ends at the matching close.
    container: bool,
    /// Started inside the top-level array: a `]` at depth 0 ends it (and the array).
    in_array: bool,
    depth: u64,
    in_string: bool,
    escaped: bool,
}

#[derive(Debug, Default)]
struct DocumentCounter {
    top: Top,
    element: Option<Element>,
    records: u64,
}

impl DocumentCounter {
    fn byte(&mut self, b: u8) {
        let Some(el) = self.element.as_mut() else {
            self.between_elements(b);
            return;
        };
        if el.in_string {
            if el.escaped {
                el.escaped = false;
            } else if b == b'\\' {
                el.escaped = true;
            } else if b == b'"' {
                el.in_string = false;
            }
            return;
        }
        match b {
            b'"' => el.in_string = true,
            b'{' | b'[' => el.depth += 1,
            b'}' | b']' if el.depth > 0 => {
                el.depth -= 1;
                if el.depth == 0 && el.container {
                    self.end_element();
                }
            }
            b']' if el.in_array => {
                // The bracket is not part of the element: it closes the array.
                self.end_element();
                self.top = Top::Sequence;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' if el.depth == 0 => self.end_element(),
            _ => {}
        }
    }

    fn between_elements(&mut self, b: u8) {
        let whitespace = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        if self.top == Top::Start {
            if b == b'[' {
                self.top = Top::InArray;
                return;
            }
            if whitespace {
                return;
            }
            self.top = Top::Sequence;
        }
        if self.top == Top::InArray && b == b']' {
            self.top = Top::Sequence;
        } else if !whitespace && b != b',' {
            self.element = Some(Element {
                container: matches!(b, b'{' | b'['),
                in_array: self.top == Top::InArray,
                depth: u64::from(matches!(b, b'{' | b'[')),
                in_string: b == b'"',
                escaped: false,
            });
        }
    }

    fn end_element(&mut self) {
        self.element = None;
        self.records += 1;
    }
}

/// Counts CSV records, the header excluded, following the quoting rules of [`super::csv`];
/// empty lines (`\n` or `\r\n` alone) are skipped.
pub fn count_csv(r: impl Read, opts: &CsvOptions) -> Count {
    let mut input = Input::new(r);
    let mut csv = CsvCounter::new(opts);
    while let Some(chunk) = input.next_chunk() {
        for &b in chunk {
            csv.byte(b);
        }
    }
    let pending = csv.at_eof();
    input.finish(csv.records, pending)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Start,
    Plain,
    InQuotes,
    AfterEscape,
    /// A quote inside quotes: doubled, or the closing one.
    QuoteInQuotes,
}

struct CsvCounter {
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    field: Field,
    /// Bytes of the current record so far, and its first byte (a lone `\r` is a blank line).
    record_len: u64,
    first_byte: u8,
    header_pending: bool,
    records: u64,
}

impl CsvCounter {
    fn new(opts: &CsvOptions) -> Self {
        Self {
            delimiter: opts.delimiter,
            quote: opts.quote,
            // An escape equal to the quote is the same as escaping by doubling.
            escape: opts.escape.filter(|&e| e != opts.quote),
            field: Field::Start,
            record_len: 0,
            first_byte: 0,
            header_pending: opts.header,
            records: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        let quoted = matches!(self.field, Field::InQuotes | Field::AfterEscape);
        if b == b'\n' && !quoted {
            self.end_record();
            return;
        }
        if self.record_len == 0 {
            self.first_byte = b;
        }
        self.record_len += 1;
        self.field = match self.field {
            Field::AfterEscape => Field::InQuotes,
            Field::InQuotes if self.escape == Some(b) => Field::AfterEscape,
            Field::InQuotes if b == self.quote => Field::QuoteInQuotes,
            Field::InQuotes => Field::InQuotes,
            Field::Start | Field::QuoteInQuotes if b == self.quote => Field::InQuotes,
            _ if b == self.delimiter => Field::Start,
            Field::Start | Field::Plain | Field::QuoteInQuotes => Field::Plain,
        };
    }

    fn is_blank(&self) -> bool {
        self.record_len == 0 || (self.record_len == 1 && self.first_byte == b'\r')
    }

    fn end_record(&mut self) {
        if !self.is_blank() {
            if self.header_pending {
                self.header_pending = false;
            } else {
                self.records += 1;
            }
        }
        self.record_len = 0;
        self.field = Field::Start;
    }

    /// Whether the bytes after the last line break make one more record at the end of the
    /// stream. A quote left open makes the rest a record even when it is the header, because
    /// the decoder reports it as corrupt rather than silently treating it as names.
    fn at_eof(&self) -> bool {
        if matches!(self.field, Field::InQuotes | Field::AfterEscape) {
            return true;
        }
        !self.is_blank() && !self.header_pending
    }
}

/// The stream, read through one buffer, with byte counting, incremental UTF-8 validation and
/// the start-of-stream byte order mark removed.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    bytes: u64,
    utf8: Utf8Check,
    at_start: bool,
    done: bool,
    error: Option<String>,
}

impl<R: Read> Input<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0; CHUNK],
            bytes: 0,
            utf8: Utf8Check::default(),
            at_start: true,
            done: false,
            error: None,
        }
    }

    /// The next bytes of the stream; None at the end or after a read error.
    fn next_chunk(&mut self) -> Option<&[u8]> {
        if self.done {
            return None;
        }
        // At the start, read until a byte order mark can be recognised whole even from a
        // reader that hands out one byte at a time.
        let want = if self.at_start { BOM.len() } else { 1 };
        let mut filled = 0;
        while filled < want {
            let space = self.buf.get_mut(filled..).unwrap_or_default();
            match self.reader.read(space) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.done = true;
                    break;
                }
            }
        }
        let data = self.buf.get(..filled).unwrap_or_default();
        self.bytes += filled as u64;
        self.utf8.feed(data);
        if std::mem::take(&mut self.at_start) {
            return Some(data.strip_prefix(BOM).unwrap_or(data));
        }
        (filled > 0).then_some(data)
    }

    /// `pending`: the bytes after the last complete record make one more record at the end of
    /// the stream. Not consulted after an error, which always adds exactly one.
    fn finish(self, complete: u64, pending: bool) -> Count {
        let records = if self.error.is_some() {
            complete + 1
        } else {
            complete + u64::from(pending)
        };
        Count {
            records,
            bytes: self.bytes,
            valid_utf8: self.utf8.finish(),
            error: self.error,
        }
    }
}

/// UTF-8 validation across chunk boundaries: a character cut by the end of a chunk is carried
/// over and completed from the next one.
#[derive(Debug, Default)]
struct Utf8Check {
    invalid: bool,
    carry: [u8; 4],
    carried: usize,
}

impl Utf8Check {
    fn feed(&mut self, mut data: &[u8]) {
        if self.invalid {
            return;
        }
        if self.carried > 0 {
            let width = match self.carry.first() {
                Some(0xF0..=0xF4) => 4,
                Some(0xE0..=0xEF) => 3,
                _ => 2,
            };
            while self.carried < width {
                let Some((&b, rest)) = data.split_first() else {
                    return;
                };
                if let Some(slot) = self.carry.get_mut(self.carried) {
                    *slot = b;
                }
                self.carried += 1;
                data = rest;
            }
            let character = self.carry.get(..width).unwrap_or_default();
            if std::str::from_utf8(character).is_err() {
                self.invalid = true;
                return;
            }
            self.carried = 0;
        }
        if let Err(e) = std::str::from_utf8(data) {
            match e.error_len() {
                Some(_) => self.invalid = true,
                None => {
                    let tail = data.get(e.valid_up_to()..).unwrap_or_default();
                    self.carried = tail.len().min(self.carry.len());
                    for (slot, &b) in self.carry.iter_mut().zip(tail) {
                        *slot = b;
                    }
                }
            }
        }
    }

    fn finish(&self) -> bool {
        !self.invalid && self.carried == 0
    }
}

/// Counts the records of an Avro object container file from its block headers: each block
/// starts with its record count and byte size, and ends with the file's 16-byte sync marker. The
/// blocks' data is skipped, never decoded. A block whose header was read but whose bytes are
/// cut off still counts its records (they exist, unreadable); a header that cannot be read
/// counts one record for the unreadable rest, as for the text formats.
pub fn count_avro(r: impl Read) -> Count {
    let mut input = AvroInput {
        inner: io::BufReader::with_capacity(CHUNK, r),
        bytes: 0,
    };
    let mut records = 0u64;
    let fail = |records: u64, bytes: u64, e: String| Count {
        records: records + 1,
        bytes,
        valid_utf8: false,
        error: Some(e),
    };
    let mut magic = [0u8; 4];
    if let Err(e) = input.exact(&mut magic) {
        return fail(0, input.bytes, format!("not an Avro container file: {e}"));
    }
    if &magic != b"Obj\x01" {
        return fail(
            0,
            input.bytes,
            "not an Avro container file (no Obj\\x01 magic)".into(),
        );
    }
    // The header's metadata map: blocks of (key, value) pairs, ended by a zero count.
    loop {
        let count = match input.long() {
            Ok(c) => c,
            Err(e) => return fail(0, input.bytes, format!("Avro header: {e}")),
        };
        if count == 0 {
            break;
        }
        if count < 0 && input.long().is_err() {
            return fail(
                0,
                input.bytes,
                "Avro header: cut off in its metadata".into(),
            );
        }
        for _ in 0..count.unsigned_abs() {
            for _ in 0..2 {
                if let Err(e) = input.long().and_then(|n| input.skip(n)) {
                    return fail(0, input.bytes, format!("Avro header: {e}"));
                }
            }
        }
    }
    let mut sync = [0u8; 16];
    if let Err(e) = input.exact(&mut sync) {
        return fail(0, input.bytes, format!("Avro header: no sync marker: {e}"));
    }
    let mut block = 0u64;
    loop {
        let count = match input.long_or_end() {
            Ok(None) => break,
            Ok(Some(c)) => c,
            Err(e) => return fail(records, input.bytes, format!("Avro block {block}: {e}")),
        };
        let Ok(count) = u64::try_from(count) else {
            return fail(
                records,
                input.bytes,
                format!("Avro block {block}: negative record count"),
            );
        };
        let mut marker = [0u8; 16];
        let rest = input
            .long()
            .and_then(|size| input.skip(size))
            .and_then(|()| input.exact(&mut marker));
        records += count;
        if let Err(e) = rest {
            return Count {
                records,
                bytes: input.bytes,
                valid_utf8: false,
                error: Some(format!("Avro block {block} is cut off: {e}")),
            };
        }
        if marker != sync {
            return Count {
                records,
                bytes: input.bytes,
                valid_utf8: false,
                error: Some(format!(
                    "Avro block {block}: the sync marker does not match"
                )),
            };
        }
        block += 1;
    }
    Count {
        records,
        bytes: input.bytes,
        valid_utf8: true,
        error: None,
    }
}

struct AvroInput<R> {
    inner: io::BufReader<R>,
    bytes: u64,
}

impl<R: Read> AvroInput<R> {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match self.inner.read(&mut b)? {
            0 => Ok(None),
            _ => {
                self.bytes += 1;
                Ok(Some(b[0]))
            }
        }
    }

    fn exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(out)?;
        self.bytes += out.len() as u64;
        Ok(())
    }

    /// A zig-zag varint long, or None at a clean end of the stream.
    fn long_or_end(&mut self) -> io::Result<Option<i64>> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(b) = self.byte()? else {
                return if shift == 0 {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "cut off in a number",
                    ))
                };
            };
            if shift >= 64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "number too long",
                ));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(Some(((value >> 1) as i64) ^ -((value & 1) as i64)));
            }
            shift += 7;
        }
    }

    fn long(&mut self) -> io::Result<i64> {
        self.long_or_end()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the file ends early"))
    }

    fn skip(&mut self, n: i64) -> io::Result<()> {
        let n = u64::try_from(n)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative length"))?;
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.bytes += copied;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends early",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::csv::{CsvDecoder, Encoding};
    use super::super::json::{JsonDocumentDecoder, NdjsonDecoder};
    use super::super::{Body, Limits, Record, RecordDecoder};
    use super::*;
    use std::io::{BufReader, Cursor, Write};

    fn ndjson(input: &[u8]) -> u64 {
        let count = count_ndjson(input);
        assert_eq!(count.bytes, input.len() as u64);
        assert_eq!(count.error, None);
        count.records
    }

    fn document(input: &[u8]) -> u64 {
        count_json_document(input).records
    }

    fn csv(input: &[u8], opts: &CsvOptions) -> u64 {
        count_csv(input, opts).records
    }

    #[test]
    fn ndjson_counts() {
        assert_eq!(ndjson(b""), 0);
        assert_eq!(ndjson(b"\n \n\t\r\n"), 0);
        assert_eq!(ndjson(b"{}\n\n{}\r\n x"), 3);
        assert_eq!(ndjson(b"\xEF\xBB\xBF\n{}"), 1);
        assert_eq!(ndjson(b"\xEF\xBB\xBF"), 0);
        assert_eq!(ndjson(b"\xEF\xBB"), 1);
    }

    #[test]
    fn document_counts() {
        assert_eq!(document(b""), 0);
        assert_eq!(document(b"[]"), 0);
        assert_eq!(document(b"[ {}, {\"a\":\"]\"} ,1,,\"x]\"]"), 4);
        assert_eq!(document(b"[{}, {"), 2);
        assert_eq!(document(b"[{}, {}"), 2);
        assert_eq!(document(b"{}{} garbage, 12 {\"b\": [1"), 5);
        assert_eq!(document(b"[1] [2] }"), 3);
        assert_eq!(document(b"\"a b\" \"c"), 2);
    }

    #[test]
    fn csv_counts() {
        let opts = CsvOptions::default();
        assert_eq!(csv(b"", &opts), 0);
        assert_eq!(csv(b"a,b\n", &opts), 0);
        assert_eq!(csv(b"a,b", &opts), 0);
        assert_eq!(csv(b"a,b\r\n\r\n1,\"x\n\"\"y\"\r\n\n2,3", &opts), 2);
        assert_eq!(csv(b"a\n\"open\n\n", &opts), 1);
        assert_eq!(csv(b"\"open header\n1\n", &opts), 1);
        let no_header = CsvOptions {
            header: false,
            escape: Some(b'\\'),
            ..CsvOptions::default()
        };
        assert_eq!(csv(b"\"a\\\"\n\",b\n\n\r\n\r", &no_header), 1);
    }

    #[test]
    fn utf8_validity_across_chunks() {
        let text = "a é € 😀 z".as_bytes();
        for split in 0..=text.len() {
            let mut check = Utf8Check::default();
            check.feed(&text[..split]);
            check.feed(&text[split..]);
            assert!(check.finish(), "split at {split}");
        }
        for bad in [
            &b"\xE9"[..],
            b"\xF0\x9F\x98",
            b"\xED\xA0\x80",
            b"a\xC3(",
            b"\xC0\xAF",
        ] {
            for split in 0..=bad.len() {
                let mut check = Utf8Check::default();
                check.feed(&bad[..split]);
                check.feed(&bad[split..]);
                assert!(!check.finish(), "{bad:?} split at {split}");
            }
        }
        assert!(!count_csv(&b"a\n\xE9\n"[..], &CsvOptions::default()).valid_utf8);
        assert!(count_ndjson(&b"\xEF\xBB\xBF{}"[..]).valid_utf8);
    }

    /// A reader that hands out pseudo-random small reads, interrupts now and then, and can fail
    /// for good once `fail_at` bytes have been read.
    struct Flaky {
        data: Vec<u8>,
        pos: usize,
        fail_at: Option<usize>,
        rng: Rng,
    }

    impl Read for Flaky {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                return Err(io::Error::other("injected read failure"));
            }
            if self.rng.below(8) == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let limit = self.fail_at.unwrap_or(self.data.len()).min(self.data.len());
            let n = (1 + self.rng.below(9) as usize)
                .min(out.len())
                .min(limit - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// SplitMix64: deterministic, good enough to shake out boundary cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Format {
        Ndjson,
        Document,
        Csv(CsvOptions),
    }

    fn decoder(
        format: Format,
        reader: impl Read + Send + 'static,
        capacity: usize,
        limits: Limits,
    ) -> Box<dyn RecordDecoder> {
        let reader = BufReader::with_capacity(capacity, reader);
        match format {
            Format::Ndjson => Box::new(NdjsonDecoder::new(reader, limits)),
            Format::Document => Box::new(JsonDocumentDecoder::new(reader, limits)),
            Format::Csv(opts) => Box::new(CsvDecoder::new(reader, opts, limits)),
        }
    }

    /// Runs the decoder to the end or to its first error.
    fn run(mut decoder: Box<dyn RecordDecoder>) -> (Vec<Record>, bool) {
        let mut records = Vec::new();
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => return (records, false),
                Err(_) => return (records, true),
            }
        }
    }

    fn count(format: Format, reader: impl Read) -> Count {
        match format {
            Format::Ndjson => count_ndjson(reader),
            Format::Document => count_json_document(reader),
            Format::Csv(opts) => count_csv(reader, &opts),
        }
    }

    /// How often each outcome occurred, to show the generator exercises all of them.
    #[derive(Debug, Default)]
    struct Tally {
        fields: u64,
        corrupt: u64,
        skipped_unbuffered: u64,
        read_errors: u64,
    }

    /// The agreement rule, plus record invariants that need no knowledge of the format.
    fn check(
        format: Format,
        data: &[u8],
        limits: Limits,
        fail_at: Option<usize>,
        seed: u64,
        tally: &mut Tally,
    ) {
        let context = || {
            format!(
                "{format:?} seed {seed} fail_at {fail_at:?} data {:?}",
                String::from_utf8_lossy(data)
            )
        };
        let flaky = |salt: u64| Flaky {
            data: data.to_vec(),
            pos: 0,
            fail_at,
            rng: Rng(seed ^ salt),
        };
        let capacity = 1 + (seed % 37) as usize;
        let (records, failed) = run(decoder(format, flaky(1), capacity, limits));
        let counted = count(format, flaky(2));
        assert_eq!(
            records.len() as u64 + u64::from(failed),
            counted.records,
            "{} failed {failed} records {records:?} count {counted:?}",
            context()
        );
        let fails = fail_at.is_some_and(|at| at <= data.len());
        assert_eq!(failed, fails, "{}", context());
        assert_eq!(counted.error.is_some(), fails, "{}", context());
        assert_eq!(
            counted.bytes as usize,
            fail_at.unwrap_or(data.len()).min(data.len())
        );
        if !fails {
            assert_eq!(
                counted.valid_utf8,
                std::str::from_utf8(data).is_ok(),
                "{}",
                context()
            );
        }
        // Records read before a failure are exactly the first records of a clean read.
        let (clean, clean_failed) = run(decoder(format, Cursor::new(data.to_vec()), 4096, limits));
        assert!(!clean_failed);
        assert_eq!(&clean[..records.len()], &records[..], "{}", context());
        tally.read_errors += u64::from(failed);
        let mut previous_end = 0;
        for record in &records {
            match &record.body {
                Body::Fields(_) => tally.fields += 1,
                Body::Corrupt { raw: Some(_), .. } => tally.corrupt += 1,
                Body::Corrupt { raw: None, .. } => tally.skipped_unbuffered += 1,
            }
            let start = record.offset as usize;
            let end = start + record.len as usize;
            assert!(start >= previous_end && end <= data.len(), "{}", context());
            previous_end = end;
            if let Body::Corrupt { raw: Some(raw), .. } = &record.body {
                assert_eq!(&data[start..end], &raw[..], "{}", context());
            }
            if let Body::Corrupt { raw: None, .. } = &record.body {
                assert!(
                    record.len as usize > limits.max_record_bytes,
                    "{}",
                    context()
                );
            }
            if !matches!(format, Format::Document) {
                let newlines = data[..start].iter().filter(|&&b| b == b'\n').count();
                assert_eq!(record.line, newlines as u64 + 1, "{}", context());
            }
        }
    }

    fn gen_json_value(rng: &mut Rng, depth: u32) -> String {
        match rng.below(if depth > 3 { 6 } else { 9 }) {
            0 => rng
                .pick(&[
                    "1",
                    "-12.50",
                    "1234567890123456789012345678901234567890",
                    "1e3",
                ])
                .to_owned(),
            1 => rng.pick(&["true", "false", "null"]).to_owned(),
            2 => rng
                .pick(&[
                    "\"x\"",
                    "\"a]b\"",
                    "\"}{\"",
                    "\"q\\\"}\"",
                    "\"\\\\\"",
                    "\"line\\nbreak\"",
                    "\"é\"",
                ])
                .to_owned(),
            3..=5 => rng.pick(&["\"s\"", "0", "\"\""]).to_owned(),
            6 | 7 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n).map(|_| gen_json_value(rng, depth + 1)).collect();
                format!("[{}]", items.join(rng.pick(&[",", ", ", ",\n  "])))
            }
            _ => gen_object(rng, depth + 1),
        }
    }

    fn gen_object(rng: &mut Rng, depth: u32) -> String {
        let n = rng.below(4);
        let fields: Vec<String> = (0..n)
            .map(|_| {
                let name = rng.pick(&["a", "b", "a.b", "with space", "_source_file", "q\\\"", "ü"]);
                format!(
                    "\"{name}\":{}{}",
                    rng.pick(&["", " ", "\n "]),
                    gen_json_value(rng, depth)
                )
            })
            .collect();
        format!("{{{}}}", fields.join(rng.pick(&[",", ", ", ",\n"])))
    }

    fn soup(rng: &mut Rng, alphabet: &[u8]) -> Vec<u8> {
        let n = rng.below(40);
        (0..n)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect()
    }

    fn gen_ndjson(rng: &mut Rng) -> Vec<u8> {
        if rng.chance(15) {
            return soup(rng, b"{}[]\":, \t\r\n\\a1\xFF");
        }
        let mut out = Vec::new();
        if rng.chance(10) {
            out.extend_from_slice(BOM);
        }
        for _ in 0..rng.below(8) {
            let line: Vec<u8> = match rng.below(10) {
                0 => rng.pick(&["", "  ", "\t\r", " "]).into(),
                1 => rng
                    .pick(&[
                        "{\"a\":", "{]", "nope", "[1]", "\"s\"", "3", "{} {}", "\u{c}",
                    ])
                    .into(),
                2 => b"{\"a\":\"\xFF\"}".to_vec(),
                3 => {
                    let depth = 1 + rng.below(8) as usize;
                    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()
                }
                4 => {
                    format!("{{\"long\":\"{}\"}}", "x".repeat(rng.below(200) as usize)).into_bytes()
                }
                _ => gen_object(rng, 1).replace('\n', " ").into_bytes(),
            };
            out.extend_from_slice(&line);
            out.extend_from_slice(rng.pick(&["\n", "\n", "\r\n", "\n\n"]).as_bytes());
        }
        if rng.chance(30) {
            out.truncate(rng.below(out.len() as u64 + 1) as usize);
        }
        out
    }

    fn gen_document(rng: &mut Rng) -> Vec<u8> {
        if rng.chance(20) {
            return soup(rng, b"{}[]\", \n\\a1:");
        }
        let array = rng.chance(50);
        let mut out = String::new();
        if array {
            out.push_str(rng.pick(&["[", " [\n", "\u{FEFF}["]));
        }
        for i in 0..rng.below(6) {
            if i > 0 {
                out.push_str(rng.pick(&[",", ", ", ",\n", "\n", ",,", " "]));
            }
            let element = match rng.below(8) {
                0 => gen_json_value(rng, 0),
                1 => rng
                    .pick(&["garbage", "}", "]", "tru", "\"open", "{\"a\":1 x}", "12abc"])
                    .to_owned(),
                2 => format!(
                    "{}{}",
                    "[".repeat(rng.below(8) as usize),
                    "]".repeat(rng.below(8) as usize)
                ),
                _ => gen_object(rng, 0),
            };
            out.push_str(&element);
        }
        if array && rng.chance(70) {
            out.push_str(rng.pick(&["]", "\n]\n", "] trailing", "][]"]));
        }
        let mut out = out.into_bytes();
        if rng.chance(30) {
            out.truncate(rng.below(out.len() as u64 + 1) as usize);
        }
        out
    }

    fn gen_csv(rng: &mut Rng) -> (Vec<u8>, CsvOptions) {
        let opts = CsvOptions {
            header: rng.chance(60),
            delimiter: [b',', b';', b'\t', b'|'][rng.below(4) as usize],
            quote: if rng.chance(80) { b'"' } else { b'\'' },
            escape: [None, Some(b'\\'), Some(b'"')][rng.below(3) as usize],
            encoding: [Encoding::Utf8, Encoding::Latin1, Encoding::Windows1252]
                [rng.below(3) as usize],
        };
        if rng.chance(20) {
            return (soup(rng, b",;\"'\\\n\r a\xE9"), opts);
        }
        let d = char::from(opts.delimiter);
        let q = char::from(opts.quote);
        let mut out = Vec::new();
        if rng.chance(10) {
            out.extend_from_slice(BOM);
        }
        let width = 1 + rng.below(4);
        for _ in 0..rng.below(7) {
            if rng.chance(10) {
                out.extend_from_slice(rng.pick(&["\n", "\r\n"]).as_bytes());
                continue;
            }
            let fields = if rng.chance(15) {
                1 + rng.below(5)
            } else {
                width
            };
            let mut record = Vec::new();
            for i in 0..fields {
                if i > 0 {
                    record.push(opts.delimiter);
                }
                let field: Vec<u8> = match rng.below(9) {
                    0 => Vec::new(),
                    1 => format!("{q}{q}").into_bytes(),
                    2 => format!("{q}a{d}b{q}").into_bytes(),
                    3 => format!("{q}say {q}{q}hi{q}{q}{q}").into_bytes(),
                    4 => format!("{q}two\nlines\r\nhere{q}").into_bytes(),
                    5 => format!("{q}esc \\{q} \\\\ \\n{q}").into_bytes(),
                    6 if rng.chance(50) => format!("{q}esc \\{q}\n{d}{q}").into_bytes(),
                    6 => b"caf\xE9".to_vec(),
                    7 => format!("{q}open").into_bytes(),
                    _ => rng
                        .pick(&["x", "12.50", " padded ", "é", "a\"b"])
                        .as_bytes()
                        .to_vec(),
                };
                record.extend_from_slice(&field);
            }
            out.extend_from_slice(&record);
            out.extend_from_slice(rng.pick(&["\n", "\r\n", "\n"]).as_bytes());
        }
        if rng.chance(30) {
            out.truncate(rng.below(out.len() as u64 + 1) as usize);
        }
        (out, opts)
    }

    #[test]
    fn decoders_and_counter_agree_on_random_inputs() {
        let mut rng = Rng(0x5eed_0f57_a7a0);
        let mut tallies = [Tally::default(), Tally::default(), Tally::default()];
        for case in 0..2000u64 {
            let (format, data) = match case % 3 {
                0 => (Format::Ndjson, gen_ndjson(&mut rng)),
                1 => (Format::Document, gen_document(&mut rng)),
                _ => {
                    let (data, opts) = gen_csv(&mut rng);
                    (Format::Csv(opts), data)
                }
            };
            let limits = Limits {
                max_record_bytes: [8, 40, 120, 1 << 20][rng.below(4) as usize],
                max_nesting: 1 + rng.below(8) as usize,
            };
            let fail_at = if rng.chance(35) {
                Some(rng.below(data.len() as u64 + 2) as usize)
            } else {
                None
            };
            let tally = &mut tallies[(case % 3) as usize];
            check(format, &data, limits, fail_at, rng.next(), tally);
        }
        for tally in &tallies {
            assert!(tally.fields > 300, "{tallies:?}");
            assert!(tally.corrupt > 200, "{tallies:?}");
            assert!(tally.skipped_unbuffered > 20, "{tallies:?}");
            assert!(tally.read_errors > 100, "{tallies:?}");
        }
    }

    fn gzip_half(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("compress");
        let mut gz = encoder.finish().expect("compress");
        gz.truncate(gz.len() / 2);
        gz
    }

    fn truncated_gzip_agrees(format: Format, data: &[u8]) {
        let gz = gzip_half(data);
        let reader = flate2::read::GzDecoder::new(Cursor::new(gz.clone()));
        let (records, failed) = run(decoder(format, reader, 8192, Limits::default()));
        assert!(failed, "a truncated gzip stream is an I/O error");
        assert!(records.len() > 100, "records before the cut are decoded");
        assert!(records.iter().all(|r| matches!(r.body, Body::Fields(_))));
        let counted = count(format, flate2::read::GzDecoder::new(Cursor::new(gz)));
        assert!(counted.error.is_some());
        assert_eq!(counted.records, records.len() as u64 + 1);
        assert!(counted.bytes < data.len() as u64);
    }

    #[test]
    fn truncated_gzip_stream() {
        let mut ndjson = String::new();
        let mut csv = String::from("id,name,amount\n");
        let mut document = String::from("[\n");
        for i in 0..20_000 {
            ndjson.push_str(&format!(
                "{{\"id\":{i},\"name\":\"user {i}\",\"amount\":{}.50}}\n",
                i % 97
            ));
            csv.push_str(&format!("{i},\"user, {i}\",{}.50\n", i % 97));
            document.push_str(&format!("  {{\"id\": {i}, \"tags\": [\"a]\", \"b\"]}},\n"));
        }
        document.push_str("  {}\n]\n");
        truncated_gzip_agrees(Format::Ndjson, ndjson.as_bytes());
        truncated_gzip_agrees(Format::Csv(CsvOptions::default()), csv.as_bytes());
        truncated_gzip_agrees(Format::Document, document.as_bytes());
    }

    #[test]
    fn read_error_counts_one_record_for_the_rest() {
        let data = b"{}\n{}\n{\"partial";
        let mut tally = Tally::default();
        for fail_at in 0..=data.len() {
            let limits = Limits::default();
            check(
                Format::Ndjson,
                data,
                limits,
                Some(fail_at),
                fail_at as u64,
                &mut tally,
            );
        }
        assert_eq!(tally.read_errors, data.len() as u64 + 1);
        let counted = count_ndjson(Flaky {
            data: data.to_vec(),
            pos: 0,
            fail_at: Some(7),
            rng: Rng(1),
        });
        assert_eq!(counted.records, 3);
        assert_eq!(counted.bytes, 7);
        assert_eq!(counted.error.as_deref(), Some("injected read failure"));
    }

    /// An Avro container of longs: header (schema, no codec), then blocks of `blocks` records.
    fn avro_file(blocks: &[&[u8]]) -> Vec<u8> {
        let sync = [7u8; 16];
        let mut f = b"Obj\x01".to_vec();
        f.push(0x02); // one metadata entry
        f.push(22); // key length 11
        f.extend_from_slice(b"avro.schema");
        f.push(12); // value length 6
        f.extend_from_slice(b"\"long\"");
        f.push(0x00);
        f.extend_from_slice(&sync);
        for data in blocks {
            // every value is one byte: count = bytes
            f.push((data.len() as u8) * 2);
            f.push((data.len() as u8) * 2);
            f.extend_from_slice(data);
            f.extend_from_slice(&sync);
        }
        f
    }

    #[test]
    fn avro_counts_block_headers() {
        let f = avro_file(&[&[2, 4], &[6, 8, 10]]);
        let c = count_avro(&f[..]);
        assert_eq!((c.records, c.error.is_none()), (5, true));
        // Cut inside the last block: its records still count, with the error.
        let c = count_avro(&f[..f.len() - 5]);
        assert_eq!(c.records, 5);
        assert!(c.error.unwrap().contains("block 1 is cut off"));
        // A header that cannot be read is one record.
        let c = count_avro(&f[..10]);
        assert_eq!(c.records, 1);
        assert!(c.error.is_some());
        let c = count_avro(&b"not avro at all"[..]);
        assert_eq!(c.records, 1);
    }
}
