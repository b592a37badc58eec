//! Fault injection for the crash and isolation tests, in debug builds only.
//!
//! With `LISTD_FAULTS=1` in the environment of a debug build, a message
//! whose bytes carry `X-Listd-Fault: SITE-panic` panics at that site
//! (`pipeline`: its handler; `delivery`: while it is sent), and
//! `X-Listd-Fault: SITE-abort` aborts the whole process there, as a bug
//! would. Release builds compile this to nothing, and without the variable
//! it does nothing: no input alone can trigger it.

/// Panics or aborts at `site` when the fault is armed and `bytes` ask for it.
#[cfg(debug_assertions)]
pub fn point(site: &str, bytes: &[u8]) {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ARMED.get_or_init(|| std::env::var_os("LISTD_FAULTS").is_some_and(|v| v == "1")) {
        return;
    }
    let asks = |what: &str| {
        let marker = format!("\nX-Listd-Fault: {site}-{what}\r");
        memchr::memmem::find(bytes, marker.as_bytes()).is_some()
    };
    if asks("panic") {
        panic!("injected fault (X-Listd-Fault: {site}-panic)");
    }
    if asks("abort") {
        eprintln!("injected fault: aborting (X-Listd-Fault: {site}-abort)");
        std::process::abort();
    }
}

/// Release builds: never a fault.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_site: &str, _bytes: &[u8]) {}
