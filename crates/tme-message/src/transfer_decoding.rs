//! Undoing Content-Transfer-Encoding and charsets, for IMAP BINARY, JMAP and the preview.
//!
//! This module owns lenient base64 and quoted-printable decoders (RFC 2045 §6.7, §6.8)
//! and the step from bytes in a declared charset to text (mail-parser's charset tables).
//! Decoding is lenient because stored mail is often damaged and a reader still wants the
//! text: bytes that cannot be decoded are skipped (base64) or kept (quoted-printable). It
//! must not locate parts (offsets come from `BodyPart`) and does no I/O: callers pass the
//! raw message they read.

use mail_parser::decoders::charsets::map::charset_decoder;

use crate::body_structure::BodyPart;

/// Decodes `encoded` according to a Content-Transfer-Encoding value (ASCII case ignored).
/// `None` for an encoding this crate does not know, which IMAP BINARY reports as
/// `UNKNOWN-CTE` (RFC 3516 §4.3).
pub fn decode_transfer_encoding(encoding: &str, encoded: &[u8]) -> Option<Vec<u8>> {
    if encoding.eq_ignore_ascii_case("base64") {
        Some(decode_base64(encoded))
    } else if encoding.eq_ignore_ascii_case("quoted-printable") {
        Some(decode_quoted_printable(encoded))
    } else if ["7bit", "8bit", "binary"]
        .iter()
        .any(|identity| encoding.eq_ignore_ascii_case(identity))
    {
        Some(encoded.to_vec())
    } else {
        None
    }
}

/// The body of `part` with its transfer encoding undone (IMAP `BINARY[n]`); `None` for an
/// unknown encoding or offsets that do not fit `raw` (a summary of another message).
pub fn decoded_body(raw: &[u8], part: &BodyPart) -> Option<Vec<u8>> {
    let encoded =
        raw.get(usize::try_from(part.body_start).ok()?..usize::try_from(part.body_end).ok()?)?;
    decode_transfer_encoding(&part.content_transfer_encoding, encoded)
}

/// The body of a text part as text: transfer encoding undone, then its charset parameter
/// applied (UTF-8 with U+FFFD replacements when the charset is missing or unknown).
pub fn decoded_text(raw: &[u8], part: &BodyPart) -> Option<String> {
    let bytes = decoded_body(raw, part)?;
    Some(text_in_charset(
        &bytes,
        part.content_type_parameter("charset")
            .map(|charset| charset.as_bytes()),
    ))
}

/// Bytes in `charset` as a `String`.
pub(crate) fn text_in_charset(bytes: &[u8], charset: Option<&[u8]>) -> String {
    match charset.and_then(charset_decoder) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Base64 (RFC 2045 §6.8), skipping every byte outside the alphabet (line breaks, padding,
/// damage) and dropping a final incomplete group.
pub(crate) fn decode_base64(encoded: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(encoded.len() / 4 * 3);
    let mut accumulator: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in encoded {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        accumulator = (accumulator << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    decoded
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` becomes the byte, `=` at the end of a line is a
/// soft line break, white space at the end of a line is dropped (rule 3), line breaks are
/// kept as written, and an `=` that starts nothing valid is kept as it is.
pub(crate) fn decode_quoted_printable(encoded: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut pending_white_space = 0usize;
    let mut index = 0;
    while let Some(&byte) = encoded.get(index) {
        index += 1;
        match byte {
            b' ' | b'\t' => {
                decoded.push(byte);
                pending_white_space += 1;
                continue;
            }
            b'\r' | b'\n' => {
                decoded.truncate(decoded.len() - pending_white_space);
                decoded.push(byte);
            }
            b'=' => {
                let high = encoded.get(index).copied().and_then(hex_value);
                let low = encoded.get(index + 1).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    decoded.push((high << 4) | low);
                    index += 2;
                } else {
                    // Soft line break: `=`, optional white space, then CRLF or LF.
                    let mut after = index;
                    while matches!(encoded.get(after), Some(b' ' | b'\t')) {
                        after += 1;
                    }
                    match encoded.get(after) {
                        Some(b'\n') => index = after + 1,
                        Some(b'\r') if encoded.get(after + 1) == Some(&b'\n') => index = after + 2,
                        None => index = after,
                        _ => decoded.push(byte),
                    }
                }
            }
            _ => decoded.push(byte),
        }
        pending_white_space = 0;
    }
    decoded
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lenient() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(decode_base64(b"aGV!sbG8"), b"hello");
        assert_eq!(decode_base64(b"aGVsbA"), b"hell");
    }

    #[test]
    fn quoted_printable_lenient() {
        assert_eq!(
            decode_quoted_printable(b"caf=C3=A9 \r\nab=\r\ncd=\nef"),
            "café\r\nabcdef".as_bytes()
        );
        assert_eq!(decode_quoted_printable(b"a=zz b= \r\nc="), b"a=zz bc");
        assert_eq!(decode_quoted_printable(b"x  \ny\t\r\n"), b"x\ny\r\n");
    }
}
