//! NOTIFY (RFC 1996): telling secondaries that a zone changed, so they ask for its SOA and
//! transfer it at once instead of at the next refresh.
//!
//! This module owns the messages: the NOTIFY itself (opcode NOTIFY, AA, the zone's SOA as
//! the question and its current SOA in the answer section, §3.7) and the check of a reply.
//! The server sends them over UDP and retries (`server`). No I/O here.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::zone::Zone;

/// The NOTIFY for `zone`, with message ID `id`.
pub fn notify_message(zone: &Zone, id: u16) -> Option<Vec<u8>> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    // RFC 1996 §3.7: AA is set; the SOA in the answer section is a hint of the new serial.
    message.metadata.authoritative = true;
    message.add_query(Query::query(zone.origin().clone(), RecordType::SOA));
    message.add_answer(zone.soa().clone());
    message.to_vec().ok()
}

/// Whether `bytes` is the secondary's acknowledgement of our NOTIFY `id` for `origin`
/// (RFC 1996 §4.7: a response with the same ID, opcode and question).
pub fn is_acknowledgement(bytes: &[u8], id: u16, origin: &Name) -> Option<ResponseCode> {
    let message = Message::from_vec(bytes).ok()?;
    let same_question = message.queries.first().is_some_and(|query| {
        hickory_proto::rr::LowerName::new(query.name()) == hickory_proto::rr::LowerName::new(origin)
    });
    (message.message_type == MessageType::Response
        && message.id == id
        && message.op_code == OpCode::Notify
        && same_question)
        .then_some(message.response_code)
}
