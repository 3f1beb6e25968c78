//! The session driven with bytes, as the server drives it, against a fake directory. Each
//! test is a client transcript and the replies it gets (`expect-test` snapshots).

use expect_test::{Expect, expect};

use super::*;
use crate::framing::{CommandFrame, CommandFramer};

fn config() -> SessionConfig {
    SessionConfig {
        service: Service::Mx,
        hostname: "mx.test".to_owned(),
        message_bytes_max: 100,
        recipients_max: 3,
        tls_available: true,
        errors_max: 10,
    }
}

/// The directory of these tests, by local part and domain.
fn verdict(address: &EmailAddress) -> Result<Vec<DeliveryTarget>, RecipientRefusal> {
    if address.domain().as_str() != "example.com" {
        return Err(RecipientRefusal::RelayDenied);
    }
    match address.local().as_str() {
        "unknown" => Err(RecipientRefusal::UnknownAddress),
        "suspended" => Err(RecipientRefusal::AccountSuspended),
        "full" => Err(RecipientRefusal::OverQuota),
        "forward" => Err(RecipientRefusal::ForwardingUnavailable),
        "broken" => Err(RecipientRefusal::TemporaryFailure),
        _ => Ok(vec![DeliveryTarget {
            account: 1,
            mailbox: 1,
            address: address.clone(),
        }]),
    }
}

fn show(transcript: &mut String, reply: &Reply) {
    transcript.push_str(&String::from_utf8_lossy(&reply.to_wire()).replace("\r\n", "\n"));
}

/// Runs the client's bytes through a session as the server would (pipelined: all of them
/// are there at once). Returns the transcript: replies, and what the server did.
fn run(input: &[u8]) -> (String, Vec<MessageForDelivery>) {
    run_with(config(), input)
}

/// `run` with a session of the given config.
fn run_with(config: SessionConfig, input: &[u8]) -> (String, Vec<MessageForDelivery>) {
    run_session(
        Session::new(config, "192.0.2.1".parse().expect("ip")),
        input,
    )
}

