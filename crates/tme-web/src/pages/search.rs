//! The search page: the form, kept filled in, and its results with their folders.

use maud::{Markup, html};

use super::mail::{FolderEntry, display_addresses, folder_list, format_date};
use super::{Viewer, layout};
use crate::search::{Found, SEARCH_RESULTS_MAX, SearchForm};

/// The search form and, once a search ran, its results (and whether there were more than
/// shown); `problem` says what was wrong with the form.
pub fn search(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    form: &SearchForm,
    results: Option<(&[Found], bool)>,
    problem: Option<&str>,
) -> Markup {
    layout(
        "Search",
        Some(viewer),
        html! {
            div class="app" {
                (folder_list(folders, 0))
                main class="search" {
                    h1 { "Search" }
                    form method="get" action="/search" class="search-form" role="search" {
                        div class="field wide" {
                            label for="search-q" { "Words" }
                            input id="search-q" name="q" type="search" value=(form.q) autofocus;
                        }
                        @for (name, label, kind, value) in [
                            ("from", "From", "text", &form.from),
                            ("to", "To or Cc", "text", &form.to),
                            ("subject", "Subject", "text", &form.subject),
                            ("since", "From date", "date", &form.since),
                            ("before", "Before date", "date", &form.before),
                        ] {
                            div class="field" {
                                label for={ "search-" (name) } { (label) }
                                input id={ "search-" (name) } name=(name) type=(kind) value=(value);
                            }
                        }
                        div class="field" {
                            label for="search-folder" { "Folder" }
                            select id="search-folder" name="folder" {
                                option value="" { "All folders" }
                                @for folder in folders {
                                    @let id = folder.mailbox.id.to_string();
                                    option value=(id) selected[form.folder == id] { (folder.mailbox.name) }
                                }
                            }
                        }
                        button type="submit" { "Search" }
                    }
                    @if let Some(problem) = problem {
                        p class="error" role="alert" { (problem) }
                    }
                    @if let Some((found, more)) = results {
                        h2 { (found.len()) @if more { "+" } " found" }
                        @if more {
                            p class="notice" { "Only the newest " (SEARCH_RESULTS_MAX) " are shown: narrow the search to see the others." }
                        }
                        @if !found.is_empty() {
                            table class="message-list search-results" {
                                thead { tr {
                                    th scope="col" { "Folder" }
                                    th scope="col" { "From" }
                                    th scope="col" { "Subject" }
                                    th scope="col" { "Date" }
                                }}
                                tbody {
                                    @for hit in found {
                                        @let summary = hit.row.summary.as_deref();
                                        @let subject = summary.and_then(|summary| summary.subject.clone()).filter(|subject| !subject.trim().is_empty()).unwrap_or_else(|| "(no subject)".to_owned());
                                        tr data-uid=(hit.row.record.uid) {
                                            td class="folder" { (hit.mailbox.name) }
                                            td class="from" { (summary.map(|summary| display_addresses(&summary.from)).unwrap_or_default()) }
                                            td class="subject" {
                                                a href={ "/mail/" (hit.mailbox.id) "/" (hit.row.record.uid) } { (subject) }
                                            }
                                            td class="date" { (format_date(summary.and_then(|summary| summary.date_unix).unwrap_or(hit.row.record.internal_date_unix))) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
