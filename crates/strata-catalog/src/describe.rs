//! What `strata table describe` shows: the metastore's view and the Delta log's, together.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_core::TableName;
use strata_core::types::type_name;

use crate::error::Result;
use crate::lakehouse::Lakehouse;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDescription {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub comment: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableDescription {
    pub name: String,
    pub table_id: String,
    pub kind: String,
    pub layer: Option<String>,
    pub owner: Option<String>,
    pub comment: Option<String>,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub location: Option<String>,
    pub view_sql: Option<String>,
    pub partition_columns: Vec<String>,
    pub version: Option<i64>,
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub delta_properties: BTreeMap<String, String>,
    pub columns: Vec<ColumnDescription>,
    pub created_at: String,
    pub updated_at: String,
}

impl Lakehouse {
    pub async fn describe(&self, name: &TableName) -> Result<TableDescription> {
        let info = self.table(name).await?;
        let ms = self.metastore();
        let tags = ms.tags(&info.table_id).await?;
        let comments = ms.column_comments(&info.table_id).await?;
        let mut d = TableDescription {
            name: info.name.to_string(),
            table_id: info.table_id.clone(),
            kind: info.kind.to_string(),
            layer: info.layer.map(|l| l.to_string()),
            owner: info.owner.clone(),
            comment: info.comment.clone(),
            tags: tags
                .iter()
                .filter(|t| t.column.is_none())
                .map(|t| t.tag.clone())
                .collect(),
            properties: info.properties.clone(),
            location: info.location.clone(),
            view_sql: info.view_sql.clone(),
            partition_columns: vec![],
            version: None,
            files: None,
            bytes: None,
            delta_properties: BTreeMap::new(),
            columns: vec![],
            created_at: info.created_at.to_rfc3339(),
            updated_at: info.updated_at.to_rfc3339(),
        };
        if info.location.is_some() {
            let table = self.open_delta(&info).await?;
            let detail = strata_table::detail(&table, &d.name)?;
            let schema = strata_table::arrow_schema(&table, &d.name)?;
            d.partition_columns = detail.partition_columns.clone();
            d.version = Some(detail.version);
            d.files = Some(detail.num_files);
            d.bytes = Some(detail.size_bytes);
            d.delta_properties = detail.properties.into_iter().collect();
            d.columns = schema
                .fields()
                .iter()
                .map(|f| ColumnDescription {
                    name: f.name().clone(),
                    data_type: type_name(f.data_type()),
                    nullable: f.is_nullable(),
                    comment: comments.get(f.name()).cloned(),
                    tags: tags
                        .iter()
                        .filter(|t| t.column.as_deref() == Some(f.name().as_str()))
                        .map(|t| t.tag.clone())
                        .collect(),
                })
                .collect();
        }
        Ok(d)
    }
}
