//! Drops every capability, for good.
//!
//! A worker in its own user namespace holds all capabilities *of that
//! namespace*; a worker started by root without one holds root's. Neither is
//! needed once the namespaces are built, so the bounding set is emptied
//! (no later `execve` can gain a capability back, not even a root-owned
//! setuid binary, which no_new_privs already neuters), ambient capabilities
//! are cleared, and the process's own sets are zeroed.
//!
//! # Caveats
//! A worker started by root loses `CAP_DAC_OVERRIDE` too: under a sandboxed
//! policy, root's tools read only what the file modes allow root's uid
//! without privilege (files of other users stay closed).

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

pub fn drop_all() -> Result<String, String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        // 40 is CAP_CHECKPOINT_RESTORE, the last one as of Linux 6.x; a
        // cap number the kernel does not know only makes prctl fail.
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and nothing else.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // EINVAL: a number past what this kernel knows; the set is done.
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(format!("PR_CAPBSET_DROP({cap}): {e}"));
        }
    }
    // SAFETY: clears the ambient set; takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads a v3 header and two data words, as laid out above.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(format!("all dropped; bounding set emptied (0..={last})"))
}
