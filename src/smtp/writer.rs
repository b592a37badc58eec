//! The spool writer: the one task that writes accepted messages to SQLite,
//! with group commit.
//!
//! Sessions hand it a `Submission` and wait. The writer, on its own thread
//! with its own connection (`synchronous=FULL`), takes every submission
//! waiting in the channel, writes them all with `store::spool::insert_inbound`
//! inside one IMMEDIATE transaction, commits (one fsync for the whole
//! batch), and only then answers each session, which then sends its 250.
//! So concurrent sessions share fsyncs, and a `kill -9` after a 250 loses
//! nothing. After each commit it wakes the pipeline.
//!
//! The writer waits for the write lock by polling every 200 µs
//! ([`store::poll_when_busy`]) rather than with SQLite's growing sleeps, so
//! a pipeline or delivery transaction delays intake by its own length only.
//!
//! If a batch fails, each of its messages is retried alone, so one bad
//! message cannot fail the others; a failure is answered as an error
//! (the session replies 451) and never as success.
//!
//! While the pipeline worker is down ([`Health::intake_refusal`]), nothing
//! is committed: every submission is answered as an error (451), so listd
//! never says 250 for mail that nothing would handle.

use super::session::Submission;
use crate::health::Health;
use crate::plumbing::Wakers;
use crate::store::{self, IntakeFlow, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 512;

struct Job {
    sub: Submission,
    done: oneshot::Sender<Result<i64, String>>,
}

enum Msg {
    Job(Job),
    Stop,
}

/// The sessions' side: submit a message and wait for its commit.
#[derive(Clone)]
pub struct SpoolWriter {
    tx: mpsc::Sender<Msg>,
    health: Arc<Health>,
}

/// The daemon's side: stops the writer after what was queued is committed.
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    thread: std::thread::JoinHandle<()>,
}

/// Opens the store at `db` and starts the writer thread.
pub fn spawn(
    db: &Path,
    wakers: Wakers,
    health: Arc<Health>,
) -> Result<(SpoolWriter, WriterHandle), StoreError> {
    let mut conn = store::open(db)?;
    store::poll_when_busy(&mut conn)?;
    let (tx, rx) = mpsc::channel(4096);
    let thread = std::thread::Builder::new()
        .name("listd-spool".into())
        .spawn(move || run(conn, rx, wakers))
        .map_err(|e| StoreError::Invalid(format!("cannot start the spool writer: {e}")))?;
    Ok((
        SpoolWriter {
            tx: tx.clone(),
            health,
        },
        WriterHandle { tx, thread },
    ))
}

impl SpoolWriter {
    /// Commits a message; returns its `messages` id once it is durable.
    pub async fn submit(&self, sub: Submission) -> Result<i64, String> {
        if let Some(why) = self.health.intake_refusal() {
            return Err(why);
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Job { sub, done }))
            .await
            .map_err(|_| "the spool writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the spool writer stopped before committing".to_string())?
    }
}

impl WriterHandle {
    /// Commits everything submitted before this call, then stops the thread.
    /// Later submissions fail (their sessions answer 451).
    pub async fn stop(self) {
        let _ = self.tx.send(Msg::Stop).await;
        drop(self.tx);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Msg>, wakers: Wakers) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let stop = gather(first, &mut rx, &mut batch);
        if !batch.is_empty() {
            let n = batch.len();
            if commit(&mut conn, &wakers.intake, &mut batch) {
                wakers.intake.queued(n);
            }
            wakers.pipeline.notify_one();
        }
        if stop {
            break;
        }
    }
    tracing::debug!("spool writer stopped");
}

/// Group commit: `first` and every submission already waiting (up to
/// [`MAX_BATCH`]) go into `batch`, to share one transaction and one fsync.
/// Returns whether a `Stop` was met.
fn gather(first: Msg, rx: &mut mpsc::Receiver<Msg>, batch: &mut Vec<Job>) -> bool {
    let mut stop = false;
    match first {
        Msg::Job(j) => batch.push(j),
        Msg::Stop => stop = true,
    }
    while !stop && batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(Msg::Job(j)) => batch.push(j),
            Ok(Msg::Stop) => stop = true,
            Err(_) => break,
        }
    }
    stop
}

/// Commits `batch` and answers each submission; whether any committed.
fn commit(conn: &mut Connection, flow: &IntakeFlow, batch: &mut Vec<Job>) -> bool {
    match write(conn, flow, batch) {
        Ok(ids) => {
            for (job, id) in batch.drain(..).zip(ids) {
                answer(job, Ok(id));
            }
            true
        }
        Err(e) if batch.len() > 1 => {
            tracing::warn!(error = %e, n = batch.len(), "spool batch failed; retrying one by one");
            for job in batch.drain(..) {
                let one = std::slice::from_ref(&job);
                let r = write(conn, flow, one)
                    .map(|ids| ids[0])
                    .map_err(|e| e.to_string());
                answer(job, r);
            }
            true
        }
        Err(e) => {
            for job in batch.drain(..) {
                answer(job, Err(e.to_string()));
            }
            false
        }
    }
}

