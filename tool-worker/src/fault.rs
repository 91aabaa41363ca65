//! Faults the host injects (`--inject`, [`HostMessage::Fault`]), carried
//! out by the worker so that the host meets a real failure: real memory
//! past the cap, real CPU, a real abort, a real broken frame on the wire.
//! Only the host can ask for one; nothing a tool does reaches this code.
//!
//! [`HostMessage::Fault`]: bulkhead_ipc::HostMessage::Fault

use std::os::fd::RawFd;
use std::time::Duration;

use bulkhead_ipc::WorkerFault;

/// Memory taken per step of `oom`: small enough that the watchdog's 50 ms
/// samples see the cap crossed well before `RLIMIT_DATA` (twice the cap,
/// at least 4 GiB) refuses an allocation, large enough to cross a 1 GiB
/// cap in a fraction of a second.
const OOM_STEP_BYTES: usize = 8 << 20;

/// A page: touching one byte of each makes the whole step resident.
const PAGE_BYTES: usize = 4096;

/// Carries out `fault`. Called on the reader thread; the faults that keep
/// running (`oom`, `cpu`) get a thread of their own, so the reader still
/// takes the host's cancel.
pub fn obey(fault: WorkerFault, to_host: RawFd) {
    match fault {
        // SAFETY: raise is async-signal-safe; SIGKILL ends the process.
        WorkerFault::Kill => unsafe {
            libc::raise(libc::SIGKILL);
        },
        // SAFETY: as above; SIGSTOP stops every thread until a SIGCONT.
        WorkerFault::Stop => unsafe {
            libc::raise(libc::SIGSTOP);
        },
        // SAFETY: abort is async-signal-safe and ends the process.
        WorkerFault::Crash => unsafe { libc::abort() },
        WorkerFault::Exit(code) => crate::teardown_and_exit(code),
        WorkerFault::Oom => spawn(allocate_until_killed),
        WorkerFault::Cpu => spawn(spin_until_killed),
        // A body of 0xc1, the one byte MessagePack never uses.
        WorkerFault::Garbage => raw_write(
            to_host,
            &[8, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1],
        ),
        // A header announcing 4 GiB - 1: over any frame cap.
        WorkerFault::Oversize => raw_write(to_host, &[0xff, 0xff, 0xff, 0xff]),
        WorkerFault::Truncate => {
            // A header announcing 64 bytes, four of them, then the end.
            raw_write(to_host, &[64, 0, 0, 0, 0x81, 0xa5, b'C', b'h']);
            crate::teardown_and_exit(0);
        }
    }
}

/// Carries out the faults due at the call's start ([`Invoke::start_faults`]),
/// on the main thread, once confined and before the tool runs. `oom` and
/// `cpu` then take this thread for good: the tool never runs, and the cap
/// or the CPU limit ends the call, as it would a tool that did the same.
///
/// [`Invoke::start_faults`]: bulkhead_ipc::Invoke::start_faults
pub fn at_start(faults: &[WorkerFault], to_host: RawFd) {
    for &fault in faults {
        match fault {
            WorkerFault::Oom => allocate_until_killed(),
            WorkerFault::Cpu => spin_until_killed(),
            other => obey(other, to_host),
        }
    }
}

fn spawn(work: fn()) {
    if std::thread::Builder::new()
        .name("injected-fault".into())
        .spawn(work)
        .is_err()
    {
        work();
    }
}

fn allocate_until_killed() {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut step = Vec::new();
        if step.try_reserve_exact(OOM_STEP_BYTES).is_err() || held.try_reserve(1).is_err() {
            // Refused (RLIMIT_DATA): hold what is resident and let the cap's
            // sampler see it.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        step.resize(OOM_STEP_BYTES, 0);
        for page in step.chunks_mut(PAGE_BYTES) {
            page[0] = 1;
        }
        held.push(std::hint::black_box(step));
    }
}

fn spin_until_killed() {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Writes bytes straight to the channel, outside the frame writer: the
/// point is a stream the host must refuse. Another frame may be in flight
/// from the main thread; cut into it or not, the host sees a broken stream.
fn raw_write(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `fd` is the worker's channel, open for the process's life;
        // the buffer is valid for its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
