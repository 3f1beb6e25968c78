//! Known answers on small hand-written messages: each test prints a readable rendering of
//! the summary (with the bytes every section range selects) and compares it with the
//! expected text. Run with `UPDATE_EXPECT=1` to rewrite the expectations after a
//! deliberate change, then review the diff.

mod common;

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use tme_message::{
    Addr, BodyPart, EnvelopeAddress, MessageSummary, Parameter, RawBytes, summarize,
};

/// Summarizes `raw`, checks the structural promises, and compares the rendering.
fn check(raw: impl AsRef<[u8]>, expected: Expect) {
    let raw = raw.as_ref();
    let summary = summarize(raw);
    common::check_summary(&summary, raw.len(), "known answer");
    common::check_sections(&summary, "known answer");
    common::check_round_trip(&summary, "known answer");
    expected.assert_eq(&render(&summary, raw));
}

fn render(summary: &MessageSummary, raw: &[u8]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "size {} header_end {} limits_reached {}",
        summary.size_bytes, summary.header_end, summary.limits_reached
    );
    let names: Vec<String> = summary
        .headers
        .iter()
        .map(|field| format!("{}@{}..{}", field.name, field.start, field.end))
        .collect();
    let _ = writeln!(out, "headers: {}", names.join(" "));
    let envelope = &summary.envelope;
    let _ = writeln!(
        out,
        "ENVELOPE ({} {} {} {} {} {} {} {} {} {})",
        nstring(&envelope.date),
        nstring(&envelope.subject),
        addresses(&envelope.from),
        addresses(&envelope.sender),
        addresses(&envelope.reply_to),
        addresses(&envelope.to),
        addresses(&envelope.cc),
        addresses(&envelope.bcc),
        nstring(&envelope.in_reply_to),
        nstring(&envelope.message_id)
    );
    let _ = writeln!(out, "subject: {:?}", summary.subject);
    let _ = writeln!(
        out,
        "from: {} sender: {} to: {} cc: {} bcc: {} reply_to: {}",
        decoded(&summary.from),
        decoded(&summary.sender),
        decoded(&summary.to),
        decoded(&summary.cc),
        decoded(&summary.bcc),
        decoded(&summary.reply_to)
    );
    let _ = writeln!(
        out,
        "date_unix: {:?} message_id: {:?} in_reply_to: {:?} references: {:?}",
        summary.date_unix, summary.message_id, summary.in_reply_to, summary.references
    );
    let _ = writeln!(out, "preview: {:?}", summary.preview);
    let _ = writeln!(out, "has_attachment: {}", summary.has_attachment);
    render_message_root(&mut out, raw, &summary.body, "", 0);
    out
}

/// The root part of a message (top level or encapsulated) and its numbered parts.
fn render_message_root(out: &mut String, raw: &[u8], root: &BodyPart, prefix: &str, indent: usize) {
    if root.is_multipart() {
        let label = if prefix.is_empty() {
            "TEXT".to_owned()
        } else {
            format!("{prefix}.TEXT")
        };
        render_part(out, raw, root, &label, indent);
        render_children(out, raw, root, prefix, indent + 1);
    } else {
        let label = if prefix.is_empty() {
            "1".to_owned()
        } else {
            format!("{prefix}.1")
        };
        render_part(out, raw, root, &label, indent);
        render_nested(out, raw, root, &label, indent + 1);
    }
}

fn render_children(out: &mut String, raw: &[u8], part: &BodyPart, prefix: &str, indent: usize) {
    for (index, child) in part.children.iter().enumerate() {
        let label = if prefix.is_empty() {
            format!("{}", index + 1)
        } else {
            format!("{prefix}.{}", index + 1)
        };
        render_part(out, raw, child, &label, indent);
        if child.is_multipart() {
            render_children(out, raw, child, &label, indent + 1);
        } else {
            render_nested(out, raw, child, &label, indent + 1);
        }
    }
}

