//! Statements Strata recognises itself, before sqlparser: Delta's maintenance SQL (sqlparser
//! 0.62 parses none of `OPTIMIZE`, `DESCRIBE HISTORY`, `RESTORE TABLE` or `VACUUM .. RETAIN`),
//! Databricks' `ALTER TABLE .. ADD COLUMNS` and `SET TBLPROPERTIES`, `SHOW TABLES`,
//! `CREATE SCHEMA .. WITH (layer = ..)` and the `strata.txn_*` settings.

use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::dialect::StrataDialect;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Extension {
    Optimize {
        table: String,
        zorder: Option<Vec<String>>,
    },
    Vacuum {
        table: String,
        retain_hours: Option<u64>,
        dry_run: bool,
    },
    DescribeHistory {
        table: String,
        limit: Option<usize>,
    },
    DescribeDetail {
        table: String,
    },
    Restore {
        table: String,
        to: RestoreTo,
    },
    AddColumns {
        table: String,
        columns: String,
    },
    SetTblProperties {
        table: String,
        properties: Vec<(String, String)>,
    },
    ShowTables {
        schema: Option<String>,
    },
    CreateSchema {
        name: String,
        layer: String,
        if_not_exists: bool,
    },
    /// `SET strata.txn_app_id = 'x'`, `SET strata.txn_version = 3`; `None` resets.
    SetTxn {
        key: TxnKey,
        value: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RestoreTo {
    Version(i64),
    Timestamp(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TxnKey {
    AppId,
    Version,
}

/// Tokens of a statement without whitespace and comments.
pub(crate) fn tokens(sql: &str) -> Result<Vec<Token>> {
    let all = Tokenizer::new(&StrataDialect::default(), sql)
        .tokenize()
        .map_err(|e| Error::InvalidInput(format!("SQL syntax error: {e}")))?;
    Ok(all
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect())
}

/// Splits a script into statements at top-level semicolons (strings and comments respected).
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let all = Tokenizer::new(&StrataDialect::default(), sql)
        .tokenize()
        .map_err(|e| Error::InvalidInput(format!("SQL syntax error: {e}")))?;
    let mut out = Vec::new();
    let mut current = String::new();
    let mut meaningful = false;
    for t in all {
        match &t {
            Token::SemiColon => {
                if meaningful {
                    out.push(current.trim().to_string());
                }
                current.clear();
                meaningful = false;
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => current.push(' '),
            Token::Whitespace(_) => current.push_str(&t.to_string()),
            _ => {
                meaningful = true;
                current.push_str(&t.to_string());
            }
        }
    }
    if meaningful {
        out.push(current.trim().to_string());
    }
    Ok(out)
}

struct Cursor {
    toks: Vec<Token>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn kw(&mut self, k: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn kws(&mut self, ks: &[&str]) -> bool {
        let save = self.pos;
        for k in ks {
            if !self.kw(k) {
                self.pos = save;
                return false;
            }
        }
        true
    }

    fn tok(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    fn expect_end(&self, what: &str) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "unexpected '{}' in {what}",
                self.toks[self.pos]
            )))
        }
    }

    fn word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let v = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                self.pos += 1;
                Some(v)
            }
            _ => None,
        }
    }

    fn name(&mut self, what: &str) -> Result<String> {
        let mut parts = vec![
            self.word()
                .ok_or_else(|| Error::InvalidInput(format!("{what} needs a table name")))?,
        ];
        while self.tok(&Token::Period) {
            parts
                .push(self.word().ok_or_else(|| {
                    Error::InvalidInput(format!("{what}: incomplete table name"))
                })?);
        }
        Ok(parts.join("."))
    }

    fn number(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Number(n, _)) => {
                let n = n.clone();
                self.pos += 1;
                Some(n)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Some(s)
            }
            _ => None,
        }
    }

    /// The tokens between a `(` (already consumed) and its matching `)`, rendered.
    fn parenthesized_text(&mut self) -> Result<String> {
        let mut depth = 1;
        let mut out: Vec<String> = Vec::new();
        while let Some(t) = self.peek().cloned() {
            self.pos += 1;
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out.join(" "));
                    }
                }
                _ => {}
            }
            out.push(match &t {
                Token::SingleQuotedString(s) => format!("'{}'", s.replace('\'', "''")),
                other => other.to_string(),
            });
        }
        Err(Error::InvalidInput("missing ')'".into()))
    }
}

