//! Reading the MIME header fields of one part from their raw values.
//!
//! This module owns the syntax of Content-Type, Content-Disposition (value plus
//! `; name=value` parameters, RFC 2045 §5.1, RFC 2183), Content-Language (RFC 3282) and
//! single-token fields such as Content-Transfer-Encoding. It keeps what IMAP
//! BODYSTRUCTURE sends: tokens as written (case kept), parameter values with the quoting
//! removed, RFC 2231 continuations and RFC 2047 words left alone. It must not decode
//! charsets or merge parameters; it works on one unfolded value and never sees the message.

use serde::{Deserialize, Serialize};

use crate::header_index::trim_white_space;
use crate::limits::{LANGUAGES_MAX, PARAMETERS_MAX, VALUE_BYTES_MAX};
use crate::raw_bytes::{RawBytes, truncate_value};

/// One `name=value` parameter of Content-Type or Content-Disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// As written (case kept; RFC 2231 forms such as `filename*0*` kept as they are).
    pub name: String,
    /// With the quotes of a quoted-string removed and its backslash escapes undone, nothing
    /// else changed.
    pub value: RawBytes,
}

/// A Content-Type that parsed: `type/subtype` plus parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaType {
    pub type_name: String,
    pub subtype_name: String,
    pub parameters: Vec<Parameter>,
}

/// Parses an unfolded Content-Type value; `None` when it has no usable `type/subtype`
/// (RFC 2045 §5.2 then says to use the default).
pub(crate) fn parse_content_type(value: &[u8]) -> Option<MediaType> {
    let (leading, parameters) = parse_value_and_parameters(value);
    let slash = leading.iter().position(|&byte| byte == b'/')?;
    let type_name = first_token(leading.get(..slash)?)?;
    let subtype_name = first_token(leading.get(slash + 1..)?)?;
    Some(MediaType {
        type_name,
        subtype_name,
        parameters,
    })
}

/// Parses an unfolded Content-Disposition value into its type and parameters; `None`
/// when there is no type token.
pub(crate) fn parse_disposition(value: &[u8]) -> Option<(String, Vec<Parameter>)> {
    let (leading, parameters) = parse_value_and_parameters(value);
    Some((first_token(&leading)?, parameters))
}

/// A single-token field value (Content-Transfer-Encoding) with comments and white space
/// removed; `None` when empty.
pub(crate) fn parse_token_field(value: &[u8]) -> Option<String> {
    first_token(&strip_comments(value))
}

/// Content-Language: comma-separated tags, comments and white space removed.
pub(crate) fn parse_language_list(value: &[u8]) -> Vec<String> {
    strip_comments(value)
        .split(|&byte| byte == b',')
        .filter_map(first_token)
        .take(LANGUAGES_MAX)
        .collect()
}

/// The value of the first parameter called `name` (ASCII case ignored).
pub(crate) fn parameter_value<'a>(parameters: &'a [Parameter], name: &str) -> Option<&'a RawBytes> {
    parameters
        .iter()
        .find(|parameter| parameter.name.eq_ignore_ascii_case(name))
        .map(|parameter| &parameter.value)
}

/// The first run of token characters, up to white space or a comment.
fn first_token(bytes: &[u8]) -> Option<String> {
    let trimmed = trim_white_space(bytes);
    let length = trimmed
        .iter()
        .position(|&byte| byte.is_ascii_whitespace() || byte == b'(' || byte == b';')
        .unwrap_or(trimmed.len());
    let token = trimmed.get(..length)?;
    if token.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(truncate_value(token)).into_owned())
}

