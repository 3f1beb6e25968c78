//! Finding the part that an IMAP section number names (RFC 3501 §6.4.5, RFC 9051 §6.4.5).
//!
//! This module owns the part-numbering rules: the parts of a multipart are numbered from
//! 1; a message whose body is not multipart has one part, 1, which is its body; the
//! numbers after a message/rfc822 part address the parts of the encapsulated message by the
//! same rules. It must not read message bytes; it returns the part, whose offsets give
//! `BODY[n]` (`body_range`), `BODY[n.MIME]` (`mime_header_range`) and, through
//! `message`, `BODY[n.HEADER]` and `BODY[n.TEXT]`.

use crate::body_structure::BodyPart;

/// The part named by `section` (e.g. `[1, 2]` for `BODY[1.2]`) inside the message whose root
/// part is `root`; `None` when no part has that number. An empty section names no part
/// (`BODY[]` is the whole message, not a part).
pub fn part_by_section<'a>(root: &'a BodyPart, section: &[u32]) -> Option<&'a BodyPart> {
    let (&first, rest) = section.split_first()?;
    let mut part = numbered_part_of_message(root, first)?;
    for &number in rest {
        part = if part.is_multipart() {
            nth_child(part, number)?
        } else {
            numbered_part_of_message(&part.message.as_ref()?.body, number)?
        };
    }
    Some(part)
}

/// Part `number` of a message whose body root is `root`.
fn numbered_part_of_message(root: &BodyPart, number: u32) -> Option<&BodyPart> {
    if root.is_multipart() {
        nth_child(root, number)
    } else {
        (number == 1).then_some(root)
    }
}

fn nth_child(part: &BodyPart, number: u32) -> Option<&BodyPart> {
    let index = usize::try_from(number.checked_sub(1)?).ok()?;
    part.children.get(index)
}
