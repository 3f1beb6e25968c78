//! What the checks found and what follows from it: the [`Verdict`] the SMTP server acts on.
//! Pure data and arithmetic, no I/O.

use std::fmt::Write;
use std::net::IpAddr;

/// The message and its envelope, as the checks see them.
#[derive(Debug, Clone, Copy)]
pub struct InboundMessage<'a> {
    pub client_ip: IpAddr,
    /// The name the client gave in HELO/EHLO.
    pub helo_name: &'a str,
    /// The reverse-path without brackets; "" for the null sender `<>`.
    pub mail_from: &'a str,
    /// The forward-paths without brackets, as the client gave them at RCPT.
    pub recipients: &'a [String],
    /// Names this transaction in our logs and `Received` field, and in rspamd's log.
    pub queue_id: &'a str,
    /// The session runs over TLS.
    pub tls: bool,
    /// The content exactly as received, before our trace headers.
    pub message: &'a [u8],
}

/// One check's contribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule, short and stable (`DMARC_FAIL`, `DNSBL_zen.spamhaus.org`), for logs,
    /// metrics and the score header. Visible ASCII without spaces or commas.
    pub rule: String,
    /// Spam points; negative for good signs, 0 for findings that only inform.
    pub points: f64,
    /// The `Authentication-Results` resinfo this check reports (`spf=pass
    /// smtp.mailfrom=example.com`), if it is an authentication method (RFC 8601 §2.7).
    pub authentication_result: Option<String>,
    /// Set when this finding alone refuses the message (DMARC `p=reject`, a blocklist whose
    /// policy is to reject).
    pub refusal: Option<Refusal>,
    /// Set when this finding alone files the message in Junk (DMARC `p=quarantine`).
    pub junk: bool,
}

impl Finding {
    /// A finding that only adds points (0 for one that only informs the log).
    pub fn new(rule: impl Into<String>, points: f64) -> Finding {
        Finding {
            rule: rule.into(),
            points,
            authentication_result: None,
            refusal: None,
            junk: false,
        }
    }

    pub fn with_authentication_result(mut self, resinfo: String) -> Finding {
        self.authentication_result = Some(resinfo);
        self
    }

    pub fn with_refusal(mut self, refusal: Refusal) -> Finding {
        self.refusal = Some(refusal);
        self
    }

    pub fn with_junk(mut self) -> Finding {
        self.junk = true;
        self
    }
}

/// Why a message is refused; `tme-smtp` turns this into a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// DMARC failed and the domain's policy is `p=reject` (RFC 7489 §6.3).
    DmarcReject { domain: String },
    /// The client's address is listed on a blocklist that refuses.
    Blocklisted { zone: String },
    /// The score reached the refusal threshold, or rspamd answered `reject`.
    Spam,
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Inbox,
    Junk,
    Refuse(Refusal),
}

/// The outcome of all checks on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Header fields to put above the message (after our trace headers), each ending in
    /// CRLF: `Authentication-Results`, `X-Spam-Score` and `X-Spam-Status`. Empty when no
    /// check ran.
    pub header_fields: String,
    pub disposition: Disposition,
    pub score: f64,
    pub findings: Vec<Finding>,
}

/// Where `X-Spam-Status` folds its list of rules (RFC 5322 §2.1.1: lines SHOULD stay
/// within 78 characters).
const HEADER_LINE_CHARACTERS_MAX: usize = 78;

impl Verdict {
    /// Combines findings: the first refusal wins; then a finding that files in Junk, or a
    /// score at or above `junk_score_min`, means Junk; otherwise the Inbox.
    pub fn from_findings(
        authserv_id: &str,
        findings: Vec<Finding>,
        junk_score_min: f64,
    ) -> Verdict {
        let score: f64 = findings.iter().map(|finding| finding.points).sum();
        let disposition =
            if let Some(refusal) = findings.iter().find_map(|finding| finding.refusal.clone()) {
                Disposition::Refuse(refusal)
            } else if findings.iter().any(|finding| finding.junk) || score >= junk_score_min {
                Disposition::Junk
            } else {
                Disposition::Inbox
            };
        let header_fields = if findings.is_empty() {
            String::new()
        } else {
            let mut fields = authentication_results(authserv_id, &findings);
            fields.push_str(&spam_fields(
                &findings,
                score,
                junk_score_min,
                disposition == Disposition::Junk,
            ));
            fields
        };
        Verdict {
            header_fields,
            disposition,
            score,
            findings,
        }
    }

    /// Every rule with its points, for the log: `SPF_FAIL=3 DMARC_FAIL=2 DKIM_NONE=0`.
    pub fn rules(&self) -> String {
        let mut rules = String::new();
        for finding in &self.findings {
            if !rules.is_empty() {
                rules.push(' ');
            }
            let _ = write!(rules, "{}={}", finding.rule, finding.points);
        }
        rules
    }
}

