//! The sans-IO IMAP session: the driver feeds bytes with
//! [`ImapSession::receive`], runs [`ImapSession::advance`] (which answers
//! every complete command, using the store handle it is given), writes
//! [`ImapSession::take_output`], and while the client IDLEs calls
//! [`ImapSession::poll`] now and then to report new posts.
//!
//! States: Not Authenticated → Authenticated ⇄ Selected → Logout.

use crate::reader::login::Grant;
use crate::reader::{mailbox, ArchiveDb};
use imap_codec::imap_types::core::{Tag, Text};
use imap_codec::imap_types::response::{
    Bye, Code, CommandContinuationRequest, Data, Greeting, GreetingKind, Status,
};
use imap_codec::imap_types::IntoStatic;
use imap_next::server::{Event, Options, Server};
use imap_next::{Interrupt, Io, State as _};
use std::collections::HashSet;
use std::net::IpAddr;

/// Longest command (and literal) taken: nothing here needs more.
pub const MAX_COMMAND: u32 = 64 * 1024;
/// Bad commands in a row before the server hangs up.
pub const MAX_ERRORS: u32 = 10;
/// The UIDVALIDITY of INBOX (its one message never changes).
pub const INBOX_UIDVALIDITY: u32 = 1;

/// Who is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapPeer {
    pub ip: Option<IpAddr>,
    /// On loopback, from `smtp.trusted_networks`, or over TLS: LOGIN may
    /// carry a password. Elsewhere the server announces LOGINDISABLED.
    pub login_ok: bool,
    /// A certificate is configured and the connection is still plain: the
    /// server offers STARTTLS.
    pub starttls: bool,
}

/// The open mailbox.
#[derive(Debug, Clone)]
pub struct OpenMailbox {
    /// As the client named it (`INBOX` or a list name).
    pub name: String,
    /// The list, `None` for INBOX.
    pub list: Option<String>,
    /// UIDs by sequence number - 1.
    pub uids: Vec<u32>,
    /// Seen in this session (`\Seen` is not kept).
    pub seen: HashSet<u32>,
}

impl OpenMailbox {
    /// The 1-based sequence number of `uid`, if present.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }
}

#[derive(Debug, Clone)]
pub(super) enum SessionState {
    NotAuthenticated,
    Authenticated(Grant),
    Selected(Grant, OpenMailbox),
    Logout,
}

/// One IMAP session.
pub struct ImapSession {
    pub(super) server: Server,
    pub(super) peer: ImapPeer,
    pub(super) hostname: String,
    pub(super) state: SessionState,
    pub(super) idling: Option<Tag<'static>>,
    output: Vec<u8>,
    errors: u32,
    closed: bool,
    /// STARTTLS was accepted: the driver is to start TLS and go on with
    /// [`ImapSession::after_starttls`]; nothing more is read here.
    pub(super) tls_next: bool,
}

/// A response text: never empty, no line breaks.
pub fn text(s: &str) -> Text<'static> {
    let clean: String = s
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let clean = if clean.trim().is_empty() {
        "OK".to_string()
    } else {
        clean
    };
    Text::try_from(clean).unwrap_or_else(|_| Text::unvalidated("completed"))
}

impl ImapSession {
    /// A session; the greeting is in the output.
    pub fn new(hostname: &str, peer: ImapPeer) -> ImapSession {
        let mut options = Options::default();
        options.max_literal_size = MAX_COMMAND;
        options.max_command_size = MAX_COMMAND;
        options.crlf_relaxed = true;
        let _ = options.set_literal_accept_text("ready for the literal".into());
        let _ = options.set_literal_reject_text(
            "literal too long: nothing here takes more than 64 KiB".into(),
        );
        let caps = super::commands::capabilities(peer);
        let greeting_text = format!("{hostname} IMAP4rev1 server ready: list archives, read-only");
        let greeting = Greeting::new(
            GreetingKind::Ok,
            Some(Code::Capability(caps)),
            &greeting_text,
        )
        .map(|g| g.into_static())
        .unwrap_or_else(|_| {
            Greeting::new(GreetingKind::Ok, None, "ready")
                .expect("a plain greeting")
                .into_static()
        });
        let mut s = ImapSession {
            server: Server::new(options, greeting),
            peer,
            hostname: hostname.to_string(),
            state: SessionState::NotAuthenticated,
            idling: None,
            output: Vec::new(),
            errors: 0,
            closed: false,
            tls_next: false,
        };
        s.pump(None, 0);
        s
    }

