//! `GET /admin/openapi.json`: the admin API described as OpenAPI 3.1, rendered from one table
//! ([`OPS`]). A unit test checks the table against the routes `admin::router` declares, and an
//! end-to-end test calls every documented operation on the real binary.

use serde_json::{Map, Value, json};

/// One operation: method, path (axum's `{param}` syntax is OpenAPI's too), summary, and the
/// request body schema if it takes one.
pub(super) struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<fn() -> Value>,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        summary,
        body: None,
    }
}

fn strategy_body() -> Value {
    json!({"type": "object", "required": ["strategy"], "additionalProperties": false,
        "properties": {"strategy": {"type": "string",
            "enum": crate::balance::StrategyKind::ALL.map(crate::balance::StrategyKind::as_str)}}})
}

fn weight_body() -> Value {
    json!({"type": "object", "required": ["weight"], "additionalProperties": false,
        "properties": {"weight": {"type": "integer", "minimum": 1}}})
}

fn instance_body() -> Value {
    let string = json!({"type": "string"});
    let count = json!({"type": "integer", "minimum": 1});
    json!({"type": "object", "required": ["id", "model"], "additionalProperties": false,
    "properties": {
        "id": string, "model": {"type": "string", "description": "provider:model"},
        "base_url": string, "api_key": string,
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "weight": count, "timeout": {"type": "number", "exclusiveMinimum": 0},
        "price": {"type": "object", "properties": {
            "input_per_1k": {"type": "number"}, "output_per_1k": {"type": "number"}}},
        "mock": {"type": "object", "description": "mock behaviour (type = \"mock\" providers)"},
        "rpm_limit": count, "tpm_limit": count, "concurrency_limit": count,
    }})
}

/// Every admin operation.
pub(super) const OPS: &[Op] = &[
    op(
        "get",
        "/admin/status",
        "Everything at once: instances (state and why, in-flight, RPM, error rate, p50/p95, tokens, cost), pools, task groups, recent events",
    ),
    op(
        "get",
        "/admin/pools",
        "Every tier (pool, task group echelon, model) and its strategy",
    ),
    op(
        "get",
        "/admin/pools/{name}",
        "One tier: members with in-flight, latency, outcomes, tokens, cost, last minute",
    ),
    Op {
        body: Some(strategy_body),
        ..op(
            "put",
            "/admin/pools/{name}/strategy",
            "Switch a tier's balancing strategy",
        )
    },
    op(
        "get",
        "/admin/instances",
        "Every instance, draining ones included",
    ),
    Op {
        body: Some(instance_body),
        ..op(
            "post",
            "/admin/instances",
            "Register an instance at runtime",
        )
    },
    op(
        "get",
        "/admin/instances/{id}",
        "One instance's live statistics",
    ),
    op(
        "delete",
        "/admin/instances/{id}",
        "Deregister an instance (it drains: running requests finish)",
    ),
    Op {
        body: Some(weight_body),
        ..op(
            "put",
            "/admin/instances/{id}/weight",
            "Set an instance's weight",
        )
    },
    op(
        "post",
        "/admin/instances/{id}/health-check",
        "Probe an instance now",
    ),
    op(
        "get",
        "/admin/instances/{id}/history",
        "Sampled totals, oldest first, one point per `[global] metrics_interval` (last 90)",
    ),
    op(
        "get",
        "/admin/health",
        "Health, ejection, breaker and probes of every instance; group breakers",
    ),
    op(
        "get",
        "/admin/events",
        "Health state changes, oldest first (`since` query: an event id)",
    ),
    op(
        "get",
        "/admin/fallbacks",
        "Every route's plan, what served it, its spend, recent fallbacks",
    ),
    op(
        "get",
        "/admin/limits",
        "Every limiter: capacity, use, admitted, refused; the queue",
    ),
    op(
        "get",
        "/admin/config",
        "Active config version, source digest, last refused reload, sections",
    ),
    op("post", "/admin/reload", "Re-read the config files now"),
    op(
        "get",
        "/admin/cache",
        "The response cache's size and counters",
    ),
    op("delete", "/admin/cache", "Empty the response cache"),
    op(
        "get",
        "/admin/spend",
        "Tokens and cost by route, instance and client",
    ),
    op("get", "/admin/openapi.json", "This document"),
];

/// The OpenAPI document.
pub(super) fn document() -> Value {
    let error = json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type"], "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "code": {"type": ["string", "null"]}}}}});
    let mut paths = Map::new();
    for o in OPS {
        let mut operation = json!({
            "summary": o.summary,
            "operationId": format!("{}_{}", o.method, o.path.trim_start_matches("/admin/")
                .replace(['/', '-', '.'], "_").replace(['{', '}'], "")),
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": {"description": "No or wrong admin token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        let params: Vec<Value> = (o.path.split('/'))
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
            operation["responses"]["404"] = json!({"description": "No such tier or instance",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        if let Some(body) = o.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body()}}});
            operation["responses"]["400"] = json!({"description": "Malformed body",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
            operation["responses"]["409"] = json!({"description": "The change was refused; nothing changed",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        let item = paths.entry(o.path).or_insert_with(|| json!({}));
        item[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "switchyard admin API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Runtime changes and live state of a switchyard gateway. Every call needs `Authorization: Bearer <[server] admin_token>`."},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": error},
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(method, path)` of every route `admin::router` declares, read from its source.
    fn declared() -> BTreeSet<(String, String)> {
        let source = include_str!("../admin.rs");
        let start = source.find("pub fn router").expect("router");
        let end = start + source[start..].find(".route_layer").expect("route_layer");
        let mut out = BTreeSet::new();
        for segment in source[start..end].split(".route(").skip(1) {
            let path = segment
                .split('"')
                .nth(1)
                .expect("a path literal")
                .to_owned();
            for method in ["get", "post", "put", "delete"] {
                let calls = segment.matches(&format!("{method}(")).count();
                // `get(x)` and `.get(x)` both count; nothing else in a route line has them.
                if calls > 0 {
                    out.insert((method.to_owned(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_lists_exactly_the_routes_the_router_has() {
        let documented: BTreeSet<(String, String)> = OPS
            .iter()
            .map(|o| (o.method.to_owned(), o.path.to_owned()))
            .collect();
        assert_eq!(documented.len(), OPS.len(), "an operation is listed twice");
        assert_eq!(documented, declared());
    }

    #[test]
    fn every_operation_has_an_id_responses_and_its_path_parameters() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for o in OPS {
            let operation = &doc["paths"][o.path][o.method];
            assert!(
                ids.insert(operation["operationId"].to_string()),
                "{}",
                o.path
            );
            assert!(operation["responses"]["200"].is_object());
            assert!(operation["responses"]["401"].is_object());
            let params = o.path.matches('{').count();
            assert_eq!(
                operation["parameters"].as_array().map_or(0, Vec::len),
                params,
                "{}",
                o.path
            );
            assert_eq!(operation["requestBody"].is_object(), o.body.is_some());
        }
    }
}
