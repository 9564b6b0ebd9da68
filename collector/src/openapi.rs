//! The OpenAPI 3.1 document served at `/api/openapi.json`. Hand-written rather than derived with
//! `utoipa`: the wire types live in the no-I/O `netmedic-proto` crate that the agent also builds
//! for routers, and deriving `ToSchema` there would pull utoipa into the CPE build. A test
//! (`tests/api.rs`) checks that every route the router serves is documented here.

use serde_json::{Value, json};

fn error_responses(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            (*c).to_owned(),
            json!({"description": "Error with a reason", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}),
        );
    }
    Value::Object(m)
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"200": {"description": description, "content": {"application/json": {"schema": schema}}}})
}

fn q(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

fn p(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

/// Every path of the API, as the router serves it.
pub const PATHS: &[&str] = &[
    "/api/v1/reports",
    "/api/v1/heartbeats",
    "/api/v1/incidents",
    "/api/v1/incidents/{agent_id}/{incident_id}",
    "/api/v1/devices",
    "/api/v1/devices/{agent_id}",
    "/api/v1/devices/{agent_id}/diagnostics",
    "/api/v1/diagnostics-results",
    "/api/v1/killswitches",
    "/api/v1/experiments",
    "/api/v1/experiments/{id}",
    "/api/v1/import/{kind}",
    "/api/v1/report",
    "/api/v1/network-events",
    "/api/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// The document, as JSON text.
pub fn document() -> String {
    let obj = |props: Value| json!({"type": "object", "properties": props});
    let device_auth = json!([{"deviceToken": []}]);
    let ingest_errors = ["400", "401", "403", "413", "415", "429", "503"];
    let doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "netmedic collector API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agents POST report batches and heartbeats with their device token \
                (`Authorization: Bearer`), optionally gzip-compressed. Every error is an ErrorBody. \
                429 and 503 carry Retry-After. Every other /api/v1/ route needs an API token \
                (`netmedic-collector token add NAME --role viewer|operator`): viewer reads, only \
                operator changes (kill switches, experiments, diagnostics, imports); 401 without a valid token, \
                403 for a viewer. /healthz and /readyz are open; /metrics is open unless \
                server.metrics_requires_token."
        },
        "security": [{"apiToken": []}],
        "paths": {
            "/api/v1/reports": {"post": {
                "summary": "Ingest a report batch (idempotent by event_id)",
                "security": device_auth,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReportBatch"}}}},
                "responses": merge(ok("Every listed event is durably stored", json!({"$ref": "#/components/schemas/ReportAck"})), error_responses(&ingest_errors))
            }},
            "/api/v1/heartbeats": {"post": {
                "summary": "Record a heartbeat; the reply carries advisories",
                "security": device_auth,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Heartbeat"}}}},
                "responses": merge(ok("Recorded", json!({"$ref": "#/components/schemas/HeartbeatReply"})), error_responses(&ingest_errors))
            }},
            "/api/v1/incidents": {"get": {
                "summary": "Incidents in the chosen order (newest first by default), keyset-paginated",
                "parameters": [
                    q("status", "open | resolved"), q("category", "experience category"),
                    q("check", "check id"), q("agent_id", "device id"),
                    q("customer_id", "from the subscribers table"), q("region", "subscriber region, else enrolment region"),
                    q("access_node", "from the subscribers table"),
                    q("from", "RFC 3339; started at or after"), q("to", "RFC 3339; started before"),
                    q("cpe_model", "from the subscribers table"), q("firmware", "subscribers table, else the device's heartbeat"),
                    q("order", "newest (default) | oldest | severity (critical, major, minor; newest first within)"),
                    q("limit", "1..=500, default 50"), q("cursor", "next_cursor of the previous page, in the same order")
                ],
                "responses": merge(ok("A page", json!({"$ref": "#/components/schemas/IncidentPage"})), error_responses(&["400", "503"]))
            }},
            "/api/v1/incidents/{agent_id}/{incident_id}": {"get": {
                "summary": "One incident with its event timeline and action trail",
                "parameters": [p("agent_id"), p("incident_id")],
                "responses": merge(ok("The incident", json!({"$ref": "#/components/schemas/IncidentDetail"})), error_responses(&["404", "503"]))
            }},
            "/api/v1/devices": {"get": {
                "summary": "Devices with their state (online, offline after 3 silent heartbeat intervals, never_seen, revoked)",
                "parameters": [q("state", "online | offline | never_seen | revoked"), q("region", "region"), q("after", "next_after of the previous page"), q("limit", "1..=500")],
                "responses": merge(ok("A page", json!({"$ref": "#/components/schemas/DevicePage"})), error_responses(&["400", "503"]))
            }},
            "/api/v1/devices/{agent_id}": {"get": {
                "summary": "One device with its latest heartbeat",
                "parameters": [p("agent_id")],
                "responses": merge(ok("The device", json!({"$ref": "#/components/schemas/Device"})), error_responses(&["404", "503"]))
            }},
            "/api/v1/devices/{agent_id}/diagnostics": {"post": {
                "summary": "Queue on-demand diagnostics, delivered once in the device's next heartbeat reply",
                "parameters": [p("agent_id")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": obj(json!({"checks": {"type": "array", "items": {"type": "string"}}}))}}},
                "responses": merge(json!({"202": {"description": "Queued", "content": {"application/json": {"schema": obj(json!({"request_id": {"type": "string"}}))}}}}), error_responses(&["400", "404", "503"]))
            }},
            "/api/v1/killswitches": {
                "get": {"summary": "Kill switches in force", "responses": ok("The list", json!({"$ref": "#/components/schemas/KillSwitchList"}))},
                "put": {
                    "summary": "Set a kill switch for a device, a region or the fleet",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": obj(json!({"scope": {"enum": ["fleet", "region", "device"]}, "target": {"type": "string"}, "reason": {"type": "string"}}))}}},
                    "responses": merge(ok("The list after the change", json!({"$ref": "#/components/schemas/KillSwitchList"})), error_responses(&["400", "503"]))
                },
                "delete": {
                    "summary": "Clear a kill switch",
                    "parameters": [q("scope", "fleet | region | device"), q("target", "region or device id")],
                    "responses": merge(ok("The list after the change", json!({"$ref": "#/components/schemas/KillSwitchList"})), error_responses(&["400", "404", "503"]))
                }
            },
            "/api/v1/import/{kind}": {"post": {
                "summary": "Import subscribers, surveys or contacts (CSV with a header, or JSON Lines), upserted by id; operator",
                "parameters": [p("kind"), q("format", "csv | jsonl (default from Content-Type)"), q("strict", "true: any bad row writes nothing")],
                "requestBody": {"required": true, "content": {"text/csv": {}, "application/x-ndjson": {}}},
                "responses": merge(ok("Rows read, taken, skipped, bad rows with their line and reason", obj(json!({"rows": {"type": "integer"}, "taken": {"type": "integer"}, "skipped": {"type": "integer"}, "committed": {"type": "boolean"}, "bad_rows": {"type": "array"}}))), error_responses(&["400", "401", "403", "404", "413", "503"]))
            }},
            "/api/v1/report": {"get": {
                "summary": "Customer-experience report: NPS/CSAT with vs without incidents (95% intervals), contact rates, contacts avoided, churn risk, breakdowns, network events",
                "parameters": [q("from", "RFC 3339"), q("to", "RFC 3339")],
                "responses": merge(ok("The report", json!({"type": "object"})), error_responses(&["400", "401", "503"]))
            }},
            "/api/v1/network-events": {"get": {
                "summary": "Network events (mass outages behind one access node), newest first",
                "parameters": [q("active", "true: unresolved only"), q("members", "true: list member incidents"), q("limit", "1..=500")],
                "responses": merge(ok("The list", obj(json!({"network_events": {"type": "array"}}))), error_responses(&["400", "401", "503"]))
            }},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)", "responses": merge(json!({"200": {"description": "ready"}}), error_responses(&["503"]))}},
            "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "metrics"}}}}
        },
        "components": {
            "securitySchemes": {
                "deviceToken": {"type": "http", "scheme": "bearer", "description": "Printed once by `netmedic-collector device add ID`"},
                "apiToken": {"type": "http", "scheme": "bearer", "description": "Printed once by `netmedic-collector token add NAME --role viewer|operator`"}
            },
            "schemas": {
                "ErrorBody": obj(json!({"error": {"type": "string"}, "reason": {"type": "string"}, "violations": {"type": "array", "items": obj(json!({"field": {"type": "string"}, "problem": {"type": "string"}}))}})),
                "ReportBatch": obj(json!({"schema_version": {"type": "integer"}, "agent_id": {"type": "string"}, "events": {"type": "array", "items": {"$ref": "#/components/schemas/IncidentEvent"}}})),
                "IncidentEvent": obj(json!({
                    "event_id": {"type": "string"}, "incident_id": {"type": "string"}, "seq": {"type": "integer"},
                    "kind": {"enum": ["opened", "updated", "resolved"]}, "check": {"type": "string"}, "cause": {"type": "string"},
                    "category": {"type": "string"}, "severity": {"enum": ["minor", "major", "critical"]},
                    "started_at": {"type": "string", "format": "date-time"}, "at": {"type": "string", "format": "date-time"},
                    "summary": {"type": "string"}, "evidence": {"type": "object", "additionalProperties": {"type": "string"}},
                    "actions": {"type": "array", "items": obj(json!({"action": {"type": "string"}, "outcome": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "detail": {"type": "string"}}))},
                    "auto_healed": {"type": "boolean"}
                })),
                "ReportAck": obj(json!({"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}, "acked_event_ids": {"type": "array", "items": {"type": "string"}}})),
                "Heartbeat": obj(json!({"schema_version": {"type": "integer"}, "agent_id": {"type": "string"}, "agent_version": {"type": "string"}, "firmware_version": {"type": "string"}, "uptime_secs": {"type": "integer"}, "sent_at": {"type": "string", "format": "date-time"}, "checks": {"type": "object", "additionalProperties": {"enum": ["ok", "degraded", "failed", "unknown"]}}, "spool_depth": {"type": "integer"}, "dropped_total": {"type": "integer"}})),
                "HeartbeatReply": obj(json!({"schema_version": {"type": "integer"}, "server_time": {"type": "string", "format": "date-time"}, "heartbeat_interval_secs": {"type": "integer"}, "advisories": {"type": "array", "items": {"$ref": "#/components/schemas/Advisory"}}})),
                "Advisory": {"oneOf": [
                    obj(json!({"type": {"const": "upstream_outage"}, "network_event_id": {"type": "string"}, "until": {"type": "string", "format": "date-time"}})),
                    obj(json!({"type": {"const": "kill_switch"}, "reason": {"type": "string"}})),
                    obj(json!({"type": {"const": "diagnostics"}, "request_id": {"type": "string"}, "checks": {"type": "array", "items": {"type": "string"}}}))
                ]},
                "IncidentView": obj(json!({"agent_id": {"type": "string"}, "incident_id": {"type": "string"}, "check": {"type": "string"}, "cause": {"type": "string"}, "category": {"type": "string"}, "severity": {"type": "string"}, "status": {"enum": ["open", "resolved"]}, "started_at": {"type": "string"}, "resolved_at": {"type": ["string", "null"]}, "auto_healed": {"type": ["boolean", "null"]}, "summary": {"type": "string"}, "evidence": {"type": "object"}, "actions": {"type": "array"}, "event_count": {"type": "integer"}})),
                "IncidentPage": obj(json!({"incidents": {"type": "array", "items": {"$ref": "#/components/schemas/IncidentView"}}, "next_cursor": {"type": ["string", "null"]}})),
                "IncidentDetail": {"allOf": [{"$ref": "#/components/schemas/IncidentView"}, obj(json!({"events": {"type": "array", "items": obj(json!({"event_id": {"type": "string"}, "seq": {"type": "integer"}, "kind": {"type": "string"}, "at": {"type": "string"}, "received_at": {"type": "string"}, "action_count": {"type": "integer"}}))}}))]},
                "Device": obj(json!({"agent_id": {"type": "string"}, "state": {"enum": ["online", "offline", "never_seen", "revoked"]}, "region": {"type": ["string", "null"]}, "customer_id": {"type": ["string", "null"]}, "access_node": {"type": ["string", "null"]}, "enrolled_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]}, "first_seen_at": {"type": ["string", "null"]}, "last_seen_at": {"type": ["string", "null"]}, "agent_version": {"type": ["string", "null"]}, "firmware_version": {"type": ["string", "null"]}, "last_heartbeat": {"$ref": "#/components/schemas/Heartbeat"}})),
                "DevicePage": obj(json!({"devices": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}, "next_after": {"type": ["string", "null"]}})),
                "KillSwitchList": obj(json!({"killswitches": {"type": "array", "items": obj(json!({"scope": {"type": "string"}, "target": {"type": "string"}, "reason": {"type": "string"}, "set_at": {"type": "string"}}))}}))
            }
        }
    });
    harden(with_experiments(with_diagnostics_results(doc))).to_string()
}

/// The holdout-experiment routes and schemas, and the experiment fields of the wire types.
fn with_experiments(mut doc: Value) -> Value {
    use netmedic_proto::CheckId;
    use netmedic_proto::experiment_hash::MAX_CONTROL_PERMILLE;
    let obj = |props: Value| json!({"type": "object", "properties": props});
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"});
    let list = json!({"$ref": "#/components/schemas/ExperimentList"});
    doc["paths"]["/api/v1/experiments"] = json!({
        "get": {
            "summary": "Holdout experiments, active first (ended ones are kept for the report)",
            "responses": ok("The list", list.clone())
        },
        "post": {
            "summary": "Start a holdout experiment: a stable share of devices (SHA-256 of salt \":\" agent_id, first 8 bytes mod 1000 < control_permille) runs the scoped playbook in dry_run; operator",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "id": name.clone(),
                    "scope": {"$ref": "#/components/schemas/ExperimentScope"},
                    "control_permille": {"type": "integer", "minimum": 1, "maximum": MAX_CONTROL_PERMILLE},
                    "salt": name.clone()
                },
                "required": ["id", "scope", "control_permille"]
            }}}},
            "responses": merge(
                json!({"201": {"description": "Started", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Experiment"}}}}}),
                error_responses(&["400", "409", "503"])
            )
        }
    });
    doc["paths"]["/api/v1/experiments/{id}"] = json!({"delete": {
        "summary": "End an active experiment: no longer delivered to agents, kept for the report; operator",
        "parameters": [p("id")],
        "responses": merge(ok("The list after the change", list), error_responses(&["400", "404", "503"]))
    }});
    let schemas = &mut doc["components"]["schemas"];
    schemas["ExperimentScope"] = json!({"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "playbook"}, "name": name.clone()}, "required": ["kind", "name"]},
        {"type": "object", "properties": {"kind": {"const": "check"}, "check": wire_enum(CheckId::ALL, CheckId::as_str), "cause": {"type": "string", "pattern": ID_PATTERN}}, "required": ["kind", "check"]}
    ]});
    schemas["Experiment"] = obj(json!({
        "id": {"type": "string"}, "scope": {"$ref": "#/components/schemas/ExperimentScope"},
        "control_permille": {"type": "integer"}, "salt": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "created_by": {"type": "string"}
    }));
    schemas["ExperimentList"] = obj(
        json!({"experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Experiment"}}}),
    );
    let arm = obj(json!({"experiment_id": name, "arm": {"enum": ["treated", "control"]}}));
    schemas["IncidentEvent"]["properties"]["experiment"] = arm.clone();
    schemas["IncidentView"]["properties"]["experiment"] = json!({"oneOf": [arm, {"type": "null"}]});
    schemas["HeartbeatReply"]["properties"]["experiments"] = json!({"type": "array", "items": obj(json!({
        "id": {"type": "string"}, "scope": {"$ref": "#/components/schemas/ExperimentScope"},
        "control_permille": {"type": "integer"}, "salt": {"type": "string"}
    }))});
    doc
}

