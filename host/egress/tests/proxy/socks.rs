//! SOCKS5 on the same socket: CONNECT by name, under the same allow list.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::*;

/// Greets without authentication and asks for `command` to `name:port`;
/// returns the stream and the reply code.
async fn socks_request(harness: &Harness, command: u8, name: &str, port: u16) -> (UnixStream, u8) {
    let mut client = harness.connect().await;
    within(client.write_all(&[5, 1, 0]))
        .await
        .expect("greeting sent");
    let mut choice = [0; 2];
    within(client.read_exact(&mut choice))
        .await
        .expect("method chosen");
    assert_eq!(choice, [5, 0]);
    let mut request = vec![5, command, 0, 3, name.len() as u8];
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    within(client.write_all(&request))
        .await
        .expect("request sent");
    let mut reply = [0; 10];
    within(client.read_exact(&mut reply))
        .await
        .expect("a reply");
    assert_eq!(reply[0], 5);
    (client, reply[1])
}

#[tokio::test]
async fn socks5_connect_by_name_reaches_an_allowed_port() {
    let port = echo_server().await;
    let harness = Harness::allowing(&[format!("localhost:{port}")]);
    let (mut client, code) = socks_request(&harness, 1, "localhost", port).await;
    assert_eq!(code, 0);
    within(client.write_all(b"through socks"))
        .await
        .expect("sent");
    within(client.shutdown()).await.expect("half close");
    assert_eq!(read_to_end(&mut client, 64).await, b"through socks");
    assert_eq!(harness.finish().await.allowed, 1);
}

#[tokio::test]
async fn socks5_refuses_what_the_list_does_not_allow_and_other_commands() {
    let port = echo_server().await;
    let harness = Harness::allowing(&[format!("localhost:{port}")]);
    let (_, code) = socks_request(&harness, 1, "elsewhere.test", 443).await;
    assert_eq!(code, 2, "not allowed by the rule set");
    let (_, code) = socks_request(&harness, 2, "localhost", port).await;
    assert_eq!(code, 7, "BIND is not supported");
    let mut client = harness.connect().await;
    within(client.write_all(&[5, 1, 2]))
        .await
        .expect("greeting sent");
    assert_eq!(
        read_to_end(&mut client, 64).await,
        [5, 0xff],
        "no acceptable method"
    );
    let report = harness.finish().await;
    assert_eq!((report.allowed, report.refused), (0, 3));
    let texts: Vec<&str> = report.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "egress to elsewhere.test:443 refused: not in the allow list".to_owned(),
            format!(
                "egress to localhost:{port} refused: SOCKS5 command 2 is not supported (only CONNECT)"
            ),
            "egress refused: a SOCKS5 client that offers no method without authentication"
                .to_owned(),
        ]
    );
}
