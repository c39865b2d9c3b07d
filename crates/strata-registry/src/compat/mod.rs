//! Compatibility levels and the checks behind them (Confluent's semantics).
//!
//! BACKWARD: the new schema reads data written with the latest version; FORWARD: the latest
//! version reads data written with the new schema; FULL: both. The `_TRANSITIVE` levels check
//! against every live version instead of the latest; NONE checks nothing.

pub mod avro;
pub mod json;

use std::fmt;
use std::str::FromStr;

use crate::schema::{Parsed, SchemaKind};

/// One reason a reader schema cannot read a writer's data: the incompatibility's type (Avro's
/// and Confluent's names), where in the reader schema, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: &'static str,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.kind, self.path, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
        Level::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
            Level::None => "NONE",
        }
    }

    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "Invalid compatibility level {s}. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
                )
            })
    }
}

/// Why `reader` cannot read `writer`'s data: one line per reason (empty: it can). Schemas of
/// different kinds never read each other.
pub fn reader_reads(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (&reader.kind, &writer.kind) {
        (SchemaKind::Avro, SchemaKind::Avro) => {
            let (r, w) = (reader.avro(), writer.avro());
            let rn = avro::Names::of(r.iter().copied());
            let wn = avro::Names::of(w.iter().copied());
            avro::can_read(r[0], &rn, w[0], &wn)
                .into_iter()
                .map(|i| i.to_string())
                .collect()
        }
        (SchemaKind::Json, SchemaKind::Json) => json::can_read(reader.json(), writer.json())
            .into_iter()
            .map(|i| i.to_string())
            .collect(),
        (r, w) => vec![format!(
            "SCHEMA_TYPE_CHANGED: a {} schema cannot replace a {} schema",
            r.as_str(),
            w.as_str()
        )],
    }
}

/// Checks `new` against `history` (oldest first, live versions only) at `level`: the messages
/// of every failure (empty: compatible).
pub fn check(level: Level, new: &Parsed, history: &[(i64, &Parsed)]) -> Vec<String> {
    if level == Level::None || history.is_empty() {
        return Vec::new();
    }
    let against: Vec<&(i64, &Parsed)> = if level.transitive() {
        history.iter().collect()
    } else {
        history.iter().rev().take(1).collect()
    };
    let mut out = Vec::new();
    for (version, old) in against {
        if level.backward() {
            for m in reader_reads(new, old) {
                out.push(format!(
                    "the new schema cannot read data written with version {version}: {m}"
                ));
            }
        }
        if level.forward() {
            for m in reader_reads(old, new) {
                out.push(format!(
                    "version {version} cannot read data written with the new schema: {m}"
                ));
            }
        }
    }
    out
}
