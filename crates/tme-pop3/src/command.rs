//! Parses one command line (RFC 1939 §3, RFC 2449 §3) into a `Command`: a keyword, case
//! insensitive, and its arguments separated by spaces. It knows nothing of states or of what
//! a command is allowed to do: the session decides that.
//!
//! Arguments are parsed strictly where the RFC gives a grammar (message numbers and line
//! counts are decimal digits, nothing else) and liberally where clients differ: PASS takes
//! the rest of the line, spaces included (RFC 1939 §7: "a POP3 server may treat spaces in
//! the argument as part of the password").

use tme_core::Secret;

/// A message number as the client wrote it: decimal digits, never zero-padded into meaning.
/// Kept wide so that a huge number is "no such message", not a syntax error.
pub type MessageNumber = u64;

/// One command.
#[derive(Debug, Clone)]
pub enum Command {
    Capa,
    User(String),
    Pass(Secret<String>),
    /// AUTH alone lists the mechanisms; AUTH PLAIN may carry the initial response (RFC 5034
    /// §4), `=` for an empty one.
    Auth {
        mechanism: Option<String>,
        initial_response: Option<Vec<u8>>,
    },
    Stls,
    Stat,
    List(Option<MessageNumber>),
    Retr(MessageNumber),
    Dele(MessageNumber),
    Noop,
    Rset,
    Quit,
    Top {
        message: MessageNumber,
        lines: u64,
    },
    Uidl(Option<MessageNumber>),
}

impl Command {
    /// The keyword, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capa => "CAPA",
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Stls => "STLS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
            Command::Top { .. } => "TOP",
            Command::Uidl(_) => "UIDL",
        }
    }
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No keyword we know (APOP, LANG and UTF8 are not offered).
    Unknown,
    /// A known keyword with arguments that do not fit; the text says how to use it.
    Syntax { usage: &'static str },
}

/// Whether the line is an AUTH command: its line may be longer than other commands' (the
/// session applies the command limit to the rest).
pub fn is_auth(line: &[u8]) -> bool {
    line.len() >= 4
        && line[..4].eq_ignore_ascii_case(b"AUTH")
        && matches!(line.get(4), None | Some(b' '))
}

/// Parses one line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let (keyword, rest) = match line.iter().position(|&byte| byte == b' ') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &line[line.len()..]),
    };
    let keyword = keyword.to_ascii_uppercase();
    let arguments: Vec<&[u8]> = rest
        .split(|&byte| byte == b' ')
        .filter(|argument| !argument.is_empty())
        .collect();
    let none = |command: Command, usage| {
        if arguments.is_empty() {
            Ok(command)
        } else {
            Err(CommandError::Syntax { usage })
        }
    };
    match keyword.as_slice() {
        b"CAPA" => none(Command::Capa, "CAPA"),
        b"STLS" => none(Command::Stls, "STLS"),
        b"STAT" => none(Command::Stat, "STAT"),
        b"NOOP" => none(Command::Noop, "NOOP"),
        b"RSET" => none(Command::Rset, "RSET"),
        b"QUIT" => none(Command::Quit, "QUIT"),
        b"USER" => match arguments.as_slice() {
            [name] => Ok(Command::User(String::from_utf8_lossy(name).into_owned())),
            _ => Err(CommandError::Syntax { usage: "USER name" }),
        },
        b"PASS" => {
            if rest.is_empty() {
                return Err(CommandError::Syntax {
                    usage: "PASS password",
                });
            }
            Ok(Command::Pass(Secret::new(
                String::from_utf8_lossy(rest).into_owned(),
            )))
        }
        b"AUTH" => match arguments.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial_response: None,
            }),
            [mechanism] => Ok(Command::Auth {
                mechanism: Some(String::from_utf8_lossy(mechanism).to_ascii_uppercase()),
                initial_response: None,
            }),
            [mechanism, response] => Ok(Command::Auth {
                mechanism: Some(String::from_utf8_lossy(mechanism).to_ascii_uppercase()),
                initial_response: Some(response.to_vec()),
            }),
            _ => Err(CommandError::Syntax {
                usage: "AUTH mechanism [initial-response]",
            }),
        },
        b"LIST" | b"UIDL" => {
            let usage = if keyword == b"LIST" {
                "LIST [msg]"
            } else {
                "UIDL [msg]"
            };
            let message = match arguments.as_slice() {
                [] => None,
                [number] => Some(number_of(number).ok_or(CommandError::Syntax { usage })?),
                _ => return Err(CommandError::Syntax { usage }),
            };
            Ok(if keyword == b"LIST" {
                Command::List(message)
            } else {
                Command::Uidl(message)
            })
        }
        b"RETR" | b"DELE" => {
            let usage = if keyword == b"RETR" {
                "RETR msg"
            } else {
                "DELE msg"
            };
            let [number] = arguments.as_slice() else {
                return Err(CommandError::Syntax { usage });
            };
            let message = number_of(number).ok_or(CommandError::Syntax { usage })?;
            Ok(if keyword == b"RETR" {
                Command::Retr(message)
            } else {
                Command::Dele(message)
            })
        }
        b"TOP" => {
            let usage = "TOP msg n";
            let [message, lines] = arguments.as_slice() else {
                return Err(CommandError::Syntax { usage });
            };
            Ok(Command::Top {
                message: number_of(message).ok_or(CommandError::Syntax { usage })?,
                lines: number_of(lines).ok_or(CommandError::Syntax { usage })?,
            })
        }
        _ => Err(CommandError::Unknown),
    }
}

