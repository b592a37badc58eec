//! Delivery: drains the persistent outbound queue to the relay MTA.
//!
//! - expansion is `crate::membership` (shared with EXPN): it streams a
//!   list's deliverable members, nested lists expanded, deduped, cycles
//!   skipped.
//! - `queue`: the outbound tables and their states (active, deferred,
//!   sending, sent/done, failed), a file per verb: `enqueue_post`,
//!   batching, claiming, recording verdicts (backoff, give-up), and the
//!   `listd queue` summary.
//! - `client`: one relay connection driven with lettre's connection-level
//!   API, one verdict per recipient.
//! - `hello`: EHLO, or HELO for a relay that refuses EHLO.
//! - `retention`: deletes finished queue rows and unreferenced bodies after
//!   `delivery.retain_days`.
//! - `dsn`: the one report (RFC 3464) a job that gave up on recipients
//!   sends, and the multipart/report format rejection notices share.
//! - `personalize`: each member's own copy of a `personalize: true` list's
//!   post (their one-click unsubscribe link), made as it is sent.
//!
//! This file is the worker: a pass claims due work (marking it `sending`),
//! sends it over at most `relay.connections` reused connections, and records
//! the verdicts, committing "record finished + claim more" as one
//! transaction so the connections never wait on the database for long. A
//! relay that cannot be reached leaves everything queued (no attempt is
//! counted) and the worker retries the relay with its own short backoff.
//! A relay without 8BITMIME gets the 7-bit form of an 8-bit message
//! (`crate::mime::seven_bit`), made before the DKIM signature.
//!
//! Trusts the queue rows; the relay's replies are judged by `client`.

pub mod client;
pub mod dsn;
pub mod hello;
pub mod mx;
pub mod personalize;
pub mod queue;
pub mod retention;

pub use queue::{enqueue_post, enqueue_post_message, Done, RecordStats, Work};

use crate::background::BackgroundThread;
use crate::config::{Config, RelayMode};
use crate::dkim::Signer;
use crate::plumbing::Wakers;
use crate::store::{self, StoreError};
use client::{RcptResult, Relay, RelayConn};
use mx::MxPass;
use personalize::Personalizer;
use queue::{JobCache, JobInfo};
use rusqlite::Connection;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Units of work kept in flight per relay connection (so a connection has
/// its next batch ready while the database records the last). Each record
/// and claim is one transaction, so this also sets how many units share
/// one: at 4, delivery of one-member-list posts fell to half the intake
/// rate under steady load (benches/sustained), at 16 it keeps pace.
const INFLIGHT_PER_CONN: usize = 16;

/// Longest the worker waits between relay reconnection tries.
const RELAY_DOWN_MAX: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Default, Clone)]
pub struct PassStats {
    pub record: RecordStats,
    /// Units of work (SMTP transactions' worth) handled.
    pub units: u64,
    /// Why the relay could not be reached, if it could not.
    pub relay_down: Option<String>,
}

struct Db {
    conn: Connection,
    cache: JobCache,
}

/// The delivery engine: the worker's database connection and relay settings.
#[derive(Clone)]
pub struct Engine {
    config: Arc<Config>,
    db: Arc<Mutex<Db>>,
    relay: Relay,
    signer: Arc<Signer>,
    /// `relay.mode: mx`: the resolver that finds each domain's exchangers.
    mx: Option<Arc<crate::dns::Resolver>>,
    /// Where the store work runs: below intake's priority (`background`).
    thread: Arc<BackgroundThread>,
}

