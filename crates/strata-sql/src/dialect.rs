//! Strata's SQL dialect: PostgreSQL's, plus `VERSION AS OF n` and `TIMESTAMP AS OF ts`.
//!
//! sqlparser has no way to extend a dialect, so this wrapper forwards every method that
//! `PostgreSqlDialect` overrides and reports PostgreSQL's type id (so `dialect_of!` checks treat
//! it as PostgreSQL), and turns table versioning on. With versioning on, `before`, `changes` and
//! `at` cannot be bare table aliases.

use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

#[derive(Debug, Default, Clone, Copy)]
pub struct StrataDialect {
    pg: PostgreSqlDialect,
}

macro_rules! forward_bool {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool { self.pg.$name() })*
    };
}

impl Dialect for StrataDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.pg.identifier_quote_style(identifier)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.pg.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.pg.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.pg.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.pg.is_reserved_for_identifier(kw)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.pg.is_custom_operator_part(ch)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.pg.get_next_precedence(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.pg.prec_value(prec)
    }

    forward_bool!(
        supports_unicode_string_literal,
        supports_filter_during_aggregation,
        supports_group_by_expr,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_listen_notify,
        supports_factorial_operator,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_colon_operator,
        supports_named_fn_args_with_expr_name,
        supports_empty_projections,
        supports_nested_comments,
        supports_string_escape_constant,
        supports_numeric_literal_underscores,
        supports_array_typedef_with_brackets,
        supports_geometric_types,
        supports_set_names,
        supports_alter_column_type_using,
        supports_notnull_operator,
        supports_interval_options,
        supports_insert_table_alias,
        supports_create_table_like_parenthesized,
        supports_select_wildcard_with_alias,
        supports_comma_separated_trim,
        supports_xml_expressions,
        supports_comment_optimizer_hint,
    );
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Result<String, ParserError> {
        let stmts = Parser::parse_sql(&StrataDialect::default(), sql)?;
        Ok(stmts[0].to_string())
    }

    #[test]
    fn versions_and_postgres_syntax() {
        assert!(parse("SELECT \"userId\" FROM silver.events VERSION AS OF 3").is_ok());
        assert!(
            parse("SELECT * FROM silver.t VERSION AS OF 1 AS a JOIN silver.t VERSION AS OF 2 AS b ON a.id = b.id")
                .is_ok()
        );
        assert!(parse("SELECT * FROM t TIMESTAMP AS OF '2024-09-01 12:00:00'").is_ok());
        // PostgreSQL behaviour is kept: factorial and escape strings
        assert_eq!(parse("SELECT 5!").unwrap(), "SELECT 5!");
        assert!(parse("SELECT E'a\\nb'").unwrap().contains("E'"));
    }
}
