//! Vacation auto-replies: whether a delivered message gets one, and the reply itself.
//!
//! `auto_reply_decision` is the rule book of RFC 3834 §2 and RFC 5230 §4.5/§5: no reply to
//! the null sender or to mailer daemons and list robots, none to what was itself sent
//! automatically (`Auto-Submitted`, `Precedence: bulk/list/junk`, `List-*` fields), none to
//! mail that does not name the account in its recipient fields, none to spam. The reply
//! goes to the envelope sender (RFC 3834 §4), never to `From` or `Reply-To`.
//! `build_auto_reply` writes the reply: `Auto-Submitted: auto-replied` (§5), `In-Reply-To`
//! and `References` from the original (§3.1.3, §3.1.4), a text/plain UTF-8 body.
//!
//! It does no I/O and keeps no state: whether this sender was answered lately is the
//! caller's (the store's) business.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderValue, MessageParser};

/// How many message ids of the original's `References` the reply keeps (the last ones).
pub const AUTO_REPLY_REFERENCES_MAX: usize = 20;
/// The most recipient addresses `auto_reply_addressees` hands out.
pub const AUTO_REPLY_ADDRESSEES_MAX: usize = 50;
/// The longest header block looked at, in octets; fields past it are not seen.
pub const AUTO_REPLY_HEADER_OCTETS_MAX: usize = 256 * 1024;
/// The longest envelope sender replied to, in octets (RFC 5321 §4.5.3.1.3: a path is at
/// most 256 octets).
pub const AUTO_REPLY_SENDER_OCTETS_MAX: usize = 256;

/// What the decision knows besides the message.
#[derive(Debug, Clone, Copy)]
pub struct AutoReplyContext<'a> {
    /// MAIL FROM of the delivered message; empty for the null sender (`<>`).
    pub envelope_sender: &'a str,
    /// The account's addresses: its own first; aliases may follow. Compared ignoring case.
    pub own_addresses: &'a [String],
}

/// Why a message gets no auto-reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAutoReply {
    /// The envelope sender is `<>` (a bounce or a report: RFC 3834 §2, RFC 5230 §4.5).
    NullSender,
    /// The envelope sender is not one address we could write to.
    UnusableSender,
    /// A mailer daemon or a list robot (RFC 5230 §4.5: `MAILER-DAEMON`, `LISTSERV`,
    /// `majordomo`, `owner-*`, `*-request`).
    RobotSender,
    /// The sender is the account itself (RFC 5230 §4.5).
    OwnAddress,
    /// `Auto-Submitted` other than `no` (RFC 3834 §2, §5).
    AutoSubmitted,
    /// `Precedence: bulk`, `list` or `junk` (RFC 3834 §2).
    Bulk,
    /// A mailing list's fields (`List-Id`, `List-Unsubscribe`, ..., RFC 2369, RFC 2919).
    MailingList,
    /// None of the account's addresses is in `To`, `Cc`, `Bcc`, `Resent-To` or
    /// `Resent-Cc` (RFC 5230 §4.5).
    NotAddressed,
    /// Our filter marked it as spam (`X-Spam-Status: Yes`).
    Spam,
}

/// The mailing-list fields of RFC 2369 and RFC 2919: any of them means a list sent it.
const LIST_FIELDS: &[&str] = &[
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// The recipient fields RFC 5230 §4.5 looks for the account's address in.
const RECIPIENT_FIELDS: &[&str] = &["To", "Cc", "Bcc", "Resent-To", "Resent-Cc"];

/// Whether `message` (as delivered, header fields first) gets an auto-reply, which then goes
/// to `context.envelope_sender`.
pub fn auto_reply_decision(
    message: &[u8],
    context: &AutoReplyContext<'_>,
) -> Result<(), NoAutoReply> {
    check_sender(context)?;
    let header = header_block(message);
    let Some(parsed) = MessageParser::new().parse_headers(header) else {
        return Err(NoAutoReply::NotAddressed);
    };
    let raw_values = |name: &'static str| {
        parsed
            .headers()
            .iter()
            .filter(move |field| field.name.as_str().eq_ignore_ascii_case(name))
            .map(|field| {
                let start = field.offset_start as usize;
                let end = field.offset_end as usize;
                String::from_utf8_lossy(header.get(start..end).unwrap_or_default())
                    .trim()
                    .to_ascii_lowercase()
            })
    };
    // RFC 3834 §5: "Auto-Submitted: no" is the only value of a message a person sent.
    if raw_values("Auto-Submitted").any(|value| first_word(&value) != "no") {
        return Err(NoAutoReply::AutoSubmitted);
    }
    if raw_values("Precedence").any(|value| matches!(value.as_str(), "bulk" | "list" | "junk")) {
        return Err(NoAutoReply::Bulk);
    }
    if LIST_FIELDS
        .iter()
        .any(|name| raw_values(name).next().is_some())
    {
        return Err(NoAutoReply::MailingList);
    }
    if raw_values("X-Spam-Status").any(|value| value.starts_with("yes")) {
        return Err(NoAutoReply::Spam);
    }
    if !recipients(&parsed).any(|address| is_own(address, context.own_addresses)) {
        return Err(NoAutoReply::NotAddressed);
    }
    Ok(())
}

