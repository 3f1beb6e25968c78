//! AXFR (RFC 5936): a zone as a sequence of messages on one TCP connection.
//!
//! This module owns how a zone is cut into messages; who may transfer is decided in `answer`.
//! It does no I/O.

use hickory_proto::op::Message;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncodable;

use crate::zone::Zone;

/// The messages of a transfer of `zone` answering `response`'s query: the SOA first, every
/// record, the SOA last (RFC 5936 §2.2), each message under about `message_octets_target`
/// octets. The question is in the first message only (§2.2.1).
pub fn messages(zone: &Zone, response: &Message, message_octets_target: usize) -> Vec<Vec<u8>> {
    let records: Vec<&Record> = std::iter::once(zone.soa())
        .chain(zone.records())
        .chain(std::iter::once(zone.soa()))
        .collect();
    let mut messages = Vec::new();
    let mut current = start(response, true);
    let mut current_octets = 0usize;
    for record in records {
        let octets = record.to_bytes().map_or(0, |bytes| bytes.len());
        if current_octets + octets > message_octets_target && !current.answers.is_empty() {
            messages.push(std::mem::replace(&mut current, start(response, false)));
            current_octets = 0;
        }
        current.add_answer(record.clone());
        current_octets += octets;
    }
    messages.push(current);
    messages
        .into_iter()
        .filter_map(|message| message.to_vec().ok())
        .collect()
}

fn start(response: &Message, first: bool) -> Message {
    let mut message = Message::response(response.id, response.op_code);
    message.metadata.authoritative = true;
    message.metadata.recursion_desired = response.recursion_desired;
    if first {
        message.add_queries(response.queries.iter().cloned());
    }
    if let Some(edns) = &response.edns {
        message.set_edns(edns.clone());
    }
    message
}