/// Identifiers on the wire (agent, incident, event, request ids, causes).
const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

fn wire_enum<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Value {
    json!({"type": "string", "enum": all.iter().map(|v| as_str(*v)).collect::<Vec<_>>()})
}

/// Makes the document say what the server does: open routes marked open, 401/403 on every
/// protected operation, axum's own 400/413/415/422 where a body is read, required fields,
/// closed enums and identifier patterns in the request schemas. `tests/openapi_conformance.rs`
/// holds the server to it.
fn harden(mut doc: Value) -> Value {
    use netmedic_proto::{
        ActionId, ActionOutcome, Category, CheckId, CheckStatus, EventKind, Severity,
    };
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    let schemas = &mut doc["components"]["schemas"];
    let ev = &mut schemas["IncidentEvent"];
    for f in ["event_id", "incident_id", "cause"] {
        ev["properties"][f] = id.clone();
    }
    ev["properties"]["seq"] = json!({"type": "integer", "minimum": 0, "maximum": i64::MAX});
    ev["properties"]["kind"] = wire_enum(EventKind::ALL, EventKind::as_str);
    ev["properties"]["check"] = wire_enum(CheckId::ALL, CheckId::as_str);
    ev["properties"]["category"] = wire_enum(Category::ALL, Category::as_str);
    ev["properties"]["severity"] = wire_enum(Severity::ALL, Severity::as_str);
    ev["properties"]["summary"] = json!({"type": "string", "minLength": 1, "maxLength": 512});
    let action = &mut ev["properties"]["actions"]["items"];
    action["properties"]["action"] = wire_enum(ActionId::ALL, ActionId::as_str);
    action["properties"]["outcome"] = wire_enum(ActionOutcome::ALL, ActionOutcome::as_str);
    action["required"] = json!(["action", "outcome", "at"]);
    ev["required"] = json!([
        "event_id",
        "incident_id",
        "seq",
        "kind",
        "check",
        "cause",
        "category",
        "severity",
        "started_at",
        "at",
        "summary"
    ]);
    ev["description"] = json!(
        "Times must lie within 366 days before and 1 hour after the \
        collector clock. One incident stores at most 1000 events and 2000 action records; the \
        excess is acknowledged and folded (counted as duplicates), a resolved event always lands."
    );
    let batch = &mut schemas["ReportBatch"];
    batch["properties"]["agent_id"] = id.clone();
    batch["properties"]["events"]["minItems"] = json!(1);
    batch["properties"]["events"]["maxItems"] = json!(500);
    batch["required"] = json!(["schema_version", "agent_id", "events"]);
    let hb = &mut schemas["Heartbeat"];
    hb["properties"]["agent_id"] = id.clone();
    hb["properties"]["checks"]["additionalProperties"] =
        wire_enum(CheckStatus::ALL, CheckStatus::as_str);
    hb["required"] = json!([
        "schema_version",
        "agent_id",
        "agent_version",
        "firmware_version",
        "uptime_secs",
        "sent_at",
        "checks",
        "spool_depth",
        "dropped_total"
    ]);
    let dr = &mut schemas["DiagnosticsResult"];
    dr["properties"]["agent_id"] = id.clone();
    dr["properties"]["request_id"] = id;
    dr["required"] = json!([
        "schema_version",
        "agent_id",
        "request_id",
        "completed_at",
        "results"
    ]);
    schemas["DiagnosticCheck"]["properties"]["check"] = wire_enum(CheckId::ALL, CheckId::as_str);
    schemas["DiagnosticCheck"]["required"] = json!(["check", "status", "cause", "summary"]);
    schemas["ErrorBody"]["required"] = json!(["error", "reason"]);

    let paths = &mut doc["paths"];
    let diag_body = &mut paths["/api/v1/devices/{agent_id}/diagnostics"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    diag_body["required"] = json!(["checks"]);
    diag_body["properties"]["checks"]["items"] = wire_enum(CheckId::ALL, CheckId::as_str);
    let ks_body = &mut paths["/api/v1/killswitches"]["put"]["requestBody"]["content"]["application/json"]
        ["schema"];
    ks_body["required"] = json!(["scope", "reason"]);
    for open in ["/healthz", "/readyz", "/api/openapi.json"] {
        paths[open]["get"]["security"] = json!([]);
    }
    // Open unless server.metrics_requires_token.
    paths["/metrics"]["get"]["security"] = json!([{}, {"apiToken": []}]);
    let Some(paths) = paths.as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let mut codes: Vec<&str> = Vec::new();
            let open = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(serde_json::Map::is_empty))
                });
            if !open {
                codes.extend(["401", "403"]);
            } else if path == "/metrics" {
                codes.push("401");
            }
            if path.starts_with("/api/v1/") {
                // Unknown or mistyped query parameters, malformed path segments; the database
                // unreachable.
                codes.extend(["400", "503"]);
            }
            if method != "get" && method != "delete" {
                codes.extend(["400", "413", "415"]);
                let json_body = op["requestBody"]["content"]
                    .get("application/json")
                    .is_some();
                let own_decoder = op
                    .get("security")
                    .is_some_and(|s| s.to_string().contains("deviceToken"));
                if json_body && !own_decoder {
                    // axum's Json extractor: well-formed JSON of the wrong shape.
                    codes.push("422");
                }
            }
            let responses = &mut op["responses"];
            for c in codes {
                if responses.get(c).is_none() {
                    responses[c] = error_responses(&[c])[c].clone();
                }
            }
        }
    }
    doc
}