/// Splits `value [; name=value]...` into the leading value (comments removed, trimmed) and
/// the parameters. Lenient, as mail in the wild needs: parameters without `=` are skipped,
/// an unquoted value runs to the next `;` (so unquoted file names with spaces survive) and
/// loses a trailing ` (comment)`, an unterminated quoted string runs to the end.
fn parse_value_and_parameters(value: &[u8]) -> (Vec<u8>, Vec<Parameter>) {
    let mut cursor = Cursor {
        bytes: value,
        position: 0,
    };
    let leading = strip_comments(cursor.take_until_semicolon());
    let mut parameters = Vec::new();
    while cursor.skip_semicolons() {
        let Some(parameter) = cursor.parameter() else {
            continue;
        };
        if parameters.len() >= PARAMETERS_MAX {
            break;
        }
        parameters.push(parameter);
    }
    (trim_white_space(&leading).to_vec(), parameters)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    /// Bytes up to the next `;` that is outside quotes and comments (not consumed).
    fn take_until_semicolon(&mut self) -> &'a [u8] {
        let start = self.position;
        let mut in_quotes = false;
        let mut comment_depth = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b'\\' if in_quotes || comment_depth > 0 => self.position += 1,
                b'"' if comment_depth == 0 => in_quotes = !in_quotes,
                b'(' if !in_quotes => comment_depth += 1,
                b')' if !in_quotes => comment_depth = comment_depth.saturating_sub(1),
                b';' if !in_quotes && comment_depth == 0 => break,
                _ => {}
            }
            self.position += 1;
        }
        self.position = self.position.min(self.bytes.len());
        self.bytes.get(start..self.position).unwrap_or_default()
    }

    /// Skips `;` and white space; false at the end.
    fn skip_semicolons(&mut self) -> bool {
        while let Some(byte) = self.peek() {
            if byte == b';' || byte.is_ascii_whitespace() {
                self.position += 1;
            } else {
                return true;
            }
        }
        false
    }

    fn skip_white_space_and_comments(&mut self) {
        loop {
            match self.peek() {
                Some(byte) if byte.is_ascii_whitespace() => self.position += 1,
                Some(b'(') => {
                    let mut depth = 0usize;
                    while let Some(byte) = self.peek() {
                        self.position += 1;
                        match byte {
                            b'\\' => self.position += 1,
                            b'(' => depth += 1,
                            b')' => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// One `name=value`, the cursor left at the `;` after it (or the end).
    fn parameter(&mut self) -> Option<Parameter> {
        self.skip_white_space_and_comments();
        let name_start = self.position;
        while let Some(byte) = self.peek() {
            if byte == b'=' || byte == b';' {
                break;
            }
            self.position += 1;
        }
        let name = trim_white_space(self.bytes.get(name_start..self.position)?).to_vec();
        if self.peek() != Some(b'=') {
            return None;
        }
        self.position += 1;
        self.skip_white_space_and_comments();
        let value = if self.peek() == Some(b'"') {
            let value = self.quoted_string();
            // Whatever follows the closing quote up to the next `;` is junk or a comment.
            self.take_until_semicolon();
            value
        } else {
            let unquoted = self.take_until_semicolon();
            let before_comment = unquoted
                .windows(2)
                .position(|pair| pair[0].is_ascii_whitespace() && pair[1] == b'(')
                .and_then(|cut| unquoted.get(..cut))
                .unwrap_or(unquoted);
            trim_white_space(before_comment).to_vec()
        };
        let name = first_token(&name)?;
        Some(Parameter {
            name,
            value: RawBytes::from_header(&value),
        })
    }

    /// A quoted-string starting at the opening quote, returned without its quotes and with
    /// each quoted-pair reduced to its character (RFC 5322 §3.2.4).
    fn quoted_string(&mut self) -> Vec<u8> {
        self.position += 1;
        let mut content = Vec::new();
        while let Some(byte) = self.peek() {
            self.position += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        self.position += 1;
                        content.push(escaped);
                    }
                }
                _ => content.push(byte),
            }
            if content.len() > VALUE_BYTES_MAX {
                // Keep consuming so the cursor ends after the value, but stop growing.
                content.truncate(VALUE_BYTES_MAX + 1);
            }
        }
        content
    }
}

/// Removes RFC 5322 comments (`(...)`, nested, with quoted-pairs) outside quoted strings.
fn strip_comments(bytes: &[u8]) -> Vec<u8> {
    let mut result = Vec::with_capacity(bytes.len());
    let mut depth = 0usize;
    let mut in_quotes = false;
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        index += 1;
        if depth > 0 {
            match byte {
                b'\\' => index += 1,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match byte {
            b'(' if !in_quotes => {
                depth = 1;
                continue;
            }
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => {
                result.push(byte);
                if let Some(&escaped) = bytes.get(index) {
                    result.push(escaped);
                    index += 1;
                }
                continue;
            }
            _ => {}
        }
        result.push(byte);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(value: &str) -> String {
        match parse_content_type(value.as_bytes()) {
            None => "invalid".to_owned(),
            Some(media) => {
                let mut text = format!("{}/{}", media.type_name, media.subtype_name);
                for parameter in media.parameters {
                    text.push_str(&format!(
                        " [{}={}]",
                        parameter.name,
                        parameter.value.to_string_lossy()
                    ));
                }
                text
            }
        }
    }

    #[test]
    fn content_type_forms() {
        assert_eq!(
            rendered("Text/HTML; Charset=\"UTF-8\""),
            "Text/HTML [Charset=UTF-8]"
        );
        assert_eq!(
            rendered("multipart/mixed;\tboundary=----=_Part_1 ;x=\"a\\\"b;c\""),
            "multipart/mixed [boundary=----=_Part_1] [x=a\"b;c]"
        );
        assert_eq!(
            rendered("text/plain; charset=us-ascii (Plain text)"),
            "text/plain [charset=us-ascii]"
        );
        assert_eq!(rendered("text (comment) / plain"), "text/plain");
        assert_eq!(
            rendered("application/pdf; name=my file.pdf"),
            "application/pdf [name=my file.pdf]"
        );
        assert_eq!(
            rendered("application/x; name*0*=utf-8''a%20; name*1=b"),
            "application/x [name*0*=utf-8''a%20] [name*1=b]"
        );
        assert_eq!(rendered("text"), "invalid");
        assert_eq!(rendered(""), "invalid");
        assert_eq!(rendered("text/html charset=utf-8"), "text/html");
        assert_eq!(
            rendered("text/plain; junk; ;=x; a=\"unterminated"),
            "text/plain [a=unterminated]"
        );
    }

    #[test]
    fn languages_and_tokens() {
        assert_eq!(
            parse_language_list(b"en-GB, (c) fr ,,"),
            vec!["en-GB", "fr"]
        );
        assert_eq!(parse_token_field(b" Base64 (x)").as_deref(), Some("Base64"));
        assert_eq!(parse_token_field(b" (x) "), None);
    }
}
