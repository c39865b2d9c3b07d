//! Sample click-event data with seeded defects, behind `strata generate events`.
//!
//! [`generate_events`] writes `events-00000.ndjson`, `events-00001.ndjson`, ...
//! (one JSON event per line) plus a `_generate.json` manifest. Besides clean
//! events, the files carry a known number of defects: byte-identical
//! duplicates, late arrivals, malformed lines, null users, bad timestamps,
//! negative amounts, unknown event types, amounts that turn into strings, and
//! a `coupon` field that appears halfway through. The returned
//! [`GenerateSummary`] (also in the manifest) is the ground truth that ingest
//! tests compare their quarantine and dedup counts against.
//!
//! Every choice comes from a small in-module PRNG seeded by `--seed`, and all
//! text (timestamps, amounts, ids) is rendered from integers, so the same
//! `(rows, files, seed)` produces byte-identical files on every machine and run.
//!
//! Late arrivals are placed 2-48 hours before the start of the file's time
//! window (the event clock when the file begins), so they are more than an
//! hour late relative to the file they land in, however long that file spans.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What `generate_events` writes, and the defects it seeded (the tests check ingest against these).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerateSummary {
    pub files: Vec<std::path::PathBuf>, // in lexicographic order
    pub rows: u64,  // lines written, malformed ones included (== the `rows` argument)
    pub bytes: u64, // total bytes written
    pub duplicates: u64, // lines that repeat an earlier event_id with identical content
    pub late_arrivals: u64, // events whose ts is more than 1 hour before the file's time window
    pub malformed: u64, // lines that are not valid JSON objects
    pub null_users: u64, // "user_id": null
    pub bad_timestamps: u64, // ts that is not a valid RFC 3339 timestamp
    pub negative_amounts: u64,
    pub unknown_types: u64,         // event_type outside the known set
    pub new_field_from_file: usize, // index of the first file whose rows carry the extra field `coupon`
    pub string_amounts: u64,        // "amount": "12.50" (a JSON string) instead of a number
}

/// Arguments of `strata generate events`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Total lines across all files.
    pub rows: u64,
    /// Number of `events-*.ndjson` files; at least 1.
    pub files: usize,
    pub seed: u64,
    /// Output directory, created if missing.
    pub out: std::path::PathBuf,
}

/// 2026-01-01T00:00:00Z in Unix milliseconds: where the event clock starts.
const BASE_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
/// How many recent clean lines are kept for replaying as duplicates.
const RING: usize = 64;
/// From this many rows on, every defect kind is forced to appear at least once.
const GUARANTEE_ROWS: u64 = 1_000;

// Defect kinds, indexing `RATES` and `Gen::counts`.
const DUP: usize = 0;
const MALFORMED: usize = 1;
const NULL_USER: usize = 2;
const LATE: usize = 3;
const BAD_TS: usize = 4;
const NEGATIVE: usize = 5;
const UNKNOWN: usize = 6;
const STRING_AMOUNT: usize = 7;
const KINDS: usize = 8;
/// Chance per 10,000 rows of each kind (string amounts: of rows in the second half).
const RATES: [u64; KINDS] = [100, 50, 200, 100, 50, 50, 50, 1000];

const EVENT_TYPES: [&str; 4] = ["view", "click", "purchase", "signup"];
/// Cumulative weights out of 100, so page views dominate as in real clickstreams.
const TYPE_WEIGHTS: [u64; 4] = [55, 85, 95, 100];
const PURCHASE: usize = 2;
const UNKNOWN_TYPES: [&str; 3] = ["refund_requested", "page_view", "View"];
const BAD_TIMESTAMPS: [&str; 2] = ["2026-13-45T99:00:00Z", "yesterday"];
const COUNTRIES: [&str; 10] = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "NL"];
const DEVICES: [&str; 4] = ["ios", "android", "web", "desktop"];
// The tables below hold JSON values verbatim, escapes included, so ingest also
// sees nulls, `\"` and `\u` escapes and non-ASCII text inside nested objects.
const REFERRERS: [&str; 4] = [
    "null",
    r#""https://www.google.com/""#,
    r#""https://news.ycombinator.com/""#,
    r#""https://t.co/x?utm_source=a&utm_medium=b""#,
];
const QUERIES: [&str; 4] = [
    r#""winter jacket""#,
    r#""caf\u00e9 au lait""#,
    r#""size 10 \"wide\"""#,
    "\"日本 green tea\"",
];
const TAGS: [&str; 5] = ["sale", "new", "mobile", "promo", "beta"];
const COUPONS: [&str; 3] = ["SAVE10", "WELCOME5", "FREESHIP"];

