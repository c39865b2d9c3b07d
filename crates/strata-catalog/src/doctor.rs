//! `strata doctor`: the metastore and the Delta logs under the root must agree.
//!
//! Checks (DECISIONS.md section 1): every metastore entry has its log; every log under the root
//! (outside `_strata/`) has its entry; no managed location lies outside the root or away from
//! its name's folder; every folder's `metaData.id` is the recorded one; no `creating` row is
//! left behind. `--repair` fixes what the Delta logs can prove and lists what it cannot.

use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_core::{TableKind, TableName};
use url::Url;

use crate::error::Result;
use crate::lakehouse::{Lakehouse, STRATA_DIR, dir_url};
use crate::metastore::{NewTable, TableState};

/// One disagreement between the metastore and the logs.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `missing_log`, `orphan_log`, `wrong_location`, `outside_root`, `id_mismatch`, `stale_creating`.
    pub kind: &'static str,
    pub table: Option<String>,
    pub path: Option<String>,
    pub detail: String,
    /// What `--repair` did, or why it could not.
    pub repair: Option<String>,
    pub repaired: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DoctorReport {
    pub tables_checked: usize,
    pub logs_found: usize,
    pub problems: Vec<Problem>,
}

impl DoctorReport {
    /// Whether anything is still wrong.
    pub fn unhealthy(&self) -> bool {
        self.problems.iter().any(|p| !p.repaired)
    }
}

fn url_path(u: &str) -> Option<PathBuf> {
    Url::parse(u)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
}

async fn read_delta_id(path: &Path) -> Option<String> {
    let url = dir_url(path).ok()?;
    let t = strata_table::open_table(&url, &path.display().to_string())
        .await
        .ok()?;
    strata_table::detail(&t, "").ok().map(|d| d.id)
}

/// Folders under the root that hold a `_delta_log`, outside `_strata/`; three levels deep
/// (catalog/schema/table), where managed tables live.
fn find_logs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if !p.is_dir() || (depth == 0 && name == STRATA_DIR) {
                continue;
            }
            if p.join("_delta_log").is_dir() {
                out.push(p);
            } else if depth < 3 && name != "_delta_log" {
                stack.push((p, depth + 1));
            }
        }
    }
    out.sort();
    out
}