/// Opens the delivery worker's connection. `synchronous=NORMAL` here: in WAL
/// mode that survives a process crash (kill -9), and what a power loss could
/// undo is only bookkeeping whose loss means a batch is sent again (claims,
/// verdicts) or re-expanded from its saved cursor, never a lost recipient.
///
/// It polls for the write lock ([`store::poll_when_busy`]) so that steady
/// intake cannot starve it.
pub fn open_db(config: &Config) -> Result<Connection, StoreError> {
    let mut conn = store::open(&config.db_path())?;
    store::poll_when_busy(&mut conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl Engine {
    pub fn new(config: Arc<Config>) -> Result<Engine, StoreError> {
        let conn = open_db(&config)?;
        let relay = Relay::from_config(&config);
        let signer = Arc::new(config.dkim_signer().map_err(StoreError::Invalid)?);
        let mx = match config.relay.mode {
            RelayMode::Relay => None,
            RelayMode::Mx => Some(Arc::new(
                crate::dns::Resolver::new(&config.dns.settings())
                    .map_err(|e| StoreError::Invalid(format!("relay.mode mx: {e}")))?,
            )),
        };
        Ok(Engine {
            config,
            db: Arc::new(Mutex::new(Db {
                conn,
                cache: JobCache::default(),
            })),
            relay,
            signer,
            mx,
            thread: Arc::new(BackgroundThread::start("listd-delivery").map_err(|e| {
                StoreError::Invalid(format!("cannot start the delivery thread: {e}"))
            })?),
        })
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db, &Config) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        let config = self.config.clone();
        self.thread
            .run(move || {
                // a panic in an earlier call rolled its transaction back as
                // it unwound: the connection is fine to use again
                let mut g = db.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut g, &config)
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("delivery database task: {e}")))?
    }

    /// Puts rows left `sending` back in line (call at start-up).
    pub async fn recover(&self, now: i64) -> Result<usize, StoreError> {
        self.with_db(move |db, _| queue::recover(&db.conn, now))
            .await
    }

    /// The retention clean-up (`delivery.retain_days`) at `now`.
    pub async fn purge(&self, now: i64) -> Result<retention::Purged, StoreError> {
        self.with_db(move |db, config| {
            let p = retention::purge(&mut db.conn, config, now)?;
            if p.jobs > 0 {
                db.cache = JobCache::default();
            }
            Ok(p)
        })
        .await
    }

    /// When something next falls due (None: the queue is empty).
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.with_db(|db, _| queue::next_due(&db.conn)).await
    }

    async fn sync(
        &self,
        done: Vec<Done>,
        want: usize,
        now: i64,
    ) -> Result<(RecordStats, Vec<Work>), StoreError> {
        self.with_db(move |db, config| {
            let Db { conn, cache } = db;
            queue::sync(conn, config, cache, done, want, now)
        })
        .await
    }

    /// Delivers everything due at `now` (expanding pending fan-outs as it
    /// goes), then returns. `stop` is polled between claims.
    pub async fn pass(&self, now: i64, stop: impl Fn() -> bool) -> Result<PassStats, StoreError> {
        let connections = self.config.relay.connections.max(1);
        let capacity = connections * INFLIGHT_PER_CONN;
        let sem = Arc::new(Semaphore::new(connections));
        let pool: Arc<Mutex<Vec<RelayConn>>> = Arc::new(Mutex::new(Vec::new()));
        let direct: Option<Arc<MxPass>> = self.mx.as_ref().map(|r| {
            Arc::new(MxPass::new(
                r.clone(),
                self.relay.clone(),
                self.config.relay.mx_connections_per_domain,
            ))
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<(Done, Option<String>)>();
        let mut stats = PassStats::default();
        let mut inflight = 0usize;
        let mut finished: Vec<Done> = Vec::new();
        let mut exhausted = false;
        let personal = match Personalizer::for_config(&self.config, now) {
            None => None,
            Some(Ok(p)) => Some(Arc::new(p)),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot read the site keys; posts go out with the list's unsubscribe header");
                None
            }
        };
        loop {
            let claiming = stats.relay_down.is_none() && !exhausted && !stop();
            let want = if claiming { capacity - inflight } else { 0 };
            let refill = want > 0 && (inflight <= capacity / 2 || inflight == 0);
            if refill || (inflight == 0 && !finished.is_empty()) {
                let (rec, works) = self
                    .sync(
                        std::mem::take(&mut finished),
                        if refill { want } else { 0 },
                        now,
                    )
                    .await?;
                stats.record.add(rec);
                if refill && works.is_empty() {
                    exhausted = true;
                }
                for w in works {
                    inflight += 1;
                    stats.units += 1;
                    let (sem, pool, relay, tx) =
                        (sem.clone(), pool.clone(), self.relay.clone(), tx.clone());
                    let out_copy = Outgoing {
                        signer: self.signer.clone(),
                        domain: match w.job.list.as_deref() {
                            Some(l) => self.config.list_domain(l).to_string(),
                            None => self.config.domain.clone(),
                        },
                        personal: personal.clone(),
                    };
                    let direct = direct.clone();
                    tokio::spawn(async move {
                        // a panic while sending is this unit's failure: its
                        // recipients are deferred and the pass goes on
                        let work = w.clone();
                        let sending = std::panic::AssertUnwindSafe(async {
                            match &direct {
                                Some(mx) => send_direct(w, &out_copy, &sem, mx).await,
                                None => send_work(w, &out_copy, &sem, &pool, &relay).await,
                            }
                        });
                        let out = match futures_util::FutureExt::catch_unwind(sending).await {
                            Ok(out) => out,
                            Err(_) => {
                                tracing::error!(
                                    job = work.job.id,
                                    "sending panicked; its recipients are deferred"
                                );
                                let why = "internal error while sending (a panic); will retry";
                                let results =
                                    vec![RcptResult::Deferred(why.into()); work.rcpts.len()];
                                (Done { work, results }, None)
                            }
                        };
                        let _ = tx.send(out);
                    });
                }
            }
            if inflight == 0 {
                break;
            }
            let Some((d, down)) = rx.recv().await else {
                break;
            };
            inflight -= 1;
            finished.push(d);
            if let Some(why) = down {
                stats.relay_down.get_or_insert(why);
            }
            while let Ok((d, down)) = rx.try_recv() {
                inflight -= 1;
                finished.push(d);
                if let Some(why) = down {
                    stats.relay_down.get_or_insert(why);
                }
            }
        }
        if !finished.is_empty() {
            let (rec, _) = self.sync(finished, 0, now).await?;
            stats.record.add(rec);
        }
        let idle: Vec<RelayConn> = match pool.lock() {
            Ok(mut p) => p.drain(..).collect(),
            Err(_) => vec![],
        };
        for c in idle {
            c.quit().await;
        }
        if let Some(mx) = &direct {
            mx.close().await;
        }
        if let Some(why) = &stats.relay_down {
            tracing::warn!(relay = %self.relay.endpoint(), reason = %why, "relay unreachable; mail stays queued");
        }
        Ok(stats)
    }
}

