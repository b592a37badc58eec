//! listd: a Majordomo-style mailing list manager.
//!
//! The message path (see ARCHITECTURE.md): `smtp` accepts mail and commits it
//! to the `store` spool before answering 250; `pipeline` routes each incoming
//! recipient to its handler (`posts`, the `robot`, `moderation`, owners,
//! bounces); accepted posts are decorated, archived and expanded into the
//! outbound queue, which `delivery` drains to the relay; `digest` collects
//! posts for digest members. Beside the path are the leaves everyone uses
//! and that use none of it: `store`, `config`, `mime`, `membership`,
//! `handler` (the handler contract), `plumbing`, `health` and the rest.

pub mod address;
pub mod archive;
pub mod auth;
pub mod background;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod delivery;
pub mod digest;
pub mod dkim;
pub mod dns;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod health;
pub mod hold;
pub mod imap;
pub mod limits;
pub mod member_token;
pub mod membership;
pub mod mime;
pub mod moderation;
pub mod password;
pub mod pipeline;
pub mod plumbing;
pub mod pop3;
pub mod posts;
pub mod reader;
pub mod robot;
pub mod routing;
pub mod smtp;
pub mod store;
pub mod templates;
pub mod web;
