//! Custom records: what an operator adds to a domain's zone beside the generated records.
//!
//! This module owns their syntax (presentation format, parsed by hickory-proto), the types
//! allowed (A, AAAA, CNAME, TXT, MX, SRV, CAA: no SOA or NS, so no delegation) and the rules
//! that keep them from breaking the generated records. It does no I/O.

use hickory_proto::rr::rdata::{CNAME, MX, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use tme_store::{DnsRecord, NewDnsRecord};

use crate::zone::{
    CUSTOM_RECORD_TYPES, ZoneSettings, generated_records, presentation, record_text,
};

/// The TTL of a custom record when none is given.
pub const CUSTOM_TTL_SECONDS_DEFAULT: u32 = 3600;
/// The longest TTL accepted (RFC 2181 §8 allows 2^31 - 1; a week is plenty for a zone we
/// change from the CLI).
pub const CUSTOM_TTL_SECONDS_MAX: u32 = 604_800;

/// Why a custom record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomRecordError {
    #[error("{0:?} is not a record name (labels of letters, digits, - and _; @ for the domain)")]
    Name(String),
    #[error("type {0} cannot be added (allowed: A, AAAA, CNAME, TXT, MX, SRV, CAA)")]
    Type(String),
    #[error("{0}")]
    Value(String),
    #[error("TTL {0} is over {CUSTOM_TTL_SECONDS_MAX} seconds")]
    Ttl(u32),
    #[error("{0}")]
    Conflict(String),
}

/// The owner name of a relative `name` (`@` for the domain itself) under `origin`.
fn owner(origin: &Name, name: &str) -> Result<Name, CustomRecordError> {
    if name == "@" {
        return Ok(origin.clone());
    }
    let valid = !name.is_empty()
        && !name.ends_with('.')
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|octet| octet.is_ascii_alphanumeric() || octet == b'-' || octet == b'_')
        });
    if !valid {
        return Err(CustomRecordError::Name(name.to_owned()));
    }
    Name::from_ascii(name)
        .and_then(|relative| relative.append_domain(origin))
        .map(|name| name.to_lowercase())
        .map_err(|_| CustomRecordError::Name(name.to_owned()))
}

/// Makes names inside the data absolute: a target written without the final dot is under the
/// zone's origin, as in a zone file.
fn absolute(data: RData, origin: &Name) -> RData {
    let fix = |name: Name| {
        if name.is_fqdn() {
            name
        } else {
            name.clone().append_domain(origin).unwrap_or(name)
        }
    };
    match data {
        RData::CNAME(CNAME(target)) => RData::CNAME(CNAME(fix(target))),
        RData::MX(mx) => RData::MX(MX::new(mx.preference, fix(mx.exchange.clone()))),
        RData::SRV(srv) => RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            fix(srv.target.clone()),
        )),
        other => other,
    }
}

fn parse_type(record_type: &str) -> Result<RecordType, CustomRecordError> {
    let parsed: RecordType = record_type
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| CustomRecordError::Type(record_type.to_owned()))?;
    if CUSTOM_RECORD_TYPES.contains(&parsed) {
        Ok(parsed)
    } else {
        Err(CustomRecordError::Type(record_type.to_owned()))
    }
}

/// The record a stored custom record stands for.
pub fn to_record(origin: &Name, stored: &DnsRecord) -> Result<Record, CustomRecordError> {
    let name = owner(origin, &stored.name)?;
    let record_type = parse_type(&stored.record_type)?;
    let data = RData::try_from_str(record_type, &stored.value)
        .map_err(|error| CustomRecordError::Value(format!("{}: {error}", stored.value)))?;
    Ok(Record::from_rdata(
        name,
        stored.ttl_seconds,
        absolute(data, origin),
    ))
}

