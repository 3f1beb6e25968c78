//! Answers made in advance, in wire form: the fast path of `answer`.
//!
//! For every name of a zone, the records of each answer it can give (the answer, authority
//! and additional sections, names compressed against the question) are encoded once, when
//! the zone is first asked. A query of the common shape (one question in class IN, a name of
//! letters, digits, `-` and `_`, no EDNS or an OPT without options) is then answered by
//! copying: our header, the client's own question, the prepared records, our OPT. A response
//! is the same message the general path (`answer::answer`) gives for that query; anything
//! else (other shapes, meta types, a CNAME owner asked for a type other than CNAME, A or
//! AAAA, a UDP answer that would need truncating) goes the general way, which stays the
//! reference. The tests check both paths give the same message for every name and type.
//!
//! It does no I/O and never panics on input: every read is bounds-checked, and what it
//! cannot parse it leaves to the general path (`None`).

use std::collections::HashMap;

use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::answer::{Transport, UDP_PAYLOAD_OCTETS_CLASSIC, zone_response};
use crate::zone::{Catalog, Zone};

/// The longest name on the wire (RFC 1035 §3.1).
const NAME_OCTETS_MAX: usize = 255;
const HEADER_OCTETS: usize = 12;
/// RCODEs as they sit in the header's fourth octet.
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;
/// The type asked to make an owner's negative (NODATA) answer: one no zone of ours has.
const ABSENT_TYPE: RecordType = RecordType::NULL;

/// The records of one response after its question, with what the header says of them.
#[derive(Debug, Clone)]
struct Section {
    authoritative: bool,
    response_code: u8,
    /// ANCOUNT, NSCOUNT, ARCOUNT, as on the wire.
    counts: [u8; 6],
    records: Box<[u8]>,
}

/// What one owner name answers.
#[derive(Debug, Clone)]
struct Owner {
    by_type: Vec<(u16, Section)>,
    /// The answer to every type not in `by_type` (NODATA); None when those need the general
    /// path (a CNAME's owner, whose answer follows the chain for the type asked).
    other: Option<Section>,
}

/// One zone's prepared answers.
#[derive(Debug, Clone)]
pub(crate) struct PreparedZone {
    /// By owner name in lower-case wire form.
    owners: HashMap<Box<[u8]>, Owner>,
    /// The origin's length in wire form, to point at it inside the question.
    origin_octets: usize,
    /// The negative answers' SOA after its owner name: type, class, TTL, length, data (names
    /// uncompressed).
    negative_soa: Box<[u8]>,
}

impl PreparedZone {
    /// Encodes the answers of every name of `zone`.
    pub(crate) fn new(zone: &Zone) -> PreparedZone {
        let mut owners = HashMap::new();
        for (owner, records) in zone.owners() {
            let Ok(key) = owner.to_bytes() else {
                continue;
            };
            let name = Name::from(owner.clone());
            let mut types: Vec<RecordType> = Vec::new();
            for record in records {
                if !types.contains(&record.record_type()) {
                    types.push(record.record_type());
                }
            }
            let has_cname = types.contains(&RecordType::CNAME);
            if has_cname {
                for extra in [RecordType::A, RecordType::AAAA] {
                    if !types.contains(&extra) {
                        types.push(extra);
                    }
                }
            }
            let section = |record_type: RecordType| {
                let bytes = zone_response(zone, &name, record_type)?;
                section_of(&bytes, key.len())
            };
            let by_type = types
                .iter()
                .filter_map(|record_type| Some((u16::from(*record_type), section(*record_type)?)))
                .collect();
            let other = if has_cname {
                None
            } else {
                section(ABSENT_TYPE)
            };
            owners.insert(key.into_boxed_slice(), Owner { by_type, other });
        }
        let origin_octets = zone.origin().to_bytes().map_or(0, |bytes| bytes.len());
        PreparedZone {
            owners,
            origin_octets,
            negative_soa: negative_soa(zone).unwrap_or_default().into_boxed_slice(),
        }
    }
}

/// The header fields and records of an encoded response to a question of `name_octets`.
fn section_of(response: &[u8], name_octets: usize) -> Option<Section> {
    let records_start = HEADER_OCTETS + name_octets + 4;
    // One question, as asked.
    if response.get(4..6)? != [0, 1] || response.len() < records_start {
        return None;
    }
    Some(Section {
        authoritative: response[2] & 0x04 != 0,
        response_code: response[3] & 0x0f,
        counts: response[6..12].try_into().ok()?,
        records: response[records_start..].into(),
    })
}