/// The bytes that go out for `job`: signed once per body, shared by every
/// transaction and recipient that sends it (VERP changes only the
/// envelope); as stored when no key signs it.
fn signed_body(job: &JobInfo, signer: &Signer, domain: &str) -> Arc<[u8]> {
    if signer.is_empty() {
        return job.body.clone();
    }
    job.signed
        .get_or_init(|| signer.sign(&job.body, domain).map(Arc::from))
        .clone()
        .unwrap_or_else(|| job.body.clone())
}

/// What turns a job's stored bytes into what goes out: per-recipient
/// headers (`personalize`), then the DKIM signature.
struct Outgoing {
    signer: Arc<Signer>,
    /// The job's list domain (the site's without a list): whose key signs
    /// when the From domain has none.
    domain: String,
    personal: Option<Arc<Personalizer>>,
}

/// Sends one unit of work over a pooled (or new) connection. Returns the
/// verdicts, and the reason if the relay could not be reached.
async fn send_work(
    work: Work,
    out: &Outgoing,
    sem: &Semaphore,
    pool: &Mutex<Vec<RelayConn>>,
    relay: &Relay,
) -> (Done, Option<String>) {
    let job = work.job.clone();
    // signed once per body: every batch and VERP copy shares it
    let body = signed_body(&job, &out.signer, &out.domain);
    let _permit = sem.acquire().await;
    let pooled = pool.lock().ok().and_then(|mut p| p.pop());
    let mut conn = match pooled {
        Some(c) => c,
        None => match relay.connect().await {
            Ok(c) => c,
            Err(why) => {
                let results = vec![RcptResult::NotAttempted(why.clone()); work.rcpts.len()];
                return (Done { work, results }, Some(why));
            }
        },
    };
    let results = deliver_on(&mut conn, &work.rcpts, &job, &body, out).await;
    if conn.is_usable() {
        if let Ok(mut p) = pool.lock() {
            p.push(conn);
        }
    }
    (Done { work, results }, None)
}

