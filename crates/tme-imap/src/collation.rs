//! The forms in which SORT and THREAD compare text: the `i;unicode-casemap` comparator
//! (RFC 5051) and the base subject (RFC 5256 §2.1).
//!
//! `casemap` gives a string whose octets compare the way the comparator orders: every
//! character titlecased (RFC 5051 §2, step 1; here its simple uppercase mapping, which is
//! the titlecase mapping for every character but the few digraphs such as `ǅ`), then
//! decomposed (NFKD, step 2). `base_subject` takes a decoded subject (RFC 2047 words
//! already decoded by `tme-message`) and returns its casemapped base subject, and whether
//! the subject showed a reply or a forward (which THREAD=REFERENCES needs, RFC 5256 §2.3
//! step 5). It casemaps first, as Dovecot does, so `Re:`, `FWD:` and `(fwd)` are found in
//! any case.
//!
//! Pure functions: no I/O, no store, no wire syntax.

use icu_normalizer::DecomposingNormalizerBorrowed;

/// The comparison key of `text` under `i;unicode-casemap` (RFC 5051): compare the results
/// as octet strings.
pub fn casemap(text: &str) -> String {
    let mut titlecased = String::with_capacity(text.len());
    for character in text.chars() {
        let mut upper = character.to_uppercase();
        // Only one-to-one mappings: the simple case mapping RFC 5051 names. A character
        // whose uppercase is several (`ß` is `SS`) stays as it is.
        match (upper.next(), upper.next()) {
            (Some(single), None) => titlecased.push(single),
            _ => titlecased.push(character),
        }
    }
    DecomposingNormalizerBorrowed::new_nfkd()
        .normalize(&titlecased)
        .into_owned()
}

/// The base subject of a decoded subject, casemapped, and whether it was a reply or a
/// forward (RFC 5256 §2.1). An absent subject is the empty string.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) RFC 2047 words are decoded already; tabs and line breaks become spaces, runs of
    // spaces one space.
    let mut text = String::with_capacity(subject.len());
    let mut last_was_space = false;
    for character in casemap(subject).chars() {
        if matches!(character, ' ' | '\t' | '\r' | '\n') {
            if !last_was_space {
                text.push(' ');
            }
            last_was_space = true;
        } else {
            text.push(character);
            last_was_space = false;
        }
    }
    let mut reply_or_forward = false;
    let mut start = 0;
    let mut end = text.len();
    loop {
        // (2) Remove every trailing subj-trailer: "(fwd)" or white space.
        loop {
            let rest = &text[start..end];
            if rest.ends_with(' ') {
                end -= 1;
            } else if rest.ends_with("(FWD)") {
                end -= 5;
                reply_or_forward = true;
            } else {
                break;
            }
        }
        loop {
            let mut found = false;
            // (3) Remove a subj-leader: white space, or blobs and then Re:, Fw: or Fwd:.
            if text[start..end].starts_with(' ') {
                start += 1;
                found = true;
            }
            if let Some(after) = subj_refwd_leader(&text[start..end]) {
                start = end - after.len();
                reply_or_forward = true;
                found = true;
            }
            // (4) Remove a leading subj-blob when something is left after it.
            if let Some(after) = subj_blob(&text[start..end])
                && !after.is_empty()
            {
                start = end - after.len();
                found = true;
            }
            // (5) Until neither matches.
            if !found {
                break;
            }
        }
        // (6) "[fwd:" subject "]": take the inside and start again from (2).
        let rest = &text[start..end];
        if rest.starts_with("[FWD:") && rest.ends_with(']') && rest.len() >= 6 {
            start += 5;
            end -= 1;
            reply_or_forward = true;
            continue;
        }
        break;
    }
    (text[start..end].to_owned(), reply_or_forward)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the text after it, if `text` starts with one.
fn subj_blob(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(['[', ']'])?;
    if inner.as_bytes()[close] != b']' {
        return None;
    }
    let after = &inner[close + 1..];
    Some(after.strip_prefix(' ').unwrap_or(after))
}

/// `*subj-blob subj-refwd` with `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`:
/// the text after it, if `text` starts with one.
fn subj_refwd_leader(text: &str) -> Option<&str> {
    let mut rest = text;
    while rest.starts_with('[') {
        rest = subj_blob(rest)?;
    }
    rest = rest
        .strip_prefix("RE")
        .or_else(|| rest.strip_prefix("FWD"))
        .or_else(|| rest.strip_prefix("FW"))?;
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.starts_with('[') {
        rest = subj_blob(rest)?;
    }
    rest.strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(subject: &str, base: &str, reply_or_forward: bool) {
        assert_eq!(
            base_subject(subject),
            (base.to_owned(), reply_or_forward),
            "{subject:?}"
        );
    }

    #[test]
    fn rfc_5256_subject_forms() {
        check("Hello world", "HELLO WORLD", false);
        check("Re: Hello world", "HELLO WORLD", true);
        check("RE:   Hello\t  world  ", "HELLO WORLD", true);
        check("Fw: Hello", "HELLO", true);
        check("FWD: Hello", "HELLO", true);
        check("Hello (fwd)", "HELLO", true);
        check("Hello (fwd) (FWD)  ", "HELLO", true);
        check("Re: Re: re: Hello", "HELLO", true);
        check("Re[2]: Hello", "HELLO", true);
        check("[list] Re: Hello", "HELLO", true);
        check("[list] Hello", "HELLO", false);
        check("Re: [list] Re: Hello", "HELLO", true);
        check("[Fwd: Hello]", "HELLO", true);
        check("[Fwd: Re: [list] Hello (fwd)]", "HELLO", true);
        // A blob alone stays: removing it would leave nothing.
        check("[list]", "[LIST]", false);
        check("Re: [list]", "[LIST]", true);
        check("", "", false);
        check("   ", "", false);
        check("Re:", "", true);
        // Not a leader: no colon, or a word that only starts like one.
        check("Reply needed", "REPLY NEEDED", false);
        check("Re Hello", "RE HELLO", false);
        check("Forward: Hello", "FORWARD: HELLO", false);
        // An unclosed blob is text.
        check("[list Hello", "[LIST HELLO", false);
    }

    #[test]
    fn unicode_casemap() {
        assert_eq!(casemap("abc"), "ABC");
        assert_eq!(casemap("é"), "E\u{301}");
        // No simple uppercase: the ligature stays, and NFKD splits it.
        assert_eq!(casemap("ﬁ"), "fi");
        assert_eq!(casemap("straße"), "STRASSE".replace("SS", "ß"));
        // Titlecase orders before the non-letters that lowercase would follow.
        assert!(casemap("a") < casemap("_"));
        assert_eq!(base_subject("Ré: Été").0, "RE\u{301}: E\u{301}TE\u{301}");
        assert_eq!(base_subject("re: été").0, "E\u{301}TE\u{301}");
    }
}
