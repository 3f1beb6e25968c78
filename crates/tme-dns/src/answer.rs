//! One query in, one response out: the authoritative answer from the catalog of zones.
//!
//! This module owns the DNS rules of answering (RFC 1034 §4.3.2 without delegations or
//! wildcards, RFC 2308 negative answers, RFC 6891 EDNS, RFC 8482 ANY, RFC 5936 AXFR access)
//! and the wire format (through hickory-proto, which refuses compression loops, bad label
//! lengths and truncated records while decoding). It does no I/O and never panics on input:
//! what cannot be answered is dropped (`Answer::Drop`) or answered with an error RCODE.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};

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
