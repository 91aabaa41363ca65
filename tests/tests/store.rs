//! The session store under stress: bad files and ids, concurrent writers,
//! writers SIGKILLed mid-write, a full disk, and the memory of reads on a
//! large store.
//!
//! One test binary for the area, one module per former binary. `scale`
//! measures its commands' peak RSS with `wait4`, a figure that includes the
//! test process's own peak, so it runs in a process of its own
//! (`bulkhead_tests::alone`).
//!
//! The modules are in `store/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "store/bad_inputs.rs"]
mod bad_inputs;
#[path = "store/concurrent.rs"]
mod concurrent;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/full_disk.rs"]
mod full_disk;
#[path = "store/scale.rs"]
mod scale;
