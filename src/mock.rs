//! TEMPORARY STUB: replaced by the real mock module.
#![allow(dead_code, unused_variables)]
use std::net::SocketAddr;

#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    pub name: String,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub fail_rate: f64,
    pub status: Option<u16>,
    pub retry_after_s: Option<u64>,
    pub stream_chunks: u32,
    pub tokens_per_s: Option<f64>,
    pub hang: bool,
    pub garbage: bool,
    pub die_after: Option<u64>,
    pub seed: u64,
}
pub struct MockHandle {
    addr: SocketAddr,
}
impl MockHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}
pub fn spawn(listener: tokio::net::TcpListener, behavior: Behavior) -> std::io::Result<MockHandle> {
    Ok(MockHandle {
        addr: listener.local_addr()?,
    })
}
#[derive(clap::Args, Debug, Clone)]
pub struct MockArgs {
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
}
pub async fn run(args: MockArgs) -> std::io::Result<()> {
    Ok(())
}
