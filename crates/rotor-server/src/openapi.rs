//! `/v1/openapi.json`: the native API's description.

use axum::Json;
use serde_json::{Value, json};

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"},
           "description": "Secret name, percent-encoded (slashes as %2F)"})
}

fn op(summary: &str, params: Vec<Value>, body: Option<Value>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": {
            ok: {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
            "409": {"$ref": "#/components/responses/Error"}
        }
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn sys_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn q(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}, "description": desc})
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

pub(crate) async fn document() -> Json<Value> {
    let value_props = json!({
        "value": {"type": "string"},
        "value_base64": {"type": "string", "format": "byte"},
        "version_id": {"type": "string"},
    });
    let mut create_props = value_props.clone();
    create_props["name"] = json!({"type": "string"});
    create_props["description"] = json!({"type": "string"});
    create_props["tags"] = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut put_props = value_props;
    put_props["stages"] = json!({"type": "array", "items": {"type": "string"}});
    let rules = obj(
        json!({
            "AutomaticallyAfterDays": {"type": "integer", "minimum": 1, "maximum": 1000},
            "ScheduleExpression": {"type": "string", "description": "rate(N hours|days) or cron(0 H DOM MON DOW *), UTC"},
            "Duration": {"type": "string", "description": "Window length, 1h-24h"},
        }),
        &[],
    );
    let rotation_props = json!({
        "rotator": {"type": "string", "description": "Rotator name, or arn:aws:lambda:REGION:ACCOUNT:function:NAME"},
        "rules": rules,
        "rotate_immediately": {"type": "boolean", "default": false},
        "version_id": {"type": "string", "description": "Id of the version the rotation creates (ClientRequestToken)"},
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Rotor native API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema":
                obj(json!({"error": obj(json!({"type": {"type": "string"}, "message": {"type": "string"}}), &["type", "message"])}), &["error"])}}}}
        },
        "paths": {
            "/v1/secrets": {
                "post": op("Create a secret", vec![], Some(obj(create_props, &["name"])), "201"),
                "get": op("List secrets", vec![q("prefix", "string", "Name prefix"), q("include_deleted", "boolean", "Include secrets scheduled for deletion"),
                          q("max_results", "integer", "Page size (1-1000)"), q("next_token", "string", "Page token"), q("desc", "boolean", "Newest first")], None, "200"),
            },
            "/v1/secrets/{name}": {
                "get": op("Get a version's value (default AWSCURRENT)", vec![name_param(), q("version_id", "string", "Version id"), q("stage", "string", "Staging label or alias")], None, "200"),
                "put": op("Put a new version", vec![name_param()], Some(obj(put_props, &[])), "200"),
                "delete": op("Delete a secret", vec![name_param(), q("recovery_window_days", "integer", "7-30, default 30"), q("force", "boolean", "Delete without recovery")], None, "200"),
            },
            "/v1/metadata/{name}": {
                "get": op("Describe a secret", vec![name_param()], None, "200"),
                "patch": op("Update the description", vec![name_param()], Some(obj(json!({"description": {"type": "string"}}), &[])), "200"),
            },
            "/v1/restore/{name}": {"post": op("Cancel a scheduled deletion", vec![name_param()], None, "200")},
            "/v1/versions/{name}": {"get": op("List versions", vec![name_param(), q("include_deprecated", "boolean", "Include versions without labels")], None, "200")},
            "/v1/stages/{name}": {"post": op("Move or remove a staging label", vec![name_param()],
                Some(obj(json!({"stage": {"type": "string"}, "move_to": {"type": "string"}, "remove_from": {"type": "string"}}), &["stage"])), "200")},
            "/v1/tags/{name}": {
                "post": op("Add tags", vec![name_param()], Some(obj(json!({"tags": {"type": "object", "additionalProperties": {"type": "string"}}}), &["tags"])), "200"),
                "delete": op("Remove tags", vec![name_param(), json!({"name": "keys", "in": "query", "required": true, "schema": {"type": "string"}, "description": "Comma-separated keys"})], None, "200"),
            },
            "/v1/rotation/{name}": {
                "get": op("Show rotation: configuration, schedule and the latest rotation with its steps", vec![name_param()], None, "200"),
                "put": op("Configure rotation (RotateSecret); rotates now only with rotate_immediately", vec![name_param()], Some(obj(rotation_props, &[])), "200"),
            },
            "/v1/rotation-history/{name}": {"get": op("List rotations, newest first", vec![name_param(), q("limit", "integer", "How many (1-1000, default 20)")], None, "200")},
            "/v1/cancel-rotation/{name}": {"post": op("Turn scheduled rotation off and stop a running rotation (CancelRotateSecret)", vec![name_param()], None, "200")},
            "/v1/rotate/{name}": {"post": op("Rotate now with the configured rotator", vec![name_param()],
                Some(obj(json!({"version_id": {"type": "string", "description": "Id of the new version (ClientRequestToken)"}}), &[])), "200")},
            "/v1/sys/principals": {
                "post": op("Create a principal (admin on sys/principals/NAME)", vec![],
                    Some(obj(json!({"name": {"type": "string"}, "kind": {"type": "string", "enum": ["service", "person"]}}), &["name"])), "201"),
                "get": op("List principals with their policies, tokens and access keys", vec![], None, "200"),
            },
            "/v1/sys/principals/{name}": {"delete": op("Delete a principal with its tokens and keys", vec![sys_param("name")], None, "200")},
            "/v1/sys/principals/{name}/policies/{policy}": {
                "put": op("Attach a policy", vec![sys_param("name"), sys_param("policy")], None, "200"),
                "delete": op("Detach a policy", vec![sys_param("name"), sys_param("policy")], None, "200"),
            },
            "/v1/sys/policies": {"get": op("List policies", vec![], None, "200")},
            "/v1/sys/policies/{name}": {
                "put": op("Create or replace a policy", vec![sys_param("name")], Some(obj(json!({"statements": {"type": "array", "items": obj(json!({
                    "effect": {"type": "string", "enum": ["allow", "deny"]},
                    "capabilities": {"type": "array", "items": {"type": "string", "enum": ["read", "write", "list", "describe", "rotate", "delete", "share", "admin"]}},
                    "paths": {"type": "array", "items": {"type": "string"}}}), &["effect", "capabilities", "paths"])}}), &["statements"])), "200"),
                "get": op("Read a policy", vec![sys_param("name")], None, "200"),
                "delete": op("Delete a policy, detaching it everywhere", vec![sys_param("name")], None, "200"),
            },
            "/v1/sys/tokens": {"post": op("Create a token for a principal; the token is in this answer only", vec![],
                Some(obj(json!({"principal": {"type": "string"}, "ttl_secs": {"type": "integer"}}), &["principal"])), "201")},
            "/v1/sys/tokens/lookup": {"post": op("Look up a token (id or value), or the caller's own", vec![],
                Some(obj(json!({"token": {"type": "string"}}), &[])), "200")},
            "/v1/sys/tokens/revoke": {"post": op("Revoke a token (id or value)", vec![],
                Some(obj(json!({"token": {"type": "string"}}), &["token"])), "200")},
            "/v1/sys/access-keys": {"post": op("Create an access key pair; the secret key is in this answer only", vec![],
                Some(obj(json!({"principal": {"type": "string"}}), &["principal"])), "201")},
            "/v1/sys/access-keys/{id}": {"delete": op("Delete an access key pair", vec![sys_param("id")], None, "200")},
            "/v1/sys/rotators": {
                "post": op("Register a rotator (admin on sys/rotators/NAME); a webhook's signing_key is in this answer only", vec![],
                    Some(obj(json!({"name": {"type": "string"}, "type": {"type": "string", "enum": rotor_engine::rotation::KINDS},
                        "config": {"type": "object", "description": "The type's settings"}, "replace": {"type": "boolean"}}), &["name", "type"])), "201"),
                "get": op("List rotators", vec![], None, "200"),
            },
            "/v1/sys/rotators/{name}": {
                "get": op("Show a rotator (never its signing key)", vec![sys_param("name")], None, "200"),
                "delete": op("Delete a rotator", vec![sys_param("name")], None, "200"),
            },
            "/v1/password": {"post": op("Generate a random password", vec![], Some(obj(json!({
                "length": {"type": "integer"}, "exclude_characters": {"type": "string"}, "exclude_numbers": {"type": "boolean"},
                "exclude_punctuation": {"type": "boolean"}, "exclude_uppercase": {"type": "boolean"}, "exclude_lowercase": {"type": "boolean"},
                "include_space": {"type": "boolean"}, "require_each_included_type": {"type": "boolean"}}), &[])), "200")},
        }
    });
    for (path, item) in event_paths().into_iter().chain(consumer_paths()) {
        doc["paths"][path] = item;
    }
    Json(doc)
}

