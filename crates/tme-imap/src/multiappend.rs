//! MULTIAPPEND (RFC 3502): an APPEND that carries several messages. imap-codec
//! 2.0.0-alpha.10 (the newest release) parses an APPEND of one message only, so `split`
//! cuts an APPEND of several messages into one single-message APPEND per message, each
//! `tag APPEND mailbox [flags] [date-time] literal CRLF`; imap-codec then parses and checks
//! each of them, and the session appends them all in one store transaction.
//!
//! It finds only the boundaries (the mailbox, a flag list, a quoted date-time, a literal
//! and its length); it checks nothing inside them. A command it does not recognise (one
//! message, something unusual between the messages, a literal shorter than announced) is
//! left whole to imap-codec, which answers it (`BAD` when it is not a valid APPEND). No I/O.

/// The single-message APPEND commands of an APPEND with two messages or more, in order;
/// None for anything else (an APPEND of one message, another command, a syntax this does
/// not recognise).
pub fn split(command: &[u8]) -> Option<Vec<Vec<u8>>> {
    let tag_end = command.iter().position(|&byte| byte == b' ')?;
    let tag = &command[..tag_end];
    let mut position = tag_end + 1;
    let name = command.get(position..position + 7)?;
    if !name.eq_ignore_ascii_case(b"APPEND ") {
        return None;
    }
    position += 7;
    let mailbox_start = position;
    position = skip_astring(command, position)?;
    let mailbox = &command[mailbox_start..position];
    let mut messages: Vec<&[u8]> = Vec::new();
    loop {
        if command.get(position) != Some(&b' ') {
            return None;
        }
        position += 1;
        let message_start = position;
        // RFC 3502 §6: append-message = [SP flag-list] [SP date-time] SP append-data
        if command.get(position) == Some(&b'(') {
            let close = command[position..].iter().position(|&byte| byte == b')')?;
            let flags = &command[position + 1..position + close];
            if flags.iter().any(|&byte| matches!(byte, b'{' | b'"' | b'(')) {
                return None;
            }
            position += close + 1;
            if command.get(position) != Some(&b' ') {
                return None;
            }
            position += 1;
        }
        if command.get(position) == Some(&b'"') {
            let close = command[position + 1..]
                .iter()
                .position(|&byte| byte == b'"')?;
            position += close + 2;
            if command.get(position) != Some(&b' ') {
                return None;
            }
            position += 1;
        }
        if command.get(position) == Some(&b'~') {
            position += 1; // literal8 (BINARY, RFC 3516)
        }
        position = skip_literal(command, position)?;
        messages.push(&command[message_start..position]);
        match &command[position..] {
            b"\r\n" | b"\n" => break,
            [b' ', ..] => {}
            _ => return None,
        }
    }
    if messages.len() < 2 {
        return None;
    }
    let parts = messages
        .iter()
        .map(|message| {
            let mut part = Vec::with_capacity(tag.len() + mailbox.len() + message.len() + 12);
            part.extend_from_slice(tag);
            part.extend_from_slice(b" APPEND ");
            part.extend_from_slice(mailbox);
            part.push(b' ');
            part.extend_from_slice(message);
            part.extend_from_slice(b"\r\n");
            part
        })
        .collect();
    Some(parts)
}

/// The end of the astring (atom, quoted string or literal) at `position`.
fn skip_astring(command: &[u8], position: usize) -> Option<usize> {
    match command.get(position)? {
        b'"' => {
            let mut index = position + 1;
            loop {
                match command.get(index)? {
                    b'\\' => index += 2,
                    b'"' => return Some(index + 1),
                    b'\r' | b'\n' => return None,
                    _ => index += 1,
                }
            }
        }
        b'{' => skip_literal(command, position),
        _ => {
            let end = command[position..]
                .iter()
                .position(|&byte| matches!(byte, b' ' | b'\r' | b'\n' | b'(' | b')' | b'{'))
                .map_or(command.len(), |offset| position + offset);
            (end > position).then_some(end)
        }
    }
}

/// The end of the literal `{N}` or `{N+}`, its CRLF and its N octets at `position`; None
/// when it is not one or the command holds fewer octets than announced.
fn skip_literal(command: &[u8], position: usize) -> Option<usize> {
    if command.get(position) != Some(&b'{') {
        return None;
    }
    let digits_start = position + 1;
    let digits_end = command[digits_start..]
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .map(|offset| digits_start + offset)?;
    if digits_end == digits_start || digits_end - digits_start > 19 {
        return None;
    }
    let length: usize = std::str::from_utf8(&command[digits_start..digits_end])
        .ok()?
        .parse()
        .ok()?;
    let mut index = digits_end;
    if command.get(index) == Some(&b'+') {
        index += 1;
    }
    if command.get(index) != Some(&b'}') {
        return None;
    }
    index += 1;
    if command.get(index) == Some(&b'\r') {
        index += 1;
    }
    if command.get(index) != Some(&b'\n') {
        return None;
    }
    let end = index.checked_add(1)?.checked_add(length)?;
    (end <= command.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(parts: Option<Vec<Vec<u8>>>) -> String {
        match parts {
            None => "None".to_owned(),
            Some(parts) => parts
                .iter()
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join("|"),
        }
    }

    #[test]
    fn several_messages_become_single_appends() {
        let command = b"a1 APPEND saved-messages (\\Seen) {3}\r\nabc {2+}\r\nde (\\Flagged $x) \"1-Jan-2024 10:00:00 +0000\" ~{1}\r\nf\r\n";
        expect_test::expect![[r#"
            a1 APPEND saved-messages (\Seen) {3}
            abc
            |a1 APPEND saved-messages {2+}
            de
            |a1 APPEND saved-messages (\Flagged $x) "1-Jan-2024 10:00:00 +0000" ~{1}
            f
        "#]]
        .assert_eq(&shown(split(command)).replace('\r', ""));
    }

    #[test]
    fn mailbox_as_quoted_string_and_literal() {
        let command = b"A003 append \"My \\\"Box\" {1}\r\na {1}\r\nb\r\n";
        expect_test::expect![[r#"
            A003 APPEND "My \"Box" {1}
            a
            |A003 APPEND "My \"Box" {1}
            b
        "#]]
        .assert_eq(&shown(split(command)).replace('\r', ""));
        let command = b"t APPEND {5}\r\nInbox {1}\r\na {1}\r\nb\r\n";
        expect_test::expect![[r#"
            t APPEND {5}
            Inbox {1}
            a
            |t APPEND {5}
            Inbox {1}
            b
        "#]]
        .assert_eq(&shown(split(command)).replace('\r', ""));
    }

    #[test]
    fn left_to_imap_codec() {
        for command in [
            &b"a APPEND INBOX {1}\r\na\r\n"[..],             // one message
            b"a NOOP\r\n",                                   // another command
            b"a APPEND INBOX {1}\r\na {5}\r\nab\r\n",        // shorter than announced
            b"a APPEND INBOX {1}\r\na  {1}\r\nb\r\n",        // two spaces
            b"a APPEND INBOX {1}\r\na (\\Seen {1}\r\nb\r\n", // unclosed flag list
            b"a APPEND INBOX {1}\r\na x\r\n",                // not a message
            b"a APPEND INBOX {1}\r\na {1}\r\nb extra\r\n",   // something after it
            b"a APPEND INBOX {99999999999999999999}\r\na {1}\r\nb\r\n", // length overflow
            b"a APPEND",
            b"",
        ] {
            assert_eq!(split(command), None, "{}", String::from_utf8_lossy(command));
        }
    }
}
