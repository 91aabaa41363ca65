//! `mcp wrap --inject`'s stream faults, as the worker's relay takes them
//! (`mcp_stdio`'s `inject` argument): the relay applies them to the
//! server's output as if the server had done it (see `bulkhead_faults`).

use bulkhead_faults::{Fault, FaultKind, FaultSpec, Trigger};
use bulkhead_ipc::{RelayFault, RelayFaultKind, RelayTrigger};

/// The stream faults of `specs`, for the relay. `check(McpSession)` has
/// refused the triggers a relay cannot apply; one that got here anyway is
/// an error, never dropped in silence.
pub(crate) fn of(specs: &[FaultSpec]) -> anyhow::Result<Vec<RelayFault>> {
    specs
        .iter()
        .filter(|s| s.fault.kind() == FaultKind::Stream)
        .map(|spec| {
            let kind = match spec.fault {
                Fault::Garbage => RelayFaultKind::Garbage,
                Fault::Oversize => RelayFaultKind::Oversize,
                Fault::Truncate => RelayFaultKind::Truncate,
                Fault::Delay(d) => {
                    RelayFaultKind::DelayMs(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                }
                Fault::Slow(rate) => RelayFaultKind::Slow(rate),
                Fault::Cut(n) => RelayFaultKind::Cut(n),
                _ => anyhow::bail!("--inject {spec}: not a stream fault of the relay"),
            };
            let trigger = match &spec.trigger {
                Trigger::Start => RelayTrigger::Start,
                Trigger::After(d) => {
                    RelayTrigger::AfterMs(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                }
                Trigger::Bytes(n) => RelayTrigger::Bytes(*n),
                Trigger::Msg(n) => RelayTrigger::Msg(*n),
                Trigger::Every(n) => RelayTrigger::Every(*n),
                Trigger::On(name) => RelayTrigger::On(name.clone()),
                other => anyhow::bail!("--inject {spec}: the relay cannot fire on @{other}"),
            };
            Ok(RelayFault {
                kind,
                trigger,
                spec_fault: spec.fault.to_string(),
                spec_trigger: spec.trigger.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_faults_go_to_the_relay_with_their_triggers() {
        let specs: Vec<FaultSpec> = ["kill@2s", "delay:1500ms@on:tools/call", "oversize@msg:2"]
            .iter()
            .map(|s| s.parse().expect("spec"))
            .collect();
        let faults = of(&specs).expect("relay faults");
        assert_eq!(faults.len(), 2, "the process fault is not the relay's");
        assert_eq!(faults[0].kind, RelayFaultKind::DelayMs(1500));
        assert_eq!(faults[0].trigger, RelayTrigger::On("tools/call".into()));
        assert_eq!(
            (
                faults[1].spec_fault.as_str(),
                faults[1].spec_trigger.as_str()
            ),
            ("oversize", "msg:2")
        );
        let p: FaultSpec = "garbage@p:0.5".parse().expect("spec");
        assert!(of(&[p]).is_err());
    }
}
