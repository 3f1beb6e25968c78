//! One query in, one response out: the authoritative answer from the catalog of zones.
//!
//! This module owns the DNS rules of answering (RFC 1034 §4.3.2 without delegations or
//! wildcards, RFC 2308 negative answers, RFC 6891 EDNS, RFC 8482 ANY, RFC 5936 AXFR access)
//! and the wire format (through hickory-proto, which refuses compression loops, bad label
//! lengths and truncated records while decoding). It does no I/O and never panics on input:
//! what cannot be answered is dropped (`Answer::Drop`) or answered with an error RCODE.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use crate::zone::{Catalog, Zone};

/// The largest query taken at all; a DNS query is a few hundred octets (RFC 1035 §4.2.1
/// queries fit 512; EDNS options add little). Larger input is dropped unread.
pub const QUERY_OCTETS_MAX: usize = 4_096;
/// The payload size of a client without EDNS (RFC 1035 §4.2.1).
pub const UDP_PAYLOAD_OCTETS_CLASSIC: u16 = 512;
/// How many CNAMEs an answer follows inside the zone before it stops (a loop guard).
const CNAME_CHAIN_MAX: usize = 8;
/// The most records one AXFR message carries before the next message starts.
const TRANSFER_MESSAGE_OCTETS_TARGET: usize = 16_000;

/// How the query came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the server must do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send nothing (not a query, or too broken to have an ID worth answering).
    Drop,
    /// Send this one message.
    Message(Vec<u8>),
    /// Send these messages in order, on TCP (a zone transfer).
    Transfer(Vec<Vec<u8>>),
}

/// The server's settings that shape answers.
#[derive(Debug, Clone)]
pub struct AnswerLimits {
    /// The largest UDP response we send, whatever the client offers.
    pub udp_payload_octets_max: u16,
    /// Who may transfer zones (AXFR, over TCP only).
    pub transfer_allow: Vec<IpAddr>,
}

/// Answers one query from `source`.
pub fn answer(
    catalog: &Catalog,
    limits: &AnswerLimits,
    bytes: &[u8],
    source: IpAddr,
    transport: Transport,
) -> Answer {
    if bytes.len() > QUERY_OCTETS_MAX || bytes.len() < 12 {
        return Answer::Drop;
    }
    // RFC 1035 §4.1.1: QR is the top bit of the third octet; a response is never answered
    // (that would let two servers loop).
    if bytes[2] & 0x80 != 0 {
        return Answer::Drop;
    }
    if let Some(response) =
        crate::prepared::answer(catalog, limits.udp_payload_octets_max, bytes, transport)
    {
        return Answer::Message(response);
    }
    answer_general(catalog, limits, bytes, source, transport)
}

