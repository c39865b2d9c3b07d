//! SQL types as Strata means them: `TIMESTAMP` is an instant in microseconds, zone `UTC`
//! (Delta's `timestamp`); `TIMESTAMP_NTZ` and `TIMESTAMP WITHOUT TIME ZONE` are microseconds
//! without zone. DataFusion alone would plan `TIMESTAMP` as nanoseconds without zone, which
//! Delta stores as `timestamp_ntz`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::sql::sqlparser::ast::{DataType as SqlType, TimezoneInfo};
use strata_core::types::{timestamp_ntz_type, timestamp_type};

#[derive(Debug, Default)]
pub struct StrataTypePlanner;

impl TypePlanner for StrataTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> Result<Option<FieldRef>> {
        let t = match sql_type {
            SqlType::Timestamp(_, TimezoneInfo::WithoutTimeZone) | SqlType::TimestampNtz(_) => {
                timestamp_ntz_type()
            }
            SqlType::Timestamp(_, _) => timestamp_type(),
            SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamp_ntz") => {
                timestamp_ntz_type()
            }
            SqlType::Custom(name, _)
                if name.to_string().eq_ignore_ascii_case("timestamp_ltz")
                    || name.to_string().eq_ignore_ascii_case("timestamptz") =>
            {
                timestamp_type()
            }
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(Field::new("", t, true))))
    }
}
