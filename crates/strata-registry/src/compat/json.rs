//! JSON Schema compatibility: does every document the writer schema accepts pass the reader
//! schema? Confluent's and Karapace's checks, with Confluent's default (strict) policy:
//!
//! - `type`: the reader accepts each writer type (`number` accepts `integer`);
//! - `enum` and `const`: the writer's values are a subset of the reader's;
//! - bounds (`minimum`, `maximum`, the exclusive ones, `minLength`, `maxLength`, `minItems`,
//!   `maxItems`, `minProperties`, `maxProperties`, `multipleOf`): the reader is not stricter;
//! - `pattern` and `format`: the reader's is the writer's or absent;
//! - `required`: the reader requires nothing more, unless the new property has a default;
//! - `properties` against `additionalProperties`: a property the reader drops must still be
//!   accepted as additional (not when the reader's model is closed); a property the reader adds
//!   must have been impossible in the writer's data (a closed writer model) or unconstrained;
//! - `items`, `prefixItems` and nested schemas recursively; `oneOf`/`anyOf`: each writer branch
//!   read by a reader branch; local `$ref`s (`#/...`) are followed.
//!
//! Any other validation keyword (`allOf`, `not`, `if`, `patternProperties`, ...) that differs is
//! reported incompatible, naming it; keywords JSON Schema does not define validate nothing.

use std::sync::LazyLock;

use serde_json::{Map, Value};

pub use super::Incompatibility;

static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// Keywords that change no document's validity.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "default",
    "examples",
    "$id",
    "id",
    "$schema",
    "$defs",
    "definitions",
    "readOnly",
    "writeOnly",
    "deprecated",
    "contentMediaType",
    "contentEncoding",
];

/// Validation keywords not compared by meaning: a change to one is reported incompatible.
const OTHER_ASSERTIONS: &[&str] = &[
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
];

/// Every reason `reader` does not accept all that `writer` accepts (empty: it does).
pub fn can_read(reader: &Value, writer: &Value) -> Vec<Incompatibility> {
    let mut c = Checker {
        rroot: reader,
        wroot: writer,
        out: Vec::new(),
        depth: 0,
    };
    c.check(reader, writer, "#");
    c.out
}

struct Checker<'a> {
    rroot: &'a Value,
    wroot: &'a Value,
    out: Vec<Incompatibility>,
    depth: usize,
}

fn types(s: &Map<String, Value>) -> Option<Vec<String>> {
    match s.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// A schema that accepts every document.
fn accepts_all(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    let mut s = s;
    for _ in 0..32 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => {
                let pointer = r.trim_start_matches('#');
                match root.pointer(pointer) {
                    Some(t) => s = t,
                    None => return s,
                }
            }
            _ => return s,
        }
    }
    s
}

impl<'a> Checker<'a> {
    fn fail(&mut self, kind: &'static str, path: &str, message: String) {
        self.out.push(Incompatibility {
            kind,
            path: path.to_string(),
            message,
        });
    }

    fn reads(&mut self, reader: &'a Value, writer: &'a Value) -> bool {
        let saved = std::mem::take(&mut self.out);
        self.check(reader, writer, "#");
        let ok = self.out.is_empty();
        self.out = saved;
        ok
    }

    fn check(&mut self, reader: &'a Value, writer: &'a Value, path: &str) {
        if self.depth > 64 {
            return;
        }
        self.depth += 1;
        self.check_inner(reader, writer, path);
        self.depth -= 1;
    }