/// The addresses in `message`'s recipient fields (`To`, `Cc`, `Bcc`, `Resent-To`,
/// `Resent-Cc`), at most `AUTO_REPLY_ADDRESSEES_MAX`, each once: the candidates a caller
/// checks against the directory to learn which of them are the account's (its aliases),
/// before it asks `auto_reply_decision`.
pub fn auto_reply_addressees(message: &[u8]) -> Vec<String> {
    let Some(parsed) = MessageParser::new().parse_headers(header_block(message)) else {
        return Vec::new();
    };
    let mut addressees: Vec<String> = Vec::new();
    for address in recipients(&parsed) {
        if addressees.len() == AUTO_REPLY_ADDRESSEES_MAX {
            break;
        }
        let address = address.trim();
        if !addressees
            .iter()
            .any(|known| known.eq_ignore_ascii_case(address))
        {
            addressees.push(address.to_owned());
        }
    }
    addressees
}

/// The addresses of the recipient fields RFC 5230 §4.5 looks in.
fn recipients<'a>(parsed: &'a mail_parser::Message<'_>) -> impl Iterator<Item = &'a str> {
    parsed
        .headers()
        .iter()
        .filter(|field| {
            RECIPIENT_FIELDS
                .iter()
                .any(|name| field.name.as_str().eq_ignore_ascii_case(name))
        })
        .filter_map(|field| field.value.as_address())
        .flat_map(|address| address.iter())
        .filter_map(|address| address.address())
}

/// The envelope sender's rules: present, one plain address, not a robot, not ourselves.
fn check_sender(context: &AutoReplyContext<'_>) -> Result<(), NoAutoReply> {
    let sender = context.envelope_sender;
    if sender.is_empty() {
        return Err(NoAutoReply::NullSender);
    }
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return Err(NoAutoReply::UnusableSender);
    };
    if local.is_empty()
        || domain.is_empty()
        || sender.len() > AUTO_REPLY_SENDER_OCTETS_MAX
        || sender
            .chars()
            .any(|character| character.is_control() || character.is_whitespace())
        || sender.contains(['<', '>', ',', ';'])
    {
        return Err(NoAutoReply::UnusableSender);
    }
    let local = local.to_ascii_lowercase();
    if matches!(local.as_str(), "mailer-daemon" | "listserv" | "majordomo")
        || local.starts_with("owner-")
        || local.ends_with("-request")
    {
        return Err(NoAutoReply::RobotSender);
    }
    if is_own(sender, context.own_addresses) {
        return Err(NoAutoReply::OwnAddress);
    }
    Ok(())
}

fn is_own(address: &str, own_addresses: &[String]) -> bool {
    own_addresses
        .iter()
        .any(|own| own.eq_ignore_ascii_case(address.trim()))
}

fn first_word(value: &str) -> &str {
    value
        .split(|character: char| character == ';' || character.is_whitespace())
        .next()
        .unwrap_or_default()
}

/// The header block of `message` (through its empty line), at most
/// `AUTO_REPLY_HEADER_OCTETS_MAX` octets.
fn header_block(message: &[u8]) -> &[u8] {
    let bounded = message
        .get(..AUTO_REPLY_HEADER_OCTETS_MAX)
        .unwrap_or(message);
    let end = bounded
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
        .or_else(|| {
            bounded
                .windows(2)
                .position(|window| window == b"\n\n")
                .map(|position| position + 2)
        })
        .unwrap_or(bounded.len());
    &bounded[..end]
}

/// The envelope sender a hop recorded in the message's first `Return-Path` field (RFC 5321
/// §4.4), without its angle brackets: empty for `<>`; None when the field is missing.
pub fn return_path(message: &[u8]) -> Option<String> {
    let header = header_block(message);
    let parsed = MessageParser::new().parse_headers(header)?;
    let field = parsed
        .headers()
        .iter()
        .find(|field| field.name.as_str().eq_ignore_ascii_case("Return-Path"))?;
    let value = header.get(field.offset_start as usize..field.offset_end as usize)?;
    let value = String::from_utf8_lossy(value);
    let value = value.trim();
    Some(
        value
            .strip_prefix('<')
            .and_then(|inner| inner.strip_suffix('>'))
            .unwrap_or(value)
            .to_owned(),
    )
}