/// Sends `job` (`body`: as it goes out, signed) to `rcpts` over `conn`: one
/// transaction for them all, one per recipient with VERP (streamed when
/// the relay pipelines) or for personalized copies.
async fn deliver_on(
    conn: &mut RelayConn,
    rcpts: &[String],
    job: &JobInfo,
    body: &Arc<[u8]>,
    out: &Outgoing,
) -> Vec<RcptResult> {
    crate::fault::point("delivery", &job.body);
    let verp = job.verp && !job.env_from.is_empty();
    let sender = |rcpt: &str| {
        if verp {
            queue::verp_sender(&job.env_from, rcpt)
        } else {
            job.env_from.clone()
        }
    };
    let personal = out
        .personal
        .as_deref()
        .and_then(|p| Some((p, p.list_of(job)?)));
    // a relay without 8BITMIME gets the 7-bit form, signed after the
    // conversion so the signature holds (RFC 6376 §5.3)
    let seven = !conn.takes_8bit() && !job.body.is_ascii();
    let finish = |copy: Vec<u8>| -> Vec<u8> {
        let copy = if seven {
            crate::mime::seven_bit::to_seven_bit(&copy).into_owned()
        } else {
            copy
        };
        out.signer.sign(&copy, &out.domain).unwrap_or(copy)
    };
    let converted: Arc<[u8]>;
    let body = if seven && personal.is_none() {
        converted = finish(job.body.to_vec()).into();
        if !converted.is_ascii() {
            tracing::warn!("the relay lacks 8BITMIME and the message keeps 8-bit bytes listd cannot convert (address fields, parameters); sending it as it is");
        }
        &converted
    } else {
        body
    };
    if let Some((p, list)) = personal {
        // each recipient their own copy, made and signed as it goes out
        one_by_one(conn, rcpts, sender, |rcpt| {
            finish(p.copy_for(list, &job.body, rcpt)).into()
        })
        .await
    } else if verp {
        if conn.can_stream(body) {
            let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
            conn.verp_stream(&rcpts, sender, body).await
        } else {
            one_by_one(conn, rcpts, sender, |_| body[..].into()).await
        }
    } else {
        let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        conn.transaction(&job.env_from, &rcpts, body).await
    }
}

/// `relay.mode: mx`: sends one unit of work straight to its domain's
/// exchangers (`mx`), within the pass's connection cap. The queue already
/// groups a unit's recipients by domain (`Work::domain`), so a domain that
/// cannot be reached defers (or, with no exchanger at all, fails) only its
/// own recipients.
async fn send_direct(
    work: Work,
    out: &Outgoing,
    sem: &Semaphore,
    mx: &MxPass,
) -> (Done, Option<String>) {
    let job = work.job.clone();
    let body = signed_body(&job, &out.signer, &out.domain);
    let _permit = sem.acquire().await;
    let domain = work.domain.trim_end_matches('.').to_string();
    let _slot = mx.permit(&domain).await;
    let results = match mx.connect(&domain).await {
        Ok(mut conn) => {
            let v = deliver_on(&mut conn, &work.rcpts, &job, &body, out).await;
            mx.keep(&domain, conn);
            v
        }
        Err(verdict) => vec![verdict; work.rcpts.len()],
    };
    (Done { work, results }, None)
}

