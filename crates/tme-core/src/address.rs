//! Mail domains, local parts and addresses as types that cannot hold invalid values.
//!
//! This module owns the syntax of mail domains (DNS names, internationalised through IDNA
//! with UTS 46 processing), of local parts (RFC 5321 §4.1.2, widened to UTF-8 by RFC 6531
//! SMTPUTF8) and of whole addresses; their canonical forms used as directory keys; and
//! plus-addressing. It must not do I/O: no DNS lookups, no check that a domain is hosted
//! here or that a mailbox exists, and no policy about which addresses may log in or receive.
//!
//! Decisions taken here, so that every crate agrees on them:
//!
//! - A [`Domain`] needs at least two labels (`example.com`), with the single exception of
//!   `localhost`, which tests and development setups use. RFC 5321 §2.3.5 asks for fully
//!   qualified names, and dotless domains do not work for mail on the public Internet.
//! - The last label of a domain must not be all digits, so an IPv4 address written without
//!   brackets is never mistaken for a domain (RFC 3696 §2). Address literals
//!   (`user@[192.0.2.1]`, RFC 5321 §4.1.3) are rejected: tme does not host them.
//! - A domain is stored in its ASCII (A-label, punycode) form, lower-cased. Equality,
//!   hashing and ordering use that form, so `Bücher.Example` equals `xn--bcher-kva.example`.
//! - A [`LocalPart`] stores its *content*: the quoted-string form is unwrapped, because
//!   `"john.doe"` and `john.doe` name the same mailbox (RFC 5322 §3.2.4: the quotes are not
//!   part of the value). [`Display`](fmt::Display) writes the shortest valid wire form,
//!   quoting again only when the content is not a dot-string.
//! - Local parts keep their case for display and equality (RFC 5321 §2.4 says the local part
//!   may be case-sensitive), but directory lookups must use [`LocalPart::canonical`] and
//!   [`EmailAddress::canonical`], which lower-case it: like every large provider, tme treats
//!   `User@example.com` and `user@example.com` as one mailbox.
//! - In local parts we accept the UTF-8 characters RFC 6531 allows, except control
//!   characters, non-ASCII white space and invisible formatting characters (bidirectional
//!   overrides, zero-width characters), which only serve to make two addresses look alike.
//! - Length limits count octets of the wire form that tme stores and sends: the local part
//!   as given (never longer than the form we write back), and the whole address with the
//!   domain in A-labels. The address as given must also fit, which bounds the work done on
//!   hostile input.
//! - Error positions are 1-based and count characters, not bytes, within the text handed to
//!   the `parse` function that reports them.

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const LOCAL_PART_OCTETS_MAX: usize = 64;

/// Longest domain in its textual ASCII form, without a trailing dot, in octets. RFC 1035
/// §2.3.4 allows 255 octets on the wire, which include one length octet per label and the
/// empty root label: 253 octets of text remain.
pub const DOMAIN_OCTETS_MAX: usize = 253;

/// Longest domain label in its ASCII (A-label) form, in octets (RFC 1035 §2.3.4).
pub const DOMAIN_LABEL_OCTETS_MAX: usize = 63;

/// Longest address, in octets. RFC 5321 §4.5.3.1.3 limits a path to 256 octets including
/// the angle brackets, which leaves 254 for the address itself (RFC 5321 erratum 1690).
pub const ADDRESS_OCTETS_MAX: usize = 254;

/// Longest text handed to [`Domain::parse`] that is worth running through IDNA, in octets.
/// UTS 46 may drop ignorable characters and shorten full-width ones, so a valid domain can be
/// typed longer than [`DOMAIN_OCTETS_MAX`]; anything past this bound is rejected unread.
pub const DOMAIN_INPUT_OCTETS_MAX: usize = 1024;

/// The only single-label domains accepted.
pub const SINGLE_LABEL_DOMAINS_ALLOWED: &[&str] = &["localhost"];

/// Why a domain, local part or address was rejected. Messages are written for the person
/// who typed the value, e.g. at the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("the address is empty")]
    AddressEmpty,

    #[error("the address {} has no '@' between the local part and the domain", quoted(.address))]
    AddressMissingAt { address: String },

    #[error("the address is {length_octets} octets long; the limit is {limit_octets}")]
    AddressTooLong {
        length_octets: usize,
        limit_octets: usize,
    },

    #[error("the local part (before the '@') is empty")]
    LocalPartEmpty,

    #[error(
        "the local part (before the '@') is {length_octets} octets long; the limit is {limit_octets}"
    )]
    LocalPartTooLong {
        length_octets: usize,
        limit_octets: usize,
    },

    #[error(
        "the character {} at position {position} is not allowed in the local part (before the '@')",
        quoted_char(*.character)
    )]
    LocalPartBadCharacter { character: char, position: usize },

    #[error(
        "the local part (before the '@') must not start or end with a dot or have two dots in \
         a row (dot at position {position})"
    )]
    LocalPartMisplacedDot { position: usize },

    #[error("the local part (before the '@') opens a quote that is never closed")]
    LocalPartUnterminatedQuote,

    #[error(
        "the local part (before the '@') has text after its closing quote, at position {position}"
    )]
    LocalPartTextAfterQuote { position: usize },

    #[error(
        "the backslash at position {position} in the quoted local part must be followed by a \
         printable ASCII character or a space"
    )]
    LocalPartBadEscape { position: usize },

    #[error("the domain is empty")]
    DomainEmpty,

    #[error("the domain is {length_octets} octets long; the limit is {limit_octets}")]
    DomainTooLong {
        length_octets: usize,
        limit_octets: usize,
    },

    #[error(
        "the character {} at position {position} is not allowed in a domain (only letters, \
         digits, hyphens and dots are)",
        quoted_char(*.character)
    )]
    DomainBadCharacter { character: char, position: usize },

    #[error(
        "the domain {} has an empty label (a dot at the start, or two dots in a row)",
        quoted(.domain)
    )]
    DomainLabelEmpty { domain: String },

    #[error(
        "the domain label {} is {length_octets} octets long; the limit is {limit_octets}",
        quoted(.label)
    )]
    DomainLabelTooLong {
        label: String,
        length_octets: usize,
        limit_octets: usize,
    },

    #[error("the domain label {} must not start or end with a hyphen", quoted(.label))]
    DomainLabelHyphen { label: String },

    #[error(
        "the domain {} has a single label; a mail domain needs at least two, like example.com",
        quoted(.domain)
    )]
    DomainSingleLabel { domain: String },

    #[error(
        "the domain {} ends in an all-digit label; it looks like an IP address, which is not \
         a domain",
        quoted(.domain)
    )]
    DomainNumericTopLevel { domain: String },

    #[error(
        "the domain {} is not a valid internationalised domain name (IDNA, UTS 46)",
        quoted(.domain)
    )]
    DomainIdna { domain: String },

    #[error("the domain {} is an address literal; tme does not accept those", quoted(.domain))]
    DomainAddressLiteral { domain: String },
}

