//! `GET /metrics`: OpenMetrics text (`prometheus-client`), read at scrape time from the
//! counters the request path already keeps (each instance's `Live`, each route's
//! `RouteStats`, health, the response cache, the config status). Nothing is recorded for
//! metrics alone except the latency and TTFT histograms in `stats::Histogram`, so scraping
//! costs the request path nothing.
//!
//! Families (counters end in `_total`):
//! - `switchyard_instance_requests`, `_successes`, `_failures{class}`, `_tokens{kind}`,
//!   `_cost` (price units), `_in_flight`, `_state{state}` (1 for the current one),
//!   `_latency_seconds` and `_ttft_seconds` histograms — labelled `instance`, `model`,
//!   `provider`;
//! - `switchyard_route_served{route, step}` (which kind of plan step served it) and
//!   `switchyard_route_failed{route}`, `switchyard_route_tokens{route, kind}`,
//!   `switchyard_route_cost{route}`;
//! - `switchyard_client_tokens{client, kind}`, `switchyard_client_cost{client}` (clients named
//!   by `x-switchyard-client`, or by key hash when `[clients]` limits are on; at most 10,000,
//!   the rest as `other`);
//! - `switchyard_limit_admitted{level, limiter}`, `switchyard_limit_refused{level, limiter}`
//!   (levels `group`, `tier`, `model`, `instance`, `client`);
//! - `switchyard_config_version`, `switchyard_config_reloads{outcome}`;
//! - `switchyard_cache_hits`, `_misses`, `_entries` when `[global.cache]` is on.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::gateway::{ConfigStatus, Gateway};
use crate::health::State;
use crate::snapshot::Snapshot;
use crate::stats::{HistogramReading, clock_ns};

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The whole exposition, now.
pub fn render(gw: &Gateway) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        snap: gw.snapshot(),
        status: gw.config_status(),
    }));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