/// splitmix64: tiny, fast, and fully specified, so the stream never changes
/// under us the way an external RNG crate's might between versions.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is far below what matters here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn chance(&mut self, per_10k: u64) -> bool {
        self.below(10_000) < per_10k
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The splitmix64 finalizer. It is a bijection, which is what makes event ids unique.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Generator state carried across files: the clock and the duplicate ring
/// deliberately span file boundaries, like a retried batch would.
struct Gen {
    rng: Rng,
    id_key: u64,
    rows: u64,
    clock: i64,
    window_start: i64,
    string_from_row: u64,
    coupon_from_row: u64,
    ring: Vec<Vec<u8>>,
    ring_next: usize,
    counts: [u64; KINDS],
    bytes: u64,
}

impl Gen {
    /// Whether `kind` must appear at row `g` regardless of the dice: each kind
    /// gets a checkpoint, and if it has not shown up by then it is forced
    /// (on the next row it fits, if this one can't take it).
    fn forced(&self, kind: usize, g: u64) -> bool {
        self.rows >= GUARANTEE_ROWS
            && self.counts[kind] == 0
            && g >= self.rows / (KINDS as u64 + 1) * (kind as u64 + 1)
    }

    fn roll(&mut self, kind: usize, g: u64) -> bool {
        let hit = self.rng.chance(RATES[kind]);
        hit || self.forced(kind, g)
    }

    /// Writes global row `g`. `line` is a reused scratch buffer.
    fn row<W: Write>(&mut self, line: &mut Vec<u8>, g: u64, out: &mut W) -> io::Result<()> {
        self.clock += self.rng.below(2001) as i64;
        if g == self.coupon_from_row {
            // Replaying a pre-`coupon` line after this point would break
            // "every row of the later files carries coupon".
            self.ring.clear();
            self.ring_next = 0;
        }
        if self.roll(DUP, g) && !self.ring.is_empty() {
            let k = self.rng.below(self.ring.len() as u64) as usize;
            let copy = &self.ring[k];
            out.write_all(copy)?;
            self.bytes += copy.len() as u64;
            self.counts[DUP] += 1;
            return Ok(());
        }
        line.clear();
        let id = mix(self.id_key.wrapping_add(g));
        let clean = if self.roll(MALFORMED, g) {
            self.malformed(line, id);
            self.counts[MALFORMED] += 1;
            false
        } else {
            self.event(line, g, id)
        };
        out.write_all(line)?;
        self.bytes += line.len() as u64;
        if clean {
            self.remember(line);
        }
        Ok(())
    }

    /// Only clean lines are replayed, so a duplicate never counts towards
    /// another defect and the counts mean the same before and after dedup.
    fn remember(&mut self, line: &[u8]) {
        if self.ring.len() < RING {
            self.ring.push(line.to_vec());
        } else {
            let slot = &mut self.ring[self.ring_next];
            slot.clear();
            slot.extend_from_slice(line);
            self.ring_next = (self.ring_next + 1) % RING;
        }
    }

    fn malformed(&mut self, l: &mut Vec<u8>, id: u64) {
        match self.rng.below(4) {
            0 => {
                l.extend_from_slice(b"{\"event_id\":\"evt-");
                push_hex(l, id, 16);
                l.extend_from_slice(b"\",\"user_id\":");
            }
            1 => l.extend_from_slice(b"not json at all"),
            2 => l.extend_from_slice(b"[1,2,3]"),
            _ => {
                l.extend_from_slice(b"{\"event_id\":\"evt-");
                push_hex(l, id, 16);
                l.extend_from_slice(b"\",\"user_id\":\"u-");
                push_num(l, 1 + self.rng.below(5000), 1);
                l.push(b'}');
            }
        }
        l.push(b'\n');
    }

