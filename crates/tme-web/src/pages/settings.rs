//! The settings page: one section per concern (profile, signature, vacation reply,
//! password, app passwords, sessions), each a plain form with labelled fields that posts with the
//! session's CSRF token; no JavaScript. Notices are fixed texts chosen by code.

use maud::{Markup, html};
use tme_store::{
    AppPassword, VACATION_BODY_CHARS_MAX, VACATION_SUBJECT_CHARS_MAX, Vacation, WebSession,
};

use super::{Viewer, csrf_field, format_date, layout};

/// A short message at the top of the page after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Done(&'static str),
    Refused(&'static str),
}

impl Notice {
    /// The confirmation named by `code` (`/settings?done=code`).
    pub fn done(code: &str) -> Option<Notice> {
        let text = match code {
            "display-name" => "Display name saved.",
            "signature" => "Signature saved.",
            "vacation" => "Vacation reply saved.",
            "password" => "Password changed. Your other sessions were logged out.",
            "app-password-revoked" => "App password revoked.",
            "session-revoked" => "Session logged out.",
            "sessions-revoked" => "All other sessions logged out.",
            _ => return None,
        };
        Some(Notice::Done(text))
    }

    /// The refusal named by `code` (`/settings?error=code`).
    pub fn error(code: &str) -> Option<Notice> {
        let text = match code {
            "display-name" => "That display name is too long or has control characters.",
            "signature" => "That signature is too long or has control characters.",
            "vacation" => "That vacation subject or text is too long or has control characters.",
            "vacation-dates" => "Give the vacation's days as dates, the last not before the first.",
            "password-mismatch" => "The new password and its confirmation differ.",
            "password-length" => "The new password must have at least 10 characters.",
            "password-wrong" => "The current password is wrong.",
            "locked" => "Too many wrong passwords: try again later.",
            "app-password-label" => "Give the app password a name of at most 64 characters.",
            "app-password-count" => "This account has too many app passwords: revoke one first.",
            _ => return None,
        };
        Some(Notice::Refused(text))
    }
}

/// One web session in the list.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session: WebSession,
    /// The session this page was asked for.
    pub current: bool,
}

/// What the settings page shows.
#[derive(Debug)]
pub struct SettingsView<'a> {
    pub display_name: &'a str,
    pub signature: &'a str,
    pub vacation: &'a Vacation,
    /// Whether the vacation reply answers mail today.
    pub vacation_active_now: bool,
    pub app_passwords: &'a [AppPassword],
    pub sessions: &'a [SessionRow],
    pub notice: Option<Notice>,
    /// A just-created app password (name, password), shown this once.
    pub new_app_password: Option<(&'a str, &'a str)>,
}

