//! DNS blocklists (RFC 5782): the client's address, reversed, is looked up as an A record
//! under each configured zone; an answer in 127.0.0.0/24 means listed. What a listing does
//! is the zone's configured action: refuse the message, or add points.
//!
//! Answers in 127.255.255.0/24 are the list's error codes (Spamhaus's convention: the query
//! came through a public resolver, or too many queries), not listings; other answers outside
//! 127.0.0.0/24 are not listings either (a resolver that rewrites NXDOMAIN, a list of another
//! kind). Both only inform, like a lookup that fails: a blocklist's trouble never refuses a
//! message.
//!
//! The zones are looked up together; the pure half (`query_name`, `classify`) is tested on
//! its own.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use tme_core::config::{DnsblAction, DnsblZone};
use tokio::task::JoinSet;

use crate::verdict::{Finding, Refusal};

/// How long the lookups of all zones may take together; past it, a zone's lookup counts as
/// a temporary error.
const DNSBL_TIMEOUT: Duration = Duration::from_secs(15);

/// The domain name to query for `address` in `zone` (RFC 5782 §2.1 for IPv4, §2.4 for IPv6:
/// the 32 nibbles of the address, least significant first).
pub(crate) fn query_name(address: IpAddr, zone: &str) -> String {
    let mut name = String::new();
    match address.to_canonical() {
        IpAddr::V4(address) => {
            for octet in address.octets().iter().rev() {
                name.push_str(&format!("{octet}."));
            }
        }
        IpAddr::V6(address) => {
            for octet in address.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", octet & 0x0f, octet >> 4));
            }
        }
    }
    name.push_str(zone.trim_end_matches('.'));
    // Fully qualified, so no search domain of the system's resolver is appended.
    name.push('.');
    name
}

/// What a zone's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    NotListed,
    /// The return codes in 127.0.0.0/24 (which list, or why, depends on the zone).
    Listed(Vec<Ipv4Addr>),
    /// The list answered with an error code (127.255.255.x) instead of a listing.
    ListError(Ipv4Addr),
    /// Answers outside 127.0.0.0/24: not a listing we understand.
    Unexpected(Vec<Ipv4Addr>),
}

pub(crate) fn classify(answers: &[Ipv4Addr]) -> Listing {
    if let Some(code) = answers
        .iter()
        .find(|answer| answer.octets()[..3] == [127, 255, 255])
    {
        return Listing::ListError(*code);
    }
    let listed: Vec<Ipv4Addr> = answers
        .iter()
        .filter(|answer| answer.octets()[..3] == [127, 0, 0])
        .copied()
        .collect();
    if !listed.is_empty() {
        Listing::Listed(listed)
    } else if answers.is_empty() {
        Listing::NotListed
    } else {
        Listing::Unexpected(answers.to_vec())
    }
}

/// Looks the client up in every zone; one finding per zone that lists it or could not
/// answer, none for a zone that does not list it.
pub(crate) async fn check(
    authenticator: &MessageAuthenticator,
    zones: &[DnsblZone],
    client_ip: IpAddr,
) -> Vec<Finding> {
    let mut lookups = JoinSet::new();
    for (index, zone) in zones.iter().enumerate() {
        let authenticator = authenticator.clone();
        let name = query_name(client_ip, &zone.zone);
        lookups.spawn(async move {
            let answer =
                tokio::time::timeout(DNSBL_TIMEOUT, authenticator.ipv4_lookup_raw(&name)).await;
            (index, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|(index, _)| *index);
    let mut findings = Vec::new();
    for (index, answer) in answers {
        let Some(zone) = zones.get(index) else {
            continue;
        };
        let listing = match answer {
            Ok(Ok(entry)) => classify(&entry.entry),
            Ok(Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_)))) => {
                Listing::NotListed
            }
            Ok(Err(error)) => {
                tracing::info!(zone = %zone.zone, %error, "blocklist lookup failed");
                findings.push(Finding::new(format!("DNSBL_TEMPERROR_{}", zone.zone), 0.0));
                continue;
            }
            Err(_) => {
                tracing::info!(zone = %zone.zone, "blocklist lookup timed out");
                findings.push(Finding::new(format!("DNSBL_TEMPERROR_{}", zone.zone), 0.0));
                continue;
            }
        };
        match listing {
            Listing::NotListed => {}
            Listing::Listed(codes) => {
                tracing::info!(zone = %zone.zone, client = %client_ip, ?codes, action = ?zone.action, "client listed");
                let rule = format!("DNSBL_{}", zone.zone);
                findings.push(match zone.action {
                    DnsblAction::Reject => {
                        Finding::new(rule, 0.0).with_refusal(Refusal::Blocklisted {
                            zone: zone.zone.clone(),
                        })
                    }
                    DnsblAction::Score => Finding::new(rule, zone.points),
                });
            }
            Listing::ListError(code) => {
                tracing::warn!(zone = %zone.zone, %code, "blocklist answered with an error code, not a listing");
                findings.push(Finding::new(format!("DNSBL_ERROR_{}", zone.zone), 0.0));
            }
            Listing::Unexpected(answers) => {
                tracing::warn!(zone = %zone.zone, ?answers, "blocklist answered outside 127.0.0.0/24; ignored");
                findings.push(Finding::new(format!("DNSBL_ERROR_{}", zone.zone), 0.0));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_follow_rfc_5782() {
        // RFC 5782 §2.1 and §2.4 examples.
        assert_eq!(
            query_name("192.0.2.99".parse().expect("v4"), "bad.example.com"),
            "99.2.0.192.bad.example.com."
        );
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().expect("v6"),
                "ugly.example.com."
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
        // An IPv4 client seen on an IPv6 socket is looked up as IPv4.
        assert_eq!(
            query_name("::ffff:127.0.0.2".parse().expect("mapped"), "bl.test"),
            "2.0.0.127.bl.test."
        );
    }

    #[test]
    fn answers_are_classified() {
        let address = |text: &str| text.parse::<Ipv4Addr>().expect("address");
        assert_eq!(classify(&[]), Listing::NotListed);
        assert_eq!(
            classify(&[address("127.0.0.2"), address("127.0.0.4")]),
            Listing::Listed(vec![address("127.0.0.2"), address("127.0.0.4")])
        );
        assert_eq!(
            classify(&[address("127.0.0.2"), address("127.255.255.254")]),
            Listing::ListError(address("127.255.255.254"))
        );
        assert_eq!(
            classify(&[address("192.0.2.1")]),
            Listing::Unexpected(vec![address("192.0.2.1")])
        );
        assert_eq!(
            classify(&[address("127.0.1.2")]),
            Listing::Unexpected(vec![address("127.0.1.2")])
        );
    }
}