fn run_session(mut session: Session, input: &[u8]) -> (String, Vec<MessageForDelivery>) {
    let mut framer = CommandFramer::new(2048);
    let mut input = input.to_vec();
    let mut transcript = String::new();
    let mut delivered = Vec::new();
    show(&mut transcript, &session.greeting());
    'commands: while let Some(frame) = framer.next_frame(&mut input) {
        let mut step = match frame {
            CommandFrame::Line(line) => session.command(&line),
            CommandFrame::TooLong => session.line_too_long(),
        };
        loop {
            step = match step {
                Step::Reply(reply) => {
                    show(&mut transcript, &reply);
                    break;
                }
                Step::ReplyAndClose(reply) => {
                    show(&mut transcript, &reply);
                    transcript.push_str("[closed]\n");
                    break 'commands;
                }
                Step::ResolveRecipient { address, .. } => {
                    if address.domain().as_str() == "remote.test" {
                        session.recipient_routed(Ok(RecipientRoute {
                            targets: Vec::new(),
                            remote: vec![address.clone()],
                        }))
                    } else {
                        session.recipient_resolved(verdict(&address))
                    }
                }
                Step::Authenticate { username, password } => {
                    transcript.push_str(&format!("[login {username}]\n"));
                    let verdict = if password.expose() == "secret" {
                        EmailAddress::parse(&username)
                            .map(|address| Principal {
                                account: 1,
                                address,
                                credential: tme_auth::Credential::AppPassword { id: 1 },
                            })
                            .map_err(|_| AuthRefusal::BadCredentials)
                    } else {
                        Err(AuthRefusal::BadCredentials)
                    };
                    session.authentication_finished(verdict)
                }
                Step::CheckSender { principal, address } => {
                    let owned = address.is_empty() || address == principal.address.to_string();
                    session.sender_checked(if address == "revoked@example.com" {
                        // The app password was revoked since AUTH.
                        Err(SenderRefusal::CredentialRevoked)
                    } else if owned {
                        Ok(())
                    } else {
                        Err(SenderRefusal::NotOwned)
                    })
                }
                Step::ReceiveData(reply, mut receiver) => {
                    show(&mut transcript, &reply);
                    let (consumed, ended) = receiver.ingest(&input);
                    input.drain(..consumed);
                    if !ended {
                        transcript.push_str("[connection lost in DATA]\n");
                        break 'commands;
                    }
                    session.data_finished(receiver)
                }
                Step::ReceiveChunk { octets } => {
                    let octets = octets as usize;
                    if input.len() < octets {
                        transcript.push_str("[connection lost in BDAT]\n");
                        break 'commands;
                    }
                    // In two pieces, as reads may split it.
                    let half = octets / 2;
                    session.chunk_bytes(&input[..half]);
                    session.chunk_bytes(&input[half..octets]);
                    input.drain(..octets);
                    session.chunk_finished()
                }
                Step::StartTls(reply) => {
                    show(&mut transcript, &reply);
                    input.clear();
                    framer.reset();
                    session.tls_started();
                    transcript.push_str("[tls]\n");
                    break;
                }
                Step::Deliver(message) => {
                    transcript.push_str(&format!(
                        "[stored {} octets for {}]\n",
                        message.message.len(),
                        message
                            .envelope
                            .recipients
                            .iter()
                            .map(|recipient| recipient.address.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    delivered.push(*message);
                    session.delivery_finished(Ok("ID1".to_owned()))
                }
            };
        }
    }
    (transcript, delivered)
}

fn check(input: impl AsRef<[u8]>, expected: Expect) {
    let (transcript, _) = run(input.as_ref());
    expected.assert_eq(&transcript);
}

/// `check` on the submission service, with TLS already up (as on port 465) unless the
/// transcript starts it.
fn check_submission(tls: bool, input: impl AsRef<[u8]>, expected: Expect) {
    let mut session = Session::new(
        SessionConfig {
            service: Service::Submission,
            ..config()
        },
        "192.0.2.1".parse().expect("ip"),
    );
    if tls {
        session.tls_started();
    }
    let (transcript, _) = run_session(session, input.as_ref());
    expected.assert_eq(&transcript);
}

#[test]
fn a_pipelined_delivery_with_dot_stuffing() {
    let (transcript, delivered) = run(b"EHLO client.test\r\n\
        MAIL FROM:<sender@example.org> BODY=8BITMIME SIZE=50\r\n\
        RCPT TO:<user@example.com>\r\n\
        DATA\r\n\
        Subject: hi\r\n\r\n..dot\r\n.\r\n\
        QUIT\r\n");
    expect![[r#"
        220 mx.test ESMTP tme ready
        250-mx.test greets client.test
        250-PIPELINING
        250-SIZE 100
        250-8BITMIME
        250-SMTPUTF8
        250-ENHANCEDSTATUSCODES
        250-CHUNKING
        250-DSN
        250-STARTTLS
        250 HELP
        250 2.1.0 sender OK
        250 2.1.5 recipient OK
        354 2.0.0 send the message, end with <CRLF>.<CRLF>
        [stored 21 octets for user@example.com]
        250 2.0.0 OK queued as ID1
        221 2.0.0 mx.test closing connection
        [closed]
    "#]]
    .assert_eq(&transcript);
    assert_eq!(delivered[0].message, b"Subject: hi\r\n\r\n.dot\r\n");
    assert_eq!(delivered[0].envelope.body, Body::EightBitMime);
    assert_eq!(delivered[0].envelope.size_declared_octets, Some(50));
    assert_eq!(delivered[0].mode.protocol(), "ESMTP");
}

#[test]
fn commands_out_of_sequence() {
    check(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.com>\r\nDATA\r\nHELO c.test\r\n\
         DATA\r\nRCPT TO:<user@example.com>\r\nMAIL FROM:<a@example.org>\r\n\
         MAIL FROM:<a@example.org>\r\nDATA\r\nQUIT\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            503 5.5.1 send EHLO or HELO first
            503 5.5.1 need MAIL before RCPT
            503 5.5.1 need MAIL before DATA
            250 mx.test greets c.test
            503 5.5.1 need MAIL before DATA
            503 5.5.1 need MAIL before RCPT
            250 2.1.0 sender OK
            503 5.5.1 nested MAIL command
            554 5.5.1 no valid recipients
            221 2.0.0 mx.test closing connection
            [closed]
        "#]],
    );
}

#[test]
fn garbage_and_nul_bytes_are_answered_not_parsed() {
    check(
        b"EHLO c.test\r\n\x00\x01\x02\r\nFOO bar\r\nMAIL FROM:<a\x00b@example.org>\r\n\
         MAIL FROM:<no closing bracket\r\nMAIL FROM:<a@example.org> FOO=BAR\r\n\
         RCPT TO:<not an address>\r\n\xff\xfe\r\nNOOP\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            500 5.5.2 control characters in command
            500 5.5.1 command not recognised
            500 5.5.2 control characters in command
            553 5.1.7 bad sender address syntax
            555 5.5.4 parameter FOO=BAR not supported
            501 5.1.3 bad recipient address syntax
            500 5.5.1 command not recognised
            250 2.0.0 OK
        "#]],
    );
}

#[test]
fn too_many_errors_close_the_session() {
    check(
        "FOO\r\n".repeat(20),
        expect![[r#"
            220 mx.test ESMTP tme ready
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            500 5.5.1 command not recognised
            421 4.7.0 too many errors, closing connection
            [closed]
        "#]],
    );
}

#[test]
fn an_over_long_command_line_is_refused_and_the_session_goes_on() {
    let mut input = b"EHLO c.test\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let (transcript, _) = run(&input);
    expect![[r#"
        220 mx.test ESMTP tme ready
        250-mx.test greets c.test
        250-PIPELINING
        250-SIZE 100
        250-8BITMIME
        250-SMTPUTF8
        250-ENHANCEDSTATUSCODES
        250-CHUNKING
        250-DSN
        250-STARTTLS
        250 HELP
        500 5.5.2 line too long
        250 2.0.0 OK
    "#]]
    .assert_eq(&transcript);
}

#[test]
fn size_limits_declared_and_actual() {
    let body = "x".repeat(200);
    check(
        format!(
            "EHLO c.test\r\nMAIL FROM:<a@example.org> SIZE=101\r\n\
             MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n{body}\r\n.\r\n\
             NOOP\r\n"
        ),
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            552 5.3.4 message size exceeds the limit of 100 octets
            250 2.1.0 sender OK
            250 2.1.5 recipient OK
            354 2.0.0 send the message, end with <CRLF>.<CRLF>
            552 5.3.4 message size exceeds the limit of 100 octets
            250 2.0.0 OK
        "#]],
    );
}

#[test]
fn recipients_are_judged_one_by_one() {
    check(
        "EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<unknown@example.com>\r\n\
         RCPT TO:<someone@elsewhere.test>\r\nRCPT TO:<suspended@example.com>\r\n\
         RCPT TO:<full@example.com>\r\nRCPT TO:<forward@example.com>\r\n\
         RCPT TO:<broken@example.com>\r\nRSET\r\nMAIL FROM:<>\r\n\
         RCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n\
         RCPT TO:<d@example.com>\r\nQUIT\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            250 2.1.0 sender OK
            550 5.1.1 no such user here
            550 5.7.1 relay access denied
            550 5.2.1 mailbox disabled
            452 4.2.2 mailbox full
            451 4.4.0 forwarding to external addresses is not available yet, try again later
            451 4.3.0 temporary failure, try again later
            250 2.0.0 reset
            250 2.1.0 sender OK
            250 2.1.5 recipient OK
            250 2.1.5 recipient OK
            250 2.1.5 recipient OK
            452 4.5.3 too many recipients
            221 2.0.0 mx.test closing connection
            [closed]
        "#]],
    );
}

#[test]
fn bdat_chunks_make_one_message() {
    let (transcript, delivered) = run(b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n\
        RCPT TO:<user@example.com>\r\nBDAT 5\r\nab\r\ncBDAT 3 LAST\r\nd\nxNOOP\r\n\
        BDAT 2\r\nzzDATA\r\n");
    expect![[r#"
        220 mx.test ESMTP tme ready
        250-mx.test greets c.test
        250-PIPELINING
        250-SIZE 100
        250-8BITMIME
        250-SMTPUTF8
        250-ENHANCEDSTATUSCODES
        250-CHUNKING
        250-DSN
        250-STARTTLS
        250 HELP
        250 2.1.0 sender OK
        250 2.1.5 recipient OK
        250 2.0.0 5 octets received
        [stored 8 octets for user@example.com]
        250 2.0.0 OK queued as ID1
        250 2.0.0 OK
        503 5.5.1 need MAIL before BDAT
        503 5.5.1 need MAIL before DATA
    "#]]
    .assert_eq(&transcript);
    assert_eq!(delivered[0].message, b"ab\r\ncd\nx");
}

#[test]
fn bdat_errors_still_consume_the_chunk() {
    check(
        "EHLO c.test\r\nBDAT 4\r\nQUITMAIL FROM:<a@example.org>\r\nBDAT 3 LAST\r\nxyz\
         MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.com>\r\nBDAT 60\r\n\
         012345678901234567890123456789012345678901234567890123456789\
         BDAT 60\r\n012345678901234567890123456789012345678901234567890123456789\
         BDAT 1 LAST\r\nxNOOP\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            503 5.5.1 need MAIL before BDAT
            250 2.1.0 sender OK
            554 5.5.1 no valid recipients
            250 2.1.0 sender OK
            250 2.1.5 recipient OK
            250 2.0.0 60 octets received
            552 5.3.4 message size exceeds the limit of 100 octets
            552 5.3.4 message size exceeds the limit of 100 octets
            250 2.0.0 OK
        "#]],
    );
}

#[test]
fn bdat_then_data_is_refused() {
    check(
        "EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.com>\r\n\
         BDAT 1\r\nxDATA\r\nBDAT 0 LAST\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            250 2.1.0 sender OK
            250 2.1.5 recipient OK
            250 2.0.0 1 octets received
            503 5.5.1 DATA after BDAT
            [stored 1 octets for user@example.com]
            250 2.0.0 OK queued as ID1
        "#]],
    );
}

#[test]
fn starttls_discards_pipelined_commands_and_resets() {
    let (transcript, _) = run(b"EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<injected@example.org>\r\n");
    expect![[r#"
        220 mx.test ESMTP tme ready
        250-mx.test greets c.test
        250-PIPELINING
        250-SIZE 100
        250-8BITMIME
        250-SMTPUTF8
        250-ENHANCEDSTATUSCODES
        250-CHUNKING
        250-DSN
        250-STARTTLS
        250 HELP
        220 2.0.0 ready to start TLS
        [tls]
    "#]]
    .assert_eq(&transcript);
    // After the handshake: EHLO again, and STARTTLS no longer offered.
    let mut session = Session::new(config(), "192.0.2.1".parse().expect("ip"));
    session.tls_started();
    let Step::Reply(reply) = session.command(b"MAIL FROM:<a@example.org>\r\n") else {
        panic!("a reply");
    };
    assert_eq!(reply.code, 503);
    let Step::Reply(reply) = session.command(b"EHLO c.test\r\n") else {
        panic!("a reply");
    };
    assert!(!reply.lines.iter().any(|line| line == "STARTTLS"));
    assert!(reply.lines.iter().any(|line| line == "REQUIRETLS"));
    let Step::Reply(reply) = session.command(b"STARTTLS\r\n") else {
        panic!("a reply");
    };
    assert_eq!(reply.code, 503);
}

#[test]
fn requiretls_needs_tls_and_is_kept() {
    check(
        "EHLO c.test\r\nMAIL FROM:<a@example.org> REQUIRETLS\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c.test
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first
        "#]],
    );
    let mut session = Session::new(config(), "192.0.2.1".parse().expect("ip"));
    session.tls_started();
    session.command(b"EHLO c.test\r\n");
    let Step::Reply(reply) = session.command(b"MAIL FROM:<a@example.org> REQUIRETLS\r\n") else {
        panic!("a reply");
    };
    assert_eq!(reply.code, 250);
}

#[test]
fn a_dropped_data_stores_nothing() {
    let (transcript, delivered) = run(b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n\
        RCPT TO:<user@example.com>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess");
    assert!(delivered.is_empty());
    assert!(
        transcript.ends_with("[connection lost in DATA]\n"),
        "{transcript}"
    );
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let (transcript, delivered) = run("EHLO c.test\r\nMAIL FROM:<jörg@example.org>\r\n\
        MAIL FROM:<jörg@example.org> SMTPUTF8\r\nRCPT TO:<用户@example.com>\r\nDATA\r\nx\r\n.\r\n"
        .as_bytes());
    expect![[r#"
        220 mx.test ESMTP tme ready
        250-mx.test greets c.test
        250-PIPELINING
        250-SIZE 100
        250-8BITMIME
        250-SMTPUTF8
        250-ENHANCEDSTATUSCODES
        250-CHUNKING
        250-DSN
        250-STARTTLS
        250 HELP
        553 5.6.7 non-ASCII address requires SMTPUTF8
        250 2.1.0 sender OK
        250 2.1.5 recipient OK
        354 2.0.0 send the message, end with <CRLF>.<CRLF>
        [stored 3 octets for 用户@example.com]
        250 2.0.0 OK queued as ID1
    "#]]
    .assert_eq(&transcript);
    assert_eq!(delivered[0].mode.protocol(), "UTF8SMTP");
}

#[test]
fn dsn_parameters_are_kept() {
    let (_, delivered) = run(b"EHLO c.test\r\n\
        MAIL FROM:<a@example.org> RET=HDRS ENVID=QQ314159\r\n\
        RCPT TO:<user@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@example.com\r\n\
        DATA\r\nx\r\n.\r\n");
    let envelope = &delivered[0].envelope;
    assert_eq!(envelope.dsn_return, Some(DsnReturn::Headers));
    assert_eq!(envelope.dsn_envelope_id.as_deref(), Some("QQ314159"));
    let recipient = &envelope.recipients[0];
    assert_eq!(
        recipient.dsn_notify,
        Some(DsnNotify {
            success: true,
            failure: true,
            delay: false,
            never: false
        })
    );
    assert!(recipient.dsn_original_recipient.is_some());
}

#[test]
fn helo_sessions_take_no_parameters() {
    check(
        "HELO c.test\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\nMAIL FROM:<a@example.org>\r\n\
         VRFY user\r\nHELP\r\nEXPN list\r\nSTARTTLS\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250 mx.test greets c.test
            555 5.5.4 MAIL parameters need EHLO
            250 2.1.0 sender OK
            252 2.5.2 cannot VRFY user, but will accept message and attempt delivery
            214-2.0.0 commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS
            214 2.0.0 see RFC 5321
            502 5.5.1 command not implemented
            503 5.5.1 send EHLO first
        "#]],
    );
}

#[test]
fn postmaster_without_a_domain_is_ours() {
    let mut session = Session::new(config(), "192.0.2.1".parse().expect("ip"));
    session.command(b"EHLO c.test\r\n");
    session.command(b"MAIL FROM:<a@example.org>\r\n");
    let Step::ResolveRecipient { address, .. } = session.command(b"RCPT TO:<Postmaster>\r\n")
    else {
        panic!("the recipient is looked up");
    };
    assert_eq!(address.to_string(), "postmaster@mx.test");
}

/// Random streams built from pieces of valid commands, content and garbage, from every state
/// the pieces reach: the session answers or closes, and never panics.
#[test]
fn random_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let pieces: &[&[u8]] = &[
        b"EHLO c.test\r\n",
        b"HELO c.test\r\n",
        b"MAIL FROM:<a@example.org>\r\n",
        b"MAIL FROM:<a@example.org> SIZE=50 BODY=8BITMIME SMTPUTF8\r\n",
        b"RCPT TO:<user@example.com>\r\n",
        b"RCPT TO:<unknown@example.com>\r\n",
        b"RCPT TO:<x@elsewhere.test> NOTIFY=NEVER\r\n",
        b"DATA\r\n",
        b"BDAT 3\r\n",
        b"BDAT 0 LAST\r\n",
        b"BDAT 99999999999999999999999\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"STARTTLS\r\n",
        b"\r\n.\r\n",
        b".\r\n",
        b"..\r\n",
        b"\n.\n",
        b"\r",
        b"\n",
        b"\x00",
        b"\xff\xfe",
        b"<>",
        b"MAIL",
        b"text line\r\n",
    ];
    let mut random = rand::rngs::StdRng::seed_from_u64(5321);
    for _ in 0..2_000 {
        let mut input = Vec::new();
        for _ in 0..random.gen_range(1..40) {
            input.extend_from_slice(pieces[random.gen_range(0..pieces.len())]);
            if random.gen_bool(0.1) {
                let length = random.gen_range(0..8);
                input.extend((0..length).map(|_| random.r#gen::<u8>()));
            }
        }
        let _ = run(&input);
    }
}

// Submission (RFC 4954, RFC 6409).

#[test]
fn submission_offers_auth_only_over_tls() {
    check_submission(
        false,
        "EHLO c\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0\r\nMAIL FROM:<user@example.com>\r\nSTARTTLS\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            538 5.7.11 encryption required: issue STARTTLS first
            530 5.7.0 authentication required
            220 2.0.0 ready to start TLS
            [tls]
        "#]],
    );
}

#[test]
fn submission_auth_plain_then_a_message() {
    check_submission(
        true,
        "EHLO c\r\nMAIL FROM:<user@example.com>\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0\r\nAUTH PLAIN =\r\n\
         MAIL FROM:<other@example.com>\r\nMAIL FROM:<user@example.com> AUTH=<>\r\nRCPT TO:<friend@remote.test>\r\n\
         RCPT TO:<unknown@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-AUTH PLAIN LOGIN
            250-REQUIRETLS
            250 HELP
            530 5.7.0 authentication required
            [login user@example.com]
            235 2.7.0 authentication succeeded
            503 5.5.1 already authenticated
            550 5.7.1 sender address not owned by the authenticated user
            250 2.1.0 sender OK
            250 2.1.5 recipient OK
            550 5.1.1 no such user here
            354 2.0.0 send the message, end with <CRLF>.<CRLF>
            [stored 18 octets for friend@remote.test]
            250 2.0.0 OK queued as ID1
        "#]],
    );
}

/// A credential revoked after AUTH: the next MAIL gets 530 and the session must
/// authenticate again.
#[test]
fn submission_revoked_credential_needs_auth_again() {
    check_submission(
        true,
        "EHLO c\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0\r\nMAIL FROM:<revoked@example.com>\r\n\
         MAIL FROM:<user@example.com>\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0\r\n\
         MAIL FROM:<user@example.com>\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-AUTH PLAIN LOGIN
            250-REQUIRETLS
            250 HELP
            [login user@example.com]
            235 2.7.0 authentication succeeded
            530 5.7.0 the password of this session was changed or revoked, authenticate again
            530 5.7.0 authentication required
            [login user@example.com]
            235 2.7.0 authentication succeeded
            250 2.1.0 sender OK
        "#]],
    );
}

#[test]
fn submission_auth_login_cancel_and_bad_base64() {
    check_submission(
        true,
        "EHLO c\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\n!!!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\nnot base64\r\n\
         AUTH PLAIN\r\nAHVzZXJAZXhhbXBsZS5jb20Ad3Jvbmc=\r\nAUTH LOGIN dXNlckBleGFtcGxlLmNvbQ==\r\nc2VjcmV0\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-AUTH PLAIN LOGIN
            250-REQUIRETLS
            250 HELP
            334 VXNlcm5hbWU6
            501 5.7.0 authentication cancelled
            334 VXNlcm5hbWU6
            501 5.5.2 cannot decode the response as base64
            504 5.5.4 unknown authentication mechanism; use PLAIN or LOGIN
            334 
            501 5.5.2 cannot decode the response as base64
            334 
            [login user@example.com]
            535 5.7.8 authentication credentials invalid
            334 UGFzc3dvcmQ6
            [login user@example.com]
            235 2.7.0 authentication succeeded
        "#]],
    );
}

#[test]
fn mx_does_not_offer_auth() {
    check(
        "EHLO c\r\nAUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0\r\n",
        expect![[r#"
            220 mx.test ESMTP tme ready
            250-mx.test greets c
            250-PIPELINING
            250-SIZE 100
            250-8BITMIME
            250-SMTPUTF8
            250-ENHANCEDSTATUSCODES
            250-CHUNKING
            250-DSN
            250-STARTTLS
            250 HELP
            502 5.5.1 command not implemented
        "#]],
    );
}
