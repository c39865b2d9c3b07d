//! A table's commits as Strata shows them, read from the commit files themselves.
//!
//! deltalake's `history()` yields commit infos without their versions, and its timestamp
//! lookup uses file modification times (and clamps times before the first commit). Strata reads
//! each commit's own `commitInfo.timestamp`, so `TIMESTAMP AS OF` means what the log says.

use chrono::{DateTime, TimeZone, Utc};
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One commit of a table.
#[derive(Debug, Clone)]
pub struct Commit {
    pub version: i64,
    pub timestamp: DateTime<Utc>,
    pub operation: String,
    pub parameters: Map<String, Value>,
    pub metrics: Map<String, Value>,
    /// Application transactions (`txn` actions) carried by the commit: (app id, version).
    pub txns: Vec<(String, i64)>,
    pub engine: Option<String>,
    /// Records added with `dataChange` (from the add actions' statistics).
    pub added_records: u64,
    /// Paths of the data files the commit removed.
    pub removed_paths: Vec<String>,
    /// Paths of the change-data files the commit wrote (the change feed's rows).
    pub cdc_paths: Vec<String>,
}

/// The commit versions whose JSON files are still in the log, ascending.
pub async fn available_versions(table: &DeltaTable) -> Result<Vec<i64>> {
    let store = table.log_store();
    let root = store.object_store(None);
    let log_path = store.log_path().clone();
    let mut versions: Vec<i64> = root
        .list(Some(&log_path))
        .try_filter_map(|meta| async move {
            let name = meta.location.filename().unwrap_or_default().to_string();
            Ok(name
                .strip_suffix(".json")
                .filter(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|stem| stem.parse::<i64>().ok()))
        })
        .try_collect()
        .await
        .map_err(|e| Error::Storage(format!("listing the log of {}: {e}", table.table_url())))?;
    versions.sort_unstable();
    Ok(versions)
}

/// Reads one commit; `None` when its file is gone (log cleanup).
pub async fn read_commit(table: &DeltaTable, version: i64) -> Result<Option<Commit>> {
    let store = table.log_store();
    let bytes = store
        .read_commit_entry(version as u64)
        .await
        .map_err(|e| Error::delta(table.table_url().as_str(), e))?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let mut commit = Commit {
        version,
        timestamp: DateTime::<Utc>::UNIX_EPOCH,
        operation: String::new(),
        parameters: Map::new(),
        metrics: Map::new(),
        txns: Vec::new(),
        engine: None,
        added_records: 0,
        removed_paths: Vec::new(),
        cdc_paths: Vec::new(),
    };
    let mut have_ts = false;
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: Value = serde_json::from_slice(line).map_err(|e| {
            Error::Storage(format!(
                "commit {version} of {} is not valid JSON: {e}",
                table.table_url()
            ))
        })?;
        if let Some(info) = action.get("commitInfo") {
            let ts = info
                .get("inCommitTimestamp")
                .and_then(Value::as_i64)
                .or_else(|| info.get("timestamp").and_then(Value::as_i64));
            if let Some(ms) = ts
                && let Some(t) = Utc.timestamp_millis_opt(ms).single()
            {
                commit.timestamp = t;
                have_ts = true;
            }
            commit.operation = info
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Some(Value::Object(p)) = info.get("operationParameters") {
                commit.parameters = p.clone();
            }
            if let Some(Value::Object(m)) = info.get("operationMetrics") {
                commit.metrics = m.clone();
            }
            commit.engine = info
                .get("engineInfo")
                .or_else(|| info.get("clientVersion"))
                .and_then(Value::as_str)
                .map(str::to_string);
        } else if let Some(txn) = action.get("txn")
            && let (Some(app), Some(v)) = (
                txn.get("appId").and_then(Value::as_str),
                txn.get("version").and_then(Value::as_i64),
            )
        {
            commit.txns.push((app.to_string(), v));
        } else if let Some(add) = action.get("add") {
            if add.get("dataChange").and_then(Value::as_bool) != Some(false) {
                commit.added_records += add
                    .get("stats")
                    .and_then(Value::as_str)
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|s| s.get("numRecords").and_then(Value::as_u64))
                    .unwrap_or(0);
            }
        } else if let Some(path) = action
            .get("remove")
            .and_then(|r| r.get("path"))
            .and_then(Value::as_str)
        {
            commit.removed_paths.push(path.to_string());
        } else if let Some(path) = action
            .get("cdc")
            .and_then(|r| r.get("path"))
            .and_then(Value::as_str)
        {
            commit.cdc_paths.push(path.to_string());
        }
    }
    if !have_ts {
        // A writer that records no commitInfo: fall back to the file's modification time.
        let path = deltalake::Path::from(format!(
            "{}/{:020}.json",
            table.log_store().log_path(),
            version
        ));
        if let Ok(meta) = table.log_store().object_store(None).head(&path).await {
            commit.timestamp = meta.last_modified;
        }
    }
    Ok(Some(commit))
}

/// The table's commits, newest first, at most `limit`.
pub async fn history(table: &DeltaTable, limit: Option<usize>) -> Result<Vec<Commit>> {
    let versions = available_versions(table).await?;
    let take = limit.unwrap_or(usize::MAX);
    let wanted: Vec<i64> = versions.into_iter().rev().take(take).collect();
    let commits: Vec<Option<Commit>> = futures::stream::iter(wanted)
        .map(|v| read_commit(table, v))
        .buffered(16)
        .try_collect()
        .await?;
    Ok(commits.into_iter().flatten().collect())
}

/// The last version committed at or before `ts`, by the commits' own timestamps. A time
/// before the first commit still in the log is an error.
pub async fn version_at_timestamp(table: &DeltaTable, ts: DateTime<Utc>) -> Result<i64> {
    let versions = available_versions(table).await?;
    let Some(&first) = versions.first() else {
        return Err(Error::NotFound(format!(
            "table {} has no commits",
            table.table_url()
        )));
    };
    let time_of = |v: i64| async move {
        read_commit(table, v)
            .await?
            .map(|c| c.timestamp)
            .ok_or_else(|| Error::NotFound(format!("commit {v} of {} is gone", table.table_url())))
    };
    let first_ts = time_of(first).await?;
    if ts < first_ts {
        return Err(Error::InvalidInput(format!(
            "timestamp {} is before the first commit of the table (version {first} at {})",
            ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            first_ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )));
    }
    // Invariant: versions[lo] is at or before ts; find the last such index.
    let (mut lo, mut hi) = (0usize, versions.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if time_of(versions[mid]).await? <= ts {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(versions[lo])
}