/// Recognises one of Strata's own statements; `Ok(None)` hands the statement to sqlparser.
pub fn parse_extension(sql: &str) -> Result<Option<Extension>> {
    let toks = tokens(sql)?;
    let mut c = Cursor { toks, pos: 0 };
    if c.kw("OPTIMIZE") {
        let table = c.name("OPTIMIZE")?;
        let zorder = if c.kws(&["ZORDER", "BY"]) {
            let paren = c.tok(&Token::LParen);
            let mut cols = vec![
                c.word()
                    .ok_or_else(|| Error::InvalidInput("ZORDER BY needs column names".into()))?,
            ];
            while c.tok(&Token::Comma) {
                cols.push(c.word().ok_or_else(|| {
                    Error::InvalidInput("ZORDER BY: expected a column name after ','".into())
                })?);
            }
            if paren && !c.tok(&Token::RParen) {
                return Err(Error::InvalidInput("ZORDER BY: missing ')'".into()));
            }
            Some(cols)
        } else {
            None
        };
        c.expect_end("OPTIMIZE")?;
        return Ok(Some(Extension::Optimize { table, zorder }));
    }
    if c.kw("VACUUM") {
        let table = c.name("VACUUM")?;
        let mut retain_hours = None;
        let mut dry_run = false;
        loop {
            if c.kw("RETAIN") {
                let n = c.number().ok_or_else(|| {
                    Error::InvalidInput("VACUUM .. RETAIN needs a number of hours".into())
                })?;
                let hours: f64 = n.parse().map_err(|_| {
                    Error::InvalidInput(format!("VACUUM .. RETAIN: '{n}' is not a number"))
                })?;
                if !c.kw("HOURS") {
                    return Err(Error::InvalidInput(
                        "VACUUM .. RETAIN n HOURS: expected HOURS".into(),
                    ));
                }
                retain_hours = Some(hours.ceil() as u64);
            } else if c.kws(&["DRY", "RUN"]) {
                dry_run = true;
            } else {
                break;
            }
        }
        c.expect_end("VACUUM")?;
        return Ok(Some(Extension::Vacuum {
            table,
            retain_hours,
            dry_run,
        }));
    }
    if c.kws(&["DESCRIBE", "HISTORY"]) || c.kws(&["DESC", "HISTORY"]) {
        let table = c.name("DESCRIBE HISTORY")?;
        let limit = if c.kw("LIMIT") {
            Some(c.number().and_then(|n| n.parse().ok()).ok_or_else(|| {
                Error::InvalidInput("DESCRIBE HISTORY .. LIMIT needs a number".into())
            })?)
        } else {
            None
        };
        c.expect_end("DESCRIBE HISTORY")?;
        return Ok(Some(Extension::DescribeHistory { table, limit }));
    }
    if c.kws(&["DESCRIBE", "DETAIL"]) || c.kws(&["DESC", "DETAIL"]) {
        let table = c.name("DESCRIBE DETAIL")?;
        c.expect_end("DESCRIBE DETAIL")?;
        return Ok(Some(Extension::DescribeDetail { table }));
    }
    if c.kws(&["RESTORE", "TABLE"]) || c.kw("RESTORE") {
        let table = c.name("RESTORE TABLE")?;
        c.kw("TO");
        let to = if c.kws(&["VERSION", "AS", "OF"]) {
            let n = c.number().ok_or_else(|| {
                Error::InvalidInput("RESTORE .. VERSION AS OF needs a version number".into())
            })?;
            RestoreTo::Version(
                n.parse()
                    .map_err(|_| Error::InvalidInput(format!("'{n}' is not a version number")))?,
            )
        } else if c.kws(&["TIMESTAMP", "AS", "OF"]) {
            RestoreTo::Timestamp(c.string().ok_or_else(|| {
                Error::InvalidInput("RESTORE .. TIMESTAMP AS OF needs a quoted timestamp".into())
            })?)
        } else {
            return Err(Error::InvalidInput(
                "RESTORE TABLE t TO VERSION AS OF n | TIMESTAMP AS OF 'ts'".into(),
            ));
        };
        c.expect_end("RESTORE TABLE")?;
        return Ok(Some(Extension::Restore { table, to }));
    }
    if c.kws(&["ALTER", "TABLE"]) {
        let table = c.name("ALTER TABLE")?;
        if c.kws(&["ADD", "COLUMNS"]) {
            if !c.tok(&Token::LParen) {
                return Err(Error::InvalidInput(
                    "ALTER TABLE .. ADD COLUMNS (name TYPE, ...): missing '('".into(),
                ));
            }
            let columns = c.parenthesized_text()?;
            c.expect_end("ALTER TABLE .. ADD COLUMNS")?;
            return Ok(Some(Extension::AddColumns { table, columns }));
        }
        if c.kws(&["SET", "TBLPROPERTIES"]) {
            if !c.tok(&Token::LParen) {
                return Err(Error::InvalidInput(
                    "SET TBLPROPERTIES ('key' = 'value', ...): missing '('".into(),
                ));
            }
            let mut properties = Vec::new();
            loop {
                let k = c
                    .string()
                    .or_else(|| c.name("SET TBLPROPERTIES").ok())
                    .ok_or_else(|| {
                        Error::InvalidInput("SET TBLPROPERTIES: expected 'key'".into())
                    })?;
                if !c.tok(&Token::Eq) {
                    return Err(Error::InvalidInput(format!(
                        "SET TBLPROPERTIES: expected = after '{k}'"
                    )));
                }
                let v = c
                    .string()
                    .or_else(|| c.number())
                    .or_else(|| c.word())
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "SET TBLPROPERTIES: expected a value for '{k}'"
                        ))
                    })?;
                properties.push((k, v));
                if c.tok(&Token::RParen) {
                    break;
                }
                if !c.tok(&Token::Comma) {
                    return Err(Error::InvalidInput(
                        "SET TBLPROPERTIES: expected ',' or ')'".into(),
                    ));
                }
            }
            c.expect_end("ALTER TABLE .. SET TBLPROPERTIES")?;
            return Ok(Some(Extension::SetTblProperties { table, properties }));
        }
        return Ok(None);
    }
    if c.kws(&["SHOW", "TABLES"]) {
        let schema = if c.kw("IN") || c.kw("FROM") {
            Some(c.name("SHOW TABLES IN")?)
        } else {
            None
        };
        c.expect_end("SHOW TABLES")?;
        return Ok(Some(Extension::ShowTables { schema }));
    }
    if c.kws(&["CREATE", "SCHEMA"]) || c.kws(&["CREATE", "DATABASE"]) {
        let if_not_exists = c.kws(&["IF", "NOT", "EXISTS"]);
        let name = c.name("CREATE SCHEMA")?;
        let mut layer = None;
        if c.kw("WITH") {
            if !c.tok(&Token::LParen) {
                return Err(Error::InvalidInput(
                    "CREATE SCHEMA .. WITH (layer = 'silver')".into(),
                ));
            }
            loop {
                let k = c.word().unwrap_or_default();
                if !c.tok(&Token::Eq) {
                    return Err(Error::InvalidInput(
                        "CREATE SCHEMA .. WITH (layer = 'silver')".into(),
                    ));
                }
                let v = c.string().or_else(|| c.word()).unwrap_or_default();
                if k == "layer" {
                    layer = Some(v);
                } else {
                    return Err(Error::InvalidInput(format!(
                        "CREATE SCHEMA: unknown option '{k}' (only layer)"
                    )));
                }
                if c.tok(&Token::RParen) {
                    break;
                }
                if !c.tok(&Token::Comma) {
                    return Err(Error::InvalidInput(
                        "CREATE SCHEMA: expected ',' or ')'".into(),
                    ));
                }
            }
        }
        c.expect_end("CREATE SCHEMA")?;
        let layer = layer.ok_or_else(|| {
            Error::InvalidInput(format!(
                "CREATE SCHEMA {name} needs its layer: CREATE SCHEMA {name} WITH (layer = 'silver')"
            ))
        })?;
        return Ok(Some(Extension::CreateSchema {
            name,
            layer,
            if_not_exists,
        }));
    }
    let reset = c.kw("RESET");
    if reset || c.kw("SET") {
        let save = c.pos;
        let key = match c.name("SET").ok().as_deref() {
            Some("strata.txn_app_id") => TxnKey::AppId,
            Some("strata.txn_version") => TxnKey::Version,
            Some(other) if other.starts_with("strata.") => {
                return Err(Error::InvalidInput(format!(
                    "unknown setting {other}: Strata has strata.txn_app_id and strata.txn_version"
                )));
            }
            _ => {
                c.pos = save;
                return Ok(None);
            }
        };
        if reset {
            c.expect_end("RESET")?;
            return Ok(Some(Extension::SetTxn { key, value: None }));
        }
        if !(c.tok(&Token::Eq) || c.kw("TO")) {
            return Err(Error::InvalidInput("SET strata.<setting> = value".into()));
        }
        let value = c
            .string()
            .or_else(|| c.number())
            .or_else(|| c.word())
            .ok_or_else(|| {
                Error::InvalidInput("SET strata.<setting> = value: missing value".into())
            })?;
        c.expect_end("SET")?;
        return Ok(Some(Extension::SetTxn {
            key,
            value: Some(value),
        }));
    }
    Ok(None)
}

