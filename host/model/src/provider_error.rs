//! The provider's own words from an error body: OpenAI
//! `{"error":{"message":…}}`, Anthropic `{"type":"error","error":{"type":…,
//! "message":…}}`, or some servers' `{"error":"text"}` / `{"message":…}`.

use serde::Deserialize;

/// Longest message quoted from a body that is not JSON: a proxy's HTML
/// error page is not worth more than its first line or so.
const MAX_PLAIN_MESSAGE: usize = 500;

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object {
        message: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    },
    Text(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorField>,
    message: Option<String>,
}

/// `(type, message)` if `body` is a JSON error of a known shape.
pub(super) fn parse(body: &[u8]) -> Option<(Option<String>, String)> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    match (parsed.error, parsed.message) {
        (Some(ErrorField::Object { message, kind }), _) => Some((kind, message)),
        (Some(ErrorField::Text(message)), _) | (None, Some(message)) => Some((None, message)),
        (None, None) => None,
    }
}

/// The message to show for an HTTP error with this body.
pub(super) fn message(body: &[u8]) -> String {
    if let Some((kind, message)) = parse(body) {
        return match kind {
            Some(kind) => format!("{message} ({kind})"),
            None => message,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no error message in the body)".to_owned();
    }
    let mut end = text.len().min(MAX_PLAIN_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_providers_shapes_are_read() {
        let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(
            message(openai),
            "Incorrect API key provided (invalid_request_error)"
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(message(anthropic), "Overloaded (overloaded_error)");
        assert_eq!(
            message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(message(b"  Bad Gateway \n"), "Bad Gateway");
        assert_eq!(message(b""), "(no error message in the body)");
    }
}
