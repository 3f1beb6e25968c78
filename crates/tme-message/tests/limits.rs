//! Hostile shapes: many parts, deep nesting, huge headers and random damage must neither
//! exhaust memory or stack nor break the offset promises; limits show in the summary.

mod common;

use std::time::{Duration, Instant};

use tme_message::limits::{HEADER_FIELDS_MAX, NESTING_DEPTH_MAX, PARTS_MAX, PREVIEW_CHARS_MAX};
use tme_message::{BodyPart, MessageSummary, summarize};

/// Summarizes and runs every shared check, within a time budget generous enough for a
/// debug build on a slow machine yet far below what runaway work would take.
fn summarize_checked(raw: &[u8], context: &str) -> MessageSummary {
    let started = Instant::now();
    let summary = summarize(raw);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{context}: summarize took {:?}",
        started.elapsed()
    );
    common::check_summary(&summary, raw.len(), context);
    common::check_sections(&summary, context);
    common::check_round_trip(&summary, context);
    summary
}

fn depth(part: &BodyPart) -> usize {
    let below_children = part.children.iter().map(depth).max().unwrap_or(0);
    let below_message = part
        .message
        .as_ref()
        .map_or(0, |message| depth(&message.body));
    1 + below_children.max(below_message)
}

#[test]
fn ten_thousand_parts_are_cut_at_the_parts_limit() {
    let mut raw = String::from("Content-Type: multipart/mixed; boundary=b\n\n");
    for index in 0..10_000 {
        raw.push_str(&format!("--b\nContent-Type: text/plain\n\npart {index}\n"));
    }
    raw.push_str("--b--\n");
    let summary = summarize_checked(raw.as_bytes(), "10,000 parts");
    assert!(summary.limits_reached);
    assert_eq!(common::count_parts(&summary.body), PARTS_MAX);
    assert_eq!(summary.body.children.len(), PARTS_MAX - 1);
    assert_eq!(summary.preview, "part 0");
}

#[test]
fn a_million_empty_parts_cost_little() {
    // About 5 bytes per part: the walk must stop at the limit, not collect them all.
    let mut raw = String::from("Content-Type: multipart/mixed; boundary=b\n\n");
    raw.push_str(&"--b\n".repeat(1_000_000));
    let summary = summarize_checked(raw.as_bytes(), "a million parts");
    assert!(summary.limits_reached);
    assert_eq!(common::count_parts(&summary.body), PARTS_MAX);
}

#[test]
fn deep_multipart_nesting_is_cut_at_the_depth_limit() {
    let levels = 10_000;
    let mut raw = String::new();
    for level in 0..levels {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n"
        ));
    }
    raw.push_str("\ninnermost\n");
    let summary = summarize_checked(raw.as_bytes(), "deep multiparts");
    assert!(summary.limits_reached);
    assert_eq!(depth(&summary.body), NESTING_DEPTH_MAX + 1);
}

#[test]
fn deep_message_rfc822_nesting_is_cut_at_the_depth_limit() {
    // mail-parser's own tree, dropped recursively, overflows a test thread's 2 MiB stack at
    // this depth in a debug build (and, in a release build, an 8 MiB stack at 300,000).
    let raw = "Content-Type: message/rfc822\n\n".repeat(30_000) + "Subject: x\n\nhi\n";
    let summary = summarize_checked(raw.as_bytes(), "deep messages");
    assert!(summary.limits_reached);
    assert_eq!(depth(&summary.body), NESTING_DEPTH_MAX + 1);
}

#[test]
fn deepest_allowed_tree_round_trips_through_json() {
    // Alternating multipart and message/rfc822 levels, each exactly as deep as allowed:
    // serde_json's recursion limit must not be reached.
    let mut raw = String::from("Subject: deep\n");
    for level in 0..NESTING_DEPTH_MAX {
        if level % 2 == 0 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n"
            ));
        } else {
            raw.push_str("Content-Type: message/rfc822\n\n");
        }
    }
    raw.push_str("Content-Type: text/plain; name=\"\u{e9}\"\n\nleaf\n");
    let summary = summarize_checked(raw.as_bytes(), "deepest allowed tree");
    assert!(!summary.limits_reached);
    assert_eq!(depth(&summary.body), NESTING_DEPTH_MAX + 1);
}

#[test]
fn huge_headers_are_indexed_up_to_the_limit() {
    let mut raw = String::new();
    for index in 0..(HEADER_FIELDS_MAX * 3) {
        raw.push_str(&format!("X-Field-{index}: value\n"));
    }
    raw.push_str(&format!("Subject: {}\n", "long ".repeat(100_000)));
    raw.push_str(&format!("To: {}\n", "a@b.example, ".repeat(50_000)));
    raw.push_str("\nbody\n");
    let summary = summarize_checked(raw.as_bytes(), "huge header");
    assert!(summary.limits_reached);
    assert_eq!(summary.headers.len(), HEADER_FIELDS_MAX);
    assert!(
        summary
            .subject
            .as_ref()
            .is_some_and(|subject| subject.len() <= 16 * 1024)
    );
    assert!(summary.envelope.to.len() <= 1_000 && summary.to.len() <= 1_000);
    assert_eq!(summary.preview, "body");
}

