//! Writing IMAP responses: strings as atoms, quoted strings or literals, NIL, lists, and
//! the status responses. The one place that decides how a value goes on the wire.
//!
//! It does no I/O: it appends to a byte buffer the session hands back to the server.

/// How a string value may be written.
pub fn push_string(out: &mut Vec<u8>, value: &[u8]) {
    // A quoted string cannot hold CR, LF, NUL or 8-bit octets (RFC 9051 §4.3, without
    // UTF8=ACCEPT); long values read better as literals too.
    let quotable = value.len() <= 1024
        && value
            .iter()
            .all(|&byte| byte != 0 && byte != b'\r' && byte != b'\n' && byte < 0x80);
    if quotable {
        out.push(b'"');
        for &byte in value {
            if byte == b'"' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        push_literal(out, value);
    }
}

/// `{N}` CRLF and the octets.
pub fn push_literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}

/// A string, or NIL for None.
pub fn push_nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => push_string(out, value),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name: an atom when it can be one (clients show `INBOX` better than `"INBOX"`),
/// else a string.
pub fn push_astring(out: &mut Vec<u8>, value: &[u8]) {
    let atom = !value.is_empty()
        && value
            .iter()
            .all(|&byte| byte.is_ascii_graphic() && !b"(){%*\"\\]".contains(&byte));
    if atom {
        out.extend_from_slice(value);
    } else {
        push_string(out, value);
    }
}

/// A tagged or untagged status response: `TAG OK [CODE] text`.
pub fn status(out: &mut Vec<u8>, tag: &str, kind: &str, code: Option<&str>, text: &str) {
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    if let Some(code) = code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(code.as_bytes());
        out.push(b']');
    }
    out.push(b' ');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An untagged line written as given, `* ` and CRLF added.
pub fn untagged(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(value: &[u8]) -> String {
        let mut out = Vec::new();
        push_string(&mut out, value);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn strings() {
        assert_eq!(string(b"plain"), "\"plain\"");
        assert_eq!(string(b"a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(string(b"line\r\nbreak"), "{11}\r\nline\r\nbreak");
        assert_eq!(string("é".as_bytes()), "{2}\r\né");
        let mut out = Vec::new();
        push_astring(&mut out, b"INBOX");
        push_astring(&mut out, b"Sent Items");
        assert_eq!(out, b"INBOX\"Sent Items\"");
    }
}