impl AddressError {
    /// Moves the positions of a domain error found in a domain that starts after
    /// `characters_before` characters of a larger text, so they count from the larger text.
    fn with_domain_positions_after(self, characters_before: usize) -> Self {
        match self {
            AddressError::DomainBadCharacter {
                character,
                position,
            } => AddressError::DomainBadCharacter {
                character,
                position: position + characters_before,
            },
            other => other,
        }
    }
}

/// Writes user text between single quotes, with control characters escaped so a message
/// never carries a raw newline or terminal escape.
fn quoted(text: &str) -> String {
    format!("'{}'", text.escape_debug())
}

fn quoted_char(character: char) -> String {
    match character {
        '\'' => "\"'\"".to_owned(),
        '"' => "'\"'".to_owned(),
        _ => format!("'{}'", character.escape_debug()),
    }
}

// ---------------------------------------------------------------------------------------------
// Domain
// ---------------------------------------------------------------------------------------------

/// A validated mail domain, stored in lower-case ASCII (A-label) form.
///
/// Accepts ASCII and Unicode input; Unicode is converted with UTS 46 (the `idna` crate).
/// One trailing dot (the DNS root) is accepted and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain {
    ascii: String,
}

impl Domain {
    /// Parses and validates a domain. See the module documentation for the rules.
    pub fn parse(input: &str) -> Result<Domain, AddressError> {
        if input.len() > DOMAIN_INPUT_OCTETS_MAX {
            return Err(AddressError::DomainTooLong {
                length_octets: input.len(),
                limit_octets: DOMAIN_OCTETS_MAX,
            });
        }
        if input.starts_with('[') {
            return Err(AddressError::DomainAddressLiteral {
                domain: input.to_owned(),
            });
        }
        // Name offending ASCII characters ourselves, with their position: UTS 46 would only
        // say "invalid". Non-ASCII characters are left to UTS 46 mapping.
        for (index, character) in input.chars().enumerate() {
            if character.is_ascii() && !is_ldh_or_dot(character) {
                return Err(AddressError::DomainBadCharacter {
                    character,
                    position: index + 1,
                });
            }
        }
        let without_root = input.strip_suffix('.').unwrap_or(input);
        if without_root.is_empty() {
            return Err(AddressError::DomainEmpty);
        }
        // Check the labels as typed first, so messages quote what the user wrote.
        check_labels_shape(without_root, input)?;

        // UTS 46 ToASCII: maps (case folding, width, ignorables), checks the Unicode rules
        // and punycode-encodes. STD3 rules reject non-LDH results; hyphen positions and
        // lengths are checked below with precise messages.
        let ascii = Uts46::new()
            .to_ascii(
                without_root.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Ignore,
            )
            .map_err(|_| AddressError::DomainIdna {
                domain: input.to_owned(),
            })?;
        let mut ascii = ascii.into_owned();
        ascii.make_ascii_lowercase();
        // A full stop such as U+3002 maps to '.', so the mapped form may end in one.
        if let Some(stripped) = ascii.strip_suffix('.') {
            ascii = stripped.to_owned();
        }
        Domain::from_mapped_ascii(ascii, input)
    }

    /// Final checks on the A-label form, which is what the limits are defined on.
    fn from_mapped_ascii(ascii: String, input: &str) -> Result<Domain, AddressError> {
        if ascii.is_empty() {
            return Err(AddressError::DomainEmpty);
        }
        if ascii.len() > DOMAIN_OCTETS_MAX {
            return Err(AddressError::DomainTooLong {
                length_octets: ascii.len(),
                limit_octets: DOMAIN_OCTETS_MAX,
            });
        }
        if !ascii.chars().all(is_ldh_or_dot) {
            return Err(AddressError::DomainIdna {
                domain: input.to_owned(),
            });
        }
        check_labels_shape(&ascii, input)?;
        for label in ascii.split('.') {
            if label.len() > DOMAIN_LABEL_OCTETS_MAX {
                return Err(AddressError::DomainLabelTooLong {
                    label: label.to_owned(),
                    length_octets: label.len(),
                    limit_octets: DOMAIN_LABEL_OCTETS_MAX,
                });
            }
        }
        match ascii.rsplit_once('.') {
            None if !SINGLE_LABEL_DOMAINS_ALLOWED.contains(&ascii.as_str()) => {
                Err(AddressError::DomainSingleLabel {
                    domain: input.to_owned(),
                })
            }
            Some((_, top_level)) if top_level.bytes().all(|byte| byte.is_ascii_digit()) => {
                Err(AddressError::DomainNumericTopLevel {
                    domain: input.to_owned(),
                })
            }
            _ => Ok(Domain { ascii }),
        }
    }

