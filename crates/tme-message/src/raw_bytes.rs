//! `RawBytes`: header text kept exactly as it was written, 8-bit bytes included.
//!
//! IMAP sends envelope and body-structure strings as they appear in the message, and a
//! header may carry raw 8-bit text in any charset, so these values cannot be `String`
//! without losing bytes. This module owns that type and its serde form; it must not
//! interpret or decode the bytes.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::VALUE_BYTES_MAX;

/// Bytes copied from a header, unchanged apart from unfolding and trimming.
///
/// Serialized as a string when the bytes are valid UTF-8 (almost always), otherwise as a
/// byte sequence, so JSON stays readable and nothing is lost. Deserializing needs a
/// self-describing format (JSON is what the store uses).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawBytes(pub Vec<u8>);

impl RawBytes {
    /// Copies `bytes`, cut to `VALUE_BYTES_MAX` (at a character boundary when valid UTF-8).
    pub(crate) fn from_header(bytes: &[u8]) -> RawBytes {
        RawBytes(truncate_value(bytes).to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, with U+FFFD for anything that is not UTF-8.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Cuts `bytes` to `VALUE_BYTES_MAX`, backing off to a UTF-8 character boundary when the
/// bytes are UTF-8 there, so a valid string stays valid.
pub(crate) fn truncate_value(bytes: &[u8]) -> &[u8] {
    if bytes.len() <= VALUE_BYTES_MAX {
        return bytes;
    }
    let mut cut = VALUE_BYTES_MAX;
    // A UTF-8 continuation byte is 0b10xx_xxxx; a character is at most 4 bytes long.
    while cut > VALUE_BYTES_MAX - 3 && bytes.get(cut).is_some_and(|byte| byte & 0xC0 == 0x80) {
        cut -= 1;
    }
    bytes.get(..cut).unwrap_or(bytes)
}

/// Cuts `text` to at most `VALUE_BYTES_MAX` bytes at a character boundary.
pub(crate) fn truncate_string(mut text: String) -> String {
    if text.len() > VALUE_BYTES_MAX {
        let mut cut = VALUE_BYTES_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

impl fmt::Debug for RawBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "\"{}\"", self.0.escape_ascii())
    }
}

impl From<&[u8]> for RawBytes {
    fn from(bytes: &[u8]) -> RawBytes {
        RawBytes(bytes.to_vec())
    }
}

impl From<&str> for RawBytes {
    fn from(text: &str) -> RawBytes {
        RawBytes(text.as_bytes().to_vec())
    }
}

impl Serialize for RawBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Compact binary formats (what the store uses) take the bytes as they are; readable
        // ones (JSON) get a string when the bytes are UTF-8.
        if !serializer.is_human_readable() {
            return serializer.serialize_bytes(&self.0);
        }
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.serialize_bytes(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawBytes, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(RawBytesVisitor)
        } else {
            deserializer.deserialize_byte_buf(RawBytesVisitor)
        }
    }
}

struct RawBytesVisitor;

impl<'de> Visitor<'de> for RawBytesVisitor {
    type Value = RawBytes;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string or a sequence of bytes")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawBytes, E> {
        Ok(RawBytes(text.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<RawBytes, E> {
        Ok(RawBytes(text.into_bytes()))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<RawBytes, E> {
        Ok(RawBytes(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<RawBytes, E> {
        Ok(RawBytes(bytes))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<RawBytes, A::Error> {
        let mut bytes = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(VALUE_BYTES_MAX));
        while let Some(byte) = sequence.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(RawBytes(bytes))
    }
}
