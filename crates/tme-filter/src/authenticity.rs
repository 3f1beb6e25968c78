//! Authenticity: SPF for the HELO and MAIL FROM identities (RFC 7208), every DKIM signature
//! (RFC 6376), the ARC chain (RFC 8617) and DMARC with alignment (RFC 7489, as its successor
//! RFC 9989 refines it), all verified by `mail-auth` through the node's resolver. Each result
//! becomes a [`Finding`] carrying the `Authentication-Results` resinfo that mail-auth's own
//! builder writes (RFC 8601 §2.7), the points of `points`, and for DMARC the policy's
//! consequence: `p=reject` refuses, `p=quarantine` files in Junk.
//!
//! DNS trouble never refuses a message: a lookup that fails or times out is a `temperror`
//! (RFC 7208 §2.6.6, RFC 7489 §6.6.3), worth no points, and DMARC cannot fail on it.
//!
//! What it must not do: refuse on SPF or DKIM alone (only the sender domain's DMARC policy
//! may), or change the message.

use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use mail_auth::common::auth_results::AsAuthResult as _;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult,
    MessageAuthenticator, SpfOutput, SpfResult,
};

use crate::points;
use crate::verdict::{Finding, InboundMessage, Refusal};

/// How long all authenticity checks of one message may take together. SPF alone may need
/// ten lookups and more (RFC 7208 §4.6.4, which asks for a limit of at least 20 seconds);
/// past this, whatever is unfinished is a temporary error and the message is judged
/// without it.
const AUTHENTICITY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many DKIM signatures get their own result in `Authentication-Results`; all of them
/// still count for DMARC. Real mail carries one to three; more only bloats the header.
const DKIM_SIGNATURES_REPORTED_MAX: usize = 10;

/// Runs every authenticity check on one message. Never fails and never waits past
/// [`AUTHENTICITY_TIMEOUT`].
pub(crate) async fn check(
    authenticator: &MessageAuthenticator,
    authserv_id: &str,
    message: &InboundMessage<'_>,
) -> Vec<Finding> {
    // `parse` finds no header at all only in content that is not a message; it still gets
    // SPF, and "none" for the rest.
    let parsed = AuthenticatedMessage::parse(message.message);
    let checks = async {
        let mut findings = Vec::new();
        let spf_for_dmarc = spf(authenticator, authserv_id, message, &mut findings).await;
        let Some(parsed) = &parsed else {
            findings.push(dkim_none());
            findings.push(
                Finding::new("DMARC_NONE", 0.0).with_authentication_result("dmarc=none".to_owned()),
            );
            return findings;
        };
        let (dkim_outputs, arc_output) = tokio::join!(
            authenticator.verify_dkim(parsed),
            authenticator.verify_arc(parsed)
        );
        findings.extend(dkim_findings(&dkim_outputs));
        // RFC 8617 §5.2: a chain that does not validate is `fail`; mail-auth reports a body
        // that no longer matches the latest ARC-Message-Signature as `neutral`.
        let arc_output = match arc_output.result() {
            DkimResult::Neutral(
                error @ mail_auth::Error::Arc(mail_auth::arc::ArcError::FailedBodyHashMatch),
            ) => {
                let error = error.clone();
                arc_output.with_result(DkimResult::Fail(error))
            }
            _ => arc_output,
        };
        let arc_rule = match arc_output.result() {
            DkimResult::Pass => ("ARC_PASS", 0.0),
            DkimResult::Fail(_) => ("ARC_FAIL", points::ARC_FAIL),
            DkimResult::Neutral(_) => ("ARC_NEUTRAL", 0.0),
            DkimResult::PermError(_) => ("ARC_PERMERROR", 0.0),
            DkimResult::TempError(_) => ("ARC_TEMPERROR", 0.0),
            DkimResult::None => ("ARC_NONE", 0.0),
        };
        findings.push(
            Finding::new(arc_rule.0, arc_rule.1).with_authentication_result(resinfo(
                authserv_id,
                AuthenticationResults::new(authserv_id)
                    .with_arc_result(&arc_output, message.client_ip),
            )),
        );
        let mail_from_domain = identity_domain(message);
        let dmarc_output = authenticator
            .verify_dmarc(DmarcParameters::new(
                parsed,
                &dkim_outputs,
                mail_from_domain,
                &spf_for_dmarc,
            ))
            .await;
        findings.push(dmarc_finding(authserv_id, &dmarc_output));
        if dkim_outputs.is_empty()
            && matches!(spf_for_dmarc.result(), SpfResult::None | SpfResult::Neutral)
        {
            findings.push(Finding::new(
                "AUTHENTICATION_NONE",
                points::AUTHENTICATION_NONE,
            ));
        }
        findings
    };
    let mut findings = match tokio::time::timeout(AUTHENTICITY_TIMEOUT, checks).await {
        Ok(findings) => findings,
        Err(_) => {
            tracing::warn!(
                timeout_ms = AUTHENTICITY_TIMEOUT.as_millis() as u64,
                "authenticity checks timed out; judged as temporary errors"
            );
            timed_out(authserv_id, message, parsed.as_ref())
        }
    };
    if let Some(parsed) = &parsed
        && results_claiming(parsed, authserv_id) > 0
    {
        findings.push(Finding::new(
            "AUTHENTICATION_RESULTS_FORGED",
            points::AUTHENTICATION_RESULTS_FORGED,
        ));
    }
    findings
}

