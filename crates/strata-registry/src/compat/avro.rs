//! Avro schema resolution, checked ahead of time: can data written with `writer` be read with
//! `reader`? The rules are the Avro specification's "Schema Resolution", as Apache Avro's Java
//! `SchemaCompatibility` (which Confluent's registry uses) applies them:
//!
//! - records match by unqualified name or a reader alias; each reader field takes the writer
//!   field of its name or of one of its aliases, and a reader field the writer lacks needs a
//!   default; writer fields the reader lacks are skipped;
//! - promotions: int to long, float or double; long to float or double; float to double;
//!   string to bytes and bytes to string;
//! - a writer union is readable when each of its branches is; a reader union reads a writer
//!   type when one of its branches does;
//! - enums: every writer symbol is a reader symbol, unless the reader enum has a default;
//! - fixed: same name and size; arrays and maps compare their items and values;
//! - logical types are read as their underlying type; doc, order and default values play no part.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;

pub use super::Incompatibility;
use apache_avro::schema::{Name, RecordSchema};

/// The named types of a schema (records, enums, fixed) by full name, so references resolve.
#[derive(Default)]
pub struct Names<'a>(HashMap<String, &'a Schema>);

impl<'a> Names<'a> {
    pub fn of(schemas: impl IntoIterator<Item = &'a Schema>) -> Self {
        let mut n = Names::default();
        for s in schemas {
            n.collect(s);
        }
        n
    }

    fn collect(&mut self, s: &'a Schema) {
        match s {
            Schema::Record(r) if self.0.insert(r.name.fullname(None), s).is_none() => {
                for f in &r.fields {
                    self.collect(&f.schema);
                }
            }
            Schema::Enum(e) => {
                self.0.insert(e.name.fullname(None), s);
            }
            Schema::Fixed(f) => {
                self.0.insert(f.name.fullname(None), s);
            }
            Schema::Array(a) => self.collect(&a.items),
            Schema::Map(m) => self.collect(&m.types),
            Schema::Union(u) => {
                for v in u.variants() {
                    self.collect(v);
                }
            }
            Schema::Decimal(d) => self.collect(&d.inner),
            _ => {}
        }
    }

    fn resolve(&self, s: &'a Schema) -> &'a Schema {
        match s {
            Schema::Ref { name } => self.0.get(&name.fullname(None)).copied().unwrap_or(s),
            _ => s,
        }
    }

    /// `s`, or the named type it refers to.
    pub fn resolve_ref<'s>(&'s self, s: &'s Schema) -> &'s Schema
    where
        'a: 's,
    {
        match s {
            Schema::Ref { name } => self.0.get(&name.fullname(None)).copied().unwrap_or(s),
            _ => s,
        }
    }
}

/// The type a schema is read as: logical types by their underlying type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Base {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
    Other,
}

fn base(s: &Schema) -> Base {
    match s {
        Schema::Null => Base::Null,
        Schema::Boolean => Base::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Base::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Base::Long,
        Schema::Float => Base::Float,
        Schema::Double => Base::Double,
        Schema::Bytes | Schema::BigDecimal => Base::Bytes,
        Schema::String | Schema::Uuid => Base::String,
        Schema::Array(_) => Base::Array,
        Schema::Map(_) => Base::Map,
        Schema::Union(_) => Base::Union,
        Schema::Record(_) => Base::Record,
        Schema::Enum(_) => Base::Enum,
        Schema::Fixed(_) | Schema::Duration => Base::Fixed,
        Schema::Decimal(d) => base(&d.inner),
        Schema::Ref { .. } => Base::Other,
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Decimal(d) => format!("decimal over {}", type_name(&d.inner)),
        other => format!("{:?}", base(other)).to_lowercase(),
    }
}

/// Every reason the reader cannot read the writer's data (empty: it can).
pub fn can_read<'a>(
    reader: &'a Schema,
    reader_names: &Names<'a>,
    writer: &'a Schema,
    writer_names: &Names<'a>,
) -> Vec<Incompatibility> {
    let mut c = Checker {
        r: reader_names,
        w: writer_names,
        assumed: HashSet::new(),
        out: Vec::new(),
    };
    c.check(reader, writer, "/");
    c.out
}