/// A record as an operator writes it: name relative to the domain (`@` for the domain), type,
/// value in zone-file syntax, TTL (default `CUSTOM_TTL_SECONDS_DEFAULT`).
#[derive(Debug, Clone, Copy)]
pub struct RecordRequest<'a> {
    pub name: &'a str,
    pub record_type: &'a str,
    pub value: &'a str,
    pub ttl_seconds: Option<u32>,
}

/// Checks a record an operator asks for against the zone's generated records and its other
/// custom ones, and returns it in the form to store (name in lower case, type upper case, the
/// value as hickory-proto writes it back).
pub fn prepare(
    settings: &ZoneSettings,
    domain: &tme_core::Domain,
    dkim_keys: &[tme_store::DkimKey],
    existing: &[DnsRecord],
    request: RecordRequest<'_>,
) -> Result<NewDnsRecord, CustomRecordError> {
    let RecordRequest {
        name,
        record_type,
        value,
        ttl_seconds,
    } = request;
    let mut origin =
        Name::from_ascii(domain.as_str()).map_err(|_| CustomRecordError::Name(name.to_owned()))?;
    origin.set_fqdn(true);
    let origin = origin.to_lowercase();
    let name = name.trim().to_ascii_lowercase();
    let name = name
        .strip_suffix(&format!(".{}.", domain.as_str()))
        .or_else(|| name.strip_suffix(&format!(".{}", domain.as_str())))
        .map(str::to_owned)
        .unwrap_or(name);
    let name = if name == domain.as_str() || name == format!("{}.", domain.as_str()) {
        "@".to_owned()
    } else {
        name
    };
    let owner_name = owner(&origin, &name)?;
    let parsed_type = parse_type(record_type)?;
    let ttl_seconds = ttl_seconds.unwrap_or(CUSTOM_TTL_SECONDS_DEFAULT);
    if ttl_seconds > CUSTOM_TTL_SECONDS_MAX {
        return Err(CustomRecordError::Ttl(ttl_seconds));
    }
    let data = RData::try_from_str(parsed_type, value).map_err(|error| {
        CustomRecordError::Value(format!("{value:?} is not {parsed_type} data: {error}"))
    })?;
    let data = absolute(data, &origin);
    let stored = NewDnsRecord {
        domain: domain.clone(),
        name,
        record_type: parsed_type.to_string(),
        ttl_seconds,
        value: presentation(&data),
    };
    let record = Record::from_rdata(owner_name.clone(), ttl_seconds, data);
    let generated = generated_records(settings, &origin, dkim_keys);
    check_conflicts(&record, &origin, &generated, "generated")?;
    let others: Vec<Record> = existing
        .iter()
        .filter_map(|existing| to_record(&origin, existing).ok())
        .collect();
    check_conflicts(&record, &origin, &others, "custom")?;
    Ok(stored)
}

/// The TXT prefixes that tme writes; a second record with one of them at the same name
/// breaks the protocol (two SPF records are a permerror, RFC 7208 §4.5; two DMARC records
/// are ignored, RFC 9989).
const GENERATED_TXT_PREFIXES: &[&str] = &["v=spf1", "v=dmarc1", "v=dkim1", "v=stsv1", "v=tlsrptv1"];

fn txt_prefix(record: &Record) -> Option<&'static str> {
    let RData::TXT(txt) = &record.data else {
        return None;
    };
    let text: Vec<u8> = txt
        .txt_data
        .iter()
        .flat_map(|part| part.iter().copied())
        .collect();
    let text = String::from_utf8_lossy(&text).to_ascii_lowercase();
    GENERATED_TXT_PREFIXES
        .iter()
        .find(|prefix| text.starts_with(**prefix))
        .copied()
}

