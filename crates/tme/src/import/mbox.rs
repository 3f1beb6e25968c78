//! mbox files (RFC 4155): messages separated by `From ` lines.
//!
//! A separator is a line starting with `From ` at the start of the file or after a blank
//! line; the blank line before a separator belongs to the format, not to the message. Lines
//! the writer escaped as `>From ` (mboxrd) lose one `>`. The file is streamed: memory holds
//! one message at a time.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{IMPORT_MESSAGE_BYTES_MAX, Source, SourceMessage};

#[derive(Debug)]
pub struct MboxReader {
    reader: BufReader<File>,
    path: String,
    total_bytes: u64,
    read_bytes: u64,
    line_number: u64,
    /// The separator line that starts the next message, once read.
    pending_separator: Option<(Vec<u8>, u64)>,
    finished: bool,
}

impl MboxReader {
    pub fn open(path: &Path) -> Result<MboxReader> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let total_bytes = file.metadata()?.len();
        let mut reader = MboxReader {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.display().to_string(),
            total_bytes,
            read_bytes: 0,
            line_number: 0,
            pending_separator: None,
            finished: false,
        };
        let mut first = Vec::new();
        reader.read_line(&mut first)?;
        if first.is_empty() {
            bail!("{} is empty", path.display());
        }
        if !first.starts_with(b"From ") {
            bail!(
                "{} does not start with a `From ` line, so it is not an mbox file (to import single messages, put .eml files in a folder)",
                path.display()
            );
        }
        reader.pending_separator = Some((first, 1));
        Ok(reader)
    }

    fn read_line(&mut self, line: &mut Vec<u8>) -> Result<usize> {
        line.clear();
        let count = self
            .reader
            .read_until(b'\n', line)
            .with_context(|| format!("cannot read {}", self.path))?;
        self.read_bytes += count as u64;
        if count > 0 {
            self.line_number += 1;
        }
        Ok(count)
    }

    fn read_message(&mut self) -> Result<Option<SourceMessage>> {
        let Some((separator, start_line)) = self.pending_separator.take() else {
            return Ok(None);
        };
        let internal_date_unix = separator_date(&separator);
        let mut raw: Vec<u8> = Vec::new();
        let mut previous_blank = false;
        let mut too_large = false;
        let mut line = Vec::new();
        loop {
            if self.read_line(&mut line)? == 0 {
                self.finished = true;
                // Writers end every message with a blank line, the last one too.
                if previous_blank {
                    strip_one_line_ending(&mut raw);
                }
                break;
            }
            if previous_blank && line.starts_with(b"From ") {
                // A separator ends the message; the blank line before it is the format's.
                self.pending_separator = Some((line.clone(), self.line_number));
                strip_one_line_ending(&mut raw);
                break;
            }
            previous_blank = line == b"\n" || line == b"\r\n";
            if too_large {
                continue;
            }
            let unescaped = unescape_from(&line);
            if raw.len() + unescaped.len() > IMPORT_MESSAGE_BYTES_MAX {
                too_large = true;
                raw = Vec::new();
                continue;
            }
            raw.extend_from_slice(unescaped);
        }
        let origin = format!("{}:{start_line}", self.path);
        if too_large {
            bail!("{origin}: message over the {IMPORT_MESSAGE_BYTES_MAX}-byte limit");
        }
        Ok(Some(SourceMessage {
            raw,
            folder: None,
            flags: Vec::new(),
            internal_date_unix,
            origin,
        }))
    }
}

/// `>From `, `>>From `... lose one `>` (mboxrd).
fn unescape_from(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|byte| **byte == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

fn strip_one_line_ending(raw: &mut Vec<u8>) {
    if raw.ends_with(b"\r\n") {
        raw.truncate(raw.len() - 2);
    } else if raw.ends_with(b"\n") {
        raw.truncate(raw.len() - 1);
    }
}

/// The date at the end of a `From sender Thu Nov 28 10:00:00 2026` line, if it reads as one.
fn separator_date(separator: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(separator).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    // asctime: weekday month day hh:mm:ss year, possibly followed by a zone we ignore.
    let month_index = words.iter().position(|word| month_number(word).is_some())?;
    let month = month_number(words[month_index])?;
    let day: u8 = words.get(month_index + 1)?.parse().ok()?;
    let clock: Vec<u8> = words
        .get(month_index + 2)?
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    let year: i32 = words.get(month_index + 3)?.parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let time = time::Time::from_hms(
        *clock.first()?,
        *clock.get(1)?,
        clock.get(2).copied().unwrap_or(0),
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn month_number(word: &str) -> Option<u8> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|month| *month == word)
        .map(|index| index as u8 + 1)
}

impl Iterator for MboxReader {
    type Item = Result<SourceMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished && self.pending_separator.is_none() {
            return None;
        }
        self.read_message().transpose()
    }
}

impl Source for MboxReader {
    fn progress(&self) -> (u64, u64) {
        (self.total_bytes, self.read_bytes)
    }

    fn kind(&self) -> &'static str {
        "mbox"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(contents: &[u8]) -> Vec<SourceMessage> {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("box.mbox");
        std::fs::write(&path, contents).expect("write");
        MboxReader::open(&path)
            .expect("open")
            .map(|message| message.expect("message"))
            .collect()
    }

    #[test]
    fn splits_and_unescapes() {
        let messages = read_all(
            b"From alice@example.org Thu Nov 28 10:00:00 2026\n\
              Subject: one\n\n>From the start\n>>From deeper\nFrom inside a paragraph\n\n\
              From bob@example.org Fri Nov 29 11:30:00 2026\n\
              Subject: two\n\nbody\n\n",
        );
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0].raw,
            b"Subject: one\n\nFrom the start\n>From deeper\nFrom inside a paragraph\n".to_vec()
        );
        assert_eq!(messages[1].raw, b"Subject: two\n\nbody\n".to_vec());
        assert_eq!(messages[0].internal_date_unix, Some(1_795_860_000));
        assert!(messages[1].origin.ends_with(":8"));
    }

    #[test]
    fn refuses_a_file_that_is_not_mbox() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("message.eml");
        std::fs::write(&path, b"Subject: hi\n\nhello\n").expect("write");
        let error = MboxReader::open(&path).expect_err("not mbox");
        assert!(error.to_string().contains("not an mbox file"), "{error}");
    }
}
