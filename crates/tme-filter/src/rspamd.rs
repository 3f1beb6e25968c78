//! The hand-off to rspamd: one HTTP/1.1 `POST /checkv2` to rspamd's normal worker per message,
//! with the envelope in rspamd's protocol header fields, and rspamd's JSON answer turned into
//! one [`Finding`].
//!
//! rspamd's `action` decides where the message goes: `reject` refuses it (or files it in Junk,
//! `filter.rspamd_reject_action`); `add header`, `rewrite subject`, `quarantine` and `discard`
//! file it in Junk (we never drop a message silently, and do not rewrite its bytes);
//! `soft reject` and `greylist` are accepted normally, because we do not greylist (a deferral
//! would only delay the mail of legitimate senders that retry, and spam that retries gets the
//! same answer on its second try); `no action` changes nothing. rspamd's score becomes the
//! finding's points, so it counts towards `filter.junk_score_min` with the other checks.
//!
//! Bounded and fail-open: the whole exchange has `filter.rspamd_timeout_ms`, the answer at most
//! [`RESPONSE_OCTETS_MAX`]. When rspamd cannot be reached, times out or answers anything but
//! its JSON, the finding is `RSPAMD_UNAVAILABLE` (0 points), a warning is logged, and the
//! message is accepted as if rspamd were not configured: a broken filter must not stop mail.
//!
//! What this module must not do: speak to anything but the configured rspamd, keep a
//! connection or any state between messages, or change the message.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tme_core::config::{HttpUrl, RspamdRejectAction};
use tokio::net::TcpStream;

use crate::verdict::{Finding, InboundMessage, Refusal};

/// The rule of the finding rspamd's answer makes.
pub const RULE: &str = "RSPAMD";
/// The rule of the finding when rspamd could not be asked.
pub const RULE_UNAVAILABLE: &str = "RSPAMD_UNAVAILABLE";
/// The largest answer read. rspamd's answer is a few kilobytes (a symbol list with options);
/// anything past this is not a normal worker's answer.
pub const RESPONSE_OCTETS_MAX: usize = 1024 * 1024;
/// How many symbols the log line names, the heaviest first.
const SYMBOLS_LOGGED_MAX: usize = 8;
/// rspamd's check command with the JSON answer (rspamd ≥ 1.6).
const CHECK_PATH: &str = "/checkv2";

/// A client of one rspamd normal worker, built from `[filter]`.
#[derive(Debug, Clone)]
pub struct RspamdClient {
    url: HttpUrl,
    timeout: Duration,
    reject_action: RspamdRejectAction,
}

/// Why rspamd could not judge a message. Each is rspamd's side (down, slow, broken) and may
/// pass; none is the sender's fault, so none refuses the message.
#[derive(Debug, thiserror::Error)]
enum RspamdError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("the answer is larger than {RESPONSE_OCTETS_MAX} octets")]
    ResponseTooLarge,
    #[error("answered HTTP {status}: {error}")]
    Status { status: u16, error: String },
    #[error("the answer is not rspamd's JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The part of rspamd's `/checkv2` answer we use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct RspamdReply {
    action: String,
    score: f64,
    required_score: f64,
    #[serde(default)]
    symbols: BTreeMap<String, RspamdSymbol>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct RspamdSymbol {
    #[serde(default)]
    score: f64,
}

/// An error answer (`{"error": "...", "error_domain": "..."}`).
#[derive(Debug, Deserialize)]
struct RspamdErrorReply {
    error: String,
}

impl RspamdClient {
    pub fn new(url: HttpUrl, timeout: Duration, reject_action: RspamdRejectAction) -> Self {
        RspamdClient {
            url,
            timeout,
            reject_action,
        }
    }