/// Decimal digits only (no sign, no space); a number too large for u64 saturates, which is
/// "no such message" for a message number and "every line" for TOP.
fn number_of(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |number, digit| {
        number
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: expect_test::Expect) {
        expected.assert_eq(&format!("{:?}", parse(line.as_bytes())));
    }

    #[test]
    fn keywords_are_case_insensitive_and_arguments_checked() {
        check("capa", expect_test::expect!["Ok(Capa)"]);
        check("StAt", expect_test::expect!["Ok(Stat)"]);
        check(
            "STAT 1",
            expect_test::expect![[r#"Err(Syntax { usage: "STAT" })"#]],
        );
        check("LIST", expect_test::expect!["Ok(List(None))"]);
        check("LIST 3", expect_test::expect!["Ok(List(Some(3)))"]);
        check("list  3", expect_test::expect!["Ok(List(Some(3)))"]);
        check(
            "LIST -1",
            expect_test::expect![[r#"Err(Syntax { usage: "LIST [msg]" })"#]],
        );
        check(
            "LIST 1 2",
            expect_test::expect![[r#"Err(Syntax { usage: "LIST [msg]" })"#]],
        );
        check("UIDL 7", expect_test::expect!["Ok(Uidl(Some(7)))"]);
        check(
            "RETR",
            expect_test::expect![[r#"Err(Syntax { usage: "RETR msg" })"#]],
        );
        check(
            "RETR x",
            expect_test::expect![[r#"Err(Syntax { usage: "RETR msg" })"#]],
        );
        check(
            "RETR 99999999999999999999999",
            expect_test::expect!["Ok(Retr(18446744073709551615))"],
        );
        check("dele 2", expect_test::expect!["Ok(Dele(2))"]);
        check(
            "TOP 1 0",
            expect_test::expect!["Ok(Top { message: 1, lines: 0 })"],
        );
        check(
            "TOP 1",
            expect_test::expect![[r#"Err(Syntax { usage: "TOP msg n" })"#]],
        );
        check("APOP alice 0123", expect_test::expect!["Err(Unknown)"]);
        check("", expect_test::expect!["Err(Unknown)"]);
        check("\u{e9}t\u{e9}", expect_test::expect!["Err(Unknown)"]);
    }

    #[test]
    fn user_pass_and_auth() {
        check(
            "USER alice@example.org",
            expect_test::expect![[r#"Ok(User("alice@example.org"))"#]],
        );
        check(
            "USER",
            expect_test::expect![[r#"Err(Syntax { usage: "USER name" })"#]],
        );
        // The password is the rest of the line, spaces included, and never shown.
        check(
            "PASS secret pw ",
            expect_test::expect!["Ok(Pass([redacted]))"],
        );
        let Ok(Command::Pass(password)) = parse(b"PASS secret pw ") else {
            panic!("PASS parses");
        };
        assert_eq!(password.expose(), "secret pw ");
        check(
            "PASS",
            expect_test::expect![[r#"Err(Syntax { usage: "PASS password" })"#]],
        );
        check(
            "AUTH",
            expect_test::expect!["Ok(Auth { mechanism: None, initial_response: None })"],
        );
        check(
            "auth plain",
            expect_test::expect![[
                r#"Ok(Auth { mechanism: Some("PLAIN"), initial_response: None })"#
            ]],
        );
        check(
            "AUTH PLAIN AGFsaWNl",
            expect_test::expect![[
                r#"Ok(Auth { mechanism: Some("PLAIN"), initial_response: Some([65, 71, 70, 115, 97, 87, 78, 108]) })"#
            ]],
        );
        assert!(is_auth(b"auth PLAIN x"));
        assert!(is_auth(b"AUTH"));
        assert!(!is_auth(b"AUTHX"));
    }
}
