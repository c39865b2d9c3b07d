//! The schema registry: `strata serve` against the unmodified confluent-kafka Python client,
//! plain HTTP for the error codes, restarts, concurrent registrations, auth off loopback,
//! import from another registry, and the `strata registry` commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{fails, lakehouse, ok, py, strata, strata_bin, text};

/// A running `strata serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(strata_bin());
        cmd.arg("--lakehouse")
            .arg(dir)
            .arg("serve")
            .args(["--port", "0"])
            .args(extra)
            .env_remove("STRATA_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("strata serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut port = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                port = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
                break;
            }
        }
        let port = port.unwrap_or_else(|| {
            let status = child.wait().unwrap();
            panic!("strata serve did not start ({status})")
        });
        // keep draining stderr so the server never blocks on it
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 request; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // a server may answer (413) before reading a large body
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no HTTP response: {text}"))
        .parse()
        .unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let mut rest = out[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        rest = unchunk(&rest);
    }
    (status, rest)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}

/// A JSON request with the registry's content type; returns (status, JSON body).
pub fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let (status, out) = http(
        port,
        method,
        path,
        &[("Content-Type", "application/vnd.schemaregistry.v1+json")],
        bytes.as_deref(),
    );
    let v = serde_json::from_slice(&out).unwrap_or(Value::Null);
    (status, v)
}

fn avro_record(name: &str, fields: Value) -> String {
    json!({"type": "record", "name": name, "fields": fields}).to_string()
}

fn user_v1() -> String {
    avro_record(
        "User",
        json!([{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]),
    )
}

fn user_v2() -> String {
    avro_record(
        "User",
        json!([{"name": "id", "type": "long"}, {"name": "name", "type": "string"},
               {"name": "email", "type": ["null", "string"], "default": null}]),
    )
}

fn user_v3_bad() -> String {
    avro_record(
        "User",
        json!([{"name": "id", "type": "long"}, {"name": "name", "type": "string"},
               {"name": "age", "type": "int"}]),
    )
}

/// The unmodified confluent-kafka client: a fresh SchemaRegistryClient per step (it caches).
const CLIENT: &str = r#"
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

url, v1, v2, v3 = sys.argv[1:5]
def client():
    return SchemaRegistryClient({"url": url})

out = {}
out["id1"] = client().register_schema("users-value", Schema(v1, "AVRO"))
out["id1_again"] = client().register_schema("users-value", Schema(v1, "AVRO"))
out["id1_other_subject"] = client().register_schema("people-value", Schema(v1, "AVRO"))
latest = client().get_latest_version("users-value")
out["latest"] = [latest.schema_id, latest.version, latest.subject, json.loads(latest.schema.schema_str)]
by_id = client().get_schema(out["id1"])
out["by_id"] = [by_id.schema_type, json.loads(by_id.schema_str)]
out["compat_v2"] = client().test_compatibility("users-value", Schema(v2, "AVRO"))
out["compat_v3"] = client().test_compatibility("users-value", Schema(v3, "AVRO"))
out["id2"] = client().register_schema("users-value", Schema(v2, "AVRO"))
try:
    client().register_schema("users-value", Schema(v3, "AVRO"))
    out["register_v3"] = "accepted"
except SchemaRegistryError as e:
    out["register_v3"] = [e.http_status_code, e.error_code, e.error_message]
out["global_level"] = client().get_compatibility()
client().set_compatibility(subject_name="users-value", level="FULL")
out["subject_level"] = client().get_compatibility("users-value")
out["versions"] = client().get_versions("users-value")
out["deleted_version"] = client().delete_version("users-value", 2)
out["versions_after"] = client().get_versions("users-value")
# a soft-deleted version's id still resolves
out["id2_resolves"] = json.loads(client().get_schema(out["id2"]).schema_str)["name"]
out["soft"] = client().delete_subject("people-value")
out["subjects_after_soft"] = client().get_subjects()
out["hard"] = client().delete_subject("people-value", permanent=True)
try:
    client().get_latest_version("people-value")
    out["people_after_hard"] = "found"
except SchemaRegistryError as e:
    out["people_after_hard"] = [e.http_status_code, e.error_code]
# ids are never reused: a new schema after a hard delete gets a higher id
v4 = json.loads(v2); v4["name"] = "Account"
out["id_after_delete"] = client().register_schema("accounts-value", Schema(json.dumps(v4), "AVRO"))
lookup = client().lookup_schema("users-value", Schema(v1, "AVRO"))
out["lookup"] = [lookup.schema_id, lookup.version]
print(json.dumps(out))
"#;

#[test]
fn the_confluent_client_registers_reads_tests_configures_and_deletes() {
    let (_t, dir) = lakehouse();
    let server = Server::start(&dir, &[], &[]);
    let out = py(
        CLIENT,
        &[&server.url(), &user_v1(), &user_v2(), &user_v3_bad()],
    );
    let id1 = out["id1"].as_i64().unwrap();
    assert_eq!(out["id1_again"], id1, "{out}");
    assert_eq!(out["id1_other_subject"], id1, "same schema, same id: {out}");
    assert_eq!(out["latest"][0], id1);
    assert_eq!(out["latest"][1], 1);
    assert_eq!(out["latest"][2], "users-value");
    assert_eq!(out["latest"][3]["name"], "User");
    assert_eq!(out["by_id"][0], "AVRO");
    assert_eq!(out["compat_v2"], true, "{out}");
    assert_eq!(out["compat_v3"], false, "{out}");
    let id2 = out["id2"].as_i64().unwrap();
    assert!(id2 > id1);
    assert_eq!(out["register_v3"][0], 409, "{out}");
    assert_eq!(out["register_v3"][1], 409);
    let msg = out["register_v3"][2].as_str().unwrap();
    assert!(
        msg.contains("READER_FIELD_MISSING_DEFAULT_VALUE") && msg.contains("age"),
        "{msg}"
    );
    assert_eq!(out["global_level"], "BACKWARD");
    assert_eq!(out["subject_level"], "FULL");
    assert_eq!(out["versions"], json!([1, 2]));
    assert_eq!(out["deleted_version"], 2);
    assert_eq!(out["versions_after"], json!([1]));
    assert_eq!(out["id2_resolves"], "User");
    assert_eq!(out["soft"], json!([1]));
    assert_eq!(out["subjects_after_soft"], json!(["users-value"]));
    assert_eq!(out["hard"], json!([1]));
    assert_eq!(out["people_after_hard"], json!([404, 40401]));
    assert!(out["id_after_delete"].as_i64().unwrap() > id2, "{out}");
    assert_eq!(out["lookup"], json!([id1, 1]));
    assert!(server.stop().success());
}

#[test]
fn bad_input_gets_the_documented_status_and_code_and_changes_nothing() {
    let (_t, dir) = lakehouse();
    let server = Server::start(&dir, &[], &[("STRATA_MAX_BODY_BYTES", "65536")]);
    let p = server.port;
    let (s, _) = call(
        p,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": user_v1()})),
    );
    assert_eq!(s, 200);
    let cases: Vec<(&str, &str, Option<Value>, u16, u32)> = vec![
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "{\"type\": \"record\""})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "{\"type\": \"recrod\", \"name\": \"X\", \"fields\": []}"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": user_v1(), "schemaType": "XML"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(
                json!({"schema": user_v1(), "references": [{"name": "X", "subject": "missing", "version": 1}]}),
            ),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(
                json!({"schema": "{\"type\": \"object\", \"minimum\": \"x\"}", "schemaType": "JSON"}),
            ),
            422,
            42201,
        ),
        ("GET", "/subjects/s/versions/0", None, 422, 42202),
        ("GET", "/subjects/s/versions/abc", None, 422, 42202),
        ("GET", "/subjects/s/versions/7", None, 404, 40402),
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/schemas/ids/999", None, 404, 40403),
        (
            "PUT",
            "/config",
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
        (
            "PUT",
            "/mode",
            Some(json!({"mode": "WRITEONLY"})),
            422,
            42204,
        ),
        ("DELETE", "/subjects/s?permanent=true", None, 404, 40405),
    ];
    for (method, path, body, status, code) in cases {
        let (s, v) = call(p, method, path, body.clone());
        assert_eq!(
            (s, v["error_code"].as_u64()),
            (status, Some(code as u64)),
            "{method} {path} {body:?}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let (_, v) = call(
        p,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": "x", "schemaType": "PROTOBUF"})),
    );
    assert!(v["message"].as_str().unwrap().contains("PROTOBUF"), "{v}");
    // a body that is not JSON
    let (s, body) = http(
        p,
        "POST",
        "/subjects/s/versions",
        &[("Content-Type", "application/json")],
        Some(b"not json"),
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((s, v["error_code"].as_u64()), (400, Some(400)), "{v}");
    // an oversized body
    let big = format!("{{\"schema\": \"{}\"}}", "x".repeat(100_000));
    let (s, body) = http(
        p,
        "POST",
        "/subjects/s/versions",
        &[("Content-Type", "application/json")],
        Some(big.as_bytes()),
    );
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&body));
    // nothing changed
    assert_eq!(call(p, "GET", "/subjects", None).1, json!(["s"]));
    assert_eq!(call(p, "GET", "/subjects/s/versions", None).1, json!([1]));
    assert_eq!(
        call(p, "GET", "/config", None).1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
}