fn answer(job: Job, result: Result<i64, String>) {
    let s = &job.sub;
    match &result {
        Ok(id) => tracing::info!(
            queue_id = %s.queue_id,
            message_id = id,
            from = %s.envelope.mail_from,
            rcpts = s.envelope.rcpts.len(),
            size = s.bytes.len(),
            client = s.envelope.client_ip.as_deref().unwrap_or("local"),
            "queued"
        ),
        Err(e) => tracing::error!(queue_id = %s.queue_id, error = %e, "spool write failed"),
    }
    // The session may have gone away (connection closed); the message is
    // committed either way.
    let _ = job.done.send(result);
}

fn write(conn: &mut Connection, flow: &IntakeFlow, jobs: &[Job]) -> Result<Vec<i64>, StoreError> {
    let waiting = flow.wait();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    drop(waiting);
    let mut ids = Vec::with_capacity(jobs.len());
    for j in jobs {
        let id =
            store::spool::insert_inbound(&tx, &j.sub.envelope, &j.sub.bytes, j.sub.received_at)?;
        if let Some(a) = &j.sub.auth {
            store::spool::record_auth(&tx, id, a)?;
        }
        ids.push(id);
    }
    tx.commit()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Route;
    use crate::store::spool::Envelope;

    fn sub(from: &str) -> Submission {
        Submission {
            queue_id: format!("Q-{from}"),
            envelope: Envelope {
                mail_from: from.into(),
                rcpts: vec![(
                    "dev@lists.example.org".into(),
                    Route::Post { list: "dev".into() }.into(),
                )],
                client_ip: Some("192.0.2.1".into()),
                helo: "client".into(),
                protocol: "ESMTP".into(),
            },
            bytes: b"Subject: x\r\n\r\nhi\r\n".to_vec(),
            received_at: 1,
            auth: None,
        }
    }

    fn job(from: &str) -> (Job, oneshot::Receiver<Result<i64, String>>) {
        let (done, rx) = oneshot::channel();
        (
            Job {
                sub: sub(from),
                done,
            },
            rx,
        )
    }

    #[test]
    fn a_failing_message_fails_alone_and_the_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store::open(&dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.env_from = 'bad@x.org'
             BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
        )
        .unwrap();
        let (a, mut ra) = job("a@x.org");
        let (b, mut rb) = job("bad@x.org");
        let (c, mut rc) = job("c@x.org");
        let mut batch = vec![a, b, c];
        commit(&mut conn, &IntakeFlow::default(), &mut batch);
        assert!(batch.is_empty());
        let ida = ra.try_recv().unwrap().unwrap();
        let err = rb.try_recv().unwrap().unwrap_err();
        assert!(err.contains("refused by test trigger"), "{err}");
        let idc = rc.try_recv().unwrap().unwrap();
        assert_ne!(ida, idc);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM incoming", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn waiting_submissions_share_one_batch_up_to_max_batch() {
        let (tx, mut rx) = mpsc::channel(MAX_BATCH + 8);
        let mut receivers = Vec::new();
        for i in 0..MAX_BATCH + 3 {
            let (j, r) = job(&format!("s{i}@x.org"));
            receivers.push(r);
            tx.try_send(Msg::Job(j)).unwrap();
        }
        tx.try_send(Msg::Stop).unwrap();
        let mut batch = Vec::new();
        let first = rx.try_recv().unwrap();
        assert!(!gather(first, &mut rx, &mut batch));
        assert_eq!(batch.len(), MAX_BATCH, "one full batch");
        batch.clear();
        let first = rx.try_recv().unwrap();
        assert!(gather(first, &mut rx, &mut batch), "the stop is seen");
        assert_eq!(batch.len(), 3, "the rest, then the stop");
    }

    #[tokio::test]
    async fn writer_commits_then_stops_and_later_submissions_fail() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let wakers = Wakers::default();
        let (writer, handle) = spawn(&db, wakers.clone(), Arc::default()).unwrap();
        let notified = wakers.pipeline.notified();
        let id = writer.submit(sub("a@x.org")).await.unwrap();
        notified.await; // the pipeline is woken after the commit
        let conn = store::open(&db).unwrap();
        let stored = store::spool::load(&conn, id).unwrap().unwrap();
        assert_eq!(stored.env_from, "a@x.org");
        handle.stop().await;
        let err = writer.submit(sub("b@x.org")).await.unwrap_err();
        assert!(err.contains("stopped"), "{err}");
    }
}
