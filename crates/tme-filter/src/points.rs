//! The spam points of our own rules, in one table so that they can be read and tuned
//! together. With `filter.junk_score_min` at its default of 5, no single authentication
//! finding files a message in Junk by points alone; two independent bad signs do (SPF fail
//! and DMARC fail, or a blocklist listing and no authentication at all). DMARC
//! `p=quarantine` and `p=reject` act by policy, not by points.
//!
//! Passing results add nothing: a pass proves a domain sent the message, not that the
//! domain is good. DNS trouble adds nothing either: a temporary error says nothing about
//! the sender.

/// SPF for the MAIL FROM identity (or HELO for the null sender): the domain says this
/// client may not send for it (RFC 7208 §2.6.4).
pub const SPF_FAIL: f64 = 3.0;
/// The domain says the client is probably not allowed (RFC 7208 §2.6.5).
pub const SPF_SOFTFAIL: f64 = 1.5;
/// The SPF record is broken (RFC 7208 §2.6.7).
pub const SPF_PERMERROR: f64 = 0.5;
/// SPF for the HELO name fails while MAIL FROM is checked separately.
pub const SPF_HELO_FAIL: f64 = 1.0;
/// A DKIM signature fails and none passes (RFC 6376 §6.1 PERMFAIL).
pub const DKIM_FAIL: f64 = 1.5;
/// DMARC fails and the domain publishes `p=none`.
pub const DMARC_FAIL: f64 = 2.0;
/// DMARC fails under `p=quarantine`: the message goes to Junk whatever the score; the
/// points say so in the score too.
pub const DMARC_QUARANTINE: f64 = 3.0;
/// An ARC chain is present and broken (RFC 8617 §5.2).
pub const ARC_FAIL: f64 = 1.0;
/// No DKIM signature and no SPF verdict (none or neutral): nothing vouches for the sender.
pub const AUTHENTICATION_NONE: f64 = 1.0;
/// An `Authentication-Results` field that claims to come from this node was in the message
/// as received (RFC 8601 §5).
pub const AUTHENTICATION_RESULTS_FORGED: f64 = 1.0;