/// Rewrites Delta's `UPDATE SET *` and `INSERT *` in a MERGE (which sqlparser rejects) into
/// placeholders the MERGE translation expands by column name.
pub(crate) const STAR: &str = "__strata_all_columns__";

pub fn expand_merge_stars(sql: &str) -> Result<String> {
    let all = Tokenizer::new(&StrataDialect::default(), sql)
        .tokenize()
        .map_err(|e| Error::InvalidInput(format!("SQL syntax error: {e}")))?;
    let is_merge = all
        .iter()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("MERGE")));
    if !is_merge {
        return Ok(sql.to_string());
    }
    let meaningful: Vec<usize> = (0..all.len())
        .filter(|i| !matches!(all[*i], Token::Whitespace(_)))
        .collect();
    let is_kw = |i: usize, k: &str| matches!(&all[i], Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let mut replace: Vec<(usize, &str)> = Vec::new();
    for (n, &i) in meaningful.iter().enumerate() {
        if matches!(all[i], Token::Mul) && n >= 1 {
            let prev = meaningful[n - 1];
            if is_kw(prev, "SET") && n >= 2 && is_kw(meaningful[n - 2], "UPDATE") {
                replace.push((i, "__strata_all_columns__ = __strata_all_columns__"));
            } else if is_kw(prev, "INSERT") {
                replace.push((
                    i,
                    "(__strata_all_columns__) VALUES (__strata_all_columns__)",
                ));
            }
        }
    }
    let mut out = String::new();
    for (i, t) in all.iter().enumerate() {
        match replace.iter().find(|(at, _)| *at == i) {
            Some((_, text)) => out.push_str(text),
            None => out.push_str(&t.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_maintenance() {
        assert_eq!(
            parse_extension("OPTIMIZE silver.events ZORDER BY (user_id, ts)").unwrap(),
            Some(Extension::Optimize {
                table: "silver.events".into(),
                zorder: Some(vec!["user_id".into(), "ts".into()])
            })
        );
        assert_eq!(
            parse_extension("vacuum silver.e RETAIN 168 HOURS DRY RUN").unwrap(),
            Some(Extension::Vacuum {
                table: "silver.e".into(),
                retain_hours: Some(168),
                dry_run: true
            })
        );
        assert_eq!(
            parse_extension("RESTORE TABLE silver.e TO VERSION AS OF 3").unwrap(),
            Some(Extension::Restore {
                table: "silver.e".into(),
                to: RestoreTo::Version(3)
            })
        );
        assert!(matches!(
            parse_extension("ALTER TABLE silver.e ADD COLUMNS (a STRING, b DECIMAL(10,2))")
                .unwrap(),
            Some(Extension::AddColumns { .. })
        ));
        assert_eq!(parse_extension("SELECT 1").unwrap(), None);
        assert_eq!(parse_extension("SET datafusion.x = 1").unwrap(), None);
        assert!(parse_extension("SET strata.nope = 1").is_err());
    }

    #[test]
    fn splits_scripts() {
        let s = split_statements("SELECT ';'; -- c;\n SELECT 2;;").unwrap();
        assert_eq!(s, vec!["SELECT ';'", "SELECT 2"]);
    }

    #[test]
    fn expands_merge_stars() {
        let s = expand_merge_stars(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        )
        .unwrap();
        assert!(
            s.contains("UPDATE SET __strata_all_columns__ = __strata_all_columns__"),
            "{s}"
        );
        assert!(
            s.contains("INSERT (__strata_all_columns__) VALUES (__strata_all_columns__)"),
            "{s}"
        );
        assert_eq!(expand_merge_stars("SELECT 2 * 3").unwrap(), "SELECT 2 * 3");
    }
}