    /// Renders one event object into `l`; returns whether it carries no defect.
    fn event(&mut self, l: &mut Vec<u8>, g: u64, id: u64) -> bool {
        let null_user = self.roll(NULL_USER, g);
        let late = self.roll(LATE, g);
        let bad_ts = !late && self.roll(BAD_TS, g);
        // Negative amounts only make sense on purchases, so they pin the type.
        let negative = self.roll(NEGATIVE, g);
        let unknown = !negative && self.roll(UNKNOWN, g);
        let stringy = g >= self.string_from_row && !negative && self.roll(STRING_AMOUNT, g);
        let flags = [
            (NULL_USER, null_user),
            (LATE, late),
            (BAD_TS, bad_ts),
            (NEGATIVE, negative),
            (UNKNOWN, unknown),
            (STRING_AMOUNT, stringy),
        ];
        for (kind, hit) in flags {
            self.counts[kind] += u64::from(hit);
        }

        let rng = &mut self.rng;
        let kind = if negative {
            PURCHASE
        } else {
            let w = rng.below(100);
            TYPE_WEIGHTS.iter().position(|&c| w < c).unwrap_or(0)
        };
        let user = 1 + rng.below(5000);

        l.extend_from_slice(b"{\"event_id\":\"evt-");
        push_hex(l, id, 16);
        l.extend_from_slice(b"\",\"user_id\":");
        if null_user {
            l.extend_from_slice(b"null");
        } else {
            l.extend_from_slice(b"\"u-");
            push_num(l, user, 1);
            l.push(b'"');
        }
        l.extend_from_slice(b",\"event_type\":\"");
        let type_name = if unknown {
            rng.pick(&UNKNOWN_TYPES)
        } else {
            EVENT_TYPES[kind]
        };
        l.extend_from_slice(type_name.as_bytes());
        l.extend_from_slice(b"\",\"ts\":\"");
        if bad_ts {
            l.extend_from_slice(rng.pick(&BAD_TIMESTAMPS).as_bytes());
        } else if late {
            let back = 2 * HOUR_MS + rng.below(46 * HOUR_MS as u64 + 1) as i64;
            push_ts(l, self.window_start - back);
        } else {
            push_ts(l, self.clock);
        }
        // Sessions are per user per half hour, so they group like real ones.
        let session = if null_user {
            rng.next_u64()
        } else {
            mix(self.id_key ^ user.wrapping_mul(GOLDEN) ^ (self.clock / (HOUR_MS / 2)) as u64)
        };
        l.extend_from_slice(b"\",\"session_id\":\"s-");
        push_hex(l, session, 8);
        l.extend_from_slice(b"\",\"amount\":");
        let cents = if kind == PURCHASE && !unknown {
            let c = 100 + rng.below(49_900) as i64;
            if negative { -c } else { c }
        } else {
            0
        };
        if stringy {
            l.push(b'"');
            push_cents(l, cents);
            l.push(b'"');
        } else {
            push_cents(l, cents);
        }
        l.extend_from_slice(b",\"country\":\"");
        l.extend_from_slice(rng.pick(&COUNTRIES).as_bytes());
        l.extend_from_slice(b"\",\"device\":\"");
        l.extend_from_slice(rng.pick(&DEVICES).as_bytes());
        l.extend_from_slice(b"\",\"props\":");
        push_props(l, rng, kind);
        if g >= self.coupon_from_row {
            l.extend_from_slice(b",\"coupon\":");
            if rng.chance(5_000) {
                l.extend_from_slice(b"null");
            } else {
                push_quoted(l, rng.pick(&COUPONS));
            }
        }
        l.extend_from_slice(b"}\n");
        !flags.iter().any(|&(_, hit)| hit)
    }
}

