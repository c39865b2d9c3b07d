//! Expectations: row rules (evaluated per output row, in the same pass that computes the
//! output) and table rules (evaluated once over the checked output).

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::spec::{Action, Bound, CountBounds, RuleSpec};

/// A classified expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    pub kind: RuleKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    NotNull(String),
    Between {
        column: String,
        min: Option<Bound>,
        max: Option<Bound>,
    },
    In {
        column: String,
        values: Vec<Bound>,
    },
    Matches {
        column: String,
        regex: String,
    },
    Check(String),
    Unique(Vec<String>),
    RowCount(CountBounds),
    Freshness {
        column: String,
        max_age_secs: u64,
    },
    References {
        column: String,
        table: String,
        to_column: String,
    },
    Aggregate(String),
}

impl RuleKind {
    pub fn is_row_rule(&self) -> bool {
        matches!(
            self,
            RuleKind::NotNull(_)
                | RuleKind::Between { .. }
                | RuleKind::In { .. }
                | RuleKind::Matches { .. }
                | RuleKind::Check(_)
        )
    }

    /// The columns of the checked output the rule reads by name.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            RuleKind::NotNull(c)
            | RuleKind::Between { column: c, .. }
            | RuleKind::In { column: c, .. }
            | RuleKind::Matches { column: c, .. }
            | RuleKind::Freshness { column: c, .. }
            | RuleKind::References { column: c, .. } => vec![c.as_str()],
            RuleKind::Unique(cs) => cs.iter().map(String::as_str).collect(),
            RuleKind::Check(_) | RuleKind::RowCount(_) | RuleKind::Aggregate(_) => vec![],
        }
    }

    /// The row rule as a SQL boolean expression (a row fails when it is FALSE or NULL).
    pub fn row_sql(&self) -> Option<String> {
        Some(match self {
            RuleKind::NotNull(c) => format!("{} IS NOT NULL", ident(c)),
            RuleKind::Between { column, min, max } => {
                let mut parts = Vec::new();
                if let Some(m) = min {
                    parts.push(format!("{} >= {}", ident(column), literal(m)));
                }
                if let Some(m) = max {
                    parts.push(format!("{} <= {}", ident(column), literal(m)));
                }
                parts.join(" AND ")
            }
            RuleKind::In { column, values } => format!(
                "{} IN ({})",
                ident(column),
                values.iter().map(literal).collect::<Vec<_>>().join(", ")
            ),
            RuleKind::Matches { column, regex } => {
                format!("regexp_like({}, {})", ident(column), quote(regex))
            }
            RuleKind::Check(sql) => format!("({sql})"),
            _ => return None,
        })
    }
}

/// A double-quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn literal(b: &Bound) -> String {
    match b {
        Bound::Int(i) => i.to_string(),
        Bound::Float(f) => format!("{f:?}"),
        Bound::Text(t) => quote(t),
    }
}

/// `30s`, `15m`, `6h`, `2d`, `1w`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

impl Rule {
    /// A row rule as an expression over the flow's output; `at` and `flow` are for messages.
    pub fn row_expr(
        &self,
        session: &datafusion::execution::context::SessionState,
        schema: &datafusion::common::DFSchema,
        at: &str,
        flow: &str,
    ) -> Result<datafusion::logical_expr::Expr> {
        let sql = self.kind.row_sql().ok_or_else(|| {
            Error::Internal(format!("expectation {} is not a row rule", self.name))
        })?;
        session.create_logical_expr(&sql, schema).map_err(|e| {
            Error::InvalidInput(format!(
                "{at}: flow {flow}: expectation {}: {}",
                self.name,
                strata_table::error::strip_df_noise(&e.to_string())
            ))
        })
    }

