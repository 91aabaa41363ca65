//! Allocates and touches memory in 16 MiB steps until it has N MiB, then
//! sleeps. The shape of a real runaway: growth, not one huge malloc.
//! Usage: memhog MIB [SLEEP_SECS]

use std::time::Duration;

/// Step size: small enough that a watchdog sampling every 20 ms sees the
/// growth, large enough that 2 GiB takes only 128 steps.
const STEP: usize = 16 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2048);
    let sleep: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
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
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("allocated {} MiB", total >> 20);
    std::thread::sleep(Duration::from_secs(sleep));
}
