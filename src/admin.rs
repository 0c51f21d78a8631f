//! The admin HTTP API: the instance registry and strategies at runtime, and what every tier is
//! doing. Every call needs `Authorization: Bearer <[server] admin_token>`; without a configured
//! token the API is off (401 on every call, saying so).
//!
//! - `GET /admin/status`: the whole picture in one reading (what `/dashboard` polls): every
//!   instance's state and why, in-flight, RPM, error rate, p50/p95, tokens, cost; pools and task
//!   groups with their strategies and members; the latest events.
//! - `GET /dashboard` (no token to load; it asks for one): the live status page over
//!   `/admin/status` and `/admin/instances/{id}/history`, with strategy switch, health check
//!   and drain.
//! - `GET /admin/pools`: every tier (pool, `group.echelon`, model, instance) and its strategy.
//! - `GET /admin/pools/{name}`: one tier's strategy and each member's live statistics.
//! - `PUT /admin/pools/{name}/strategy` `{"strategy": "p2c"}`: switch, while traffic flows.
//! - `GET /admin/instances`, `GET /admin/instances/{id}`: instances and their statistics.
//! - `POST /admin/instances` `{"id","model":"provider:model","base_url",...}`: register.
//! - `DELETE /admin/instances/{id}`: deregister; it drains (no new requests, running ones
//!   finish), and `GET /admin/instances/{id}` shows it draining until it is gone.
//! - `PUT /admin/instances/{id}/weight` `{"weight": 3}`.
//! - `GET /admin/health`: every instance's health state, ejection, breaker, probes and error
//!   window; every task group breaker; the latest events.
//! - `GET /admin/events?since=SEQ&limit=N`: health state changes, oldest first.
//! - `POST /admin/instances/{id}/health-check`: probe it now; the verdict applies.
//! - `GET /admin/config`: the active config's version, source digest, the last refused reload.
//! - `GET /admin/openapi.json`: all of the above as OpenAPI 3.1 (`openapi`).
//! - `POST /admin/reload`: re-read the files now (200 with the status; 409 with the issues,
//!   the current config still serving).
//! - `GET /admin/limits`: every limiter (tiers' and instances'): capacity, use, refusals.
//! - `GET /admin/fallbacks`: every route's plan (its steps and why), how often each kind of
//!   step served it, and the latest requests that fell back or failed.

mod health;
mod openapi;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, middleware};
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::balance::StrategyKind;
use crate::config::{NewInstance, Price};
use crate::error::Error;
use crate::gateway::{ChangeError, Gateway};
use crate::health::{Health, InstanceHealth};
use crate::route::Tier;
use crate::snapshot::Snapshot;
use crate::stats::{LiveView, clock_ms, clock_ns};
use crate::upstream::Instance;

pub fn router(gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/status", get(status::status))
        .route("/admin/pools", get(pools))
        .route("/admin/pools/{name}", get(pool))
        .route("/admin/pools/{name}/strategy", put(set_strategy))
        .route("/admin/instances", get(instances).post(register))
        .route("/admin/instances/{id}", get(instance).delete(deregister))
        .route("/admin/instances/{id}/weight", put(set_weight))
        .route("/admin/instances/{id}/history", get(history))
        .route(
            "/admin/instances/{id}/health-check",
            post(health::check_now),
        )
        .route("/admin/health", get(health::health))
        .route("/admin/events", get(health::events))
        .route("/admin/fallbacks", get(fallbacks))
        .route("/admin/limits", get(limits))
        .route("/admin/config", get(config_status))
        .route("/admin/cache", get(cache_stats).delete(cache_clear))
        .route("/admin/spend", get(spend))
        .route("/admin/reload", post(reload))
        .route("/admin/openapi.json", get(openapi_document))
        .route_layer(middleware::from_fn_with_state(gateway, authorize))
}