    /// Classifies a rule as written; `at` locates it for messages.
    pub fn from_spec(r: &RuleSpec, at: &str) -> Result<Rule> {
        let name = r.name.get_ref().clone();
        let err = |m: String| Error::InvalidInput(format!("{at}: expectation '{name}': {m}"));
        if name.trim().is_empty() {
            return Err(err("a rule needs a name".into()));
        }
        let column = || {
            r.column
                .clone()
                .ok_or_else(|| err("this rule needs `column = \"...\"`".into()))
        };
        let mut kinds: Vec<RuleKind> = Vec::new();
        if let Some(c) = &r.not_null {
            kinds.push(RuleKind::NotNull(c.clone()));
        }
        if r.min.is_some() || r.max.is_some() {
            kinds.push(RuleKind::Between {
                column: column()?,
                min: r.min.clone(),
                max: r.max.clone(),
            });
        }
        if let Some(v) = &r.in_set {
            if v.is_empty() {
                return Err(err("`in` needs at least one value".into()));
            }
            kinds.push(RuleKind::In {
                column: column()?,
                values: v.clone(),
            });
        }
        if let Some(re) = &r.matches {
            regex::Regex::new(re)
                .map_err(|e| err(format!("`matches` is not a valid regular expression: {e}")))?;
            kinds.push(RuleKind::Matches {
                column: column()?,
                regex: re.clone(),
            });
        }
        if let Some(c) = &r.check {
            kinds.push(RuleKind::Check(c.clone()));
        }
        if let Some(u) = &r.unique {
            if u.is_empty() {
                return Err(err("`unique` needs at least one column".into()));
            }
            kinds.push(RuleKind::Unique(u.clone()));
        }
        if let Some(b) = &r.row_count {
            if b.min.is_none() && b.max.is_none() {
                return Err(err("`row_count` needs `min`, `max` or both".into()));
            }
            kinds.push(RuleKind::RowCount(b.clone()));
        }
        if let Some(f) = &r.freshness {
            let d = parse_duration(&f.max_age).ok_or_else(|| {
                err(format!(
                    "freshness max_age '{}' is not a duration like 30m, 6h or 2d",
                    f.max_age
                ))
            })?;
            kinds.push(RuleKind::Freshness {
                column: f.column.clone(),
                max_age_secs: d.as_secs(),
            });
        }
        if let Some(to) = &r.references {
            let (table, to_column) = to
                .rsplit_once('.')
                .ok_or_else(|| err(format!("references '{to}' must name schema.table.column")))?;
            kinds.push(RuleKind::References {
                column: column()?,
                table: table.to_string(),
                to_column: to_column.to_string(),
            });
        }
        if let Some(a) = &r.aggregate {
            kinds.push(RuleKind::Aggregate(a.clone()));
        }
        if kinds.len() != 1 {
            return Err(err(if kinds.is_empty() {
                "say what it checks: one of not_null, min/max, in, matches, check, unique, \
                 row_count, freshness, references, aggregate"
                    .into()
            } else {
                "a rule checks one thing: split it into several rules".into()
            }));
        }
        let kind = kinds.pop().expect("one kind");
        if r.column.is_some()
            && matches!(
                kind,
                RuleKind::NotNull(_)
                    | RuleKind::Check(_)
                    | RuleKind::Unique(_)
                    | RuleKind::RowCount(_)
                    | RuleKind::Aggregate(_)
                    | RuleKind::Freshness { .. }
            )
        {
            return Err(err("`column` does not apply to this kind of rule".into()));
        }
        let ok = if kind.is_row_rule() {
            true
        } else {
            matches!(r.action, Action::Warn | Action::Fail)
                || (matches!(kind, RuleKind::Unique(_)) && r.action == Action::Quarantine)
        };
        if !ok {
            return Err(err(format!(
                "a table rule's action is warn or fail (unique may also quarantine), not {}",
                r.action.as_str()
            )));
        }
        Ok(Rule {
            name,
            action: r.action,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5y"), None);
    }

    #[test]
    fn row_sql_quotes_names_and_values() {
        let k = RuleKind::In {
            column: "type".into(),
            values: vec![Bound::Text("a'b".into()), Bound::Int(3)],
        };
        assert_eq!(k.row_sql().unwrap(), "\"type\" IN ('a''b', 3)");
        let b = RuleKind::Between {
            column: "amount".into(),
            min: Some(Bound::Int(0)),
            max: None,
        };
        assert_eq!(b.row_sql().unwrap(), "\"amount\" >= 0");
    }
}
