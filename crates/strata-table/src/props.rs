//! Table properties each kind of table is created with.

use std::collections::HashMap;

use strata_core::Layer;

/// What a table is for, which decides the Delta properties of its first commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRole {
    Layer(Layer),
    /// `quarantine.*`: not append-only, change feed off, written only by Strata.
    Quarantine,
}

/// Ten years: bronze keeps its whole log, since the change feed and replay read it.
const BRONZE_LOG_RETENTION: &str = "interval 3650 days";

impl TableRole {
    /// The Delta properties of a new table of this role.
    ///
    /// Bronze: append-only, change data feed on, log never cleaned (deltalake lists the whole
    /// log on every commit to clean it). Silver and gold: change data feed on, so MERGE,
    /// UPDATE and DELETE write `_change_data` files instead of whole-file deletes and inserts.
    pub fn properties(self) -> HashMap<String, String> {
        let mut p = HashMap::new();
        match self {
            TableRole::Layer(Layer::Bronze) => {
                p.insert("delta.appendOnly".into(), "true".into());
                p.insert("delta.enableChangeDataFeed".into(), "true".into());
                p.insert(
                    "delta.logRetentionDuration".into(),
                    BRONZE_LOG_RETENTION.into(),
                );
                p.insert("delta.enableExpiredLogCleanup".into(), "false".into());
            }
            TableRole::Layer(Layer::Silver | Layer::Gold) => {
                p.insert("delta.enableChangeDataFeed".into(), "true".into());
            }
            TableRole::Quarantine => {}
        }
        p
    }
}
