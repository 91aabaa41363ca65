//! What a hostile or broken client gets: errors for garbage and oversize
//! heads, a timeout for silence, 503 over the cap; and what many honest
//! clients get: every stream through.

use std::time::Duration;

use bulkhead_egress::{MAX_HEAD, MAX_HEADERS};
use tokio::io::AsyncWriteExt;

use crate::support::*;

#[tokio::test]
async fn garbage_and_a_tls_handshake_are_400_and_counted() {
    let harness = Harness::allowing(&["localhost:1".into()]);
    let answer = harness
        .exchange(b"\x00\x01\x02 not http at all\r\n\r\n")
        .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("egress refused: not valid HTTP: invalid token\n"),
        "{answer}"
    );
    let answer = harness
        .exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("egress refused: not valid HTTP: a TLS handshake"),
        "{answer}"
    );
    let answer = harness
        .exchange(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert!(answer.contains(
        "egress refused: not a proxy request: `/index.html` is not an absolute http:// URL"
    ));
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused), (0, 3));
    assert_eq!(report.messages.len(), 3);
}

#[tokio::test]
async fn an_oversize_head_and_too_many_headers_are_431() {
    let harness = Harness::allowing(&["localhost:1".into()]);
    let mut head = b"GET http://localhost:1/ HTTP/1.1\r\nX-Big: ".to_vec();
    head.resize(MAX_HEAD + 4096, b'a');
    let answer = harness.exchange(&head).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with(&format!(
        "egress refused: the request head is over {MAX_HEAD} bytes\n"
    )));
    let mut head = String::from("GET http://localhost:1/ HTTP/1.1\r\n");
    for i in 0..MAX_HEADERS + 1 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let answer = harness.exchange(head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let report = harness.finish().await;
    assert_eq!(report.refused, 2);
}

#[tokio::test]
async fn a_client_that_sends_no_head_is_dropped_after_the_timeout() {
    let harness = Harness::start(&["localhost:1".into()], Default::default(), |config| {
        config.head_timeout = Duration::from_millis(200);
    });
    let mut silent = harness.connect().await;
    let mut partial = harness.connect().await;
    within(partial.write_all(b"GET http://localhost:1/ HTTP/1.1\r\nHost: loc"))
        .await
        .expect("sent");
    for client in [&mut silent, &mut partial] {
        // Bounded by BOUND in read_to_end; the proxy closes after 200 ms.
        let answer = String::from_utf8_lossy(&read_to_end(client, 4096).await).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("egress refused: no complete request head within 200ms\n"),
            "{answer}"
        );
    }
    let report = harness.finish().await;
    assert_eq!(report.refused, 2);
    assert_eq!(report.messages[0].count, 2);
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_slots_come_back() {
    let port = echo_server().await;
    let harness = Harness::start(
        &[format!("localhost:{port}")],
        Default::default(),
        |config| {
            config.max_connections = 2;
        },
    );
    // Connections are accepted in order, so these two take both slots
    // (one idle before its head, one tunnelling) before the third arrives.
    let idle = harness.connect().await;
    let _busy = tunnel(&harness, &format!("localhost:{port}")).await;
    let answer = harness
        .exchange(b"CONNECT localhost:1 HTTP/1.1\r\n\r\n")
        .await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("egress refused: too many connections at once (the cap is 2)\n"),
        "{answer}"
    );
    // Closing one frees its slot once its task sees the close; try a
    // bounded number of times.
    drop(idle);
    let request = format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n");
    let mut served = false;
    for _ in 0..200 {
        let mut client = harness.connect().await;
        within(client.write_all(request.as_bytes()))
            .await
            .expect("sent");
        if read_head(&mut client).await.starts_with("HTTP/1.1 200 ") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(served, "a slot never came back");
    let report = harness.finish().await;
    assert_eq!(report.allowed, 2);
    assert!(report.refused >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_tunnels_all_complete() {
    const STREAMS: usize = 64;
    const BYTES: usize = 64 * 1024;
    let port = echo_server().await;
    let harness = std::sync::Arc::new(Harness::allowing(&[format!("localhost:{port}")]));
    let mut streams = tokio::task::JoinSet::new();
    for seed in 0..STREAMS {
        let harness = std::sync::Arc::clone(&harness);
        streams.spawn(async move {
            let client = tunnel(&harness, &format!("localhost:{port}")).await;
            let sent = pattern(BYTES, seed as u8);
            let (mut read, mut write) = client.into_split();
            let to_send = sent.clone();
            let writer = tokio::spawn(async move {
                write.write_all(&to_send).await.expect("sent");
                write.shutdown().await.expect("half close");
            });
            let echoed = read_to_end(&mut read, 2 * BYTES).await;
            within(writer).await.expect("the writer ends");
            assert!(
                echoed == sent,
                "stream {seed}: {} bytes back of {BYTES}",
                echoed.len()
            );
            seed
        });
    }
    let mut done = Vec::new();
    while let Some(result) = within(streams.join_next()).await {
        done.push(result.expect("a stream task"));
    }
    done.sort_unstable();
    assert_eq!(done, (0..STREAMS).collect::<Vec<_>>());
    let Ok(harness) = std::sync::Arc::try_unwrap(harness) else {
        panic!("the harness is still shared")
    };
    let report = harness.finish().await;
    assert_eq!(report.allowed, STREAMS as u64);
    assert_eq!(report.bytes_up, (STREAMS * BYTES) as u64);
    assert_eq!(report.bytes_down, (STREAMS * BYTES) as u64);
}

#[tokio::test]
async fn shutdown_closes_every_tunnel_and_removes_the_socket() {
    let port = echo_server().await;
    let mut harness = Harness::allowing(&[format!("localhost:{port}")]);
    let mut client = tunnel(&harness, &format!("localhost:{port}")).await;
    let waiting = harness.connect().await;
    let proxy = harness.proxy.take().expect("running");
    within(proxy.shutdown()).await;
    assert!(!harness.path.exists(), "the socket file is removed");
    // The tunnel is closed, not left open: the read ends (EOF or reset).
    assert!(read_to_end(&mut client, 64).await.is_empty());
    drop(waiting);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_proxy() {
    let port = echo_server().await;
    let mut harness = Harness::allowing(&[format!("localhost:{port}")]);
    let mut client = tunnel(&harness, &format!("localhost:{port}")).await;
    drop(harness.proxy.take());
    assert!(!harness.path.exists(), "the socket file is removed");
    assert!(read_to_end(&mut client, 64).await.is_empty());
    assert!(
        tokio::net::UnixStream::connect(&harness.path)
            .await
            .is_err()
    );
}