    /// Asks rspamd about one message. Never fails: when rspamd cannot answer, the finding
    /// says so and counts for nothing.
    pub async fn check(&self, message: &InboundMessage<'_>) -> Finding {
        let outcome = match tokio::time::timeout(self.timeout, self.exchange(message)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(RspamdError::Timeout(self.timeout.as_millis())),
        };
        match outcome {
            Ok(reply) => {
                tracing::info!(
                    queue_id = message.queue_id,
                    action = %reply.action,
                    score = reply.score,
                    required_score = reply.required_score,
                    symbols = %symbols_heaviest(&reply),
                    "rspamd checked the message"
                );
                finding_for_reply(&reply, self.reject_action)
            }
            Err(error) => {
                tracing::warn!(
                    queue_id = message.queue_id,
                    rspamd = %self.url,
                    %error,
                    "rspamd unavailable: the message is accepted without its check"
                );
                Finding {
                    rule: RULE_UNAVAILABLE.to_owned(),
                    points: 0.0,
                    authentication_result: None,
                    refusal: None,
                    junk: false,
                }
            }
        }
    }

    /// One connection, one request, the answer read within its bound. No connection is
    /// kept: rspamd closes it after answering anyway (`Connection: close`).
    async fn exchange(&self, message: &InboundMessage<'_>) -> Result<RspamdReply, RspamdError> {
        let mut request = Request::post(format!("{}{CHECK_PATH}", self.url.path))
            .header(HOST, self.url.authority());
        for (name, value) in protocol_header_fields(message) {
            // A value that is not a valid header field (a control character in a HELO name)
            // is left out rather than failing the check.
            match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(value) => request = request.header(name, value),
                Err(_) => tracing::debug!(name, "rspamd header field left out: invalid value"),
            }
        }
        // hyper wants a body it owns: one copy of the message while rspamd reads it.
        let request = request.body(Full::new(Bytes::copy_from_slice(message.message)))?;

        let stream = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(RspamdError::Connect)?;
        // Header fields and body leave in as few segments as possible.
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let response = async move {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), RESPONSE_OCTETS_MAX)
                .collect()
                .await
                .map_err(|error| match error.downcast::<hyper::Error>() {
                    Ok(error) => RspamdError::Http(*error),
                    Err(_) => RspamdError::ResponseTooLarge,
                })?
                .to_bytes();
            Ok::<_, RspamdError>((status, body))
        };
        tokio::pin!(connection, response);
        // The connection future moves the bytes; the answer is complete when `response` is.
        let (status, body) = tokio::select! {
            outcome = &mut response => outcome?,
            outcome = &mut connection => {
                outcome?;
                response.await?
            }
        };
        parse_answer(status.as_u16(), &body)
    }
}

/// rspamd's protocol header fields for one message (rspamd's "protocol" document): the
/// client's address and HELO name, the envelope sender (`<>` for the null sender, which rspamd
/// reads as a bounce) and each recipient, and our queue id for its log. `User` is absent:
/// inbound mail is not from an authenticated user. `Hostname` is absent because we do not
/// verify the client's reverse DNS name here: rspamd then counts the name as unknown, as it
/// would for Postfix's `unknown`.
fn protocol_header_fields<'a>(message: &InboundMessage<'a>) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("IP", message.client_ip.to_string()),
        ("Helo", message.helo_name.to_owned()),
        (
            "From",
            if message.mail_from.is_empty() {
                "<>".to_owned()
            } else {
                message.mail_from.to_owned()
            },
        ),
    ];
    fields.extend(
        message
            .recipients
            .iter()
            .map(|recipient| ("Rcpt", recipient.clone())),
    );
    fields.push(("Queue-Id", message.queue_id.to_owned()));
    fields
}

