//! Plain HTTP in absolute form: forwarded in origin form, Host checked.

use std::sync::atomic::Ordering;

use bulkhead_egress::StaticResolver;

use crate::support::*;

#[tokio::test]
async fn a_get_is_forwarded_in_origin_form_without_proxy_headers() {
    let (port, _) = http_server().await;
    let resolver = StaticResolver::new().with("api.test", [LOOPBACK]);
    let harness = Harness::start(
        &[format!("api.test:{port}"), format!("127.0.0.1:{port}")],
        resolver,
        |_| {},
    );
    let request = format!(
        "GET http://api.test:{port}/hello?x=1 HTTP/1.1\r\nHost: api.test:{port}\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nUser-Agent: t/1\r\n\r\n"
    );
    let answer = harness.exchange(request.as_bytes()).await;
    let forwarded = format!(
        "GET /hello?x=1 HTTP/1.1\r\nHost: api.test:{port}\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n"
    );
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{forwarded}",
        forwarded.len()
    );
    assert_eq!(answer, expected);
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused), (1, 0));
    assert_eq!(report.bytes_up, forwarded.len() as u64);
    assert_eq!(report.bytes_down, expected.len() as u64);
}

#[tokio::test]
async fn a_host_header_naming_another_host_is_refused_before_any_connection() {
    let (port, accepted) = http_server().await;
    let harness = Harness::allowing(&[format!("localhost:{port}")]);
    let request = format!("GET http://localhost:{port}/ HTTP/1.1\r\nHost: other.test\r\n\r\n");
    let answer = harness.exchange(request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(&format!(
            "egress to localhost:{port} refused: the Host header names other.test:80, not the URL's host\n"
        )),
        "{answer}"
    );
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused), (0, 1));
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unlisted_url_host_is_refused() {
    let harness = Harness::allowing(&["localhost:1".into()]);
    let answer = harness
        .exchange(b"GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(
        answer.contains("egress to example.test:80 refused: not in the allow list"),
        "{answer}"
    );
}