fn render_nested(out: &mut String, raw: &[u8], part: &BodyPart, label: &str, indent: usize) {
    if let Some(message) = &part.message {
        let pad = "  ".repeat(indent);
        let envelope = &message.envelope;
        let _ = writeln!(
            out,
            "{pad}{label}.HEADER {} envelope subject {} from {}",
            slice(raw, message.body.header_start, message.body.body_start),
            nstring(&envelope.subject),
            addresses(&envelope.from)
        );
        render_message_root(out, raw, &message.body, label, indent);
    }
}

fn render_part(out: &mut String, raw: &[u8], part: &BodyPart, label: &str, indent: usize) {
    let pad = "  ".repeat(indent);
    let _ = writeln!(
        out,
        "{pad}{label} {}/{}{} cte={} id={} desc={} md5={} disp={} lang={:?} loc={} lines={} size={}",
        part.content_type,
        part.content_subtype,
        parameters(&part.content_type_parameters),
        part.content_transfer_encoding,
        nstring(&part.content_id),
        nstring(&part.content_description),
        nstring(&part.content_md5),
        part.disposition
            .as_ref()
            .map_or("NIL".to_owned(), |disposition| format!(
                "{}{}",
                disposition.disposition_type,
                parameters(&disposition.parameters)
            )),
        part.language,
        nstring(&part.location),
        part.body_lines,
        part.body_size_octets
    );
    let _ = writeln!(
        out,
        "{pad}  MIME {}..{} {}",
        part.header_start,
        part.body_start,
        slice(raw, part.header_start, part.body_start)
    );
    let _ = writeln!(
        out,
        "{pad}  BODY {}..{} {}",
        part.body_start,
        part.body_end,
        slice(raw, part.body_start, part.body_end)
    );
}

/// The bytes of a range, escaped; a long range shows its start and its end, which is
/// where offsets go wrong.
fn slice(raw: &[u8], start: u64, end: u64) -> String {
    let bytes = &raw[start as usize..end as usize];
    const HEAD: usize = 40;
    const TAIL: usize = 30;
    if bytes.len() > HEAD + TAIL {
        format!(
            "\"{}\"...\"{}\" ({} bytes)",
            bytes[..HEAD].escape_ascii(),
            bytes[bytes.len() - TAIL..].escape_ascii(),
            bytes.len()
        )
    } else {
        format!("\"{}\"", bytes.escape_ascii())
    }
}

fn nstring(value: &Option<RawBytes>) -> String {
    value
        .as_ref()
        .map_or("NIL".to_owned(), |bytes| format!("{bytes:?}"))
}

fn addresses(list: &[EnvelopeAddress]) -> String {
    if list.is_empty() {
        return "NIL".to_owned();
    }
    let rendered: Vec<String> = list
        .iter()
        .map(|address| {
            format!(
                "({} {} {} {})",
                nstring(&address.name),
                nstring(&address.adl),
                nstring(&address.mailbox),
                nstring(&address.host)
            )
        })
        .collect();
    format!("({})", rendered.join(""))
}

fn decoded(list: &[Addr]) -> String {
    let rendered: Vec<String> = list
        .iter()
        .map(|address| match &address.name {
            Some(name) => format!("{name:?} <{}>", address.email),
            None => format!("<{}>", address.email),
        })
        .collect();
    format!("[{}]", rendered.join(", "))
}

fn parameters(list: &[Parameter]) -> String {
    list.iter()
        .map(|parameter| format!(";{}={:?}", parameter.name, parameter.value))
        .collect()
}