/// SPF for the HELO identity and, unless the sender is null, the MAIL FROM identity; adds
/// their findings and returns the result DMARC uses. RFC 7208 §2.4: for the null sender the
/// MAIL FROM identity is `postmaster@` the HELO name, which is the HELO check itself.
async fn spf(
    authenticator: &MessageAuthenticator,
    authserv_id: &str,
    message: &InboundMessage<'_>,
    findings: &mut Vec<Finding>,
) -> SpfOutput {
    let helo_check = authenticator.verify_spf(SpfParameters::verify_ehlo(
        message.client_ip,
        message.helo_name,
        authserv_id,
    ));
    // The HELO identity's finding: under `prefix`, counting for DMARC or not.
    let helo_finding = |prefix: &str, identity_for_dmarc: bool, helo: &SpfOutput| {
        spf_finding(
            prefix,
            identity_for_dmarc,
            resinfo(
                authserv_id,
                AuthenticationResults::new(authserv_id).with_spf_ehlo_result(
                    helo,
                    message.client_ip,
                    message.helo_name,
                ),
            ),
            helo.result(),
        )
    };
    if message.mail_from.is_empty() {
        let helo = helo_check.await;
        findings.push(helo_finding("SPF", true, &helo));
        return helo;
    }
    let mail_from_check = authenticator.verify_spf(SpfParameters::verify_mail_from(
        message.client_ip,
        message.helo_name,
        authserv_id,
        message.mail_from,
    ));
    let (helo, mail_from) = tokio::join!(helo_check, mail_from_check);
    findings.push(helo_finding("SPF_HELO", false, &helo));
    findings.push(spf_finding(
        "SPF",
        true,
        resinfo(
            authserv_id,
            AuthenticationResults::new(authserv_id).with_spf_mailfrom_result(
                &mail_from,
                message.client_ip,
                message.mail_from,
                message.helo_name,
            ),
        ),
        mail_from.result(),
    ));
    mail_from
}

/// `identity_for_dmarc` marks the identity whose result counts in full (MAIL FROM, or HELO
/// for the null sender); the separate HELO check only adds points when it fails.
fn spf_finding(
    prefix: &str,
    identity_for_dmarc: bool,
    resinfo: String,
    result: SpfResult,
) -> Finding {
    let (name, points) = match result {
        SpfResult::Pass => ("PASS", 0.0),
        SpfResult::Fail if identity_for_dmarc => ("FAIL", points::SPF_FAIL),
        SpfResult::Fail => ("FAIL", points::SPF_HELO_FAIL),
        SpfResult::SoftFail if identity_for_dmarc => ("SOFTFAIL", points::SPF_SOFTFAIL),
        SpfResult::SoftFail => ("SOFTFAIL", 0.0),
        SpfResult::Neutral => ("NEUTRAL", 0.0),
        SpfResult::TempError => ("TEMPERROR", 0.0),
        SpfResult::PermError if identity_for_dmarc => ("PERMERROR", points::SPF_PERMERROR),
        SpfResult::PermError => ("PERMERROR", 0.0),
        SpfResult::None => ("NONE", 0.0),
    };
    Finding::new(format!("{prefix}_{name}"), points).with_authentication_result(resinfo)
}