async fn authorize(
    State(gw): State<Arc<Gateway>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match check_token(&gw.snapshot(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check_token(snap: &Snapshot, headers: &HeaderMap) -> Result<(), Error> {
    let Some(expected) = &snap.config.admin_token else {
        return Err(Error::Unauthorized(
            "the admin API is off: set [server] admin_token in _registry.toml (e.g. \"${SWITCHYARD_ADMIN_TOKEN}\")".to_owned(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "missing or wrong admin token: send Authorization: Bearer <[server] admin_token>"
                .to_owned(),
        ))
    }
}

/// Compare without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Serialize)]
struct TierSummary<'a> {
    name: &'a str,
    strategy: &'static str,
    members: usize,
}

async fn pools(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let mut tiers: Vec<&Arc<Tier>> = snap.routes.tiers().collect();
    tiers.sort_by(|a, b| a.label.cmp(&b.label));
    let list: Vec<TierSummary<'_>> = tiers
        .iter()
        .map(|t| TierSummary {
            name: &t.label,
            strategy: t.strategy_kind.as_str(),
            members: t.members.len(),
        })
        .collect();
    Json(serde_json::json!({ "object": "list", "data": list })).into_response()
}

#[derive(Serialize)]
struct MemberView<'a> {
    id: &'a str,
    model: &'a str,
    weight: u32,
    price: Price,
    #[serde(flatten)]
    live: LiveView,
}

async fn pool(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    let snap = gw.snapshot();
    let Some(tier) = snap.routes.tier(&name) else {
        return no_tier(&name).into_response();
    };
    let now = clock_ns();
    let members: Vec<MemberView<'_>> = tier
        .members
        .iter()
        .filter_map(|m| {
            let instance = snap.instances.get(m.instance)?;
            Some(MemberView {
                id: &instance.spec.id,
                model: &instance.spec.model_ref,
                weight: m.weight,
                price: m.price,
                live: m.live.view(now),
            })
        })
        .collect();
    Json(serde_json::json!({
        "name": tier.label,
        "strategy": tier.strategy_kind.as_str(),
        "max_attempts": tier.max_attempts,
        "members": members,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyBody {
    strategy: String,
}

async fn set_strategy(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    body: Result<Json<StrategyBody>, JsonRejection>,
) -> Response {
    let result = (|| {
        let Json(body) = body.map_err(bad_json)?;
        let kind: StrategyKind = body
            .strategy
            .parse()
            .map_err(|e: crate::balance::UnknownStrategy| Error::BadRequest(e.to_string()))?;
        gw.set_strategy(&name, kind).map_err(change_error)?;
        tracing::info!(tier = %name, strategy = kind.as_str(), "strategy switched");
        Ok::<_, Error>(Json(
            serde_json::json!({ "name": name, "strategy": kind.as_str() }),
        ))
    })();
    respond(result)
}

#[derive(Serialize)]
struct InstanceView<'a> {
    id: &'a str,
    model: &'a str,
    provider: &'a str,
    base_url: &'a str,
    weight: u32,
    price: Price,
    state: &'static str,
    #[serde(flatten)]
    live: LiveView,
    health: InstanceHealth,
}

fn view<'a>(instance: &'a Instance, state: &'static str, health: &Health) -> InstanceView<'a> {
    InstanceView {
        health: health.view(instance, clock_ns()),
        id: &instance.spec.id,
        model: &instance.spec.model_ref,
        provider: &instance.spec.provider,
        base_url: &instance.base_url,
        weight: instance.spec.weight.get(),
        price: instance.spec.price,
        state,
        live: instance.live.view(clock_ns()),
    }
}

async fn instances(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let draining = gw.draining();
    let h = &snap.health;
    let list: Vec<InstanceView<'_>> = (snap.instances.iter().map(|i| view(i, "active", h)))
        .chain(draining.iter().map(|i| view(i, "draining", h)))
        .collect();
    Json(serde_json::json!({ "object": "list", "data": list })).into_response()
}

async fn instance(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let snap = gw.snapshot();
    if let Some(i) = snap.instance(&id) {
        return Json(view(i, "active", &snap.health)).into_response();
    }
    match gw.draining().into_iter().find(|i| i.spec.id == id) {
        Some(i) => Json(view(&i, "draining", &snap.health)).into_response(),
        None => Error::Missing(format!("no instance {id:?}")).into_response(),
    }
}

/// The instance's sampled totals, oldest first (one point per `[global] metrics_interval`).
async fn history(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let snap = gw.snapshot();
    match snap.instance(&id) {
        Some(i) => Json(serde_json::json!({
            "interval_s": snap.config.telemetry.metrics_interval.as_secs_f64(),
            "points": i.live.history(),
        }))
        .into_response(),
        None => Error::Missing(format!("no instance {id:?}")).into_response(),
    }
}

async fn register(
    State(gw): State<Arc<Gateway>>,
    body: Result<Json<NewInstance>, JsonRejection>,
) -> Response {
    let result = (|| {
        let Json(new) = body.map_err(bad_json)?;
        if new.id.is_empty() {
            return Err(Error::BadRequest("id must not be empty".to_owned()));
        }
        let instance = gw.register_instance(new).map_err(change_error)?;
        tracing::info!(instance = %instance.spec.id, model = %instance.spec.model_ref, "instance registered");
        let health = &gw.snapshot().health;
        Ok((StatusCode::CREATED, Json(view(&instance, "active", health))).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn deregister(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let result = gw.deregister_instance(&id).map_err(change_error);
    result.map_or_else(IntoResponse::into_response, |instance| {
        let state = if instance.live.in_flight() > 0 {
            "draining"
        } else {
            "drained"
        };
        Json(view(&instance, state, &gw.snapshot().health)).into_response()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: u32,
}

async fn set_weight(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Result<Json<WeightBody>, JsonRejection>,
) -> Response {
    let result = (|| {
        let Json(body) = body.map_err(bad_json)?;
        gw.set_weight(&id, body.weight).map_err(change_error)?;
        tracing::info!(instance = %id, weight = body.weight, "weight changed");
        Ok::<_, Error>(Json(serde_json::json!({ "id": id, "weight": body.weight })))
    })();
    respond(result)
}

/// The live status page: one embedded file, no external assets. It holds no data itself and
/// needs no token to load; it reads `/admin/status` with the token the operator enters.
pub async fn dashboard() -> Response {
    const PAGE: &str = include_str!("admin/dashboard.html");
    const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
        connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

/// The admin API as OpenAPI 3.1.
async fn openapi_document() -> Response {
    Json(openapi::document()).into_response()
}

/// Tokens and cost by route, instance and client.
async fn spend(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let now = clock_ns();
    let routes: serde_json::Map<String, serde_json::Value> = (snap.routes.iter())
        .map(|r| (r.name.to_string(), serde_json::json!(r.stats.spend.read())))
        .collect();
    let instances: serde_json::Map<String, serde_json::Value> = (snap.instances.iter())
        .map(|i| {
            let v = i.live.view(now);
            let spend = serde_json::json!({
                "prompt_tokens": v.prompt_tokens,
                "completion_tokens": v.completion_tokens,
                "cost": v.cost,
            });
            (i.spec.id.clone(), spend)
        })
        .collect();
    let clients: serde_json::Map<String, serde_json::Value> = (snap.client_spend.read())
        .into_iter()
        .map(|(name, s)| (name.to_string(), serde_json::json!(s)))
        .collect();
    Json(serde_json::json!({ "routes": routes, "instances": instances, "clients": clients }))
        .into_response()
}

/// `[global.cache]`: its size and counters (`enabled: false` when it is off).
async fn cache_stats(State(gw): State<Arc<Gateway>>) -> Response {
    match &gw.snapshot().cache {
        Some(cache) => Json(serde_json::json!({ "enabled": true, "cache": cache.stats() })),
        None => Json(serde_json::json!({ "enabled": false })),
    }
    .into_response()
}

/// Drop every cached reply.
async fn cache_clear(State(gw): State<Arc<Gateway>>) -> Response {
    let cleared = gw.snapshot().cache.as_ref().map_or(0, |c| c.clear());
    Json(serde_json::json!({ "cleared": cleared })).into_response()
}

async fn config_status(State(gw): State<Arc<Gateway>>) -> Response {
    Json(gw.config_status()).into_response()
}

async fn reload(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.reload() {
        Ok(changed) => {
            Json(serde_json::json!({ "reloaded": changed, "config": gw.config_status() }))
                .into_response()
        }
        Err(e) => change_error(e).into_response(),
    }
}

async fn limits(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let now_ms = clock_ms();
    let mut tiers: Vec<_> = (snap.routes.tiers())
        .filter_map(|t| t.limits.as_ref().map(|l| l.view(now_ms)))
        .collect();
    tiers.sort_by(|a, b| a.name.cmp(&b.name));
    let instances: Vec<_> = (snap.instances.iter())
        .filter_map(|i| i.limits.as_ref().map(|l| l.view(now_ms)))
        .collect();
    let mut models: Vec<_> = (snap.instances.iter())
        .filter_map(|i| i.model_limits.as_ref().map(|l| l.view(now_ms)))
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models.dedup_by(|a, b| a.name == b.name);
    let mut groups: Vec<_> = (snap.routes.tiers())
        .filter_map(|t| t.group_limits.as_ref().map(|l| l.view(now_ms)))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);
    let clients: Vec<_> = snap.clients.all().iter().map(|l| l.view(now_ms)).collect();
    Json(serde_json::json!({
        "groups": groups,
        "tiers": tiers,
        "models": models,
        "instances": instances,
        "clients": clients,
        "queue": { "waiting": snap.queue.waiting() },
    }))
    .into_response()
}

async fn fallbacks(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let routes: Vec<serde_json::Value> = (snap.routes.iter())
        .map(|r| {
            let (served, failed) = r.stats.read();
            let plan: Vec<serde_json::Value> = (r.steps.iter())
                .map(|s| serde_json::json!({ "tier": s.tier.label, "step": s.why }))
                .collect();
            serde_json::json!({
                "route": &*r.name,
                "kind": r.kind.as_str(),
                "max_attempts": r.max_attempts,
                "plan": plan,
                "served_by": served.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "failed": failed,
                "spend": r.stats.spend.read(),
            })
        })
        .collect();
    Json(serde_json::json!({
        "routes": routes,
        "recent": snap.fallbacks.recent(100),
    }))
    .into_response()
}

fn respond(result: Result<Json<serde_json::Value>, Error>) -> Response {
    result.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

fn bad_json(e: JsonRejection) -> Error {
    Error::BadRequest(format!("invalid admin request body: {}", e.body_text()))
}

fn no_tier(name: &str) -> Error {
    Error::Missing(format!(
        "no pool or tier {name:?}: GET /admin/pools lists them"
    ))
}

fn change_error(e: ChangeError) -> Error {
    match e {
        ChangeError::NotFound(m) => Error::Missing(m),
        ChangeError::Conflict(m) => Error::Conflict(m),
        ChangeError::Invalid(e) => Error::Conflict(format!("refused, nothing changed: {e}")),
        ChangeError::Mock(e) => Error::Conflict(e.to_string()),
    }
}
