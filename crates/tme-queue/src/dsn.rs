//! Delivery status notifications (RFC 3464): the message that tells a sender that some of
//! their recipients failed, are delayed, or (when asked, RFC 3461 NOTIFY=SUCCESS) were
//! delivered. A `multipart/report` with a human-readable part, the machine-readable
//! `message/delivery-status`, and the original message: whole when the sender asked for it
//! (RET=FULL), else its header (`text/rfc822-headers`). Pure: builds bytes, sends nothing.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tme_message::trace::header_safe;

/// The most bytes of the original message returned whole; past it only the header goes back.
pub const RETURNED_MESSAGE_OCTETS_MAX: usize = 10 * 1024 * 1024;

/// What the report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Failed,
    Delayed,
    Delivered,
}

impl ReportKind {
    fn action(self) -> &'static str {
        match self {
            ReportKind::Failed => "failed",
            ReportKind::Delayed => "delayed",
            ReportKind::Delivered => "delivered",
        }
    }
}

/// One recipient's lines in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRecipient {
    pub address: String,
    pub original_recipient: Option<String>,
    /// RFC 3463, like `5.1.1`.
    pub status: String,
    pub remote_host: Option<String>,
    /// The remote server's reply or our reason, one line.
    pub diagnostic: Option<String>,
    pub last_attempt_unix: Option<i64>,
}

/// Everything a report needs.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub kind: ReportKind,
    /// This node's name (Reporting-MTA, the From address's domain).
    pub reporting_host: &'a str,
    /// Who the report goes to: the original envelope sender.
    pub to: &'a str,
    pub envelope_id: Option<&'a str>,
    pub arrival_unix: i64,
    /// For delays: until when we keep trying.
    pub retry_until_unix: Option<i64>,
    pub recipients: &'a [ReportedRecipient],
    pub original: &'a [u8],
    pub return_full: bool,
    /// Makes the Message-ID and boundary unique (queue id, attempt).
    pub unique: &'a str,
    pub now_unix: i64,
}

pub(crate) fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|moment| moment.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned())
}