/// What the reply says and who it is from.
#[derive(Debug, Clone, Copy)]
pub struct AutoReply<'a> {
    /// The account's address.
    pub from_address: &'a str,
    /// The account's display name, if it has one.
    pub from_name: Option<&'a str>,
    /// The envelope sender of the original: the reply's only recipient (RFC 3834 §4).
    pub to: &'a str,
    /// The user's subject; empty gives "Auto: " and the original's (RFC 3834 §3.1.5).
    pub subject: &'a str,
    /// The user's text.
    pub body: &'a str,
    pub date_unix: i64,
    /// The reply's Message-ID, without angle brackets.
    pub message_id: &'a str,
}

/// The reply to `original` as `reply` says, with CRLF line ends.
pub fn build_auto_reply(original: &[u8], reply: &AutoReply<'_>) -> Vec<u8> {
    let parsed = MessageParser::new().parse_headers(header_block(original));
    let original_subject = parsed
        .as_ref()
        .and_then(|message| message.subject())
        .map(str::trim)
        .unwrap_or_default();
    let original_id = parsed.as_ref().and_then(|message| message.message_id());
    let subject = if !reply.subject.trim().is_empty() {
        reply.subject.trim().to_owned()
    } else if original_subject.is_empty() {
        "Auto: (no subject)".to_owned()
    } else {
        format!("Auto: {original_subject}")
    };
    // RFC 3834 §3.1.4: the original's References (or its In-Reply-To when it has only one
    // id there), then its Message-ID.
    let mut references: Vec<String> = parsed
        .as_ref()
        .map(|message| {
            let listed = ids(message.references());
            if listed.is_empty() {
                let replied = ids(message.in_reply_to());
                if replied.len() == 1 {
                    replied
                } else {
                    Vec::new()
                }
            } else {
                listed
            }
        })
        .unwrap_or_default();
    if let Some(id) = original_id {
        references.push(id.to_owned());
    }
    let skip = references.len().saturating_sub(AUTO_REPLY_REFERENCES_MAX);
    let references: Vec<String> = references.into_iter().skip(skip).collect();

    let mut builder = MessageBuilder::new()
        .from(Address::new_address(
            reply.from_name.map(str::to_owned),
            reply.from_address.to_owned(),
        ))
        .to(Address::new_address(None::<String>, reply.to.to_owned()))
        .subject(Text::new(subject))
        .date(reply.date_unix)
        .message_id(reply.message_id.to_owned())
        .header("Auto-Submitted", Raw::new("auto-replied"));
    if let Some(id) = original_id {
        builder = builder.in_reply_to(MessageId::new(id.to_owned()));
    }
    if !references.is_empty() {
        builder = builder.references(MessageId::new_list(references.into_iter()));
    }
    // Text typed in a browser comes with CRLF or LF; the message has CRLF.
    let body = reply.body.replace("\r\n", "\n").replace('\n', "\r\n");
    builder = builder.body(MimePart::new(
        ContentType::new("text/plain").attribute("charset", "utf-8"),
        BodyPart::Text(Cow::Owned(body)),
    ));
    builder.write_to_vec().unwrap_or_default()
}