/// The negative answers' SOA record without its owner name.
fn negative_soa(zone: &Zone) -> Option<Vec<u8>> {
    let soa = zone.negative_soa();
    let RData::SOA(data) = &soa.data else {
        return None;
    };
    // Each name encoded alone is uncompressed: nothing precedes it to point at.
    let mut rdata = data.mname.to_bytes().ok()?;
    rdata.extend_from_slice(&data.rname.to_bytes().ok()?);
    for value in [
        data.serial,
        data.refresh as u32,
        data.retry as u32,
        data.expire as u32,
    ] {
        rdata.extend_from_slice(&value.to_be_bytes());
    }
    rdata.extend_from_slice(&data.minimum.to_be_bytes());
    let mut record = Vec::with_capacity(10 + rdata.len());
    record.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
    record.extend_from_slice(&1u16.to_be_bytes());
    record.extend_from_slice(&soa.ttl.to_be_bytes());
    record.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
    record.extend_from_slice(&rdata);
    Some(record)
}

/// A query in the shape the fast path takes.
struct Question {
    /// The name, lower case, wire form, and where each label starts in it.
    name: [u8; NAME_OCTETS_MAX],
    name_octets: usize,
    label_starts: [u8; NAME_OCTETS_MAX / 2 + 1],
    labels: usize,
    query_type: u16,
    /// The client's OPT: its payload size and DO bit.
    edns: Option<(u16, bool)>,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn parse(bytes: &[u8]) -> Option<Question> {
    let header = bytes.get(..HEADER_OCTETS)?;
    // QR clear and opcode QUERY (RFC 1035 §4.1.1); one question, no answer or authority,
    // at most the OPT in the additional section.
    if header[2] & 0xf8 != 0
        || header[4..10] != [0, 1, 0, 0, 0, 0]
        || header[10] != 0
        || header[11] > 1
    {
        return None;
    }
    let mut question = Question {
        name: [0; NAME_OCTETS_MAX],
        name_octets: 0,
        label_starts: [0; NAME_OCTETS_MAX / 2 + 1],
        labels: 0,
        query_type: 0,
        edns: None,
    };
    let mut position = HEADER_OCTETS;
    loop {
        let length = usize::from(*bytes.get(position)?);
        // Pointers and extended label types go the general way, and so do names too long.
        if length > 63 || question.name_octets + 1 + length > NAME_OCTETS_MAX {
            return None;
        }
        let label = bytes.get(position + 1..position + 1 + length)?;
        *question.label_starts.get_mut(question.labels)? = question.name_octets as u8;
        question.labels += 1;
        question.name[question.name_octets] = length as u8;
        for (target, &octet) in question.name[question.name_octets + 1..]
            .iter_mut()
            .zip(label)
        {
            if !(octet.is_ascii_alphanumeric() || octet == b'-' || octet == b'_') {
                return None;
            }
            *target = octet.to_ascii_lowercase();
        }
        question.name_octets += 1 + length;
        position += 1 + length;
        if length == 0 {
            break;
        }
    }
    question.query_type = read_u16(bytes, position)?;
    // Meta types (RFC 6895 §3.1: 128–255, OPT, SIG) have their own rules.
    if matches!(question.query_type, 24 | 41 | 128..=255) || read_u16(bytes, position + 2)? != 1 {
        return None;
    }
    position += 4;
    if header[11] == 1 {
        // RFC 6891 §6.1.2: root owner, type OPT, class the payload size, TTL the extended
        // RCODE, version and flags; no options here.
        let opt = bytes.get(position..position + 11)?;
        if opt[0] != 0 || opt[1..3] != [0, 41] || opt[6] != 0 || opt[9..11] != [0, 0] {
            return None;
        }
        let payload = u16::from_be_bytes([opt[3], opt[4]]);
        let dnssec_ok = opt[7] & 0x80 != 0;
        question.edns = Some((payload, dnssec_ok));
        position += 11;
    }
    (position == bytes.len()).then_some(question)
}

/// Answers `bytes` from prepared answers, or None for the general path.
pub(crate) fn answer(
    catalog: &Catalog,
    udp_payload_octets_max: u16,
    bytes: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let question = parse(bytes)?;
    let name = &question.name[..question.name_octets];
    let zone = question.label_starts[..question.labels]
        .iter()
        .find_map(|&start| catalog.find_wire(&name[usize::from(start)..]));
    let nxdomain_pointer: [u8; 2];
    let refused = Section {
        authoritative: false,
        response_code: RCODE_REFUSED,
        counts: [0; 6],
        records: Box::new([]),
    };
    let nxdomain;
    let (section, extra): (&Section, &[u8]) = match zone {
        None => (&refused, &[]),
        Some(zone) => {
            let prepared = zone.prepared();
            match prepared.owners.get(name) {
                Some(owner) => {
                    let section = owner
                        .by_type
                        .iter()
                        .find(|(record_type, _)| *record_type == question.query_type)
                        .map(|(_, section)| section)
                        .or(owner.other.as_ref())?;
                    (section, &[])
                }
                None => {
                    // NXDOMAIN (RFC 2308 §2.1): the SOA in authority, its owner a pointer to
                    // the origin's labels at the end of the question's name.
                    let origin_at =
                        HEADER_OCTETS + name.len().checked_sub(prepared.origin_octets)?;
                    let pointer = 0xc000 | u16::try_from(origin_at).ok()?;
                    nxdomain_pointer = pointer.to_be_bytes();
                    nxdomain = Section {
                        authoritative: true,
                        response_code: RCODE_NXDOMAIN,
                        counts: [0, 0, 0, 1, 0, 0],
                        records: Box::new(nxdomain_pointer),
                    };
                    (&nxdomain, &prepared.negative_soa[..])
                }
            }
        }
    };
    let question_end = HEADER_OCTETS + question.name_octets + 4;
    let mut response = Vec::with_capacity(question_end + section.records.len() + extra.len() + 11);
    response.extend_from_slice(&bytes[..2]);
    // QR, AA as prepared, RD copied; RA never (no recursion); CD copied; the RCODE.
    response.push(0x80 | if section.authoritative { 0x04 } else { 0 } | (bytes[2] & 0x01));
    response.push((bytes[3] & 0x10) | section.response_code);
    response.extend_from_slice(&[0, 1]);
    response.extend_from_slice(&section.counts);
    response.extend_from_slice(&bytes[HEADER_OCTETS..question_end]);
    response.extend_from_slice(&section.records);
    response.extend_from_slice(extra);
    let limit = match (transport, question.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => usize::from(UDP_PAYLOAD_OCTETS_CLASSIC),
        (Transport::Udp, Some((payload, _))) => usize::from(
            payload
                .max(UDP_PAYLOAD_OCTETS_CLASSIC)
                .min(udp_payload_octets_max.max(UDP_PAYLOAD_OCTETS_CLASSIC)),
        ),
    };
    if let Some((_, dnssec_ok)) = question.edns {
        let additional = u16::from_be_bytes([response[10], response[11]]).checked_add(1)?;
        response[10..12].copy_from_slice(&additional.to_be_bytes());
        let payload = udp_payload_octets_max.max(UDP_PAYLOAD_OCTETS_CLASSIC);
        response.push(0);
        response.extend_from_slice(&41u16.to_be_bytes());
        response.extend_from_slice(&payload.to_be_bytes());
        // Extended RCODE 0, version 0; DO copied (RFC 3225 §3).
        response.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        response.extend_from_slice(&[0, 0]);
    }
    // Truncation is the general path's business.
    (response.len() <= limit).then_some(response)
}

/// For `Zone`: the lazily made answers, equal whatever they hold (they follow from the zone).
#[derive(Debug, Clone, Default)]
pub(crate) struct PreparedCell(pub(crate) std::sync::OnceLock<std::sync::Arc<PreparedZone>>);

impl PartialEq for PreparedCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PreparedCell {}

/// The owner names of a zone as the catalog's wire index keys them.
pub(crate) fn wire_key(origin: &Name) -> Option<Box<[u8]>> {
    LowerName::new(origin)
        .to_bytes()
        .ok()
        .map(Vec::into_boxed_slice)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    use tme_core::config::Config;

    use super::*;
    use crate::answer::{Answer, AnswerLimits, answer_general};
    use crate::zone::{DomainInput, ZoneSettings, build_zone};

    fn catalog() -> Catalog {
        let mut config =
            Config::from_toml_with_environment("", std::path::Path::new("t"), Vec::new()).unwrap();
        config.node.hostname = "mx.example.com".to_owned();
        config.dns.client_host = "mail.example.net".to_owned();
        config.dns.mail_hosts = vec![tme_core::config::DnsMailHost {
            host: "mx.example.com".to_owned(),
            site: "paris".to_owned(),
            priority: 10,
            addresses: vec![
                "192.0.2.25".parse().unwrap(),
                "2001:db8::25".parse().unwrap(),
            ],
        }];
        let settings = ZoneSettings::from_config(&config).unwrap();
        let mut zones = Vec::new();
        for (serial, origin) in ["example.com", "example.net", "sub.example.com"]
            .into_iter()
            .enumerate()
        {
            let domain = tme_core::Domain::parse(origin).unwrap();
            let custom: Vec<tme_store::DnsRecord> = [
                ("www", "A", "192.0.2.80"),
                ("www", "AAAA", "2001:db8::80"),
                ("blog", "CNAME", "www"),
                ("away", "CNAME", "elsewhere.example.org."),
                ("deep.a.b", "TXT", "\"x\""),
                ("@", "CAA", "0 issue \"ca.example\""),
                ("lists", "MX", "5 mx.example.com."),
                (
                    "big",
                    "TXT",
                    &format!("\"{}\" \"{}\"", "a".repeat(250), "b".repeat(250)),
                ),
            ]
            .into_iter()
            .enumerate()
            .map(|(id, (name, record_type, value))| tme_store::DnsRecord {
                id: id as i64,
                domain: domain.clone(),
                name: name.to_owned(),
                record_type: record_type.to_owned(),
                ttl_seconds: 60,
                value: value.to_owned(),
                created_unix: 0,
            })
            .collect();
            let key = tme_store::DkimKey {
                domain: domain.clone(),
                selector: "rsa-20260101".to_owned(),
                algorithm: tme_store::DkimAlgorithm::RsaSha256,
                public_key: vec![7; 294],
                private_key_pkcs8: tme_core::Secret::new(Vec::new()),
                created_unix: 0,
            };
            let (zone, problems) = build_zone(
                &settings,
                DomainInput {
                    domain: &domain,
                    dkim_keys: &[key],
                    custom_records: &custom,
                },
                serial as u32 + 7,
            )
            .unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            zones.push(Arc::new(zone));
        }
        Catalog::new(zones)
    }

    /// Mixes the case of a name's letters, as resolvers do (draft-vixie-dnsext-dns0x20).
    fn mixed_case(name: &str, seed: usize) -> String {
        name.chars()
            .enumerate()
            .map(|(index, character)| {
                if (index + seed).is_multiple_of(3) {
                    character.to_ascii_uppercase()
                } else {
                    character
                }
            })
            .collect()
    }

    #[test]
    fn prepared_answers_are_the_general_answers() {
        let catalog = catalog();
        let limits = AnswerLimits {
            udp_payload_octets_max: 1232,
            transfer_allow: Vec::new(),
        };
        let source: IpAddr = "192.0.2.1".parse().unwrap();
        let mut names: Vec<String> = catalog
            .zones()
            .flat_map(|zone| zone.owners().map(|(name, _)| name.to_string()))
            .collect();
        names.extend(
            [
                "nothing.example.com.",
                "x.www.example.com.",
                "a.b.example.com.",
                "b.example.com.",
                "deep.a.b.sub.example.com.",
                "example.org.",
                "www.example.org.",
                "com.",
                ".",
                "under_score.example.net.",
            ]
            .map(str::to_owned),
        );
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::NS,
            RecordType::SOA,
            RecordType::MX,
            RecordType::TXT,
            RecordType::SRV,
            RecordType::CNAME,
            RecordType::CAA,
            RecordType::PTR,
            RecordType::DS,
            RecordType::HTTPS,
            RecordType::Unknown(65_280),
        ];
        let mut fast = 0;
        for (index, name) in names.iter().enumerate() {
            for record_type in types {
                for edns in [
                    None,
                    Some((512u16, false)),
                    Some((4096, true)),
                    Some((1232, false)),
                ] {
                    for transport in [Transport::Udp, Transport::Tcp] {
                        let mut message =
                            Message::new(index as u16, MessageType::Query, OpCode::Query);
                        message.metadata.recursion_desired = index.is_multiple_of(2);
                        message.metadata.checking_disabled = index.is_multiple_of(3);
                        message.add_query(Query::query(
                            Name::from_ascii(mixed_case(name, index)).unwrap(),
                            record_type,
                        ));
                        if let Some((payload, dnssec_ok)) = edns {
                            let mut options = Edns::new();
                            options.set_max_payload(payload);
                            options.set_dnssec_ok(dnssec_ok);
                            message.set_edns(options);
                        }
                        let bytes = message.to_vec().unwrap();
                        let general = |transport| match answer_general(
                            &catalog, &limits, &bytes, source, transport,
                        ) {
                            Answer::Message(bytes) => Message::from_vec(&bytes).unwrap(),
                            other => panic!("{name} {record_type}: {other:?}"),
                        };
                        let mut expected = general(transport);
                        // hickory-proto compresses an owner only against a name of the same
                        // case, so its answer to a mixed-case question can be larger and
                        // truncated where the prepared one (pointing at the question) fits.
                        if expected.truncation {
                            expected = general(Transport::Tcp);
                        }
                        let Some(prepared) =
                            answer(&catalog, limits.udp_payload_octets_max, &bytes, transport)
                        else {
                            continue;
                        };
                        fast += 1;
                        let prepared = Message::from_vec(&prepared).unwrap();
                        assert_eq!(
                            prepared, expected,
                            "{name} {record_type} {edns:?} {transport:?}"
                        );
                        // Names compare without case above; the question keeps the client's.
                        assert_eq!(
                            prepared.queries[0].name().to_string(),
                            mixed_case(name, index)
                        );
                    }
                }
            }
        }
        // Most queries go the fast way: everything but CNAME owners asked other types and
        // truncated answers.
        let total = names.len() * types.len() * 8;
        assert!(fast * 10 > total * 8, "{fast} of {total}");
    }

