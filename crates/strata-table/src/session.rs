//! The DataFusion session deltalake operations and Strata's queries run in.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::context::SessionState;
use deltalake::delta_datafusion::DeltaSessionContext;

/// Strata's settings on top of deltalake's tuned session (which carries deltalake's query
/// planner, needed by its write and merge plans): time zone `UTC` (that literal: Delta
/// refuses `+00:00`); identifiers fold to lower case as in PostgreSQL; sort repartitioning off
/// (a change-feed scan is a union whose parts may be empty, which DataFusion 55's sort
/// pushdown rejects); no information_schema (the `system` tables serve that).
pub fn session_overrides() -> HashMap<String, String> {
    [
        ("datafusion.execution.time_zone", "UTC"),
        ("datafusion.optimizer.repartition_sorts", "false"),
        ("datafusion.sql_parser.enable_ident_normalization", "true"),
        ("datafusion.catalog.information_schema", "false"),
        ("datafusion.catalog.default_catalog", "lakehouse"),
        ("datafusion.catalog.default_schema", "default"),
        (
            "datafusion.catalog.create_default_catalog_and_schema",
            "false",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A session for library writes and queries; `strata-sql` extends it with its SQL planners.
pub fn session_state() -> SessionState {
    DeltaSessionContext::new_with_session_overrides(&session_overrides())
        .expect("Strata's session settings are valid")
        .state()
}

pub fn default_session() -> Arc<SessionState> {
    Arc::new(session_state())
}
