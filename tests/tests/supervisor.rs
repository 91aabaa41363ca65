//! The supervisor as users and embedders meet it, through the real
//! `bulkhead` and `bulkhead-worker` binaries and through `ToolHost`: caps,
//! kills and the one outcome of every call, cleanup, worker discovery,
//! sandbox policies, and what the `bulkhead` binary links.
//!
//! One test binary for the area, one module per former binary: the tests
//! run as threads of one process. `crash_mid_stream` kills the workers
//! among this process's children, so it runs in a process of its own
//! (`bulkhead_tests::alone`); the other tests find their processes by a
//! marker unique to each test, or as children of the `bulkhead` they
//! started.
//!
//! The modules are in `supervisor/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "supervisor/bad_worker.rs"]
mod bad_worker;
#[path = "supervisor/cancel_and_queue.rs"]
mod cancel_and_queue;
#[path = "supervisor/cleanup_after_run.rs"]
mod cleanup_after_run;
#[path = "supervisor/crash_mid_stream.rs"]
mod crash_mid_stream;
#[path = "supervisor/environment.rs"]
mod environment;
#[path = "supervisor/flood.rs"]
mod flood;
#[path = "supervisor/fork_bomb.rs"]
mod fork_bomb;
#[path = "supervisor/fuzz_corpus.rs"]
mod fuzz_corpus;
#[path = "supervisor/host_death.rs"]
mod host_death;
#[path = "supervisor/inject.rs"]
mod inject;
#[path = "supervisor/memory_bomb.rs"]
mod memory_bomb;
#[path = "supervisor/module_cycles.rs"]
mod module_cycles;
#[path = "supervisor/no_tool_code_linked.rs"]
mod no_tool_code_linked;
#[path = "supervisor/runaway_search.rs"]
mod runaway_search;
#[path = "supervisor/sandbox_policy.rs"]
mod sandbox_policy;
#[path = "supervisor/timeout.rs"]
mod timeout;
#[path = "supervisor/tree_kill.rs"]
mod tree_kill;
#[path = "supervisor/worker_discovery.rs"]
mod worker_discovery;
