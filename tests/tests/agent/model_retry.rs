//! 429 and 5xx are retried with backoff, honouring `Retry-After` (seconds
//! or an HTTP date) up to the cap; the caller sees only the success, or the
//! last error once retries run out.

use std::time::{Duration, Instant, SystemTime};

use bulkhead_model::{Message, ModelError, ModelLimits, ProviderKind};
use bulkhead_tests::model_server::{
    ModelServer, Reply, Turn, anthropic, client, collect, openai, plain_request, test_limits,
    text_of,
};
use tokio_util::sync::CancellationToken;

async fn answer_after(
    provider: ProviderKind,
    failures: Vec<Reply>,
    limits: ModelLimits,
) -> (Result<String, ModelError>, ModelServer) {
    let server = ModelServer::start().await;
    let n = failures.len();
    for f in failures {
        server.push(f);
    }
    server.push(Turn::new().text(&["ok"]).reply(provider));
    let c = client(&server, provider, limits);
    let messages = [Message::User { text: "hi".into() }];
    let req = plain_request(&messages);
    let result = match c.stream(&req, &CancellationToken::new()).await {
        Ok(mut s) => {
            let (events, err) = collect(&mut s).await;
            assert!(err.is_none(), "{err:?}");
            Ok(text_of(&events))
        }
        Err(e) => Err(e),
    };
    if result.is_ok() {
        assert_eq!(server.requests().len(), n + 1);
        // Every attempt sent the same body.
        let bodies: Vec<_> = server.requests().iter().map(|r| r.body.clone()).collect();
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    }
    (result, server)
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_then_success() {
    let started = Instant::now();
    let (r, _) = answer_after(
        ProviderKind::OpenAi,
        vec![openai::error_reply(
            429,
            &[("retry-after", "1")],
            "Rate limit reached",
        )],
        test_limits(),
    )
    .await;
    assert_eq!(r.expect("success"), "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_date_then_success() {
    let started = Instant::now();
    let date = httpdate_in(Duration::from_secs(2));
    let (r, _) = answer_after(
        ProviderKind::Anthropic,
        vec![anthropic::error_reply(
            429,
            &[("retry-after", &date)],
            "rate_limit_error",
            "slow down",
        )],
        test_limits(),
    )
    .await;
    assert_eq!(r.expect("success"), "ok");
    // The date has one-second resolution: at least one second is left of it.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn retry_after_is_capped() {
    let limits = ModelLimits {
        max_backoff: Duration::from_millis(200),
        ..test_limits()
    };
    let started = Instant::now();
    let (r, _) = answer_after(
        ProviderKind::OpenAi,
        vec![openai::error_reply(
            429,
            &[("retry-after", "3600")],
            "come back in an hour",
        )],
        limits,
    )
    .await;
    assert_eq!(r.expect("success"), "ok");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_500_then_a_503_then_success() {
    for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let (r, _) = answer_after(
            provider,
            vec![
                openai::error_reply(500, &[], "internal"),
                anthropic::error_reply(503, &[], "overloaded_error", "Overloaded"),
            ],
            test_limits(),
        )
        .await;
        assert_eq!(r.expect("success"), "ok");
    }
}

#[tokio::test]
async fn retries_run_out_with_the_last_error() {
    let limits = ModelLimits {
        max_retries: 2,
        ..test_limits()
    };
    let failures = (0..3)
        .map(|i| openai::error_reply(502, &[], &format!("bad gateway {i}")))
        .collect();
    let (r, server) = answer_after(ProviderKind::OpenAi, failures, limits).await;
    match r {
        Err(ModelError::Http {
            status: 502,
            message,
            ..
        }) => assert!(message.contains("bad gateway 2"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
    assert_eq!(server.pending(), 1, "the success was never asked for");
}

fn httpdate_in(d: Duration) -> String {
    httpdate::fmt_http_date(SystemTime::now() + d)
}
