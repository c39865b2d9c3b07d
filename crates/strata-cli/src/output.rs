//! Printing results: a human table by default, JSON or CSV for scripts.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use serde::Serialize;
use strata_catalog::doctor::DoctorReport;

use crate::Format;

/// Prints rows in the chosen format.
pub fn print_batches(schema: &SchemaRef, batches: &[RecordBatch], format: Format) {
    match format {
        Format::Table => {
            let batches: Vec<RecordBatch> = if batches.is_empty() {
                vec![RecordBatch::new_empty(schema.clone())]
            } else {
                batches.to_vec()
            };
            match datafusion::arrow::util::pretty::pretty_format_batches(&batches) {
                Ok(t) => out!("{t}"),
                Err(e) => eprintln!("error: cannot format the result: {e}"),
            }
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            out!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
                for b in batches {
                    if let Err(e) = w.write(b) {
                        eprintln!("error: cannot write JSON: {e}");
                        return;
                    }
                }
                let _ = w.finish();
            }
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            out!("{}", String::from_utf8_lossy(&buf));
        }
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                if batches.is_empty() {
                    let _ = w.write(&RecordBatch::new_empty(schema.clone()));
                }
                for b in batches {
                    if let Err(e) = w.write(b) {
                        eprintln!("error: cannot write CSV: {e}");
                        return;
                    }
                }
            }
            {
                use std::io::Write as _;
                let _ = std::io::stdout().write_all(&buf);
            }
        }
    }
}

/// Prints a serialisable value as JSON, or a two-column table of its fields.
pub fn print_value<T: Serialize>(value: &T, format: Format) {
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    match format {
        Format::Json => out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Format::Csv => {
            let rows = match v {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .map(|(k, v)| {
                        vec![
                            k,
                            match v {
                                serde_json::Value::String(s) => s,
                                serde_json::Value::Null => String::new(),
                                other => other.to_string(),
                            },
                        ]
                    })
                    .collect(),
                _ => vec![],
            };
            print_rows(&["key", "value"], rows, Format::Csv);
        }
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            if let serde_json::Value::Object(m) = v {
                for (k, v) in m {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    t.add_row(vec![k, text]);
                }
            }
            out!("{t}");
        }
    }
}

/// Prints a list of rows with headers.
pub fn print_rows(headers: &[&str], rows: Vec<Vec<String>>, format: Format) {
    match format {
        Format::Json => {
            let arr: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::Value::Object(
                        headers
                            .iter()
                            .zip(r)
                            .map(|(h, v)| (h.to_string(), serde_json::Value::String(v.clone())))
                            .collect(),
                    )
                })
                .collect();
            out!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
        }
        Format::Csv => {
            out!("{}", headers.join(","));
            for r in rows {
                out!(
                    "{}",
                    r.iter()
                        .map(|v| if v.contains([',', '"', '\n']) {
                            format!("\"{}\"", v.replace('"', "\"\""))
                        } else {
                            v.clone()
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(headers.to_vec());
            let n = rows.len();
            for r in rows {
                t.add_row(r);
            }
            out!("{t}");
            out!("({n} row{})", if n == 1 { "" } else { "s" });
        }
    }
}

pub fn print_doctor(report: &DoctorReport, format: Format) {
    if format == Format::Json {
        out!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    out!(
        "checked {} tables and {} Delta logs",
        report.tables_checked,
        report.logs_found
    );
    if report.problems.is_empty() {
        out!("ok: the metastore and the Delta logs agree");
        return;
    }
    for p in &report.problems {
        let mark = if p.repaired { "fixed" } else { "PROBLEM" };
        out!("{mark} [{}] {}", p.kind, p.detail);
        if let Some(r) = &p.repair {
            out!("    repair: {r}");
        }
    }
    let left = report.problems.iter().filter(|p| !p.repaired).count();
    if left > 0 {
        out!("{left} problem(s) left; run `strata doctor --repair` to fix what the logs prove");
    }
}