#[test]
fn long_text_gives_a_bounded_preview() {
    let raw = format!("Subject: x\n\n{}", "word ".repeat(1_000_000));
    let summary = summarize_checked(raw.as_bytes(), "long text");
    assert!(summary.preview.chars().count() <= PREVIEW_CHARS_MAX);
    assert!(summary.preview.starts_with("word word"));
}

/// xorshift64*: a fixed, dependency-free pseudo-random sequence, so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Messages assembled from MIME-shaped fragments and random bytes: the walker must keep
/// every promise on input that is almost, but not quite, MIME.
#[test]
fn random_mime_shaped_input_keeps_every_promise() {
    const FRAGMENTS: &[&[u8]] = &[
        b"Content-Type: multipart/mixed; boundary=a\r\n",
        b"Content-Type: multipart/alternative; boundary=\"b\"\n",
        b"Content-Type: multipart/digest; boundary=a\n",
        b"Content-Type: message/rfc822\n",
        b"Content-Type: message/global\r\nContent-Transfer-Encoding: base64\r\n",
        b"Content-Type: text/html; charset=iso-8859-1\n",
        b"Content-Type: text/plain; charset=\"utf-8\r\n",
        b"Content-Transfer-Encoding: quoted-printable\n",
        b"Content-Transfer-Encoding: base64\n",
        b"Content-Disposition: attachment; filename*0*=utf-8''a%20; filename*1=b\n",
        b"From: \"a\\\" (b\" <c@d>, g: e@f;, (x\n",
        b"To: undisclosed-recipients:;\n",
        b"Subject: =?utf-8?b?w6k=?= =?bogus?q?x?=\n",
        b"Date: Sun, 25 Aug 2002 16:50:54 UT\n",
        b" folded continuation\n",
        b"\n",
        b"\r\n",
        b"--a\n",
        b"--a--\n",
        b"--b\r\n",
        b"--b--",
        b"--a-- trailing\n",
        b"body text =C3=A9=\n",
        b"<p>html &amp; <b>bold",
        b"SGVsbG8gd29ybGQ=\n",
        b"\0\xff\xfe\x80",
        b"From nobody Mon Jan  1 00:00:00 2000\n",
    ];
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    for round in 0..3_000 {
        let mut raw = Vec::new();
        let pieces = 1 + random.below(40);
        for _ in 0..pieces {
            if random.below(8) == 0 {
                for _ in 0..random.below(16) {
                    raw.push(random.next() as u8);
                }
            } else {
                raw.extend_from_slice(FRAGMENTS[random.below(FRAGMENTS.len())]);
            }
        }
        summarize_checked(
            &raw,
            &format!("random round {round}: {:?}", raw.escape_ascii().to_string()),
        );
    }
}

/// Every prefix of a nested multipart message: truncation at any byte (a delivery cut short)
/// must still give consistent offsets.
#[test]
fn every_truncation_of_a_nested_message_keeps_every_promise() {
    let raw = "From: a@example.com\r\n\
               Content-Type: multipart/mixed; boundary=\"o\"\r\n\
               \r\n\
               preamble\r\n\
               --o\r\n\
               Content-Type: multipart/alternative; boundary=i\r\n\
               \r\n\
               --i\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\
               \r\n\
               caf=C3=A9\r\n\
               --i\r\n\
               Content-Type: text/html\r\n\
               \r\n\
               <p>x</p>\r\n\
               --i--\r\n\
               --o\r\n\
               Content-Type: message/rfc822\r\n\
               \r\n\
               Subject: inner\r\n\
               Content-Type: multipart/mixed; boundary=n\r\n\
               \r\n\
               --n\r\n\
               \r\n\
               deep\r\n\
               --n--\r\n\
               --o--\r\n\
               epilogue\r\n";
    let bytes = raw.as_bytes();
    for length in 0..=bytes.len() {
        summarize_checked(&bytes[..length], &format!("first {length} bytes"));
    }
}

/// Many parts with large header values: the kept values stop growing at the total budget,
/// while the structure and offsets stay complete.
#[test]
fn header_values_of_all_parts_share_one_budget() {
    let description = "d".repeat(15_000);
    let mut raw = String::from("Content-Type: multipart/mixed; boundary=b\n\n");
    for _ in 0..200 {
        raw.push_str(&format!(
            "--b\nContent-Type: text/plain; charset=utf-8; x=\"{description}\"\n\
             Content-Description: {description}\n\nx\n"
        ));
    }
    raw.push_str("--b--\n");
    let summary = summarize_checked(raw.as_bytes(), "large part headers");
    assert!(summary.limits_reached);
    assert_eq!(summary.body.children.len(), 200);
    let last = summary.body.children.last().expect("parts");
    assert!(last.content_description.is_none());
    assert_eq!(
        last.content_type_parameter("charset")
            .map(|value| value.as_bytes()),
        Some(&b"utf-8"[..])
    );
    let json = serde_json::to_string(&summary).expect("summary serializes");
    assert!(
        json.len() < 2 * tme_message::limits::PART_VALUE_BYTES_TOTAL_MAX,
        "{} bytes",
        json.len()
    );
}