/// The message ids of an `In-Reply-To` or `References` value, without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(list) => list.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "alice@example.org";

    fn own() -> Vec<String> {
        vec![OWN.to_owned(), "al@example.org".to_owned()]
    }

    #[test]
    fn addressees_are_the_recipient_fields_each_once() {
        let message =
            b"From: bob@example.net\r\nTo: Alice <Alice@Example.org>, team@example.org\r\n\
            Cc: alice@example.org, \"Al\" <al@example.org>\r\nReply-To: other@example.net\r\n\
            Resent-To: desk@example.org\r\n\r\nbody: x@example.com\r\n";
        assert_eq!(
            auto_reply_addressees(message),
            [
                "Alice@Example.org",
                "team@example.org",
                "al@example.org",
                "desk@example.org"
            ]
        );
        let many = (0..200)
            .map(|index| format!("u{index}@example.org"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("To: {many}\r\n\r\nbody\r\n");
        assert_eq!(
            auto_reply_addressees(message.as_bytes()).len(),
            AUTO_REPLY_ADDRESSEES_MAX
        );
        assert!(auto_reply_addressees(b"").is_empty());
    }

    fn check(header: &str, envelope_sender: &str, expected: Result<(), NoAutoReply>) {
        let message = format!("{header}\r\nHello\r\n");
        let own = own();
        let context = AutoReplyContext {
            envelope_sender,
            own_addresses: &own,
        };
        assert_eq!(
            auto_reply_decision(message.as_bytes(), &context),
            expected,
            "{header:?} from {envelope_sender:?}"
        );
    }

    const PLAIN: &str = "From: Bob <bob@example.net>\r\nTo: Alice <alice@example.org>\r\nSubject: Hi\r\nMessage-ID: <1@example.net>\r\n";

    #[test]
    fn a_personal_message_gets_a_reply() {
        check(PLAIN, "bob@example.net", Ok(()));
        check(
            "From: bob@example.net\r\nCc: x@example.com, AL@Example.org\r\n",
            "bob@example.net",
            Ok(()),
        );
        check(
            "From: bob@example.net\r\nTo: list@example.com\r\nResent-To: alice@example.org\r\n",
            "bob@example.net",
            Ok(()),
        );
        check(
            "From: bob@example.net\r\nBcc: alice@example.org\r\n",
            "bob@example.net",
            Ok(()),
        );
        check(
            &format!("{PLAIN}Auto-Submitted: no\r\n"),
            "bob@example.net",
            Ok(()),
        );
        check(
            &format!("{PLAIN}X-Spam-Status: No, score=0.1\r\n"),
            "bob@example.net",
            Ok(()),
        );
    }

    #[test]
    fn senders_that_get_no_reply() {
        check(PLAIN, "", Err(NoAutoReply::NullSender));
        check(PLAIN, "bob", Err(NoAutoReply::UnusableSender));
        check(PLAIN, "bob@exa mple.net", Err(NoAutoReply::UnusableSender));
        check(
            PLAIN,
            "bob@example.net\r\nBcc: x@y",
            Err(NoAutoReply::UnusableSender),
        );
        for robot in [
            "MAILER-DAEMON@example.net",
            "mailer-daemon@example.net",
            "LISTSERV@example.net",
            "Majordomo@example.net",
            "owner-list@example.net",
            "list-request@example.net",
        ] {
            check(PLAIN, robot, Err(NoAutoReply::RobotSender));
        }
        check(PLAIN, "Alice@Example.org", Err(NoAutoReply::OwnAddress));
        check(PLAIN, "al@example.org", Err(NoAutoReply::OwnAddress));
    }

    #[test]
    fn automatic_messages_get_no_reply() {
        for field in [
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-generated",
            "auto-submitted: Auto-Notified; owner-email=x@y",
        ] {
            check(
                &format!("{PLAIN}{field}\r\n"),
                "bob@example.net",
                Err(NoAutoReply::AutoSubmitted),
            );
        }
        for value in ["bulk", "list", "junk", "Bulk"] {
            check(
                &format!("{PLAIN}Precedence: {value}\r\n"),
                "bob@example.net",
                Err(NoAutoReply::Bulk),
            );
        }
        check(
            &format!("{PLAIN}Precedence: first-class\r\n"),
            "bob@example.net",
            Ok(()),
        );
        for field in LIST_FIELDS {
            check(
                &format!("{PLAIN}{field}: <mailto:x@example.net>\r\n"),
                "bob@example.net",
                Err(NoAutoReply::MailingList),
            );
        }
        check(
            &format!("X-Spam-Status: Yes, score=9.0\r\n{PLAIN}"),
            "bob@example.net",
            Err(NoAutoReply::Spam),
        );
    }

    #[test]
    fn mail_not_addressed_to_the_account_gets_no_reply() {
        check(
            "From: bob@example.net\r\nTo: undisclosed-recipients:;\r\n",
            "bob@example.net",
            Err(NoAutoReply::NotAddressed),
        );
        check(
            "From: bob@example.net\r\nTo: alice@example.org.evil\r\n",
            "bob@example.net",
            Err(NoAutoReply::NotAddressed),
        );
        check("", "bob@example.net", Err(NoAutoReply::NotAddressed));
        // A header field in the body is not one of the message's.
        let own = own();
        let context = AutoReplyContext {
            envelope_sender: "bob@example.net",
            own_addresses: &own,
        };
        assert_eq!(
            auto_reply_decision(
                b"From: bob@example.net\r\n\r\nTo: alice@example.org\r\n",
                &context
            ),
            Err(NoAutoReply::NotAddressed)
        );
    }

    #[test]
    fn the_return_path_is_the_envelope_sender() {
        assert_eq!(
            return_path(b"Return-Path: <bob@example.net>\r\nDelivered-To: a@b\r\n\r\n"),
            Some("bob@example.net".to_owned())
        );
        assert_eq!(return_path(b"Return-Path: <>\r\n\r\n"), Some(String::new()));
        assert_eq!(
            return_path(b"From: x@y\r\n\r\nReturn-Path: <a@b>\r\n"),
            None
        );
    }

    #[test]
    fn garbage_never_panics() {
        let own = own();
        let context = AutoReplyContext {
            envelope_sender: "bob@example.net",
            own_addresses: &own,
        };
        for input in [
            &b""[..],
            b"\r\n",
            b":",
            b"\xff\xfe: \x00\r\n\r\n",
            b"To:\r\n",
        ] {
            let _ = auto_reply_decision(input, &context);
            let _ = build_auto_reply(input, &reply("", "x"));
            let _ = return_path(input);
        }
    }

    fn reply<'a>(subject: &'a str, body: &'a str) -> AutoReply<'a> {
        AutoReply {
            from_address: OWN,
            from_name: Some("Alice Liddell"),
            to: "bob@example.net",
            subject,
            body,
            date_unix: 1_700_000_000,
            message_id: "reply.1@mail.example.org",
        }
    }

    fn parsed(raw: &[u8]) -> mail_parser::Message<'_> {
        MessageParser::new().parse(raw).expect("the reply parses")
    }

    #[test]
    fn the_reply_answers_the_original() {
        let original = b"From: Bob <bob@example.net>\r\nReply-To: other@example.com\r\nTo: alice@example.org\r\nSubject: Lunch?\r\nMessage-ID: <2@example.net>\r\nReferences: <0@example.net> <1@example.net>\r\n\r\nHi\r\n";
        let raw = build_auto_reply(original, &reply("Away until Monday", "Back soon."));
        let text = String::from_utf8(raw.clone()).expect("ASCII");
        assert!(
            text.contains("\r\nAuto-Submitted: auto-replied\r\n"),
            "{text}"
        );
        assert!(text.contains("MIME-Version: 1.0\r\n"), "{text}");
        let message = parsed(&raw);
        assert_eq!(message.subject(), Some("Away until Monday"));
        assert_eq!(
            message
                .to()
                .and_then(|to| to.first())
                .and_then(|to| to.address()),
            Some("bob@example.net"),
            "to the envelope sender, not Reply-To"
        );
        let from = message.from().and_then(|from| from.first()).expect("From");
        assert_eq!(from.address(), Some(OWN));
        assert_eq!(from.name(), Some("Alice Liddell"));
        assert_eq!(message.in_reply_to().as_text(), Some("2@example.net"));
        assert_eq!(
            ids(message.references()),
            vec!["0@example.net", "1@example.net", "2@example.net"]
        );
        assert_eq!(message.message_id(), Some("reply.1@mail.example.org"));
        assert!(message.date().is_some());
        assert_eq!(message.body_text(0).as_deref(), Some("Back soon."));
    }

    #[test]
    fn the_default_subject_and_non_ascii_text() {
        let original = "Subject: =?UTF-8?Q?Caf=C3=A9?=\r\nMessage-ID: <3@example.net>\r\nIn-Reply-To: <2@example.net>\r\n\r\n";
        let raw = build_auto_reply(
            original.as_bytes(),
            &reply("", "Je suis en congé.\nÀ lundi."),
        );
        assert!(raw.is_ascii(), "non-ASCII is encoded");
        let message = parsed(&raw);
        assert_eq!(message.subject(), Some("Auto: Café"));
        assert_eq!(
            ids(message.references()),
            vec!["2@example.net", "3@example.net"]
        );
        assert_eq!(
            message.body_text(0).as_deref(),
            Some("Je suis en congé.\r\nÀ lundi.")
        );
        let none = build_auto_reply(b"From: x@y\r\n\r\n", &reply(" ", "x"));
        let message = parsed(&none);
        assert_eq!(message.subject(), Some("Auto: (no subject)"));
        assert_eq!(message.in_reply_to().as_text(), None);
    }

    #[test]
    fn references_are_bounded() {
        let many: String = (0..100).map(|index| format!("<{index}@x> ")).collect();
        let original = format!("Message-ID: <last@x>\r\nReferences: {many}\r\n\r\n");
        let raw = build_auto_reply(original.as_bytes(), &reply("Away", "x"));
        let references = ids(parsed(&raw).references());
        assert_eq!(references.len(), AUTO_REPLY_REFERENCES_MAX);
        assert_eq!(references.last().map(String::as_str), Some("last@x"));
    }
}