/// One finding per DKIM signature (RFC 6376 §6.1: each is verified on its own; up to
/// [`DKIM_SIGNATURES_REPORTED_MAX`]); the points
/// of a failure count once, and only when no signature passes.
fn dkim_findings(outputs: &[DkimOutput<'_>]) -> Vec<Finding> {
    if outputs.is_empty() {
        return vec![dkim_none()];
    }
    let any_pass = outputs
        .iter()
        .any(|output| output.result() == &DkimResult::Pass);
    let mut failure_counted = any_pass;
    let mut findings = Vec::new();
    if outputs.len() > DKIM_SIGNATURES_REPORTED_MAX {
        tracing::info!(
            signatures = outputs.len(),
            reported = DKIM_SIGNATURES_REPORTED_MAX,
            "more DKIM signatures than are reported"
        );
    }
    for output in outputs.iter().take(DKIM_SIGNATURES_REPORTED_MAX) {
        // RFC 6376 §6.1.3: a body hash that does not match is a PERMFAIL, which RFC 8601
        // §2.7.1 reports as `fail`; mail-auth calls it `neutral`.
        let reported = match (output.result(), output.signature()) {
            (
                DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)),
                Some(signature),
            ) => DkimOutput::fail(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch))
                .with_signature(signature),
            _ => output.clone(),
        };
        let (rule, points) = match reported.result() {
            DkimResult::Pass => ("DKIM_PASS", 0.0),
            DkimResult::Fail(_) if !failure_counted => {
                failure_counted = true;
                ("DKIM_FAIL", points::DKIM_FAIL)
            }
            DkimResult::Fail(_) => ("DKIM_FAIL", 0.0),
            DkimResult::Neutral(_) => ("DKIM_NEUTRAL", 0.0),
            DkimResult::PermError(_) => ("DKIM_PERMERROR", 0.0),
            DkimResult::TempError(_) => ("DKIM_TEMPERROR", 0.0),
            DkimResult::None => ("DKIM_NONE", 0.0),
        };
        findings
            .push(Finding::new(rule, points).with_authentication_result(dkim_resinfo(&reported)));
    }
    findings
}

/// `dkim=pass header.d=example.com header.i=@example.com header.s=sel header.b=AbCdEfGh`.
/// mail-auth's builder writes `header.i` instead of `header.d` when the signature has an
/// `i=`; DMARC readers look for `header.d` (RFC 8601 §2.7.1), so it is always written here,
/// with `header.b` (RFC 6008: the first 8 characters, to tell signatures apart).
fn dkim_resinfo(output: &DkimOutput<'_>) -> String {
    let mut resinfo = "dkim=".to_owned();
    output.result().as_auth_result(&mut resinfo);
    if let Some(signature) = output.signature() {
        for (property, value) in [
            ("d", &signature.d),
            ("i", &signature.i),
            ("s", &signature.s),
        ] {
            let value = pvalue(value);
            if !value.is_empty() {
                resinfo.push_str(&format!(" header.{property}={value}"));
            }
        }
        let signature_start = signature.b.get(..6).unwrap_or(&signature.b);
        if !signature_start.is_empty() {
            resinfo.push_str(" header.b=");
            resinfo.push_str(&BASE64_STANDARD.encode(signature_start));
        }
    }
    resinfo
}

/// A value as an RFC 8601 §2.2 pvalue without quoting: what the signer wrote, less the
/// characters that would end or break the value.
fn pvalue(value: &str) -> String {
    value
        .chars()
        .filter(|character| {
            !character.is_control()
                && !character.is_whitespace()
                && !matches!(character, '(' | ')' | ';' | '=' | '"' | '\\')
        })
        .collect()
}

fn dkim_none() -> Finding {
    Finding::new("DKIM_NONE", 0.0).with_authentication_result("dkim=none".to_owned())
}

