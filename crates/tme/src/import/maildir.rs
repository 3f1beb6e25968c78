//! Maildir folders, with Maildir++ subfolders (`.Sent`, `.Projects.2026`).
//!
//! Messages come from `cur/` and `new/`; the `:2,FLAGS` suffix of a file name gives its flags
//! and the file's modification time its arrival. A subfolder `.A.B` becomes the mailbox
//! `A/B` below the import target.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Source, SourceMessage, read_message_file};

#[derive(Debug)]
pub struct MaildirReader {
    files: Vec<(PathBuf, Option<String>)>,
    next: usize,
}

impl MaildirReader {
    pub fn open(root: &Path) -> Result<MaildirReader> {
        let mut files = Vec::new();
        collect_folder(root, None, &mut files)?;
        let mut subfolders: Vec<(PathBuf, String)> = Vec::new();
        for entry in
            std::fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))?
        {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            if let Some(folder) = name.strip_prefix('.')
                && !folder.is_empty()
                && (path.join("cur").is_dir() || path.join("new").is_dir())
            {
                subfolders.push((path.clone(), folder.replace('.', "/")));
            }
        }
        subfolders.sort();
        for (path, folder) in subfolders {
            collect_folder(&path, Some(folder), &mut files)?;
        }
        Ok(MaildirReader { files, next: 0 })
    }
}

fn collect_folder(
    folder: &Path,
    mailbox: Option<String>,
    files: &mut Vec<(PathBuf, Option<String>)>,
) -> Result<()> {
    let mut found = Vec::new();
    for part in ["cur", "new"] {
        let directory = folder.join(part);
        if !directory.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&directory)
            .with_context(|| format!("cannot list {}", directory.display()))?
        {
            let path = entry?.path();
            if path.is_file() {
                found.push(path);
            }
        }
    }
    // Maildir names start with the delivery time, so name order is close to arrival order.
    found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.extend(found.into_iter().map(|path| (path, mailbox.clone())));
    Ok(())
}

/// The flags of a Maildir file name's `:2,` info (https://cr.yp.to/proto/maildir.html).
fn flags_of(name: &str) -> Vec<&'static str> {
    let Some((_, info)) = name.rsplit_once(":2,") else {
        return Vec::new();
    };
    info.chars()
        .filter_map(|flag| match flag {
            'S' => Some("\\Seen"),
            'R' => Some("\\Answered"),
            'F' => Some("\\Flagged"),
            'T' => Some("\\Deleted"),
            'D' => Some("\\Draft"),
            'P' => Some("$Forwarded"),
            _ => None,
        })
        .collect()
}

impl Iterator for MaildirReader {
    type Item = Result<SourceMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        let (path, folder) = self.files.get(self.next)?.clone();
        self.next += 1;
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let modified = std::fs::metadata(&path)
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|duration| duration.as_secs() as i64);
        Some(read_message_file(&path).map(|raw| SourceMessage {
            raw,
            folder,
            flags: flags_of(&name),
            internal_date_unix: modified,
            origin: path.display().to_string(),
        }))
    }
}

impl Source for MaildirReader {
    fn progress(&self) -> (u64, u64) {
        (self.files.len() as u64, self.next as u64)
    }

    fn kind(&self) -> &'static str {
        "Maildir"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_folders_and_flags() {
        let directory = tempfile::tempdir().expect("tempdir");
        let root = directory.path();
        for folder in ["cur", "new", "tmp", ".Sent/cur", ".Projects.2026/new"] {
            std::fs::create_dir_all(root.join(folder)).expect("mkdir");
        }
        std::fs::write(root.join("cur/1700000000.1.host:2,FS"), b"Subject: a\n\n").expect("write");
        std::fs::write(root.join("new/1700000001.2.host"), b"Subject: b\n\n").expect("write");
        std::fs::write(
            root.join(".Sent/cur/1700000002.3.host:2,S"),
            b"Subject: c\n\n",
        )
        .expect("write");
        std::fs::write(
            root.join(".Projects.2026/new/1700000003.4.host"),
            b"Subject: d\n\n",
        )
        .expect("write");
        let messages: Vec<SourceMessage> = MaildirReader::open(root)
            .expect("open")
            .map(|message| message.expect("read"))
            .collect();
        let summary: Vec<(Option<&str>, Vec<&str>)> = messages
            .iter()
            .map(|m| (m.folder.as_deref(), m.flags.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, vec!["\\Flagged", "\\Seen"]),
                (None, vec![]),
                (Some("Projects/2026"), vec![]),
                (Some("Sent"), vec!["\\Seen"]),
            ]
        );
    }
}
