//! End to end: what a slow, silent or oversized client gets at the HTTP edge (the real binary on
//! loopback, raw sockets). Slowloris headers and idle keep-alive connections are closed after
//! `[server] header_timeout`, a slow body gets 408 after `body_timeout`, a chunked body past
//! `max_body_bytes` gets 413 before it ends, and none of it stops a normal request. Every wait
//! is on a socket event under an outer bound, never a sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::{Proc, Tree, chat_body, client, gateway};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound no healthy wait here comes near: the waits are for timeouts of at most 1 s.
const OUTER: Duration = Duration::from_secs(10);

/// One in-process mock model `up:m` behind a gateway with the given `[server]` keys.
fn edge_gateway(server: &str) -> (Tree, Proc) {
    let t = Tree::new();
    t.file(
        "providers/up.toml",
        "[provider]\ntype = \"mock\"\n[models.m]\nmock = { latency_ms = 1 }\n",
    );
    t.file(
        "_registry.toml",
        &format!("[server]\n{server}\n[providers]\nup = {{ file = \"providers/up.toml\" }}\n"),
    );
    let gw = gateway(t.path());
    (t, gw)
}

fn addr(gw: &Proc) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

/// Everything the server sends until it closes the connection (bounded by [`OUTER`]).
async fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(OUTER, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {OUTER:?}"
    );
    out
}

/// The status and JSON body of an HTTP/1.1 response in `raw`.
fn response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn normal_request(gw: &Proc) -> u16 {
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat_body("up:m"))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn slowloris_and_silent_connections_are_cut_off_while_normal_requests_are_served() {
    let (_t, gw) = edge_gateway("header_timeout = 1\nbody_timeout = 5");
    let addr = addr(&gw);
    // 200 connections: half send a partial request line and headers and then nothing, half
    // send nothing at all.
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .await
                .unwrap();
        }
        slow.push(s);
    }
    let opened = Instant::now();
    assert_eq!(
        normal_request(&gw).await,
        200,
        "served beside 200 slow ones"
    );
    // They were all still open while it was served: nothing to read yet, no EOF.
    for s in &slow {
        let mut buf = [0u8; 1];
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a slow connection was already answered or closed: {other:?}"),
        }
    }
    let served_in = opened.elapsed();
    // Then each is closed by the gateway, none answered with a request's reply.
    for s in &mut slow {
        let got = read_to_eof(s).await;
        let (status, _) = response(&got);
        assert!(
            got.is_empty() || status == 408 || status == 400,
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let closed_in = opened.elapsed();
    assert!(
        closed_in >= Duration::from_millis(900) && closed_in < Duration::from_secs(5),
        "closed after {closed_in:?} (the normal request took {served_in:?})"
    );
    assert_eq!(normal_request(&gw).await, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let (_t, gw) = edge_gateway("header_timeout = 0.3");
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = read_to_eof(&mut s).await;
    let (status, body) = response(&got);
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let (_t, gw) = edge_gateway("header_timeout = 5\nbody_timeout = 0.3");
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let got = read_to_eof(&mut s).await;
    let (status, body) = response(&got);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&got));
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // The same with a chunked body that stops mid-way, on /v1/messages too.
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n",
    )
    .await
    .unwrap();
    let (status, _) = response(&read_to_eof(&mut s).await);
    assert_eq!(status, 408);
    assert_eq!(normal_request(&gw).await, 200);
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_gets_413_before_it_ends() {
    let (_t, gw) = edge_gateway("max_body_bytes = 2048\nbody_timeout = 5");
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
    for _ in 0..3 {
        s.write_all(chunk.as_bytes()).await.unwrap();
    }
    // No last chunk: the answer must come without the body ending (or the body timeout).
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("413 before the body ended")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    let (status, body) = response(&buf[..n]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_still_served() {
    use http_body_util::{BodyExt, Empty};
    let (_t, gw) = edge_gateway("header_timeout = 0.5");
    let tcp = TcpStream::connect(addr(&gw)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("{}/healthz", gw.url))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = tokio::time::timeout(OUTER, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"status":"ok"}"#);
}

/// An HTTP/2 client (the hyper client answers pings by itself) that sends nothing is closed
/// after `header_timeout` of no open request; a request that outlasts that spell is served
/// whole, and the idle count only starts once it is done.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_a_long_request_on_it_is_not_cut() {
    use http_body_util::{BodyExt, Full};
    let t = Tree::new();
    t.file(
        "providers/up.toml",
        "[provider]\ntype = \"mock\"\n[models.m]\nmock = { latency_ms = 900 }\n",
    );
    t.file(
        "_registry.toml",
        "[server]\nheader_timeout = 0.3\n[providers]\nup = { file = \"providers/up.toml\" }\n",
    );
    let gw = gateway(t.path());
    let h2 = || async {
        let tcp = TcpStream::connect(addr(&gw)).await.unwrap();
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        (send, tokio::spawn(conn))
    };

    // Silent: closed once the idle spell is over.
    let started = Instant::now();
    let (_send, conn) = h2().await;
    tokio::time::timeout(OUTER, conn)
        .await
        .expect("an idle HTTP/2 connection was kept open")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Busy for 0.9 s, three times the idle limit: served, then closed after the spell.
    let (mut send, conn) = h2().await;
    let req = http::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(chat_body("up:m").to_string())))
        .unwrap();
    let sent = Instant::now();
    let r = tokio::time::timeout(OUTER, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["object"], "chat.completion", "{reply}");
    assert!(sent.elapsed() >= Duration::from_millis(850));
    let done = Instant::now();
    tokio::time::timeout(OUTER, conn)
        .await
        .expect("the HTTP/2 connection was kept open after its request")
        .unwrap()
        .unwrap();
    assert!(done.elapsed() >= Duration::from_millis(250));
}
