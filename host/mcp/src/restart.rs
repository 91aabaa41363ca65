//! The restart policy of a long-lived MCP server, one for `mcp serve`
//! ([`crate::ServerSession`]) and `mcp wrap`: how many restarts it gets
//! (the [`RestartBudget`]), how long to wait before each ([`Backoff`]),
//! and what a restarted server is told again of its client's session
//! ([`Replay`]).
//!
//! What survives a restart is what the client told the server, not what
//! the server kept: the `initialize` request and `notifications/initialized`
//! (each user sends its own, or its client's, again), then the logging
//! level (`logging/setLevel`) and the resource subscriptions
//! (`resources/subscribe`, less those unsubscribed). Anything the server
//! held in memory (its own sessions, caches, work in flight, progress
//! tokens, resource contents) is gone with its process.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

pub use bulkhead_config::RestartBudget;
use serde_json::{Value, json};

/// The wait before a window's first restart. Long enough that what the
/// dead server held outside itself (a port, a lock file) is let go and
/// the restart does not race its own teardown; short enough that a
/// client's next call barely notices.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait before a restart: the wait doubles with each restart
/// in the window and stops here, so a generous budget cannot make one
/// restart keep a client waiting for minutes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long to wait before a restart: `first` before a window's first,
/// doubled for each restart before it in the window, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// [`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`]: `mcp wrap`'s, whose
    /// one client waits through the restart.
    pub const DEFAULT: Self = Self {
        first: FIRST_BACKOFF,
        max: MAX_BACKOFF,
    };

    /// No wait: `mcp serve`'s, which restarts at once (as it always has;
    /// its requests queue per server, and its chaos soak kills servers
    /// back to back, each restart counted against the budget all the same).
    pub const NONE: Self = Self {
        first: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The wait before restart `number` (counted from 1) of a window.
    pub fn delay(&self, number: u32) -> Duration {
        // 2^16 × the first wait is far past any sensible cap already.
        let doublings = number.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What to do when a server has died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restart it after `delay`: restart `number` of the `max` the budget
    /// allows in its window.
    Restart {
        number: u32,
        max: u32,
        delay: Duration,
    },
    /// The budget is spent: it was restarted `restarts` times within
    /// `window` already.
    Spent { restarts: u32, window: Duration },
}

impl Decision {
    /// How the decision reads after the reason of the death: `restarting
    /// it (1 of 3)`, or `it was restarted 3 times in 60 s, the budget`.
    pub fn note(&self) -> String {
        match self {
            Decision::Restart { number, max, .. } => format!("restarting it ({number} of {max})"),
            Decision::Spent { restarts, window } => format!(
                "it was restarted {restarts} times in {} s, the budget",
                window.as_secs()
            ),
        }
    }
}

/// One server's restarts, against its budget.
#[derive(Debug)]
pub struct Restarts {
    budget: RestartBudget,
    backoff: Backoff,
    /// When each restart within the window was decided. Holds at most
    /// `budget.max` entries: one is added only while fewer are held.
    recent: VecDeque<Instant>,
    total: u32,
}

impl Restarts {
    pub fn new(budget: RestartBudget, backoff: Backoff) -> Self {
        Self {
            budget,
            backoff,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// The server died at `now`: restart it (and count the restart), or
    /// not, since the budget is spent.
    pub fn after_death(&mut self, now: Instant) -> Decision {
        let window = self.budget.window;
        self.recent
            .retain(|t| now.saturating_duration_since(*t) < window);
        let held = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if held >= self.budget.max {
            return Decision::Spent {
                restarts: held,
                window,
            };
        }
        self.recent.push_back(now);
        self.total = self.total.saturating_add(1);
        let number = held + 1;
        Decision::Restart {
            number,
            max: self.budget.max,
            delay: self.backoff.delay(number),
        }
    }

    /// Restarts decided so far, in all windows.
    pub fn total(&self) -> u32 {
        self.total
    }

    pub fn budget(&self) -> RestartBudget {
        self.budget
    }
}

/// Most resource subscriptions kept for a restart. A client subscribes to
/// the few resources it shows; past this, further ones are not kept, and
/// [`Replay::observe`] says so.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// Longest resource URI kept for a restart: a URI is a path or a short
/// name; a longer one is not kept (and is said so), which bounds the set
/// at [`MAX_SUBSCRIPTIONS`] × 4 KiB.
pub const MAX_URI_BYTES: usize = 4 << 10;

/// The MCP logging levels, least severe first (RFC 5424's order).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// What a client set in its session that a restarted server is told
/// again, after `notifications/initialized`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replay {
    level: Option<&'static str>,
    subscriptions: BTreeSet<String>,
}

/// A request the client sent that a restart cannot replay, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotKept(pub String);

impl Replay {
    /// Notes a client request on its way to the server. `Err`: it set
    /// something a restart will not restore, and why (the caller says so,
    /// since weaker restoring is never silent).
    pub fn observe(&mut self, method: &str, params: &Value) -> Result<(), NotKept> {
        match method {
            "logging/setLevel" => {
                let level = params["level"].as_str().unwrap_or_default();
                match LOG_LEVELS.iter().find(|l| **l == level) {
                    Some(l) => self.level = Some(l),
                    None => {
                        return Err(NotKept(format!(
                            "logging/setLevel to {:?}, not an MCP level, is not kept for a restart",
                            params["level"]
                        )));
                    }
                }
            }
            "resources/subscribe" => {
                let uri = params["uri"].as_str().unwrap_or_default();
                if uri.is_empty() || uri.len() > MAX_URI_BYTES {
                    return Err(NotKept(format!(
                        "a resources/subscribe with no URI, or one over {MAX_URI_BYTES} bytes, is \
                         not kept for a restart"
                    )));
                }
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS
                    && !self.subscriptions.contains(uri)
                {
                    return Err(NotKept(format!(
                        "the subscription to {uri} is not kept for a restart: {MAX_SUBSCRIPTIONS} \
                         are kept at most"
                    )));
                }
                self.subscriptions.insert(uri.to_owned());
            }
            "resources/unsubscribe" => {
                if let Some(uri) = params["uri"].as_str() {
                    self.subscriptions.remove(uri);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `method` is one [`Replay::observe`] notes: the rest need
    /// not be parsed for it.
    pub fn is_observed(method: &str) -> bool {
        matches!(
            method,
            "logging/setLevel" | "resources/subscribe" | "resources/unsubscribe"
        )
    }

    /// The requests (method and params) a restarted server gets after
    /// `notifications/initialized`, in order: the level, then each
    /// subscription.
    pub fn requests(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::with_capacity(1 + self.subscriptions.len());
        if let Some(level) = self.level {
            out.push(("logging/setLevel", json!({ "level": level })));
        }
        for uri in &self.subscriptions {
            out.push(("resources/subscribe", json!({ "uri": uri })));
        }
        out
    }

    /// The level the client set, if it did.
    pub fn level(&self) -> Option<&'static str> {
        self.level
    }

    /// Whether a log message at `level` passes the client's level (every
    /// level does when it set none).
    pub fn passes(&self, level: &str) -> bool {
        let rank = |l: &str| LOG_LEVELS.iter().position(|x| *x == l);
        match (self.level.and_then(rank), rank(level)) {
            (Some(min), Some(at)) => at >= min,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u32, secs: u64) -> RestartBudget {
        RestartBudget {
            max,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_budget_allows_max_restarts_in_its_window_then_is_spent() {
        let mut r = Restarts::new(budget(3, 60), Backoff::DEFAULT);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (1..=3)
            .map(|n| match r.after_death(t0) {
                Decision::Restart { number, max, delay } => {
                    assert_eq!((number, max), (n, 3));
                    delay
                }
                d => panic!("restart {n}: {d:?}"),
            })
            .collect();
        assert_eq!(
            delays,
            [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400)
            ]
        );
        let spent = r.after_death(t0 + Duration::from_secs(1));
        assert_eq!(
            spent,
            Decision::Spent {
                restarts: 3,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(spent.note(), "it was restarted 3 times in 60 s, the budget");
        // Once the window has passed, the budget is whole again.
        let later = r.after_death(t0 + Duration::from_secs(61));
        assert!(
            matches!(later, Decision::Restart { number: 1, .. }),
            "{later:?}"
        );
        assert_eq!(later.note(), "restarting it (1 of 3)");
        assert_eq!(r.total(), 4);
    }

    #[test]
    fn no_budget_means_no_restart_and_the_backoff_is_capped() {
        let mut r = Restarts::new(budget(0, 60), Backoff::DEFAULT);
        assert!(matches!(
            r.after_death(Instant::now()),
            Decision::Spent { restarts: 0, .. }
        ));
        let b = Backoff::DEFAULT;
        assert_eq!(b.delay(1), FIRST_BACKOFF);
        assert_eq!(b.delay(7), MAX_BACKOFF);
        assert_eq!(b.delay(u32::MAX), MAX_BACKOFF);
        assert_eq!(Backoff::NONE.delay(5), Duration::ZERO);
    }

    #[test]
    fn the_level_and_subscriptions_are_replayed_and_unsubscribes_forgotten() {
        let mut s = Replay::default();
        assert!(s.requests().is_empty());
        assert!(s.passes("debug"));
        s.observe("logging/setLevel", &json!({"level": "error"}))
            .unwrap();
        s.observe("resources/subscribe", &json!({"uri": "file:///b"}))
            .unwrap();
        s.observe("resources/subscribe", &json!({"uri": "file:///a"}))
            .unwrap();
        s.observe("resources/unsubscribe", &json!({"uri": "file:///b"}))
            .unwrap();
        s.observe("tools/call", &json!({"name": "x"})).unwrap();
        assert_eq!(
            s.requests(),
            vec![
                ("logging/setLevel", json!({"level": "error"})),
                ("resources/subscribe", json!({"uri": "file:///a"})),
            ]
        );
        assert!(!s.passes("warning") && s.passes("error") && s.passes("emergency"));
    }

    #[test]
    fn what_cannot_be_kept_is_said() {
        let mut s = Replay::default();
        let e = s
            .observe("logging/setLevel", &json!({"level": "loud"}))
            .unwrap_err();
        assert!(e.0.contains("\"loud\""), "{e}");
        let long = "x".repeat(MAX_URI_BYTES + 1);
        assert!(
            s.observe("resources/subscribe", &json!({"uri": long}))
                .is_err()
        );
        for i in 0..MAX_SUBSCRIPTIONS {
            s.observe("resources/subscribe", &json!({"uri": format!("r:{i}")}))
                .unwrap();
        }
        let e = s
            .observe("resources/subscribe", &json!({"uri": "r:more"}))
            .unwrap_err();
        assert!(e.0.contains("256"), "{e}");
        // One already kept is no new entry.
        s.observe("resources/subscribe", &json!({"uri": "r:0"}))
            .unwrap();
        assert_eq!(s.requests().len(), MAX_SUBSCRIPTIONS);
    }
}
