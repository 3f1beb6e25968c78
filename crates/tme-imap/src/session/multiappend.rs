//! MULTIAPPEND (RFC 3502) in the session: the single-message APPENDs that
//! `crate::multiappend::split` cut from one command are each parsed by imap-codec, and their
//! messages appended in one store transaction (`Store::deliver` with all of them), so that
//! either every message is appended or none is (RFC 3502 §6.3.11). APPENDUID lists the UID
//! set (RFC 4315 §3).

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use tme_store::Flags;

use super::{Session, State, now_unix, parse_flags};

/// One message of the command, parsed.
struct Message {
    raw: Vec<u8>,
    flags: Flags,
    internal_date_unix: i64,
}

impl Session {
    /// Handles an APPEND of several messages, `parts` being one single-message APPEND each.
    pub(super) async fn multiappend(
        &mut self,
        tag: &str,
        parts: &[Vec<u8>],
        out: &mut Vec<u8>,
    ) -> super::Next {
        if self.state == State::NotAuthenticated {
            return self.bad(out, tag, "APPEND needs a login first");
        }
        let codec = CommandCodec::default();
        let mut mailbox = None;
        let mut messages = Vec::with_capacity(parts.len());
        for part in parts {
            let Ok((b"", command)) = codec.decode(part) else {
                return self.bad(out, tag, "Syntax error in command");
            };
            let CommandBody::Append {
                mailbox: this_mailbox,
                flags,
                date,
                message,
            } = command.body
            else {
                return self.bad(out, tag, "Syntax error in command");
            };
            let flags = match parse_flags(&flags) {
                Ok(flags) => flags,
                Err(text) => return self.bad(out, tag, &text),
            };
            let raw = match message {
                LiteralOrLiteral8::Literal(literal) => literal.into_inner().into_owned(),
                LiteralOrLiteral8::Literal8(literal) => literal.data.into_owned(),
            };
            messages.push(Message {
                raw,
                flags,
                internal_date_unix: date.map_or_else(now_unix, |date| date.as_ref().timestamp()),
            });
            // Every part names the same mailbox: `split` copied it.
            mailbox.get_or_insert(this_mailbox);
        }
        let Some(mailbox) = mailbox else {
            return self.bad(out, tag, "Syntax error in command");
        };
        if self.state == State::Selected {
            self.refresh(true, out).await;
        }
        let messages: Vec<(&[u8], &Flags, i64)> = messages
            .iter()
            .map(|message| (&message.raw[..], &message.flags, message.internal_date_unix))
            .collect();
        self.append_messages(tag, &mailbox, &messages, out).await;
        super::Next::Continue
    }
}
