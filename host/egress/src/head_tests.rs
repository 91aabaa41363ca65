use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::*;

/// A reader that hands out its bytes one per read, then the end.
struct Trickle<'a>(&'a [u8]);

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some((first, rest)) = self.0.split_first() {
            buf.put_slice(&[*first]);
            self.0 = rest;
        }
        Poll::Ready(Ok(()))
    }
}

fn parsed(text: &str) -> Request {
    match parse(text.as_bytes()) {
        Ok(Some(request)) => request,
        other => panic!("{text:?}: {other:?}"),
    }
}

fn rejected(text: &[u8]) -> Rejection {
    match parse(text) {
        Err(rejection) => rejection,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
    }
}

#[test]
fn connect_takes_the_authority_and_keeps_early_bytes() {
    let r = parsed("CONNECT API.test.:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n\x16\x03\x01");
    assert_eq!(r.kind, Kind::Connect);
    assert_eq!(r.target.to_string(), "api.test:443");
    assert_eq!(r.first_bytes, b"\x16\x03\x01");
    let r = parsed("CONNECT [::1]:8080 HTTP/1.1\r\n\r\n");
    assert_eq!(r.target.to_string(), "[::1]:8080");
}

#[test]
fn an_incomplete_head_waits() {
    assert_eq!(parse(b"GET http://a.test/ HTTP/1.1\r\nHost: a"), Ok(None));
    assert_eq!(parse(b"CONN"), Ok(None));
}

#[test]
fn a_plain_request_is_rewritten_for_the_server() {
    let r = parsed(
        "POST http://api.test:8080/v1/x?q=1#frag HTTP/1.1\r\nHost: API.test:8080\r\n\
         Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
         Proxy-Authorization: Basic eA==\r\nContent-Length: 4\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\nbody",
    );
    assert_eq!(r.kind, Kind::Forward);
    assert_eq!(r.target.to_string(), "api.test:8080");
    assert_eq!(
        String::from_utf8_lossy(&r.first_bytes),
        "POST /v1/x?q=1 HTTP/1.1\r\nHost: api.test:8080\r\nContent-Length: 4\r\nAccept: */*\r\n\
         Connection: close\r\n\r\nbody"
    );
}

#[test]
fn a_rewritten_head_that_grew_is_written_into_one_buffer_of_its_size() {
    // A long method, bare `\n` line ends and `name:value` headers: the
    // rewritten head is longer than the one read, and is still built in a
    // buffer allocated once, at its size.
    let mut head = format!("{} http://a.test/ HTTP/1.1\n", "M".repeat(12_000));
    for i in 0..60 {
        head.push_str(&format!("X-{i}:v\n"));
    }
    head.push_str("\nrest");
    assert!(head.len() < MAX_HEAD);
    let r = parsed(&head);
    assert!(r.first_bytes.len() > head.len(), "the head grew");
    assert_eq!(r.first_bytes.capacity(), r.first_bytes.len());
    assert!(
        r.first_bytes
            .ends_with(b"X-59: v\r\nConnection: close\r\n\r\nrest")
    );
}

