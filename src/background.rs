//! A thread of its own, at a lower CPU priority, for queue work that may
//! wait (the pipeline's batches, delivery's store work): when the cores are
//! busy, the kernel gives SMTP intake, whose senders wait for their 250,
//! the larger share, and the queue catches up as soon as intake pauses. A
//! burst is accepted at intake's speed; a sustained overload is held back
//! by intake's in-flow delay (`smtp::inflow`), as Postfix's
//! `in_flow_delay` does.
//!
//! A leaf: it runs the closures it is given, one at a time, and trusts
//! them; a panic in one is returned as an error and the thread goes on.

use std::sync::mpsc;

/// How much lower than the daemon's other threads the queue work runs
/// (`nice` +10: about a tenth of a core's share against intake).
pub const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The thread; it stops when this is dropped.
pub struct BackgroundThread {
    jobs: mpsc::Sender<Job>,
}

impl BackgroundThread {
    /// Starts the thread `name` at [`NICENESS`] (where the system allows;
    /// else at the normal priority, which is logged).
    pub fn start(name: &str) -> std::io::Result<BackgroundThread> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(BackgroundThread { jobs })
    }

    /// Runs `f` on the thread and waits for it; a panic in `f` is the error.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|p| crate::health::panic_message(p.as_ref()));
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| "the background thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the background thread has stopped".to_string())?
    }
}

/// Lowers the calling thread's CPU priority by [`NICENESS`].
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    let r = unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            libc::getpriority(libc::PRIO_PROCESS, 0) + NICENESS,
        )
    };
    if r != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "queue work runs at the normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_closures_in_order_at_a_lower_priority_and_survives_a_panic() {
        let t = BackgroundThread::start("test-bg").unwrap();
        let nice = t
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) })
            .await
            .unwrap();
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, (ours + NICENESS).min(19));
        let e = t.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert_eq!(t.run(|| 7).await.unwrap(), 7, "the thread goes on");
    }
}