    /// The canonical ASCII form: lower case, A-labels (`xn--...`) for internationalised
    /// labels, no trailing dot. Use it on the wire and as a key.
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// The form to show people: U-labels for internationalised labels
    /// (`xn--bcher-kva.example` shows as `bücher.example`).
    pub fn to_unicode(&self) -> String {
        let (unicode, result) = idna::domain_to_unicode(&self.ascii);
        match result {
            Ok(()) => unicode,
            // Cannot happen for a domain that passed `parse`; fall back to the safe form.
            Err(_) => self.ascii.clone(),
        }
    }
}

fn is_ldh_or_dot(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '-' || character == '.'
}

/// Empty labels and hyphens at the ends of labels (RFC 1035 §2.3.1, RFC 5891 §4.2.3.1).
/// Hyphens in the third and fourth positions are allowed: real names use them.
fn check_labels_shape(domain: &str, input: &str) -> Result<(), AddressError> {
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::DomainLabelEmpty {
                domain: input.to_owned(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::DomainLabelHyphen {
                label: label.to_owned(),
            });
        }
    }
    Ok(())
}

impl fmt::Display for Domain {
    /// Writes the canonical ASCII form; use [`Domain::to_unicode`] to show people.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.ascii)
    }
}

// ---------------------------------------------------------------------------------------------
// Local part
// ---------------------------------------------------------------------------------------------

/// A validated local part (the text before the `@`), RFC 5321 §4.1.2 with RFC 6531 UTF-8.
///
/// Holds the content with any quoting removed. Equality is exact (case-sensitive); use
/// [`LocalPart::canonical`] for lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalPart {
    content: String,
    /// Whether the content is not a dot-string and so must be quoted on the wire.
    quoted_on_wire: bool,
}

impl LocalPart {
    /// Parses a local part in wire form: a dot-string (`john.doe`) or a quoted-string
    /// (`"john doe"`).
    pub fn parse(input: &str) -> Result<LocalPart, AddressError> {
        if input.is_empty() {
            return Err(AddressError::LocalPartEmpty);
        }
        if input.len() > LOCAL_PART_OCTETS_MAX {
            return Err(AddressError::LocalPartTooLong {
                length_octets: input.len(),
                limit_octets: LOCAL_PART_OCTETS_MAX,
            });
        }
        let content = match input.strip_prefix('"') {
            Some(after_quote) => parse_quoted_content(after_quote)?,
            None => {
                check_dot_string(input)?;
                input.to_owned()
            }
        };
        // The written-back form is never longer than the input: it is either the bare
        // content or the content quoted with only the escapes that are required.
        LocalPart::from_content(&content)
    }

    /// Builds a local part from its content (no quoting), checking every character and the
    /// length of the wire form.
    fn from_content(content: &str) -> Result<LocalPart, AddressError> {
        if content.is_empty() {
            return Err(AddressError::LocalPartEmpty);
        }
        for (index, character) in content.chars().enumerate() {
            if !is_quoted_content_allowed(character) {
                return Err(AddressError::LocalPartBadCharacter {
                    character,
                    position: index + 1,
                });
            }
        }
        let local = LocalPart {
            content: content.to_owned(),
            quoted_on_wire: !is_dot_string(content),
        };
        let wire_octets = local.to_wire().len();
        if wire_octets > LOCAL_PART_OCTETS_MAX {
            return Err(AddressError::LocalPartTooLong {
                length_octets: wire_octets,
                limit_octets: LOCAL_PART_OCTETS_MAX,
            });
        }
        Ok(local)
    }

    /// The content, without quotes or escapes, case preserved: `"john doe"` gives
    /// `john doe`. This is not always valid on the wire; use `Display` for that.
    pub fn as_str(&self) -> &str {
        &self.content
    }

    /// Whether the wire form needs quotes (the content is not a dot-string).
    pub fn is_quoted_on_wire(&self) -> bool {
        self.quoted_on_wire
    }

    /// The lookup key: the content lower-cased (Unicode lower case), in wire form. Local
    /// parts are compared case-insensitively for lookup. Lower-casing a few non-ASCII
    /// characters lengthens them, so this key may exceed [`LOCAL_PART_OCTETS_MAX`]; it is a
    /// key, not something to send.
    pub fn canonical(&self) -> String {
        wire_form(&self.content.to_lowercase())
    }

    fn to_wire(&self) -> String {
        wire_form(&self.content)
    }
}

/// The shortest wire form of some content: bare when it is a dot-string, otherwise quoted
/// with `"` and `\` escaped (RFC 5321 §4.1.2 quoted-pairSMTP).
fn wire_form(content: &str) -> String {
    if is_dot_string(content) {
        return content.to_owned();
    }
    let mut wire = String::with_capacity(content.len() + 2);
    wire.push('"');
    for character in content.chars() {
        if character == '"' || character == '\\' {
            wire.push('\\');
        }
        wire.push(character);
    }
    wire.push('"');
    wire
}

/// atext of RFC 5322 §3.2.3, widened by RFC 6531 §3.3 to UTF-8 non-ASCII characters
/// (minus the look-alike hazards, see [`is_non_ascii_allowed`]).
fn is_atext(character: char) -> bool {
    character.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(character)
        || is_non_ascii_allowed(character)
}

/// Non-ASCII characters accepted in a local part. RFC 6531 allows any UTF-8 character; we
/// refuse controls, white space and invisible formatting characters, which can only make
/// two different addresses look the same.
fn is_non_ascii_allowed(character: char) -> bool {
    !character.is_ascii()
        && !character.is_control()
        && !character.is_whitespace()
        && !matches!(
            character,
            '\u{00AD}' // soft hyphen
                | '\u{061C}' // Arabic letter mark
                | '\u{180E}' // Mongolian vowel separator
                | '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM, RLM
                | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
                | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
                | '\u{FEFF}' // zero-width no-break space
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation controls
        )
}