/// DMARC's result under the policy that applies (`p`, `sp` for subdomains, `np` for
/// non-existent ones, lowered one step by `t=y`, as mail-auth selects it). The `pct` tag of
/// RFC 7489 §6.3 is gone in RFC 9989 and not applied: a failing message always gets its
/// policy.
fn dmarc_finding(authserv_id: &str, output: &DmarcOutput) -> Finding {
    let resinfo = resinfo(
        authserv_id,
        AuthenticationResults::new(authserv_id).with_dmarc_result(output),
    );
    let finding = match output.result() {
        DmarcResult::Pass => Finding::new("DMARC_PASS", 0.0),
        DmarcResult::Fail(_) => match output.policy() {
            // RFC 7489 §6.3 / §10.3: reject during the SMTP transaction.
            Policy::Reject => {
                Finding::new("DMARC_REJECT", 0.0).with_refusal(Refusal::DmarcReject {
                    domain: output.domain().to_owned(),
                })
            }
            Policy::Quarantine => {
                Finding::new("DMARC_QUARANTINE", points::DMARC_QUARANTINE).with_junk()
            }
            Policy::None | Policy::Unspecified => Finding::new("DMARC_FAIL", points::DMARC_FAIL),
        },
        DmarcResult::TempError(_) => Finding::new("DMARC_TEMPERROR", 0.0),
        DmarcResult::PermError(_) => Finding::new("DMARC_PERMERROR", 0.0),
        DmarcResult::None => Finding::new("DMARC_NONE", 0.0),
    };
    finding.with_authentication_result(resinfo)
}

/// The findings when the checks ran out of time: every method a temporary error.
fn timed_out(
    authserv_id: &str,
    message: &InboundMessage<'_>,
    parsed: Option<&AuthenticatedMessage<'_>>,
) -> Vec<Finding> {
    let dns_timeout = || {
        mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
            "authenticity checks timed out".to_owned(),
        ))
    };
    let spf = SpfOutput::new(identity_domain(message).to_owned()).with_result(SpfResult::TempError);
    let spf_results = AuthenticationResults::new(authserv_id);
    let spf_results = if message.mail_from.is_empty() {
        spf_results.with_spf_ehlo_result(&spf, message.client_ip, message.helo_name)
    } else {
        spf_results.with_spf_mailfrom_result(
            &spf,
            message.client_ip,
            message.mail_from,
            message.helo_name,
        )
    };
    let author_domain = parsed
        .and_then(|parsed| parsed.from().rsplit_once('@'))
        .map(|(_, domain)| domain)
        .unwrap_or_default();
    let dmarc = DmarcOutput::new(author_domain.to_owned())
        .with_spf_result(DmarcResult::TempError(dns_timeout()));
    vec![
        Finding::new("SPF_TEMPERROR", 0.0)
            .with_authentication_result(resinfo(authserv_id, spf_results)),
        Finding::new("DKIM_TEMPERROR", 0.0).with_authentication_result(resinfo(
            authserv_id,
            AuthenticationResults::new(authserv_id)
                .with_dkim_result(&DkimOutput::temp_err(dns_timeout()), ""),
        )),
        Finding::new("DMARC_TEMPERROR", 0.0).with_authentication_result(resinfo(
            authserv_id,
            AuthenticationResults::new(authserv_id).with_dmarc_result(&dmarc),
        )),
    ]
}

/// The domain of the MAIL FROM identity: the reverse-path's, or the HELO name's for the
/// null sender (RFC 7208 §2.4; RFC 7489 §4.1 uses the same for alignment).
fn identity_domain<'a>(message: &InboundMessage<'a>) -> &'a str {
    message
        .mail_from
        .rsplit_once('@')
        .map_or(message.helo_name, |(_, domain)| domain)
}

/// One resinfo out of mail-auth's builder, which writes `authserv-id;CRLF TAB resinfo`.
fn resinfo(authserv_id: &str, results: AuthenticationResults<'_>) -> String {
    let text = results.to_string();
    text.strip_prefix(authserv_id)
        .unwrap_or(&text)
        .trim_start_matches(';')
        .trim_start()
        .to_owned()
}

/// How many `Authentication-Results` fields of the message as received claim our
/// authserv-id. RFC 8601 §5 asks a border MTA to delete them; we keep the bytes as sent (see
/// ARCHITECTURE.md) and count them as a bad sign instead.
fn results_claiming(parsed: &AuthenticatedMessage<'_>, authserv_id: &str) -> usize {
    parsed
        .raw_parsed_headers()
        .iter()
        .filter(|(name, value)| {
            name.eq_ignore_ascii_case(b"Authentication-Results")
                && authserv_id_of(value)
                    .is_some_and(|claimed| claimed.eq_ignore_ascii_case(authserv_id.as_bytes()))
        })
        .count()
}