/// Reads rspamd's answer: its JSON on 200, its error text otherwise.
fn parse_answer(status: u16, body: &[u8]) -> Result<RspamdReply, RspamdError> {
    if status != 200 {
        let error = serde_json::from_slice::<RspamdErrorReply>(body)
            .map(|reply| reply.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        return Err(RspamdError::Status { status, error });
    }
    Ok(serde_json::from_slice(body)?)
}

/// The finding for rspamd's answer: its score as points, its action as refusal or Junk.
fn finding_for_reply(reply: &RspamdReply, reject_action: RspamdRejectAction) -> Finding {
    let (refusal, junk) = match reply.action.as_str() {
        "reject" => match reject_action {
            RspamdRejectAction::Refuse => (Some(Refusal::Spam), false),
            RspamdRejectAction::Junk => (None, true),
        },
        "add header" | "rewrite subject" | "quarantine" | "discard" => (None, true),
        // We do not greylist or defer on rspamd's word: see the module comment.
        "soft reject" | "greylist" | "no action" => (None, false),
        other => {
            tracing::warn!(action = other, "rspamd answered an unknown action; ignored");
            (None, false)
        }
    };
    Finding {
        rule: RULE.to_owned(),
        points: if reply.score.is_finite() {
            reply.score
        } else {
            0.0
        },
        authentication_result: None,
        refusal,
        junk,
    }
}

/// The heaviest symbols (by absolute score, then name), as `NAME(score)` for the log line.
fn symbols_heaviest(reply: &RspamdReply) -> String {
    let mut symbols: Vec<(&String, f64)> = reply
        .symbols
        .iter()
        .map(|(name, symbol)| (name, symbol.score))
        .collect();
    symbols.sort_by(|(name_a, score_a), (name_b, score_b)| {
        score_b
            .abs()
            .total_cmp(&score_a.abs())
            .then_with(|| name_a.cmp(name_b))
    });
    symbols
        .iter()
        .take(SYMBOLS_LOGGED_MAX)
        .map(|(name, score)| format!("{name}({score})"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Disposition, Verdict};
    use expect_test::{Expect, expect};
    use std::net::IpAddr;

    /// Answers of rspamd 3.4 (Debian bookworm) to `tests/fixtures/{clean,gtube}.eml`, recorded
    /// by `tests/rspamd.rs` (`record_reply_fixtures`).
    const REPLY_CLEAN: &str = include_str!("../tests/fixtures/rspamd-reply-clean.json");
    const REPLY_GTUBE: &str = include_str!("../tests/fixtures/rspamd-reply-gtube.json");

    fn check(
        answer_status: u16,
        answer: &str,
        reject_action: RspamdRejectAction,
        expected: Expect,
    ) {
        let actual = match parse_answer(answer_status, answer.as_bytes()) {
            Ok(reply) => {
                let finding = finding_for_reply(&reply, reject_action);
                format!(
                    "action={:?} score={} required={} points={} refusal={:?} junk={}\nsymbols: {}",
                    reply.action,
                    reply.score,
                    reply.required_score,
                    finding.points,
                    finding.refusal,
                    finding.junk,
                    symbols_heaviest(&reply)
                )
            }
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    /// A legitimate message from a client without reverse DNS, checked offline (so every DNS
    /// rule failed): rspamd says `greylist`, which we accept without deferring; its score
    /// still counts, so with `junk_score_min` at its default (5) the message goes to Junk, and
    /// at rspamd's own `add_header` score (6) to the Inbox.
    #[test]
    fn recorded_greylist_reply_is_accepted_and_its_score_counts() {
        let reply = parse_answer(200, REPLY_CLEAN.as_bytes()).expect("parses");
        let finding = finding_for_reply(&reply, RspamdRejectAction::Refuse);
        let disposition = |junk_score_min: f64| {
            Verdict::from_findings("mx.test", vec![finding.clone()], junk_score_min).disposition
        };
        assert_eq!(disposition(5.0), Disposition::Junk);
        assert_eq!(disposition(6.0), Disposition::Inbox);
        check(
            200,
            REPLY_CLEAN,
            RspamdRejectAction::Refuse,
            expect![[r#"
                action="greylist" score=5.8 required=15 points=5.8 refusal=None junk=false
                symbols: HFILTER_HOSTNAME_UNKNOWN(2.5) DATE_IN_PAST(1) HFILTER_HELO_IP_A(1) RDNS_NONE(1) HFILTER_HELO_NORES_A_OR_MX(0.3) MIME_GOOD(-0.1) ONCE_RECEIVED(0.1) FROM_EQ_ENVFROM(0)"#]],
        );
    }

    #[test]
    fn recorded_gtube_reply_refuses_or_files_in_junk() {
        check(
            200,
            REPLY_GTUBE,
            RspamdRejectAction::Refuse,
            expect![[r#"
                action="reject" score=15 required=15 points=15 refusal=Some(Spam) junk=false
                symbols: GTUBE(0)"#]],
        );
        check(
            200,
            REPLY_GTUBE,
            RspamdRejectAction::Junk,
            expect![[r#"
                action="reject" score=15 required=15 points=15 refusal=None junk=true
                symbols: GTUBE(0)"#]],
        );
    }

    #[test]
    fn each_action_maps() {
        let reply = |action: &str, score: f64| {
            format!(
                r#"{{"action":"{action}","score":{score},"required_score":15.0,"symbols":{{}}}}"#
            )
        };
        let mut actual = String::new();
        for (action, score) in [
            ("no action", 0.5),
            ("greylist", 4.5),
            ("soft reject", 0.0),
            ("add header", 7.0),
            ("rewrite subject", 9.0),
            ("quarantine", 10.0),
            ("discard", 11.0),
            ("custom", 1.0),
        ] {
            let parsed = parse_answer(200, reply(action, score).as_bytes()).expect("parses");
            let finding = finding_for_reply(&parsed, RspamdRejectAction::Refuse);
            actual.push_str(&format!(
                "{action}: points={} refusal={:?} junk={}\n",
                finding.points, finding.refusal, finding.junk
            ));
        }
        expect![[r#"
            no action: points=0.5 refusal=None junk=false
            greylist: points=4.5 refusal=None junk=false
            soft reject: points=0 refusal=None junk=false
            add header: points=7 refusal=None junk=true
            rewrite subject: points=9 refusal=None junk=true
            quarantine: points=10 refusal=None junk=true
            discard: points=11 refusal=None junk=true
            custom: points=1 refusal=None junk=false
        "#]]
        .assert_eq(&actual);
    }

    #[test]
    fn errors_and_garbage_are_unavailable() {
        check(
            500,
            r#"{"error":"invalid command","error_domain":"protocol-error"}"#,
            RspamdRejectAction::Refuse,
            expect!["error: answered HTTP 500: invalid command"],
        );
        check(
            502,
            "<html>bad gateway</html>",
            RspamdRejectAction::Refuse,
            expect!["error: answered HTTP 502: <html>bad gateway</html>"],
        );
        check(
            200,
            r#"{"score": 1.0}"#,
            RspamdRejectAction::Refuse,
            expect![
                "error: the answer is not rspamd's JSON: missing field `action` at line 1 column 14"
            ],
        );
        check(
            200,
            "",
            RspamdRejectAction::Refuse,
            expect![
                "error: the answer is not rspamd's JSON: EOF while parsing a value at line 1 column 0"
            ],
        );
    }

    #[test]
    fn header_fields_carry_the_envelope() {
        let recipients = vec![
            "user@example.com".to_owned(),
            "other@example.com".to_owned(),
        ];
        let message = InboundMessage {
            client_ip: IpAddr::from([192, 0, 2, 25]),
            helo_name: "client.test",
            mail_from: "",
            recipients: &recipients,
            queue_id: "00000000DEADBEEF",
            tls: false,
            message: b"Subject: x\r\n\r\nbody\r\n",
        };
        let actual: String = protocol_header_fields(&message)
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect();
        expect![[r#"
            IP: 192.0.2.25
            Helo: client.test
            From: <>
            Rcpt: user@example.com
            Rcpt: other@example.com
            Queue-Id: 00000000DEADBEEF
        "#]]
        .assert_eq(&actual);
    }
}