impl Lakehouse {
    pub async fn doctor(&self, repair: bool) -> Result<DoctorReport> {
        let ms = self.metastore();
        let mut report = DoctorReport::default();
        let root = self.root().to_path_buf();

        // creating rows whose holder is gone: settled by the log
        // a create takes well under a minute; a row older than this lost its holder
        let stale = chrono::Utc::now() - chrono::Duration::minutes(10);
        for info in ms.list_tables_in_state(TableState::Creating).await? {
            if info.created_at > stale {
                continue;
            }
            let log = info
                .location
                .as_deref()
                .and_then(url_path)
                .map(|p| p.join("_delta_log"));
            let has_log = log.as_ref().is_some_and(|l| l.is_dir());
            let mut p = Problem {
                kind: "stale_creating",
                table: Some(info.name.to_string()),
                path: info.location.clone(),
                detail: format!("table {} was left half-created", info.name),
                repair: None,
                repaired: false,
            };
            if repair {
                if has_log {
                    let id = read_delta_id(log.as_ref().unwrap().parent().unwrap()).await;
                    ms.activate_table(&info.table_id, id.as_deref()).await?;
                    p.repair = Some("its Delta log exists: activated".into());
                } else {
                    ms.abort_create_table(&info.table_id).await?;
                    p.repair = Some("it has no Delta log: removed the entry".into());
                }
                p.repaired = true;
            }
            report.problems.push(p);
        }

        let tables = ms.list_tables(None, None).await?;
        let mut registered: Vec<PathBuf> = Vec::new();
        for info in &tables {
            if info.kind == TableKind::View {
                continue;
            }
            report.tables_checked += 1;
            let name = info.name.to_string();
            let Some(path) = info.location.as_deref().and_then(url_path) else {
                continue; // object storage: not checked here
            };
            registered.push(path.clone());
            if info.kind == TableKind::Managed {
                let expected = self.managed_path(&info.name);
                if path != expected {
                    let outside = !path.starts_with(&root);
                    let mut p = Problem {
                        kind: if outside {
                            "outside_root"
                        } else {
                            "wrong_location"
                        },
                        table: Some(name.clone()),
                        path: Some(path.display().to_string()),
                        detail: format!(
                            "managed table {name} is recorded at {} but belongs at {}",
                            path.display(),
                            expected.display()
                        ),
                        repair: None,
                        repaired: false,
                    };
                    if repair {
                        let expected_id = read_delta_id(&expected).await;
                        if expected_id.is_some() && expected_id == info.delta_id {
                            ms.set_location(&info.table_id, dir_url(&expected)?.as_ref())
                                .await?;
                            p.repair = Some(format!(
                                "its log at {} has the recorded id: location corrected",
                                expected.display()
                            ));
                            p.repaired = true;
                            registered.push(expected.clone());
                        } else {
                            p.repair = Some(format!(
                                "no log with the recorded id at {}: move the table there, or drop it",
                                expected.display()
                            ));
                        }
                    }
                    report.problems.push(p);
                    continue;
                }
            }
            if !path.join("_delta_log").is_dir() {
                let mut p = Problem {
                    kind: "missing_log",
                    table: Some(name.clone()),
                    path: Some(path.display().to_string()),
                    detail: format!("table {name} has no Delta log at {}", path.display()),
                    repair: None,
                    repaired: false,
                };
                if repair {
                    ms.mark_dropped(&info.table_id).await?;
                    p.repair = Some("the log proves the table is gone: unregistered (its entry is kept as dropped)".into());
                    p.repaired = true;
                }
                report.problems.push(p);
                continue;
            }
            let id = read_delta_id(&path).await;
            if id.is_some() && info.delta_id.is_some() && id != info.delta_id {
                let mut p = Problem {
                    kind: "id_mismatch",
                    table: Some(name.clone()),
                    path: Some(path.display().to_string()),
                    detail: format!(
                        "the Delta table at {} has id {} but {name} recorded {}",
                        path.display(),
                        id.clone().unwrap_or_default(),
                        info.delta_id.clone().unwrap_or_default()
                    ),
                    repair: None,
                    repaired: false,
                };
                if repair {
                    ms.set_delta_id(&info.table_id, id.as_deref().unwrap_or_default())
                        .await?;
                    p.repair = Some("recorded the log's id (the log is the truth)".into());
                    p.repaired = true;
                }
                report.problems.push(p);
            }
        }

        for log_dir in find_logs(&root) {
            report.logs_found += 1;
            if registered.contains(&log_dir) {
                continue;
            }
            let rel: Vec<String> = log_dir
                .strip_prefix(&root)
                .map(|r| {
                    r.components()
                        .map(|c| c.as_os_str().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let mut p = Problem {
                kind: "orphan_log",
                table: None,
                path: Some(log_dir.display().to_string()),
                detail: format!(
                    "{} holds a Delta table that no metastore entry names",
                    log_dir.display()
                ),
                repair: None,
                repaired: false,
            };
            let candidate = (rel.len() == 3)
                .then(|| TableName::new(&rel[0], &rel[1], &rel[2]).ok())
                .flatten();
            if let Some(tn) = &candidate {
                p.table = Some(tn.to_string());
            }
            if repair {
                match candidate {
                    Some(tn) if ms.get_table(&tn).await?.is_none() => match self.role_of(&tn.schema_name()).await {
                        Ok((_, layer)) => {
                            let info = ms
                                .begin_create_table(NewTable {
                                    name: tn.clone(),
                                    kind: TableKind::Managed,
                                    layer,
                                    location: Some(dir_url(&log_dir)?.to_string()),
                                    view_sql: None,
                                    owner: None,
                                    comment: None,
                                    properties: Default::default(),
                                })
                                .await?;
                            let id = read_delta_id(&log_dir).await;
                            ms.activate_table(&info.table_id, id.as_deref()).await?;
                            p.repair = Some(format!("registered as managed table {tn}"));
                            p.repaired = true;
                        }
                        Err(e) => p.repair = Some(format!("cannot register it: {e}")),
                    },
                    Some(tn) => {
                        p.repair = Some(format!("{tn} is taken by another table: move the folder aside or drop it"))
                    }
                    None => {
                        p.repair = Some("its folder is not <catalog>/<schema>/<table>: register it with `strata table register`".into())
                    }
                }
            }
            report.problems.push(p);
        }
        Ok(report)
    }
}