/// `answer` without the prepared answers: every query decoded and the response built with
/// hickory-proto's types. The reference the fast path is tested against.
pub(crate) fn answer_general(
    catalog: &Catalog,
    limits: &AnswerLimits,
    bytes: &[u8],
    source: IpAddr,
    transport: Transport,
) -> Answer {
    if bytes.len() > QUERY_OCTETS_MAX || bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return Answer::Drop;
    }
    let request = match Message::from_vec(bytes) {
        Ok(request) => request,
        Err(_) => return format_error(bytes),
    };
    let mut response = Message::response(request.id, request.op_code);
    response.metadata.recursion_desired = request.recursion_desired;
    // RFC 1035 §4.1.1: no recursion here, whatever RD asks.
    response.metadata.recursion_available = false;
    response.metadata.checking_disabled = request.checking_disabled;
    let client_edns = request.edns.clone();
    if let Some(edns) = &client_edns {
        let mut ours = Edns::new();
        ours.set_max_payload(
            limits
                .udp_payload_octets_max
                .max(UDP_PAYLOAD_OCTETS_CLASSIC),
        );
        ours.set_version(0);
        // RFC 3225 §3: DO is copied into the response; we sign nothing, so no RRSIG follows.
        ours.set_dnssec_ok(edns.flags().dnssec_ok);
        response.set_edns(ours);
        // RFC 6891 §6.1.3: a version we do not implement gets BADVERS.
        if edns.version() > 0 {
            response.metadata.response_code = ResponseCode::BADVERS;
            return finish(response, client_edns.as_ref(), limits, transport);
        }
    }
    if request.op_code != OpCode::Query {
        // NOTIFY, UPDATE, and the rest: we are a primary that takes no updates.
        response.metadata.response_code = ResponseCode::NotImp;
        return finish(response, client_edns.as_ref(), limits, transport);
    }
    // RFC 9619: exactly one question.
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return finish(response, client_edns.as_ref(), limits, transport);
    };
    response.add_query(query.clone());
    let query_type = query.query_type();
    if matches!(
        query_type,
        RecordType::OPT | RecordType::TSIG | RecordType::SIG
    ) || query.query_class() == DNSClass::NONE
    {
        response.metadata.response_code = ResponseCode::FormErr;
        return finish(response, client_edns.as_ref(), limits, transport);
    }
    if query.query_class() != DNSClass::IN {
        // CHAOS (version.bind), HS, ANY class, unknown classes: not ours.
        response.metadata.response_code = ResponseCode::Refused;
        return finish(response, client_edns.as_ref(), limits, transport);
    }
    let name = LowerName::new(query.name());
    let Some(zone) = catalog.find(&name) else {
        // Not a zone we host: no referral, no recursion.
        response.metadata.response_code = ResponseCode::Refused;
        return finish(response, client_edns.as_ref(), limits, transport);
    };
    match query_type {
        RecordType::AXFR | RecordType::IXFR => {
            return transfer(zone, &response, query, &name, source, transport, limits);
        }
        // MAILB (253) and MAILA (254), obsolete (RFC 883 meta types).
        RecordType::Unknown(253 | 254) => {
            response.metadata.response_code = ResponseCode::NotImp;
            return finish(response, client_edns.as_ref(), limits, transport);
        }
        _ => {}
    }
    response.metadata.authoritative = true;
    resolve_in_zone(zone, &name, query_type, &mut response);
    finish(response, client_edns.as_ref(), limits, transport)
}

/// The response to a plain query for `name` and `query_type` in `zone` (ID 0, RD and CD
/// clear, no EDNS, never truncated): what `prepared` takes its answers from.
pub(crate) fn zone_response(zone: &Zone, name: &Name, query_type: RecordType) -> Option<Vec<u8>> {
    let mut response = Message::response(0, OpCode::Query);
    response.add_query(Query::query(name.clone(), query_type));
    response.metadata.authoritative = true;
    response.metadata.recursion_available = false;
    resolve_in_zone(zone, &LowerName::new(name), query_type, &mut response);
    response.to_vec().ok()
}

/// Fills the answer, authority and additional sections for `name` in `zone`.
fn resolve_in_zone(zone: &Zone, name: &LowerName, query_type: RecordType, response: &mut Message) {
    let mut current = name.clone();
    for _ in 0..=CNAME_CHAIN_MAX {
        let Some(records) = zone.lookup(&current) else {
            // RFC 6604 §3: the RCODE is that of the last name in the chain.
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(zone.negative_soa());
            return;
        };
        let matching: Vec<&Record> = if query_type == RecordType::ANY {
            // RFC 8482 §4.1: one RRset of the name, not all of them.
            match records.first() {
                Some(first) => records
                    .iter()
                    .filter(|record| record.record_type() == first.record_type())
                    .collect(),
                None => Vec::new(),
            }
        } else {
            records
                .iter()
                .filter(|record| record.record_type() == query_type)
                .collect()
        };
        if !matching.is_empty() {
            for record in &matching {
                response.add_answer((*record).clone());
            }
            add_additionals(zone, &matching, response);
            return;
        }
        let cname = records
            .iter()
            .find(|record| record.record_type() == RecordType::CNAME);
        match cname {
            Some(cname) => {
                response.add_answer(cname.clone());
                let RData::CNAME(target) = &cname.data else {
                    return;
                };
                let target = LowerName::new(&target.0);
                // A target outside the zone is for the client's resolver to follow.
                if !LowerName::new(zone.origin()).zone_of(&target) {
                    return;
                }
                current = target;
            }
            None => {
                // NODATA (RFC 2308 §2.2): the name exists, the type does not.
                response.add_authority(zone.negative_soa());
                return;
            }
        }
    }
}

