//! `mcp serve --chaos seed=S,rate=R[,faults=error|drop|kill|...]`: faults
//! picked at random for the requests the gateway sends its servers, to
//! soak-test a client. One generator for all servers, drawn in the order
//! the requests are sent: the same seed gives the same faults for the same
//! sequence of requests.

use std::fmt;
use std::str::FromStr;

use bulkhead_faults::{DEFAULT_ERROR_CODE, Fault, SeededRng};

/// The keys of a chaos spec, as the errors list them.
pub const CHAOS_KEYS: &str = "seed=S (a whole number), rate=R (a probability per request from 0 to 1), faults=F|F|… (optional)";

/// The faults chaos mode may pick, as the errors list them. The MCP
/// faults, and of the process faults those bulkhead can apply to a
/// running server at a request: `kill` and `crash` (signals).
pub const CHAOS_FAULTS: &str = "error, drop, timeout, malformed, disconnect, kill, crash";

/// The faults picked when `faults=` is not given: every MCP fault and a
/// server kill, so a client meets errors, silence, broken answers, closed
/// sessions and restarts.
const DEFAULT_FAULTS: [Fault; 6] = [
    Fault::Error(DEFAULT_ERROR_CODE),
    Fault::Drop,
    Fault::Timeout,
    Fault::Malformed,
    Fault::Disconnect,
    Fault::Kill,
];

/// A parsed `--chaos`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosSpec {
    pub seed: u64,
    pub rate: f64,
    pub faults: Vec<Fault>,
}

/// A `--chaos` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--chaos: {problem}; write seed=S,rate=R[,faults=F|F|…] with keys {CHAOS_KEYS}; the faults are: {CHAOS_FAULTS}"
)]
pub struct ChaosError {
    pub problem: String,
}

fn bad(problem: impl Into<String>) -> ChaosError {
    ChaosError {
        problem: problem.into(),
    }
}

impl FromStr for ChaosSpec {
    type Err = ChaosError;

    fn from_str(text: &str) -> Result<Self, ChaosError> {
        let (mut seed, mut rate, mut faults) = (None, None, None);
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(format!("\"{part}\" is not KEY=VALUE")));
            };
            match key.trim() {
                "seed" => {
                    let s = value.trim().parse::<u64>().map_err(|_| {
                        bad(format!("seed \"{value}\" is not a whole number from 0"))
                    })?;
                    seed = Some(s);
                }
                "rate" => match value.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => rate = Some(r),
                    _ => {
                        return Err(bad(format!(
                            "rate \"{value}\" is not a probability from 0 to 1"
                        )));
                    }
                },
                "faults" => {
                    let mut list = Vec::new();
                    for name in value.split('|').map(str::trim) {
                        list.push(chaos_fault(name)?);
                    }
                    faults = Some(list);
                }
                other => return Err(bad(format!("unknown key \"{other}\""))),
            }
        }
        let seed = seed.ok_or_else(|| bad("seed is missing"))?;
        let rate = rate.ok_or_else(|| bad("rate is missing"))?;
        Ok(ChaosSpec {
            seed,
            rate,
            faults: faults.unwrap_or_else(|| DEFAULT_FAULTS.to_vec()),
        })
    }
}

fn chaos_fault(name: &str) -> Result<Fault, ChaosError> {
    let unknown = || bad(format!("fault \"{name}\" cannot be picked"));
    let spec: bulkhead_faults::FaultSpec = name.parse().map_err(|_| unknown())?;
    if spec.trigger != bulkhead_faults::Trigger::Start {
        return Err(bad(format!(
            "fault \"{name}\" has a trigger; chaos mode picks the requests itself"
        )));
    }
    match spec.fault {
        Fault::Error(_)
        | Fault::Drop
        | Fault::Timeout
        | Fault::Malformed
        | Fault::Disconnect
        | Fault::Kill
        | Fault::Crash => Ok(spec.fault),
        _ => Err(unknown()),
    }
}

impl fmt::Display for ChaosSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        write!(
            f,
            "seed={},rate={},faults={}",
            self.seed,
            self.rate,
            faults.join("|")
        )
    }
}

/// The chaos of one gateway: draws for each request, in order.
#[derive(Debug)]
pub struct Chaos {
    spec: ChaosSpec,
    rng: SeededRng,
    requests: u64,
}

impl Chaos {
    pub fn new(spec: ChaosSpec) -> Self {
        Self {
            rng: SeededRng::new(spec.seed),
            spec,
            requests: 0,
        }
    }

    /// The fault for the next request, if one is picked: two draws per
    /// request whatever the outcome of the first, so that the sequence
    /// depends only on the number of requests.
    pub fn pick(&mut self) -> Option<Fault> {
        self.requests += 1;
        let hit = self.rng.chance(self.spec.rate);
        let which = self.rng.next_u64();
        if !hit || self.spec.faults.is_empty() {
            return None;
        }
        let i = usize::try_from(which % self.spec.faults.len() as u64).unwrap_or(0);
        self.spec.faults.get(i).cloned()
    }

    /// The request number of the last pick, from 1.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn spec(&self) -> &ChaosSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_part() {
        let c: ChaosSpec = "seed=7,rate=0.1,faults=error|kill".parse().unwrap();
        assert_eq!(
            (c.seed, c.rate, c.faults.clone()),
            (7, 0.1, vec![Fault::Error(DEFAULT_ERROR_CODE), Fault::Kill])
        );
        let d: ChaosSpec = "rate=1, seed=1".parse().unwrap();
        assert_eq!(d.faults.len(), DEFAULT_FAULTS.len());
        for (text, part) in [
            ("seed=1", "rate is missing"),
            ("rate=0.1", "seed is missing"),
            ("seed=x,rate=0.1", "seed \"x\""),
            ("seed=1,rate=2", "rate \"2\""),
            ("seed=1,rate=0.1,faults=oom", "fault \"oom\""),
            ("seed=1,rate=0.1,faults=error@msg:2", "has a trigger"),
            ("seed=1,rate=0.1,speed=3", "unknown key \"speed\""),
            ("seed", "\"seed\" is not KEY=VALUE"),
        ] {
            let e = text.parse::<ChaosSpec>().unwrap_err().to_string();
            assert!(e.contains(part), "{text}: {e}");
            assert!(
                e.contains("seed=S") && e.contains("error, drop, timeout"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_same_seed_picks_the_same_faults_at_about_the_rate() {
        let run = |seed| {
            let mut c = Chaos::new(ChaosSpec {
                seed,
                rate: 0.2,
                faults: DEFAULT_FAULTS.to_vec(),
            });
            (0..5000).map(|_| c.pick()).collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let hits = a.iter().flatten().count();
        assert!((800..1200).contains(&hits), "{hits} of 5000 at 0.2");
        for f in &DEFAULT_FAULTS {
            assert!(a.iter().flatten().any(|g| g == f), "{f} never picked");
        }
    }
}
