//! `/admin/health`, `/admin/events` and forced probes (seed 001's force_health_check).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::Error;
use crate::gateway::Gateway;
use crate::health::{Health, checker};
use crate::stats::clock_ns;

/// Events `GET /admin/health` includes.
const RECENT: usize = 20;

/// Every instance's health, every task group breaker, the latest events.
pub(super) async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let snap = gw.snapshot();
    let now = clock_ns();
    let instances: Vec<_> = (snap.instances.iter())
        .map(|i| snap.health.view(i, now))
        .collect();
    let mut groups = BTreeMap::new();
    for tier in snap.routes.tiers() {
        if let Some(g) = &tier.group {
            groups
                .entry(g.name.as_str())
                .or_insert_with(|| Health::group_view(g, now));
        }
    }
    let groups: Vec<_> = (groups.into_iter())
        .map(|(name, breaker)| serde_json::json!({ "name": name, "breaker": breaker }))
        .collect();
    Json(serde_json::json!({
        "instances": instances,
        "task_groups": groups,
        "recent_events": snap.health.events.after(0, RECENT),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

/// State changes after `?since=SEQ` (default: all kept), oldest first, at most `?limit=N`.
pub(super) async fn events(
    State(gw): State<Arc<Gateway>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return Error::BadRequest(format!("invalid query: {}", e.body_text())).into_response();
        }
    };
    let data = gw
        .snapshot()
        .health
        .events
        .after(q.since, q.limit.unwrap_or(usize::MAX));
    Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

/// Probe one instance now and apply the verdict, as a scheduled probe would.
pub(super) async fn check_now(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let snap = gw.snapshot();
    let Some(inst) = snap.instance(&id).cloned() else {
        return Error::Missing(format!("no instance {id:?}")).into_response();
    };
    let verdict = checker::probe(&inst).await;
    let now = clock_ns();
    snap.health.on_probe(&snap, &inst, &verdict, now);
    Json(serde_json::json!({
        "id": id,
        "probe": {
            "kind": inst.spec.health.probe.as_str(),
            "ok": verdict.ok,
            "class": verdict.class.map(|c| c.as_str()),
            "detail": verdict.detail,
        },
        "health": snap.health.view(&inst, now),
    }))
    .into_response()
}
