//! One IMAP session: the protocol state (not authenticated, authenticated, selected), what
//! each command may do in it, and the store work each command needs.
//!
//! It takes whole commands (from `framing`) and appends responses to a buffer; it never
//! touches a socket, TLS or a timer: the server does, following the `Next` it returns
//! (start TLS, wait for an AUTHENTICATE line, IDLE until DONE, close). Parsing is
//! imap-codec's (after `extensions` took out what it cannot parse); FETCH data comes from
//! `render`, search from `search`, and `view` keeps the sequence numbers and decides which
//! untagged responses another session's changes give, and when (RFC 9051 §5.2, §7.5.1).

mod fetch;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{CommandBody, FetchModifier, SelectParameter, StoreModifier};
use imap_codec::imap_types::extensions::compress::CompressionAlgorithm;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::status::StatusDataItemName;
use tme_auth::{Authenticator, CredentialWatch, LoginRefusal};
use tme_core::Secret;
use tme_message::MessageSummary;
use tme_store::mail::{MAILBOX_DELIMITER, SystemFlags};
use tme_store::{
    Account, AccountId, Delivery, FlagChange, Flags, Mailbox, MessageId, MessageRecord, SpecialUse,
    Store, StoreError,
};

use crate::collation;
use crate::extensions::{self, Extracted};
use crate::framing::tag_of;
use crate::response::{push_astring, status, untagged};
use crate::search::{self, Candidate};
use crate::sort;
use crate::thread::{self, ThreadMessage};
use crate::utf7;
use crate::view::{NumberSet, SelectedView, flag_fetch_line};

mod incremental;
mod multiappend;

/// What the session needs from the node.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    /// APPENDLIMIT and the literal limit.
    pub literal_octets_max: u32,
    /// Whether this listener can start TLS (a certificate is loaded and the connection is
    /// not TLS already).
    pub starttls_available: bool,
    /// `BAD` answers before `BYE`.
    pub session_errors_max: u32,
    /// The full-text index SEARCH asks for BODY and TEXT; None reads every message.
    pub search: Option<Arc<tme_search::SearchIndexes>>,
    /// The latest message lists, shared by the sessions of one server and one store.
    pub mailbox_lists: Arc<crate::mailbox_lists::MailboxLists>,
}

/// What the server does after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Write the responses, then the TLS handshake; bytes read before it are thrown away.
    StartTls,
    /// Write the responses, then compress both ways (RFC 4978); bytes read after the
    /// command are compressed already.
    Compress,
    /// Write `+ `, read one line, give it to `authenticate_line`.
    AuthenticateLine {
        tag: String,
    },
    /// Write the responses, then each message's FETCH response as `fetch_next` gives it (in
    /// pieces, `FetchOutput::fill`), then what `fetch_end` gives.
    Fetch,
    /// Write `+ idling`, then report changes (`idle_refresh`) until the client sends DONE
    /// (`idle_done`).
    Idle {
        tag: String,
    },
    /// Write the responses and close.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    store: Store,
    authenticator: Arc<Authenticator>,
    client_ip: IpAddr,
    tls_active: bool,
    state: State,
    account: Option<Account>,
    /// The secret the login used: the session ends once it is revoked or changed.
    credential: Option<CredentialWatch>,
    /// The session ended because that secret was revoked (for the server's metrics).
    credential_revoked: bool,
    selected: Option<SelectedView>,
    /// The FETCH being answered, between `Next::Fetch` and `fetch_end`.
    fetch_plan: Option<fetch::FetchPlan>,
    condstore: bool,
    rev2: bool,
    utf8: bool,
    errors: u32,
    /// The command being handled had a `$` (SEARCHRES), now `SAVED_RESULT_MARKER`.
    saved_result_used: bool,
    /// COMPRESS was accepted: a second one is refused (RFC 4978 §3).
    compression_active: bool,
    /// ENABLE QRESYNC (RFC 7162 §3.2.3): VANISHED instead of EXPUNGE, SELECT's QRESYNC
    /// parameter and FETCH's VANISHED modifier.
    qresync: bool,
}

/// SELECT's QRESYNC parameter: what the client's cache holds.
#[derive(Debug)]
struct Resync {
    uid_validity: u32,
    modseq: u64,
    known_uids: Option<SequenceSet>,
}

const PERMANENT_FLAGS: &str = "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)";
const FLAGS: &str = "(\\Answered \\Flagged \\Deleted \\Seen \\Draft)";
/// How many messages one FETCH or SEARCH loads summaries or bodies for at most before it
/// answers; more would let one command hold unbounded memory. Clients ask in batches.
const MESSAGES_PER_COMMAND_MAX: usize = 100_000;
/// How many messages' summaries SEARCH, SORT and THREAD read from the store at once: one
/// read per this many messages, and at most this many decoded summaries held at a time.
const SUMMARIES_PER_READ: usize = 256;

fn store_refusal(error: &StoreError) -> (&'static str, String) {
    match error {
        StoreError::NotFound { .. } => ("NONEXISTENT", error.to_string()),
        StoreError::AlreadyExists { .. } => ("ALREADYEXISTS", error.to_string()),
        StoreError::QuotaExceeded { .. } => ("OVERQUOTA", error.to_string()),
        StoreError::Refused(text) => ("CANNOT", text.clone()),
        _ => {
            tracing::warn!(%error, "imap: store error");
            (
                "UNAVAILABLE",
                "the store is unavailable; try again".to_owned(),
            )
        }
    }
}