/// RFC 8601 §2.2: `Authentication-Results: authserv-id; resinfo; resinfo`, one resinfo per
/// line; "none" when no method ran.
fn authentication_results(authserv_id: &str, findings: &[Finding]) -> String {
    let results: Vec<&str> = findings
        .iter()
        .filter_map(|finding| finding.authentication_result.as_deref())
        .collect();
    if results.is_empty() {
        return format!("Authentication-Results: {authserv_id}; none\r\n");
    }
    let mut field = format!("Authentication-Results: {authserv_id}");
    for result in results {
        let _ = write!(field, ";\r\n\t{result}");
    }
    field.push_str("\r\n");
    field
}

/// `X-Spam-Score: 6.5` and `X-Spam-Status: Yes, score=6.5 required=5.0 tests=A,B` (the
/// SpamAssassin shape that mail clients and sieve scripts already know); `tests` lists the
/// rules that added points.
fn spam_fields(findings: &[Finding], score: f64, junk_score_min: f64, junk: bool) -> String {
    let mut fields = format!(
        "X-Spam-Score: {score:.1}\r\nX-Spam-Status: {}, score={score:.1} required={junk_score_min:.1} tests=",
        if junk { "Yes" } else { "No" },
    );
    let mut line_characters = fields.len() - fields.rfind('\n').map_or(0, |index| index + 1);
    let mut first = true;
    for finding in findings.iter().filter(|finding| finding.points != 0.0) {
        let rule: String = finding
            .rule
            .chars()
            .filter(|character| character.is_ascii_graphic() && *character != ',')
            .collect();
        if !first {
            fields.push(',');
            line_characters += 1;
            if line_characters + rule.len() > HEADER_LINE_CHARACTERS_MAX {
                fields.push_str("\r\n\t");
                line_characters = 1;
            }
        }
        fields.push_str(&rule);
        line_characters += rule.len();
        first = false;
    }
    if first {
        fields.push_str("none");
    }
    fields.push_str("\r\n");
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(findings: Vec<Finding>, expected: Expect) {
        let verdict = Verdict::from_findings("mx.test", findings, 5.0);
        expected.assert_eq(&format!(
            "{:?} {}\n{}",
            verdict.disposition,
            verdict.score,
            verdict.header_fields.replace("\r\n", "\n")
        ));
    }

    #[test]
    fn no_finding_adds_no_field() {
        check(
            vec![],
            expect![[r#"
            Inbox -0
        "#]],
        );
    }

    #[test]
    fn points_add_up_to_junk() {
        check(
            vec![
                Finding::new("SPF_FAIL", 3.0)
                    .with_authentication_result("spf=fail smtp.mailfrom=a.test".to_owned()),
                Finding::new("DKIM_NONE", 0.0).with_authentication_result("dkim=none".to_owned()),
                Finding::new("DMARC_FAIL", 2.0)
                    .with_authentication_result("dmarc=fail header.from=a.test".to_owned()),
            ],
            expect![[r#"
                Junk 5
                Authentication-Results: mx.test;
                	spf=fail smtp.mailfrom=a.test;
                	dkim=none;
                	dmarc=fail header.from=a.test
                X-Spam-Score: 5.0
                X-Spam-Status: Yes, score=5.0 required=5.0 tests=SPF_FAIL,DMARC_FAIL
            "#]],
        );
    }

    #[test]
    fn a_refusal_wins_over_junk_and_a_junk_finding_over_the_score() {
        check(
            vec![
                Finding::new("DMARC_QUARANTINE", 0.0).with_junk(),
                Finding::new("DNSBL_bl.test", 0.0).with_refusal(Refusal::Blocklisted {
                    zone: "bl.test".to_owned(),
                }),
            ],
            expect![[r#"
                Refuse(Blocklisted { zone: "bl.test" }) 0
                Authentication-Results: mx.test; none
                X-Spam-Score: 0.0
                X-Spam-Status: No, score=0.0 required=5.0 tests=none
            "#]],
        );
        check(
            vec![Finding::new("DMARC_QUARANTINE", 1.0).with_junk()],
            expect![[r#"
                Junk 1
                Authentication-Results: mx.test; none
                X-Spam-Score: 1.0
                X-Spam-Status: Yes, score=1.0 required=5.0 tests=DMARC_QUARANTINE
            "#]],
        );
    }

    #[test]
    fn long_rule_lists_fold_and_odd_rule_names_are_cleaned() {
        let findings = (0..8)
            .map(|index| Finding::new(format!("SOME_LONGER_RULE_{index}"), 0.5))
            .chain([Finding::new("BAD rule,\r\nname", -0.5)])
            .collect();
        check(
            findings,
            expect![[r#"
                Inbox 3.5
                Authentication-Results: mx.test; none
                X-Spam-Score: 3.5
                X-Spam-Status: No, score=3.5 required=5.0 tests=SOME_LONGER_RULE_0,
                	SOME_LONGER_RULE_1,SOME_LONGER_RULE_2,SOME_LONGER_RULE_3,SOME_LONGER_RULE_4,
                	SOME_LONGER_RULE_5,SOME_LONGER_RULE_6,SOME_LONGER_RULE_7,BADrulename
            "#]],
        );
    }
}