    #[test]
    fn other_shapes_go_the_general_way() {
        let catalog = catalog();
        let ask =
            |message: &Message| answer(&catalog, 1232, &message.to_vec().unwrap(), Transport::Udp);
        let plain = |record_type| {
            let mut message = Message::new(1, MessageType::Query, OpCode::Query);
            message.add_query(Query::query(
                Name::from_ascii("example.com.").unwrap(),
                record_type,
            ));
            message
        };
        assert!(ask(&plain(RecordType::SOA)).is_some());
        for meta in [
            RecordType::ANY,
            RecordType::AXFR,
            RecordType::IXFR,
            RecordType::OPT,
        ] {
            assert!(ask(&plain(meta)).is_none(), "{meta}");
        }
        let mut versioned = plain(RecordType::SOA);
        let mut options = Edns::new();
        options.set_version(1);
        versioned.set_edns(options);
        assert!(ask(&versioned).is_none());
        let mut update = plain(RecordType::SOA);
        update.metadata.op_code = OpCode::Update;
        assert!(ask(&update).is_none());
        // A label with an octet other than a letter, digit, `-` or `_` (here `*`).
        let mut odd = plain(RecordType::SOA).to_vec().unwrap();
        odd[13] = b'*';
        assert!(answer(&catalog, 1232, &odd, Transport::Udp).is_none());
        // A compressed question, trailing octets, a truncated one: not ours to judge.
        let mut trailing = plain(RecordType::SOA).to_vec().unwrap();
        trailing.push(0);
        assert!(answer(&catalog, 1232, &trailing, Transport::Udp).is_none());
        let whole = plain(RecordType::SOA).to_vec().unwrap();
        for cut in 0..whole.len() {
            assert!(answer(&catalog, 1232, &whole[..cut], Transport::Udp).is_none());
        }
        // The big TXT does not fit 512 octets: truncating is the general path's.
        let mut big = Message::new(1, MessageType::Query, OpCode::Query);
        big.add_query(Query::query(
            Name::from_ascii("big.example.com.").unwrap(),
            RecordType::TXT,
        ));
        assert!(ask(&big).is_none());
        assert!(answer(&catalog, 1232, &big.to_vec().unwrap(), Transport::Tcp).is_some());
    }
}