fn check_conflicts(
    record: &Record,
    origin: &Name,
    others: &[Record],
    kind: &str,
) -> Result<(), CustomRecordError> {
    let owner = LowerName::new(&record.name);
    let same_owner: Vec<&Record> = others
        .iter()
        .filter(|other| LowerName::new(&other.name) == owner)
        .collect();
    let shown = record.name.to_ascii();
    let record_type = record.record_type();
    // RFC 1034 §3.6.2 / RFC 2181 §10.1: a CNAME is alone at its name, and never at the apex.
    if record_type == RecordType::CNAME && LowerName::new(&record.name) == LowerName::new(origin) {
        return Err(CustomRecordError::Conflict(
            "a CNAME cannot be at the domain itself (it holds SOA, NS and MX)".to_owned(),
        ));
    }
    if record_type == RecordType::CNAME && !same_owner.is_empty() {
        return Err(CustomRecordError::Conflict(format!(
            "{shown} already has {kind} records ({}); a CNAME must be alone at its name",
            same_owner[0].record_type()
        )));
    }
    if let Some(cname) = same_owner
        .iter()
        .find(|other| other.record_type() == RecordType::CNAME)
    {
        return Err(CustomRecordError::Conflict(format!(
            "{shown} is a {kind} CNAME ({}); nothing else can be at that name",
            record_text(cname)
        )));
    }
    let same_type: Vec<&&Record> = same_owner
        .iter()
        .filter(|other| other.record_type() == record_type)
        .collect();
    if kind == "generated" && !same_type.is_empty() {
        // A TXT record beside generated ones is fine unless it is of the same kind (a
        // site-verification TXT at the apex beside SPF is common).
        let clashes = match record_type {
            RecordType::TXT => {
                let generated_prefixes: Vec<_> = same_type
                    .iter()
                    .filter_map(|other| txt_prefix(other))
                    .collect();
                let is_generated_name = generated_prefixes.iter().any(|prefix| *prefix != "v=spf1");
                is_generated_name
                    || txt_prefix(record).is_some_and(|prefix| generated_prefixes.contains(&prefix))
            }
            _ => true,
        };
        if clashes {
            return Err(CustomRecordError::Conflict(format!(
                "{shown} {record_type} is generated by tme ({}); change it in the [dns] config instead",
                record_text(same_type[0])
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use tme_core::config::Config;

    fn check(
        name: &str,
        record_type: &str,
        value: &str,
        existing: &[(&str, &str, &str)],
        expected: Expect,
    ) {
        let mut config =
            Config::from_toml_with_environment("", std::path::Path::new("t"), Vec::new()).unwrap();
        config.node.hostname = "mx.provider.example".to_owned();
        let settings = ZoneSettings::from_config(&config).unwrap();
        let domain = tme_core::Domain::parse("example.com").unwrap();
        let existing: Vec<DnsRecord> = existing
            .iter()
            .enumerate()
            .map(|(index, (name, record_type, value))| DnsRecord {
                id: index as i64,
                domain: domain.clone(),
                name: name.to_string(),
                record_type: record_type.to_string(),
                ttl_seconds: 300,
                value: value.to_string(),
                created_unix: 0,
            })
            .collect();
        let actual = match prepare(
            &settings,
            &domain,
            &[],
            &existing,
            RecordRequest {
                name,
                record_type,
                value,
                ttl_seconds: None,
            },
        ) {
            Ok(record) => format!(
                "{} {} {} {}",
                record.name, record.record_type, record.ttl_seconds, record.value
            ),
            Err(error) => format!("refused: {error}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn records_are_normalised() {
        check(
            "WWW",
            "a",
            "192.0.2.1",
            &[],
            expect!["www A 3600 192.0.2.1"],
        );
        check(
            "www.example.com.",
            "AAAA",
            "2001:db8::1",
            &[],
            expect!["www AAAA 3600 2001:db8::1"],
        );
        check(
            "example.com",
            "TXT",
            "\"google-site-verification=abc\"",
            &[],
            expect![[r#"@ TXT 3600 "google-site-verification=abc""#]],
        );
        check(
            "blog",
            "CNAME",
            "host.elsewhere.example.",
            &[],
            expect!["blog CNAME 3600 host.elsewhere.example."],
        );
        check(
            "blog",
            "CNAME",
            "web",
            &[],
            expect!["blog CNAME 3600 web.example.com."],
        );
        check(
            "@",
            "CAA",
            "0 issue \"letsencrypt.org\"",
            &[],
            expect![[r#"@ CAA 3600 0 issue "letsencrypt.org""#]],
        );
        check(
            "_sip._tcp",
            "SRV",
            "10 5 5060 sip.example.com.",
            &[],
            expect!["_sip._tcp SRV 3600 10 5 5060 sip.example.com."],
        );
        check(
            "lists",
            "MX",
            "10 mx.lists.example.",
            &[],
            expect!["lists MX 3600 10 mx.lists.example."],
        );
    }

    #[test]
    fn bad_records_are_refused() {
        check(
            "www",
            "NS",
            "ns.example.",
            &[],
            expect![
                "refused: type NS cannot be added (allowed: A, AAAA, CNAME, TXT, MX, SRV, CAA)"
            ],
        );
        check(
            "www",
            "BOGUS",
            "x",
            &[],
            expect![
                "refused: type BOGUS cannot be added (allowed: A, AAAA, CNAME, TXT, MX, SRV, CAA)"
            ],
        );
        check(
            "bad name",
            "A",
            "192.0.2.1",
            &[],
            expect![[
                r#"refused: "bad name" is not a record name (labels of letters, digits, - and _; @ for the domain)"#
            ]],
        );
        check(
            "www",
            "A",
            "not-an-address",
            &[],
            expect![[
                r#"refused: "not-an-address" is not A data: network address parse error: invalid IPv4 address syntax"#
            ]],
        );
    }

    #[test]
    fn conflicts_with_generated_records_are_refused() {
        check(
            "@",
            "MX",
            "5 other.example.",
            &[],
            expect![
                "refused: example.com. MX is generated by tme (example.com. 3600 IN MX 10 mx.provider.example.); change it in the [dns] config instead"
            ],
        );
        check(
            "@",
            "TXT",
            "\"v=spf1 -all\"",
            &[],
            expect![[
                r#"refused: example.com. TXT is generated by tme (example.com. 3600 IN TXT "v=spf1 mx ~all"); change it in the [dns] config instead"#
            ]],
        );
        check(
            "_dmarc",
            "TXT",
            "\"anything\"",
            &[],
            expect![[
                r#"refused: _dmarc.example.com. TXT is generated by tme (_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=none"); change it in the [dns] config instead"#
            ]],
        );
        check(
            "autoconfig",
            "A",
            "192.0.2.1",
            &[],
            expect![
                "refused: autoconfig.example.com. is a generated CNAME (autoconfig.example.com. 3600 IN CNAME mx.provider.example.); nothing else can be at that name"
            ],
        );
        check(
            "@",
            "CNAME",
            "elsewhere.example.",
            &[],
            expect!["refused: a CNAME cannot be at the domain itself (it holds SOA, NS and MX)"],
        );
        check(
            "_imaps._tcp",
            "SRV",
            "0 1 993 other.example.",
            &[],
            expect![
                "refused: _imaps._tcp.example.com. SRV is generated by tme (_imaps._tcp.example.com. 3600 IN SRV 0 1 993 mx.provider.example.); change it in the [dns] config instead"
            ],
        );
    }

    #[test]
    fn conflicts_with_custom_records_are_refused() {
        check(
            "www",
            "CNAME",
            "web.example.",
            &[("www", "A", "192.0.2.1")],
            expect![
                "refused: www.example.com. already has custom records (A); a CNAME must be alone at its name"
            ],
        );
        check(
            "www",
            "A",
            "192.0.2.2",
            &[("www", "CNAME", "web.example.")],
            expect![
                "refused: www.example.com. is a custom CNAME (www.example.com. 300 IN CNAME web.example.); nothing else can be at that name"
            ],
        );
        check(
            "www",
            "A",
            "192.0.2.2",
            &[("www", "A", "192.0.2.1")],
            expect!["www A 3600 192.0.2.2"],
        );
    }
}
