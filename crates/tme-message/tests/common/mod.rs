//! Checks shared by the integration tests: the structural promises of a `MessageSummary`.

#![allow(dead_code)]

use tme_message::{BodyPart, MessageSummary};

/// Every offset lies where RFC 3501 §6.4.5 sections need it: header fields inside the
/// header and in order, the root spanning the message, each part's ranges ordered, children
/// in order inside their parent's body, a nested message's root spanning the enclosing
/// part's body.
pub fn check_summary(summary: &MessageSummary, size: usize, context: &str) {
    let size = size as u64;
    assert_eq!(summary.size_bytes, size, "{context}");
    assert!(summary.header_end <= size, "{context}");
    let mut previous_end = 0;
    for field in &summary.headers {
        assert!(
            previous_end <= field.start
                && field.start < field.end
                && field.end <= summary.header_end,
            "{context}: header field {} at {}..{} outside the header 0..{}",
            field.name,
            field.start,
            field.end,
            summary.header_end
        );
        previous_end = field.end;
    }
    let root = &summary.body;
    assert_eq!(root.header_start, 0, "{context}");
    assert_eq!(root.body_start, summary.header_end, "{context}");
    assert_eq!(root.body_end, size, "{context}");
    check_part(root, context, "root");
}

/// A part's own ranges are ordered; children lie in order inside its body; a nested
/// message's root spans exactly the enclosing part's body.
pub fn check_part(part: &BodyPart, context: &str, section: &str) {
    assert!(
        part.header_start <= part.body_start && part.body_start <= part.body_end,
        "{context} part {section}: {}..{}..{}",
        part.header_start,
        part.body_start,
        part.body_end
    );
    assert_eq!(
        part.body_size_octets,
        part.body_end - part.body_start,
        "{context} {section}"
    );
    let mut previous_end = part.body_start;
    for (index, child) in part.children.iter().enumerate() {
        let child_section = format!("{section}.{}", index + 1);
        assert!(
            previous_end <= child.header_start && child.body_end <= part.body_end,
            "{context} part {child_section}: {}..{} not inside {}..{} after {previous_end}",
            child.header_start,
            child.body_end,
            part.body_start,
            part.body_end
        );
        previous_end = child.body_end;
        check_part(child, context, &child_section);
    }
    if let Some(message) = &part.message {
        assert!(part.children.is_empty(), "{context} {section}");
        assert_eq!(
            message.body.header_start, part.body_start,
            "{context} {section}"
        );
        assert_eq!(message.body.body_end, part.body_end, "{context} {section}");
        check_part(&message.body, context, &format!("{section}.message"));
    }
}

pub fn count_parts(part: &BodyPart) -> usize {
    1 + part.children.iter().map(count_parts).sum::<usize>()
        + part
            .message
            .as_ref()
            .map_or(0, |message| count_parts(&message.body))
}

/// The summary survives a serde_json round trip unchanged.
pub fn check_round_trip(summary: &MessageSummary, context: &str) {
    let json = serde_json::to_string(summary).expect("summary serializes");
    let back: MessageSummary = serde_json::from_str(&json).expect("summary deserializes");
    assert_eq!(
        &back, summary,
        "{context}: serde_json round trip changed the summary"
    );
}

/// Every part is found again by `MessageSummary::part` under its RFC 3501 section number.
pub fn check_sections(summary: &MessageSummary, context: &str) {
    visit_message_root(summary, &summary.body, &[], context);
}

fn visit_message_root(summary: &MessageSummary, root: &BodyPart, prefix: &[u32], context: &str) {
    if root.is_multipart() {
        for (index, child) in root.children.iter().enumerate() {
            visit_part(summary, child, &section_with(prefix, index + 1), context);
        }
    } else {
        visit_part(summary, root, &section_with(prefix, 1), context);
    }
}

fn visit_part(summary: &MessageSummary, part: &BodyPart, section: &[u32], context: &str) {
    let found = summary.part(section);
    assert!(
        found.is_some_and(|found| std::ptr::eq(found, part)),
        "{context}: section {section:?} does not find its part"
    );
    if part.is_multipart() {
        for (index, child) in part.children.iter().enumerate() {
            visit_part(summary, child, &section_with(section, index + 1), context);
        }
    } else if let Some(message) = &part.message {
        visit_message_root(summary, &message.body, section, context);
    }
}

fn section_with(prefix: &[u32], number: usize) -> Vec<u32> {
    let mut section = prefix.to_vec();
    section.push(u32::try_from(number).expect("part number fits u32"));
    section
}