pub fn settings(viewer: Viewer<'_>, view: &SettingsView<'_>) -> Markup {
    let csrf = viewer.csrf_token;
    layout(
        "Settings",
        Some(viewer),
        html! {
            main class="settings" {
                h1 { "Settings" }
                @match view.notice {
                    Some(Notice::Done(text)) => p class="notice" role="status" { (text) },
                    Some(Notice::Refused(text)) => p class="error" role="alert" { (text) },
                    None => {},
                }
                section aria-labelledby="profile-heading" {
                    h2 id="profile-heading" { "Profile" }
                    form method="post" action="/settings/profile" {
                        (csrf_field(csrf))
                        label for="display_name" { "Display name" }
                        input id="display_name" name="display_name" type="text"
                            maxlength="100" autocomplete="name" value=(view.display_name);
                        button type="submit" { "Save display name" }
                    }
                }
                section aria-labelledby="signature-heading" {
                    h2 id="signature-heading" { "Signature" }
                    form method="post" action="/settings/signature" {
                        (csrf_field(csrf))
                        label for="signature" { "Signature added to new messages" }
                        textarea id="signature" name="signature" rows="4" maxlength="4000" {
                            (view.signature)
                        }
                        button type="submit" { "Save signature" }
                    }
                }
                section aria-labelledby="vacation-heading" {
                    h2 id="vacation-heading" { "Vacation reply" }
                    p id="vacation-state" role="status" {
                        @if view.vacation_active_now {
                            "On: mail to your Inbox is answered, once a week per sender."
                        } @else if view.vacation.enabled {
                            "On, but not answering today (outside its days)."
                        } @else {
                            "Off."
                        }
                    }
                    form method="post" action="/settings/vacation" {
                        (csrf_field(csrf))
                        label for="vacation_enabled" {
                            input id="vacation_enabled" name="enabled" type="checkbox"
                                checked[view.vacation.enabled];
                            " Answer new mail automatically"
                        }
                        label for="vacation_subject" { "Subject (empty: \"Auto:\" and the original subject)" }
                        input id="vacation_subject" name="subject" type="text"
                            maxlength=(VACATION_SUBJECT_CHARS_MAX) value=(view.vacation.subject);
                        label for="vacation_body" { "Reply text" }
                        textarea id="vacation_body" name="body" rows="5"
                            maxlength=(VACATION_BODY_CHARS_MAX) {
                            (view.vacation.body)
                        }
                        label for="vacation_first_day" { "First day (optional)" }
                        input id="vacation_first_day" name="first_day" type="date"
                            value=(view.vacation.first_day_epoch_days.map(crate::settings::format_day).unwrap_or_default());
                        label for="vacation_last_day" { "Last day (optional)" }
                        input id="vacation_last_day" name="last_day" type="date"
                            value=(view.vacation.last_day_epoch_days.map(crate::settings::format_day).unwrap_or_default());
                        button type="submit" { "Save vacation reply" }
                    }
                }
                section aria-labelledby="password-heading" {
                    h2 id="password-heading" { "Password" }
                    form method="post" action="/settings/password" {
                        (csrf_field(csrf))
                        label for="current_password" { "Current password" }
                        input id="current_password" name="current_password" type="password"
                            autocomplete="current-password" required;
                        label for="new_password" { "New password (at least 10 characters)" }
                        input id="new_password" name="new_password" type="password"
                            autocomplete="new-password" minlength="10" required;
                        label for="confirm_password" { "New password again" }
                        input id="confirm_password" name="confirm_password" type="password"
                            autocomplete="new-password" minlength="10" required;
                        button type="submit" { "Change password" }
                    }
                }
                section aria-labelledby="app-passwords-heading" {
                    h2 id="app-passwords-heading" { "App passwords" }
                    p { "An app password lets one mail program (IMAP, POP3, SMTP) log in without your password. Revoke it when you stop using the program." }
                    @if let Some((label, password)) = view.new_app_password {
                        div class="new-app-password" role="status" {
                            p { "The app password for " strong { (label) } " is:" }
                            p { code id="new-app-password" { (password) } }
                            p { "It is shown only now: copy it into the program." }
                        }
                    }
                    @if view.app_passwords.is_empty() {
                        p { "No app passwords." }
                    } @else {
                        table class="settings-list" {
                            thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                            tbody {
                                @for app_password in view.app_passwords {
                                    tr {
                                        td class="label" { (app_password.label) }
                                        td { (format_date(app_password.created_unix)) }
                                        td { (app_password.last_used_unix.map(format_date).unwrap_or_else(|| "never".to_owned())) }
                                        td {
                                            form method="post" action={ "/settings/app-passwords/" (app_password.id) "/revoke" } {
                                                (csrf_field(csrf))
                                                button type="submit" aria-label={ "Revoke app password " (app_password.label) } { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action="/settings/app-passwords" {
                        (csrf_field(csrf))
                        label for="app_password_label" { "Name of the new app password (e.g. the program)" }
                        input id="app_password_label" name="label" type="text" maxlength="64" required;
                        button type="submit" { "Create app password" }
                    }
                }
                section aria-labelledby="sessions-heading" {
                    h2 id="sessions-heading" { "Web sessions" }
                    table class="settings-list sessions" {
                        thead { tr { th scope="col" { "Logged in" } th scope="col" { "From" } th scope="col" { "Browser" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                        tbody {
                            @for row in view.sessions {
                                tr class=[row.current.then_some("current")] {
                                    td { (format_date(row.session.created_unix)) }
                                    td { (row.session.client_address) }
                                    td class="user-agent" { (row.session.user_agent) }
                                    td {
                                        @if row.current {
                                            strong { "This session" }
                                        } @else {
                                            form method="post" action="/settings/sessions/revoke" {
                                                (csrf_field(csrf))
                                                input type="hidden" name="session" value=(row.session.token_hash);
                                                button type="submit" aria-label={ "Log out the session from " (row.session.client_address) " of " (format_date(row.session.created_unix)) } { "Log out" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action="/settings/sessions/revoke-others" {
                        (csrf_field(csrf))
                        button type="submit" { "Log out all other sessions" }
                    }
                }
            }
        },
    )
}