fn bytes_to_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Session {
    pub fn new(
        config: Arc<SessionConfig>,
        store: Store,
        authenticator: Arc<Authenticator>,
        client_ip: IpAddr,
        tls_active: bool,
    ) -> Session {
        Session {
            config,
            store,
            authenticator,
            client_ip,
            tls_active,
            state: State::NotAuthenticated,
            account: None,
            credential: None,
            credential_revoked: false,
            selected: None,
            fetch_plan: None,
            condstore: false,
            rev2: false,
            utf8: false,
            errors: 0,
            saved_result_used: false,
            compression_active: false,
            qresync: false,
        }
    }

    /// The greeting (RFC 9051 §7.1.1).
    pub fn greeting(&self, out: &mut Vec<u8>) {
        let text = format!("{} IMAP ready", self.config.hostname);
        status(out, "*", "OK", Some(&self.capability_text()), &text);
    }

    /// Whether the session ended because its login's secret was revoked or changed.
    pub fn credential_revoked(&self) -> bool {
        self.credential_revoked
    }

    /// The account logged in, once there is one (for the server's IDLE notification).
    pub fn account_id(&self) -> Option<i64> {
        self.account.as_ref().map(|account| account.id)
    }

    /// TLS is now active (after STARTTLS).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
    }

    fn capability_text(&self) -> String {
        let mut words = vec!["CAPABILITY", "IMAP4rev1", "IMAP4rev2"];
        let appendlimit = format!("APPENDLIMIT={}", self.config.literal_octets_max);
        if self.state == State::NotAuthenticated {
            if self.config.starttls_available && !self.tls_active {
                words.push("STARTTLS");
            }
            if self.tls_active {
                words.push("AUTH=PLAIN");
            } else {
                words.push("LOGINDISABLED");
            }
        }
        words.extend([
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "CHILDREN",
        ]);
        if self.state != State::NotAuthenticated {
            words.extend([
                "UIDPLUS",
                "MULTIAPPEND",
                "MOVE",
                "SPECIAL-USE",
                "CREATE-SPECIAL-USE",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "CONDSTORE",
                "QRESYNC",
                "ESEARCH",
                "BINARY",
                "STATUS=SIZE",
                "UTF8=ACCEPT",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "SEARCHRES",
                "COMPRESS=DEFLATE",
                "SORT",
                "SORT=DISPLAY",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
            ]);
        }
        let mut text = words.join(" ");
        if self.state != State::NotAuthenticated {
            text.push(' ');
            text.push_str(&appendlimit);
        }
        text
    }

    fn bad(&mut self, out: &mut Vec<u8>, tag: &str, text: &str) -> Next {
        self.errors += 1;
        status(out, tag, "BAD", None, text);
        if self.errors >= self.config.session_errors_max {
            untagged(out, "BYE Too many errors");
            return Next::Close;
        }
        Next::Continue
    }

    /// A literal over the limit was refused by the framer (RFC 7888 §4, RFC 7889 TOOBIG).
    pub fn literal_too_large(&mut self, out: &mut Vec<u8>, tag: &str, length: u64) -> Next {
        self.errors += 1;
        status(
            out,
            tag,
            "NO",
            Some("TOOBIG"),
            &format!(
                "literal of {length} octets refused: the limit is {}",
                self.config.literal_octets_max
            ),
        );
        if self.errors >= self.config.session_errors_max {
            untagged(out, "BYE Too many errors");
            return Next::Close;
        }
        Next::Continue
    }

    /// A command line over the limit was thrown away.
    pub fn line_too_long(&mut self, out: &mut Vec<u8>, tag: &str) -> Next {
        self.bad(out, tag, "command line too long")
    }

    /// Handles one whole command.
    pub async fn command(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Next {
        if !self.credential_stands(out).await {
            return Next::Close;
        }
        let tag = tag_of(bytes);
        // MULTIAPPEND (RFC 3502): imap-codec parses one message per APPEND.
        if let Some(parts) = crate::multiappend::split(bytes) {
            return self.multiappend(&tag, &parts, out).await;
        }
        let (base, extracted) = extensions::extract(bytes);
        let codec = CommandCodec::default();
        let command = match codec.decode(&base) {
            Ok((b"", command)) => command,
            _ => {
                if tag == "*" {
                    return self.bad(out, "*", "Not a command (no valid tag)");
                }
                return self.bad(out, &tag, "Syntax error in command");
            }
        };
        let tag = command.tag.as_ref().to_owned();
        let name = command.body.name();
        self.saved_result_used = extracted.saved_result_used;
        let allowed = match (&command.body, self.state) {
            (
                CommandBody::Capability
                | CommandBody::Noop
                | CommandBody::Logout
                | CommandBody::Id { .. },
                _,
            ) => true,
            (
                CommandBody::StartTLS
                | CommandBody::Login { .. }
                | CommandBody::Authenticate { .. },
                state,
            ) => state == State::NotAuthenticated,
            (
                CommandBody::Check
                | CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Thread { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. },
                state,
            ) => state == State::Selected,
            (CommandBody::Enable { .. }, state) => state == State::Authenticated,
            (_, state) => state != State::NotAuthenticated,
        };
        if !allowed {
            let text = match self.state {
                State::NotAuthenticated => format!("{name} needs a login first"),
                State::Authenticated => {
                    format!("{name} is not valid in this state (no mailbox selected)")
                }
                State::Selected => format!("{name} is not valid in this state"),
            };
            return self.bad(out, &tag, &text);
        }
        // Which commands may report expunges (RFC 9051 §7.5.1).
        let expunge_allowed = !matches!(
            &command.body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Sort { uid: false, .. }
                | CommandBody::Thread { uid: false, .. }
        );
        // What changed since the last command is reported first, so the command works on
        // (and the client sees) the mailbox as it is now.
        if self.state == State::Selected {
            self.refresh(expunge_allowed, out).await;
        }
        self.dispatch(command.body, &tag, extracted, out).await
    }

    async fn dispatch(
        &mut self,
        body: CommandBody<'_>,
        tag: &str,
        extracted: Extracted,
        out: &mut Vec<u8>,
    ) -> Next {
        match body {
            CommandBody::Capability => {
                untagged(out, &self.capability_text());
                status(out, tag, "OK", None, "CAPABILITY completed");
            }
            CommandBody::Noop | CommandBody::Check => {
                let mut pending = Vec::new();
                self.refresh(true, &mut pending).await;
                out.extend(pending);
                status(out, tag, "OK", None, "NOOP completed");
            }
            CommandBody::Logout => {
                untagged(out, "BYE Logging out");
                status(out, tag, "OK", None, "LOGOUT completed");
                return Next::Close;
            }
            CommandBody::StartTLS => {
                if !self.config.starttls_available || self.tls_active {
                    return self.bad(out, tag, "STARTTLS is not available");
                }
                status(out, tag, "OK", None, "Begin TLS negotiation now");
                return Next::StartTls;
            }
            CommandBody::Login { username, password } => {
                if !self.tls_active {
                    status(
                        out,
                        tag,
                        "NO",
                        Some("PRIVACYREQUIRED"),
                        "Use STARTTLS before LOGIN",
                    );
                    return Next::Continue;
                }
                let username = bytes_to_text(username.as_ref());
                let password = Secret::new(bytes_to_text(password.declassify().as_ref()));
                self.login(tag, &username, &password, out).await;
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if !self.tls_active {
                    status(
                        out,
                        tag,
                        "NO",
                        Some("PRIVACYREQUIRED"),
                        "Use STARTTLS before AUTHENTICATE",
                    );
                    return Next::Continue;
                }
                if mechanism != AuthMechanism::Plain {
                    status(out, tag, "NO", None, "Only AUTHENTICATE PLAIN is offered");
                    return Next::Continue;
                }
                match initial_response {
                    Some(response) => {
                        let response = response.declassify().to_vec();
                        self.authenticate_plain(tag, &response, out).await;
                    }
                    None => {
                        return Next::AuthenticateLine {
                            tag: tag.to_owned(),
                        };
                    }
                }
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for capability in capabilities.as_ref() {
                    match capability {
                        CapabilityEnable::CondStore => {
                            self.condstore = true;
                            enabled.push("CONDSTORE".to_owned());
                        }
                        CapabilityEnable::Utf8(_) => {
                            self.utf8 = true;
                            enabled.push("UTF8=ACCEPT".to_owned());
                        }
                        CapabilityEnable::Other(_) => {
                            let text = capability.to_string();
                            if text.eq_ignore_ascii_case("IMAP4rev2") {
                                self.rev2 = true;
                                enabled.push("IMAP4rev2".to_owned());
                            } else if text.eq_ignore_ascii_case("QRESYNC") {
                                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                                self.qresync = true;
                                self.condstore = true;
                                enabled.push("QRESYNC".to_owned());
                            }
                        }
                        #[allow(unreachable_patterns)]
                        _ => {}
                    }
                }
                untagged(out, format!("ENABLED {}", enabled.join(" ")).trim_end());
                status(out, tag, "OK", None, "ENABLE completed");
            }
            CommandBody::Id { .. } => {
                untagged(
                    out,
                    "ID (\"name\" \"tme\" \"vendor\" \"The Messaging Engine\")",
                );
                status(out, tag, "OK", None, "ID completed");
            }
            CommandBody::Namespace => {
                untagged(out, "NAMESPACE ((\"\" \"/\")) NIL NIL");
                status(out, tag, "OK", None, "NAMESPACE completed");
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => {
                return self
                    .select_command(tag, &mailbox, &parameters, false, out)
                    .await;
            }
            CommandBody::Examine {
                mailbox,
                parameters,
            } => {
                return self
                    .select_command(tag, &mailbox, &parameters, true, out)
                    .await;
            }
            CommandBody::Create { mailbox } => {
                self.create(tag, &mailbox, extracted.create_use, out).await
            }
            CommandBody::Delete { mailbox } => self.delete(tag, &mailbox, out).await,
            CommandBody::Rename { from, to } => self.rename(tag, &from, &to, out).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(tag, &mailbox, true, out).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(tag, &mailbox, false, out).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                self.list(tag, &reference, &mailbox_wildcard, &extracted, false, out)
                    .await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                self.list(tag, &reference, &mailbox_wildcard, &extracted, true, out)
                    .await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(tag, &mailbox, &item_names, out).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let raw: Vec<u8> = match &message {
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal(
                        literal,
                    ) => literal.as_ref().to_vec(),
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(
                        literal,
                    ) => literal.data.as_ref().to_vec(),
                };
                let date_unix = date.map(|date| date.as_ref().timestamp());
                self.append(tag, &mailbox, &flags, date_unix, &raw, out)
                    .await;
            }
            CommandBody::Close => {
                if let Some(selected) = self.selected.take()
                    && !selected.read_only
                    && let Some(account) = self.account.clone()
                {
                    let deleted: Vec<u32> = self
                        .current_list(selected.mailbox_id)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|record| record.flags.system.contains(SystemFlags::DELETED))
                        .map(|record| record.uid)
                        .collect();
                    if !deleted.is_empty() {
                        let _ = self
                            .store
                            .mail
                            .messages_expunge(account.id, selected.mailbox_id, &deleted)
                            .await;
                        self.store.changes.notify(account.id);
                    }
                }
                self.state = State::Authenticated;
                status(out, tag, "OK", None, "CLOSE completed");
            }
            CommandBody::Unselect => {
                self.selected = None;
                self.state = State::Authenticated;
                status(out, tag, "OK", None, "UNSELECT completed");
            }
            CommandBody::Expunge => self.expunge(tag, None, out).await,
            CommandBody::ExpungeUid { sequence_set } => {
                self.expunge(tag, Some(&sequence_set), out).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                if let Some(charset) = &charset
                    && !charset_supported(charset.as_ref())
                {
                    self.search_failed(&extracted.search_return);
                    refuse_charset(out, tag);
                    return Next::Continue;
                }
                let key = search_key(criteria.into_inner());
                self.search(tag, &key, uid, extracted.search_return, out)
                    .await;
            }
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                if !charset_supported(charset.as_ref()) {
                    refuse_charset(out, tag);
                    return Next::Continue;
                }
                let key = search_key(search_criteria.into_inner());
                self.sort(tag, sort_criteria.as_ref(), &key, uid, out).await;
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                if !charset_supported(charset.as_ref()) {
                    refuse_charset(out, tag);
                    return Next::Continue;
                }
                let key = search_key(search_criteria.into_inner());
                self.thread(tag, &algorithm, &key, uid, out).await;
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                let changed_since = modifiers.iter().find_map(|modifier| match modifier {
                    FetchModifier::ChangedSince(value) => Some(value.get()),
                    _ => None,
                });
                let vanished = modifiers
                    .iter()
                    .any(|modifier| matches!(modifier, FetchModifier::Vanished));
                if vanished {
                    // RFC 7162 §3.2.6: only UID FETCH, only with CHANGEDSINCE, only once
                    // QRESYNC is enabled.
                    let problem = if !self.qresync {
                        Some("VANISHED needs ENABLE QRESYNC")
                    } else if !uid {
                        Some("VANISHED is for UID FETCH")
                    } else if changed_since.is_none() {
                        Some("VANISHED needs CHANGEDSINCE")
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        return self.bad(out, tag, problem);
                    }
                    if let Some(since) = changed_since {
                        let within = self.resolve_set_with_largest(&sequence_set, u32::MAX);
                        self.report_vanished(since, Some(&within), out).await;
                    }
                }
                let items: Vec<MessageDataItemName<'_>> = match macro_or_item_names {
                    MacroOrMessageDataItemNames::Macro(items) => items
                        .expand()
                        .into_iter()
                        .map(|item| match item {
                            MessageDataItemName::Flags => MessageDataItemName::Flags,
                            MessageDataItemName::InternalDate => MessageDataItemName::InternalDate,
                            MessageDataItemName::Rfc822Size => MessageDataItemName::Rfc822Size,
                            MessageDataItemName::Envelope => MessageDataItemName::Envelope,
                            _ => MessageDataItemName::Body,
                        })
                        .collect(),
                    MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
                };
                self.fetch(tag, &sequence_set, &items, uid, changed_since, out)
                    .await;
                if self.fetch_plan.is_some() {
                    return Next::Fetch;
                }
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|StoreModifier::UnchangedSince(value)| *value)
                    .next();
                self.store_flags(
                    tag,
                    &sequence_set,
                    kind,
                    response == StoreResponse::Silent,
                    &flags,
                    uid,
                    unchanged_since,
                    out,
                )
                .await;
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.copy(tag, &sequence_set, &mailbox, uid, false, out)
                    .await
            }
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.copy(tag, &sequence_set, &mailbox, uid, true, out)
                    .await
            }
            CommandBody::Idle => {
                return Next::Idle {
                    tag: tag.to_owned(),
                };
            }
            CommandBody::GetQuota { root } => {
                if root.as_ref().is_empty() {
                    self.quota_response(tag, "GETQUOTA", out).await;
                } else {
                    status(
                        out,
                        tag,
                        "NO",
                        Some("NONEXISTENT"),
                        "no such quota root: the account's is \"\"",
                    );
                }
            }
            CommandBody::GetQuotaRoot { mailbox } => {
                // RFC 9208 §4.3.2: the mailbox need not exist; every mailbox of the account
                // has the account's one quota root.
                let Some(name) = self.mailbox_name(&mailbox) else {
                    status(
                        out,
                        tag,
                        "NO",
                        Some("CANNOT"),
                        "the mailbox name is not valid",
                    );
                    return Next::Continue;
                };
                let mut line = b"* QUOTAROOT ".to_vec();
                push_astring(&mut line, &self.wire_name(&name));
                line.extend_from_slice(b" \"\"\r\n");
                out.extend(line);
                self.quota_response(tag, "GETQUOTAROOT", out).await;
            }
            CommandBody::Compress { algorithm } => {
                if self.compression_active {
                    status(
                        out,
                        tag,
                        "NO",
                        Some("COMPRESSIONACTIVE"),
                        "DEFLATE is active already",
                    );
                    return Next::Continue;
                }
                #[allow(unreachable_patterns)]
                match algorithm {
                    CompressionAlgorithm::Deflate => {}
                    // imap-codec parses no other algorithm today.
                    _ => {
                        status(out, tag, "NO", None, "only DEFLATE is offered");
                        return Next::Continue;
                    }
                }
                self.compression_active = true;
                status(out, tag, "OK", None, "DEFLATE active");
                return Next::Compress;
            }
            CommandBody::SetQuota { .. } => {
                // No QUOTASET: limits are the operator's (`tme account set --quota`).
                status(
                    out,
                    tag,
                    "NO",
                    Some("NOPERM"),
                    "quotas are set by the administrator",
                );
            }
            // Every command imap-codec parses is handled above; one it adds later is not.
            #[allow(unreachable_patterns)]
            other => {
                status(
                    out,
                    tag,
                    "NO",
                    Some("CANNOT"),
                    &format!("{} is not supported", other.name()),
                );
            }
        }
        Next::Continue
    }

    // ---- login ----

    async fn login(
        &mut self,
        tag: &str,
        username: &str,
        password: &Secret<String>,
        out: &mut Vec<u8>,
    ) {
        match self
            .authenticator
            .login(self.client_ip, username, password)
            .await
        {
            Ok(login) => {
                let account = login.account.clone();
                if let Err(error) = self
                    .store
                    .mail
                    .account_ensure(account.id, account.quota_bytes_max)
                    .await
                {
                    let (code, text) = store_refusal(&error);
                    status(out, tag, "NO", Some(code), &text);
                    return;
                }
                tracing::info!(account = %account.address, "imap: logged in");
                self.credential = Some(CredentialWatch::new(&login));
                self.account = Some(account);
                self.state = State::Authenticated;
                let capabilities = self.capability_text();
                status(out, tag, "OK", Some(&capabilities), "Logged in");
            }
            Err(LoginRefusal::BadCredentials) => status(
                out,
                tag,
                "NO",
                Some("AUTHENTICATIONFAILED"),
                "Authentication failed",
            ),
            Err(LoginRefusal::Locked { .. }) => status(
                out,
                tag,
                "NO",
                Some("AUTHENTICATIONFAILED"),
                "Too many failed logins: try again later",
            ),
            Err(LoginRefusal::AccountSuspended) => status(
                out,
                tag,
                "NO",
                Some("CONTACTADMIN"),
                "This account is suspended",
            ),
            Err(LoginRefusal::Unavailable) => status(
                out,
                tag,
                "NO",
                Some("UNAVAILABLE"),
                "Login is unavailable: try again later",
            ),
        }
    }

    /// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
    async fn authenticate_plain(&mut self, tag: &str, response: &[u8], out: &mut Vec<u8>) {
        let mut fields = response.split(|&byte| byte == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            status(
                out,
                tag,
                "NO",
                Some("AUTHENTICATIONFAILED"),
                "Malformed PLAIN response",
            );
            return;
        };
        if !authzid.is_empty() && authzid != authcid {
            status(
                out,
                tag,
                "NO",
                Some("AUTHORIZATIONFAILED"),
                "Logging in as another user is not allowed",
            );
            return;
        }
        let username = bytes_to_text(authcid);
        let password = Secret::new(bytes_to_text(password));
        self.login(tag, &username, &password, out).await;
    }

    /// The client's answer to the `+` of AUTHENTICATE.
    pub async fn authenticate_line(&mut self, tag: &str, line: &[u8], out: &mut Vec<u8>) -> Next {
        let line = line.trim_ascii_end();
        if line == b"*" {
            status(out, tag, "BAD", None, "AUTHENTICATE cancelled");
            return Next::Continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(line) {
            Ok(response) => self.authenticate_plain(tag, &response, out).await,
            Err(_) => return self.bad(out, tag, "Invalid base64 in AUTHENTICATE"),
        }
        Next::Continue
    }

    // ---- mailboxes ----

    fn account(&self) -> Option<&Account> {
        self.account.as_ref()
    }

    /// The store's name for a wire mailbox name.
    fn mailbox_name(&self, mailbox: &WireMailbox<'_>) -> Option<String> {
        match mailbox {
            WireMailbox::Inbox => Some("INBOX".to_owned()),
            WireMailbox::Other(other) => {
                let text = std::str::from_utf8(other.as_ref()).ok()?;
                let text = if self.utf8 || self.rev2 {
                    text.to_owned()
                } else {
                    utf7::decode(text)?
                };
                let text = text.trim_end_matches(MAILBOX_DELIMITER);
                if text.eq_ignore_ascii_case("INBOX") {
                    return Some("INBOX".to_owned());
                }
                Some(text.to_owned())
            }
        }
    }

    fn wire_name(&self, name: &str) -> Vec<u8> {
        if self.utf8 || self.rev2 {
            name.as_bytes().to_vec()
        } else {
            utf7::encode(name).into_bytes()
        }
    }

    async fn find_mailbox(
        &self,
        mailbox: &WireMailbox<'_>,
    ) -> Result<Mailbox, (&'static str, String)> {
        let account = self.account().ok_or(("CANNOT", "no login".to_owned()))?;
        let name = self
            .mailbox_name(mailbox)
            .ok_or(("CANNOT", "the mailbox name is not valid".to_owned()))?;
        match self.store.mail.mailbox_find(account.id, &name).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(("NONEXISTENT", format!("no mailbox {name:?}"))),
            Err(error) => Err(store_refusal(&error)),
        }
    }

    async fn current_list(&self, mailbox: i64) -> Result<Vec<MessageRecord>, StoreError> {
        let account = self.account().map_or(0, |account| account.id);
        self.store.mail.message_list(account, mailbox).await
    }

    /// SELECT or EXAMINE with their parameters (CONDSTORE, QRESYNC).
    async fn select_command(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Next {
        let condstore = parameters
            .iter()
            .any(|parameter| matches!(parameter, SelectParameter::CondStore));
        let resync = parameters.iter().find_map(|parameter| match parameter {
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                ..
            } => Some(Resync {
                uid_validity: uid_validity.get(),
                modseq: mod_sequence_value.get(),
                known_uids: known_uids.clone(),
            }),
            _ => None,
        });
        if resync.is_some() && !self.qresync {
            // RFC 7162 §3.2.5.
            return self.bad(out, tag, "the QRESYNC parameter needs ENABLE QRESYNC");
        }
        self.select(tag, mailbox, read_only, condstore, resync, out)
            .await;
        Next::Continue
    }

    async fn select(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        read_only: bool,
        condstore: bool,
        resync: Option<Resync>,
        out: &mut Vec<u8>,
    ) {
        if self.selected.take().is_some() {
            // RFC 9051 §6.3.2 (and QRESYNC's [CLOSED]): the old mailbox is closed first.
            untagged(out, "OK [CLOSED] Previous mailbox closed");
        }
        self.state = State::Authenticated;
        if condstore {
            self.condstore = true;
        }
        let found = match self.find_mailbox(mailbox).await {
            Ok(found) => found,
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        // The MODSEQ first, then the list: a refresh applies the changes after it
        // (`incremental`), so the list may be newer than the MODSEQ, never older.
        let list = match self.store.mail.highest_modseq(found.account_id).await {
            Ok(now) => self
                .mailbox_list(found.account_id, found.id, now, None)
                .await
                .map(|list| (list, now)),
            Err(error) => Err(error),
        };
        let (list, account_modseq) = match list {
            Ok(found) => found,
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let view = SelectedView::new(
            found.id,
            found.name.clone(),
            read_only,
            found.uid_validity,
            list.records.clone(),
            found.highest_modseq,
            account_modseq,
        );
        untagged(out, &format!("FLAGS {FLAGS}"));
        untagged(out, &format!("{} EXISTS", view.exists()));
        if !self.rev2 {
            untagged(out, "0 RECENT");
        }
        let permanent = if read_only { "()" } else { PERMANENT_FLAGS };
        untagged(
            out,
            &format!("OK [PERMANENTFLAGS {permanent}] Flags permitted"),
        );
        untagged(
            out,
            &format!("OK [UIDVALIDITY {}] UIDs valid", view.uid_validity),
        );
        untagged(
            out,
            &format!("OK [UIDNEXT {}] Predicted next UID", found.uid_next),
        );
        untagged(
            out,
            &format!("OK [HIGHESTMODSEQ {}] Highest", found.highest_modseq.max(1)),
        );
        if self.rev2 {
            let mut line = b"* LIST () \"/\" ".to_vec();
            push_astring(&mut line, &self.wire_name(&found.name));
            line.extend_from_slice(b"\r\n");
            out.extend(line);
        }
        self.selected = Some(view);
        self.state = State::Selected;
        if let Some(resync) = resync
            && resync.uid_validity == found.uid_validity
        {
            // RFC 7162 §3.2.5.1: what the client missed since its MODSEQ, before the OK.
            // (Another UIDVALIDITY: its cache is void, and a plain SELECT says so.)
            let known = resync
                .known_uids
                .as_ref()
                .map(|set| self.resolve_set_with_largest(set, u32::MAX));
            self.report_vanished(resync.modseq, known.as_ref(), out)
                .await;
            if let Some(selected) = &self.selected {
                for (index, record) in selected.records().iter().enumerate() {
                    if u64::try_from(record.modseq).unwrap_or(0) > resync.modseq {
                        out.extend_from_slice(
                            flag_fetch_line(
                                index + 1,
                                &record.flags,
                                record.uid,
                                Some(record.modseq),
                            )
                            .as_bytes(),
                        );
                    }
                }
            }
        }
        let (code, verb) = if read_only {
            ("READ-ONLY", "EXAMINE")
        } else {
            ("READ-WRITE", "SELECT")
        };
        status(out, tag, "OK", Some(code), &format!("{verb} completed"));
    }

    async fn create(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        uses: Option<Vec<String>>,
        out: &mut Vec<u8>,
    ) {
        let Some(account) = self.account().cloned() else {
            return;
        };
        let Some(name) = self.mailbox_name(mailbox) else {
            status(
                out,
                tag,
                "NO",
                Some("CANNOT"),
                "the mailbox name is not valid",
            );
            return;
        };
        if name == "INBOX" {
            status(out, tag, "NO", Some("ALREADYEXISTS"), "INBOX exists");
            return;
        }
        let special_use = match uses.as_deref() {
            None | Some([]) => None,
            Some([one]) => match SpecialUse::parse(one.trim_start_matches('\\')) {
                Some(special_use) if special_use != SpecialUse::Inbox => Some(special_use),
                _ => {
                    status(out, tag, "NO", Some("USEATTR"), "special use not supported");
                    return;
                }
            },
            Some(_) => {
                status(
                    out,
                    tag,
                    "NO",
                    Some("USEATTR"),
                    "one special use per mailbox",
                );
                return;
            }
        };
        match self
            .store
            .mail
            .mailbox_create(account.id, &name, special_use)
            .await
        {
            Ok(_) => {
                self.store.changes.notify(account.id);
                status(out, tag, "OK", None, "CREATE completed");
            }
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    async fn delete(&mut self, tag: &str, mailbox: &WireMailbox<'_>, out: &mut Vec<u8>) {
        let found = match self.find_mailbox(mailbox).await {
            Ok(found) => found,
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        if found.name == "INBOX" {
            status(out, tag, "NO", Some("CANNOT"), "INBOX cannot be deleted");
            return;
        }
        if self
            .selected
            .as_ref()
            .is_some_and(|selected| selected.mailbox_id == found.id)
        {
            self.selected = None;
            self.state = State::Authenticated;
        }
        match self
            .store
            .mail
            .mailbox_delete(found.account_id, found.id)
            .await
        {
            Ok(()) => {
                self.store.changes.notify(found.account_id);
                status(out, tag, "OK", None, "DELETE completed");
            }
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    async fn rename(
        &mut self,
        tag: &str,
        from: &WireMailbox<'_>,
        to: &WireMailbox<'_>,
        out: &mut Vec<u8>,
    ) {
        let found = match self.find_mailbox(from).await {
            Ok(found) => found,
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let Some(new_name) = self.mailbox_name(to) else {
            status(out, tag, "NO", Some("CANNOT"), "the new name is not valid");
            return;
        };
        if found.name == "INBOX" {
            status(
                out,
                tag,
                "NO",
                Some("CANNOT"),
                "renaming INBOX is not supported",
            );
            return;
        }
        match self
            .store
            .mail
            .mailbox_rename(found.account_id, found.id, &new_name)
            .await
        {
            Ok(()) => {
                self.store.changes.notify(found.account_id);
                status(out, tag, "OK", None, "RENAME completed");
            }
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    async fn subscribe(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        on: bool,
        out: &mut Vec<u8>,
    ) {
        let found = match self.find_mailbox(mailbox).await {
            Ok(found) => found,
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        match self
            .store
            .mail
            .mailbox_set_subscribed(found.account_id, found.id, on)
            .await
        {
            Ok(()) => status(
                out,
                tag,
                "OK",
                None,
                if on {
                    "SUBSCRIBE completed"
                } else {
                    "UNSUBSCRIBE completed"
                },
            ),
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    async fn list(
        &mut self,
        tag: &str,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        extracted: &Extracted,
        lsub: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(account) = self.account().cloned() else {
            return;
        };
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            WireMailbox::Inbox => "INBOX".to_owned(),
            WireMailbox::Other(other) => bytes_to_text(other.as_ref()),
        };
        let pattern_text = match pattern {
            ListMailbox::Token(token) => bytes_to_text(token.as_ref()),
            ListMailbox::String(string) => bytes_to_text(string.as_ref()),
        };
        let full_pattern = format!("{reference}{pattern_text}");
        let full_pattern = if self.utf8 || self.rev2 {
            full_pattern
        } else {
            utf7::decode(&full_pattern).unwrap_or(full_pattern)
        };
        if pattern_text.is_empty() && !lsub {
            untagged(out, "LIST (\\Noselect) \"/\" \"\"");
            status(out, tag, "OK", None, "LIST completed");
            return;
        }
        let mailboxes = match self.store.mail.mailbox_list(account.id).await {
            Ok(mailboxes) => mailboxes,
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let subscribed_only = lsub
            || extracted
                .list_selection
                .iter()
                .any(|option| option == "SUBSCRIBED");
        let special_use_only = extracted
            .list_selection
            .iter()
            .any(|option| option == "SPECIAL-USE");
        let show_subscribed = extracted
            .list_return
            .iter()
            .chain(extracted.list_selection.iter())
            .any(|option| option == "SUBSCRIBED");
        let names: Vec<&str> = mailboxes
            .iter()
            .map(|mailbox| mailbox.name.as_str())
            .collect();
        // Names to report: matching mailboxes, plus (for `%`) parents that exist only as a
        // level of a deeper name (\Noselect).
        let mut listed: Vec<(String, Option<&Mailbox>)> = Vec::new();
        for mailbox in &mailboxes {
            if subscribed_only && !mailbox.subscribed {
                continue;
            }
            if special_use_only && mailbox.special_use.is_none() {
                continue;
            }
            if pattern_matches(&full_pattern, &mailbox.name) {
                listed.push((mailbox.name.clone(), Some(mailbox)));
            }
            if !lsub && !subscribed_only && !special_use_only {
                let levels: Vec<&str> = mailbox.name.split(MAILBOX_DELIMITER).collect();
                for depth in 1..levels.len() {
                    let parent = levels[..depth].join("/");
                    if !names.contains(&parent.as_str())
                        && pattern_matches(&full_pattern, &parent)
                        && !listed.iter().any(|(name, _)| *name == parent)
                    {
                        listed.push((parent, None));
                    }
                }
            }
        }
        listed.sort_by(|(left, _), (right, _)| left.cmp(right));
        for (name, mailbox) in &listed {
            let has_children = names
                .iter()
                .any(|other| other.len() > name.len() && other.starts_with(&format!("{name}/")));
            let mut attributes: Vec<&str> = Vec::new();
            if mailbox.is_none() {
                attributes.push("\\Noselect");
            }
            attributes.push(if has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some(mailbox) = mailbox {
                if show_subscribed && mailbox.subscribed {
                    attributes.push("\\Subscribed");
                }
                if let Some(special_use) = mailbox.special_use {
                    attributes.push(match special_use {
                        SpecialUse::Inbox => "",
                        SpecialUse::Sent => "\\Sent",
                        SpecialUse::Drafts => "\\Drafts",
                        SpecialUse::Trash => "\\Trash",
                        SpecialUse::Junk => "\\Junk",
                        SpecialUse::Archive => "\\Archive",
                        SpecialUse::All => "\\All",
                        SpecialUse::Flagged => "\\Flagged",
                    });
                }
            }
            attributes.retain(|attribute| !attribute.is_empty());
            let mut line = format!("* {verb} ({}) \"/\" ", attributes.join(" ")).into_bytes();
            push_astring(&mut line, &self.wire_name(name));
            line.extend_from_slice(b"\r\n");
            out.extend(line);
            if let (Some(items), Some(mailbox)) = (&extracted.list_status, mailbox) {
                let _ = self.status_line(mailbox, items, out).await;
            }
        }
        status(out, tag, "OK", None, &format!("{verb} completed"));
    }

    async fn status_line(
        &self,
        mailbox: &Mailbox,
        items: &[String],
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let counts = self
            .store
            .mail
            .mailbox_counts(mailbox.account_id, mailbox.id)
            .await?;
        let mut values = Vec::new();
        for item in items {
            let value = match item.as_str() {
                "MESSAGES" => counts.messages.to_string(),
                "UNSEEN" => counts.unseen.to_string(),
                "UIDNEXT" => mailbox.uid_next.to_string(),
                "UIDVALIDITY" => mailbox.uid_validity.to_string(),
                "RECENT" => "0".to_owned(),
                "SIZE" => counts.size_bytes.to_string(),
                "HIGHESTMODSEQ" => mailbox.highest_modseq.max(1).to_string(),
                "DELETED" => self
                    .store
                    .mail
                    .message_list(mailbox.account_id, mailbox.id)
                    .await?
                    .iter()
                    .filter(|record| record.flags.system.contains(SystemFlags::DELETED))
                    .count()
                    .to_string(),
                // RFC 9208 §4.2.2: what an EXPUNGE would give back, as the sum of the
                // RFC822.SIZEs of the \Deleted messages (which is exactly what the store
                // charges them).
                "DELETED-STORAGE" => self
                    .store
                    .mail
                    .message_list(mailbox.account_id, mailbox.id)
                    .await?
                    .iter()
                    .filter(|record| record.flags.system.contains(SystemFlags::DELETED))
                    .map(|record| record.size_bytes)
                    .sum::<u64>()
                    .to_string(),
                _ => continue,
            };
            values.push(format!("{item} {value}"));
        }
        let mut line = b"* STATUS ".to_vec();
        push_astring(&mut line, &self.wire_name(&mailbox.name));
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        out.extend(line);
        Ok(())
    }

    async fn status(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Vec<u8>,
    ) {
        let found = match self.find_mailbox(mailbox).await {
            Ok(found) => found,
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let items: Vec<String> = items
            .iter()
            .map(|item| {
                match item {
                    StatusDataItemName::Messages => "MESSAGES",
                    StatusDataItemName::Recent => "RECENT",
                    StatusDataItemName::UidNext => "UIDNEXT",
                    StatusDataItemName::UidValidity => "UIDVALIDITY",
                    StatusDataItemName::Unseen => "UNSEEN",
                    StatusDataItemName::Deleted => "DELETED",
                    StatusDataItemName::DeletedStorage => "DELETED-STORAGE",
                    StatusDataItemName::Size => "SIZE",
                    StatusDataItemName::HighestModSeq => "HIGHESTMODSEQ",
                }
                .to_owned()
            })
            .collect();
        match self.status_line(&found, &items, out).await {
            Ok(()) => status(out, tag, "OK", None, "STATUS completed"),
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    /// `* QUOTA "" (STORAGE used limit)` for the account's one quota root (RFC 9208 §5.1:
    /// units of 1024 octets), then the tagged OK. The usage counts what the store charges,
    /// the sum of the messages' sizes; expunged messages waiting out their retention no
    /// longer count. No MESSAGE resource: the directory keeps no limit on the message count.
    async fn quota_response(&mut self, tag: &str, verb: &str, out: &mut Vec<u8>) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        match self.store.mail.account_usage(account_id).await {
            Ok(usage) => {
                untagged(
                    out,
                    &format!(
                        "QUOTA \"\" (STORAGE {} {})",
                        usage.used_bytes.div_ceil(1024),
                        usage.quota_bytes_max / 1024
                    ),
                );
                status(out, tag, "OK", None, &format!("{verb} completed"));
            }
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    async fn append(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        flags: &[Flag<'_>],
        date_unix: Option<i64>,
        raw: &[u8],
        out: &mut Vec<u8>,
    ) {
        let flags = match parse_flags(flags) {
            Ok(flags) => flags,
            Err(text) => {
                self.bad(out, tag, &text);
                return;
            }
        };
        let internal_date_unix = date_unix.unwrap_or_else(now_unix);
        self.append_messages(tag, mailbox, &[(raw, &flags, internal_date_unix)], out)
            .await;
    }

    /// Appends `messages` (raw bytes, flags, internal date) to `mailbox` in one store
    /// transaction, all or none (RFC 3502 §6.3.11), and answers: `TRYCREATE` when the mailbox
    /// does not exist (RFC 9051 §6.3.12), else `APPENDUID` with the new UIDs (RFC 4315 §3).
    async fn append_messages(
        &mut self,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        messages: &[(&[u8], &Flags, i64)],
        out: &mut Vec<u8>,
    ) {
        let found = match self.find_mailbox(mailbox).await {
            Ok(found) => found,
            Err(("NONEXISTENT", text)) => {
                status(out, tag, "NO", Some("TRYCREATE"), &text);
                return;
            }
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let deliveries: Vec<Delivery<'_>> = messages
            .iter()
            .map(|&(raw, flags, internal_date_unix)| Delivery {
                account: found.account_id,
                mailbox: found.id,
                raw,
                internal_date_unix: Some(internal_date_unix),
                flags,
            })
            .collect();
        match self.store.deliver(&deliveries).await {
            Ok(appended) => {
                let uids: Vec<u32> = appended.iter().map(|appended| appended.uid).collect();
                let mut pending = Vec::new();
                self.refresh(true, &mut pending).await;
                out.extend(pending);
                status(
                    out,
                    tag,
                    "OK",
                    Some(&format!(
                        "APPENDUID {} {}",
                        found.uid_validity,
                        compress_set(&uids)
                    )),
                    "APPEND completed",
                );
            }
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
            }
        }
    }

    // ---- the selected mailbox ----

    /// Brings the view up to date with the store and writes the untagged responses.
    pub async fn refresh(&mut self, expunge_allowed: bool, out: &mut Vec<u8>) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        let Ok(account_modseq) = self.store.mail.highest_modseq(account_id).await else {
            return;
        };
        let pending_expunges = selected.has_pending_expunges();
        if account_modseq == selected.account_modseq && !(expunge_allowed && pending_expunges) {
            return;
        }
        let mailbox_id = selected.mailbox_id;
        let list = match self
            .mailbox_list(
                account_id,
                mailbox_id,
                account_modseq,
                self.selected.as_ref(),
            )
            .await
        {
            Ok(list) => list,
            Err(_) => return,
        };
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        selected.refresh(
            &list.records,
            expunge_allowed,
            self.condstore,
            self.qresync,
            out,
        );
        selected.account_modseq = account_modseq;
    }

    /// During IDLE: report what changed (expunges are allowed, RFC 2177).
    /// Reports changes while idling; Close (after a BYE) once the login's credential was
    /// revoked.
    pub async fn idle_refresh(&mut self, out: &mut Vec<u8>) -> Next {
        if !self.credential_stands(out).await {
            return Next::Close;
        }
        self.refresh(true, out).await;
        Next::Continue
    }

    /// False, with a BYE written, once the credential of the login was revoked or changed,
    /// or the account suspended (`tme_auth::CredentialWatch`; RFC 9051 §7.1.5: the server
    /// closes the connection after BYE).
    async fn credential_stands(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(watch) = &mut self.credential else {
            return true;
        };
        if watch.still_valid(&self.authenticator).await {
            return true;
        }
        if let Some(account) = &self.account {
            tracing::info!(account = %account.address, "imap: credential revoked; session ended");
        }
        self.credential_revoked = true;
        untagged(
            out,
            "BYE The password or app password of this session was changed or revoked",
        );
        false
    }

    /// The client ended IDLE with DONE (or sent something else: BAD).
    pub async fn idle_done(&mut self, tag: &str, line: &[u8], out: &mut Vec<u8>) -> Next {
        if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
            self.refresh(true, out).await;
            status(out, tag, "OK", None, "IDLE terminated");
            Next::Continue
        } else {
            self.bad(out, tag, "Expected DONE")
        }
    }

    fn resolve_set(&self, set: &SequenceSet, by_uid: bool) -> NumberSet {
        let Some(selected) = &self.selected else {
            return NumberSet(Vec::new());
        };
        if self.saved_result_used
            && let [Sequence::Single(SeqOrUid::Value(value))] = set.0.as_ref()
            && value.get() == extensions::SAVED_RESULT_MARKER
        {
            return selected.saved_set(by_uid);
        }
        let largest = if by_uid {
            selected.last_uid()
        } else {
            selected.exists()
        };
        self.resolve_set_with_largest(set, largest)
    }

    /// A set with `*` standing for `largest`.
    fn resolve_set_with_largest(&self, set: &SequenceSet, largest: u32) -> NumberSet {
        let value = |point: &SeqOrUid| match point {
            SeqOrUid::Value(value) => value.get(),
            SeqOrUid::Asterisk => largest,
        };
        NumberSet(
            set.0
                .as_ref()
                .iter()
                .map(|sequence| match sequence {
                    Sequence::Single(point) => (value(point), value(point)),
                    Sequence::Range(from, to) => {
                        let (from, to) = (value(from), value(to));
                        (from.min(to), from.max(to))
                    }
                })
                .collect(),
        )
    }

    /// `* VANISHED (EARLIER) uids` (RFC 7162 §3.2.5.1, §3.2.6): the UIDs of the selected
    /// mailbox expunged at a MODSEQ above `modseq`, within `within` when given.
    async fn report_vanished(&self, modseq: u64, within: Option<&NumberSet>, out: &mut Vec<u8>) {
        let (Some(account_id), Some(selected)) = (self.account_id(), &self.selected) else {
            return;
        };
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        let Ok(mut uids) = self
            .store
            .mail
            .expunged_uids_since(account_id, selected.mailbox_id, modseq)
            .await
        else {
            return;
        };
        if let Some(within) = within {
            uids.retain(|&uid| within.contains(uid));
        }
        if !uids.is_empty() {
            untagged(out, &format!("VANISHED (EARLIER) {}", compress_set(&uids)));
        }
    }

    async fn expunge(&mut self, tag: &str, uids: Option<&SequenceSet>, out: &mut Vec<u8>) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        let restrict = uids.map(|set| self.resolve_set(set, true));
        let Some(selected) = &self.selected else {
            return;
        };
        if selected.read_only {
            status(
                out,
                tag,
                "NO",
                Some("READ-ONLY"),
                "The mailbox is read-only",
            );
            return;
        }
        let mailbox_id = selected.mailbox_id;
        let current = match self.current_list(mailbox_id).await {
            Ok(current) => current,
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let doomed: Vec<u32> = current
            .iter()
            .filter(|record| record.flags.system.contains(SystemFlags::DELETED))
            .filter(|record| restrict.as_ref().is_none_or(|set| set.contains(record.uid)))
            .map(|record| record.uid)
            .collect();
        if !doomed.is_empty() {
            if let Err(error) = self
                .store
                .mail
                .messages_expunge(account_id, mailbox_id, &doomed)
                .await
            {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
            self.store.changes.notify(account_id);
        }
        self.refresh(true, out).await;
        status(out, tag, "OK", None, "EXPUNGE completed");
    }

    /// The messages of the selected mailbox that match `key`: their indexes in the view,
    /// in mailbox order (at most `MESSAGES_PER_COMMAND_MAX` are looked at).
    async fn search_matches(&self, key: &SearchKey<'_>) -> Vec<usize> {
        let Some(account_id) = self.account_id() else {
            return Vec::new();
        };
        let mut set_keys = Vec::new();
        search::collect_sets(key, &mut set_keys);
        let sets: Vec<NumberSet> = set_keys
            .iter()
            .map(|(set, uid)| self.resolve_set(set, *uid))
            .collect();
        let Some(selected) = &self.selected else {
            return Vec::new();
        };
        // The full-text index rules out messages for BODY and TEXT; the rest are read.
        let prefilter =
            search::TextPrefilter::new(self.config.search.as_ref(), account_id, key).await;
        let mut found = Vec::new();
        let empty_summary = tme_message::summarize(b"");
        let messages =
            &selected.records()[..selected.records().len().min(MESSAGES_PER_COMMAND_MAX)];
        for (chunk_number, chunk) in messages.chunks(SUMMARIES_PER_READ).enumerate() {
            let loads: Vec<(bool, bool)> = chunk
                .iter()
                .map(|record| prefilter.loads(key, record))
                .collect();
            // The summaries the chunk needs in one read, not one per message; a message
            // whose summary cannot be read is not found (as when each was read alone).
            let ids: Vec<MessageId> = chunk
                .iter()
                .zip(&loads)
                .filter(|(_, (need_summary, _))| *need_summary)
                .map(|(record, _)| record.id)
                .collect();
            let summaries = if ids.is_empty() {
                HashMap::new()
            } else {
                match self.summaries_of(account_id, &ids).await {
                    Some(summaries) => summaries,
                    None => continue,
                }
            };
            for (offset, (record, &(need_summary, need_raw))) in
                chunk.iter().zip(&loads).enumerate()
            {
                let index = chunk_number * SUMMARIES_PER_READ + offset;
                let summary = if need_summary {
                    match summaries.get(&record.id) {
                        Some(summary) => summary,
                        None => continue,
                    }
                } else {
                    &empty_summary
                };
                let raw = if need_raw {
                    self.store.message_raw(record).await.ok()
                } else {
                    None
                };
                let candidate = Candidate {
                    sequence: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    record,
                    summary,
                    raw: raw.as_deref(),
                };
                let mut sets_iter = sets.iter().cloned();
                if search::matches_with(key, &candidate, &mut sets_iter, &prefilter) {
                    found.push(index);
                }
            }
        }
        found
    }

    /// The summaries of the messages `ids` names, by message id, in one store read (of at
    /// most `SUMMARIES_PER_READ` decoded at once by the callers); None if the read failed.
    async fn summaries_of(
        &self,
        account_id: AccountId,
        ids: &[MessageId],
    ) -> Option<HashMap<MessageId, Arc<MessageSummary>>> {
        let summaries = self
            .store
            .mail
            .message_summaries(account_id, ids)
            .await
            .ok()?;
        Some(summaries.into_iter().collect())
    }

    /// A message of the view as a response names it: its UID, or its sequence number.
    fn message_number(&self, index: usize, by_uid: bool) -> u32 {
        if by_uid {
            self.selected
                .as_ref()
                .and_then(|selected| selected.records().get(index))
                .map_or(0, |record| record.uid)
        } else {
            u32::try_from(index + 1).unwrap_or(u32::MAX)
        }
    }

    /// The highest MODSEQ of the messages found, for SEARCH and SORT with a MODSEQ key
    /// (RFC 7162 §3.1.5).
    fn highest_modseq_of(&self, key: &SearchKey<'_>, indexes: &[usize]) -> Option<i64> {
        if !format!("{key:?}").contains("ModSequence") {
            return None;
        }
        let selected = self.selected.as_ref()?;
        indexes
            .iter()
            .filter_map(|&index| selected.records().get(index))
            .map(|record| record.modseq)
            .max()
    }

    async fn search(
        &mut self,
        tag: &str,
        key: &SearchKey<'_>,
        by_uid: bool,
        return_options: Option<Vec<String>>,
        out: &mut Vec<u8>,
    ) {
        let found = self.search_matches(key).await;
        let options = return_options.clone().unwrap_or_default();
        if let Some(unknown) = options
            .iter()
            .find(|option| !matches!(option.as_str(), "MIN" | "MAX" | "COUNT" | "ALL" | "SAVE"))
        {
            let text = format!("unknown RETURN option {unknown}");
            self.search_failed(&return_options);
            self.bad(out, tag, &text);
            return;
        }
        if options.iter().any(|option| option == "SAVE") {
            // RFC 5182 §2.1: with MIN or MAX (and neither ALL nor COUNT) only those are
            // saved; otherwise everything found.
            let has = |name: &str| options.iter().any(|option| option == name);
            let saved: Vec<usize> = if (has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") {
                let mut saved = Vec::new();
                if has("MIN") {
                    saved.extend(found.first().copied());
                }
                if has("MAX") {
                    saved.extend(found.last().copied());
                }
                saved
            } else {
                found.clone()
            };
            if let Some(selected) = self.selected.as_mut() {
                let mut uids: Vec<u32> = saved
                    .iter()
                    .filter_map(|&index| selected.records().get(index))
                    .map(|record| record.uid)
                    .collect();
                uids.sort_unstable();
                uids.dedup();
                selected.saved_result = uids;
            }
        }
        let numbers: Vec<u32> = found
            .iter()
            .map(|&index| self.message_number(index, by_uid))
            .collect();
        let highest = self.highest_modseq_of(key, &found);
        let only_save = !options.is_empty() && options.iter().all(|option| option == "SAVE");
        if only_save {
            // RFC 5182 §2.1: RETURN (SAVE) alone answers nothing but the tagged OK.
        } else if return_options.is_some() || self.rev2 {
            let options: Vec<String> = if options.is_empty() {
                vec!["ALL".to_owned()]
            } else {
                options
            };
            let mut line = format!("ESEARCH (TAG \"{tag}\")");
            if by_uid {
                line.push_str(" UID");
            }
            for option in &options {
                match option.as_str() {
                    "MIN" => {
                        if let Some(min) = numbers.iter().min() {
                            line.push_str(&format!(" MIN {min}"));
                        }
                    }
                    "MAX" => {
                        if let Some(max) = numbers.iter().max() {
                            line.push_str(&format!(" MAX {max}"));
                        }
                    }
                    "COUNT" => line.push_str(&format!(" COUNT {}", numbers.len())),
                    "ALL" if !numbers.is_empty() => {
                        line.push_str(&format!(" ALL {}", compress_set(&numbers)));
                    }
                    _ => {}
                }
            }
            if let Some(highest) = highest {
                line.push_str(&format!(" MODSEQ {highest}"));
            }
            untagged(out, &line);
        } else {
            let mut line = String::from("SEARCH");
            for number in &numbers {
                line.push_str(&format!(" {number}"));
            }
            if let Some(highest) = highest {
                line.push_str(&format!(" (MODSEQ {highest})"));
            }
            untagged(out, &line);
        }
        self.refresh(by_uid, out).await;
        status(out, tag, "OK", None, "SEARCH completed");
    }

    /// A SEARCH that asked to SAVE failed: the saved result is empty (RFC 5182 §2.1).
    fn search_failed(&mut self, return_options: &Option<Vec<String>>) {
        let saving = return_options
            .as_ref()
            .is_some_and(|options| options.iter().any(|option| option == "SAVE"));
        if saving && let Some(selected) = self.selected.as_mut() {
            selected.saved_result.clear();
        }
    }

    /// SORT (RFC 5256 §3, RFC 5957): the messages `key` finds, in the order of `criteria`.
    async fn sort(
        &mut self,
        tag: &str,
        criteria: &[SortCriterion],
        key: &SearchKey<'_>,
        by_uid: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        let found = self.search_matches(key).await;
        let Some(selected) = &self.selected else {
            return;
        };
        let need_summary = sort::needs_summary(criteria);
        let mut rows = Vec::with_capacity(found.len());
        for indexes in found.chunks(SUMMARIES_PER_READ) {
            let summaries = if need_summary {
                let ids: Vec<MessageId> = indexes
                    .iter()
                    .map(|&index| selected.records()[index].id)
                    .collect();
                self.summaries_of(account_id, &ids)
                    .await
                    .unwrap_or_default()
            } else {
                HashMap::new()
            };
            for &index in indexes {
                let record = &selected.records()[index];
                rows.push(sort::values(
                    criteria,
                    record,
                    summaries.get(&record.id).map(|summary| &**summary),
                ));
            }
        }
        let mut line = String::from("SORT");
        for position in sort::order(criteria, &rows) {
            line.push_str(&format!(
                " {}",
                self.message_number(found[position], by_uid)
            ));
        }
        if let Some(highest) = self.highest_modseq_of(key, &found) {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        untagged(out, &line);
        self.refresh(by_uid, out).await;
        status(out, tag, "OK", None, "SORT completed");
    }

    /// THREAD (RFC 5256 §2.2, §2.3): the messages `key` finds, threaded.
    async fn thread(
        &mut self,
        tag: &str,
        algorithm: &ThreadingAlgorithm<'_>,
        key: &SearchKey<'_>,
        by_uid: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        if !matches!(
            algorithm,
            ThreadingAlgorithm::OrderedSubject | ThreadingAlgorithm::References
        ) {
            self.bad(
                out,
                tag,
                &format!("unknown threading algorithm {algorithm}"),
            );
            return;
        }
        let found = self.search_matches(key).await;
        let Some(selected) = &self.selected else {
            return;
        };
        let empty_summary = tme_message::summarize(b"");
        let mut messages = Vec::with_capacity(found.len());
        let mut summaries = HashMap::new();
        for (position, &index) in found.iter().enumerate() {
            if position % SUMMARIES_PER_READ == 0 {
                let ids: Vec<MessageId> = found[position..]
                    .iter()
                    .take(SUMMARIES_PER_READ)
                    .map(|&index| selected.records()[index].id)
                    .collect();
                summaries = self
                    .summaries_of(account_id, &ids)
                    .await
                    .unwrap_or_default();
            }
            let record = &selected.records()[index];
            let summary = summaries
                .get(&record.id)
                .map_or(&empty_summary, |summary| &**summary);
            let (base_subject, reply_or_forward) =
                collation::base_subject(summary.subject.as_deref().unwrap_or(""));
            // RFC 5256 §2.3 step 1: References, else the first In-Reply-To id.
            let references = if summary.references.is_empty() {
                summary.in_reply_to.iter().take(1).cloned().collect()
            } else {
                summary.references.clone()
            };
            messages.push(ThreadMessage {
                number: self.message_number(index, by_uid),
                sent_date_unix: sort::sent_date_unix(record, summary),
                base_subject,
                reply_or_forward,
                message_id: summary.message_id.clone(),
                references,
            });
        }
        let forest = match algorithm {
            ThreadingAlgorithm::OrderedSubject => thread::ordered_subject(&messages),
            _ => thread::references(&messages),
        };
        let threads = thread::render(&forest, &messages);
        if threads.is_empty() {
            untagged(out, "THREAD");
        } else {
            untagged(out, &format!("THREAD {threads}"));
        }
        self.refresh(by_uid, out).await;
        status(out, tag, "OK", None, "THREAD completed");
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_flags(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        silent: bool,
        flags: &[Flag<'_>],
        by_uid: bool,
        unchanged_since: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        let numbers = self.resolve_set(set, by_uid);
        let Some(selected) = &self.selected else {
            return;
        };
        if selected.read_only {
            status(
                out,
                tag,
                "NO",
                Some("READ-ONLY"),
                "The mailbox is read-only",
            );
            return;
        }
        let indexes = match selected.resolve(&numbers, by_uid) {
            Ok(indexes) => indexes,
            Err(text) => {
                self.bad(out, tag, &text);
                return;
            }
        };
        let flags = match parse_flags(flags) {
            Ok(flags) => flags,
            Err(text) => {
                self.bad(out, tag, &text);
                return;
            }
        };
        let change = match kind {
            StoreType::Add => FlagChange::Add(flags),
            StoreType::Remove => FlagChange::Remove(flags),
            StoreType::Replace => FlagChange::Replace(flags),
        };
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let mailbox_id = selected.mailbox_id;
        let uids: Vec<u32> = indexes
            .iter()
            .filter(|&&index| !selected.is_expunged(index))
            .map(|&index| selected.records()[index].uid)
            .collect();
        let unchanged_since = unchanged_since.map(|value| i64::try_from(value).unwrap_or(i64::MAX));
        let changed = match self
            .store
            .mail
            .messages_set_flags(account_id, mailbox_id, &uids, &change, unchanged_since)
            .await
        {
            Ok(changed) => changed,
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        if !changed.is_empty() {
            self.store.changes.notify(account_id);
        }
        // The mailbox as it is now, from the view and the changes since it (this STORE's
        // among them), not the whole list read again: a STORE then reads a few rows, not
        // every message of the mailbox; the list is shared with the other sessions, which
        // need it next.
        let list = match self.store.mail.highest_modseq(account_id).await {
            Ok(now) => self
                .mailbox_list(account_id, mailbox_id, now, self.selected.as_ref())
                .await
                .ok(),
            Err(_) => None,
        };
        let current = list.as_ref().map_or(&[][..], |list| &list.records[..]);
        let condstore = self.condstore;
        let Some(selected) = self.selected.as_mut() else {
            return;
        };
        let mut modified: Vec<u32> = Vec::new();
        for &index in &indexes {
            if selected.is_expunged(index) {
                continue;
            }
            let uid = selected.records()[index].uid;
            // `current` is in UID order (the store's list, and `mailbox_list`).
            let Ok(position) = current.binary_search_by_key(&uid, |record| record.uid) else {
                continue;
            };
            let now = &current[position];
            let was_changed = changed.iter().any(|record| record.uid == uid);
            if let Some(since) = unchanged_since
                && !was_changed
                && now.modseq > since
            {
                modified.push(if by_uid { uid } else { index as u32 + 1 });
                continue;
            }
            selected.set_record(index, now.clone());
            if !silent || (condstore && was_changed) {
                let line = if silent {
                    format!(
                        "* {} FETCH (UID {uid} MODSEQ ({}))\r\n",
                        index + 1,
                        now.modseq
                    )
                } else {
                    flag_fetch_line(index + 1, &now.flags, uid, condstore.then_some(now.modseq))
                };
                out.extend_from_slice(line.as_bytes());
            }
        }
        self.refresh(by_uid, out).await;
        if modified.is_empty() {
            status(out, tag, "OK", None, "STORE completed");
        } else {
            modified.sort_unstable();
            status(
                out,
                tag,
                "OK",
                Some(&format!("MODIFIED {}", compress_set(&modified))),
                "Conditional STORE failed for some messages",
            );
        }
    }

    async fn copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        target: &WireMailbox<'_>,
        by_uid: bool,
        is_move: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(account_id) = self.account_id() else {
            return;
        };
        let numbers = self.resolve_set(set, by_uid);
        let target = match self.find_mailbox(target).await {
            Ok(found) => found,
            Err(("NONEXISTENT", text)) => {
                status(out, tag, "NO", Some("TRYCREATE"), &text);
                return;
            }
            Err((code, text)) => {
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let Some(selected) = &self.selected else {
            return;
        };
        if is_move && selected.read_only {
            status(
                out,
                tag,
                "NO",
                Some("READ-ONLY"),
                "The mailbox is read-only",
            );
            return;
        }
        let indexes = match selected.resolve(&numbers, by_uid) {
            Ok(indexes) => indexes,
            Err(text) => {
                self.bad(out, tag, &text);
                return;
            }
        };
        let sources: Vec<(MessageRecord, Flags)> = indexes
            .iter()
            .map(|&index| &selected.records()[index])
            .map(|record| (MessageRecord::clone(record), record.flags.clone()))
            .collect();
        if sources.is_empty() {
            status(out, tag, "OK", None, "Nothing to copy");
            return;
        }
        let source_mailbox = selected.mailbox_id;
        let appended = match self
            .store
            .messages_copy(account_id, &sources, target.id)
            .await
        {
            Ok(appended) => appended,
            Err(error) => {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
        };
        let source_uids: Vec<u32> = sources.iter().map(|(record, _)| record.uid).collect();
        let target_uids: Vec<u32> = appended.iter().map(|appended| appended.uid).collect();
        let code = format!(
            "COPYUID {} {} {}",
            target.uid_validity,
            compress_set_ordered(&source_uids),
            compress_set_ordered(&target_uids)
        );
        if is_move {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
            untagged(out, &format!("OK [{code}] Moved"));
            if let Err(error) = self
                .store
                .mail
                .messages_expunge(account_id, source_mailbox, &source_uids)
                .await
            {
                let (code, text) = store_refusal(&error);
                status(out, tag, "NO", Some(code), &text);
                return;
            }
            self.store.changes.notify(account_id);
            self.refresh(true, out).await;
            status(out, tag, "OK", None, "MOVE completed");
        } else {
            self.refresh(by_uid, out).await;
            status(out, tag, "OK", Some(&code), "COPY completed");
        }
    }
}

/// The charsets SEARCH, SORT and THREAD take (RFC 9051 §6.4.4: US-ASCII and UTF-8).
fn charset_supported(charset: &str) -> bool {
    charset.eq_ignore_ascii_case("US-ASCII") || charset.eq_ignore_ascii_case("UTF-8")
}

fn refuse_charset(out: &mut Vec<u8>, tag: &str) {
    status(
        out,
        tag,
        "NO",
        Some("BADCHARSET (US-ASCII UTF-8)"),
        "charset not supported",
    );
}

/// Search criteria as one key: several are an AND.
fn search_key(criteria: Vec<SearchKey<'_>>) -> SearchKey<'_> {
    if criteria.len() == 1 {
        criteria.into_iter().next().unwrap_or(SearchKey::All)
    } else {
        match imap_codec::imap_types::core::Vec1::try_from(criteria) {
            Ok(keys) => SearchKey::And(keys),
            Err(_) => SearchKey::All,
        }
    }
}

fn parse_flags(flags: &[Flag<'_>]) -> Result<Flags, String> {
    let names: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    Flags::parse(names.iter().map(String::as_str)).map_err(|error| error.to_string())
}

/// `1:3,7` from sorted numbers.
pub fn compress_set(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    compress_set_ordered(&sorted)
}

/// Runs of consecutive numbers as ranges, keeping the given order (COPYUID pairs the
/// source and target sets by position).
pub fn compress_set_ordered(numbers: &[u32]) -> String {
    let mut ranges: Vec<String> = Vec::new();
    let mut index = 0;
    while index < numbers.len() {
        let start = numbers[index];
        let mut end = start;
        while index + 1 < numbers.len() && numbers[index + 1] == end.wrapping_add(1) {
            index += 1;
            end = numbers[index];
        }
        ranges.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        index += 1;
    }
    ranges.join(",")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// hierarchy delimiter. Case-sensitive, except that INBOX matches in any case.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    // Dynamic programming over (pattern position, name position): linear in their product,
    // whatever the wildcards (a backtracking match is exponential on `*a*a*a...`).
    fn walk(pattern: &[char], name: &[char]) -> bool {
        let mut reachable = vec![false; name.len() + 1];
        reachable[0] = true;
        for &token in pattern {
            let mut next = vec![false; name.len() + 1];
            match token {
                '*' | '%' => {
                    let mut open = false;
                    for position in 0..=name.len() {
                        open |= reachable[position];
                        next[position] = open;
                        if token == '%' && name.get(position) == Some(&MAILBOX_DELIMITER) {
                            open = false;
                        }
                    }
                }
                literal => {
                    for position in 0..name.len() {
                        next[position + 1] = reachable[position] && name[position] == literal;
                    }
                }
            }
            reachable = next;
        }
        reachable[name.len()]
    }
    let pattern: Vec<char> = if pattern.len() >= 5 && pattern[..5].eq_ignore_ascii_case("INBOX") {
        let mut fixed: Vec<char> = "INBOX".chars().collect();
        fixed.extend(pattern[5..].chars());
        fixed
    } else {
        pattern.chars().collect()
    };
    let name: Vec<char> = name.chars().collect();
    // Bounded work: patterns are short (a command line) and names are bounded by the store.
    walk(&pattern, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "a/b"));
        assert!(pattern_matches("%", "a"));
        assert!(!pattern_matches("%", "a/b"));
        assert!(pattern_matches("a/%", "a/b"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(!pattern_matches("Sent", "sent"));
        assert!(pattern_matches("a%c", "abc"));
        assert!(!pattern_matches("a%c", "a/c"));
        assert!(pattern_matches("a*c", "a/b/c"));
        assert!(!pattern_matches(&"*a".repeat(200), &"a".repeat(100)));
    }

    #[test]
    fn sets() {
        assert_eq!(compress_set(&[3, 1, 2, 7, 9, 8]), "1:3,7:9");
        assert_eq!(compress_set_ordered(&[5, 6, 2]), "5:6,2");
    }
}
