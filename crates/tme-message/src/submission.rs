//! What a message submission agent may change in a message before it relays it (RFC 6409
//! §8), and the author addresses it must check.
//!
//! This module owns the header fix-ups of submission: a missing `Date` (§8.2) or
//! `Message-ID` (§8.3) is added, a missing `From` is made from the envelope sender (as
//! Postfix and most MSAs do), and every `Bcc` field is removed so that no recipient learns
//! of the blind copies (RFC 5322 §3.6.3 leaves how to the implementation; removing the field
//! is its first way). It also lists the addresses of every `From` and `Sender` field, not
//! only the first, so that a second `From` cannot slip a forged author past the check.
//!
//! It must not decide whether an address may be used (the directory knows, the caller
//! asks), and must not touch any byte outside the fields it adds or removes: the body and
//! the other fields go out exactly as the client wrote them, so a client's own DKIM
//! signature or PGP signature survives.

use crate::decoded_fields::decoded_addresses;
use crate::header_index::{HeaderBlock, field_name, field_value};
use crate::limits::LIST_FIELD_BYTES_MAX;

/// What the caller knows that the fix-ups need.
#[derive(Debug, Clone, Copy)]
pub struct SubmissionContext<'a> {
    /// The envelope sender (MAIL FROM), empty for `<>`.
    pub envelope_sender: &'a str,
    /// The `Date` value to add, RFC 5322 §3.3 (e.g. `Sat, 28 Nov 2026 19:08:08 +0000`).
    pub date: &'a str,
    /// The `Message-ID` to add, with its angle brackets (`<unique@host>`).
    pub message_id: &'a str,
}

/// The message as it will be relayed, and what the author check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedMessage {
    /// The fixed-up message: added fields first, then the client's bytes minus `Bcc`.
    pub message: Vec<u8>,
    /// The address of every mailbox in every `From` field (after a missing one was added).
    pub from_addresses: Vec<String>,
    /// The address of every mailbox in every `Sender` field.
    pub sender_addresses: Vec<String>,
    /// A `From` field had a group or a name with no address in it: not a usable author.
    pub from_unusable: bool,
    /// Names of the fields added, for the log.
    pub fields_added: Vec<&'static str>,
    pub bcc_fields_removed: usize,
}