#[test]
fn state_survives_a_restart_and_concurrent_registrations_get_one_id() {
    let (_t, dir) = lakehouse();
    let server = Server::start(&dir, &[], &[]);
    let p = server.port;
    let (_, a) = call(
        p,
        "POST",
        "/subjects/a/versions",
        Some(json!({"schema": user_v1()})),
    );
    let (_, b) = call(
        p,
        "POST",
        "/subjects/a/versions",
        Some(json!({"schema": user_v2()})),
    );
    call(
        p,
        "PUT",
        "/config/a",
        Some(json!({"compatibility": "FORWARD"})),
    );
    call(p, "PUT", "/config", Some(json!({"compatibility": "FULL"})));
    // 8 concurrent registrations of one new schema under one subject: one id, one version
    let schema = avro_record("Order", json!([{"name": "n", "type": "long"}]));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let schema = schema.clone();
            std::thread::spawn(move || {
                call(
                    p,
                    "POST",
                    "/subjects/orders/versions",
                    Some(json!({"schema": schema})),
                )
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (s, v) in &results {
        assert_eq!(*s, 200, "{v}");
    }
    let ids: std::collections::BTreeSet<i64> = results
        .iter()
        .map(|(_, v)| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        call(p, "GET", "/subjects/orders/versions", None).1,
        json!([1])
    );
    // and 8 concurrent registrations of one schema under 8 subjects: still one id
    let other = avro_record("Invoice", json!([{"name": "n", "type": "long"}]));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let other = other.clone();
            std::thread::spawn(move || {
                call(
                    p,
                    "POST",
                    &format!("/subjects/inv-{i}/versions"),
                    Some(json!({"schema": other})),
                )
            })
        })
        .collect();
    let ids: std::collections::BTreeSet<i64> = handles
        .into_iter()
        .map(|h| h.join().unwrap().1["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let order_id = *ids.iter().next().unwrap();
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");

    let server = Server::start(&dir, &[], &[]);
    let p = server.port;
    let (_, v1) = call(p, "GET", "/subjects/a/versions/1", None);
    let (_, v2) = call(p, "GET", "/subjects/a/versions/latest", None);
    assert_eq!(v1["id"], a["id"]);
    assert_eq!(v2["id"], b["id"]);
    assert_eq!(v2["version"], 2);
    assert_eq!(
        call(p, "GET", "/config/a", None).1,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        call(p, "GET", "/config", None).1,
        json!({"compatibilityLevel": "FULL"})
    );
    let (_, s) = call(p, "GET", &format!("/schemas/ids/{order_id}/subjects"), None);
    assert_eq!(s.as_array().unwrap().len(), 8, "{s}");
    // ids stay monotone across deletes and restarts
    call(p, "DELETE", "/subjects/orders", None);
    call(p, "DELETE", "/subjects/orders?permanent=true", None);
    let (_, n) = call(
        p,
        "POST",
        "/subjects/new/versions",
        Some(json!({"schema": avro_record("Fresh", json!([]))})),
    );
    let max_before = [
        a["id"].as_i64().unwrap(),
        b["id"].as_i64().unwrap(),
        order_id,
    ]
    .into_iter()
    .max()
    .unwrap();
    assert!(n["id"].as_i64().unwrap() > max_before, "{n}");
}

#[test]
fn off_loopback_every_route_but_health_needs_the_token() {
    let (_t, dir) = lakehouse();
    // no token: refused
    let o = Command::new(strata_bin())
        .arg("--lakehouse")
        .arg(&dir)
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("STRATA_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("needs a token"), "{}", text(&o));

    let server = Server::start(&dir, &["--host", "0.0.0.0"], &[("STRATA_TOKEN", "s3cret")]);
    let p = server.port;
    let routes = [
        ("GET", "/subjects"),
        ("GET", "/config"),
        ("GET", "/mode"),
        ("GET", "/metrics"),
        ("GET", "/schemas/types"),
        ("GET", "/schemas/ids/1"),
        ("POST", "/subjects/x/versions"),
        ("GET", "/"),
    ];
    for (m, path) in routes {
        let (s, body) = http(p, m, path, &[], None);
        assert_eq!(s, 401, "{m} {path}: {}", String::from_utf8_lossy(&body));
        let (s, _) = http(p, m, path, &[("Authorization", "Bearer wrong")], None);
        assert_eq!(s, 401, "{m} {path} with a wrong token");
    }
    assert_eq!(http(p, "GET", "/health", &[], None).0, 200);
    assert_eq!(
        http(
            p,
            "GET",
            "/subjects",
            &[("Authorization", "Bearer s3cret")],
            None
        )
        .0,
        200
    );
    // HTTP Basic with the token as the password (any user name): "alice:s3cret"
    assert_eq!(
        http(
            p,
            "GET",
            "/subjects",
            &[("Authorization", "Basic YWxpY2U6czNjcmV0")],
            None
        )
        .0,
        200
    );
    // the confluent client with basic.auth.user.info
    let out = py(
        r#"
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema
c = SchemaRegistryClient({"url": sys.argv[1], "basic.auth.user.info": "alice:s3cret"})
i = c.register_schema("t-value", Schema(sys.argv[2], "AVRO"))
print(json.dumps({"id": i, "subjects": SchemaRegistryClient({"url": sys.argv[1], "basic.auth.user.info": "alice:s3cret"}).get_subjects()}))
"#,
        &[&format!("http://127.0.0.1:{p}"), &user_v1()],
    );
    assert_eq!(out["subjects"], json!(["t-value"]), "{out}");
    let (s, metrics) = http(
        p,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(s, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("strata_registry_subjects 1"), "{metrics}");
    assert!(
        metrics.contains("strata_http_requests_total{method=\"POST\",route=\"/subjects/{subject}/versions\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("status=\"401\""), "{metrics}");
}

#[test]
fn import_copies_another_registrys_subjects_with_their_ids() {
    let (_t, src) = lakehouse();
    let a = Server::start(&src, &[], &[]);
    let pa = a.port;
    // ids that are not 1..n: a deleted subject leaves a gap
    call(
        pa,
        "POST",
        "/subjects/gone/versions",
        Some(json!({"schema": avro_record("Gone", json!([]))})),
    );
    call(pa, "DELETE", "/subjects/gone", None);
    call(pa, "DELETE", "/subjects/gone?permanent=true", None);
    let (_, u1) = call(
        pa,
        "POST",
        "/subjects/users-value/versions",
        Some(json!({"schema": user_v1()})),
    );
    let (_, u2) = call(
        pa,
        "POST",
        "/subjects/users-value/versions",
        Some(json!({"schema": user_v2()})),
    );
    let (_, j1) = call(
        pa,
        "POST",
        "/subjects/events-value/versions",
        Some(
            json!({"schemaType": "JSON", "schema": json!({"type": "object", "properties": {"id": {"type": "integer"}}}).to_string()}),
        ),
    );
    call(
        pa,
        "PUT",
        "/config/users-value",
        Some(json!({"compatibility": "FULL"})),
    );

    let (_t2, dst) = lakehouse();
    let out = ok(&dst, &["registry", "import", &a.url()]);
    assert!(
        out.contains("imported 3 schema version(s) of 2 subject(s)"),
        "{out}"
    );
    let b = Server::start(&dst, &[], &[]);
    let got = py(
        r#"
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
def c(): return SchemaRegistryClient({"url": sys.argv[1]})
out = {}
for s in ["users-value", "events-value"]:
    out[s] = [[c().get_version(s, v).schema_id, v] for v in c().get_versions(s)]
out["by_id"] = c().get_schema(int(sys.argv[2])).schema_type
out["level"] = c().get_compatibility("users-value")
print(json.dumps(out))
"#,
        &[&b.url(), &j1["id"].to_string()],
    );
    assert_eq!(
        got["users-value"],
        json!([[u1["id"], 1], [u2["id"], 2]]),
        "{got}"
    );
    assert_eq!(got["events-value"], json!([[j1["id"], 1]]), "{got}");
    assert_eq!(got["by_id"], "JSON");
    assert_eq!(got["level"], "FULL");
    // a later registration in the copy gets an id above the imported ones
    let (_, n) = call(
        b.port,
        "POST",
        "/subjects/new/versions",
        Some(json!({"schema": avro_record("N", json!([]))})),
    );
    assert!(
        n["id"].as_i64().unwrap() > j1["id"].as_i64().unwrap(),
        "{n}"
    );
}

#[test]
fn the_registry_commands_work_on_the_lakehouse_directly() {
    let (t, dir) = lakehouse();
    let f1 = t.path().join("v1.avsc");
    let f2 = t.path().join("v2.avsc");
    let f3 = t.path().join("v3.avsc");
    std::fs::write(&f1, user_v1()).unwrap();
    std::fs::write(&f2, user_v2()).unwrap();
    std::fs::write(&f3, user_v3_bad()).unwrap();
    let f = |p: &Path| p.to_str().unwrap().to_string();
    let out = ok(&dir, &["registry", "register", "users-value", &f(&f1)]);
    assert!(
        out.contains("registered users-value version 1: id 1"),
        "{out}"
    );
    let out = ok(&dir, &["registry", "check", "users-value", &f(&f2)]);
    assert!(out.contains("compatible"), "{out}");
    let err = fails(&dir, &["registry", "check", "users-value", &f(&f3)]);
    assert!(
        err.contains("READER_FIELD_MISSING_DEFAULT_VALUE") && err.contains("'age'"),
        "{err}"
    );
    let err = fails(&dir, &["registry", "register", "users-value", &f(&f3)]);
    assert!(err.contains("incompatible with an earlier schema"), "{err}");
    ok(&dir, &["registry", "register", "users-value", &f(&f2)]);
    let out = ok(
        &dir,
        &["--format", "json", "registry", "versions", "users-value"],
    );
    assert!(out.contains("\"2\""), "{out}");
    let out = ok(
        &dir,
        &["--format", "json", "registry", "get", "users-value", "1"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(
        ok(&dir, &["registry", "config"]).trim(),
        "global: compatibility BACKWARD"
    );
    ok(&dir, &["registry", "config", "users-value", "NONE"]);
    assert!(ok(&dir, &["registry", "register", "users-value", &f(&f3)]).contains("version 3"));
    assert_eq!(
        ok(&dir, &["registry", "config", "users-value"]).trim(),
        "users-value: compatibility NONE"
    );
    let o = strata(&dir, &["registry", "config", "users-value", "SIDEWAYS"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("Invalid compatibility level"),
        "{}",
        text(&o)
    );
    let err = fails(&dir, &["registry", "delete", "users-value", "--permanent"]);
    assert!(err.contains("was not deleted first"), "{err}");
    assert!(ok(&dir, &["registry", "delete", "users-value", "3"]).contains("version 3 (soft)"));
    assert!(ok(&dir, &["registry", "delete", "users-value"]).contains("versions 1, 2"));
    assert!(
        ok(&dir, &["registry", "delete", "users-value", "--permanent"]).contains("permanently")
    );
    let err = fails(&dir, &["registry", "get", "users-value"]);
    assert!(err.contains("Subject 'users-value' not found."), "{err}");
    let err = fails(&dir, &["registry", "register", "x", "/no/such.avsc"]);
    assert!(err.contains("/no/such.avsc"), "{err}");
}

/// Writes `schema` to a file in `tmp`, registers it under `subject` with the CLI and binds it to
/// `table`; the bind command's output.
fn register_and_bind(dir: &Path, tmp: &Path, subject: &str, schema: &Value, table: &str) -> String {
    let file = tmp.join(format!("{subject}.avsc"));
    std::fs::write(&file, schema.to_string()).unwrap();
    ok(
        dir,
        &["registry", "register", subject, file.to_str().unwrap()],
    );
    ok(dir, &["contract", "bind", table, subject])
}

/// Writes `lines` to `data/file` and ingests the folder `data` into `table`.
fn ingest_lines(dir: &Path, data: &Path, file: &str, lines: &[&str], table: &str) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join(file), lines.join("\n")).unwrap();
    ok(dir, &["ingest", data.to_str().unwrap(), "--into", table]);
}

#[test]
fn a_contract_stops_every_non_conforming_record_before_bronze() {
    let (t, dir) = lakehouse();
    let schema = t.path().join("event.avsc");
    let out = register_and_bind(
        &dir,
        t.path(),
        "events-value",
        &json!({"type": "record", "name": "Event", "fields": [
            {"name": "id", "type": "long"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["view", "click"]}},
            {"name": "amount", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": null}
        ]}),
        "bronze.events",
    );
    assert!(
        out.contains("bound to events-value (version 1, 4 columns), violations quarantine"),
        "{out}"
    );
    let data = t.path().join("data");
    ingest_lines(
        &dir,
        &data,
        "a.ndjson",
        &[
            r#"{"id": 1, "kind": "view", "amount": 2.5}"#,
            r#"{"id": 2, "kind": "click", "amount": 3, "note": "n"}"#,
            r#"{"id": 3, "kind": "view"}"#,
            r#"{"id": "4", "kind": "view", "amount": 1.0}"#,
            r#"{"id": 5, "kind": "buy", "amount": 1.0, "coupon": "X"}"#,
            r#"{"id": 6, "kind": "#,
            r#"{"id": 7, "kind": "click", "amount": 0.5, "note": null}"#,
        ],
        "bronze.events",
    );
    let rows = crate::query(
        &dir,
        "SELECT id, kind, amount, note FROM bronze.events ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            // (JSON output leaves NULL values out)
            json!({"id": 1, "kind": "view", "amount": 2.5}),
            json!({"id": 2, "kind": "click", "amount": 3.0, "note": "n"}),
            json!({"id": 7, "kind": "click", "amount": 0.5}),
        ]
    );
    let cols = crate::query(
        &dir,
        "SELECT column_name, data_type FROM system.columns WHERE full_name = 'lakehouse.bronze.events' AND column_name IN ('id', 'amount') ORDER BY column_name",
    );
    assert_eq!(cols[0]["data_type"], "DOUBLE", "{cols:?}");
    assert_eq!(cols[1]["data_type"], "BIGINT", "{cols:?}");
    let q = crate::query(
        &dir,
        "SELECT _stage, _rules, _reason, _record, _source_pointer FROM quarantine.events ORDER BY _source_pointer",
    );
    assert_eq!(q.len(), 4, "{q:?}");
    let by_line = |n: u64| {
        q.iter()
            .find(|r| {
                r["_source_pointer"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{n}"))
            })
            .unwrap_or_else(|| panic!("line {n}: {q:?}"))
    };
    assert_eq!(by_line(3)["_stage"], "contract");
    assert!(
        by_line(3)["_reason"]
            .as_str()
            .unwrap()
            .contains("missing required field(s): 'amount'"),
        "{q:?}"
    );
    assert_eq!(by_line(3)["_rules"], json!(["contract:events-value@1"]));
    assert!(
        by_line(4)["_reason"]
            .as_str()
            .unwrap()
            .contains("field 'id': expected a long"),
        "{q:?}"
    );
    let r5 = by_line(5)["_reason"].as_str().unwrap();
    assert!(
        r5.contains("'buy' is not a symbol of enum Kind")
            && r5.contains("unexpected field(s) not in the contract: 'coupon'"),
        "{r5}"
    );
    assert!(
        by_line(5)["_record"]
            .as_str()
            .unwrap()
            .contains("\"coupon\":\"X\""),
        "{q:?}"
    );
    assert_eq!(by_line(6)["_stage"], "ingest");

    // fail mode: the whole file is refused, nothing of it lands
    ok(
        &dir,
        &[
            "contract",
            "bind",
            "bronze.events",
            "events-value",
            "--on-violation",
            "fail",
        ],
    );
    std::fs::write(
        data.join("b.ndjson"),
        [
            r#"{"id": 8, "kind": "view", "amount": 1}"#,
            r#"{"id": 9, "extra": 1}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let err = fails(
        &dir,
        &["ingest", data.to_str().unwrap(), "--into", "bronze.events"],
    );
    assert!(
        err.contains("b.ndjson line 2")
            && err.contains("'kind', 'amount'")
            && err.contains("'extra'"),
        "{err}"
    );
    let n = crate::query(&dir, "SELECT count(*) AS n FROM bronze.events");
    assert_eq!(n[0]["n"], 3);
    let show = ok(
        &dir,
        &["--format", "json", "contract", "show", "bronze.events"],
    );
    assert!(show.contains("\"on_violation\": \"fail\""), "{show}");

    // a version that changes a bound column's Delta type is refused with 409 (long to double is
    // a compatible promotion, but deltalake cannot change the column in place)
    let fields = |id_type: &str, extra: Value| {
        let mut f = vec![
            json!({"name": "id", "type": id_type}),
            json!({"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["view", "click"]}}),
            json!({"name": "amount", "type": "double"}),
            json!({"name": "note", "type": ["null", "string"], "default": null}),
        ];
        if !extra.is_null() {
            f.push(extra);
        }
        json!({"type": "record", "name": "Event", "fields": f}).to_string()
    };
    std::fs::write(&schema, fields("double", Value::Null)).unwrap();
    let err = fails(
        &dir,
        &[
            "registry",
            "register",
            "events-value",
            schema.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("lakehouse.bronze.events")
            && err.contains("column id is BIGINT (version 1) but this schema makes it DOUBLE"),
        "{err}"
    );
    let versions = ok(&dir, &["registry", "versions", "events-value"]);
    assert!(!versions.contains('2'), "{versions}");
    // a version that only adds a field evolves the table at the next ingest
    std::fs::write(
        &schema,
        fields(
            "long",
            json!({"name": "channel", "type": ["null", "string"], "default": null}),
        ),
    )
    .unwrap();
    ok(
        &dir,
        &[
            "registry",
            "register",
            "events-value",
            schema.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(data.join("b.ndjson")).unwrap();
    ingest_lines(
        &dir,
        &data,
        "c.ndjson",
        &[r#"{"id": 10, "kind": "view", "amount": 1, "channel": "web"}"#],
        "bronze.events",
    );
    let rows = crate::query(
        &dir,
        "SELECT id, channel FROM bronze.events WHERE channel IS NOT NULL",
    );
    assert_eq!(rows, vec![json!({"id": 10, "channel": "web"})]);
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn push_ingest_lands_avro_wire_messages_and_ndjson_once_per_key() {
    let (_t, dir) = lakehouse();
    let server = Server::start(&dir, &[], &[("STRATA_SERVE_COMPACT_EVERY", "3")]);
    let p = server.port;
    let schema = json!({"type": "record", "name": "Event", "fields": [
        {"name": "id", "type": "long"}, {"name": "kind", "type": "string"},
        {"name": "amount", "type": "double"}]})
    .to_string();
    // the unmodified AvroSerializer registers the schema and frames each record
    let out = py(
        r#"
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import SerializationContext, MessageField
ser = AvroSerializer(SchemaRegistryClient({"url": sys.argv[1]}), sys.argv[2])
ctx = SerializationContext("events", MessageField.VALUE)
msgs = [ser({"id": i, "kind": "view", "amount": i * 1.5}, ctx).hex() for i in range(1, 4)]
print(json.dumps({"msgs": msgs}))
"#,
        &[&server.url(), &schema],
    );
    let msgs: Vec<Vec<u8>> = out["msgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| hex_bytes(m.as_str().unwrap()))
        .collect();
    assert_eq!(msgs[0][0], 0, "magic byte");
    ok(&dir, &["contract", "bind", "bronze.events", "events-value"]);
    let mut body = Vec::new();
    for m in &msgs {
        body.extend_from_slice(&(m.len() as u32).to_be_bytes());
        body.extend_from_slice(m);
    }
    let avro = [("Content-Type", "application/vnd.strata.confluent-avro")];
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &avro,
        Some(&body),
    );
    let r: Value = serde_json::from_slice(&r).unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["records"].as_u64(), r["landed"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );

    // bad wire input: an unknown schema id, a truncated payload; nothing lands
    let mut unknown = msgs[0].clone();
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    let mut b = (unknown.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(&unknown);
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &avro,
        Some(&b),
    );
    let r: Value = serde_json::from_slice(&r).unwrap();
    assert_eq!((s, r["error_code"].as_u64()), (404, Some(40403)), "{r}");
    let cut = &msgs[0][..msgs[0].len() - 3];
    let mut b = (cut.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(cut);
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &avro,
        Some(&b),
    );
    let r: Value = serde_json::from_slice(&r).unwrap();
    assert_eq!((s, r["error_code"].as_u64()), (400, Some(40002)), "{r}");
    let (s, _) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &[("Content-Type", "text/plain")],
        Some(b"x"),
    );
    assert_eq!(s, 415);
    assert_eq!(
        crate::query(&dir, "SELECT count(*) AS n FROM bronze.events")[0]["n"],
        3
    );

    // NDJSON with a record that breaks the contract, sent twice with one Idempotency-Key
    let nd = b"{\"id\": 10, \"kind\": \"click\", \"amount\": 1}\n{\"id\": \"eleven\", \"kind\": \"click\", \"amount\": 1}\n";
    let h = [
        ("Content-Type", "application/x-ndjson"),
        ("Idempotency-Key", "batch-42"),
    ];
    let (s, first) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &h,
        Some(nd),
    );
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        (first["landed"].as_u64(), first["quarantined"].as_u64()),
        (Some(1), Some(1)),
        "{first}"
    );
    let (s, again) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &h,
        Some(nd),
    );
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(s, 200);
    assert_eq!(again["request_id"], first["request_id"]);
    assert!(first["batch"].as_i64().is_some_and(|b| b >= 1), "{first}");
    assert_eq!(again["batch"], first["batch"]);
    assert_eq!(again["landed"], first["landed"]);
    assert_eq!(again["replayed"], true);
    // a JSON array
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &[("Content-Type", "application/json")],
        Some(br#"[{"id": 20, "kind": "view", "amount": 2}]"#),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    let rows = crate::query(
        &dir,
        "SELECT id, _source_file FROM bronze.events ORDER BY id",
    );
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3, 10, 20]);
    assert!(
        rows.iter()
            .all(|r| r["_source_file"].as_str().unwrap().starts_with("http:")),
        "{rows:?}"
    );
    let q = crate::query(
        &dir,
        "SELECT _stage, _source_pointer FROM quarantine.events",
    );
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["_stage"], "contract");
    assert!(
        q[0]["_source_pointer"]
            .as_str()
            .unwrap()
            .starts_with("http:key-"),
        "{q:?}"
    );

    // a second version adds a timestamp and a field with a default: the serializer registers
    // it; messages written with version 1 are resolved to it (the default fills the gap), a
    // timestamp-millis lands as TIMESTAMP from the wire and from an epoch number in NDJSON
    let v2 = json!({"type": "record", "name": "Event", "fields": [
        {"name": "id", "type": "long"}, {"name": "kind", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
        {"name": "channel", "type": "string", "default": "web"}]})
    .to_string();
    let out = py(
        r#"
import datetime, json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import SerializationContext, MessageField
ser = AvroSerializer(SchemaRegistryClient({"url": sys.argv[1]}), sys.argv[2])
ctx = SerializationContext("events", MessageField.VALUE)
at = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
print(json.dumps({"msg": ser({"id": 30, "kind": "view", "amount": 1.0, "at": at, "channel": "app"}, ctx).hex()}))
"#,
        &[&server.url(), &v2],
    );
    let mut body = Vec::new();
    for m in [msgs[0].clone(), hex_bytes(out["msg"].as_str().unwrap())] {
        body.extend_from_slice(&(m.len() as u32).to_be_bytes());
        body.extend_from_slice(&m);
    }
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &avro,
        Some(&body),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    let (s, r) = http(
        p,
        "POST",
        "/api/v1/tables/bronze.events/records",
        &[("Content-Type", "application/x-ndjson")],
        Some(br#"{"id": 40, "kind": "view", "amount": 1, "at": 1700000000123, "channel": "app"}"#),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    let rows = crate::query(
        &dir,
        "SELECT id, channel, CAST(round(date_part('epoch', at) * 1000) AS BIGINT) AS at_ms \
         FROM bronze.events WHERE channel IS NOT NULL ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "channel": "web"}),
            json!({"id": 30, "channel": "app", "at_ms": 1767323045678i64}),
            json!({"id": 40, "channel": "app", "at_ms": 1700000000123i64}),
        ]
    );
    let cols = crate::query(
        &dir,
        "SELECT data_type FROM system.columns WHERE full_name = 'lakehouse.bronze.events' AND column_name = 'at'",
    );
    assert_eq!(cols[0]["data_type"], "TIMESTAMP", "{cols:?}");
    assert_eq!(
        crate::query(&dir, "SELECT count(*) AS n FROM quarantine.events")[0]["n"],
        1
    );
}

#[test]
fn a_contract_types_nested_fields_timestamps_dates_and_decimals() {
    let (t, dir) = lakehouse();
    register_and_bind(
        &dir,
        t.path(),
        "people-value",
        &json!({"type": "record", "name": "Person", "fields": [
            {"name": "id", "type": "long"},
            {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
                {"name": "city", "type": "string"},
                {"name": "zip", "type": ["null", "string"], "default": null}]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "long"}},
            {"name": "seen", "type": {"type": "array", "items": {"type": "long", "logicalType": "timestamp-millis"}}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}
        ]}),
        "bronze.people",
    );
    let cols = crate::query(
        &dir,
        "SELECT column_name, data_type FROM system.columns WHERE full_name = 'lakehouse.bronze.people' \
         AND column_name IN ('address', 'tags', 'attrs', 'seen', 'day', 'price') ORDER BY column_name",
    );
    let types: Vec<(&str, &str)> = cols
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().unwrap(),
                c["data_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![
            ("address", "STRUCT<city: STRING, zip: STRING>"),
            ("attrs", "MAP<STRING, BIGINT>"),
            ("day", "DATE"),
            ("price", "DECIMAL(10,2)"),
            ("seen", "ARRAY<TIMESTAMP>"),
            ("tags", "ARRAY<STRING>"),
        ]
    );
    ingest_lines(
        &dir,
        &t.path().join("people"),
        "a.ndjson",
        &[
            r#"{"id": 1, "address": {"city": "Oslo"}, "tags": ["a", "b"], "attrs": {"x": 1}, "seen": [1700000000123, "2026-01-01T00:00:00Z"], "day": 20000, "price": "12.34"}"#,
            r#"{"id": 2, "address": {"city": "Rome", "zip": "00100"}, "tags": [], "attrs": {}, "seen": [], "day": "2026-12-02", "price": 5}"#,
            r#"{"id": 3, "address": {"zip": "1"}, "tags": [1], "attrs": {"x": "y"}, "seen": [], "day": 1, "price": "1"}"#,
        ],
        "bronze.people",
    );
    let rows = crate::query(
        &dir,
        "SELECT id, address['city'] AS city, address['zip'] AS zip, cardinality(tags) AS tags, \
         attrs['x'] AS x, CAST(round(date_part('epoch', seen[1]) * 1000) AS BIGINT) AS seen1, \
         CAST(day AS STRING) AS day, CAST(price AS STRING) AS price, _rescued_data \
         FROM bronze.people ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "city": "Oslo", "tags": 2, "x": 1, "seen1": 1700000000123i64, "day": "2024-10-04", "price": "12.34"}),
            json!({"id": 2, "city": "Rome", "zip": "00100", "tags": 0, "day": "2026-12-02", "price": "5.00"}),
        ]
    );
    let q = crate::query(&dir, "SELECT _stage, _reason FROM quarantine.people");
    assert_eq!(q.len(), 1, "{q:?}");
    let reason = q[0]["_reason"].as_str().unwrap();
    assert!(
        reason.contains("'address.city'")
            && reason.contains("field 'tags[0]': expected a string")
            && reason.contains("field 'attrs.x': expected a long"),
        "{reason}"
    );
    // the nested columns are real Delta types: Python deltalake reads them as such
    let out = crate::py(
        r#"
import json, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
rows = sorted(t.select(["id", "address", "tags", "attrs"]).to_pylist(), key=lambda r: r["id"])
print(json.dumps({"types": {f.name: str(f.type) for f in t.schema if f.name in ("address", "tags", "attrs")},
                  "first": {"address": rows[0]["address"], "tags": rows[0]["tags"], "attrs": rows[0]["attrs"]}}))
"#,
        &[dir.join("lakehouse/bronze/people").to_str().unwrap()],
    );
    assert_eq!(
        out["first"],
        json!({"address": {"city": "Oslo", "zip": null}, "tags": ["a", "b"], "attrs": [["x", 1]]}),
        "{out}"
    );
}

/// Sends `bodies` at once (one thread each, released together) as NDJSON pushes into `table`;
/// the answers in the same order.
fn push_at_once(
    port: u16,
    table: &str,
    bodies: Vec<(Option<String>, String)>,
) -> Vec<(u16, Value)> {
    let gate = std::sync::Arc::new(std::sync::Barrier::new(bodies.len()));
    let path = format!("/api/v1/tables/{table}/records");
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|(key, body)| {
            let (gate, path) = (gate.clone(), path.clone());
            std::thread::spawn(move || {
                let mut h = vec![("Content-Type", "application/x-ndjson")];
                if let Some(k) = &key {
                    h.push(("Idempotency-Key", k.as_str()));
                }
                gate.wait();
                let (s, out) = http(port, "POST", &path, &h, Some(body.as_bytes()));
                (s, serde_json::from_slice(&out).unwrap_or(Value::Null))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `n` conforming order records with ids from `first`.
fn orders(first: i64, n: i64) -> String {
    (first..first + n)
        .map(|i| format!("{{\"id\": {i}, \"qty\": {}}}\n", i % 7))
        .collect()
}

#[test]
fn concurrent_pushes_share_commits_and_one_refused_request_leaves_the_others_landed() {
    let (t, dir) = lakehouse();
    let schema = t.path().join("order.avsc");
    std::fs::write(
        &schema,
        json!({"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"}, {"name": "qty", "type": "int"}]})
        .to_string(),
    )
    .unwrap();
    ok(
        &dir,
        &[
            "registry",
            "register",
            "orders-value",
            schema.to_str().unwrap(),
        ],
    );
    ok(
        &dir,
        &[
            "contract",
            "bind",
            "bronze.orders",
            "orders-value",
            "--on-violation",
            "fail",
        ],
    );
    let server = Server::start(&dir, &[], &[]);

    // 12 requests at once: every one lands all of its records, and requests that arrived while
    // a commit ran shared the next one (fewer commits than requests)
    let answers = push_at_once(
        server.port,
        "bronze.orders",
        (0..12).map(|i| (None, orders(i * 1000, 50))).collect(),
    );
    let mut versions = std::collections::BTreeSet::new();
    for (s, r) in &answers {
        assert_eq!(*s, 200, "{r}");
        assert_eq!(
            (
                r["records"].as_u64(),
                r["landed"].as_u64(),
                r["quarantined"].as_u64()
            ),
            (Some(50), Some(50), Some(0)),
            "{r}"
        );
        versions.insert(r["version"].as_i64().expect("a commit version"));
    }
    assert!(
        versions.len() < 12,
        "every request made its own commit: {versions:?}"
    );
    // each answer's commit holds its request's records
    for (_, r) in &answers {
        let rows = crate::query(
            &dir,
            &format!(
                "SELECT count(*) AS n FROM bronze.orders VERSION AS OF {} WHERE _source_file = 'http:{}'",
                r["version"],
                r["request_id"].as_str().unwrap()
            ),
        );
        assert_eq!(rows[0]["n"], 50, "{r}");
    }

    // 8 at once, one with a record that breaks the contract: that one is refused naming the
    // record, nothing of it lands, and the other 7 land whatever group they shared
    let mut bodies: Vec<(Option<String>, String)> = (0..8)
        .map(|i| (None, orders(100_000 + i * 1000, 20)))
        .collect();
    bodies[3].1 = format!(
        "{}{{\"id\": 103999, \"qty\": \"many\"}}\n",
        orders(103_000, 5)
    );
    let answers = push_at_once(server.port, "bronze.orders", bodies);
    for (i, (s, r)) in answers.iter().enumerate() {
        if i == 3 {
            assert_eq!(*s, 422, "{r}");
            let m = r["message"].as_str().unwrap();
            assert!(m.contains("line 6") && m.contains("qty"), "{m}");
        } else {
            assert_eq!((*s, r["landed"].as_u64()), (200, Some(20)), "{r}");
        }
    }
    let n = |sql: &str| crate::query(&dir, sql)[0]["n"].as_i64().unwrap();
    assert_eq!(
        n("SELECT count(*) AS n FROM bronze.orders WHERE id BETWEEN 103000 AND 103999"),
        0
    );
    assert_eq!(
        n("SELECT count(*) AS n FROM bronze.orders WHERE id >= 100000"),
        7 * 20
    );

    // a table in `fail` evolution mode: 8 at once, one bringing a new field, which stops a
    // group's run at landing; that one is refused naming its request and the field, the other 7
    // land (one by one after the group's run stopped, when they shared it)
    let (s, r) = http(
        server.port,
        "POST",
        "/api/v1/tables/bronze.strict/records",
        &[("Content-Type", "application/x-ndjson")],
        Some(b"{\"id\": 1}\n"),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&r));
    ok(
        &dir,
        &[
            "table",
            "set",
            "bronze.strict",
            "--property",
            "strata.ingest.schemaEvolution=fail",
        ],
    );
    let mut bodies: Vec<(Option<String>, String)> = (0..8)
        .map(|i| {
            (
                None,
                format!("{{\"id\": {}}}\n{{\"id\": {}}}\n", 10 + 2 * i, 11 + 2 * i),
            )
        })
        .collect();
    bodies[5].1 = "{\"id\": 90}\n{\"id\": 91, \"coupon\": \"X\"}\n".to_string();
    let answers = push_at_once(server.port, "bronze.strict", bodies);
    for (i, (s, r)) in answers.iter().enumerate() {
        if i == 5 {
            assert_eq!(*s, 422, "{r}");
            let m = r["message"].as_str().unwrap();
            assert!(
                m.contains("http:req-") && m.contains("line 2") && m.contains("coupon"),
                "{m}"
            );
        } else {
            assert_eq!((*s, r["landed"].as_u64()), (200, Some(2)), "{r}");
        }
    }
    assert_eq!(n("SELECT count(*) AS n FROM bronze.strict"), 1 + 7 * 2);
    assert_eq!(
        n("SELECT count(*) AS n FROM bronze.strict WHERE id IN ('90', '91')"),
        0
    );

    // the same Idempotency-Key sent 4 times at once lands once; every answer is the first
    let body = orders(200_000, 10);
    let answers = push_at_once(
        server.port,
        "bronze.orders",
        (0..4)
            .map(|_| (Some("k-1".to_string()), body.clone()))
            .collect(),
    );
    for (s, r) in &answers {
        assert_eq!(*s, 200, "{r}");
        assert_eq!(r["request_id"], answers[0].1["request_id"], "{r}");
        assert_eq!(
            (r["landed"].as_u64(), r["batch"].as_i64()),
            (Some(10), answers[0].1["batch"].as_i64()),
            "{r}"
        );
    }
    assert_eq!(
        n("SELECT count(*) AS n FROM bronze.orders WHERE id >= 200000"),
        10
    );
    assert_eq!(
        n("SELECT count(*) AS n FROM bronze.orders"),
        12 * 50 + 7 * 20 + 10
    );
    // /metrics counts the group commits
    let (_, m) = http(server.port, "GET", "/metrics", &[], None);
    let m = String::from_utf8_lossy(&m).to_string();
    let commits: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("strata_push_commits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{m}"));
    // 28 requests landed; the first 12 took at most 11 commits, so fewer than 28 in all
    assert!((4..28).contains(&commits), "{commits}");
    assert!(server.stop().success());
}

#[test]
fn serve_sees_what_other_processes_commit_between_pushes() {
    let (t, dir) = lakehouse();
    let server = Server::start(&dir, &[], &[]);
    let push = |body: &str| {
        let (s, out) = http(
            server.port,
            "POST",
            "/api/v1/tables/bronze.mixed/records",
            &[("Content-Type", "application/x-ndjson")],
            Some(body.as_bytes()),
        );
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        assert_eq!(s, 200, "{v}");
        v
    };
    let first = push("{\"id\": 1}\n");
    // without a contract every column is STRING; another process lands a file with a new column between two pushes
    ingest_lines(
        &dir,
        &t.path().join("data"),
        "a.ndjson",
        &[r#"{"id": 2, "extra": "x"}"#],
        "bronze.mixed",
    );
    let third = push("{\"id\": 3, \"extra\": \"y\"}\n");
    assert_eq!(third["landed"], 1, "{third}");
    assert!(
        third["version"].as_i64() > first["version"].as_i64().map(|v| v + 1),
        "the push after the file ingest must commit after it: {first} {third}"
    );
    assert!(
        third["batch"].as_i64() > first["batch"].as_i64().map(|b| b + 1),
        "{third}"
    );
    assert_eq!(
        crate::query(&dir, "SELECT id, extra FROM bronze.mixed ORDER BY id"),
        vec![
            json!({"id": "1"}),
            json!({"id": "2", "extra": "x"}),
            json!({"id": "3", "extra": "y"})
        ]
    );
    // dropped by another process and created again by the next push: only the new rows
    ok(&dir, &["table", "drop", "bronze.mixed"]);
    let again = push("{\"id\": 10}\n");
    assert_eq!(again["landed"], 1, "{again}");
    assert_eq!(
        crate::query(&dir, "SELECT id FROM bronze.mixed ORDER BY id"),
        vec![json!({"id": "10"})]
    );
    assert!(server.stop().success());
}
