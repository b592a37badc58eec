//! Fault injection for the crash and isolation tests, in debug builds only.
//!
//! With `LISTD_FAULTS=1` in the environment of a debug build, a message
//! whose bytes carry `X-Listd-Fault: panic` makes its pipeline handler
//! panic, and `X-Listd-Fault: abort` aborts the whole process, as a bug
//! would. Release builds compile this to nothing, and without the variable
//! it does nothing: no input alone can trigger it.

/// Panics or aborts here when the fault is armed and `bytes` ask for it.
#[cfg(debug_assertions)]
pub fn point(bytes: &[u8]) {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ARMED.get_or_init(|| std::env::var_os("LISTD_FAULTS").is_some_and(|v| v == "1")) {
        return;
    }
    if memchr::memmem::find(bytes, b"\nX-Listd-Fault: panic").is_some() {
        panic!("injected fault (X-Listd-Fault: panic)");
    }
    if memchr::memmem::find(bytes, b"\nX-Listd-Fault: abort").is_some() {
        eprintln!("injected fault: aborting (X-Listd-Fault: abort)");
        std::process::abort();
    }
}

/// Release builds: never a fault.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_bytes: &[u8]) {}
