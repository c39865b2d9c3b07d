//! The DataFusion session deltalake operations run in.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionConfig;

/// A session configured as Strata needs it: time zone `UTC` (that literal: Delta refuses
/// `+00:00`), and sort repartitioning off (a change-feed scan is a union whose parts may be
/// empty, which the sort pushdown rejects in DataFusion 55).
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .set_str("datafusion.execution.time_zone", "UTC")
        .set_bool("datafusion.optimizer.repartition_sorts", false);
    config.options_mut().sql_parser.enable_ident_normalization = true;
    config
}

/// A plain session for library writes; `strata-sql` builds its own with the SQL extensions.
pub fn default_session() -> Arc<SessionState> {
    Arc::new(
        SessionStateBuilder::new()
            .with_config(session_config())
            .with_default_features()
            .build(),
    )
}
