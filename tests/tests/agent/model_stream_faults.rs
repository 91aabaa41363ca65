//! A stream that breaks, never ends, goes quiet or sends a giant event
//! ends in a typed error with bounded memory; a cancel ends it at once.

use std::time::{Duration, Instant};

use bulkhead_model::{
    CapKind, Message, ModelError, ModelEvent, ModelLimits, ProviderKind, TimeoutKind,
};
use bulkhead_tests::model_server::{
    ModelServer, Reply, StreamEnd, Turn, client, collect, openai, plain_request, test_limits,
    text_of,
};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

const PROVIDERS: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

/// Sends one request answered by `reply`; the events and the error.
async fn answer(
    provider: ProviderKind,
    reply: Reply,
    limits: ModelLimits,
) -> (Vec<ModelEvent>, Option<ModelError>) {
    let server = ModelServer::start().await;
    server.push(reply);
    let c = client(&server, provider, limits);
    let messages = [Message::User { text: "hi".into() }];
    let req = plain_request(&messages);
    let mut stream = c
        .stream(&req, &CancellationToken::new())
        .await
        .expect("200");
    collect(&mut stream).await
}

#[tokio::test]
async fn a_connection_dropped_mid_stream_is_an_error_after_the_text_so_far() {
    for provider in PROVIDERS {
        let mut events = Turn::new().text(&["half", " an answer"]).events(provider);
        events.truncate(4);
        let (got, err) = answer(
            provider,
            Reply::stream(events, StreamEnd::Drop),
            test_limits(),
        )
        .await;
        assert!(text_of(&got).starts_with("half"), "{got:?}");
        assert!(!got.contains(&ModelEvent::Done));
        match err {
            Some(ModelError::Transport(_) | ModelError::Protocol(_)) => {}
            other => panic!("{provider:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_stream_closed_without_its_terminator_is_a_protocol_error() {
    for provider in PROVIDERS {
        let mut events = Turn::new().text(&["cut"]).events(provider);
        events.pop();
        let (_, err) = answer(
            provider,
            Reply::stream(events, StreamEnd::Finish),
            test_limits(),
        )
        .await;
        match err {
            Some(ModelError::Protocol(m)) => assert!(m.contains("ended before"), "{m}"),
            other => panic!("{provider:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_endless_stream_hits_the_response_cap() {
    let limits = ModelLimits {
        max_response_bytes: 1 << 20,
        ..test_limits()
    };
    // Well-formed text deltas forever: only the whole-response cap stops it.
    let chunk = Turn::new().text(&["more "]).events(ProviderKind::OpenAi)[1].clone();
    let (got, err) = answer(
        ProviderKind::OpenAi,
        Reply::Endless {
            head: Vec::new(),
            chunk,
        },
        limits,
    )
    .await;
    assert!(!got.is_empty());
    match err {
        Some(ModelError::CapExceeded {
            kind: CapKind::Response,
            limit,
        }) => assert_eq!(limit, 1 << 20),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_endless_event_hits_the_event_cap_before_it_is_buffered() {
    for provider in PROVIDERS {
        let limits = ModelLimits {
            max_event_bytes: 64 << 10,
            ..test_limits()
        };
        // `data:` lines that never end the event.
        let chunk = Bytes::from(format!("data: {}\n", "x".repeat(1000)));
        let (_, err) = answer(
            provider,
            Reply::Endless {
                head: Vec::new(),
                chunk,
            },
            limits,
        )
        .await;
        match err {
            Some(ModelError::CapExceeded {
                kind: CapKind::Event,
                limit,
            }) => assert_eq!(limit, 64 << 10),
            other => panic!("{provider:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_single_event_is_refused() {
    for provider in PROVIDERS {
        let limits = ModelLimits {
            max_event_bytes: 4096,
            ..test_limits()
        };
        let big = "y".repeat(10_000);
        let events = Turn::new().text(&["small", &big]).events(provider);
        let (got, err) = answer(provider, Reply::stream(events, StreamEnd::Finish), limits).await;
        assert!(!text_of(&got).contains(&big));
        assert!(
            matches!(
                err,
                Some(ModelError::CapExceeded {
                    kind: CapKind::Event,
                    ..
                })
            ),
            "{provider:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_timeout() {
    for provider in PROVIDERS {
        let limits = ModelLimits {
            idle_timeout: Duration::from_millis(300),
            ..test_limits()
        };
        let mut events = Turn::new().text(&["then silence"]).events(provider);
        events.truncate(3);
        let (_, err) = answer(provider, Reply::stream(events, StreamEnd::Hang), limits).await;
        assert!(
            matches!(err, Some(ModelError::Timeout(TimeoutKind::Idle))),
            "{provider:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn cancel_mid_stream_ends_it_with_cancelled() {
    let server = ModelServer::start().await;
    let mut events = Turn::new().text(&["first"]).events(ProviderKind::OpenAi);
    events.truncate(2);
    server.push(Reply::stream(events, StreamEnd::Hang));
    let c = client(&server, ProviderKind::OpenAi, test_limits());
    let messages = [Message::User { text: "hi".into() }];
    let req = plain_request(&messages);
    let cancel = CancellationToken::new();
    let mut stream = c.stream(&req, &cancel).await.expect("200");
    assert_eq!(
        stream.next().await.map(|r| r.ok()),
        Some(Some(ModelEvent::TextDelta("first".into())))
    );
    let started = Instant::now();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        })
    };
    // The server stays silent for an hour (the idle timeout is 90 s):
    // only the cancel can end this read.
    assert!(matches!(
        stream.next().await,
        Some(Err(ModelError::Cancelled))
    ));
    assert!(stream.next().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(60));
    canceller.await.expect("canceller");
}

#[tokio::test]
async fn cancel_during_backoff_ends_the_request() {
    let server = ModelServer::start().await;
    server.push(openai::error_reply(429, &[("retry-after", "30")], "later"));
    let limits = ModelLimits {
        max_backoff: Duration::from_secs(60),
        ..test_limits()
    };
    let c = client(&server, ProviderKind::OpenAi, limits);
    let messages = [Message::User { text: "hi".into() }];
    let req = plain_request(&messages);
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let err = c.stream(&req, &cancel).await.expect_err("cancelled");
    assert!(matches!(err, ModelError::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not sleep through Retry-After"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "cancelled while waiting to retry"
    );
    canceller.await.expect("canceller");
}