/// The diagnostics-results routes and schemas: a device's result of an on-demand diagnostics
/// request, and the listing of a device's requests with their results.
fn with_diagnostics_results(mut doc: Value) -> Value {
    let obj = |props: Value| json!({"type": "object", "properties": props});
    let ts = json!({"type": "string", "format": "date-time"});
    let ts_or_null = json!({"type": ["string", "null"], "format": "date-time"});
    let status = json!({"enum": ["ok", "degraded", "failed", "unknown"]});
    doc["paths"]["/api/v1/diagnostics-results"] = json!({"post": {
        "summary": "An agent's result of an on-demand diagnostics request, with its device token; stored on the request (idempotent by request_id: the first result stays)",
        "security": [{"deviceToken": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DiagnosticsResult"}}}},
        "responses": merge(
            ok("Stored now or earlier (duplicate)", obj(json!({"request_id": {"type": "string"}, "duplicate": {"type": "boolean"}}))),
            error_responses(&["400", "401", "403", "404", "413", "415", "503"])
        )
    }});
    doc["paths"]["/api/v1/devices/{agent_id}/diagnostics"]["get"] = json!({
        "summary": "A device's diagnostics requests with their results, newest first",
        "parameters": [p("agent_id"), q("limit", "1..=500, default 50")],
        "responses": merge(ok("The list", {
            let mut l = obj(json!({"agent_id": {"type": "string"}, "diagnostics": {"type": "array", "items": {"$ref": "#/components/schemas/DiagnosticsRecord"}}}));
            l["required"] = json!(["agent_id", "diagnostics"]);
            l
        }), error_responses(&["400", "401", "404", "503"]))
    });
    let schemas = &mut doc["components"]["schemas"];
    schemas["DiagnosticCheck"] = obj(json!({
        "check": {"type": "string"}, "status": status, "cause": {"type": "string"},
        "summary": {"type": "string"}, "value": {"type": "string"}, "threshold": {"type": "string"},
        "hint": {"type": "string"}, "evidence": {"type": "object", "additionalProperties": {"type": "string"}}
    }));
    schemas["DiagnosticsResult"] = obj(json!({
        "schema_version": {"type": "integer"}, "agent_id": {"type": "string"},
        "request_id": {"type": "string"}, "completed_at": ts,
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/DiagnosticCheck"}}
    }));
    schemas["DiagnosticsRecord"] = obj(json!({
        "request_id": {"type": "string"}, "state": {"enum": ["queued", "delivered", "completed"]},
        "checks": {"type": "array", "items": {"type": "string"}}, "requested_at": ts,
        "delivered_at": ts_or_null, "completed_at": ts_or_null,
        "result": {"oneOf": [{"$ref": "#/components/schemas/DiagnosticsResult"}, {"type": "null"}]}
    }));
    doc
}
