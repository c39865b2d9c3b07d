//! The compatibility table: cases taken from Apache Avro's, Confluent's and Karapace's own test
//! suites (each case names its source file and test), run through Strata's checks.

use serde_json::Value;
use strata_registry::compat::{Level, check};
use strata_registry::schema::{Parsed, SchemaKind, parse};

struct Case {
    name: String,
    source: String,
    history: Vec<Value>,
    new: Value,
    level: Level,
    compatible: bool,
}

fn cases(file: &str) -> Vec<Case> {
    let path = crate::manifest_dir().join("tests/compat").join(file);
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    all.into_iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().into(),
            source: c["source"].as_str().unwrap().into(),
            history: c["history"].as_array().unwrap().clone(),
            new: c["new"].clone(),
            level: c["level"].as_str().unwrap().parse().unwrap(),
            compatible: c["compatible"].as_bool().unwrap(),
        })
        .collect()
}

fn parsed(kind: SchemaKind, v: &Value) -> Parsed {
    parse(kind, &v.to_string(), &[]).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn verdict(kind: SchemaKind, c: &Case, level: Level) -> (bool, Vec<String>) {
    let history: Vec<Parsed> = c.history.iter().map(|h| parsed(kind, h)).collect();
    let numbered: Vec<(i64, &Parsed)> = history
        .iter()
        .enumerate()
        .map(|(i, p)| (i as i64 + 1, p))
        .collect();
    let new = parsed(kind, &c.new);
    let msgs = check(level, &new, &numbered);
    (msgs.is_empty(), msgs)
}

fn run_table(kind: SchemaKind, file: &str, at_least: usize) {
    let cases = cases(file);
    assert!(cases.len() >= at_least, "{file}: {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let (ok, msgs) = verdict(kind, c, c.level);
        if ok != c.compatible {
            wrong.push(format!(
                "{} ({}, expected {}): got {} {:?}\n    source: {}",
                c.name,
                c.level,
                if c.compatible {
                    "compatible"
                } else {
                    "incompatible"
                },
                if ok { "compatible" } else { "incompatible" },
                msgs,
                c.source
            ));
        }
        // an incompatible verdict always says why
        assert!(ok || !msgs.is_empty(), "{}", c.name);
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn avro_compatibility_table() {
    run_table(SchemaKind::Avro, "avro_cases.json", 40);
}

#[test]
fn json_schema_compatibility_table() {
    run_table(SchemaKind::Json, "json_cases.json", 20);
}

/// A transitive level implies its plain one: whatever passes BACKWARD_TRANSITIVE passes
/// BACKWARD (and so on), over every case of both tables.
#[test]
fn a_transitive_level_implies_its_plain_one() {
    let pairs = [
        (Level::BackwardTransitive, Level::Backward),
        (Level::ForwardTransitive, Level::Forward),
        (Level::FullTransitive, Level::Full),
    ];
    for (kind, file) in [
        (SchemaKind::Avro, "avro_cases.json"),
        (SchemaKind::Json, "json_cases.json"),
    ] {
        for c in cases(file) {
            for (t, plain) in pairs {
                let (tok, _) = verdict(kind, &c, t);
                let (pok, _) = verdict(kind, &c, plain);
                assert!(!tok || pok, "{}: {t} passes but {plain} fails", c.name);
            }
            // FULL implies BACKWARD and FORWARD
            let (full, _) = verdict(kind, &c, Level::Full);
            if full {
                assert!(verdict(kind, &c, Level::Backward).0, "{}", c.name);
                assert!(verdict(kind, &c, Level::Forward).0, "{}", c.name);
            }
        }
    }
}