/// One transaction per recipient, each with its sender and its body.
async fn one_by_one<'b>(
    conn: &mut RelayConn,
    rcpts: &[String],
    sender: impl Fn(&str) -> String,
    body: impl Fn(&str) -> std::borrow::Cow<'b, [u8]>,
) -> Vec<RcptResult> {
    let mut results = Vec::with_capacity(rcpts.len());
    for rcpt in rcpts {
        if !conn.is_usable() {
            results.push(RcptResult::NotAttempted(
                "connection to the relay broke earlier in this batch".into(),
            ));
            continue;
        }
        let copy = body(rcpt);
        let mut r = conn
            .transaction(&sender(rcpt), &[rcpt.as_str()], &copy)
            .await;
        results.push(r.pop().unwrap_or(RcptResult::Deferred("no verdict".into())));
    }
    results
}

/// One delivery pass at `now` with a fresh engine: what tests with a fake
/// clock call. Recovers rows left `sending` first.
pub async fn deliver_due(config: Arc<Config>, now: i64) -> Result<PassStats, StoreError> {
    let engine = Engine::new(config)?;
    engine.recover(now).await?;
    engine.pass(now, || false).await
}

/// The delivery worker: recovers what a crash left in flight, then delivers
/// whenever woken (`wakers.delivery`), when a deferred retry falls due, and
/// after a relay outage (retrying the relay every 1 s, doubling to 60 s),
/// until `shutdown` turns true. At start and then hourly it runs the
/// retention clean-up (`retention`). A reload takes effect between passes.
pub async fn run(
    live: impl Into<crate::plumbing::Live>,
    wakers: Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut live = live.into();
    let mut engine = Engine::new(live.current().config)?;
    let n = engine.recover(store::now()).await?;
    if n > 0 {
        tracing::warn!(
            rows = n,
            "re-queued outbound work that was in flight at the last stop"
        );
    }
    let mut relay_wait = Duration::from_secs(1);
    let mut next_purge = 0i64;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        if let Some(ctx) = live.changed() {
            // between passes nothing is in flight: a new engine takes the
            // new relay settings and limits
            engine = Engine::new(ctx.config)?;
            tracing::info!("delivery: configuration reloaded");
        }
        let now = store::now();
        if now >= next_purge {
            next_purge = now + retention::EVERY_SECS;
            if let Err(e) = engine.purge(now).await {
                tracing::error!(error = %e, "retention clean-up failed; retrying next hour");
            }
        }
        let stop_rx = shutdown.clone();
        let wait = match engine.pass(store::now(), move || *stop_rx.borrow()).await {
            Ok(stats) => {
                if stats.units > 0 {
                    tracing::info!(
                        sent = stats.record.sent,
                        failed = stats.record.failed,
                        deferred = stats.record.deferred,
                        jobs_done = stats.record.jobs_done,
                        "delivery pass"
                    );
                }
                if stats.relay_down.is_some() {
                    let w = relay_wait;
                    relay_wait = (relay_wait * 2).min(RELAY_DOWN_MAX);
                    w
                } else {
                    relay_wait = Duration::from_secs(1);
                    match engine.next_due().await {
                        Ok(Some(t)) => {
                            let now = store::now();
                            if t <= now && stats.units > 0 {
                                // more became due while we worked
                                Duration::ZERO
                            } else {
                                Duration::from_secs((t - now).clamp(1, 15) as u64)
                            }
                        }
                        Ok(None) => Duration::from_secs(15),
                        Err(e) => {
                            tracing::error!(error = %e, "delivery: reading the queue failed");
                            Duration::from_secs(5)
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "delivery pass failed");
                // what that pass had in flight stays `sending` without a
                // verdict: put it back in line (it may be sent twice)
                if let Err(e) = engine.recover(store::now()).await {
                    tracing::error!(error = %e, "delivery: re-queueing in-flight work failed");
                }
                Duration::from_secs(5)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = wakers.delivery.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}
