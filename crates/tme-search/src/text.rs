//! How text becomes index terms, and a search string the terms to look for.
//!
//! The index is a prefilter for IMAP's substring search (RFC 9051 §6.4.4: BODY and TEXT
//! match when the string is a substring of the text, case ignored), so what it holds must
//! never rule out a message the substring search would find. Both sides go through the same
//! steps: the text is lower-cased with Rust's full Unicode `to_lowercase` (the search in
//! `tme-imap` compares in the same lower case), and cut into every run of three characters
//! (trigrams). A string of three characters or more is a substring of a text only if each of
//! its trigrams is one of the text's, so "every trigram present" finds a superset of the
//! matches, which the caller then checks on the message itself. Shorter strings have no
//! trigram: the index cannot answer them.
//!
//! Accents are kept (`cafe` does not find `café`) and no Unicode normalisation is applied
//! (NFC and NFD spellings differ), as in the substring search: folding them here would
//! only add candidates that the check then drops.
//!
//! No I/O.

/// Characters in one index term.
pub const GRAM_CHARS: usize = 3;

/// Trigrams of a search string looked up at most: any subset of a string's trigrams still
/// finds every match (only more candidates), so a long string costs no more than this.
pub const QUERY_GRAMS_MAX: usize = 32;

/// A text as the index holds it.
pub fn normalise(text: &str) -> String {
    text.to_lowercase()
}

/// The trigrams to look up for a search string (IMAP sends bytes; they are read as UTF-8,
/// as the substring search does), or None when it is shorter than a trigram.
pub fn query_grams(needle: &[u8]) -> Option<Vec<String>> {
    let text = normalise(&String::from_utf8_lossy(needle));
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < GRAM_CHARS {
        return None;
    }
    let mut grams: Vec<String> = chars
        .windows(GRAM_CHARS)
        .map(|window| window.iter().collect())
        .collect();
    grams.sort_unstable();
    grams.dedup();
    if grams.len() > QUERY_GRAMS_MAX {
        // Spread the kept ones over the sorted list rather than keep one end of it.
        let step = grams.len().div_ceil(QUERY_GRAMS_MAX);
        grams = grams.into_iter().step_by(step).collect();
    }
    Some(grams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_of_a_string() {
        assert_eq!(query_grams(b"He"), None);
        assert_eq!(
            query_grams(b"HeLLo"),
            Some(vec!["ell".to_owned(), "hel".to_owned(), "llo".to_owned()])
        );
        assert_eq!(query_grams("ÉTÉ".as_bytes()), Some(vec!["été".to_owned()]));
        let long = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz";
        let grams = query_grams(long.as_bytes()).unwrap_or_default();
        assert!(!grams.is_empty() && grams.len() <= QUERY_GRAMS_MAX);
    }
}
