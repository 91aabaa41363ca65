//! Allocates and touches memory in 16 MiB steps until it has N MiB, then
//! sleeps. The shape of a real runaway: growth, not one huge malloc.
//! Usage: `memhog MIB [SLEEP_SECS] [--trace]`
//!
//! `--trace` prints `<CLOCK_MONOTONIC ns> <MiB allocated>` after each step,
//! flushed at once, so a benchmark can tell when the total crossed a cap
//! (CLOCK_MONOTONIC is shared by all processes of the machine).

use std::io::Write;
use std::time::Duration;

/// Step size: small enough that a watchdog sampling every 20 ms sees the
/// growth, large enough that 2 GiB takes only 128 steps.
const STEP: usize = 16 << 20;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2048);
    let sleep: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let trace = args.next().as_deref() == Some("--trace");
    let mut stdout = std::io::stdout();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    while total < mib << 20 {
        let mut block = vec![0u8; STEP];
        // Touch every page so it is resident, not just reserved.
        for i in (0..STEP).step_by(4096) {
            block[i] = 1;
        }
        blocks.push(block);
        total += STEP;
        if trace {
            // A closed stdout only loses the trace; the growth goes on.
            let _ = writeln!(stdout, "{} {}", monotonic_ns(), total >> 20);
            let _ = stdout.flush();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("allocated {} MiB", total >> 20);
    std::thread::sleep(Duration::from_secs(sleep));
}
