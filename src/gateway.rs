//! The running gateway: the live snapshot behind an atomic swap, and the in-process mock
//! upstreams of `type = "mock"` providers.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, Endpoint};
use crate::mock::{self, MockHandle};
use crate::snapshot::Snapshot;

pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    /// Kept alive for as long as the gateway runs.
    _mocks: Vec<MockHandle>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the in-process mock for instance {id:?}: {source}")]
    Mock { id: String, source: std::io::Error },
}

impl Gateway {
    /// Start the in-process mocks the config asks for and make the config live.
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let mut mocks = Vec::new();
        let mut urls = HashMap::new();
        for spec in &config.instances {
            if let Endpoint::Mock(behavior) = &spec.endpoint {
                let started = async {
                    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
                    mock::spawn(listener, behavior.clone())
                };
                let handle = started.await.map_err(|source| StartError::Mock {
                    id: spec.id.clone(),
                    source,
                })?;
                urls.insert(spec.id.clone(), handle.base_url());
                mocks.push(handle);
            }
        }
        let snapshot = Snapshot::build(Arc::new(config), &urls, None);
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            _mocks: mocks,
        }))
    }

    /// The current snapshot; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}
