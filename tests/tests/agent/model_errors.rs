//! Errors show the provider's own message, from an HTTP error body or from
//! inside the stream, and never the API key.

use bulkhead_model::{Message, ModelError, ModelEvent, ProviderKind};
use bulkhead_tests::model_server::{
    ModelServer, Reply, StreamEnd, TEST_KEY, Turn, anthropic, client, collect, openai,
    plain_request, test_limits,
};
use tokio_util::sync::CancellationToken;

async fn http_error(provider: ProviderKind, reply: Reply) -> ModelError {
    let server = ModelServer::start().await;
    server.push(reply);
    let c = client(&server, provider, test_limits());
    let messages = [Message::User { text: "hi".into() }];
    let err = c
        .stream(&plain_request(&messages), &CancellationToken::new())
        .await
        .expect_err("an error");
    assert_eq!(server.requests().len(), 1, "a 4xx is not retried");
    err
}

fn no_key(err: &ModelError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TEST_KEY), "the key leaked: {shown}");
}

#[tokio::test]
async fn openai_http_error_shows_the_message() {
    let err = http_error(
        ProviderKind::OpenAi,
        openai::error_reply(401, &[], "Incorrect API key provided: sk-te***42."),
    )
    .await;
    match &err {
        ModelError::Http {
            status: 401,
            message,
            ..
        } => assert!(message.contains("Incorrect API key provided"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("HTTP 401"));
    no_key(&err);
}

#[tokio::test]
async fn anthropic_http_error_shows_the_message() {
    let err = http_error(
        ProviderKind::Anthropic,
        anthropic::error_reply(
            400,
            &[],
            "invalid_request_error",
            "max_tokens: Field required",
        ),
    )
    .await;
    match &err {
        ModelError::Http {
            status: 400,
            message,
            ..
        } => {
            assert_eq!(
                message,
                "max_tokens: Field required (invalid_request_error)"
            )
        }
        other => panic!("{other:?}"),
    }
    no_key(&err);
}

#[tokio::test]
async fn a_plain_text_error_body_is_quoted() {
    let err = http_error(
        ProviderKind::OpenAi,
        Reply::status(404, &[], "model 'nope' not found"),
    )
    .await;
    assert!(err.to_string().contains("model 'nope' not found"), "{err}");
}

async fn mid_stream(
    provider: ProviderKind,
    error_event: bytes::Bytes,
) -> (Vec<ModelEvent>, ModelError) {
    let server = ModelServer::start().await;
    let mut events = Turn::new().text(&["partial"]).events(provider);
    // Keep the start and the first text, then the error (as the APIs do
    // when a model is overloaded mid-answer).
    events.truncate(3);
    events.push(error_event);
    server.push(Reply::stream(events, StreamEnd::Finish));
    let c = client(&server, provider, test_limits());
    let messages = [Message::User { text: "hi".into() }];
    let mut stream = c
        .stream(&plain_request(&messages), &CancellationToken::new())
        .await
        .expect("200");
    let (events, err) = collect(&mut stream).await;
    (events, err.expect("an error"))
}

#[tokio::test]
async fn openai_error_inside_the_stream() {
    let (events, err) = mid_stream(
        ProviderKind::OpenAi,
        openai::error_event("The server had an error while processing your request"),
    )
    .await;
    assert!(
        events.contains(&ModelEvent::TextDelta("partial".into())),
        "{events:?}"
    );
    match err {
        ModelError::Stream { message, .. } => assert!(message.contains("The server had an error")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn anthropic_error_inside_the_stream() {
    let (_, err) = mid_stream(
        ProviderKind::Anthropic,
        anthropic::error_event("overloaded_error", "Overloaded"),
    )
    .await;
    match &err {
        ModelError::Stream { kind, message } => {
            assert_eq!(kind.as_deref(), Some("overloaded_error"));
            assert_eq!(message, "Overloaded");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Overloaded"));
}
