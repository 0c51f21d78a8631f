//! The running gateway: the live snapshot behind an atomic swap, the in-process mock upstreams
//! of `type = "mock"` providers, and the runtime changes (seed 000's instance registry).
//!
//! A runtime change — register or deregister an instance, change a weight, switch a tier's
//! strategy — edits the [`Overlay`], rebuilds the whole config from the captured files plus the
//! overlay (validated like the files: a change that would leave an echelon empty is refused
//! with the reason), and swaps the new snapshot in. Requests in flight keep the snapshot they
//! loaded; live state (load, statistics) is carried over by instance id. A deregistered
//! instance is marked draining first, so no new attempt goes to it even from a request still
//! holding the old snapshot; its running requests finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::balance::StrategyKind;
use crate::config::{
    CapturedSource, Config, ConfigError, Endpoint, LastGood, NewInstance, Overlay,
};
use crate::health::checker::{self, HttpProber, Prober};
use crate::mock::{self, MockHandle};
use crate::request::{ClientRequest, RequestOptions};
use crate::snapshot::Snapshot;
use crate::upstream::Instance;

pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    /// Runtime changes, serialised. Held only for the synchronous rebuild, never across an
    /// await, and never touched by the request path.
    admin: Mutex<Admin>,
    status: Mutex<ConfigStatus>,
}

