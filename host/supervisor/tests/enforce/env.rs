//! `BULKHEAD_MEMORY_MECHANISM` forces a mechanism when `detect` is given
//! none. The test changes the environment, so it runs in a process of its
//! own (`common::alone`).

use bulkhead_host::enforce::{EnforceError, Enforcer, MECHANISM_ENV, MemoryMechanism};

#[test]
fn env_var_forces_the_mechanism() {
    crate::common::alone(
        concat!(module_path!(), "::env_var_forces_the_mechanism"),
        env_var_forces,
    );
}

fn env_var_forces() {
    // SAFETY: `alone` runs this in a process where it is the only test; no
    // other thread reads the environment concurrently.
    unsafe { std::env::set_var(MECHANISM_ENV, "watchdog") };
    let e = Enforcer::detect(None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::Watchdog);

    // An explicit choice wins over the environment.
    let e = Enforcer::detect(Some(MemoryMechanism::Watchdog)).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::Watchdog);

    // SAFETY: as above.
    unsafe { std::env::set_var(MECHANISM_ENV, "cgroup-v3") };
    let err = Enforcer::detect(None).expect_err("bad value");
    assert!(matches!(err, EnforceError::BadEnv(_)));
    assert!(
        err.to_string()
            .contains("BULKHEAD_MEMORY_MECHANISM=\"cgroup-v3\""),
        "{err}"
    );

    // SAFETY: as above.
    unsafe { std::env::remove_var(MECHANISM_ENV) };
    assert!(Enforcer::detect(None).is_ok());
}
