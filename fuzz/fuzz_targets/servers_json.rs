//! The `servers_json` target: the check `fuzz_checks::config::servers_json` (tests/src/fuzz_checks/)
//! on every input, with allocations counted.

#![no_main]

use bulkhead_fuzz::checks;

#[global_allocator]
static ALLOC: checks::alloc::Counting = checks::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config::servers_json(data));