    /// The session that goes on once TLS is up after STARTTLS: Not
    /// Authenticated, no greeting (RFC 3501 §6.2.1), nothing of what the
    /// client sent before the handshake.
    pub fn after_starttls(hostname: &str, peer: ImapPeer) -> ImapSession {
        let mut s = ImapSession::new(
            hostname,
            ImapPeer {
                login_ok: true,
                starttls: false,
                ..peer
            },
        );
        s.output.clear();
        s
    }

    /// Whether the driver is to start TLS now (after writing the output).
    pub fn wants_tls(&self) -> bool {
        self.tls_next
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.closed && !self.tls_next {
            self.server.enqueue_input(bytes);
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the client is in IDLE (the driver then polls).
    pub fn is_idling(&self) -> bool {
        self.idling.is_some()
    }

    /// The open mailbox, if any.
    pub fn selected(&self) -> Option<&OpenMailbox> {
        match &self.state {
            SessionState::Selected(_, s) => Some(s),
            _ => None,
        }
    }

    /// Takes the open mailbox out of the state for the length of a command
    /// (no copy of its UIDs); the state is Authenticated until
    /// [`ImapSession::put_back`].
    pub(super) fn take_selected(&mut self) -> Option<(Grant, OpenMailbox)> {
        match std::mem::replace(&mut self.state, SessionState::NotAuthenticated) {
            SessionState::Selected(g, sel) => {
                self.state = SessionState::Authenticated(g.clone());
                Some((g, sel))
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    pub(super) fn put_back(&mut self, grant: Grant, sel: OpenMailbox) {
        self.state = SessionState::Selected(grant, sel);
    }

    /// Answers every complete command in the input.
    pub fn advance(&mut self, db: &ArchiveDb, now: i64) {
        self.pump(Some(db), now);
    }

    /// The autologout timer ran out.
    pub fn timeout(&mut self) {
        if !self.closed {
            self.bye("autologout: idle for too long");
            self.pump(None, 0);
            self.closed = true;
        }
    }

    /// The server is stopping.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.bye("server shutting down");
            self.pump(None, 0);
            self.closed = true;
        }
    }

    /// Reports posts archived since the mailbox was opened (`* N EXISTS`).
    pub fn poll(&mut self, db: &ArchiveDb) {
        let SessionState::Selected(_, sel) = &mut self.state else {
            return;
        };
        let Some(list) = sel.list.clone() else {
            return;
        };
        let after = sel.uids.last().copied().unwrap_or(0);
        match mailbox::uids_after(db.conn(), &list, after) {
            Ok(new) if !new.is_empty() => {
                sel.uids.extend(new);
                let n = sel.uids.len() as u32;
                self.data(Data::Exists(n));
                self.pump(None, 0);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(list, error = %e, "imap: polling for new posts failed"),
        }
    }

    /// Runs the protocol machine until it needs input. Commands are handled
    /// only when `db` is given (never while sending a greeting or a BYE).
    fn pump(&mut self, db: Option<&ArchiveDb>, now: i64) {
        loop {
            match self.server.next() {
                Ok(Event::CommandReceived { command }) => {
                    if self.tls_next {
                        // pipelined after STARTTLS: dropped unread (RFC 3501 §6.2.1)
                        continue;
                    }
                    if let Some(db) = db {
                        self.errors = 0;
                        super::commands::dispatch(self, db, command, now);
                    }
                }
                Ok(Event::IdleCommandReceived { tag }) => {
                    if matches!(self.state, SessionState::NotAuthenticated) {
                        let st = Status::bad(Some(tag), None, "log in first")
                            .map(|s| s.into_static())
                            .unwrap_or_else(|_| bye_status("log in first"));
                        let _ = self.server.idle_reject(st);
                    } else {
                        let ccr = CommandContinuationRequest::basic(
                            None,
                            "idling, new posts are reported",
                        )
                        .expect("a continuation");
                        let _ = self.server.idle_accept(ccr);
                        self.idling = Some(tag);
                    }
                }
                Ok(Event::IdleDoneReceived) => {
                    if let Some(tag) = self.idling.take() {
                        self.tagged_ok(tag, None, "IDLE terminated");
                    }
                }
                Ok(Event::CommandAuthenticateReceived {
                    command_authenticate,
                }) => {
                    let st = Status::no(
                        Some(command_authenticate.tag),
                        None,
                        "no SASL mechanism here: use LOGIN",
                    )
                    .map(|s| s.into_static())
                    .unwrap_or_else(|_| bye_status("no"));
                    let _ = self.server.authenticate_finish(st);
                }
                Ok(Event::AuthenticateDataReceived { .. }) => {
                    let st = Status::no(None, None, "authentication refused")
                        .map(|s| s.into_static())
                        .unwrap_or_else(|_| bye_status("no"));
                    let _ = self.server.authenticate_finish(st);
                }
                Ok(Event::GreetingSent { .. }) | Ok(Event::ResponseSent { .. }) => {}
                Err(Interrupt::Io(Io::Output(bytes))) => self.output.extend_from_slice(&bytes),
                Err(Interrupt::Io(Io::NeedMoreInput)) => break,
                Err(Interrupt::Error(e)) => {
                    self.errors += 1;
                    let tag = match &e {
                        imap_next::server::Error::MalformedMessage { discarded_bytes }
                        | imap_next::server::Error::ExpectedCrlfGotLf { discarded_bytes }
                        | imap_next::server::Error::LiteralTooLong { discarded_bytes }
                        | imap_next::server::Error::CommandTooLong { discarded_bytes } => {
                            tag_of(discarded_bytes.declassify())
                        }
                    };
                    let why = match e {
                        // imap-next already answered the literal's announcement
                        imap_next::server::Error::LiteralTooLong { .. } => None,
                        imap_next::server::Error::CommandTooLong { .. } => Some("command too long"),
                        _ => Some("unknown command or bad syntax"),
                    };
                    if let Some(why) = why {
                        self.status(Status::bad(tag, None, why));
                    }
                    if self.errors >= MAX_ERRORS {
                        self.bye("too many bad commands");
                        self.state = SessionState::Logout;
                    }
                }
            }
        }
        if matches!(self.state, SessionState::Logout) {
            self.closed = true;
        }
    }

    pub(super) fn data(&mut self, d: Data<'_>) {
        self.server.enqueue_data(d.into_static());
    }

    pub(super) fn status<E>(&mut self, st: Result<Status<'_>, E>) {
        if let Ok(st) = st {
            self.server.enqueue_status(st.into_static());
        }
    }

    pub(super) fn tagged_ok(&mut self, tag: Tag<'_>, code: Option<Code<'_>>, t: &str) {
        self.status(Status::ok(Some(tag), code, text(t)));
    }

    pub(super) fn tagged_no(&mut self, tag: Tag<'_>, t: &str) {
        self.status(Status::no(Some(tag), None, text(t)));
    }

    pub(super) fn tagged_bad(&mut self, tag: Tag<'_>, t: &str) {
        self.status(Status::bad(Some(tag), None, text(t)));
    }

    pub(super) fn untagged_ok(&mut self, code: Option<Code<'_>>, t: &str) {
        self.status(Status::ok(None, code, text(t)));
    }

    pub(super) fn bye(&mut self, t: &str) {
        self.status(Status::bye(None, text(t)));
    }
}

fn bye_status(t: &str) -> Status<'static> {
    Status::Bye(Bye {
        code: None,
        text: text(t),
    })
}

/// The tag of a command the parser could not read, if it has a valid one.
fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let word = bytes.split(|&c| c == b' ').next()?;
    Tag::try_from(word.to_vec()).ok().map(|t| t.into_static())
}
