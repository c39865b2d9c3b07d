//! The pipeline file: TOML that declares flows. Parsing checks the shape (every error names the
//! line and key); [`crate::validate`] checks it against the lakehouse.
//!
//! ```toml
//! [pipeline]
//! name = "events"
//! pii = ["email"]
//!
//! [[flows]]
//! name = "silver_events"
//! target = "silver.events"
//! source = "bronze.events"
//! mode = "merge"
//! keys = ["event_id"]
//! sequence_by = "event_ts"
//! steps = [
//!   { cast = { event_id = "STRING", ts = "TIMESTAMP", amount = "DECIMAL(18,4)" } },
//!   { rename = { ts = "event_ts" } },
//! ]
//! sql = "SELECT event_id, event_ts, amount FROM input"
//!
//! [[flows.expect]]
//! name = "event_id_present"
//! not_null = "event_id"
//! action = "quarantine"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};

/// A parsed pipeline file, with the text it came from (for line numbers).
#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub origin: String,
    pub text: String,
    pub pipeline: PipelineHeader,
    pub flows: Vec<FlowSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineHeader {
    pub name: Spanned<String>,
    /// Source columns that hold personal data (DECISIONS.md section 10).
    #[serde(default)]
    pub pii: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Append,
    Replace,
    Merge,
    Scd2,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Replace => "replace",
            Mode::Merge => "merge",
            Mode::Scd2 => "scd2",
            Mode::Full => "full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    Changes,
    Snapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSchemaChange {
    #[default]
    AppendNewColumns,
    Fail,
    FullRefresh,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub table: Spanned<String>,
    /// `changes` (the default for the first source) or `snapshot` (the default for the others).
    #[serde(default)]
    pub read: Option<Read>,
}

/// How a masked column is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// HMAC-SHA256 with the lakehouse's key, lowercase hex.
    Hmac,
    /// The fixed text `[REDACTED]`.
    Redact,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    pub keys: Vec<String>,
    /// The row kept per key is the last by these columns (then by arrival).
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// One declarative step, applied in order to the flow's first source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// column -> SQL type. A value that does not convert fails the row (stage `cast`).
    Cast(BTreeMap<String, String>),
    /// old name -> new name.
    Rename(BTreeMap<String, String>),
    /// Keeps one row per key: the last by `order_by`, then by arrival.
    Dedupe(Dedupe),
    /// column -> `hmac` | `redact`.
    Mask(BTreeMap<String, MaskKind>),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Cast(_) => "cast",
            Step::Rename(_) => "rename",
            Step::Dedupe(_) => "dedupe",
            Step::Mask(_) => "mask",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Warn,
    Quarantine,
    Drop,
    Fail,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Warn => "warn",
            Action::Quarantine => "quarantine",
            Action::Drop => "drop",
            Action::Fail => "fail",
        }
    }
}

/// Bounds of `row_count`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountBounds {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    pub column: String,
    /// `30m`, `6h`, `2d`.
    pub max_age: String,
}

/// A bound of `min` / `max`: a number, or text (a date, timestamp or string).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
}

/// One expectation as written. Exactly one kind key is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub action: Action,
    /// Row rule: the column is not NULL.
    pub not_null: Option<String>,
    /// The column `in`, `min`/`max`, `matches` and `references` apply to.
    pub column: Option<String>,
    /// Row rule: the column is one of these values.
    #[serde(rename = "in")]
    pub in_set: Option<Vec<Bound>>,
    /// Row rule (with `max`, either optional): min <= column <= max.
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    /// Row rule: the column matches this regular expression.
    pub matches: Option<String>,
    /// Row rule: a SQL boolean expression over the output's columns.
    pub check: Option<String>,
    /// Table rule: no two rows share these columns' values.
    pub unique: Option<Vec<String>>,
    /// Table rule: the number of rows is within these bounds.
    pub row_count: Option<CountBounds>,
    /// Table rule: the newest value of a timestamp column is at most this old.
    pub freshness: Option<Freshness>,
    /// Table rule: every value of `column` exists in `schema.table.column`.
    pub references: Option<String>,
    /// Table rule: a SQL boolean expression over aggregates of the output.
    pub aggregate: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: Spanned<String>,
    pub target: Spanned<String>,
    /// Shorthand for one source read as changes.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
    /// A query over `input` (the first source after the steps) and the other sources by name.
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
    #[serde(default = "default_mode")]
    pub mode: Spanned<Mode>,
    /// `merge`, `scd2`: the key columns.
    #[serde(default)]
    pub keys: Vec<String>,
    /// `merge`, `scd2`: the column whose larger value is the newer version of a key.
    #[serde(default)]
    pub sequence_by: Option<String>,
    /// `merge`: a source row for which this holds deletes its key instead.
    #[serde(default)]
    pub delete_when: Option<String>,
    /// `scd2`: the columns whose change opens a new version (default: all but keys).
    #[serde(default)]
    pub track: Vec<String>,
    #[serde(default)]
    pub partition_by: Vec<String>,
    #[serde(default)]
    pub zorder: Vec<String>,
    #[serde(default)]
    pub on_schema_change: OnSchemaChange,
    #[serde(default)]
    pub apply_deletes: bool,
    /// The quarantine table (default `quarantine.<target table>`).
    #[serde(default)]
    pub quarantine: Option<String>,
    #[serde(default)]
    pub pii: Vec<String>,
    #[serde(default)]
    pub allow_pii: Vec<String>,
    #[serde(default)]
    pub expect: Vec<RuleSpec>,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_mode() -> Spanned<Mode> {
    Spanned::new(0..0, Mode::Append)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: PipelineHeader,
    #[serde(default)]
    flows: Vec<FlowSpec>,
}

