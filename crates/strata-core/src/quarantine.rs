//! The quarantine envelope: one schema for every `quarantine.*` table (DECISIONS.md section 5).

use arrow::datatypes::{DataType, Field};

use crate::types::timestamp_type;

/// Where in the flow of data a row was quarantined.
pub const STAGES: [&str; 4] = ["ingest", "contract", "cast", "expectation"];

/// The envelope's columns, in table order.
pub fn envelope_fields() -> Vec<Field> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    vec![
        s("_quarantine_id"),
        Field::new("_quarantined_at", timestamp_type(), true),
        s("_run_id"),
        s("_stage"),
        s("_target_table"),
        s("_flow"),
        s("_scope"),
        s("_source_table"),
        Field::new("_source_version", DataType::Int64, true),
        s("_source_pointer"),
        Field::new(
            "_rules",
            DataType::List(std::sync::Arc::new(Field::new_list_field(
                DataType::Utf8,
                true,
            ))),
            true,
        ),
        s("_reason"),
        s("_record"),
    ]
}