/// RFC 1034 §4.3.2 step 6: the addresses of MX, SRV and NS targets in the zone.
fn add_additionals(zone: &Zone, answers: &[&Record], response: &mut Message) {
    for record in answers {
        let target = match &record.data {
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            RData::NS(ns) => &ns.0,
            _ => continue,
        };
        let target = LowerName::new(target);
        if let Some(records) = zone.lookup(&target) {
            for address in records
                .iter()
                .filter(|record| matches!(record.record_type(), RecordType::A | RecordType::AAAA))
            {
                if !response.additionals.contains(address) {
                    response.add_additional(address.clone());
                }
            }
        }
    }
}

/// Encodes the response; a UDP response larger than the client can take is sent truncated
/// (TC, question and OPT only: RFC 2181 §9), so the client asks again over TCP.
fn finish(
    mut response: Message,
    client_edns: Option<&Edns>,
    limits: &AnswerLimits,
    transport: Transport,
) -> Answer {
    let Ok(bytes) = response.to_vec() else {
        return Answer::Drop;
    };
    let limit = match (transport, client_edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => usize::from(UDP_PAYLOAD_OCTETS_CLASSIC),
        (Transport::Udp, Some(edns)) => usize::from(
            edns.max_payload().max(UDP_PAYLOAD_OCTETS_CLASSIC).min(
                limits
                    .udp_payload_octets_max
                    .max(UDP_PAYLOAD_OCTETS_CLASSIC),
            ),
        ),
    };
    if bytes.len() <= limit {
        return Answer::Message(bytes);
    }
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.metadata.truncation = true;
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Answer::Message(bytes),
        _ => Answer::Drop,
    }
}

/// FORMERR for a query hickory-proto could not decode, echoing its ID and opcode: the header
/// alone (RFC 1035 §4.1.1), since the question may be what is broken.
fn format_error(bytes: &[u8]) -> Answer {
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let op_code = OpCode::from_u8((bytes[2] >> 3) & 0x0f);
    let mut response = Message::error_msg(id, op_code, ResponseCode::FormErr);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = bytes[2] & 0x01 != 0;
    match response.to_vec() {
        Ok(bytes) => Answer::Message(bytes),
        Err(_) => Answer::Drop,
    }
}