#[test]
fn framing_headers_survive_a_connection_header_naming_them() {
    let r = parsed(
        "PUT http://a.test/ HTTP/1.1\r\nConnection: transfer-encoding, content-length\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&r.first_bytes),
        "PUT / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn the_default_port_and_path_are_filled_in() {
    let r = parsed("GET http://a.test HTTP/1.0\r\nHost: a.test:80\r\n\r\n");
    assert_eq!(r.target.to_string(), "a.test:80");
    assert!(
        r.first_bytes
            .starts_with(b"GET / HTTP/1.0\r\nHost: a.test\r\n")
    );
    let r = parsed("GET http://a.test?x HTTP/1.1\r\n\r\n");
    assert!(r.first_bytes.starts_with(b"GET /?x HTTP/1.1\r\n"));
}

#[test]
fn a_host_header_must_agree_with_the_url() {
    let r = rejected(b"GET http://api.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.target.map(|t| t.to_string()).as_deref(),
        Some("api.test:80")
    );
    assert_eq!(
        r.reason,
        "the Host header names evil.test:80, not the URL's host"
    );
    let r = rejected(b"GET http://api.test/ HTTP/1.1\r\nHost: api.test:81\r\n\r\n");
    assert_eq!(
        r.reason,
        "the Host header names api.test:81, not the URL's host"
    );
    let r = rejected(b"GET http://api.test/ HTTP/1.1\r\nHost: api.test\r\nHost: api.test\r\n\r\n");
    assert_eq!(r.reason, "more than one Host header");
}

#[test]
fn forms_the_proxy_does_not_take_are_bad_requests() {
    for (head, reason) in [
        (
            &b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
            "not a proxy request: `/` is not an absolute http:// URL",
        ),
        (
            b"GET https://a.test/ HTTP/1.1\r\n\r\n",
            "`https://a.test/` is an https:// URL in a plain request; send CONNECT for https",
        ),
        (
            b"GET ftp://a.test/ HTTP/1.1\r\n\r\n",
            "not a proxy request: `ftp://a.test/` is not an absolute http:// URL",
        ),
        (
            b"GET http://u:p@a.test/ HTTP/1.1\r\n\r\n",
            "the URL carries a user name (`…@`)",
        ),
        (
            b"CONNECT a.test HTTP/1.1\r\n\r\n",
            "not a valid CONNECT target `a.test`: no port is given",
        ),
        (
            b"CONNECT 127.1:80 HTTP/1.1\r\n\r\n",
            "not a valid CONNECT target `127.1:80`: the name ends in a number but is not an IP address; write IPv4 addresses as four decimal numbers",
        ),
        (b"\x00\x01garbage\r\n\r\n", "not valid HTTP: invalid token"),
        (
            b"GET http://a.test/ HTTP/9.9\r\n\r\n",
            "not valid HTTP: invalid HTTP version",
        ),
    ] {
        let r = rejected(head);
        assert_eq!(r.status, Status::BadRequest, "{reason}");
        assert_eq!(r.reason, reason);
    }
}

#[test]
fn too_many_headers_is_431() {
    let mut head = String::from("GET http://a.test/ HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let r = rejected(head.as_bytes());
    assert_eq!(r.status, Status::HeadTooLarge);
    assert_eq!(
        r.reason,
        format!("the request head has more than {MAX_HEADERS} header lines")
    );
}

#[test]
fn responses_are_complete_and_close() {
    let text = String::from_utf8(response(Status::Forbidden, "no")).expect("utf-8");
    assert_eq!(
        text,
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
         Connection: close\r\n\r\nno\n"
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_read_whole() {
    let head = b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nX: y\r\n\r\nearly";
    match read_opening(&mut Trickle(head)).await {
        Ok(Opening::Http(r)) => {
            assert_eq!(r.target.to_string(), "a.test:443");
            // Reading stops at the head; the rest stays in the stream.
            assert!(r.first_bytes.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn endless_lines_are_cut_after_a_bounded_number_of_parses() {
    let lines = vec![b'\n'; MAX_HEAD];
    match read_opening(&mut Trickle(&lines)).await {
        Err(r) => {
            assert_eq!(r.status, Status::BadRequest);
            assert_eq!(
                r.reason,
                "not valid HTTP: too many lines without the end of the head"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn openings_are_told_apart_by_their_first_byte() {
    assert!(matches!(
        read_opening(&mut Trickle(b"")).await,
        Ok(Opening::Closed)
    ));
    assert!(
        matches!(read_opening(&mut Trickle(&[5, 1, 0])).await, Ok(Opening::Socks(b)) if b == [5])
    );
    let r = read_opening(&mut Trickle(b"GET http://a.test/ HTTP/1.1\r\nHo")).await;
    assert_eq!(
        r.map(|_| ()).map_err(|r| r.reason),
        Err("not valid HTTP: the client closed before the head was complete".to_owned())
    );
}