    fn check_inner(&mut self, reader: &'a Value, writer: &'a Value, path: &str) {
        let reader = resolve(self.rroot, reader);
        let writer = resolve(self.wroot, writer);
        if accepts_all(reader) || writer == &Value::Bool(false) {
            return;
        }
        let empty: &'a Map<String, Value> = &EMPTY;
        let r = match reader {
            Value::Object(m) => m,
            _ => {
                return self.fail(
                    "SCHEMA_NARROWED",
                    path,
                    "the new schema accepts no document".into(),
                );
            }
        };
        let w = match writer {
            Value::Object(m) => m,
            _ => empty,
        };

        // oneOf / anyOf: each writer branch is read by some reader branch.
        let rsum = r
            .get("oneOf")
            .or_else(|| r.get("anyOf"))
            .and_then(Value::as_array);
        let wsum = w
            .get("oneOf")
            .or_else(|| w.get("anyOf"))
            .and_then(Value::as_array);
        match (rsum, wsum) {
            (Some(rb), Some(wb)) => {
                for (i, b) in wb.iter().enumerate() {
                    if !rb.iter().any(|x| self.reads(x, b)) {
                        self.fail(
                            "SUM_TYPE_NARROWED",
                            &format!("{path}/oneOf/{i}"),
                            "no branch of the new schema accepts this branch of the old".into(),
                        );
                    }
                }
            }
            (Some(rb), None) => {
                if !rb.iter().any(|x| self.reads(x, writer)) {
                    self.fail(
                        "SUM_TYPE_NARROWED",
                        path,
                        "no branch of the new schema accepts the old schema".into(),
                    );
                }
            }
            (None, Some(wb)) => {
                for (i, b) in wb.iter().enumerate() {
                    if !self.reads(reader, b) {
                        self.fail(
                            "SUM_TYPE_NARROWED",
                            &format!("{path}/oneOf/{i}"),
                            "the new schema does not accept this branch of the old".into(),
                        );
                    }
                }
                return;
            }
            (None, None) => {}
        }

        // type
        match (types(r), types(w)) {
            (Some(rt), Some(wt)) => {
                for t in &wt {
                    let ok = rt.contains(t) || (t == "integer" && rt.iter().any(|x| x == "number"));
                    if !ok {
                        let kind = if wt.len() > 1 || rt.len() > 1 {
                            "SUM_TYPE_NARROWED"
                        } else if t == "number" && rt.iter().any(|x| x == "integer") {
                            "TYPE_NARROWED"
                        } else {
                            "TYPE_CHANGED"
                        };
                        self.fail(
                            kind,
                            &format!("{path}/type"),
                            format!(
                                "the new schema does not accept type {t} (it accepts {})",
                                rt.join(", ")
                            ),
                        );
                    }
                }
            }
            (Some(rt), None) if rsum.is_none() => self.fail(
                "TYPE_NARROWED",
                &format!("{path}/type"),
                format!("the new schema restricts the type to {}", rt.join(", ")),
            ),
            _ => {}
        }

        // enum / const
        for kw in ["enum", "const"] {
            let Some(rv) = r.get(kw) else { continue };
            let rset: Vec<&Value> = match rv {
                Value::Array(a) if kw == "enum" => a.iter().collect(),
                v => vec![v],
            };
            let wset: Option<Vec<&Value>> = w
                .get("enum")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .or_else(|| w.get("const").map(|v| vec![v]));
            match wset {
                None => self.fail(
                    if kw == "enum" {
                        "ENUM_ARRAY_NARROWED"
                    } else {
                        "CONST_ADDED"
                    },
                    &format!("{path}/{kw}"),
                    format!("the new schema adds `{kw}`, so earlier values may fail it"),
                ),
                Some(ws) => {
                    let missing: Vec<String> = ws
                        .iter()
                        .filter(|v| !rset.contains(v))
                        .map(|v| v.to_string())
                        .collect();
                    if !missing.is_empty() {
                        self.fail(
                            "ENUM_ARRAY_NARROWED",
                            &format!("{path}/{kw}"),
                            format!("the new schema drops {}", missing.join(", ")),
                        );
                    }
                }
            }
        }

        // bounds: a lower bound may only go down, an upper bound only up
        for (kw, lower, kind_add, kind_change) in [
            ("minimum", true, "MINIMUM_ADDED", "MINIMUM_INCREASED"),
            (
                "exclusiveMinimum",
                true,
                "EXCLUSIVE_MINIMUM_ADDED",
                "EXCLUSIVE_MINIMUM_INCREASED",
            ),
            (
                "minLength",
                true,
                "MIN_LENGTH_ADDED",
                "MIN_LENGTH_INCREASED",
            ),
            ("minItems", true, "MIN_ITEMS_ADDED", "MIN_ITEMS_INCREASED"),
            (
                "minProperties",
                true,
                "MIN_PROPERTIES_ADDED",
                "MIN_PROPERTIES_INCREASED",
            ),
            ("maximum", false, "MAXIMUM_ADDED", "MAXIMUM_DECREASED"),
            (
                "exclusiveMaximum",
                false,
                "EXCLUSIVE_MAXIMUM_ADDED",
                "EXCLUSIVE_MAXIMUM_DECREASED",
            ),
            (
                "maxLength",
                false,
                "MAX_LENGTH_ADDED",
                "MAX_LENGTH_DECREASED",
            ),
            ("maxItems", false, "MAX_ITEMS_ADDED", "MAX_ITEMS_DECREASED"),
            (
                "maxProperties",
                false,
                "MAX_PROPERTIES_ADDED",
                "MAX_PROPERTIES_DECREASED",
            ),
        ] {
            let Some(rv) = r.get(kw).and_then(Value::as_f64) else {
                continue;
            };
            match w.get(kw).and_then(Value::as_f64) {
                None => self.fail(
                    kind_add,
                    &format!("{path}/{kw}"),
                    format!("the new schema adds {kw} {rv}"),
                ),
                Some(wv) => {
                    let stricter = if lower { rv > wv } else { rv < wv };
                    if stricter {
                        self.fail(
                            kind_change,
                            &format!("{path}/{kw}"),
                            format!("{kw} goes from {wv} to {rv}"),
                        );
                    }
                }
            }
        }
        if let Some(rv) = r.get("multipleOf").and_then(Value::as_f64) {
            let ok = w
                .get("multipleOf")
                .and_then(Value::as_f64)
                .is_some_and(|wv| rv != 0.0 && (wv / rv).fract().abs() < 1e-9);
            if !ok {
                self.fail(
                    "MULTIPLE_OF_CHANGED",
                    &format!("{path}/multipleOf"),
                    format!("the new schema requires a multiple of {rv}"),
                );
            }
        }
        for kw in ["pattern", "format"] {
            if let Some(rv) = r.get(kw)
                && w.get(kw) != Some(rv)
            {
                self.fail(
                    if kw == "pattern" {
                        "PATTERN_CHANGED"
                    } else {
                        "FORMAT_CHANGED"
                    },
                    &format!("{path}/{kw}"),
                    format!("{kw} {rv} is new or changed"),
                );
            }
        }

        // required
        let rprops = r.get("properties").and_then(Value::as_object);
        let wprops = w.get("properties").and_then(Value::as_object);
        let wreq: Vec<&str> = w
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(rreq) = r.get("required").and_then(Value::as_array) {
            for p in rreq.iter().filter_map(Value::as_str) {
                if wreq.contains(&p) {
                    continue;
                }
                let has_default = rprops
                    .and_then(|m| m.get(p))
                    .map(|s| resolve(self.rroot, s))
                    .is_some_and(|s| s.get("default").is_some());
                if !has_default {
                    self.fail(
                        "REQUIRED_ATTRIBUTE_ADDED",
                        &format!("{path}/required"),
                        format!("property '{p}' is newly required"),
                    );
                }
            }
        }

        // properties against the content models
        let raddl = r.get("additionalProperties");
        let waddl = w.get("additionalProperties");
        let closed = |a: Option<&Value>| a == Some(&Value::Bool(false));
        let rp = rprops.unwrap_or(empty);
        let wp = wprops.unwrap_or(empty);
        for (p, ws) in wp {
            let at = format!("{path}/properties/{p}");
            match rp.get(p) {
                Some(rs) => self.check(rs, ws, &at),
                None => match raddl {
                    Some(Value::Bool(false)) => self.fail(
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                        &at,
                        format!(
                            "property '{p}' is gone and the new schema allows no other properties"
                        ),
                    ),
                    Some(a @ Value::Object(_)) if !self.reads(a, ws) => {
                        self.fail(
                                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                                &at,
                                format!(
                                    "property '{p}' is gone and the new additionalProperties does not accept its values"
                                ),
                            );
                    }
                    _ => {}
                },
            }
        }
        for (p, rs) in rp {
            if wp.contains_key(p) {
                continue;
            }
            let at = format!("{path}/properties/{p}");
            match waddl {
                Some(Value::Bool(false)) => {}
                Some(a @ Value::Object(_)) => {
                    if !self.reads(rs, a) {
                        self.fail(
                            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            &at,
                            format!(
                                "property '{p}' is new and the old additionalProperties allowed values it does not accept"
                            ),
                        );
                    }
                }
                _ => {
                    let is_object = types(w).is_none_or(|t| t.iter().any(|x| x == "object"));
                    if is_object && !accepts_all(resolve(self.rroot, rs)) {
                        self.fail(
                            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                            &at,
                            format!(
                                "property '{p}' is new, and the old schema allowed any value under that name"
                            ),
                        );
                    }
                }
            }
        }
        match (raddl, waddl) {
            (Some(Value::Bool(false)), wa) if !closed(wa) => self.fail(
                "ADDITIONAL_PROPERTIES_REMOVED",
                &format!("{path}/additionalProperties"),
                "the new schema allows no additional properties".into(),
            ),
            (Some(ra @ Value::Object(_)), Some(wa @ Value::Object(_))) => {
                self.check(ra, wa, &format!("{path}/additionalProperties"))
            }
            (Some(ra @ Value::Object(_)), wa) if !closed(wa) && !accepts_all(ra) => self.fail(
                "ADDITIONAL_PROPERTIES_NARROWED",
                &format!("{path}/additionalProperties"),
                "the new schema constrains additional properties".into(),
            ),
            _ => {}
        }

        // items
        let ritems = r.get("prefixItems").or_else(|| r.get("items"));
        let witems = w.get("prefixItems").or_else(|| w.get("items"));
        match (ritems, witems) {
            (Some(Value::Array(ra)), Some(Value::Array(wa))) => {
                for (i, rs) in ra.iter().enumerate() {
                    match wa.get(i) {
                        Some(ws) => self.check(rs, ws, &format!("{path}/items/{i}")),
                        None if !accepts_all(rs) => self.fail(
                            "ITEM_ADDED",
                            &format!("{path}/items/{i}"),
                            "a tuple position is added".into(),
                        ),
                        None => {}
                    }
                }
            }
            (Some(ri @ Value::Object(_)), Some(wi @ Value::Object(_))) => {
                self.check(ri, wi, &format!("{path}/items"))
            }
            (Some(ri), None) if !accepts_all(ri) => self.fail(
                "SCHEMA_ADDED",
                &format!("{path}/items"),
                "the new schema constrains the array's items".into(),
            ),
            (Some(ri), Some(wi)) if ri != wi => self.fail(
                "ITEMS_CHANGED",
                &format!("{path}/items"),
                "the items' schema changed between a list and a tuple".into(),
            ),
            _ => {}
        }

        // any other validation keyword that differs (unknown keywords validate nothing)
        for (k, rv) in r {
            if !OTHER_ASSERTIONS.contains(&k.as_str()) {
                continue;
            }
            if w.get(k) != Some(rv) {
                self.fail(
                    "KEYWORD_CHANGED",
                    &format!("{path}/{k}"),
                    format!("keyword '{k}' is new or changed; only the keywords Strata knows are compared by meaning"),
                );
            }
        }
    }
}