/// Applies the submission fix-ups to `raw`.
pub fn prepare_submission(raw: &[u8], context: &SubmissionContext<'_>) -> SubmittedMessage {
    let block = HeaderBlock::scan(raw, 0, raw.len());
    let header = raw.get(..block.body_start).unwrap_or(raw);
    // The line ending the client uses, so that added fields match it (a message with bare
    // LF line ends stays consistent; the queue and IMAP treat both).
    let line_end: &[u8] = if header.windows(2).any(|pair| pair == b"\r\n") || header.is_empty() {
        b"\r\n"
    } else {
        b"\n"
    };
    let named = |name: &'static str| {
        block
            .fields
            .iter()
            .filter(move |span| field_name(raw, span).eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut from_addresses = Vec::new();
    let mut from_unusable = false;
    for span in named("From") {
        let value = field_value(raw, span);
        let addresses = decoded_addresses(value.get(..LIST_FIELD_BYTES_MAX).unwrap_or(value));
        if addresses.is_empty() || addresses.iter().any(|address| address.email.is_empty()) {
            from_unusable = true;
        }
        from_addresses.extend(addresses.into_iter().map(|address| address.email));
    }
    let sender_addresses: Vec<String> = named("Sender")
        .flat_map(|span| {
            let value = field_value(raw, span);
            decoded_addresses(value.get(..LIST_FIELD_BYTES_MAX).unwrap_or(value))
        })
        .map(|address| address.email)
        .collect();
    let has_from = named("From").next().is_some();
    let mut added = Vec::new();
    let mut fields_added = Vec::new();
    let mut add = |name: &'static str, value: &str| {
        added.extend_from_slice(name.as_bytes());
        added.extend_from_slice(b": ");
        added.extend_from_slice(value.as_bytes());
        added.extend_from_slice(line_end);
        fields_added.push(name);
    };
    if !has_from && !context.envelope_sender.is_empty() {
        add("From", &format!("<{}>", context.envelope_sender));
        from_addresses.push(context.envelope_sender.to_owned());
    }
    if named("Date").next().is_none() {
        add("Date", context.date);
    }
    if named("Message-ID").next().is_none() {
        add("Message-ID", context.message_id);
    }
    let bcc: Vec<(usize, usize)> = named("Bcc").map(|span| (span.start, span.end)).collect();
    let mut message = Vec::with_capacity(raw.len() + added.len());
    message.extend_from_slice(&added);
    let mut position = 0;
    for (start, end) in &bcc {
        message.extend_from_slice(raw.get(position..*start).unwrap_or_default());
        position = *end;
    }
    message.extend_from_slice(raw.get(position..).unwrap_or_default());
    SubmittedMessage {
        message,
        from_addresses,
        sender_addresses,
        from_unusable,
        fields_added,
        bcc_fields_removed: bcc.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: SubmissionContext<'static> = SubmissionContext {
        envelope_sender: "ann@example.com",
        date: "Sat, 28 Nov 2026 19:08:08 +0000",
        message_id: "<id@mail.example.com>",
    };

    fn check(raw: &str, expected: &str) -> SubmittedMessage {
        let prepared = prepare_submission(raw.as_bytes(), &CONTEXT);
        assert_eq!(String::from_utf8_lossy(&prepared.message), expected);
        prepared
    }

    #[test]
    fn complete_message_is_kept_byte_for_byte() {
        let raw =
            "From: Ann <ann@example.com>\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nBcc: body\r\n";
        let prepared = check(raw, raw);
        assert_eq!(prepared.from_addresses, vec!["ann@example.com"]);
        assert!(prepared.fields_added.is_empty());
        assert!(!prepared.from_unusable);
    }

    #[test]
    fn missing_fields_are_added_and_bcc_removed() {
        let prepared = check(
            "To: bob@example.org\r\nBcc: secret@example.net,\r\n  other@example.net\r\nSubject: hi\r\nbcc: two@example.net\r\n\r\nbody\r\n",
            "From: <ann@example.com>\r\nDate: Sat, 28 Nov 2026 19:08:08 +0000\r\nMessage-ID: <id@mail.example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
        );
        assert_eq!(prepared.bcc_fields_removed, 2);
        assert_eq!(prepared.fields_added, vec!["From", "Date", "Message-ID"]);
        assert_eq!(prepared.from_addresses, vec!["ann@example.com"]);
    }

    #[test]
    fn bare_line_feeds_get_bare_line_feeds() {
        check(
            "From: ann@example.com\nDate: x\n\nbody\n",
            "Message-ID: <id@mail.example.com>\nFrom: ann@example.com\nDate: x\n\nbody\n",
        );
    }

    #[test]
    fn every_from_and_sender_is_listed() {
        let prepared = prepare_submission(
            b"From: ann@example.com, Eve <eve@evil.test>\r\nFrom: mallory@evil.test\r\nSender: sec@example.com\r\n\r\n",
            &CONTEXT,
        );
        assert_eq!(
            prepared.from_addresses,
            vec!["ann@example.com", "eve@evil.test", "mallory@evil.test"]
        );
        assert_eq!(prepared.sender_addresses, vec!["sec@example.com"]);
    }

    #[test]
    fn a_from_without_address_is_unusable() {
        let prepared = prepare_submission(b"From: Undisclosed:;\r\n\r\n", &CONTEXT);
        assert!(prepared.from_unusable);
        let prepared = prepare_submission(b"From: \r\n\r\n", &CONTEXT);
        assert!(prepared.from_unusable);
    }

    #[test]
    fn null_sender_without_from_adds_no_from() {
        let context = SubmissionContext {
            envelope_sender: "",
            ..CONTEXT
        };
        let prepared = prepare_submission(b"Subject: x\r\n\r\n", &context);
        assert!(prepared.from_addresses.is_empty());
        assert!(!prepared.fields_added.contains(&"From"));
    }

    #[test]
    fn message_without_header_or_body() {
        let prepared = check(
            "",
            "From: <ann@example.com>\r\nDate: Sat, 28 Nov 2026 19:08:08 +0000\r\nMessage-ID: <id@mail.example.com>\r\n",
        );
        assert_eq!(prepared.from_addresses, vec!["ann@example.com"]);
    }
}