/// The authserv-id at the start of an `Authentication-Results` value, past folding white
/// space and comments (RFC 8601 §2.2: `[CFWS] authserv-id`).
fn authserv_id_of(value: &[u8]) -> Option<&[u8]> {
    let mut rest = value;
    loop {
        rest = rest.trim_ascii_start();
        match rest.first() {
            Some(b'(') => {
                // Comments nest (RFC 5322 §3.2.2).
                let mut depth = 0usize;
                let mut end = None;
                for (index, octet) in rest.iter().enumerate() {
                    match octet {
                        b'(' => depth += 1,
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                end = Some(index + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = rest.get(end?..)?;
            }
            Some(_) => break,
            None => return None,
        }
    }
    let end = rest
        .iter()
        .position(|octet| octet.is_ascii_whitespace() || matches!(octet, b';' | b'('))
        .unwrap_or(rest.len());
    let id = rest.get(..end)?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_id_is_read_past_comments_and_folding() {
        assert_eq!(authserv_id_of(b" mx.test; spf=pass"), Some(&b"mx.test"[..]));
        assert_eq!(
            authserv_id_of(b"\r\n\t(a (nested) comment) mx.test 1; none"),
            Some(&b"mx.test"[..])
        );
        assert_eq!(authserv_id_of(b" mx.test"), Some(&b"mx.test"[..]));
        assert_eq!(authserv_id_of(b" (unclosed"), None);
        assert_eq!(authserv_id_of(b"  "), None);
    }

    #[test]
    fn forged_results_are_counted_by_authserv_id() {
        let message = b"Authentication-Results: MX.test; dkim=pass\r\n\
            Authentication-Results: other.test; dkim=pass\r\n\
            From: a@b.test\r\n\r\nbody\r\n";
        let parsed = AuthenticatedMessage::parse(message).expect("parses");
        assert_eq!(results_claiming(&parsed, "mx.test"), 1);
        assert_eq!(results_claiming(&parsed, "mail.test"), 0);
    }

    #[test]
    fn dkim_results_always_name_the_domain_and_report_body_hash_failures_as_fail() {
        let signature = mail_auth::dkim::Signature {
            d: "example.com".to_owned(),
            s: "sel".to_owned(),
            i: "@example.com".to_owned(),
            b: vec![0xfb, 0xff, 0x00, 0x01, 0x02, 0x03, 0x04],
            ..Default::default()
        };
        let passing = DkimOutput::pass().with_signature(&signature);
        let body_changed =
            DkimOutput::neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch))
                .with_signature(&signature);
        let findings = dkim_findings(&[passing, body_changed.clone(), body_changed]);
        let reported: Vec<(&str, f64, &str)> = findings
            .iter()
            .map(|finding| {
                (
                    finding.rule.as_str(),
                    finding.points,
                    finding.authentication_result.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            reported,
            [
                (
                    "DKIM_PASS",
                    0.0,
                    "dkim=pass header.d=example.com header.i=@example.com header.s=sel header.b=+/8AAQID"
                ),
                (
                    "DKIM_FAIL",
                    0.0,
                    "dkim=fail (body hash did not verify) header.d=example.com header.i=@example.com header.s=sel header.b=+/8AAQID"
                ),
                (
                    "DKIM_FAIL",
                    0.0,
                    "dkim=fail (body hash did not verify) header.d=example.com header.i=@example.com header.s=sel header.b=+/8AAQID"
                ),
            ],
            "a failure costs nothing when another signature passes"
        );
        let failing_alone = dkim_findings(&[DkimOutput::neutral(mail_auth::Error::Dkim(
            DkimError::FailedBodyHashMatch,
        ))
        .with_signature(&signature)]);
        assert_eq!(failing_alone[0].points, points::DKIM_FAIL);
        assert_eq!(
            dkim_findings(&[])[0].authentication_result.as_deref(),
            Some("dkim=none")
        );
    }

    #[test]
    fn identity_domain_falls_back_to_helo_for_the_null_sender() {
        let message = |mail_from| InboundMessage {
            client_ip: "127.0.0.1".parse().expect("address"),
            helo_name: "client.test",
            mail_from,
            recipients: &[],
            queue_id: "",
            tls: false,
            message: b"",
        };
        assert_eq!(identity_domain(&message("a@b.test")), "b.test");
        assert_eq!(identity_domain(&message("")), "client.test");
    }
}