/// AXFR (RFC 5936): the SOA, every record, the SOA again, over TCP, to allowed addresses.
/// IXFR (RFC 1995 §4) is answered with the whole zone the same way, which a client must
/// accept; over UDP it gets the SOA alone, telling it to use TCP.
fn transfer(
    zone: &Zone,
    response: &Message,
    query: &Query,
    name: &LowerName,
    source: IpAddr,
    transport: Transport,
    limits: &AnswerLimits,
) -> Answer {
    let mut refused = response.clone();
    let allowed = limits.transfer_allow.contains(&source);
    if !allowed || *name != LowerName::new(zone.origin()) {
        // RFC 5936 §4.2: refusing is REFUSED; a name below the apex is not a zone.
        refused.metadata.response_code = if allowed {
            ResponseCode::NotAuth
        } else {
            ResponseCode::Refused
        };
        return finish(refused, response.edns.as_ref(), limits, transport);
    }
    if transport == Transport::Udp {
        if query.query_type() == RecordType::IXFR {
            let mut single = response.clone();
            single.metadata.authoritative = true;
            single.add_answer(zone.soa().clone());
            return finish(single, response.edns.as_ref(), limits, transport);
        }
        // RFC 5936 §4.2: AXFR is TCP only.
        refused.metadata.response_code = ResponseCode::FormErr;
        return finish(refused, response.edns.as_ref(), limits, transport);
    }
    Answer::Transfer(crate::transfer::messages(
        zone,
        response,
        TRANSFER_MESSAGE_OCTETS_TARGET,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{DNSClass, Name, RecordType};
    use tme_core::config::Config;

    use super::*;
    use crate::zone::{DomainInput, ZoneSettings, build_zone};

    fn catalog() -> Catalog {
        let mut config =
            Config::from_toml_with_environment("", std::path::Path::new("t"), Vec::new()).unwrap();
        config.node.hostname = "mx.example.com".to_owned();
        config.dns.mail_hosts = vec![tme_core::config::DnsMailHost {
            host: "mx.example.com".to_owned(),
            site: "paris".to_owned(),
            priority: 10,
            addresses: vec!["192.0.2.25".parse().unwrap()],
        }];
        let settings = ZoneSettings::from_config(&config).unwrap();
        let domain = tme_core::Domain::parse("example.com").unwrap();
        let custom = vec![tme_store::DnsRecord {
            id: 1,
            domain: domain.clone(),
            name: "big".to_owned(),
            record_type: "TXT".to_owned(),
            ttl_seconds: 60,
            value: format!(
                "\"{}\" \"{}\" \"{}\"",
                "a".repeat(250),
                "b".repeat(250),
                "c".repeat(250)
            ),
            created_unix: 0,
        }];
        let (zone, problems) = build_zone(
            &settings,
            DomainInput {
                domain: &domain,
                dkim_keys: &[],
                custom_records: &custom,
            },
            7,
        )
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        Catalog::new([Arc::new(zone)])
    }

    fn limits() -> AnswerLimits {
        AnswerLimits {
            udp_payload_octets_max: 1232,
            transfer_allow: vec!["192.0.2.53".parse().unwrap()],
        }
    }

    fn query(name: &str, record_type: RecordType) -> Message {
        let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        message
    }

    fn ask(message: &Message, transport: Transport) -> Answer {
        answer(
            &catalog(),
            &limits(),
            &message.to_vec().unwrap(),
            "192.0.2.1".parse().unwrap(),
            transport,
        )
    }

    fn response(answer: Answer) -> Message {
        match answer {
            Answer::Message(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    /// rcode, flags, counts, then the answer and authority records, one per line.
    fn summary(message: &Message) -> String {
        let mut text = format!(
            "{} aa={} tc={} ra={} an={} ns={} ar={}\n",
            message.response_code,
            message.authoritative,
            message.truncation,
            message.recursion_available,
            message.answers.len(),
            message.authorities.len(),
            message.additionals.len()
        );
        for record in message
            .answers
            .iter()
            .chain(&message.authorities)
            .chain(&message.additionals)
        {
            let line = crate::zone::record_text(record);
            text.push_str(&line[..line.len().min(90)]);
            text.push('\n');
        }
        text
    }

    fn check(message: Message, transport: Transport, expected: expect_test::Expect) {
        expected.assert_eq(&summary(&response(ask(&message, transport))));
    }

    #[test]
    fn answers_negative_answers_and_refusals() {
        check(
            query("example.com.", RecordType::MX),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=1 ns=0 ar=1
            example.com. 3600 IN MX 10 mx.example.com.
            mx.example.com. 3600 IN A 192.0.2.25
        "#]],
        );
        // Names match without case; the owner points at the question, so it reads as asked
        // (as NSD's and BIND's do).
        check(
            query("EXAMPLE.com.", RecordType::TXT),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=1 ns=0 ar=0
            EXAMPLE.com. 3600 IN TXT "v=spf1 mx ~all"
        "#]],
        );
        check(
            query("nothing.example.com.", RecordType::A),
            Transport::Udp,
            expect_test::expect![[r#"
            Non-Existent Domain aa=true tc=false ra=false an=0 ns=1 ar=0
            example.com. 300 IN SOA mx.example.com. hostmaster.mx.example.com. 7 14400 3600 1209600 30
        "#]],
        );
        check(
            query("example.com.", RecordType::AAAA),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=0 ns=1 ar=0
            example.com. 300 IN SOA mx.example.com. hostmaster.mx.example.com. 7 14400 3600 1209600 30
        "#]],
        );
        // An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
        check(
            query("_tcp.example.com.", RecordType::A),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=0 ns=1 ar=0
            example.com. 300 IN SOA mx.example.com. hostmaster.mx.example.com. 7 14400 3600 1209600 30
        "#]],
        );
        check(
            query("autoconfig.example.com.", RecordType::A),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=2 ns=0 ar=0
            autoconfig.example.com. 3600 IN CNAME mx.example.com.
            mx.example.com. 3600 IN A 192.0.2.25
        "#]],
        );
        check(
            query("example.org.", RecordType::A),
            Transport::Udp,
            expect_test::expect![[r#"
            Query Refused aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
        // RFC 8482: ANY gets one RRset.
        check(
            query("example.com.", RecordType::ANY),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=1 ns=0 ar=0
            example.com. 3600 IN SOA mx.example.com. hostmaster.mx.example.com. 7 14400 3600 1209600 3
        "#]],
        );
        // An unknown type at an existing name is NODATA.
        check(
            query("example.com.", RecordType::Unknown(65_280)),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=0 ns=1 ar=0
            example.com. 300 IN SOA mx.example.com. hostmaster.mx.example.com. 7 14400 3600 1209600 30
        "#]],
        );
        let mut recursive = query("example.com.", RecordType::NS);
        recursive.metadata.recursion_desired = true;
        check(
            recursive,
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=1 ns=0 ar=1
            example.com. 3600 IN NS mx.example.com.
            mx.example.com. 3600 IN A 192.0.2.25
        "#]],
        );
    }

    #[test]
    fn classes_opcodes_and_question_counts() {
        let mut chaos = Message::new(1, MessageType::Query, OpCode::Query);
        let mut question =
            Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
        question.set_query_class(DNSClass::CH);
        chaos.add_query(question);
        check(
            chaos,
            Transport::Udp,
            expect_test::expect![[r#"
            Query Refused aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
        let mut unknown_class = query("example.com.", RecordType::A);
        unknown_class.queries[0].set_query_class(DNSClass::Unknown(999));
        check(
            unknown_class,
            Transport::Udp,
            expect_test::expect![[r#"
            Query Refused aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
        let mut update = query("example.com.", RecordType::SOA);
        update.metadata.op_code = OpCode::Update;
        check(
            update,
            Transport::Udp,
            expect_test::expect![[r#"
            Not Implemented aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
        let mut two = query("example.com.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::MX,
        ));
        check(
            two,
            Transport::Udp,
            expect_test::expect![[r#"
            Form Error aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
        let none = Message::new(9, MessageType::Query, OpCode::Query);
        check(
            none,
            Transport::Udp,
            expect_test::expect![[r#"
            Form Error aa=false tc=false ra=false an=0 ns=0 ar=0
        "#]],
        );
    }

    #[test]
    fn edns_sizes_truncation_and_versions() {
        // Without EDNS a 780-octet TXT does not fit 512: TC, and nothing else.
        check(
            query("big.example.com.", RecordType::TXT),
            Transport::Udp,
            expect_test::expect![[r#"
            No Error aa=true tc=true ra=false an=0 ns=0 ar=0
        "#]],
        );
        check(
            query("big.example.com.", RecordType::TXT),
            Transport::Tcp,
            expect_test::expect![[r#"
            No Error aa=true tc=false ra=false an=1 ns=0 ar=0
            big.example.com. 60 IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
        "#]],
        );
        let mut edns = query("big.example.com.", RecordType::TXT);
        let mut options = Edns::new();
        options.set_max_payload(4096);
        options.set_dnssec_ok(true);
        edns.set_edns(options);
        let answered = response(ask(&edns, Transport::Udp));
        assert!(!answered.truncation);
        assert_eq!(answered.answers.len(), 1);
        let ours = answered.edns.expect("OPT in the response");
        assert_eq!(ours.max_payload(), 1232);
        assert!(ours.flags().dnssec_ok, "DO is copied (RFC 3225)");
        let mut version_one = query("example.com.", RecordType::A);
        let mut options = Edns::new();
        options.set_version(1);
        version_one.set_edns(options);
        let answered = response(ask(&version_one, Transport::Udp));
        // 16 is BADVERS here (hickory-proto names the shared code BADSIG).
        assert_eq!(u16::from(answered.response_code), 16);
    }

    #[test]
    fn zone_transfers_go_only_to_the_allow_list_over_tcp() {
        let axfr = query("example.com.", RecordType::AXFR);
        let bytes = axfr.to_vec().unwrap();
        let allowed: IpAddr = "192.0.2.53".parse().unwrap();
        let refused = answer(
            &catalog(),
            &limits(),
            &bytes,
            "192.0.2.1".parse().unwrap(),
            Transport::Tcp,
        );
        assert_eq!(response(refused).response_code, ResponseCode::Refused);
        let over_udp = answer(&catalog(), &limits(), &bytes, allowed, Transport::Udp);
        assert_eq!(response(over_udp).response_code, ResponseCode::FormErr);
        let Answer::Transfer(messages) =
            answer(&catalog(), &limits(), &bytes, allowed, Transport::Tcp)
        else {
            panic!("a transfer");
        };
        let records: Vec<_> = messages
            .iter()
            .flat_map(|bytes| Message::from_vec(bytes).unwrap().answers)
            .collect();
        assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
        assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
        assert_eq!(
            records.len(),
            catalog().zones().next().unwrap().records().len() + 2
        );
    }

    #[test]
    fn bad_input_gets_formerr_or_is_dropped_never_a_panic() {
        let catalog = catalog();
        let limits = limits();
        let source: IpAddr = "192.0.2.1".parse().unwrap();
        let run = |bytes: &[u8]| answer(&catalog, &limits, bytes, source, Transport::Udp);
        let rcode = |answer: Answer| match answer {
            Answer::Message(bytes) => Message::from_vec(&bytes).unwrap().response_code.to_string(),
            Answer::Drop => "dropped".to_owned(),
            Answer::Transfer(_) => "transfer".to_owned(),
        };
        // Shorter than a header.
        assert_eq!(rcode(run(&[0x12, 0x34, 0x01])), "dropped");
        // A response (QR set) is never answered.
        let mut response_bytes = query("example.com.", RecordType::A).to_vec().unwrap();
        response_bytes[2] |= 0x80;
        assert_eq!(rcode(run(&response_bytes)), "dropped");
        // A compression pointer to itself (a loop).
        let looped = [
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
        ];
        assert_eq!(rcode(run(&looped)), "Form Error");
        // A label length running past the end; a label of 64 octets.
        let past_end = [
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, b'a', b'b', 0, 0, 1, 0, 1,
        ];
        assert_eq!(rcode(run(&past_end)), "Form Error");
        let mut long_label = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        long_label.extend_from_slice(&[b'a'; 64]);
        long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rcode(run(&long_label)), "Form Error");
        // The question cut short, and counts that promise records that are not there.
        let full = query("example.com.", RecordType::A).to_vec().unwrap();
        for cut in 12..full.len() {
            assert_eq!(rcode(run(&full[..cut])), "Form Error", "cut at {cut}");
        }
        let mut promises = full.clone();
        promises[7] = 5;
        assert_eq!(rcode(run(&promises)), "Form Error");
        // Oversized: dropped unread.
        let mut oversized = full.clone();
        oversized.resize(QUERY_OCTETS_MAX + 1, 0);
        assert_eq!(rcode(run(&oversized)), "dropped");
        // Every single-octet corruption of a good query: no panic, and an answer or a drop.
        for index in 0..full.len() {
            for value in [0x00, 0x3f, 0x40, 0x80, 0xc0, 0xff] {
                let mut corrupt = full.clone();
                corrupt[index] = value;
                let _ = run(&corrupt);
            }
        }
        // Pseudo-random garbage.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let length = (state % 600) as usize;
            let garbage: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = run(&garbage);
        }
    }
}
