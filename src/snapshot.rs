//! One loaded config made live: instances, routes, counters. Requests load the current
//! snapshot once (`Gateway::snapshot`) and never see a mix of two configs; a reload or a
//! runtime change builds a whole new one and swaps it in atomically. Each instance's
//! [`Live`] state is carried over by id, so load and statistics survive the swap.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::config::{Config, Endpoint};
use crate::health::{Gate, Health};
use crate::limit::{ClientTable, Limits, Queue};
use crate::proxy::FallbackLog;
use crate::route::{Route, RouteTable, Tier};
use crate::stats::{Live, MemoryRecorder, Recorder, clock_ns};
use crate::upstream::Instance;

pub struct Snapshot {
    pub config: Arc<Config>,
    pub instances: Vec<Arc<Instance>>,
    pub routes: RouteTable,
    pub recorder: Arc<dyn Recorder>,
    /// Events, group breakers, the checker's wake-up: carried from snapshot to snapshot.
    pub health: Arc<Health>,
    /// Requests that fell back or failed: carried from snapshot to snapshot.
    pub fallbacks: Arc<FallbackLog>,
    /// Per-client limits (`[clients]`).
    pub clients: ClientTable,
    /// Requests waiting for room (`[global.limits] queue_timeout`): carried from snapshot to
    /// snapshot.
    pub queue: Arc<Queue>,
    /// For each instance (by index), the tiers it is a member of.
    tiers_of: Vec<Vec<Arc<Tier>>>,
    /// `GET /v1/models`, rendered once.
    pub models_json: Bytes,
    /// `[global.cache]`: new (empty) with every config, since a route may now answer
    /// differently.
    pub cache: Option<Arc<crate::cache::ResponseCache>>,
    /// Tokens and cost by calling client: carried from snapshot to snapshot.
    pub client_spend: Arc<crate::stats::ClientSpend>,
}

impl Snapshot {
    /// `mock_urls` maps the id of each `type = "mock"` instance to its running mock's base URL;
    /// instances of `previous` keep their live state. An instance new since `previous` (one
    /// registered at runtime or added by a reload) slow-starts.
    pub fn build(
        config: Arc<Config>,
        mock_urls: &HashMap<String, String>,
        previous: Option<&Snapshot>,
    ) -> Self {
        let now = clock_ns();
        let health = previous.map_or_else(Arc::default, |p| Arc::clone(&p.health));
        let mut model_limits: HashMap<String, Option<Arc<Limits>>> = HashMap::new();
        let carried: HashMap<&str, &Arc<Live>> = previous
            .map(|p| {
                p.instances
                    .iter()
                    .map(|i| (i.spec.id.as_str(), &i.live))
                    .collect()
            })
            .unwrap_or_default();
        let instances = config
            .instances
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let base_url = match &spec.endpoint {
                    Endpoint::OpenAi { base_url } => base_url.clone(),
                    Endpoint::Mock(_) => mock_urls.get(&spec.id).cloned().unwrap_or_default(),
                };
                let live = carried.get(spec.id.as_str()).map_or_else(
                    || {
                        let gate = Gate::new(&*health.store, &spec.id);
                        let live = Live::with_gate(now, gate);
                        if previous.is_some() {
                            live.gate().slow_start(now, spec.health.slow_start);
                        }
                        Arc::new(live)
                    },
                    |l| Arc::clone(l),
                );
                let limits = Limits::new(&*health.store, "instance", &spec.id, &spec.limits);
                let model_limits = (model_limits.entry(spec.model_ref.clone()))
                    .or_insert_with(|| {
                        Limits::new(&*health.store, "model", &spec.model_ref, &spec.model_limits)
                    })
                    .clone();
                Arc::new(Instance::new(
                    i,
                    spec.clone(),
                    base_url,
                    spec.api.adapter(),
                    live,
                    [limits, model_limits],
                ))
            })
            .collect::<Vec<_>>();
        let routes = RouteTable::build(&config.routes, &instances, &health);
        let mut tiers_of = vec![Vec::new(); instances.len()];
        for tier in routes.tiers() {
            for m in &tier.members {
                if let Some(list) = tiers_of.get_mut(m.instance) {
                    list.push(Arc::clone(tier));
                }
            }
        }
        let models_json = render_models(&routes);
        let clients = ClientTable::new(config.clients.clone(), Arc::clone(&health.store));
        let queue = previous.map_or_else(Arc::default, |p| Arc::clone(&p.queue));
        queue.set_capacity(config.queue.map_or(0, |q| q.size));
        let cache = (config.cache).map(|spec| Arc::new(crate::cache::ResponseCache::new(spec)));
        Self {
            queue,
            clients,
            fallbacks: previous.map_or_else(Arc::default, |p| Arc::clone(&p.fallbacks)),
            health,
            tiers_of,
            recorder: Arc::new(MemoryRecorder),
            config,
            instances,
            routes,
            models_json,
            cache,
            client_spend: previous.map_or_else(Arc::default, |p| Arc::clone(&p.client_spend)),
        }
    }

    /// The tiers instance `index` is a member of.
    pub fn tiers_of(&self, index: usize) -> &[Arc<Tier>] {
        self.tiers_of.get(index).map_or(&[], Vec::as_slice)
    }

    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    pub fn instance(&self, id: &str) -> Option<&Arc<Instance>> {
        self.instances.iter().find(|i| i.spec.id == id)
    }

    /// The instance a first attempt on `route` would go to now (seed 000's `select_instance`):
    /// its first tier with an eligible member, picked by that tier's strategy.
    pub fn select_instance(&self, route: &str) -> Option<&Arc<Instance>> {
        let now = clock_ns();
        self.route(route)?
            .steps
            .iter()
            .map(|s| &s.tier)
            .find_map(|tier| {
                let pick = tier
                    .strategy
                    .pick(&crate::balance::Candidates::new(&tier.members, now))?;
                self.instances.get(tier.members[pick].instance)
            })
    }

    /// Instances that could take a request now.
    pub fn usable_instances(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| !i.base_url.is_empty())
            .count()
    }
}

fn render_models(routes: &RouteTable) -> Bytes {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Model<'a>>,
    }
    #[derive(Serialize)]
    struct Model<'a> {
        id: &'a str,
        object: &'static str,
        created: u64,
        owned_by: &'static str,
        /// What kind of routing name this is (switchyard extension).
        switchyard_kind: &'static str,
    }
    let list = List {
        object: "list",
        data: routes
            .iter()
            .map(|r| Model {
                id: &r.name,
                object: "model",
                created: 0,
                owned_by: "switchyard",
                switchyard_kind: r.kind.as_str(),
            })
            .collect(),
    };
    serde_json::to_vec(&list)
        .map(Bytes::from)
        .unwrap_or_default()
}