#[test]
fn simple_text_message() {
    check(
        "From: Alice Example <alice@example.com>\r\n\
         To: bob@example.org\r\n\
         Subject: Lunch\r\n \ttomorrow?\r\n\
         Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n\
         Message-ID: <1234@local.machine.example>\r\n\
         \r\n\
         Shall we meet at noon?\r\n\
         -- Alice\r\n",
        expect![[r#"
            size 207 header_end 173 limits_reached false
            headers: From@0..41 To@41..62 Subject@62..91 Date@91..129 Message-ID@129..171
            ENVELOPE ("Tue, 1 Jul 2003 10:52:37 +0200" "Lunch \ttomorrow?" (("Alice Example" NIL "alice" "example.com")) NIL NIL ((NIL NIL "bob" "example.org")) NIL NIL NIL "<1234@local.machine.example>")
            subject: Some("Lunch tomorrow?")
            from: ["Alice Example" <alice@example.com>] sender: [] to: [<bob@example.org>] cc: [] bcc: [] reply_to: []
            date_unix: Some(1057049557) message_id: Some("1234@local.machine.example") in_reply_to: [] references: []
            preview: "Shall we meet at noon? -- Alice"
            has_attachment: false
            1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=2 size=34
              MIME 0..173 "From: Alice Example <alice@example.com>\r"..."234@local.machine.example>\r\n\r\n" (173 bytes)
              BODY 173..207 "Shall we meet at noon?\r\n-- Alice\r\n"
        "#]],
    );
}

#[test]
fn multipart_alternative() {
    check(
        "From: a@example.com\n\
         Subject: alt\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/alternative; boundary=\"XYZ\"\n\
         \n\
         This is the preamble.\n\
         --XYZ\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         Caf=C3=A9 au lait, =\n\
         s'il vous pla=C3=AEt.\n\
         --XYZ\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <p>Caf&eacute; au lait</p>\n\
         \n\
         --XYZ--\n\
         This is the epilogue.\n",
        expect![[r#"
            size 364 header_end 104 limits_reached false
            headers: From@0..20 Subject@20..33 MIME-Version@33..51 Content-Type@51..103
            ENVELOPE (NIL "alt" ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL NIL NIL)
            subject: Some("alt")
            from: [<a@example.com>] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "Café au lait, s'il vous plaît."
            has_attachment: false
            TEXT multipart/alternative;boundary="XYZ" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=260
              MIME 0..104 "From: a@example.com\nSubject: alt\nMIME-Ve"..."/alternative; boundary=\"XYZ\"\n\n" (104 bytes)
              BODY 104..364 "This is the preamble.\n--XYZ\nContent-Type"..."--XYZ--\nThis is the epilogue.\n" (260 bytes)
              1 text/plain;charset="utf-8" cte=quoted-printable id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=42
                MIME 132..217 "Content-Type: text/plain; charset=utf-8\n"..."r-Encoding: quoted-printable\n\n" (85 bytes)
                BODY 217..259 "Caf=C3=A9 au lait, =\ns\'il vous pla=C3=AEt."
              2 text/html;charset="utf-8" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=27
                MIME 266..306 "Content-Type: text/html; charset=utf-8\n\n"
                BODY 306..333 "<p>Caf&eacute; au lait</p>\n"
        "#]],
    );
}

#[test]
fn multipart_mixed_with_attachment() {
    check(
        "From: a@example.com\r\n\
         To: b@example.com\r\n\
         Subject: report\r\n\
         Content-Type: multipart/mixed;\r\n boundary=\"=_outer\"\r\n\
         \r\n\
         --=_outer\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         Content-Language: en, fr\r\n\
         \r\n\
         See attached.\r\n\
         --=_outer\r\n\
         Content-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"; size=3\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-ID: <part2@example.com>\r\n\
         Content-Description: The =?utf-8?q?r=C3=A9port?=\r\n\
         Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
         Content-Location: http://example.com/report.pdf\r\n\
         \r\n\
         JVBE\r\n\
         --=_outer--\r\n",
        expect![[r#"
            size 562 header_end 112 limits_reached false
            headers: From@0..21 To@21..40 Subject@40..57 Content-Type@57..110
            ENVELOPE (NIL "report" ((NIL NIL "a" "example.com")) NIL NIL ((NIL NIL "b" "example.com")) NIL NIL NIL NIL)
            subject: Some("report")
            from: [<a@example.com>] sender: [] to: [<b@example.com>] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "See attached."
            has_attachment: true
            TEXT multipart/mixed;boundary="=_outer" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=450
              MIME 0..112 "From: a@example.com\r\nTo: b@example.com\r\n"..."ixed;\r\n boundary=\"=_outer\"\r\n\r\n" (112 bytes)
              BODY 112..562 "--=_outer\r\nContent-Type: text/plain; cha"..."ort.pdf\r\n\r\nJVBE\r\n--=_outer--\r\n" (450 bytes)
              1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=["en", "fr"] loc=NIL lines=0 size=13
                MIME 123..195 "Content-Type: text/plain; charset=us-asc"..."\r\nContent-Language: en, fr\r\n\r\n" (72 bytes)
                BODY 195..208 "See attached."
              2 application/pdf;name="report.pdf" cte=base64 id="<part2@example.com>" desc="The =?utf-8?q?r=C3=A9port?=" md5="Q2hlY2sgSW50ZWdyaXR5IQ==" disp=attachment;filename="report.pdf";size="3" lang=[] loc="http://example.com/report.pdf" lines=0 size=4
                MIME 221..543 "Content-Type: application/pdf; name=\"rep"..."p://example.com/report.pdf\r\n\r\n" (322 bytes)
                BODY 543..547 "JVBE"
        "#]],
    );
}

#[test]
fn nested_message_rfc822() {
    check(
        "From: a@example.com\n\
         Subject: Fwd: hello\n\
         Content-Type: multipart/mixed; boundary=outer\n\
         \n\
         --outer\n\
         \n\
         Forwarded below.\n\
         --outer\n\
         Content-Type: message/rfc822\n\
         \n\
         From: \"Carol C.\" <carol@example.net>\n\
         Subject: hello\n\
         Content-Type: multipart/alternative; boundary=inner\n\
         \n\
         --inner\n\
         Content-Type: text/plain\n\
         \n\
         hi there\n\
         --inner\n\
         Content-Type: text/html\n\
         \n\
         <b>hi</b> there\n\
         --inner--\n\
         \n\
         --outer\n\
         Content-Type: message/rfc822\n\
         \n\
         Subject: single\n\
         \n\
         one part\n\
         --outer--\n",
        expect![[r#"
            size 433 header_end 87 limits_reached false
            headers: From@0..20 Subject@20..40 Content-Type@40..86
            ENVELOPE (NIL "Fwd: hello" ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL NIL NIL)
            subject: Some("Fwd: hello")
            from: [<a@example.com>] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "Forwarded below."
            has_attachment: true
            TEXT multipart/mixed;boundary="outer" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=346
              MIME 0..87 "From: a@example.com\nSubject: Fwd: hello\n"..."tipart/mixed; boundary=outer\n\n" (87 bytes)
              BODY 87..433 "--outer\n\nForwarded below.\n--outer\nConten"..."t: single\n\none part\n--outer--\n" (346 bytes)
              1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=16
                MIME 95..96 "\n"
                BODY 96..112 "Forwarded below."
              2 message/rfc822 cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=13 size=207
                MIME 121..151 "Content-Type: message/rfc822\n\n"
                BODY 151..358 "From: \"Carol C.\" <carol@example.net>\nSub"..."ml\n\n<b>hi</b> there\n--inner--\n" (207 bytes)
                2.HEADER "From: \"Carol C.\" <carol@example.net>\nSub"..."/alternative; boundary=inner\n\n" (105 bytes) envelope subject "hello" from (("Carol C." NIL "carol" "example.net"))
                2.TEXT multipart/alternative;boundary="inner" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=102
                  MIME 151..256 "From: \"Carol C.\" <carol@example.net>\nSub"..."/alternative; boundary=inner\n\n" (105 bytes)
                  BODY 256..358 "--inner\nContent-Type: text/plain\n\nhi the"..."ml\n\n<b>hi</b> there\n--inner--\n" (102 bytes)
                  2.1 text/plain cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=8
                    MIME 264..290 "Content-Type: text/plain\n\n"
                    BODY 290..298 "hi there"
                  2.2 text/html cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=15
                    MIME 307..332 "Content-Type: text/html\n\n"
                    BODY 332..347 "<b>hi</b> there"
              3 message/rfc822 cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=2 size=25
                MIME 367..397 "Content-Type: message/rfc822\n\n"
                BODY 397..422 "Subject: single\n\none part"
                3.HEADER "Subject: single\n\n" envelope subject "single" from NIL
                3.1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=8
                  MIME 397..414 "Subject: single\n\n"
                  BODY 414..422 "one part"
        "#]],
    );
}

#[test]
fn group_addresses() {
    check(
        "From: \"Joe Q. Public\" <john.q.public@example.com>\n\
         To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n\
         Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n\
         Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;\n\
         Reply-To: (comment only) box@example.com (The Box)\n\
         Sender: <@route.test,@other.test:agent@example.com>\n\
         \n\
         body\n",
        expect![[r#"
            size 389 header_end 384 limits_reached false
            headers: From@0..50 To@50..116 Cc@116..184 Bcc@184..280 Reply-To@280..331 Sender@331..383
            ENVELOPE (NIL NIL (("Joe Q. Public" NIL "john.q.public" "example.com")) ((NIL "@route.test,@other.test" "agent" "example.com")) (("The Box" NIL "box" "example.com")) (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test")) ((NIL NIL "boss" "nil.test")("Giant; \"Big\" Box" NIL "sysservices" "example.net")) ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)(NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) NIL NIL)
            subject: None
            from: ["Joe Q. Public" <john.q.public@example.com>] sender: [<agent@example.com>] to: ["Mary Smith" <mary@x.test>, <jdoe@example.org>, "Who?" <one@y.test>] cc: [<boss@nil.test>, "Giant; \"Big\" Box" <sysservices@example.net>] bcc: ["Ed Jones" <c@a.test>, <joe@where.test>, "John" <jdoe@one.test>] reply_to: ["comment only The Box" <box@example.com>]
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "body"
            has_attachment: false
            1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=5
              MIME 0..384 "From: \"Joe Q. Public\" <john.q.public@exa"..."ther.test:agent@example.com>\n\n" (384 bytes)
              BODY 384..389 "body\n"
        "#]],
    );
}

#[test]
fn encoded_words_stay_raw_in_envelope_and_decode_elsewhere() {
    check(
        b"From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n\
         To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\n\
         Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n\
         In-Reply-To: <a@x> <b@y>\n\
         References: <root@x>\n  <a@x>\n\
         Date: Thu, 13 Feb 1969 23:32:54 -0330\n\
         Content-Type: text/plain; charset=iso-8859-1\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         K\xf8benhavn\n",
        expect![[r#"
            size 404 header_end 394 limits_reached false
            headers: From@0..60 To@60..110 Subject@110..224 In-Reply-To@224..249 References@249..278 Date@278..316 Content-Type@316..361 Content-Transfer-Encoding@361..393
            ENVELOPE ("Thu, 13 Feb 1969 23:32:54 -0330" "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=" (("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=" NIL "keld" "dkuug.dk")) NIL NIL (("=?US-ASCII?Q?Keith_Moore?=" NIL "moore" "cs.utk.edu")) NIL NIL "<a@x> <b@y>" NIL)
            subject: Some("If you can read this you understand the example.")
            from: ["Keld Jørn Simonsen" <keld@dkuug.dk>] sender: [] to: ["Keith Moore" <moore@cs.utk.edu>] cc: [] bcc: [] reply_to: []
            date_unix: Some(-27723426) message_id: None in_reply_to: ["a@x", "b@y"] references: ["root@x", "a@x"]
            preview: "København"
            has_attachment: false
            1 text/plain;charset="iso-8859-1" cte=8bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=10
              MIME 0..394 "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonse"..."tent-Transfer-Encoding: 8bit\n\n" (394 bytes)
              BODY 394..404 "K\xf8benhavn\n"
        "#]],
    );
}

#[test]
fn missing_headers_get_rfc_2045_defaults() {
    // No header at all: the message starts with the blank line.
    check(
        "\nJust a body.\n",
        expect![[r#"
        size 14 header_end 1 limits_reached false
        headers: 
        ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
        subject: None
        from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
        date_unix: None message_id: None in_reply_to: [] references: []
        preview: "Just a body."
        has_attachment: false
        1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=13
          MIME 0..1 "\n"
          BODY 1..14 "Just a body.\n"
    "#]],
    );
}

#[test]
fn header_without_blank_line_is_all_header() {
    check(
        "Subject: only a header\r\nX-Other: x",
        expect![[r#"
        size 34 header_end 34 limits_reached false
        headers: Subject@0..24 X-Other@24..34
        ENVELOPE (NIL "only a header" NIL NIL NIL NIL NIL NIL NIL NIL)
        subject: Some("only a header")
        from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
        date_unix: None message_id: None in_reply_to: [] references: []
        preview: ""
        has_attachment: false
        1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=0
          MIME 0..34 "Subject: only a header\r\nX-Other: x"
          BODY 34..34 ""
    "#]],
    );
}

#[test]
fn empty_message() {
    check(
        "",
        expect![[r#"
        size 0 header_end 0 limits_reached false
        headers: 
        ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
        subject: None
        from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
        date_unix: None message_id: None in_reply_to: [] references: []
        preview: ""
        has_attachment: false
        1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=0
          MIME 0..0 ""
          BODY 0..0 ""
    "#]],
    );
}

#[test]
fn digest_parts_default_to_message_rfc822() {
    check(
        "Content-Type: multipart/digest; boundary=d\n\
         \n\
         --d\n\
         \n\
         Subject: first\n\
         \n\
         one\n\
         --d\n\
         Content-Type: text/plain\n\
         \n\
         not a message\n\
         --d--\n",
        expect![[r#"
            size 119 header_end 44 limits_reached false
            headers: Content-Type@0..43
            ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            subject: None
            from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "not a message"
            has_attachment: true
            TEXT multipart/digest;boundary="d" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=75
              MIME 0..44 "Content-Type: multipart/digest; boundary=d\n\n"
              BODY 44..119 "--d\n\nSubject: first\n\none\n--d\nContent-Typ"..."xt/plain\n\nnot a message\n--d--\n" (75 bytes)
              1 message/rfc822 cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=2 size=19
                MIME 48..49 "\n"
                BODY 49..68 "Subject: first\n\none"
                1.HEADER "Subject: first\n\n" envelope subject "first" from NIL
                1.1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=3
                  MIME 49..65 "Subject: first\n\n"
                  BODY 65..68 "one"
              2 text/plain cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=13
                MIME 73..99 "Content-Type: text/plain\n\n"
                BODY 99..112 "not a message"
        "#]],
    );
}

#[test]
fn html_only_preview_and_empty_part_bodies() {
    check(
        "Content-Type: multipart/related; boundary=r\n\
         \n\
         --r\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <html><head><style>p {color: red}</style></head><body><p>Hello&nbsp;<b>there</b></p><p>second</p></body></html>\n\
         --r\n\
         Content-Type: image/png\n\
         Content-ID: <img1>\n\
         \n\
         --r\n\
         --r--\n",
        expect![[r#"
            size 259 header_end 45 limits_reached false
            headers: Content-Type@0..44
            ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            subject: None
            from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "Hello there second"
            has_attachment: false
            TEXT multipart/related;boundary="r" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=214
              MIME 0..45 "Content-Type: multipart/related; boundary=r\n\n"
              BODY 45..259 "--r\nContent-Type: text/html; charset=utf"..."Content-ID: <img1>\n\n--r\n--r--\n" (214 bytes)
              1 text/html;charset="utf-8" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=111
                MIME 49..89 "Content-Type: text/html; charset=utf-8\n\n"
                BODY 89..200 "<html><head><style>p {color: red}</style"..."/p><p>second</p></body></html>" (111 bytes)
              2 image/png cte=7bit id="<img1>" desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=0
                MIME 205..249 "Content-Type: image/png\nContent-ID: <img1>\n\n"
                BODY 249..249 ""
              3 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=0
                MIME 253..253 ""
                BODY 253..253 ""
        "#]],
    );
}

#[test]
fn truncated_multipart_and_prefix_boundaries() {
    // The inner boundary "b" is a prefix of the outer "b2": `--b2` must not be taken for an
    // inner delimiter. Neither multipart has its close delimiter: the inner one ends where
    // its parent's next part starts, the outer one's last part runs to the end.
    check(
        "Content-Type: multipart/mixed; boundary=b2\n\
         \n\
         --b2\n\
         Content-Type: multipart/alternative; boundary=b\n\
         \n\
         --b\n\
         \n\
         inner text\n\
         --b2\n\
         Content-Type: application/octet-stream\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         AAEC\n\
         AwQF",
        expect![[r#"
            size 202 header_end 44 limits_reached false
            headers: Content-Type@0..43
            ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            subject: None
            from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: "inner text"
            has_attachment: true
            TEXT multipart/mixed;boundary="b2" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=158
              MIME 0..44 "Content-Type: multipart/mixed; boundary=b2\n\n"
              BODY 44..202 "--b2\nContent-Type: multipart/alternative"..."er-Encoding: base64\n\nAAEC\nAwQF" (158 bytes)
              1 multipart/alternative;boundary="b" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=15
                MIME 49..98 "Content-Type: multipart/alternative; boundary=b\n\n"
                BODY 98..113 "--b\n\ninner text"
                1.1 text/plain;charset="us-ascii" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=10
                  MIME 102..103 "\n"
                  BODY 103..113 "inner text"
              2 application/octet-stream cte=base64 id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=1 size=9
                MIME 119..193 "Content-Type: application/octet-stream\nC"..."nt-Transfer-Encoding: base64\n\n" (74 bytes)
                BODY 193..202 "AAEC\nAwQF"
        "#]],
    );
}

#[test]
fn encoded_message_rfc822_is_opaque() {
    check(
        "Content-Type: multipart/mixed; boundary=m\n\
         \n\
         --m\n\
         Content-Type: message/rfc822\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         U3ViamVjdDogeA0KDQpoaQ0K\n\
         --m--\n",
        expect![[r#"
            size 142 header_end 43 limits_reached false
            headers: Content-Type@0..42
            ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            subject: None
            from: [] sender: [] to: [] cc: [] bcc: [] reply_to: []
            date_unix: None message_id: None in_reply_to: [] references: []
            preview: ""
            has_attachment: true
            TEXT multipart/mixed;boundary="m" cte=7bit id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=99
              MIME 0..43 "Content-Type: multipart/mixed; boundary=m\n\n"
              BODY 43..142 "--m\nContent-Type: message/rfc822\nContent"..."3ViamVjdDogeA0KDQpoaQ0K\n--m--\n" (99 bytes)
              1 message/rfc822 cte=base64 id=NIL desc=NIL md5=NIL disp=NIL lang=[] loc=NIL lines=0 size=24
                MIME 47..111 "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
                BODY 111..135 "U3ViamVjdDogeA0KDQpoaQ0K"
        "#]],
    );
}

#[test]
fn a_date_without_a_zone_is_read_as_utc() {
    let date = |value: &str| summarize(format!("Date: {value}\r\n\r\nx\r\n").as_bytes()).date_unix;
    assert_eq!(date("Tue, 03 Dec 2002 08:14:54"), Some(1038903294));
    assert_eq!(date("Tue, 03 Dec 2002 08:14:54 +0000"), Some(1038903294));
    assert_eq!(date("30 Jul 2002 13:29"), Some(1028035740));
    // Without a time it is still no date.
    assert_eq!(date("Tue, 03 Dec 2002"), None);
}
