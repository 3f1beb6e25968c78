//! The trace headers prepended to each stored copy: `Return-Path`, `Delivered-To` and
//! `Received` (RFC 5321 §4.4), with the protocol keywords of RFC 3848 and RFC 6531 §3.7.3;
//! and the `Received` field of the webmail's hop (`web_received_field`).
//!
//! Pure text building: the caller passes the clock reading and the transaction id. Everything
//! a client chose (its HELO name) is reduced to harmless characters first, so a header can
//! never be split or injected.

use std::net::IpAddr;

/// How the message came in, for the `with` clause of `Received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferMode {
    /// EHLO (rather than HELO) opened the session.
    pub extended: bool,
    /// The session runs over TLS (STARTTLS).
    pub tls: bool,
    /// The transaction used SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// The client authenticated (submission, later).
    pub authenticated: bool,
}

impl TransferMode {
    /// RFC 3848 §2 and RFC 6531 §3.7.3 protocol types.
    pub fn protocol(self) -> &'static str {
        match (self.extended, self.smtputf8, self.tls, self.authenticated) {
            (false, _, _, _) => "SMTP",
            (true, true, false, false) => "UTF8SMTP",
            (true, true, true, false) => "UTF8SMTPS",
            (true, true, false, true) => "UTF8SMTPA",
            (true, true, true, true) => "UTF8SMTPSA",
            (true, false, false, false) => "ESMTP",
            (true, false, true, false) => "ESMTPS",
            (true, false, false, true) => "ESMTPA",
            (true, false, true, true) => "ESMTPSA",
        }
    }
}

/// What the `Received` header says about one transaction.
#[derive(Debug, Clone)]
pub struct TraceFields<'a> {
    pub helo_name: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    pub mode: TransferMode,
    pub transaction_id: &'a str,
    /// RFC 5322 §3.3 date-time.
    pub date: &'a str,
}

/// The fields a mailbox copy starts with: where bounces go and whose copy it is, then the
/// `Received` of the hop that stored it (for `recipient`).
pub fn trace_headers(fields: &TraceFields<'_>, sender: &str, recipient: &str) -> Vec<u8> {
    let mut headers = delivery_fields(sender, recipient);
    headers.extend_from_slice(&received_field(fields, Some(recipient)));
    headers
}

/// `Return-Path` (RFC 5321 §4.4: added at final delivery) and `Delivered-To`.
pub fn delivery_fields(sender: &str, recipient: &str) -> Vec<u8> {
    format!(
        "Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n",
        sender = header_safe(sender),
        recipient = header_safe(recipient),
    )
    .into_bytes()
}

/// One `Received` field (RFC 5321 §4.4). The `for` clause names one recipient; with
/// several it is left out, so that no recipient learns of the others.
pub fn received_field(fields: &TraceFields<'_>, recipient: Option<&str>) -> Vec<u8> {
    let address_literal = match fields.client_ip {
        IpAddr::V4(address) => format!("[{address}]"),
        IpAddr::V6(address) => format!("[IPv6:{address}]"),
    };
    let for_clause = recipient
        .map(|recipient| format!("\r\n\tfor <{}>", header_safe(recipient)))
        .unwrap_or_default();
    format!(
        "Received: from {helo} ({address_literal})\r\n\
         \tby {hostname} (tme) with {protocol} id {id}{for_clause}; {date}\r\n",
        helo = helo_safe(fields.helo_name),
        hostname = header_safe(fields.hostname),
        protocol = fields.mode.protocol(),
        id = fields.transaction_id,
        date = fields.date,
    )
    .into_bytes()
}

/// The `Received` field of a message written in the webmail: the hop from the browser to
/// this host, over HTTP. The client's address is left out, as webmail services leave it
/// out (the log line of the send, under the same id, has it); `with HTTP` is the keyword
/// webmail services use, and RFC 5322 §3.6.7's `received-token`s allow a field without
/// the SMTP `from` clause.
pub fn web_received_field(hostname: &str, transaction_id: &str, date: &str) -> Vec<u8> {
    format!(
        "Received: by {hostname} (tme) with HTTP id {id}; {date}\r\n",
        hostname = header_safe(hostname),
        id = header_safe(transaction_id),
        date = header_safe(date),
    )
    .into_bytes()
}

/// A HELO name as it may appear in the `from` clause: letters, digits and `.-:[]_`, anything
/// else replaced, so that a comment or a header cannot be forged through it.
fn helo_safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|character| {
            if character.is_alphanumeric() || ".-:[]_".contains(character) {
                character
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// Text for a header value: control characters (CR and LF above all) replaced by spaces,
/// so that no value can end a field early or add one.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn trace_headers_have_the_rfc_5321_form() {
        let fields = TraceFields {
            helo_name: "client.example (evil)\r\nX-Injected: yes",
            client_ip: "192.0.2.7".parse().expect("ip"),
            hostname: "mx.test",
            mode: TransferMode {
                extended: true,
                tls: true,
                smtputf8: false,
                authenticated: false,
            },
            transaction_id: "ABCDEF",
            date: "Sat, 28 Nov 2026 11:00:00 +0000",
        };
        let headers = trace_headers(&fields, "sender@example.org", "user@example.com");
        expect![[r#"
            Return-Path: <sender@example.org>
            Delivered-To: user@example.com
            Received: from client.example__evil___X-Injected:_yes ([192.0.2.7])
            	by mx.test (tme) with ESMTPS id ABCDEF
            	for <user@example.com>; Sat, 28 Nov 2026 11:00:00 +0000
        "#]]
        .assert_eq(&String::from_utf8_lossy(&headers).replace("\r\n", "\n"));
    }

    #[test]
    fn the_webmail_hop_names_this_host_and_no_client() {
        let field = web_received_field(
            "mail.test\r\nX-Injected: yes",
            "0123ABCD",
            "Sat, 28 Nov 2026 11:00:00 +0000",
        );
        expect![[r#"
            Received: by mail.test  X-Injected: yes (tme) with HTTP id 0123ABCD; Sat, 28 Nov 2026 11:00:00 +0000
        "#]]
        .assert_eq(&String::from_utf8_lossy(&field).replace("\r\n", "\n"));
    }

    #[test]
    fn protocol_keywords_follow_rfc_3848_and_6531() {
        let mode = |extended, tls, smtputf8| TransferMode {
            extended,
            tls,
            smtputf8,
            authenticated: false,
        };
        assert_eq!(mode(false, false, false).protocol(), "SMTP");
        assert_eq!(mode(true, false, false).protocol(), "ESMTP");
        assert_eq!(mode(true, true, false).protocol(), "ESMTPS");
        assert_eq!(mode(true, false, true).protocol(), "UTF8SMTP");
        assert_eq!(mode(true, true, true).protocol(), "UTF8SMTPS");
    }
}