struct Checker<'n, 'a> {
    r: &'n Names<'a>,
    w: &'n Names<'a>,
    /// Record pairs being compared (recursive types are assumed compatible while in progress).
    assumed: HashSet<(String, String)>,
    out: Vec<Incompatibility>,
}

fn join(path: &str, part: &str) -> String {
    if path == "/" {
        format!("/{part}")
    } else {
        format!("{path}/{part}")
    }
}

fn unqualified(n: &Name) -> &str {
    &n.name
}

/// Avro's name check: the same unqualified name, or the writer's full name among the reader's
/// aliases.
fn names_match(
    reader: &Name,
    reader_aliases: Option<&Vec<apache_avro::schema::Alias>>,
    writer: &Name,
) -> bool {
    if unqualified(reader) == unqualified(writer) {
        return true;
    }
    let wfull = writer.fullname(None);
    reader_aliases.is_some_and(|aliases| {
        aliases.iter().any(|a| {
            let full = a.fullname(reader.namespace.clone());
            full == wfull || a.name() == unqualified(writer)
        })
    })
}

impl<'a> Checker<'_, 'a> {
    fn fail(&mut self, kind: &'static str, path: &str, message: String) {
        self.out.push(Incompatibility {
            kind,
            path: path.to_string(),
            message,
        });
    }

    /// Whether `reader` reads `writer`, without recording why not.
    fn reads(&mut self, reader: &'a Schema, writer: &'a Schema) -> bool {
        let saved = std::mem::take(&mut self.out);
        self.check(reader, writer, "/");
        let ok = self.out.is_empty();
        self.out = saved;
        ok
    }

    fn check(&mut self, reader: &'a Schema, writer: &'a Schema, path: &str) {
        let reader = self.r.resolve(reader);
        let writer = self.w.resolve(writer);
        // A writer union: every branch must be readable.
        if let Schema::Union(wu) = writer {
            if let Schema::Union(_) = reader {
                for (i, b) in wu.variants().iter().enumerate() {
                    if !self.reads(reader, b) {
                        self.fail(
                            "MISSING_UNION_BRANCH",
                            &join(path, &i.to_string()),
                            format!(
                                "the reader's union has no branch for the writer's {}",
                                type_name(self.w.resolve(b))
                            ),
                        );
                    }
                }
            } else {
                for b in wu.variants() {
                    if !self.reads(reader, b) {
                        self.fail(
                            "TYPE_MISMATCH",
                            path,
                            format!(
                                "the reader's {} cannot read the writer's union branch {}",
                                type_name(reader),
                                type_name(self.w.resolve(b))
                            ),
                        );
                    }
                }
            }
            return;
        }
        let (rb, wb) = (base(reader), base(writer));
        match rb {
            Base::Union => {
                let Schema::Union(ru) = reader else {
                    unreachable!("base Union is a union")
                };
                if !ru.variants().iter().any(|b| self.reads(b, writer)) {
                    self.fail(
                        "MISSING_UNION_BRANCH",
                        path,
                        format!(
                            "the reader's union has no branch that reads the writer's {}",
                            type_name(writer)
                        ),
                    );
                }
            }
            Base::Null
            | Base::Boolean
            | Base::Int
            | Base::Long
            | Base::Float
            | Base::Double
            | Base::Bytes
            | Base::String => {
                let promoted = match rb {
                    Base::Long => wb == Base::Int,
                    Base::Float => matches!(wb, Base::Int | Base::Long),
                    Base::Double => matches!(wb, Base::Int | Base::Long | Base::Float),
                    Base::String => wb == Base::Bytes,
                    Base::Bytes => wb == Base::String,
                    _ => false,
                };
                if rb != wb && !promoted {
                    self.mismatch(reader, writer, path);
                }
            }
            Base::Array => match (reader, writer) {
                (Schema::Array(r), Schema::Array(w)) => {
                    self.check(&r.items, &w.items, &join(path, "items"))
                }
                _ => self.mismatch(reader, writer, path),
            },
            Base::Map => match (reader, writer) {
                (Schema::Map(r), Schema::Map(w)) => {
                    self.check(&r.types, &w.types, &join(path, "values"))
                }
                _ => self.mismatch(reader, writer, path),
            },
            Base::Fixed => {
                let (rf, wf) = match (fixed(reader), fixed(writer)) {
                    (Some(r), Some(w)) => (r, w),
                    _ => return self.mismatch(reader, writer, path),
                };
                if !names_match(rf.0, rf.1, wf.0) {
                    self.name_mismatch(path, wf.0, rf.0);
                } else if rf.2 != wf.2 {
                    self.fail(
                        "FIXED_SIZE_MISMATCH",
                        &join(path, "size"),
                        format!("expected {}, found {}", wf.2, rf.2),
                    );
                }
            }
            Base::Enum => {
                let (Schema::Enum(r), Schema::Enum(w)) = (reader, writer) else {
                    return self.mismatch(reader, writer, path);
                };
                if !names_match(&r.name, r.aliases.as_ref(), &w.name) {
                    self.name_mismatch(path, &w.name, &r.name);
                    return;
                }
                if r.default.is_none() {
                    let missing: Vec<&str> = w
                        .symbols
                        .iter()
                        .filter(|s| !r.symbols.contains(s))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        self.fail(
                            "MISSING_ENUM_SYMBOLS",
                            &join(path, "symbols"),
                            format!(
                                "the reader's enum {} lacks {} and has no default",
                                r.name.fullname(None),
                                missing.join(", ")
                            ),
                        );
                    }
                }
            }
            Base::Record => {
                let (Schema::Record(r), Schema::Record(w)) = (reader, writer) else {
                    return self.mismatch(reader, writer, path);
                };
                self.record(r, w, path);
            }
            Base::Other => self.mismatch(reader, writer, path),
        }
    }

    fn name_mismatch(&mut self, path: &str, writer: &Name, reader: &Name) {
        self.fail(
            "NAME_MISMATCH",
            &join(path, "name"),
            format!(
                "expected {}, found {}",
                writer.fullname(None),
                reader.fullname(None)
            ),
        );
    }

    fn mismatch(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        self.fail(
            "TYPE_MISMATCH",
            path,
            format!(
                "the reader's {} cannot read the writer's {}",
                type_name(reader),
                type_name(writer)
            ),
        );
    }

    fn record(&mut self, r: &'a RecordSchema, w: &'a RecordSchema, path: &str) {
        if !names_match(&r.name, r.aliases.as_ref(), &w.name) {
            self.name_mismatch(path, &w.name, &r.name);
            return;
        }
        let key = (r.name.fullname(None), w.name.fullname(None));
        if !self.assumed.insert(key.clone()) {
            return;
        }
        for (i, rf) in r.fields.iter().enumerate() {
            let at = join(path, &format!("fields/{i}"));
            let wf = w.fields.iter().find(|wf| wf.name == rf.name).or_else(|| {
                rf.aliases
                    .as_ref()
                    .and_then(|aliases| w.fields.iter().find(|wf| aliases.contains(&wf.name)))
            });
            match wf {
                Some(wf) => self.check(&rf.schema, &wf.schema, &join(&at, "type")),
                None if rf.default.is_none() => self.fail(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    &at,
                    format!(
                        "field '{}' of record {} has no default value and the writer has no such field",
                        rf.name,
                        r.name.fullname(None)
                    ),
                ),
                None => {}
            }
        }
        self.assumed.remove(&key);
    }
}

type FixedView<'s> = (&'s Name, Option<&'s Vec<apache_avro::schema::Alias>>, usize);

fn fixed(s: &Schema) -> Option<FixedView<'_>> {
    match s {
        Schema::Fixed(f) => Some((&f.name, f.aliases.as_ref(), f.size)),
        Schema::Decimal(d) => fixed(&d.inner),
        _ => None,
    }
}
