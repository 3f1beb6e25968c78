//! The HTML of every page, as maud templates: values are escaped when inserted; the one
//! exception (`PreEscaped`) is the message HTML that `body::sanitize_html` returned.
//!
//! Pages need no JavaScript and load nothing but `/static/style.css`: the Content Security
//! Policy (`lib.rs`) forbids inline styles and scripts, so none are written here. Every form
//! that changes state is a POST carrying the session's CSRF token (`csrf_field`).

pub mod compose;
pub mod mail;
pub mod search;
pub mod settings;

use maud::{DOCTYPE, Markup, html};

pub use crate::branding::Brand;
use crate::branding::default_brand;
pub use mail::{FolderEntry, MessageRow, Paging, format_date};

/// The product name on every page without a partner brand.
pub const PRODUCT_NAME: &str = crate::branding::PRODUCT_NAME_DEFAULT;

/// Who is logged in, for the page header.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub address: &'a str,
    pub csrf_token: &'a str,
    /// The brand of the account's partner.
    pub brand: &'a Brand,
}

/// A page: the viewer's brand, or the default one without a viewer.
pub fn layout(title: &str, viewer: Option<Viewer<'_>>, content: Markup) -> Markup {
    let brand = viewer.map_or(default_brand(), |viewer| viewer.brand);
    layout_branded(title, viewer, brand, content)
}

/// A page in `brand`: its name, logo and colour sheet (linked: no inline style).
pub fn layout_branded(
    title: &str,
    viewer: Option<Viewer<'_>>,
    brand: &Brand,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " – " (brand.product_name) }
                link rel="stylesheet" href="/static/style.css";
                @if let Some(sheet) = &brand.stylesheet_path {
                    link rel="stylesheet" href=(sheet);
                }
                @if viewer.is_some() {
                    script src="/static/app.js" defer {}
                }
            }
            body {
                header class="top" {
                    a class="product" href="/mail" {
                        @if let Some(logo) = &brand.logo_url {
                            img class="logo" src=(logo) alt="";
                        }
                        (brand.product_name)
                    }
                    @if let Some(viewer) = viewer {
                        nav class="app-nav" aria-label="Webmail" {
                            a href="/mail" accesskey="m" { "Mail" }
                            a href="/compose" accesskey="c" { "Compose" }
                            a href="/search" accesskey="s" { "Search" }
                            a href="/settings" { "Settings" }
                        }
                        span class="viewer" { (viewer.address) }
                        form method="post" action="/logout" class="logout" {
                            (csrf_field(viewer.csrf_token))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                (content)
            }
        }
    }
}

/// The hidden field every state-changing form carries.
/// "1 message", "2 messages": a count with its noun in the number it takes.
pub fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

pub fn csrf_field(csrf_token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf_token); }
}

/// The login form; `error` says why the last try failed.
pub fn login(login_token: &str, address: &str, error: Option<&str>, brand: &Brand) -> Markup {
    layout_branded(
        "Log in",
        None,
        brand,
        html! {
            main class="login" {
                h1 { "Log in" }
                @if let Some(error) = error {
                    p class="error" role="alert" { (error) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="login_token" value=(login_token);
                    label for="address" { "Email address" }
                    input id="address" name="address" type="email" autocomplete="username"
                        required value=(address);
                    label for="password" { "Password" }
                    input id="password" name="password" type="password"
                        autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// An error page.
pub fn error(status_title: &str, explanation: &str, viewer: Option<Viewer<'_>>) -> Markup {
    layout(
        status_title,
        viewer,
        html! {
            main class="error-page" {
                h1 { (status_title) }
                p { (explanation) }
                p { a href="/mail" { "Back to the mail" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_take_their_number() {
        assert_eq!(super::counted(0, "message", "messages"), "0 messages");
        assert_eq!(super::counted(1, "message", "messages"), "1 message");
        assert_eq!(super::counted(2, "message", "messages"), "2 messages");
    }

    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = login(
            "t",
            "\"><script>x()</script>",
            Some("<b>no</b>"),
            &Brand::default(),
        )
        .into_string();
        assert!(!page.contains("<script>x()"), "{page}");
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"), "{page}");
        assert!(
            !page.contains("style="),
            "no inline style: the CSP forbids it"
        );
    }
}