/// A nested `props` object whose shape depends on the event type, with
/// nulls, arrays, sub-objects and sometimes nothing at all.
fn push_props(l: &mut Vec<u8>, rng: &mut Rng, kind: usize) {
    if rng.chance(1_000) {
        l.extend_from_slice(b"{}");
        return;
    }
    match kind {
        0 | 1 => {
            l.extend_from_slice(b"{\"page\":\"/p/");
            push_num(l, rng.below(1000), 1);
            l.push(b'"');
            if kind == 0 {
                l.extend_from_slice(b",\"referrer\":");
                l.extend_from_slice(rng.pick(&REFERRERS).as_bytes());
            } else {
                l.extend_from_slice(b",\"element\":\"btn-");
                push_num(l, rng.below(40), 1);
                l.extend_from_slice(b"\",\"pos\":{\"x\":");
                push_num(l, rng.below(1920), 1);
                l.extend_from_slice(b",\"y\":");
                push_num(l, rng.below(1080), 1);
                l.push(b'}');
            }
            if rng.chance(2_000) {
                l.extend_from_slice(b",\"q\":");
                l.extend_from_slice(rng.pick(&QUERIES).as_bytes());
            }
            l.extend_from_slice(b",\"tags\":[");
            // Consecutive slots of TAGS, so a row never repeats a tag.
            let (n, start) = (rng.below(4) as usize, rng.below(5) as usize);
            for j in 0..n {
                if j > 0 {
                    l.push(b',');
                }
                push_quoted(l, TAGS[(start + j) % TAGS.len()]);
            }
            l.extend_from_slice(b"],\"ab\":{\"variant\":");
            l.extend_from_slice(rng.pick(&["\"A\"", "\"B\"", "null"]).as_bytes());
            l.extend_from_slice(b"}}");
        }
        2 | 3 => {
            l.extend_from_slice(b"{\"sku\":\"SKU-");
            push_num(l, rng.below(100_000), 5);
            l.extend_from_slice(b"\",\"qty\":");
            push_num(l, 1 + rng.below(5), 1);
            if kind == PURCHASE {
                l.extend_from_slice(b",\"currency\":\"USD\",\"payment\":{\"method\":");
                l.extend_from_slice(rng.pick(&["\"card\"", "\"paypal\"", "null"]).as_bytes());
                l.push(b'}');
            }
            l.push(b'}');
        }
        _ => {
            l.extend_from_slice(b"{\"plan\":");
            l.extend_from_slice(rng.pick(&["\"free\"", "\"pro\"", "\"team\""]).as_bytes());
            l.extend_from_slice(b",\"referrer\":");
            l.extend_from_slice(rng.pick(&REFERRERS).as_bytes());
            l.push(b'}');
        }
    }
}

fn push_quoted(l: &mut Vec<u8>, s: &str) {
    l.push(b'"');
    l.extend_from_slice(s.as_bytes());
    l.push(b'"');
}

/// Appends `v` in decimal, zero-padded to at least `width` (at most 20) digits.
fn push_num(l: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    l.extend_from_slice(&buf[i.min(buf.len() - width)..]);
}