/// What `GET /admin/config` shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConfigStatus {
    /// 1 for the config loaded at start, +1 per reload that changed something.
    pub version: u64,
    /// Digest of the files of the active config.
    pub fingerprint: String,
    pub origin: String,
    pub loaded_at_ms: u64,
    /// Reloads refused (invalid trees).
    pub rejected: u64,
    /// The last refused reload, until a reload succeeds.
    pub last_error: Option<ReloadError>,
    /// Set while the gateway serves its last-good snapshot because the files failed to load
    /// at startup (`use_defaults_on_failure`); cleared by the first reload that succeeds.
    pub serving_last_good: Option<ServingLastGood>,
    /// Pools' and task groups' `[*.metrics]` settings and `[*.metadata]`, by name.
    pub sections: std::collections::BTreeMap<String, crate::config::SectionInfo>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServingLastGood {
    pub dir: String,
    pub saved_at_ms: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadError {
    pub at_ms: u64,
    pub fingerprint: String,
    pub issues: Vec<String>,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Admin {
    source: CapturedSource,
    overlay: Overlay,
    /// Running in-process mocks by instance id.
    mocks: HashMap<String, MockHandle>,
    /// Where in-process mocks run (the runtime that started the gateway).
    runtime: Option<tokio::runtime::Handle>,
    /// Deregistered instances with requests still running, and their mock if they had one.
    draining: Vec<(Arc<Instance>, Option<MockHandle>)>,
    /// Where each loaded tree is copied when `[global] cache_enabled`.
    last_good: Option<LastGood>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the in-process mock for instance {id:?}: {source}")]
    Mock { id: String, source: std::io::Error },
}

/// Why a runtime change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The config the change would produce is invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Mock(#[from] StartError),
}

impl Admin {
    fn save_last_good(&self) {
        if let Some(lg) = &self.last_good {
            match lg.save(&self.source) {
                Ok(()) => {
                    tracing::info!(target: "switchyard::config", dir = %lg.dir().display(), "last-good snapshot saved")
                }
                Err(e) => {
                    tracing::warn!(target: "switchyard::config", dir = %lg.dir().display(), error = %e, "cannot save the last-good snapshot")
                }
            }
        }
    }
}

impl Gateway {
    /// Make `config` live, starting the in-process mocks it asks for and the health checker
    /// (HTTP probes). `source` is what it was loaded from: runtime changes rebuild from its
    /// captured files.
    pub async fn start(config: Config, source: CapturedSource) -> Result<Arc<Self>, StartError> {
        Self::start_with_prober(config, source, Arc::new(HttpProber)).await
    }

    /// [`Gateway::start`] with the health checker's probes sent by `prober` (tests script
    /// them). The checker runs on the current tokio runtime until the gateway is dropped.
    pub async fn start_with_prober(
        config: Config,
        source: CapturedSource,
        prober: Arc<dyn Prober>,
    ) -> Result<Arc<Self>, StartError> {
        let mut admin = Admin {
            source,
            overlay: Overlay::default(),
            mocks: HashMap::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            draining: Vec::new(),
            last_good: None,
        };
        admin.start_mocks(&config)?;
        let snapshot = Snapshot::build(Arc::new(config), &admin.urls(), None);
        let status = ConfigStatus {
            version: 1,
            fingerprint: admin.source.fingerprint(),
            origin: snapshot.config.origin.clone(),
            loaded_at_ms: unix_ms(),
            rejected: 0,
            last_error: None,
            serving_last_good: None,
            sections: snapshot.config.sections.clone(),
        };
        let gateway = Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            admin: Mutex::new(admin),
            status: Mutex::new(status),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(checker::run(Arc::downgrade(&gateway), prober));
            runtime.spawn(sample(Arc::downgrade(&gateway)));
        }
        Ok(gateway)
    }

    /// The current snapshot; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Add an instance to model `new.model` and every tier that lists that model.
    pub fn register_instance(&self, new: NewInstance) -> Result<Arc<Instance>, ChangeError> {
        let mut admin = self.lock();
        if self.snapshot().instance(&new.id).is_some() {
            return Err(ChangeError::Conflict(format!(
                "instance {:?} already exists; deregister it first",
                new.id
            )));
        }
        let id = new.id.clone();
        let mut overlay = admin.overlay.clone();
        overlay.added.push(new);
        let snap = self.apply(&mut admin, overlay)?;
        snap.instance(&id)
            .cloned()
            .ok_or_else(|| ChangeError::NotFound(format!("instance {id:?} was not built")))
    }

    /// Take an instance out of every tier. It stops receiving new requests at once; the
    /// returned handle shows its requests still in flight (`live.in_flight()`).
    pub fn deregister_instance(&self, id: &str) -> Result<Arc<Instance>, ChangeError> {
        let mut admin = self.lock();
        let Some(instance) = self.snapshot().instance(id).cloned() else {
            return Err(not_found(id));
        };
        let mut overlay = admin.overlay.clone();
        let before = overlay.added.len();
        overlay.added.retain(|a| a.id != id);
        if overlay.added.len() == before {
            overlay.removed.insert(id.to_owned());
        }
        overlay.weights.remove(id);
        self.apply(&mut admin, overlay)?;
        Ok(instance)
    }

    /// Change an instance's weight (in every tier it is in, times the pool factors).
    pub fn set_weight(&self, id: &str, weight: u32) -> Result<(), ChangeError> {
        let mut admin = self.lock();
        if self.snapshot().instance(id).is_none() {
            return Err(not_found(id));
        }
        let mut overlay = admin.overlay.clone();
        overlay.weights.insert(id.to_owned(), weight);
        self.apply(&mut admin, overlay).map(drop)
    }

    /// Switch the strategy of a tier: a pool, `group.echelon`, `provider:model` or instance id.
    pub fn set_strategy(&self, tier: &str, kind: StrategyKind) -> Result<(), ChangeError> {
        let mut admin = self.lock();
        if self.snapshot().routes.tier(tier).is_none() {
            return Err(ChangeError::NotFound(format!(
                "no tier {tier:?}: expected a pool, group.echelon, provider:model or instance id"
            )));
        }
        let mut overlay = admin.overlay.clone();
        overlay.strategies.insert(tier.to_owned(), kind);
        self.apply(&mut admin, overlay).map(drop)
    }

    /// Seed 003's `execute_with_fallback(primary_target, fallback_groups, request)`: one chat
    /// completion (non-streaming) on `primary` (a task group, `group.echelon`, pool or
    /// wrapper), falling back to `fallback_groups` in order, exactly as a request with the
    /// `x-switchyard-llm-group` / `x-switchyard-fallback-groups` headers would. `request` is
    /// an OpenAI chat body (`model` may be left out). Returns the reply's JSON.
    pub async fn execute_with_fallback(
        &self,
        primary: &str,
        fallback_groups: &[&str],
        mut request: serde_json::Value,
    ) -> Result<serde_json::Value, crate::error::Error> {
        use crate::error::Error;
        use http_body_util::BodyExt;
        let Some(object) = request.as_object_mut() else {
            return Err(Error::BadRequest(
                "the request must be a JSON object".to_owned(),
            ));
        };
        object
            .entry("model")
            .or_insert_with(|| serde_json::Value::String(primary.to_owned()));
        object.insert("stream".to_owned(), serde_json::Value::Bool(false));
        let body = serde_json::to_vec(&request)
            .map_err(|e| Error::BadRequest(format!("the request is not serialisable: {e}")))?;
        let mut req = ClientRequest::parse(crate::provider::Operation::Chat, body.into())?;
        req.options = RequestOptions {
            llm_group: Some(primary.to_owned()),
            fallback_groups: fallback_groups.iter().map(|s| (*s).to_owned()).collect(),
            ..RequestOptions::default()
        };
        let response =
            crate::proxy::forward(crate::upstream::Upstream::local(), self.snapshot(), req).await?;
        let status = response.status();
        let bytes = (response.into_body().collect().await)
            .map(|c| c.to_bytes())
            .map_err(|e| Error::BadRequest(format!("reading the reply failed: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(Error::BadRequest(format!(
                "the upstream refused the request ({status}): {text}"
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("the reply is not JSON: {e}")))
    }

    /// Deregistered instances whose requests are still running.
    pub fn draining(&self) -> Vec<Arc<Instance>> {
        let mut admin = self.lock();
        admin.prune();
        admin.draining.iter().map(|(i, _)| Arc::clone(i)).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Admin> {
        // A panic mid-change leaves the overlay as it was before the change: still usable.
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Build, validate and swap in the config `overlay` produces; keep it on success.
    fn apply(&self, admin: &mut Admin, overlay: Overlay) -> Result<Arc<Snapshot>, ChangeError> {
        let config = Config::load_with_overlay(&admin.source, &overlay)?;
        self.install(admin, config, overlay)
    }

    /// Re-read the config files and, if they changed and are valid, make them live (runtime
    /// changes stay applied on top). An invalid tree is refused with its issues and the
    /// current config keeps serving. `Ok(false)`: nothing changed.
    pub fn reload(&self) -> Result<bool, ChangeError> {
        let mut admin = self.lock();
        let fresh = admin.source.reread();
        let loaded = Config::load_with_overlay(&fresh, &admin.overlay);
        let now_ms = unix_ms();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let config = match loaded {
            Ok(config) => config,
            Err(e) => {
                status.rejected += 1;
                status.last_error = Some(ReloadError {
                    at_ms: now_ms,
                    fingerprint: fresh.fingerprint(),
                    issues: e.issues.iter().map(ToString::to_string).collect(),
                });
                tracing::error!(target: "switchyard::config", error = %e, "reload refused; the current config keeps serving");
                return Err(e.into());
            }
        };
        let fingerprint = fresh.fingerprint();
        if fingerprint == status.fingerprint {
            // The files load and are what is serving: whatever was wrong with them is fixed
            // (a bad edit reverted, or the tree the last-good snapshot holds restored).
            status.last_error = None;
            if status.serving_last_good.take().is_some() {
                admin.source = fresh;
            }
            return Ok(false);
        }
        let overlay = admin.overlay.clone();
        admin.source = fresh;
        let keep = config.snapshot.keep;
        status.sections = config.sections.clone();
        self.install(&mut admin, config, overlay)?;
        if keep {
            admin.save_last_good();
        }
        status.serving_last_good = None;
        status.version += 1;
        status.fingerprint = fingerprint;
        status.loaded_at_ms = now_ms;
        status.last_error = None;
        tracing::info!(target: "switchyard::config", version = status.version, fingerprint = %status.fingerprint, "config reloaded");
        Ok(true)
    }

    /// Copy every tree that loads (now, and on each reload) to `last_good`, when the config
    /// says `[global] cache_enabled = true`.
    pub fn keep_last_good(&self, last_good: LastGood) {
        let mut admin = self.lock();
        admin.last_good = Some(last_good);
        let serving = self.config_status().serving_last_good.is_some();
        if self.snapshot().config.snapshot.keep && !serving {
            admin.save_last_good();
        }
    }

    /// Record that the files failed at startup and the last-good snapshot serves instead.
    pub fn serving_last_good(
        &self,
        failure: &ConfigError,
        dir: &std::path::Path,
        saved_at_ms: u64,
    ) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.rejected += 1;
        status.last_error = Some(ReloadError {
            at_ms: unix_ms(),
            fingerprint: String::new(),
            issues: failure.issues.iter().map(ToString::to_string).collect(),
        });
        status.serving_last_good = Some(ServingLastGood {
            dir: dir.display().to_string(),
            saved_at_ms,
        });
    }

    /// The active config's version and source digest, and the last refused reload.
    pub fn config_status(&self) -> ConfigStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where the config files live, when they are a directory (what a watcher watches).
    pub fn config_root(&self) -> Option<std::path::PathBuf> {
        self.lock().source.root()
    }

    /// Make `config` live: start its mocks, build and swap the snapshot, drain what left.
    fn install(
        &self,
        admin: &mut Admin,
        config: Config,
        overlay: Overlay,
    ) -> Result<Arc<Snapshot>, ChangeError> {
        admin.start_mocks(&config)?;
        let current = self.snapshot();
        let next = Arc::new(Snapshot::build(
            Arc::new(config),
            &admin.urls(),
            Some(&current),
        ));
        for old in &current.instances {
            if next.instance(&old.spec.id).is_none() {
                // Before the swap: requests on the old snapshot must not pick it either.
                old.live.drain();
                let mock = admin.mocks.remove(&old.spec.id);
                admin.draining.push((Arc::clone(old), mock));
                tracing::info!(instance = %old.spec.id, in_flight = old.live.in_flight(), "instance deregistered; draining");
            }
        }
        self.snapshot.store(Arc::clone(&next));
        // The checker picks up new instances (and forgets removed ones) now.
        next.health.wake();
        admin.overlay = overlay;
        admin.prune();
        Ok(next)
    }
}

impl Admin {
    fn urls(&self) -> HashMap<String, String> {
        (self.mocks.iter())
            .map(|(id, m)| (id.clone(), m.base_url()))
            .collect()
    }

    /// Start a mock for every `type = "mock"` instance that has none yet.
    fn start_mocks(&mut self, config: &Config) -> Result<(), StartError> {
        for spec in &config.instances {
            let Endpoint::Mock(behavior) = &spec.endpoint else {
                continue;
            };
            if self.mocks.contains_key(&spec.id) {
                continue;
            }
            let err = |source| StartError::Mock {
                id: spec.id.clone(),
                source,
            };
            let runtime = self
                .runtime
                .as_ref()
                .ok_or_else(|| err(std::io::Error::other("no tokio runtime to run the mock on")))?;
            let _entered = runtime.enter();
            let started = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| {
                l.set_nonblocking(true)?;
                mock::spawn(tokio::net::TcpListener::from_std(l)?, behavior.clone())
            });
            self.mocks.insert(spec.id.clone(), started.map_err(err)?);
        }
        Ok(())
    }

    /// Forget drained instances (and stop their mocks).
    fn prune(&mut self) {
        self.draining.retain(|(i, _)| i.live.in_flight() > 0);
    }
}

fn not_found(id: &str) -> ChangeError {
    ChangeError::NotFound(format!("no instance {id:?}"))
}

/// Every `[global] metrics_interval`, copy each instance's totals into its history; ends when
/// the gateway is dropped.
async fn sample(gateway: std::sync::Weak<Gateway>) {
    loop {
        let Some(every) = gateway
            .upgrade()
            .map(|g| g.snapshot().config.telemetry.metrics_interval)
        else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(g) = gateway.upgrade() else {
            return;
        };
        let at_ms = unix_ms();
        for instance in &g.snapshot().instances {
            instance.live.sample(at_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEMO, EmbeddedSource};

    async fn demo() -> Arc<Gateway> {
        let source = CapturedSource::new(Box::new(EmbeddedSource(&DEMO)));
        let config = Config::load(&source).unwrap();
        Gateway::start(config, source).await.unwrap()
    }

    fn new_instance(id: &str) -> NewInstance {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "model": "mock-openai:gpt-4o",
            "mock": { "latency_ms": 0 },
        }))
        .unwrap()
    }

    /// Seed 000's script: register instances, then `select_instance` returns registered ones.
    #[tokio::test]
    async fn register_select_and_deregister_through_the_library_api() {
        let gw = demo().await;
        let added = gw.register_instance(new_instance("gpt-4o-south")).unwrap();
        assert_eq!(added.spec.model_ref, "mock-openai:gpt-4o");
        let snap = gw.snapshot();
        let registered = ["gpt-4o-east", "gpt-4o-west", "gpt-4o-south"];
        // Round robin over the model's three instances: each comes up once in three picks.
        let mut picked: Vec<String> = (0..3)
            .map(|_| {
                snap.select_instance("mock-openai:gpt-4o")
                    .unwrap()
                    .spec
                    .id
                    .clone()
            })
            .collect();
        picked.sort();
        let mut expected = registered.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(picked, expected);
        // It also joined every tier listing the model (thinking_group's first echelon).
        let tier = snap.routes.tier("thinking_group.echelon1").unwrap();
        assert!(
            tier.members
                .iter()
                .any(|m| snap.instances[m.instance].spec.id == "gpt-4o-south")
        );

        let gone = gw.deregister_instance("gpt-4o-south").unwrap();
        assert!(gone.live.is_draining());
        assert!(gw.snapshot().instance("gpt-4o-south").is_none());
        assert!(gw.draining().is_empty(), "nothing was in flight");
        // Registering the same id again is allowed once it is gone.
        gw.register_instance(new_instance("gpt-4o-south")).unwrap();
    }

    /// Seed 003's `execute_with_fallback`, on the demo's in-process mocks.
    #[tokio::test]
    async fn execute_with_fallback_serves_from_the_primary_or_its_fallbacks() {
        let gw = demo().await;
        let body = serde_json::json!({"messages": [{"role": "user", "content": "Plan my day"}]});
        let reply = gw
            .execute_with_fallback(
                "plan_group.echelon1",
                &["thinking_group.echelon1"],
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(reply["object"], "chat.completion");
        assert!(
            reply["choices"][0]["message"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
        let unknown = gw
            .execute_with_fallback("plan_group.echelon1", &["nope"], body)
            .await;
        assert!(
            matches!(unknown, Err(crate::error::Error::BadRequest(m)) if m.contains("\"nope\""))
        );
    }

    #[tokio::test]
    async fn live_state_survives_a_rebuild_and_a_strategy_switch_applies_to_every_route_sharing_the_tier()
     {
        let gw = demo().await;
        let before = gw.snapshot();
        let east = before.instance("gpt-4o-east").unwrap();
        east.live.acquire();
        gw.set_strategy("fast_pool", StrategyKind::P2c).unwrap();
        let after = gw.snapshot();
        assert_eq!(after.instance("gpt-4o-east").unwrap().live.in_flight(), 1);
        east.live.release();
        assert_eq!(
            after.routes.tier("fast_pool").unwrap().strategy_kind,
            StrategyKind::P2c
        );
        // The `fast` wrapper routes through the same tier.
        let fast = after.route("fast").unwrap();
        assert!(Arc::ptr_eq(
            &fast.steps[0].tier,
            after.routes.tier("fast_pool").unwrap()
        ));
        assert!(matches!(
            gw.set_strategy("no_such_pool", StrategyKind::P2c),
            Err(ChangeError::NotFound(_))
        ));
        gw.set_weight("gpt-4o-east", 7).unwrap();
        let snap = gw.snapshot();
        assert_eq!(snap.instance("gpt-4o-east").unwrap().spec.weight.get(), 7);
        // The strategy switch is kept across later changes.
        assert_eq!(
            gw.snapshot()
                .routes
                .tier("fast_pool")
                .unwrap()
                .strategy_kind,
            StrategyKind::P2c
        );
    }
}
