//! Many concurrent clients, no fault: 100 (seed requirement) and 1,000 clients, each with its
//! own connection, sending one request after another to three upstreams that take 100 ms to
//! answer (so requests really overlap upstream). Not one may fail. The open-files limit is
//! raised to the hard limit first (the gateway and the mocks do the same at startup:
//! 1,000 clients take about 1,000 descriptors here and 2,000 in the gateway).

use crate::common::{client, gateway, mock, stats};
use crate::support::{Kind, Load, NO_PROBES, SERIAL, report_no_loss, tree};

async fn concurrent_clients(scenario: &'static str, clients: usize) {
    let _serial = SERIAL.lock().await;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 2 * clients as u64,
        "open files limit {limit} is too low for {clients} clients"
    );
    let slow = ["--latency-ms", "100"];
    let (a, b, c3) = (mock("a", &slow), mock("b", &slow), mock("c", &slow));
    let t = tree(
        &[("a", &a, ""), ("b", &b, ""), ("c", &c3, "")],
        "",
        NO_PROBES,
        "",
    );
    let gw = gateway(t.path());
    let c = client();
    let load = Load::start(&gw, "g", clients, Kind::Chat);
    load.run_out().await;
    let samples = load.stop().await;
    report_no_loss(scenario, &samples, None);
    assert!(samples.len() >= clients, "every client sent at least one");
    let mut seen = 0;
    let mut peak = 0;
    for m in [&a, &b, &c3] {
        let s = stats(&c, m).await;
        seen += s["requests"].as_u64().unwrap() - s["models"].as_u64().unwrap();
        peak += s["max_in_flight"].as_u64().unwrap();
    }
    assert_eq!(
        seen,
        samples.len() as u64,
        "one upstream request per client request"
    );
    assert!(peak > 1, "requests never overlapped upstream");
    eprintln!("{scenario}: peak upstream concurrency (sum of the mocks' maxima) {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_clients_all_succeed() {
    concurrent_clients("clients_100", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_all_succeed() {
    concurrent_clients("clients_1000", 1000).await;
}
