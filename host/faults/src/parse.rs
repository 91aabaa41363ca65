//! `FAULT[:ARG][@TRIGGER]` into a [`FaultSpec`], with errors that name the
//! bad part and list what would have been accepted.

use std::str::FromStr;

use crate::units::{parse_duration, parse_size};
use crate::{DEFAULT_ERROR_CODE, Fault, FaultSpec, Trigger};

/// Every fault, as `--help` and the errors list them.
pub const VALID_FAULTS: &str = "kill, crash, hang, oom, cpu, exit:N, delay:DUR, slow:RATE, \
     cut:SIZE, garbage, oversize, truncate, drop, error[:CODE], timeout, disconnect, malformed";

/// Every trigger, as `--help` and the errors list them.
pub const VALID_TRIGGERS: &str =
    "@DUR (e.g. @200ms), @bytes:SIZE, @msg:N, @on:NAME, @every:N, @p:PROBABILITY";

/// A `--inject` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error(
        "empty fault: write FAULT[:ARG][@TRIGGER], e.g. kill@200ms; the faults are: {VALID_FAULTS}"
    )]
    Empty,
    #[error("unknown fault \"{name}\"; the faults are: {VALID_FAULTS}")]
    UnknownFault { name: String },
    #[error("fault \"{fault}\" needs an argument: {fault}:{expected}")]
    MissingArgument {
        fault: &'static str,
        expected: &'static str,
    },
    #[error("fault \"{fault}\": bad argument \"{arg}\": expected {expected}")]
    BadArgument {
        fault: &'static str,
        arg: String,
        expected: &'static str,
    },
    #[error("fault \"{fault}\" takes no argument, got \"{arg}\"")]
    UnexpectedArgument { fault: &'static str, arg: String },
    #[error("unknown trigger \"@{trigger}\"; the triggers are: {VALID_TRIGGERS}")]
    UnknownTrigger { trigger: String },
    #[error("trigger \"@{trigger}\": bad value \"{value}\": expected {expected}")]
    BadTrigger {
        trigger: &'static str,
        value: String,
        expected: String,
    },
}

impl FromStr for FaultSpec {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let (fault, trigger) = match text.split_once('@') {
            Some((f, t)) => (f, Some(t)),
            None => (text, None),
        };
        let fault = parse_fault(fault)?;
        let trigger = match trigger {
            None => Trigger::Start,
            Some(t) => parse_trigger(t)?,
        };
        Ok(FaultSpec { fault, trigger })
    }
}

fn parse_fault(text: &str) -> Result<Fault, ParseError> {
    let (name, arg) = match text.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (text, None),
    };
    let plain = |fault: Fault| match arg {
        None => Ok(fault),
        Some(a) => Err(ParseError::UnexpectedArgument {
            fault: fault.name(),
            arg: a.to_owned(),
        }),
    };
    let needed = |fault: &'static str, expected: &'static str| {
        arg.ok_or(ParseError::MissingArgument { fault, expected })
    };
    let bad = |fault: &'static str, arg: &str, expected: &'static str| ParseError::BadArgument {
        fault,
        arg: arg.to_owned(),
        expected,
    };
    match name {
        "kill" => plain(Fault::Kill),
        "crash" => plain(Fault::Crash),
        "hang" => plain(Fault::Hang),
        "oom" => plain(Fault::Oom),
        "cpu" => plain(Fault::Cpu),
        "garbage" => plain(Fault::Garbage),
        "oversize" => plain(Fault::Oversize),
        "truncate" => plain(Fault::Truncate),
        "drop" => plain(Fault::Drop),
        "timeout" => plain(Fault::Timeout),
        "disconnect" => plain(Fault::Disconnect),
        "malformed" => plain(Fault::Malformed),
        "exit" => {
            const EXPECTED: &str = "an exit code from 0 to 255, e.g. exit:3";
            let a = needed("exit", "N")?;
            a.parse::<u8>()
                .map(|n| Fault::Exit(i32::from(n)))
                .map_err(|_| bad("exit", a, EXPECTED))
        }
        "delay" => {
            let a = needed("delay", "DUR")?;
            parse_duration(a)
                .map(Fault::Delay)
                .map_err(|_| bad("delay", a, "a duration, e.g. 500ms, 2s or 1m"))
        }
        "slow" => {
            const EXPECTED: &str = "bytes a second above 0, e.g. slow:1K or slow:64K/s";
            let a = needed("slow", "RATE")?;
            match parse_size(a.strip_suffix("/s").unwrap_or(a)) {
                Ok(rate) if rate > 0 => Ok(Fault::Slow(rate)),
                _ => Err(bad("slow", a, EXPECTED)),
            }
        }
        "cut" => {
            let a = needed("cut", "SIZE")?;
            parse_size(a)
                .map(Fault::Cut)
                .map_err(|_| bad("cut", a, "a size, e.g. 100, 64K or 1M"))
        }
        "error" => match arg {
            None => Ok(Fault::Error(DEFAULT_ERROR_CODE)),
            Some(a) => a.parse::<i64>().map(Fault::Error).map_err(|_| {
                bad(
                    "error",
                    a,
                    "a JSON-RPC error code (an integer), e.g. error:-32000",
                )
            }),
        },
        other => Err(ParseError::UnknownFault {
            name: other.to_owned(),
        }),
    }
}

fn parse_trigger(text: &str) -> Result<Trigger, ParseError> {
    let bad = |trigger: &'static str, value: &str, expected: &str| ParseError::BadTrigger {
        trigger,
        value: value.to_owned(),
        expected: expected.to_owned(),
    };
    // A bare duration: `@200ms`, `@2s`.
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return parse_duration(text)
            .map(Trigger::After)
            .map_err(|e| bad("DUR", text, &e));
    }
    let Some((name, value)) = text.split_once(':') else {
        return Err(ParseError::UnknownTrigger {
            trigger: text.to_owned(),
        });
    };
    let count = |trigger: &'static str| match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad(trigger, value, "a whole number from 1")),
    };
    match name {
        "bytes" => parse_size(value)
            .map(Trigger::Bytes)
            .map_err(|e| bad("bytes", value, &e)),
        "msg" => count("msg").map(Trigger::Msg),
        "every" => count("every").map(Trigger::Every),
        "on" if !value.is_empty() => Ok(Trigger::On(value.to_owned())),
        "on" => Err(bad(
            "on",
            value,
            "a tool or method name, e.g. @on:tools/call or @on:shell",
        )),
        "p" => match value.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(Trigger::Probability(p)),
            _ => Err(bad("p", value, "a probability from 0 to 1, e.g. @p:0.05")),
        },
        _ => Err(ParseError::UnknownTrigger {
            trigger: text.to_owned(),
        }),
    }
}