/// The original's header: everything up to the first empty line.
fn header_of(original: &[u8]) -> &[u8] {
    let mut position = 0;
    while position < original.len() {
        let end = original[position..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(original.len(), |offset| position + offset + 1);
        let line = &original[position..end];
        if line == b"\r\n" || line == b"\n" {
            return &original[..position];
        }
        position = end;
    }
    original
}

/// Builds the report as a complete message, CRLF line ends.
pub fn build(report: &Report<'_>) -> Vec<u8> {
    let boundary = format!(
        "=_tme_report_{}",
        header_safe(report.unique).replace(' ', "_")
    );
    let subject = match report.kind {
        ReportKind::Failed => "Undelivered Mail Returned to Sender",
        ReportKind::Delayed => "Delayed Mail (still being retried)",
        ReportKind::Delivered => "Successful Mail Delivery Report",
    };
    let mut out = String::new();
    out.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        report.reporting_host
    ));
    out.push_str(&format!("To: <{}>\r\n", header_safe(report.to)));
    out.push_str(&format!("Subject: {subject}\r\n"));
    out.push_str(&format!("Date: {}\r\n", date(report.now_unix)));
    out.push_str(&format!(
        "Message-ID: <dsn.{}@{}>\r\n",
        header_safe(report.unique).replace([' ', '<', '>', '@'], "."),
        report.reporting_host
    ));
    // RFC 3834 §5: an automatic message, never to be answered automatically.
    out.push_str("Auto-Submitted: auto-replied\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str("This is a delivery status notification in MIME format.\r\n\r\n");

    // The part for people.
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    out.push_str(&format!(
        "This is the mail system at {}.\r\n\r\n",
        report.reporting_host
    ));
    match report.kind {
        ReportKind::Failed => out.push_str(
            "Your message could not be delivered to one or more recipients. It is attached\r\n\
             below. The reason is given for each recipient.\r\n",
        ),
        ReportKind::Delayed => {
            out.push_str(
                "Your message has not been delivered yet to one or more recipients. It is still\r\n\
                 being retried; you need not send it again.\r\n",
            );
            if let Some(until) = report.retry_until_unix {
                out.push_str(&format!("It will be retried until {}.\r\n", date(until)));
            }
        }
        ReportKind::Delivered => {
            out.push_str("Your message was delivered to the recipients below.\r\n")
        }
    }
    out.push_str("\r\n");
    for recipient in report.recipients {
        out.push_str(&format!("<{}>", header_safe(&recipient.address)));
        if let Some(diagnostic) = &recipient.diagnostic {
            out.push_str(&format!(": {}", header_safe(diagnostic)));
        }
        out.push_str("\r\n");
    }
    out.push_str("\r\n");

    // The part for programs (RFC 3464 §2.2 and §2.3).
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: message/delivery-status\r\n\r\n");
    out.push_str(&format!(
        "Reporting-MTA: dns; {}\r\n",
        report.reporting_host
    ));
    if let Some(id) = report.envelope_id {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", header_safe(id)));
    }
    out.push_str(&format!("Arrival-Date: {}\r\n", date(report.arrival_unix)));
    for recipient in report.recipients {
        out.push_str("\r\n");
        out.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            header_safe(&recipient.address)
        ));
        if let Some(original) = &recipient.original_recipient {
            // Kept as the client gave it: `addr-type;xtext` (RFC 3461 §4.2).
            out.push_str(&format!(
                "Original-Recipient: {}\r\n",
                header_safe(original)
            ));
        }
        out.push_str(&format!("Action: {}\r\n", report.kind.action()));
        out.push_str(&format!("Status: {}\r\n", header_safe(&recipient.status)));
        if let Some(host) = &recipient.remote_host {
            out.push_str(&format!("Remote-MTA: dns; {}\r\n", header_safe(host)));
        }
        if let Some(diagnostic) = &recipient.diagnostic {
            out.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\n",
                header_safe(diagnostic)
            ));
        }
        if let Some(last) = recipient.last_attempt_unix {
            out.push_str(&format!("Last-Attempt-Date: {}\r\n", date(last)));
        }
        if let (ReportKind::Delayed, Some(until)) = (report.kind, report.retry_until_unix) {
            out.push_str(&format!("Will-Retry-Until: {}\r\n", date(until)));
        }
    }
    out.push_str("\r\n");

    // The original.
    out.push_str(&format!("--{boundary}\r\n"));
    let mut bytes = out.into_bytes();
    if report.return_full && report.original.len() <= RETURNED_MESSAGE_OCTETS_MAX {
        bytes.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        bytes.extend_from_slice(report.original);
    } else {
        bytes.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n\r\n");
        bytes.extend_from_slice(header_of(report.original));
    }
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn report<'a>(recipients: &'a [ReportedRecipient], original: &'a [u8]) -> Report<'a> {
        Report {
            kind: ReportKind::Failed,
            reporting_host: "mx.example.com",
            to: "sender@example.com",
            envelope_id: Some("abc"),
            arrival_unix: 1_800_000_000,
            retry_until_unix: None,
            recipients,
            original,
            return_full: false,
            unique: "q1-a2",
            now_unix: 1_800_000_100,
        }
    }

    #[test]
    fn a_failure_report_has_the_three_parts() {
        let recipients = [ReportedRecipient {
            address: "nobody@remote.example".to_owned(),
            original_recipient: Some("rfc822;nobody@remote.example".to_owned()),
            status: "5.1.1".to_owned(),
            remote_host: Some("mx.remote.example".to_owned()),
            diagnostic: Some("550 5.1.1 no such user\r\nInjected: x".to_owned()),
            last_attempt_unix: Some(1_800_000_050),
        }];
        let original = b"Subject: hello\r\nFrom: sender@example.com\r\n\r\nsecret body\r\n";
        let text = String::from_utf8(build(&report(&recipients, original))).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx.remote.example\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  Injected: x\r\n"));
        assert!(!text.contains("\r\nInjected:"), "a reply cannot add fields");
        assert!(text.contains("Original-Envelope-Id: abc\r\n"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"));
        assert!(
            !text.contains("secret body"),
            "only the header goes back by default"
        );
        assert!(text.ends_with("--=_tme_report_q1-a2--\r\n"));
        // Parses as MIME with the three parts.
        assert_eq!(text.matches("--=_tme_report_q1-a2\r\n").count(), 3);
    }

    #[test]
    fn full_return_and_delay_fields() {
        let recipients = [ReportedRecipient {
            address: "slow@remote.example".to_owned(),
            original_recipient: None,
            status: "4.4.1".to_owned(),
            remote_host: None,
            diagnostic: None,
            last_attempt_unix: None,
        }];
        let original = b"Subject: hi\r\n\r\nbody\r\n";
        let mut delayed = report(&recipients, original);
        delayed.kind = ReportKind::Delayed;
        delayed.return_full = true;
        delayed.retry_until_unix = Some(1_800_432_000);
        let text = String::from_utf8(build(&delayed)).unwrap();
        assert!(text.contains("Action: delayed\r\n"));
        assert!(text.contains("Will-Retry-Until: "));
        assert!(text.contains("Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n"));
    }
}
