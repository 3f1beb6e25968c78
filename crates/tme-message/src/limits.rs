//! Every bound that `summarize` applies, in one place.
//!
//! A message comes from the outside world, so each thing whose count or size it controls has
//! a ceiling here. Reaching a ceiling never fails the summary: the work past it is skipped,
//! the skipped region stays reachable as raw bytes, and `MessageSummary::limits_reached`
//! records that it happened. This module holds numbers only; it must not hold logic.

/// Most body parts (every node of the tree, nested message roots included) that one summary
/// describes. When the budget runs out, the multipart being walked keeps the children it
/// already has and its remaining children are left out; a part that would need more
/// parts than remain is kept as an opaque leaf (no children, no nested message).
pub const PARTS_MAX: usize = 5_000;

/// Deepest nesting of multiparts and message/rfc822 parts below the top-level message (the
/// root part is at depth 0). A container at this depth is kept as an opaque leaf. This also
/// bounds the recursion of the walker, of `Drop`, and of serde (about two JSON levels per
/// nesting level, well under serde_json's default recursion limit of 128).
pub const NESTING_DEPTH_MAX: usize = 32;

/// Most header fields recorded per header block (top-level index, and the fields looked at
/// in each MIME part header). Scanning goes on past it to find where the header ends.
pub const HEADER_FIELDS_MAX: usize = 1_000;

/// Longest stored text taken from one header value (raw envelope strings, decoded subject,
/// parameter values, Content-Description, ...). Longer values are cut at a character
/// boundary when they are valid UTF-8.
pub const VALUE_BYTES_MAX: usize = 16 * 1024;

/// Most addresses kept per address header (envelope entries include group markers).
pub const ADDRESSES_MAX: usize = 1_000;

/// Longest address-list or message-id-list field value that is parsed (From, To, Cc, ...,
/// In-Reply-To, References). A longer value is cut: References from the front, since its
/// last ids matter most to threading, the others from the back.
pub const LIST_FIELD_BYTES_MAX: usize = 64 * 1024;

/// Total bytes of header values kept in body parts and nested envelopes over the whole
/// tree (parameters, Content-ID, Content-Description, ...). Once spent, further parts keep
/// only their type, subtype, transfer encoding, charset and offsets, and further nested
/// envelopes are left empty. Together with the per-value limits this keeps a summary small
/// (the store caps a summary at 64 MiB of JSON) whatever the message holds.
pub const PART_VALUE_BYTES_TOTAL_MAX: usize = 4 * 1024 * 1024;

/// Longest header field name kept in the header index; a longer one is cut (no real field
/// name comes near it).
pub const FIELD_NAME_BYTES_MAX: usize = 256;

/// Most message ids kept from In-Reply-To and from References (the last ones of References
/// are kept, because threading needs the nearest ancestors most).
pub const MESSAGE_IDS_MAX: usize = 256;

/// Most Content-Type or Content-Disposition parameters kept per part.
pub const PARAMETERS_MAX: usize = 64;

/// Most Content-Language tags kept per part.
pub const LANGUAGES_MAX: usize = 32;

/// Longest multipart boundary accepted (RFC 2046 §5.1.1 allows 70); a longer one is treated
/// as no boundary, so the multipart has no children.
pub const BOUNDARY_BYTES_MAX: usize = 256;

/// Length of `MessageSummary::preview`, in Unicode scalar values.
pub const PREVIEW_CHARS_MAX: usize = 256;

/// How many encoded body bytes of the chosen text part are decoded to build the preview.
pub const PREVIEW_SOURCE_BYTES_MAX: usize = 64 * 1024;