/// Appends the low `digits` nibbles of `v` as lowercase hex.
fn push_hex(l: &mut Vec<u8>, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        l.push(b"0123456789abcdef"[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// `{}.{:02}` of integer cents, without going through floats.
fn push_cents(l: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        l.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_num(l, c / 100, 1);
    l.push(b'.');
    push_num(l, c % 100, 2);
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-01-15T10:23:45.123Z`.
fn push_ts(l: &mut Vec<u8>, ms: i64) {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let t = ms.rem_euclid(DAY_MS) as u64;
    push_num(l, u64::try_from(y).unwrap_or(0), 4);
    l.push(b'-');
    push_num(l, m, 2);
    l.push(b'-');
    push_num(l, d, 2);
    l.push(b'T');
    push_num(l, t / 3_600_000, 2);
    l.push(b':');
    push_num(l, t / 60_000 % 60, 2);
    l.push(b':');
    push_num(l, t / 1000 % 60, 2);
    l.push(b'.');
    push_num(l, t % 1000, 3);
    l.push(b'Z');
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u64;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Fixed-width names keep lexicographic order equal to file order, even past 99,999 files.
fn file_name(index: usize, width: usize) -> String {
    format!("events-{index:0width$}.ndjson")
}

/// Writes `dir/name` through `.name.tmp` and a rename, so a concurrent reader
/// (such as an ingest watching the directory) never sees half a file.
/// No fsync: this is regenerable sample data, and K fsyncs would dominate small runs.
fn write_atomically(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = write_then_rename(&tmp, &dir.join(name), fill);
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    tmp: &Path,
    dest: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
    fill(&mut w)?;
    w.into_inner().map_err(io::IntoInnerError::into_error)?;
    fs::rename(tmp, dest)
}

/// Removes `events-*.ndjson` left by an earlier run with more files, which an
/// ingest of the directory would otherwise pick up alongside this run's.
fn remove_stale(out: &Path, files: usize, width: usize) -> io::Result<()> {
    for entry in fs::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix("events-")
            .and_then(|s| s.strip_suffix(".ndjson"))
        else {
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let ours = digits.len() == width && digits.parse::<usize>().is_ok_and(|i| i < files);
        if !ours && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes `opts.files` NDJSON files of sample events into `opts.out`, plus
/// `_generate.json`, and returns what was written and which defects were seeded.
pub fn generate_events(opts: &GenerateOptions) -> io::Result<GenerateSummary> {
    if opts.files == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "generate events: --files must be at least 1",
        ));
    }
    fs::create_dir_all(&opts.out)?;
    let files = opts.files as u64;
    let (per_file, extra) = (opts.rows / files, opts.rows % files);
    let rows_before = |f: usize| per_file * f as u64 + extra.min(f as u64);
    let new_field_from_file = if opts.files == 1 { 0 } else { opts.files / 2 };
    let mut coupon_from_row = rows_before(new_field_from_file);
    if opts.files == 1 {
        coupon_from_row = opts.rows / 2;
    }
    let mut seeder = Rng(opts.seed);
    let mut g = Gen {
        id_key: seeder.next_u64(),
        rng: Rng(seeder.next_u64()),
        rows: opts.rows,
        clock: BASE_MS,
        window_start: BASE_MS,
        string_from_row: opts.rows / 2,
        coupon_from_row,
        ring: Vec::with_capacity(RING),
        ring_next: 0,
        counts: [0; KINDS],
        bytes: 0,
    };
    let width = (opts.files - 1).to_string().len().max(5);
    let mut summary = GenerateSummary {
        rows: opts.rows,
        new_field_from_file,
        ..GenerateSummary::default()
    };
    let mut line = Vec::with_capacity(512);
    let mut row = 0u64;
    for i in 0..opts.files {
        let n = per_file + u64::from((i as u64) < extra);
        let name = file_name(i, width);
        g.window_start = g.clock;
        write_atomically(&opts.out, &name, |w| {
            for _ in 0..n {
                g.row(&mut line, row, w)?;
                row += 1;
            }
            Ok(())
        })?;
        summary.files.push(opts.out.join(name));
    }
    remove_stale(&opts.out, opts.files, width)?;

    summary.bytes = g.bytes;
    summary.duplicates = g.counts[DUP];
    summary.late_arrivals = g.counts[LATE];
    summary.malformed = g.counts[MALFORMED];
    summary.null_users = g.counts[NULL_USER];
    summary.bad_timestamps = g.counts[BAD_TS];
    summary.negative_amounts = g.counts[NEGATIVE];
    summary.unknown_types = g.counts[UNKNOWN];
    summary.string_amounts = g.counts[STRING_AMOUNT];

    // Converted up front with `?`: a non-UTF-8 `out` path cannot be serialized.
    let manifest = serde_json::json!({
        "options": { "rows": opts.rows, "files": opts.files, "seed": opts.seed },
        "summary": serde_json::to_value(&summary)?,
    });
    write_atomically(&opts.out, "_generate.json", |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};
    use std::path::PathBuf;

    /// A scratch directory under the system temp dir, removed on drop (even when a test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("strata-generate-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Self(dir)
        }

        fn opts(&self, rows: u64, files: usize, seed: u64) -> GenerateOptions {
            GenerateOptions {
                rows,
                files,
                seed,
                out: self.0.clone(),
            }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn contents(summary: &GenerateSummary) -> Vec<Vec<u8>> {
        summary.files.iter().map(|p| fs::read(p).unwrap()).collect()
    }

    fn event_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("events-"))
            .collect();
        names.sort();
        names
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }

    /// An independent RFC 3339 parser (date-time with `Z` or an offset), to epoch millis.
    fn parse_rfc3339(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let num = |from: usize, to: usize| -> Option<i64> {
            let t = s.get(from..to)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&mo)
            || d < 1
            || d > month_days[mo as usize - 1]
            || h > 23
            || mi > 59
            || se > 60
        {
            return None;
        }
        let mut rest = &s[19..];
        let mut ms = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            let head = &frac[..n.min(3)];
            ms = head.parse::<i64>().ok()? * 10_i64.pow(3 - head.len() as u32);
            rest = &frac[n..];
        }
        let offset_min = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (oh, om) = (num(s.len() - 5, s.len() - 3)?, num(s.len() - 2, s.len())?);
                if oh > 23 || om > 59 {
                    return None;
                }
                sign * (oh * 60 + om)
            }
            _ => return None,
        };
        Some(
            days_from_civil(y, mo, d) * DAY_MS + ((h * 60 + mi) * 60 + se) * 1000 + ms
                - offset_min * 60_000,
        )
    }

    fn is_cents_text(s: &str) -> bool {
        let s = s.strip_prefix('-').unwrap_or(s);
        let Some((whole, frac)) = s.split_once('.') else {
            return false;
        };
        !whole.is_empty()
            && whole.bytes().all(|c| c.is_ascii_digit())
            && frac.len() == 2
            && frac.bytes().all(|c| c.is_ascii_digit())
    }

    /// Recounts every defect from the files themselves and checks the whole summary.
    fn verify(opts: &GenerateOptions, summary: &GenerateSummary) {
        const KNOWN: [&str; 4] = EVENT_TYPES;
        const KEYS: [&str; 9] = [
            "event_id",
            "user_id",
            "event_type",
            "ts",
            "session_id",
            "amount",
            "country",
            "device",
            "props",
        ];
        let mut seen = HashSet::new();
        let mut content_of_id: HashMap<String, String> = HashMap::new();
        let mut high = BASE_MS;
        let mut row = 0u64;
        let mut got = GenerateSummary {
            files: summary.files.clone(),
            new_field_from_file: summary.new_field_from_file,
            ..GenerateSummary::default()
        };
        for (i, path) in summary.files.iter().enumerate() {
            let text = fs::read_to_string(path).unwrap();
            got.bytes += text.len() as u64;
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{path:?} must end with a newline"
            );
            for line in text.split_terminator('\n') {
                assert!(!line.is_empty(), "blank line in {path:?}");
                let expect_coupon = if opts.files == 1 {
                    row >= opts.rows / 2
                } else {
                    i >= summary.new_field_from_file
                };
                let second_half = row >= opts.rows / 2;
                got.rows += 1;
                row += 1;
                let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
                    got.malformed += 1;
                    continue;
                };
                if !seen.insert(line.to_owned()) {
                    got.duplicates += 1;
                }
                let id = obj["event_id"].as_str().unwrap();
                assert!(
                    id.len() == 20
                        && id.starts_with("evt-")
                        && id[4..]
                            .bytes()
                            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                );
                let first = content_of_id
                    .entry(id.to_owned())
                    .or_insert_with(|| line.to_owned());
                assert_eq!(first, line, "event_id {id} reused with different content");

                let mut keys: Vec<&str> = KEYS.to_vec();
                if expect_coupon {
                    keys.push("coupon");
                }
                assert_eq!(obj.len(), keys.len(), "{line}");
                let positions: Vec<usize> = keys
                    .iter()
                    .map(|k| line.find(&format!("\"{k}\":")).unwrap())
                    .collect();
                assert!(positions.is_sorted(), "keys out of order: {line}");

                match &obj["user_id"] {
                    Value::Null => got.null_users += 1,
                    Value::String(u) => {
                        let n: u64 = u.strip_prefix("u-").unwrap().parse().unwrap();
                        assert!((1..=5000).contains(&n));
                    }
                    other => panic!("user_id {other}"),
                }
                if !KNOWN.contains(&obj["event_type"].as_str().unwrap()) {
                    got.unknown_types += 1;
                }
                match parse_rfc3339(obj["ts"].as_str().unwrap()) {
                    None => got.bad_timestamps += 1,
                    Some(ms) => {
                        // Ordinary rows only move the clock forward, and replays are
                        // seconds old, so anything over an hour behind is late.
                        if ms < high - HOUR_MS {
                            got.late_arrivals += 1;
                        }
                        high = high.max(ms);
                    }
                }
                let raw_amount = line
                    .split("\"amount\":")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                match &obj["amount"] {
                    Value::String(s) => {
                        assert!(
                            second_half && is_cents_text(s) && !s.starts_with('-'),
                            "{line}"
                        );
                        got.string_amounts += 1;
                    }
                    Value::Number(n) => {
                        assert!(is_cents_text(raw_amount), "{line}");
                        if n.as_f64().unwrap() < 0.0 {
                            got.negative_amounts += 1;
                            assert_eq!(obj["event_type"], "purchase");
                        }
                    }
                    other => panic!("amount {other}"),
                }
                assert!(obj["props"].is_object());
            }
        }
        assert_eq!(got, *summary);
        assert_eq!(got.rows, opts.rows);
        let on_disk: u64 = summary
            .files
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, summary.bytes);
    }

    #[test]
    fn same_seed_is_byte_identical_and_other_seed_differs() {
        let (a, b, c) = (
            TempDir::new("same-a"),
            TempDir::new("same-b"),
            TempDir::new("same-c"),
        );
        let first = generate_events(&a.opts(5_000, 3, 7)).unwrap();
        let second = generate_events(&b.opts(5_000, 3, 7)).unwrap();
        let other = generate_events(&c.opts(5_000, 3, 8)).unwrap();
        assert_eq!(contents(&first), contents(&second));
        assert_ne!(contents(&first), contents(&other));
        let strip = |s: &GenerateSummary| GenerateSummary {
            files: Vec::new(),
            ..s.clone()
        };
        assert_eq!(strip(&first), strip(&second));
    }

    #[test]
    fn rows_are_split_evenly_across_files() {
        for (rows, files, expect) in [
            (1_003, 4, vec![251, 251, 251, 250]),
            (3, 5, vec![1, 1, 1, 0, 0]),
            (10, 1, vec![10]),
        ] {
            let dir = TempDir::new("split");
            let summary = generate_events(&dir.opts(rows, files, 1)).unwrap();
            let names: Vec<String> = (0..files)
                .map(|i| format!("events-{i:05}.ndjson"))
                .collect();
            assert_eq!(event_files(&dir.0), names);
            let paths: Vec<PathBuf> = names.iter().map(|n| dir.0.join(n)).collect();
            assert_eq!(summary.files, paths);
            let lines: Vec<usize> = contents(&summary)
                .iter()
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .collect();
            assert_eq!(lines, expect);
            assert_eq!(summary.rows, rows);
        }
    }

    #[test]
    fn defects_counted_from_the_files_match_the_summary() {
        for (rows, files, seed) in [
            (10_000, 4, 1),
            (3_001, 1, 2),
            (2_500, 7, 3),
            (777, 3, 4),
            (40, 2, 5),
        ] {
            let dir = TempDir::new("verify");
            let opts = dir.opts(rows, files, seed);
            let summary = generate_events(&opts).unwrap();
            verify(&opts, &summary);
        }
    }

    #[test]
    fn zero_files_is_invalid_input() {
        let dir = TempDir::new("zero-files");
        let err = generate_events(&dir.opts(10, 0, 1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("--files"));
    }

    #[test]
    fn zero_rows_creates_empty_files() {
        let dir = TempDir::new("zero-rows");
        let summary = generate_events(&dir.opts(0, 3, 1)).unwrap();
        assert_eq!(summary.files.len(), 3);
        assert!(contents(&summary).iter().all(Vec::is_empty));
        assert_eq!((summary.rows, summary.bytes), (0, 0));
    }

    #[test]
    fn every_defect_kind_appears() {
        let dir = TempDir::new("every-kind");
        let opts = dir.opts(10_000, 4, 42);
        let s = generate_events(&opts).unwrap();
        verify(&opts, &s);
        let kinds = [
            s.duplicates,
            s.late_arrivals,
            s.malformed,
            s.null_users,
            s.bad_timestamps,
            s.negative_amounts,
            s.unknown_types,
            s.string_amounts,
        ];
        assert!(kinds.iter().all(|&n| n > 0), "{s:?}");
        assert_eq!(s.new_field_from_file, 2);
        // The guarantee also holds at the 1,000-row floor, whatever the seed.
        for seed in 0..12 {
            let dir = TempDir::new("floor");
            let opts = dir.opts(1_000, 3, seed);
            let s = generate_events(&opts).unwrap();
            verify(&opts, &s);
            let kinds = [
                s.duplicates,
                s.late_arrivals,
                s.malformed,
                s.null_users,
                s.bad_timestamps,
                s.negative_amounts,
                s.unknown_types,
                s.string_amounts,
            ];
            assert!(kinds.iter().all(|&n| n > 0), "seed {seed}: {s:?}");
        }
    }

    #[test]
    fn rerun_overwrites_and_removes_stale_files() {
        let dir = TempDir::new("rerun");
        generate_events(&dir.opts(100, 6, 1)).unwrap();
        fs::write(dir.0.join("events-keep.ndjson"), "x").unwrap();
        let summary = generate_events(&dir.opts(50, 2, 2)).unwrap();
        let names = [
            "events-00000.ndjson",
            "events-00001.ndjson",
            "events-keep.ndjson",
        ];
        assert_eq!(event_files(&dir.0), names);
        let fresh = TempDir::new("rerun-fresh");
        assert_eq!(
            contents(&summary),
            contents(&generate_events(&fresh.opts(50, 2, 2)).unwrap())
        );
        assert!(
            fs::read_dir(&dir.0).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }

    #[test]
    fn manifest_records_options_and_summary() {
        let dir = TempDir::new("manifest");
        let summary = generate_events(&dir.opts(300, 2, 9)).unwrap();
        let text = fs::read_to_string(dir.0.join("_generate.json")).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            manifest["options"],
            serde_json::json!({"rows": 300, "files": 2, "seed": 9})
        );
        assert_eq!(manifest["summary"], serde_json::to_value(&summary).unwrap());
    }

    #[test]
    fn timestamps_are_rendered_from_epoch_millis() {
        let render = |ms| {
            let mut l = Vec::new();
            push_ts(&mut l, ms);
            String::from_utf8(l).unwrap()
        };
        assert_eq!(render(BASE_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(render(1_709_164_800_123), "2024-02-29T00:00:00.123Z");
        assert_eq!(render(BASE_MS - 1), "2025-12-31T23:59:59.999Z");
        assert_eq!(render(0), "1970-01-01T00:00:00.000Z");
        for day in -800_000..800_000_i64 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m as i64, d as i64), day);
        }
        let mut l = Vec::new();
        push_cents(&mut l, -1205);
        push_cents(&mut l, 7);
        assert_eq!(l, b"-12.050.07");
    }

    #[test]
    fn rfc3339_validator_rejects_the_seeded_bad_timestamps() {
        for bad in BAD_TIMESTAMPS {
            assert_eq!(parse_rfc3339(bad), None);
        }
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00+01:00"), Some(BASE_MS));
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
    }
}
