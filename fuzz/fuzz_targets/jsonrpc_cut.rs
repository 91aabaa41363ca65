//! The `jsonrpc_cut` target: the check `fuzz_checks::jsonrpc::cut` (tests/src/fuzz_checks/)
//! on every input, with allocations counted.

#![no_main]

use bulkhead_fuzz::checks;

#[global_allocator]
static ALLOC: checks::alloc::Counting = checks::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::jsonrpc::cut(data));