/// Characters that may appear in the content of a quoted-string: qtextSMTP (RFC 5321
/// §4.1.2: ASCII 32–126 but `"` and `\`), plus `"` and `\` themselves, which are written as
/// quoted pairs, plus RFC 6531 UTF-8.
fn is_quoted_content_allowed(character: char) -> bool {
    matches!(character, ' '..='~') || is_non_ascii_allowed(character)
}

/// Dot-string = Atom *("." Atom) (RFC 5321 §4.1.2).
fn is_dot_string(content: &str) -> bool {
    !content.is_empty()
        && content
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Like [`is_dot_string`], but says what is wrong and where.
fn check_dot_string(input: &str) -> Result<(), AddressError> {
    let mut previous_was_dot = true; // a dot at the start is as bad as two in a row
    let mut character_count = 0;
    for (index, character) in input.chars().enumerate() {
        let position = index + 1;
        character_count = position;
        if character == '.' {
            if previous_was_dot {
                return Err(AddressError::LocalPartMisplacedDot { position });
            }
            previous_was_dot = true;
        } else if is_atext(character) {
            previous_was_dot = false;
        } else {
            return Err(AddressError::LocalPartBadCharacter {
                character,
                position,
            });
        }
    }
    if previous_was_dot {
        return Err(AddressError::LocalPartMisplacedDot {
            position: character_count,
        });
    }
    Ok(())
}

/// Parses the rest of a quoted-string after its opening quote and returns the content.
/// Positions count from the opening quote, which is position 1.
fn parse_quoted_content(after_quote: &str) -> Result<String, AddressError> {
    let mut content = String::with_capacity(after_quote.len());
    let mut characters = after_quote
        .chars()
        .enumerate()
        .map(|(index, c)| (index + 2, c));
    while let Some((position, character)) = characters.next() {
        match character {
            '"' => {
                if let Some((position, _)) = characters.next() {
                    return Err(AddressError::LocalPartTextAfterQuote { position });
                }
                return Ok(content);
            }
            // quoted-pairSMTP = %d92 %d32-126: RFC 6531 does not widen it to UTF-8.
            '\\' => match characters.next() {
                Some((_, escaped @ ' '..='~')) => content.push(escaped),
                Some(_) => return Err(AddressError::LocalPartBadEscape { position }),
                None => return Err(AddressError::LocalPartUnterminatedQuote),
            },
            _ if is_quoted_content_allowed(character) => content.push(character),
            _ => {
                return Err(AddressError::LocalPartBadCharacter {
                    character,
                    position,
                });
            }
        }
    }
    Err(AddressError::LocalPartUnterminatedQuote)
}

impl fmt::Display for LocalPart {
    /// Writes the shortest valid wire form, quoted only when needed.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted_on_wire {
            formatter.write_str(&wire_form(&self.content))
        } else {
            formatter.write_str(&self.content)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Address
// ---------------------------------------------------------------------------------------------

/// A validated address `local@domain`, with no display name, comments or angle brackets.
///
/// Equality is exact on the local part and canonical on the domain; use
/// [`EmailAddress::canonical`] for directory lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    local: LocalPart,
    domain: Domain,
}

impl EmailAddress {
    /// Parses `local@domain`. The address is split at its last `@`, since a quoted local
    /// part may contain `@` but a domain cannot.
    pub fn parse(input: &str) -> Result<EmailAddress, AddressError> {
        if input.is_empty() {
            return Err(AddressError::AddressEmpty);
        }
        if input.len() > ADDRESS_OCTETS_MAX {
            return Err(AddressError::AddressTooLong {
                length_octets: input.len(),
                limit_octets: ADDRESS_OCTETS_MAX,
            });
        }
        let Some((local_text, domain_text)) = input.rsplit_once('@') else {
            return Err(AddressError::AddressMissingAt {
                address: input.to_owned(),
            });
        };
        let local = LocalPart::parse(local_text)?;
        if domain_text.is_empty() {
            return Err(AddressError::DomainEmpty);
        }
        let characters_before_domain = local_text.chars().count() + 1;
        let domain = Domain::parse(domain_text)
            .map_err(|error| error.with_domain_positions_after(characters_before_domain))?;
        EmailAddress::new(local, domain)
    }

    /// Joins a local part and a domain, checking the length of the whole.
    pub fn new(local: LocalPart, domain: Domain) -> Result<EmailAddress, AddressError> {
        let address = EmailAddress { local, domain };
        let wire_octets = address.to_string().len();
        if wire_octets > ADDRESS_OCTETS_MAX {
            return Err(AddressError::AddressTooLong {
                length_octets: wire_octets,
                limit_octets: ADDRESS_OCTETS_MAX,
            });
        }
        Ok(address)
    }

    pub fn local(&self) -> &LocalPart {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The directory key: lower-cased local part in wire form, `@`, ASCII domain.
    /// `"John Doe"@Bücher.Example` gives `"john doe"@xn--bcher-kva.example`.
    pub fn canonical(&self) -> String {
        format!("{}@{}", self.local.canonical(), self.domain.as_str())
    }

    /// The form to show people: the domain in U-labels.
    pub fn to_unicode(&self) -> String {
        format!("{}@{}", self.local, self.domain.to_unicode())
    }

    /// Plus-addressing (subaddressing): `user+tag@d` gives (`user@d`, `Some("tag")`).
    ///
    /// Only the first `separator` counts (`a+b+c` gives `a` and `b+c`); a tag may be empty
    /// (`user+@d` gives `Some("")`). A local part that starts with the separator is not
    /// split, and neither is one whose base would not be a valid local part (this can only
    /// happen at the length limit, when the base needs quotes the whole did not). The base
    /// keeps the case of the original. Splitting works on the content, so a quoted local
    /// part splits too.
    pub fn split_plus(&self, separator: char) -> (EmailAddress, Option<String>) {
        let content = self.local.as_str();
        let Some(separator_index) = content.find(separator) else {
            return (self.clone(), None);
        };
        if separator_index == 0 {
            return (self.clone(), None);
        }
        let base_content = &content[..separator_index];
        let tag = &content[separator_index + separator.len_utf8()..];
        let base = LocalPart::from_content(base_content)
            .and_then(|local| EmailAddress::new(local, self.domain.clone()));
        match base {
            Ok(base) => (base, Some(tag.to_owned())),
            Err(_) => (self.clone(), None),
        }
    }
}

impl fmt::Display for EmailAddress {
    /// Writes the wire form: local part quoted only when needed, `@`, ASCII domain.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}@{}", self.local, self.domain)
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions shared by the three types: FromStr, and serde as a string that is validated on
// the way in.
// ---------------------------------------------------------------------------------------------

macro_rules! string_conversions {
    ($type:ident) => {
        impl FromStr for $type {
            type Err = AddressError;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                $type::parse(input)
            }
        }

        impl TryFrom<&str> for $type {
            type Error = AddressError;

            fn try_from(input: &str) -> Result<Self, Self::Error> {
                $type::parse(input)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $type::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_conversions!(Domain);
string_conversions!(LocalPart);
string_conversions!(EmailAddress);

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check_domain(input: &str, expected: Expect) {
        let actual = match Domain::parse(input) {
            Ok(domain) => format!("ok {} ({})", domain, domain.to_unicode()),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    fn check_local(input: &str, expected: Expect) {
        let actual = match LocalPart::parse(input) {
            Ok(local) => format!(
                "ok wire={local} content={:?} canonical={}",
                local.as_str(),
                local.canonical()
            ),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    fn check_address(input: &str, expected: Expect) {
        let actual = match EmailAddress::parse(input) {
            Ok(address) => format!("ok {address} canonical={}", address.canonical()),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    fn check_split(input: &str, separator: char, expected: Expect) {
        let address = match EmailAddress::parse(input) {
            Ok(address) => address,
            Err(error) => panic!("test input {input:?} does not parse: {error}"),
        };
        let (base, tag) = address.split_plus(separator);
        expected.assert_eq(&format!("{base} {tag:?}"));
    }

    #[test]
    fn domain_ascii() {
        check_domain("example.com", expect![["ok example.com (example.com)"]]);
        check_domain(
            "Mail.EXAMPLE.Com",
            expect![["ok mail.example.com (mail.example.com)"]],
        );
        check_domain("example.com.", expect![["ok example.com (example.com)"]]);
        check_domain(
            "a-b.c-d.example",
            expect![["ok a-b.c-d.example (a-b.c-d.example)"]],
        );
        check_domain(
            "r3---sn-ab.example",
            expect![["ok r3---sn-ab.example (r3---sn-ab.example)"]],
        );
        check_domain("123.example", expect![["ok 123.example (123.example)"]]);
        check_domain("localhost", expect![["ok localhost (localhost)"]]);
        check_domain("LocalHost.", expect![["ok localhost (localhost)"]]);
    }

    #[test]
    fn domain_rejected() {
        check_domain("", expect![["error: the domain is empty"]]);
        check_domain(".", expect![["error: the domain is empty"]]);
        check_domain(
            "x..y",
            expect![[
                "error: the domain 'x..y' has an empty label (a dot at the start, or two dots in a row)"
            ]],
        );
        check_domain(
            ".example.com",
            expect![[
                "error: the domain '.example.com' has an empty label (a dot at the start, or two dots in a row)"
            ]],
        );
        check_domain(
            "example.com..",
            expect![[
                "error: the domain 'example.com..' has an empty label (a dot at the start, or two dots in a row)"
            ]],
        );
        check_domain(
            "-bad.example",
            expect![["error: the domain label '-bad' must not start or end with a hyphen"]],
        );
        check_domain(
            "bad-.example",
            expect![["error: the domain label 'bad-' must not start or end with a hyphen"]],
        );
        check_domain(
            "under_score.example",
            expect![[
                "error: the character '_' at position 6 is not allowed in a domain (only letters, digits, hyphens and dots are)"
            ]],
        );
        check_domain(
            "exa mple.com",
            expect![[
                "error: the character ' ' at position 4 is not allowed in a domain (only letters, digits, hyphens and dots are)"
            ]],
        );
        check_domain(
            "ex\nample.com",
            expect![[
                "error: the character '\\n' at position 3 is not allowed in a domain (only letters, digits, hyphens and dots are)"
            ]],
        );
        check_domain(
            "example",
            expect![[
                "error: the domain 'example' has a single label; a mail domain needs at least two, like example.com"
            ]],
        );
        check_domain(
            "192.0.2.1",
            expect![[
                "error: the domain '192.0.2.1' ends in an all-digit label; it looks like an IP address, which is not a domain"
            ]],
        );
        check_domain(
            "[192.0.2.1]",
            expect![[
                "error: the domain '[192.0.2.1]' is an address literal; tme does not accept those"
            ]],
        );
        check_domain(
            "xn--zz--.example",
            expect![["error: the domain label 'xn--zz--' must not start or end with a hyphen"]],
        );
        check_domain(
            "xn--a.example",
            expect![[
                "error: the domain 'xn--a.example' is not a valid internationalised domain name (IDNA, UTS 46)"
            ]],
        );
    }

    #[test]
    fn domain_idna() {
        check_domain(
            "bücher.example",
            expect![["ok xn--bcher-kva.example (bücher.example)"]],
        );
        check_domain(
            "BÜCHER.Example",
            expect![["ok xn--bcher-kva.example (bücher.example)"]],
        );
        check_domain(
            "XN--BCHER-KVA.example",
            expect![["ok xn--bcher-kva.example (bücher.example)"]],
        );
        check_domain(
            "例え.テスト",
            expect![["ok xn--r8jz45g.xn--zckzah (例え.テスト)"]],
        );
        // U+3002 IDEOGRAPHIC FULL STOP separates labels too (UTS 46 maps it to '.').
        check_domain(
            "例え。テスト",
            expect![["ok xn--r8jz45g.xn--zckzah (例え.テスト)"]],
        );
        // Full-width letters map to ASCII.
        check_domain(
            "ｅｘａｍｐｌｅ.com",
            expect![["ok example.com (example.com)"]],
        );
        check_domain(
            "bad\u{FFFD}.example",
            expect![[
                "error: the domain 'bad\u{fffd}.example' is not a valid internationalised domain name (IDNA, UTS 46)"
            ]],
        );
        check_domain(
            "a\u{2100}b.example",
            expect![
                "error: the domain 'a℀b.example' is not a valid internationalised domain name (IDNA, UTS 46)"
            ],
        );
    }

    #[test]
    fn domain_lengths() {
        let label_at_limit = "a".repeat(DOMAIN_LABEL_OCTETS_MAX);
        let parsed = Domain::parse(&format!("{label_at_limit}.example"));
        assert!(parsed.is_ok(), "{parsed:?}");
        check_domain(
            &format!("{label_at_limit}b.example"),
            expect![[
                "error: the domain label 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab' is 64 octets long; the limit is 63"
            ]],
        );
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 octets.
        let domain_at_limit = format!(
            "{label_at_limit}.{label_at_limit}.{label_at_limit}.{}",
            "c".repeat(61)
        );
        assert_eq!(domain_at_limit.len(), DOMAIN_OCTETS_MAX);
        let parsed = Domain::parse(&domain_at_limit);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(Domain::parse(&format!("{domain_at_limit}.")).is_ok());
        check_domain(
            &format!("{domain_at_limit}c"),
            expect![["error: the domain is 254 octets long; the limit is 253"]],
        );
        check_domain(
            &"a.".repeat(600),
            expect![["error: the domain is 1200 octets long; the limit is 253"]],
        );
        // 60 two-octet characters (120 octets typed) give a 66-octet A-label.
        check_domain(
            &format!("{}.example", "ü".repeat(60)),
            expect![
                "error: the domain label 'xn--tdaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is 66 octets long; the limit is 63"
            ],
        );
    }

    #[test]
    fn domain_equality_and_order_use_canonical_form() {
        let unicode = Domain::parse("Bücher.Example").ok();
        let ascii = Domain::parse("xn--bcher-kva.example").ok();
        assert!(unicode.is_some());
        assert_eq!(unicode, ascii);
        let mut domains: Vec<Domain> = ["b.example", "A.example", "c.Example"]
            .iter()
            .filter_map(|text| Domain::parse(text).ok())
            .collect();
        domains.sort();
        let sorted: Vec<&str> = domains.iter().map(Domain::as_str).collect();
        assert_eq!(sorted, ["a.example", "b.example", "c.example"]);
    }

    #[test]
    fn local_part_dot_string() {
        check_local(
            "john.doe",
            expect![[r#"ok wire=john.doe content="john.doe" canonical=john.doe"#]],
        );
        check_local(
            "John.Doe",
            expect![[r#"ok wire=John.Doe content="John.Doe" canonical=john.doe"#]],
        );
        check_local(
            "!#$%&'*+-/=?^_`{|}~",
            expect![[
                r#"ok wire=!#$%&'*+-/=?^_`{|}~ content="!#$%&'*+-/=?^_`{|}~" canonical=!#$%&'*+-/=?^_`{|}~"#
            ]],
        );
        check_local(
            "",
            expect![["error: the local part (before the '@') is empty"]],
        );
        check_local(
            ".john",
            expect![[
                "error: the local part (before the '@') must not start or end with a dot or have two dots in a row (dot at position 1)"
            ]],
        );
        check_local(
            "john.",
            expect![[
                "error: the local part (before the '@') must not start or end with a dot or have two dots in a row (dot at position 5)"
            ]],
        );
        check_local(
            "jo..hn",
            expect![[
                "error: the local part (before the '@') must not start or end with a dot or have two dots in a row (dot at position 4)"
            ]],
        );
        check_local(
            "john doe",
            expect![[
                "error: the character ' ' at position 5 is not allowed in the local part (before the '@')"
            ]],
        );
        check_local(
            "jo(hn)",
            expect![[
                "error: the character '(' at position 3 is not allowed in the local part (before the '@')"
            ]],
        );
        check_local(
            "jo\"hn\"",
            expect![[
                "error: the character '\"' at position 3 is not allowed in the local part (before the '@')"
            ]],
        );
        check_local(
            "tab\there",
            expect![[
                "error: the character '\\t' at position 4 is not allowed in the local part (before the '@')"
            ]],
        );
    }

    #[test]
    fn local_part_quoted() {
        // Needless quotes are dropped: same mailbox (RFC 5322 §3.2.4).
        check_local(
            "\"john\"",
            expect![[r#"ok wire=john content="john" canonical=john"#]],
        );
        check_local(
            "\"John Doe\"",
            expect![[r#"ok wire="John Doe" content="John Doe" canonical="john doe""#]],
        );
        check_local(
            "\"john..doe\"",
            expect![[r#"ok wire="john..doe" content="john..doe" canonical="john..doe""#]],
        );
        check_local(
            r#""a\"b\\c""#,
            expect![[r#"ok wire="a\"b\\c" content="a\"b\\c" canonical="a\"b\\c""#]],
        );
        // A needless escape is dropped too.
        check_local(r#""\a""#, expect![[r#"ok wire=a content="a" canonical=a"#]]);
        check_local(
            "\"a@b\"",
            expect![[r#"ok wire="a@b" content="a@b" canonical="a@b""#]],
        );
        check_local(
            "\"\"",
            expect![["error: the local part (before the '@') is empty"]],
        );
        check_local(
            "\"john",
            expect![["error: the local part (before the '@') opens a quote that is never closed"]],
        );
        check_local(
            r#""john\""#,
            expect![["error: the local part (before the '@') opens a quote that is never closed"]],
        );
        check_local(
            "\"john\"doe",
            expect![[
                "error: the local part (before the '@') has text after its closing quote, at position 7"
            ]],
        );
        check_local(
            "\"jo\thn\"",
            expect![[
                "error: the character '\\t' at position 4 is not allowed in the local part (before the '@')"
            ]],
        );
        check_local(
            "\"jo\\\u{e9}\"",
            expect![[
                "error: the backslash at position 4 in the quoted local part must be followed by a printable ASCII character or a space"
            ]],
        );
    }

    #[test]
    fn local_part_utf8() {
        check_local(
            "用户",
            expect![[r#"ok wire=用户 content="用户" canonical=用户"#]],
        );
        check_local(
            "Jörg.Müller",
            expect![[r#"ok wire=Jörg.Müller content="Jörg.Müller" canonical=jörg.müller"#]],
        );
        check_local(
            "ΔΙΟΝΥΣΟΣ",
            expect![[r#"ok wire=ΔΙΟΝΥΣΟΣ content="ΔΙΟΝΥΣΟΣ" canonical=διονυσος"#]],
        );
        check_local(
            "\"Jörg Müller\"",
            expect![[r#"ok wire="Jörg Müller" content="Jörg Müller" canonical="jörg müller""#]],
        );
        check_local(
            "admin\u{202E}",
            expect![[
                r#"error: the character '\u{202e}' at position 6 is not allowed in the local part (before the '@')"#
            ]],
        );
        check_local(
            "ad\u{200B}min",
            expect![[
                r#"error: the character '\u{200b}' at position 3 is not allowed in the local part (before the '@')"#
            ]],
        );
        check_local(
            "no\u{00A0}break",
            expect![[
                r#"error: the character '\u{a0}' at position 3 is not allowed in the local part (before the '@')"#
            ]],
        );
        check_local(
            "c1\u{0085}",
            expect![[
                r#"error: the character '\u{85}' at position 3 is not allowed in the local part (before the '@')"#
            ]],
        );
    }

    #[test]
    fn local_part_lengths() {
        let at_limit = "a".repeat(LOCAL_PART_OCTETS_MAX);
        assert!(LocalPart::parse(&at_limit).is_ok());
        check_local(
            &format!("{at_limit}a"),
            expect![["error: the local part (before the '@') is 65 octets long; the limit is 64"]],
        );
        // The limit counts octets: 32 two-octet characters fit, 33 do not.
        assert!(LocalPart::parse(&"é".repeat(32)).is_ok());
        check_local(
            &"é".repeat(33),
            expect![["error: the local part (before the '@') is 66 octets long; the limit is 64"]],
        );
        // Quotes count: 62 characters plus two quotes is the limit.
        assert!(LocalPart::parse(&format!("\"{}\"", " ".repeat(62))).is_ok());
        check_local(
            &format!("\"{}\"", " ".repeat(63)),
            expect![["error: the local part (before the '@') is 65 octets long; the limit is 64"]],
        );
    }

    #[test]
    fn address_parse() {
        check_address(
            "user@example.com",
            expect![["ok user@example.com canonical=user@example.com"]],
        );
        check_address(
            "John.Doe@Example.COM",
            expect![["ok John.Doe@example.com canonical=john.doe@example.com"]],
        );
        check_address(
            "\"John Doe\"@bücher.example",
            expect![[
                r#"ok "John Doe"@xn--bcher-kva.example canonical="john doe"@xn--bcher-kva.example"#
            ]],
        );
        check_address(
            "\"a@b\"@example.com",
            expect![[r#"ok "a@b"@example.com canonical="a@b"@example.com"#]],
        );
        check_address(
            "\"user\"@example.com",
            expect![["ok user@example.com canonical=user@example.com"]],
        );
        check_address(
            "用户@例え.テスト",
            expect![["ok 用户@xn--r8jz45g.xn--zckzah canonical=用户@xn--r8jz45g.xn--zckzah"]],
        );
        check_address(
            "root@localhost",
            expect![["ok root@localhost canonical=root@localhost"]],
        );
        check_address("", expect![["error: the address is empty"]]);
        check_address(
            "user.example.com",
            expect![[
                "error: the address 'user.example.com' has no '@' between the local part and the domain"
            ]],
        );
        check_address(
            "@example.com",
            expect![["error: the local part (before the '@') is empty"]],
        );
        check_address("user@", expect![["error: the domain is empty"]]);
        check_address(
            "a@b@example.com",
            expect![[
                "error: the character '@' at position 2 is not allowed in the local part (before the '@')"
            ]],
        );
        check_address(
            "user@exa_mple.com",
            expect![[
                "error: the character '_' at position 9 is not allowed in a domain (only letters, digits, hyphens and dots are)"
            ]],
        );
        check_address(
            "<user@example.com>",
            expect![[
                "error: the character '<' at position 1 is not allowed in the local part (before the '@')"
            ]],
        );
        check_address(
            " user@example.com",
            expect![[
                "error: the character ' ' at position 1 is not allowed in the local part (before the '@')"
            ]],
        );
        check_address(
            "user@[192.0.2.1]",
            expect![[
                "error: the domain '[192.0.2.1]' is an address literal; tme does not accept those"
            ]],
        );
    }

    #[test]
    fn address_lengths() {
        let local = "l".repeat(LOCAL_PART_OCTETS_MAX);
        let label = "d".repeat(DOMAIN_LABEL_OCTETS_MAX);
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 octets.
        let at_limit = format!("{local}@{label}.{label}.{}", "e".repeat(61));
        assert_eq!(at_limit.len(), ADDRESS_OCTETS_MAX);
        let parsed = EmailAddress::parse(&at_limit);
        assert!(parsed.is_ok(), "{parsed:?}");
        check_address(
            &format!("{at_limit}e"),
            expect![["error: the address is 255 octets long; the limit is 254"]],
        );
        // Short as typed, too long once the domain is in A-labels: "aü" (3 octets) is
        // "xn--a-tba" (9 octets).
        let grows = format!("{local}@{}example", "aü.".repeat(20));
        assert!(grows.len() <= ADDRESS_OCTETS_MAX);
        check_address(
            &grows,
            expect!["error: the address is 272 octets long; the limit is 254"],
        );
    }

    #[test]
    fn address_equality_is_exact_on_local_part() {
        let upper = EmailAddress::parse("User@Example.com").ok();
        let lower = EmailAddress::parse("user@example.com").ok();
        assert!(upper.is_some() && lower.is_some());
        assert_ne!(upper, lower);
        assert_eq!(
            upper.map(|address| address.canonical()),
            lower.map(|address| address.canonical())
        );
        let quoted = EmailAddress::parse("\"user\"@example.com").ok();
        let bare = EmailAddress::parse("user@example.com").ok();
        assert_eq!(quoted, bare);
    }

    #[test]
    fn canonical_form_parses_back_to_itself() {
        for input in [
            "User@Example.com",
            "\"John Doe\"@Bücher.Example",
            r#""A\"B"@example.com"#,
            "Jörg@example.com",
        ] {
            let canonical = match EmailAddress::parse(input) {
                Ok(address) => address.canonical(),
                Err(error) => panic!("{input}: {error}"),
            };
            let reparsed = EmailAddress::parse(&canonical).map(|address| address.canonical());
            assert_eq!(reparsed.as_deref(), Ok(canonical.as_str()), "{input}");
        }
    }

    #[test]
    fn plus_addressing() {
        check_split(
            "user+tag@example.com",
            '+',
            expect![[r#"user@example.com Some("tag")"#]],
        );
        check_split(
            "User+Tag@example.com",
            '+',
            expect![[r#"User@example.com Some("Tag")"#]],
        );
        check_split(
            "user+a+b@example.com",
            '+',
            expect![[r#"user@example.com Some("a+b")"#]],
        );
        check_split(
            "user+@example.com",
            '+',
            expect![[r#"user@example.com Some("")"#]],
        );
        check_split("user@example.com", '+', expect![["user@example.com None"]]);
        check_split(
            "+user@example.com",
            '+',
            expect![["+user@example.com None"]],
        );
        check_split("+@example.com", '+', expect![["+@example.com None"]]);
        check_split(
            "user-tag@example.com",
            '-',
            expect![[r#"user@example.com Some("tag")"#]],
        );
        check_split(
            "user-tag@example.com",
            '+',
            expect![["user-tag@example.com None"]],
        );
        check_split(
            "\"john doe+tag\"@example.com",
            '+',
            expect![[r#""john doe"@example.com Some("tag")"#]],
        );
        // The base of a.+b is "a.", which needs quotes: still valid here.
        check_split(
            "a.+b@example.com",
            '+',
            expect![[r#""a."@example.com Some("b")"#]],
        );
        check_split(
            "jörg+news@example.com",
            '+',
            expect![[r#"jörg@example.com Some("news")"#]],
        );
    }

    #[test]
    fn plus_addressing_keeps_the_whole_when_the_base_would_be_too_long() {
        // 62 + ".+" = 64 octets; the base "xxx." would need quotes: 65 octets.
        let input = format!("{}.+@example.com", "x".repeat(62));
        let address = EmailAddress::parse(&input);
        assert!(address.is_ok(), "{address:?}");
        if let Ok(address) = address {
            let (base, tag) = address.split_plus('+');
            assert_eq!(base, address);
            assert_eq!(tag, None);
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Entry {
            address: EmailAddress,
            domain: Domain,
            local: LocalPart,
        }
        let text = "address = \"\\\"John Doe\\\"@Bücher.Example\"\ndomain = \"Bücher.Example\"\nlocal = \"\\\"x\\\"\"\n";
        let entry: Result<Entry, _> = toml::from_str(text);
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => panic!("{error}"),
        };
        let written = toml::to_string(&entry).map_err(|error| error.to_string());
        expect![[r#"
            Ok(
                "address = '\"John Doe\"@xn--bcher-kva.example'\ndomain = \"xn--bcher-kva.example\"\nlocal = \"x\"\n",
            )
        "#]]
        .assert_debug_eq(&written);

        let bad: Result<Entry, _> =
            toml::from_str("address = \"a..b@example.com\"\ndomain = \"x\"\nlocal = \"y\"\n");
        let message = bad.err().map(|error| error.message().to_owned());
        expect![[r#"
            Some(
                "the local part (before the '@') must not start or end with a dot or have two dots in a row (dot at position 3)",
            )
        "#]]
        .assert_debug_eq(&message);
    }

    #[test]
    fn from_str_matches_parse() {
        let parsed: Result<EmailAddress, _> = "user@example.com".parse();
        assert_eq!(parsed, EmailAddress::parse("user@example.com"));
        let domain: Result<Domain, _> = "EXAMPLE.com".parse();
        assert_eq!(
            domain.map(|domain| domain.to_string()).as_deref(),
            Ok("example.com")
        );
    }
}
