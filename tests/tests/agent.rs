//! The model clients against a local server speaking both providers' wire
//! formats (`model_*`), and the agent loop, `bulkhead chat`, end to end.
//!
//! One test binary for the area, one module per former binary.
//! `model_memory` measures this process's peak RSS, so it runs in a process
//! of its own (`bulkhead_tests::alone`); the others use a model server and
//! a scratch directory of their own, and find their tool processes by a
//! marker unique to the test.
//!
//! The modules are in `agent/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "agent/config.rs"]
mod config;
#[path = "agent/interrupt.rs"]
mod interrupt;
#[path = "agent/max_turns.rs"]
mod max_turns;
#[path = "agent/mcp.rs"]
mod mcp;
#[path = "agent/model_errors.rs"]
mod model_errors;
#[path = "agent/model_memory.rs"]
mod model_memory;
#[path = "agent/model_retry.rs"]
mod model_retry;
#[path = "agent/model_stream_faults.rs"]
mod model_stream_faults;
#[path = "agent/model_stream_text.rs"]
mod model_stream_text;
#[path = "agent/model_tool_calls.rs"]
mod model_tool_calls;
#[path = "agent/parallel.rs"]
mod parallel;
#[path = "agent/read_result.rs"]
mod read_result;
#[path = "agent/report.rs"]
mod report;