impl PipelineFile {
    /// Parses pipeline TOML; `origin` (the file's path) prefixes every message.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" line {}", line_of(text, s.start)))
                .unwrap_or_default();
            Error::InvalidInput(format!(
                "{origin}:{at}: {}",
                e.message().trim_end_matches('\n')
            ))
        })?;
        Ok(PipelineFile {
            origin: origin.to_string(),
            text: text.to_string(),
            pipeline: raw.pipeline,
            flows: raw.flows,
        })
    }

    /// Reads and parses a pipeline file.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::NotFound(format!("cannot read pipeline file {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn name(&self) -> &str {
        self.pipeline.name.get_ref()
    }

    /// `origin:line N` for a span, for messages.
    pub fn at(&self, span: Range<usize>) -> String {
        if span.is_empty() && span.start == 0 {
            return self.origin.clone();
        }
        format!("{}: line {}", self.origin, line_of(&self.text, span.start))
    }

    /// An error about a flow's key, pointing at `span`.
    pub fn err(&self, span: Range<usize>, msg: impl fmt::Display) -> Error {
        Error::InvalidInput(format!("{}: {msg}", self.at(span)))
    }
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl FlowSpec {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The sources in order, each with how it is read.
    pub fn source_list(&self) -> Vec<(Spanned<String>, Read)> {
        let mut out = Vec::new();
        if let Some(s) = &self.source {
            out.push((s.clone(), Read::Changes));
        }
        for s in &self.sources {
            let read = s.read.unwrap_or(if out.is_empty() {
                Read::Changes
            } else {
                Read::Snapshot
            });
            out.push((s.table.clone(), read));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_flow_with_steps_sql_and_rules() {
        let text = r#"
[pipeline]
name = "events"
pii = ["email"]

[[flows]]
name = "silver_events"
target = "silver.events"
source = "bronze.events"
mode = "merge"
keys = ["event_id"]
sequence_by = "event_ts"
steps = [
  { cast = { ts = "TIMESTAMP", amount = "DECIMAL(18,4)" } },
  { rename = { ts = "event_ts" } },
  { mask = { email = "hmac" } },
]
sql = "SELECT * FROM input"

[[flows.expect]]
name = "id"
not_null = "event_id"
action = "quarantine"
"#;
        let p = PipelineFile::parse(text, "p.toml").unwrap();
        assert_eq!(p.name(), "events");
        let f = &p.flows[0];
        assert_eq!(*f.mode.get_ref(), Mode::Merge);
        assert_eq!(f.steps.len(), 3);
        assert_eq!(f.expect[0].action, Action::Quarantine);
        assert_eq!(f.source_list()[0].1, Read::Changes);
        assert_eq!(p.at(f.target.span()), "p.toml: line 8");
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let text = "[pipeline]\nname = \"p\"\n\n[[flows]]\nname = \"f\"\ntarget = \"silver.t\"\nmodee = \"merge\"\n";
        let e = PipelineFile::parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml: line 7"), "{e}");
        assert!(e.contains("modee"), "{e}");
    }

    #[test]
    fn a_bad_mode_names_its_line_and_the_choices() {
        let text = "[pipeline]\nname = \"p\"\n[[flows]]\nname = \"f\"\ntarget = \"silver.t\"\nmode = \"upsert\"\n";
        let e = PipelineFile::parse(text, "p.toml").unwrap_err().to_string();
        assert!(e.contains("line 6"), "{e}");
        assert!(e.contains("merge"), "{e}");
    }
}
