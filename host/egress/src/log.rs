//! What a call's proxy let through and refused: counters, and the first few
//! distinct messages, shared between the proxy and its caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::host::Target;

/// How many distinct messages a log keeps; later new ones are only counted.
/// 32 names every host a well-behaved tool tries in one call with room to
/// spare (a tool that tries more is scanning, and its first 32 say so), and
/// with [`MAX_MESSAGE_LEN`] holds a log's text to 16 KiB whatever the tool
/// does, small enough to go whole into a call's outcome and its session record.
pub const MAX_MESSAGES: usize = 32;

/// The longest message kept, in bytes; longer ones are cut (on a character
/// boundary) and end in `…`. A message names a host of at most 253
/// characters and a reason of well under 200, so this never cuts an honest
/// one; it bounds the rest.
pub const MAX_MESSAGE_LEN: usize = 512;

/// A call's egress record: counters and messages. Cloning shares it: the
/// caller keeps one clone and hands another to the proxy.
#[derive(Clone, Debug, Default)]
pub struct EgressLog {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    allowed: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    messages: Mutex<Messages>,
}

#[derive(Debug, Default)]
struct Messages {
    kept: Vec<LoggedMessage>,
    left_off: u64,
}

/// One distinct message and how many times it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedMessage {
    /// `egress to HOST:PORT refused: REASON`, `egress refused: REASON`
    /// (when no target was understood), or `egress to HOST:PORT failed:
    /// REASON` (allowed, but the target could not be reached).
    pub text: String,
    /// How many times it was recorded.
    pub count: u64,
}

/// A snapshot of an [`EgressLog`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EgressReport {
    /// Connections let through to a target (tunnels and plain requests).
    pub allowed: u64,
    /// Connections refused: by the allow list or the address rules, for a
    /// request the proxy does not take, over a cap, or too slow to ask.
    pub refused: u64,
    /// Connections allowed but not made: the name did not resolve, or the
    /// target did not answer in time or refused.
    pub failed: u64,
    /// Bytes sent from the tool to its targets (a plain request's head
    /// included).
    pub bytes_up: u64,
    /// Bytes sent from targets back to the tool.
    pub bytes_down: u64,
    /// The first [`MAX_MESSAGES`] distinct refusal and failure messages.
    pub messages: Vec<LoggedMessage>,
    /// How many refusals and failures had a message beyond those kept.
    pub messages_left_off: u64,
}

impl EgressLog {
    /// An empty log.
    pub fn new() -> EgressLog {
        EgressLog::default()
    }

    /// What has happened so far.
    pub fn report(&self) -> EgressReport {
        let i = &*self.inner;
        let messages = self.messages();
        EgressReport {
            allowed: i.allowed.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            bytes_up: i.bytes_up.load(Ordering::Relaxed),
            bytes_down: i.bytes_down.load(Ordering::Relaxed),
            messages: messages.kept.clone(),
            messages_left_off: messages.left_off,
        }
    }

    pub(crate) fn allowed(&self) {
        self.inner.allowed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a refusal: `egress to TARGET refused: REASON`.
    pub(crate) fn refused(&self, target: Option<&Target>, reason: &str) -> String {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        let text = match target {
            Some(target) => format!("egress to {target} refused: {reason}"),
            None => format!("egress refused: {reason}"),
        };
        self.keep(text)
    }

    /// Records a failure: `egress to TARGET failed: REASON`.
    pub(crate) fn failed(&self, target: &Target, reason: &str) -> String {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
        self.keep(format!("egress to {target} failed: {reason}"))
    }

    pub(crate) fn add_up(&self, n: usize) {
        self.inner.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_down(&self, n: usize) {
        self.inner.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Keeps `text` (cut to [`MAX_MESSAGE_LEN`]) if it is already kept or
    /// there is room, and returns it for the response to the tool.
    fn keep(&self, mut text: String) -> String {
        if text.len() > MAX_MESSAGE_LEN {
            let mut end = MAX_MESSAGE_LEN - '…'.len_utf8();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        let mut messages = self.messages();
        if let Some(seen) = messages.kept.iter_mut().find(|m| m.text == text) {
            seen.count += 1;
        } else if messages.kept.len() < MAX_MESSAGES {
            messages.kept.push(LoggedMessage {
                text: text.clone(),
                count: 1,
            });
        } else {
            messages.left_off += 1;
        }
        text
    }

    fn messages(&self) -> MutexGuard<'_, Messages> {
        // A panic while holding the lock cannot leave the list half-changed
        // in a way that matters (each change is one push or one increment).
        self.inner
            .messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Target;

    #[test]
    fn messages_are_distinct_counted_and_bounded() {
        let log = EgressLog::new();
        let t = Target::parse("a.test:443").expect("target");
        log.refused(Some(&t), "not in the allow list");
        log.refused(Some(&t), "not in the allow list");
        for i in 0..MAX_MESSAGES + 5 {
            log.refused(None, &format!("reason {i}"));
        }
        let r = log.report();
        assert_eq!(r.refused, MAX_MESSAGES as u64 + 7);
        assert_eq!(r.messages.len(), MAX_MESSAGES);
        assert_eq!(
            r.messages[0].text,
            "egress to a.test:443 refused: not in the allow list"
        );
        assert_eq!(r.messages[0].count, 2);
        assert_eq!(r.messages_left_off, 6);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let log = EgressLog::new();
        let text = log.refused(None, &"é".repeat(MAX_MESSAGE_LEN));
        assert!(text.len() <= MAX_MESSAGE_LEN, "{}", text.len());
        assert!(text.ends_with('…'));
    }
}