/// Change events: the watch stream, the long poll, and subscriptions.
fn event_paths() -> Vec<(&'static str, Value)> {
    let event = obj(
        json!({
            "seq": {"type": "integer", "description": "Gap-free sequence number"},
            "at": {"type": "string", "format": "date-time"},
            "kind": {"type": "string", "enum": rotor_engine::events::KINDS},
            "secret": {"type": "string", "nullable": true},
            "detail": {"type": "object", "description": "Never a secret value"},
        }),
        &["seq", "at", "kind", "detail"],
    );
    let watch_params = || {
        vec![
            q(
                "prefix",
                "string",
                "Secrets whose name starts with this (default: all)",
            ),
            q(
                "after",
                "integer",
                "Resume after this sequence number (default: from now)",
            ),
        ]
    };
    let mut watch = op(
        "Watch changes as Server-Sent Events (id: seq, event: kind, data: the event); resumable with after or Last-Event-ID; a keep-alive comment every 15 s",
        watch_params(),
        None,
        "200",
    );
    watch["parameters"]
        .as_array_mut()
        .expect("parameters")
        .push(json!({"name": "Last-Event-ID", "in": "header", "required": false,
                     "schema": {"type": "integer"}, "description": "Resume after this sequence number; wins over after"}));
    watch["responses"]["200"] = json!({"description": "The stream",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    let mut poll_params = watch_params();
    poll_params.push(q(
        "wait",
        "integer",
        "Seconds to wait for an event when there is none yet (0-300, default 0)",
    ));
    let mut poll = op(
        "Changes after a sequence number, as a long poll: {events, last_seq}; resume after last_seq",
        poll_params,
        None,
        "200",
    );
    poll["responses"]["200"]["content"]["application/json"]["schema"] = obj(
        json!({"events": {"type": "array", "items": event}, "last_seq": {"type": "integer"}}),
        &["events", "last_seq"],
    );
    let subscription = obj(
        json!({
            "name": {"type": "string", "description": "1-64 letters, digits, - and _"},
            "prefix": {"type": "string", "description": "Secrets whose name starts with this (default: all)"},
            "kinds": {"type": "array", "items": {"type": "string"}, "description": "Event kinds, or families as rotation.* (default: all)"},
            "url": {"type": "string", "description": "webhook: POST each event here, signed (x-rotor-signature)"},
            "command": {"type": "array", "items": {"type": "string"}, "description": "exec: run this with the event on stdin"},
            "timeout_ms": {"type": "integer", "description": "Longest a delivery may take (default 10000)"},
            "from_seq": {"type": "integer", "description": "Deliver the events after this one (default: from now)"},
        }),
        &["name"],
    );
    vec![
        ("/v1/watch", json!({"get": watch})),
        ("/v1/events", json!({"get": poll})),
        (
            "/v1/sys/subscriptions",
            json!({
                "post": op("Subscribe a webhook (url) or a local command (command) to events (admin on sys/subscriptions/NAME); a webhook's signing_key is in this answer only",
                    vec![], Some(subscription), "201"),
                "get": op("List subscriptions", vec![], None, "200"),
            }),
        ),
        (
            "/v1/sys/subscriptions/{name}",
            json!({
                "get": op("Show a subscription and its cursor (never its signing key)", vec![sys_param("name")], None, "200"),
                "delete": op("Delete a subscription and its delivery log", vec![sys_param("name")], None, "200"),
            }),
        ),
        (
            "/v1/sys/subscriptions/{name}/deliveries",
            json!({"get": op("A subscription's delivery attempts, newest first",
                vec![sys_param("name"), q("limit", "integer", "How many (1-1000, default 50)"),
                     q("dead", "boolean", "Only dead-lettered events")], None, "200")}),
        ),
    ]
}

/// Consumer acknowledgements.
fn consumer_paths() -> Vec<(&'static str, Value)> {
    let ack = obj(
        json!({
            "consumer": {"type": "string", "description": "The consumer's id (1-256 bytes)"},
            "secret": {"type": "string", "description": "Secret name or ARN"},
            "version_id": {"type": "string", "description": "The version it has in use"},
        }),
        &["consumer", "secret", "version_id"],
    );
    vec![
        (
            "/v1/consumers",
            json!({"post": op("Report the version of a secret a consumer has in use (read on the secret); recorded as a consumer.ack event with the caller's address",
                vec![], Some(ack), "200")}),
        ),
        (
            "/v1/consumers/{name}",
            json!({"get": op("The latest report of each consumer of a secret, and whether its version is AWSCURRENT (describe on the secret); scans the last scan_limit events, complete says whether that was all",
                vec![name_param()], None, "200")}),
        ),
    ]
}