struct Scrape {
    snap: Arc<Snapshot>,
    status: ConfigStatus,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One family: its name, help, type, and `(labels, value)` samples.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, HistogramReading)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        (metric.encode_family(&labels)?)
            .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.buckets, None)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = &self.snap;
        let now = clock_ns();
        let who = |i: &crate::upstream::Instance| -> Labels {
            vec![
                ("instance", i.spec.id.clone()),
                ("model", i.spec.model_ref.clone()),
                ("provider", i.spec.provider.clone()),
            ]
        };
        let with = |mut l: Labels, k: &'static str, v: &str| {
            l.push((k, v.to_owned()));
            l
        };
        let views: Vec<_> = (snap.instances.iter())
            .map(|i| (i, i.live.view(now)))
            .collect();
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            &mut encoder,
            "switchyard_instance_requests",
            "Attempts sent to the instance",
            counter,
            views
                .iter()
                .map(|(i, v)| (who(i), ConstCounter::new(v.requests))),
        )?;
        family(
            &mut encoder,
            "switchyard_instance_successes",
            "Attempts the instance answered well",
            counter,
            views
                .iter()
                .map(|(i, v)| (who(i), ConstCounter::new(v.successes))),
        )?;
        family(
            &mut encoder,
            "switchyard_instance_failures",
            "Failed attempts by error class",
            counter,
            (snap.instances.iter()).flat_map(|i| {
                (i.live.failures_by_class())
                    .map(move |(class, n)| (with(who(i), "class", class), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_instance_tokens",
            "Tokens the instance reported, by kind",
            counter,
            views.iter().flat_map(|(i, v)| {
                [
                    ("prompt", v.prompt_tokens),
                    ("completion", v.completion_tokens),
                ]
                .map(|(kind, n)| (with(who(i), "kind", kind), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_instance_cost",
            "Spend at the configured prices, in the price unit",
            counter,
            views
                .iter()
                .map(|(i, v)| (who(i), ConstCounter::new(v.cost))),
        )?;
        family(
            &mut encoder,
            "switchyard_instance_in_flight",
            "Requests dispatched and not finished",
            gauge,
            views
                .iter()
                .map(|(i, v)| (who(i), ConstGauge::new(v.in_flight as i64))),
        )?;
        let states = [
            (State::Healthy, "healthy"),
            (State::Degraded, "degraded"),
            (State::Unhealthy, "unhealthy"),
            (State::Ejected, "ejected"),
        ];
        family(
            &mut encoder,
            "switchyard_instance_state",
            "1 for the instance's health state, 0 for the others",
            gauge,
            (snap.instances.iter()).flat_map(|i| {
                let now_state = snap.health.state(i, now);
                states.map(|(s, name)| {
                    let v = i64::from(s == now_state);
                    (with(who(i), "state", name), ConstGauge::new(v))
                })
            }),
        )?;
        histogram(
            &mut encoder,
            "switchyard_instance_latency_seconds",
            "Attempt latency (to the whole reply, or a stream's end)",
            snap.instances
                .iter()
                .map(|i| (who(i), i.live.histograms().0)),
        )?;
        histogram(
            &mut encoder,
            "switchyard_instance_ttft_seconds",
            "Streams' time to first content",
            snap.instances
                .iter()
                .map(|i| (who(i), i.live.histograms().1)),
        )?;
        family(
            &mut encoder,
            "switchyard_route_served",
            "Requests a routing name served, by the kind of plan step that served them",
            counter,
            (snap.routes.iter()).flat_map(|r| {
                let (served, _) = r.stats.read();
                served.into_iter().map(move |(step, n)| {
                    let labels = vec![("route", r.name.to_string()), ("step", step.to_owned())];
                    (labels, ConstCounter::new(n))
                })
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_route_failed",
            "Requests a routing name could not serve",
            counter,
            (snap.routes.iter()).map(|r| {
                let (_, failed) = r.stats.read();
                (
                    vec![("route", r.name.to_string())],
                    ConstCounter::new(failed),
                )
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_route_tokens",
            "Tokens of the requests a routing name served, by kind",
            counter,
            (snap.routes.iter()).flat_map(|r| {
                let s = r.stats.spend.read();
                [
                    ("prompt", s.prompt_tokens),
                    ("completion", s.completion_tokens),
                ]
                .map(|(k, n)| {
                    let labels = vec![("route", r.name.to_string()), ("kind", k.to_owned())];
                    (labels, ConstCounter::new(n))
                })
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_route_cost",
            "Spend of the requests a routing name served, at the configured prices",
            counter,
            (snap.routes.iter()).map(|r| {
                let labels = vec![("route", r.name.to_string())];
                (labels, ConstCounter::new(r.stats.spend.read().cost))
            }),
        )?;
        let clients = snap.client_spend.read();
        family(
            &mut encoder,
            "switchyard_client_tokens",
            "Tokens of the requests served to a named client, by kind",
            counter,
            clients.iter().flat_map(|(name, s)| {
                [
                    ("prompt", s.prompt_tokens),
                    ("completion", s.completion_tokens),
                ]
                .map(|(k, n)| {
                    let labels = vec![("client", name.to_string()), ("kind", k.to_owned())];
                    (labels, ConstCounter::new(n))
                })
            }),
        )?;
        family(
            &mut encoder,
            "switchyard_client_cost",
            "Spend of the requests served to a named client, at the configured prices",
            counter,
            clients.iter().map(|(name, s)| {
                (
                    vec![("client", name.to_string())],
                    ConstCounter::new(s.cost),
                )
            }),
        )?;
        let views = limiter_views(snap);
        for (name, help, pick) in [
            (
                "switchyard_limit_admitted",
                "Requests a limiter let through",
                (|v: &crate::limit::LimitsView| v.admitted) as fn(&crate::limit::LimitsView) -> u64,
            ),
            (
                "switchyard_limit_refused",
                "Requests a limiter turned away",
                |v| v.refused,
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                counter,
                views.iter().map(|(level, v)| {
                    let labels = vec![("level", (*level).to_owned()), ("limiter", v.name.clone())];
                    (labels, ConstCounter::new(pick(v)))
                }),
            )?;
        }
        let version = i64::try_from(self.status.version).unwrap_or(i64::MAX);
        family(
            &mut encoder,
            "switchyard_config_version",
            "1 at start, +1 per reload that changed the config",
            gauge,
            [(Labels::new(), ConstGauge::new(version))],
        )?;
        family(
            &mut encoder,
            "switchyard_config_reloads",
            "Reloads by outcome",
            counter,
            [
                ("applied", self.status.version.saturating_sub(1)),
                ("rejected", self.status.rejected),
            ]
            .map(|(o, n)| (vec![("outcome", o.to_owned())], ConstCounter::new(n))),
        )?;
        if let Some(cache) = &snap.cache {
            let s = cache.stats();
            for (name, help, n) in [
                (
                    "switchyard_cache_hits",
                    "Replies served from the response cache",
                    s.hits,
                ),
                (
                    "switchyard_cache_misses",
                    "Cacheable requests sent upstream",
                    s.misses,
                ),
            ] {
                family(
                    &mut encoder,
                    name,
                    help,
                    counter,
                    [(Labels::new(), ConstCounter::new(n))],
                )?;
            }
            let entries = i64::try_from(s.entries).unwrap_or(i64::MAX);
            family(
                &mut encoder,
                "switchyard_cache_entries",
                "Replies in the response cache",
                gauge,
                [(Labels::new(), ConstGauge::new(entries))],
            )?;
        }
        Ok(())
    }
}

/// Every limiter once, with its level (`group`, `tier`, `model`, `instance`, `client`).
fn limiter_views(snap: &Snapshot) -> Vec<(&'static str, crate::limit::LimitsView)> {
    let now_ms = crate::stats::clock_ms();
    let mut out: Vec<(&'static str, crate::limit::LimitsView)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |level: &'static str, l: &crate::limit::Limits| {
        let v = l.view(now_ms);
        if seen.insert((level, v.name.clone())) {
            out.push((level, v));
        }
    };
    for t in snap.routes.tiers() {
        if let Some(l) = &t.group_limits {
            add("group", l);
        }
        if let Some(l) = &t.limits {
            add("tier", l);
        }
    }
    for i in &snap.instances {
        if let Some(l) = &i.model_limits {
            add("model", l);
        }
        if let Some(l) = &i.limits {
            add("instance", l);
        }
    }
    for l in snap.clients.all().iter() {
        add("client", l);
    }
    out
}
