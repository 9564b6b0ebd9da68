//! The OpenAPI document against the real server: every operation it lists is called without a
//! token, with a viewer token, with malformed and mistyped bodies and with bodies and parameters
//! generated from its schemas (a seeded generator, bounded iterations). Every answer must be a
//! status the document lists for that operation, and never a 5xx.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Schema-generated requests per operation.
const ROUNDS: usize = 40;

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn string(rng: &mut Rng, schema: &Value) -> Value {
    if schema.get("format").and_then(Value::as_str) == Some("date-time") && rng.chance(80) {
        let now = netmedic_collector::now();
        let off = (rng.below(7_200_000) as i64) - 3_600_000;
        return json!(now.add_millis(off));
    }
    let pool = [
        "cpe-0001",
        "x",
        "",
        "bad id!",
        "0",
        "é",
        "a:b.c-d",
        "<script>",
        "\u{0}",
        "9999-99-99",
    ];
    if rng.chance(20) {
        let n = rng.below(600);
        return json!("a".repeat(n));
    }
    json!(pool[rng.below(pool.len())])
}

/// A value for `schema`: mostly of the right shape, sometimes not.
fn generate(doc: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if depth > 5 || rng.chance(5) {
        let wild = [
            json!(null),
            json!(-1),
            json!("?"),
            json!([]),
            json!({}),
            json!(1e300),
        ];
        return wild[rng.below(wild.len())].clone();
    }
    if let Some(all) = schema.get("enum").and_then(Value::as_array) {
        return all[rng.below(all.len())].clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            if key == "allOf" {
                let mut out = Map::new();
                for s in list {
                    if let Value::Object(m) = generate(doc, s, rng, depth + 1) {
                        out.extend(m);
                    }
                }
                return Value::Object(out);
            }
            return generate(doc, &list[rng.below(list.len())], rng, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts[rng.below(ts.len())]
            .as_str()
            .unwrap_or("null")
            .to_owned(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "object" => {
            let mut out = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if required.contains(&k.as_str()) || rng.chance(60) {
                        out.insert(k.clone(), generate(doc, s, rng, depth + 1));
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for _ in 0..rng.below(3) {
                    let key = string(rng, &json!({})).as_str().unwrap_or("k").to_owned();
                    out.insert(key, generate(doc, extra, rng, depth + 1));
                }
            }
            if rng.chance(5) {
                out.insert("unexpected".into(), json!(1));
            }
            Value::Object(out)
        }
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            (0..rng.below(4))
                .map(|_| generate(doc, &items, rng, depth + 1))
                .collect()
        }
        "integer" => {
            let pool = [
                0i128,
                1,
                2,
                -1,
                500,
                1 << 40,
                i64::MAX as i128,
                u64::MAX as i128,
            ];
            json!(pool[rng.below(pool.len())] as f64 as i64)
        }
        "boolean" => json!(rng.chance(50)),
        "null" => Value::Null,
        _ => string(rng, schema),
    }
}

struct Call<'a> {
    method: Method,
    path: String,
    token: Option<&'a str>,
    query: Vec<(String, String)>,
    body: Option<(&'static str, Vec<u8>)>,
}

async fn send(s: &TestServer, c: Call<'_>) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(&s.url(&c.path), &c.query).unwrap();
    let mut req = s.client.request(c.method, url);
    if let Some(t) = c.token {
        req = req.bearer_auth(t);
    }
    if let Some((ct, body)) = c.body {
        req = req.header("content-type", ct).body(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_server_answers_only_what_its_document_says() {
    let s = TestServer::start().await;
    let device = s.enrol("cpe-fuzz").await;
    let doc: Value = s
        .get_as("/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut mismatches = Vec::new();
    let mut calls = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|k| k.parse().ok())
                .collect();
            let security = op.get("security").unwrap_or(&doc["security"]).to_string();
            let open = security == "[]" || security.contains("{}");
            let token = if security.contains("deviceToken") {
                device.as_str()
            } else {
                s.admin_token.as_str()
            };
            let params: Vec<&Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let body_schema = op["requestBody"]["content"]["application/json"]
                .get("schema")
                .cloned();
            let has_body = op.get("requestBody").is_some();
            let mut calls_for_op: Vec<Call> = Vec::new();
            let concrete = |rng: &mut Rng, valid: bool| {
                let mut p = path.clone();
                for param in params.iter().filter(|p| p["in"] == "path") {
                    let name = param["name"].as_str().unwrap();
                    let v = if valid && rng.chance(70) {
                        match name {
                            "kind" => ["subscribers", "surveys", "contacts"][rng.below(3)].into(),
                            _ => "cpe-fuzz".to_owned(),
                        }
                    } else {
                        ["x", "%20", "bad%21id", "a%2Fb"][rng.below(4)].to_owned()
                    };
                    p = p.replace(&format!("{{{name}}}"), &v);
                }
                p
            };
            // Without a token, and with a viewer's.
            for t in [None, Some(s.viewer_token.as_str())] {
                calls_for_op.push(Call {
                    method: m.clone(),
                    path: concrete(&mut rng, true),
                    token: t,
                    query: vec![],
                    body: has_body.then(|| ("application/json", b"{}".to_vec())),
                });
            }
            if has_body {
                for (ct, body) in [
                    ("application/json", b"{".to_vec()),
                    ("application/json", b"[1,2]".to_vec()),
                    ("text/plain", b"hello".to_vec()),
                    ("application/json", vec![0xff, 0xfe]),
                ] {
                    calls_for_op.push(Call {
                        method: m.clone(),
                        path: concrete(&mut rng, true),
                        token: Some(token),
                        query: vec![],
                        body: Some((ct, body)),
                    });
                }
            }
            for _ in 0..ROUNDS {
                let mut query = Vec::new();
                for param in params.iter().filter(|p| p["in"] == "query") {
                    if rng.chance(50) {
                        let v = generate(&doc, &param["schema"], &mut rng, 0);
                        let v = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        query.push((param["name"].as_str().unwrap().to_owned(), v));
                    }
                }
                if rng.chance(5) {
                    query.push(("nonsense".into(), "1".into()));
                }
                let body = if let Some(schema) = &body_schema {
                    let v = generate(&doc, schema, &mut rng, 0);
                    Some(("application/json", serde_json::to_vec(&v).unwrap()))
                } else if has_body {
                    let csv = [
                        "device_id,customer_id\ncpe-1,c1\n",
                        "a,\"b\n",
                        "\u{feff}x\n",
                    ];
                    Some(("text/csv", csv[rng.below(csv.len())].as_bytes().to_vec()))
                } else {
                    None
                };
                calls_for_op.push(Call {
                    method: m.clone(),
                    path: concrete(&mut rng, true),
                    token: Some(token),
                    query,
                    body,
                });
            }
            for c in calls_for_op {
                let what = format!(
                    "{method} {} token={} query={:?} body={:?}",
                    c.path,
                    c.token.is_some(),
                    c.query,
                    c.body.as_ref().map(|b| String::from_utf8_lossy(&b.1)
                        .chars()
                        .take(200)
                        .collect::<String>())
                );
                let no_token = c.token.is_none();
                let (status, text) = send(&s, c).await;
                calls += 1;
                if status >= 500 || !documented.contains(&status) {
                    mismatches.push(format!(
                        "{status} for {what}: {}",
                        &text[..text.len().min(200)]
                    ));
                }
                if no_token && !open && status != 401 {
                    mismatches.push(format!("{status} (want 401) for {what}"));
                }
            }
        }
    }
    let five = mismatches.iter().filter(|m| m.starts_with('5')).count();
    assert!(
        mismatches.is_empty(),
        "{} mismatches ({five} × 5xx) in {calls} calls:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(calls > 500, "only {calls} calls");
    s.stop().await;
}
