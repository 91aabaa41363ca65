//! CONNECT: what gets through, byte for byte, and what is refused.

use bulkhead_egress::StaticResolver;
use tokio::io::AsyncWriteExt;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_to_an_allowed_localhost_port_is_byte_exact_both_ways() {
    let port = echo_server().await;
    let harness = Harness::allowing(&[format!("localhost:{port}")]);
    let client = tunnel(&harness, &format!("localhost:{port}")).await;
    let sent = pattern(1 << 20, 7);
    let (mut read, mut write) = client.into_split();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        write
            .write_all(&to_send)
            .await
            .expect("the tunnel takes the bytes");
        write.shutdown().await.expect("half close");
    });
    let echoed = read_to_end(&mut read, 2 << 20).await;
    within(writer).await.expect("the writer ends");
    assert!(
        echoed == sent,
        "{} bytes came back of {}",
        echoed.len(),
        sent.len()
    );
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused, report.failed), (1, 0, 0));
    assert_eq!((report.bytes_up, report.bytes_down), (1 << 20, 1 << 20));
    assert!(report.messages.is_empty(), "{:?}", report.messages);
}

#[tokio::test]
async fn bytes_sent_with_the_connect_head_go_through() {
    let port = echo_server().await;
    let harness = Harness::allowing(&[format!("127.0.0.1:{port}")]);
    let mut client = harness.connect().await;
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nearly bytes");
    within(client.write_all(request.as_bytes()))
        .await
        .expect("sent");
    within(client.shutdown()).await.expect("half close");
    let answer = String::from_utf8_lossy(&read_to_end(&mut client, 4096).await).into_owned();
    assert_eq!(
        answer,
        "HTTP/1.1 200 Connection established\r\n\r\nearly bytes"
    );
}

async fn refused(harness: &Harness, target: &str) -> String {
    let answer = harness
        .exchange(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
        .await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    answer
}

#[tokio::test]
async fn another_port_a_literal_and_an_unlisted_name_are_refused() {
    let port = echo_server().await;
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let harness = Harness::allowing(&[format!("localhost:{port}")]);
    let answer = refused(&harness, &format!("localhost:{other}")).await;
    assert!(
        answer.ends_with(&format!(
            "\r\n\r\negress to localhost:{other} refused: port {other} is not in the allow list for this host\n"
        )),
        "{answer}"
    );
    let answer = refused(&harness, &format!("127.0.0.1:{port}")).await;
    assert!(answer.contains(&format!(
        "egress to 127.0.0.1:{port} refused: an IP literal not in the allow list"
    )));
    let answer = refused(&harness, &format!("[::1]:{port}")).await;
    assert!(answer.contains(&format!(
        "egress to [::1]:{port} refused: an IP literal not in the allow list"
    )));
    let answer = refused(&harness, "nowhere.test:443").await;
    assert!(answer.contains("egress to nowhere.test:443 refused: not in the allow list\n"));
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused, report.failed), (0, 4, 0));
    assert_eq!(report.messages.len(), 4);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_the_address_is_listed() {
    let port = echo_server().await;
    let resolver = StaticResolver::new()
        .with("evil.test", [LOOPBACK])
        .with("api.test", [LOOPBACK]);
    let entries = [
        format!("evil.test:{port}"),
        format!("api.test:{port}"),
        format!("127.0.0.1:{port}"),
    ];
    // Without the literal rule, both names are refused (DNS rebinding).
    let harness = Harness::start(&entries[..2], resolver.clone(), |_| {});
    let answer = refused(&harness, &format!("evil.test:{port}")).await;
    assert!(answer.contains(&format!(
        "egress to evil.test:{port} refused: resolves to a loopback address 127.0.0.1"
    )));
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused), (0, 1));
    // With it, the name may lead there: the tool could reach it anyway.
    let harness = Harness::start(&entries, resolver, |_| {});
    let mut client = tunnel(&harness, &format!("api.test:{port}")).await;
    within(client.write_all(b"hello")).await.expect("sent");
    within(client.shutdown()).await.expect("half close");
    assert_eq!(read_to_end(&mut client, 64).await, b"hello");
    assert_eq!(harness.finish().await.allowed, 1);
}

#[tokio::test]
async fn a_wildcard_reaches_subdomains_through_the_resolver_but_not_the_apex() {
    let port = echo_server().await;
    let resolver = StaticResolver::new()
        .with("a.b.example.test", [LOOPBACK])
        .with("example.test", [LOOPBACK]);
    let entries = [
        format!("*.example.test:{port}"),
        format!("127.0.0.1:{port}"),
    ];
    let harness = Harness::start(&entries, resolver, |_| {});
    drop(tunnel(&harness, &format!("A.B.Example.Test.:{port}")).await);
    let answer = refused(&harness, &format!("example.test:{port}")).await;
    assert!(answer.contains(&format!(
        "egress to example.test:{port} refused: not in the allow list"
    )));
}

#[tokio::test]
async fn an_allowed_target_that_does_not_answer_is_a_failure_not_a_refusal() {
    let port = closed_port().await;
    let harness = Harness::start(
        &[format!("localhost:{port}"), "gone.test".into()],
        StaticResolver::new(),
        |_| {},
    );
    let answer = harness
        .exchange(format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await;
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!(
            "egress to localhost:{port} failed: could not connect to "
        )),
        "{answer}"
    );
    let answer = harness
        .exchange(b"CONNECT gone.test:443 HTTP/1.1\r\n\r\n")
        .await;
    assert!(
        answer.contains("egress to gone.test:443 failed: the name did not resolve: "),
        "{answer}"
    );
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused, report.failed), (0, 0, 2));
}
