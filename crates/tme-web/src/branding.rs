//! Partner branding: which partner's brand a request shows, the `Brand` the pages render,
//! the per-partner style sheet of its colours (`/static/brand/{key}.css`), and the one
//! widening of the Content-Security-Policy a brand may need (its logo's origin).
//!
//! Whose brand: a logged-in request shows the partner of the account's domain; any other
//! (the login form) the partner of the hosted domain the `Host` header names, or of the
//! nearest hosted parent of it (`mail.example.com` → `example.com`); else the default.
//!
//! It must not put a partner's value anywhere unchecked: colours must be CSS colours
//! (`css_colour`) and go only into the style sheet, never inline (the CSP forbids inline
//! styles); the logo must be an `https://` URL (its exact origin is then added to `img-src`
//! of that response only) or a path on this origin. The logo is linked, not fetched: the
//! node makes no request for it, so a partner's URL cannot point the node at an internal
//! service.

use std::sync::LazyLock;

use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP_HEADER, CONTENT_TYPE, HOST,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tme_core::Domain;
use tme_store::{Account, Partner};

use crate::current::current_session;
use crate::respond::WebError;
use crate::{CONTENT_SECURITY_POLICY, WebState};

/// The product name shown when no partner brand applies.
pub const PRODUCT_NAME_DEFAULT: &str = "tme Mail";
/// The longest product name shown, in characters (a longer one is cut).
pub const PRODUCT_NAME_CHARS_MAX: usize = 64;
/// The longest CSS colour value accepted, in octets.
pub const CSS_COLOUR_OCTETS_MAX: usize = 32;
/// The longest logo URL accepted, in octets.
pub const LOGO_URL_OCTETS_MAX: usize = 512;
/// How many parent domains of the Host header are looked up at most.
pub const HOST_PARENT_LOOKUPS_MAX: usize = 8;
/// The hex digits of a brand style sheet's key.
const STYLESHEET_KEY_HEX_DIGITS: usize = 16;

/// What the pages show of a partner's brand. Every field was checked when it was made
/// (`Brand::of_partner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    pub product_name: String,
    /// `/static/brand/{key}.css`, when the partner has colours.
    pub stylesheet_path: Option<String>,
    /// An `https://` URL or a path on this origin.
    pub logo_url: Option<String>,
    /// The origin (`https://host[:port]`) of an `https://` logo, for `img-src`.
    pub logo_origin: Option<String>,
}

impl Default for Brand {
    fn default() -> Brand {
        Brand {
            product_name: PRODUCT_NAME_DEFAULT.to_owned(),
            stylesheet_path: None,
            logo_url: None,
            logo_origin: None,
        }
    }
}

/// The default brand, for pages that have no request to take one from.
pub fn default_brand() -> &'static Brand {
    static DEFAULT: LazyLock<Brand> = LazyLock::new(Brand::default);
    &DEFAULT
}

impl Brand {
    /// The brand of `partner`: what of it is valid, the default for the rest.
    pub fn of_partner(partner: &Partner) -> Brand {
        let branding = &partner.branding;
        let product_name = branding
            .product_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| name.chars().take(PRODUCT_NAME_CHARS_MAX).collect())
            .unwrap_or_else(|| PRODUCT_NAME_DEFAULT.to_owned());
        let stylesheet_path =
            stylesheet(partner).map(|(key, _)| format!("/static/brand/{key}.css"));
        let (logo_url, logo_origin) = match branding.logo_url.as_deref().and_then(logo) {
            Some((url, origin)) => (Some(url), origin),
            None => (None, None),
        };
        Brand {
            product_name,
            stylesheet_path,
            logo_url,
            logo_origin,
        }
    }
}

/// `text` when it is a CSS colour of a shape that cannot break out of a declaration: `#`
/// and 3, 4, 6 or 8 hex digits; a keyword of letters (`teal`); or `rgb()`, `rgba()`,
/// `hsl()`, `hsla()` of numbers, `%`, `.`, `,`, `/` and spaces.
pub fn css_colour(text: &str) -> Option<&str> {
    let text = text.trim();
    if text.is_empty() || text.len() > CSS_COLOUR_OCTETS_MAX {
        return None;
    }
    if let Some(digits) = text.strip_prefix('#') {
        let valid = matches!(digits.len(), 3 | 4 | 6 | 8)
            && digits.bytes().all(|byte| byte.is_ascii_hexdigit());
        return valid.then_some(text);
    }
    if text.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return Some(text);
    }
    let (function, rest) = text.split_once('(')?;
    let arguments = rest.strip_suffix(')')?;
    let known = ["rgb", "rgba", "hsl", "hsla"].contains(&function.to_ascii_lowercase().as_str());
    let valid = known
        && !arguments.is_empty()
        && arguments
            .bytes()
            .all(|byte| byte.is_ascii_digit() || b"%., /".contains(&byte));
    valid.then_some(text)
}

/// The logo URL and, for an `https://` one, its origin; None when it is neither an
/// `https://` URL of plain characters nor a path on this origin.
pub fn logo(url: &str) -> Option<(String, Option<String>)> {
    let url = url.trim();
    if url.is_empty() || url.len() > LOGO_URL_OCTETS_MAX {
        return None;
    }
    // Characters of a URL that need no escaping anywhere (RFC 3986 §2.2, §2.3, no quotes).
    let plain = url
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&byte));
    if !plain {
        return None;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host_valid = !host.is_empty()
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-');
        let port_valid = port.is_none_or(|port| {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|byte| byte.is_ascii_digit())
        });
        if !host_valid || !port_valid {
            return None;
        }
        return Some((url.to_owned(), Some(format!("https://{authority}"))));
    }
    // A path on this origin: not `//host` (another origin) nor `/\` (browsers read it so).
    let same_origin = url.starts_with('/') && !url.starts_with("//") && !url.contains('\\');
    same_origin.then(|| (url.to_owned(), None))
}

/// The key and text of `partner`'s colour style sheet, when it has a valid colour. The key
/// hashes the partner and its colours, so a changed colour gets a new URL (the sheet may be
/// cached).
fn stylesheet(partner: &Partner) -> Option<(String, String)> {
    let branding = &partner.branding;
    let primary = branding.colour_primary.as_deref().and_then(css_colour);
    let accent = branding.colour_accent.as_deref().and_then(css_colour);
    if primary.is_none() && accent.is_none() {
        return None;
    }
    let mut text = String::from(":root {");
    if let Some(primary) = primary {
        text.push_str(&format!(" --primary: {primary};"));
    }
    if let Some(accent) = accent {
        text.push_str(&format!(" --accent: {accent};"));
    }
    text.push_str(" }\n");
    let mut hasher = blake3::Hasher::new();
    hasher.update(partner.name.as_bytes());
    hasher.update(b"\0");
    hasher.update(text.as_bytes());
    let key = hasher.finalize().to_hex()[..STYLESHEET_KEY_HEX_DIGITS].to_owned();
    Some((key, text))
}

/// The brand of `account`'s domain's partner.
pub async fn brand_of_account(state: &WebState, account: &Account) -> Brand {
    brand_of_domain(state, account.address.domain())
        .await
        .unwrap_or_default()
}

/// The brand of the hosted domain `host` names, or of its nearest hosted parent.
pub async fn brand_of_host(state: &WebState, host: &str) -> Brand {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    // An address literal or an IPv6 host names no domain.
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Brand::default();
    }
    let mut candidate = host.as_str();
    for _ in 0..HOST_PARENT_LOOKUPS_MAX {
        if let Ok(domain) = Domain::parse(candidate)
            && let Some(brand) = brand_of_domain(state, &domain).await
        {
            return brand;
        }
        match candidate.split_once('.') {
            // A parent must keep at least two labels: `com` is nobody's.
            Some((_, parent)) if parent.contains('.') => candidate = parent,
            _ => break,
        }
    }
    Brand::default()
}

/// The brand of `domain`'s partner; None when the domain is not hosted (or the store
/// failed: the page then shows the default brand, which is logged).
async fn brand_of_domain(state: &WebState, domain: &Domain) -> Option<Brand> {
    let directory = &state.store.directory;
    let found = match directory.domain_get(domain).await {
        Ok(found) => found?,
        Err(error) => {
            tracing::warn!(%error, "webmail: cannot read the domain for its brand");
            return None;
        }
    };
    match directory.partner_get(&found.partner).await {
        Ok(partner) => Some(partner.as_ref().map(Brand::of_partner).unwrap_or_default()),
        Err(error) => {
            tracing::warn!(%error, "webmail: cannot read the partner for its brand");
            None
        }
    }
}

/// The `Host` header without its port.
fn request_host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(HOST)?.to_str().ok()?;
    if host.starts_with('[') {
        return Some(host);
    }
    Some(host.rsplit_once(':').map_or(host, |(name, _)| name))
}

/// Finds the request's brand before any handler runs and leaves it in the request's
/// extensions (`Current` and the login form read it there); widens the response's
/// `img-src` by the brand's logo origin, for this response only.
pub async fn brand_layer(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/static/") {
        return next.run(request).await;
    }
    // The session found here goes on in the request (`require_csrf` and the `Current`
    // extractor take it from there), so a request reads it from the directory once.
    let brand = match current_session(&state, request.headers()).await {
        Ok(mut current) => {
            let brand = brand_of_account(&state, &current.account).await;
            current.brand = brand.clone();
            request.extensions_mut().insert(current);
            brand
        }
        Err(_) => match request_host(request.headers()) {
            Some(host) => brand_of_host(&state, host).await,
            None => Brand::default(),
        },
    };
    let logo_origin = brand.logo_origin.clone();
    request.extensions_mut().insert(brand);
    let mut response = next.run(request).await;
    if let Some(origin) = logo_origin {
        // The handler's own policy (a download's, a message with its remote images) is
        // widened, not replaced.
        let policy = response
            .headers()
            .get(CSP_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or(CONTENT_SECURITY_POLICY)
            .to_owned();
        let widened = policy.replace("img-src 'self'", &format!("img-src 'self' {origin}"));
        if let Ok(value) = HeaderValue::from_str(&widened) {
            response.headers_mut().insert(CSP_HEADER, value);
        }
    }
    response
}

/// `/static/brand/{key}.css`: the colours of the partner whose sheet has that key.
pub async fn brand_stylesheet(State(state): State<WebState>, Path(file): Path<String>) -> Response {
    let Some(key) = file.strip_suffix(".css") else {
        return WebError::NotFound.into_response();
    };
    let partners = match state.store.directory.partner_list().await {
        Ok(partners) => partners,
        Err(error) => return WebError::from(error).into_response(),
    };
    let found = partners
        .iter()
        .filter_map(stylesheet)
        .find(|(partner_key, _)| partner_key == key);
    match found {
        Some((_, text)) => (
            [
                (CONTENT_TYPE, "text/css; charset=utf-8"),
                (CACHE_CONTROL, "max-age=3600"),
            ],
            text,
        )
            .into_response(),
        None => WebError::NotFound.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_store::Branding;

    #[test]
    fn colours_that_could_escape_are_refused() {
        for good in [
            "#1a73e8",
            "#abc",
            "#aabbccdd",
            "teal",
            "rgb(1, 2, 3)",
            "hsl(120 50% 40% / .5)",
        ] {
            assert_eq!(css_colour(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "#12",
            "#ggg",
            "red; background: url(x)",
            "red}body{",
            "url(https://x)",
            "expression(alert(1))",
            "rgb(1,2,3)) x",
            "rgb(\"1\")",
            &"a".repeat(CSS_COLOUR_OCTETS_MAX + 1),
        ] {
            assert_eq!(css_colour(bad), None, "{bad}");
        }
    }

    #[test]
    fn logos_are_https_or_same_origin() {
        assert_eq!(
            logo("https://cdn.example.com:8443/logo.png"),
            Some((
                "https://cdn.example.com:8443/logo.png".to_owned(),
                Some("https://cdn.example.com:8443".to_owned())
            ))
        );
        assert_eq!(
            logo("/brand/logo.png"),
            Some(("/brand/logo.png".to_owned(), None))
        );
        for bad in [
            "http://example.com/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//evil.example/logo.png",
            "/\\evil.example/logo.png",
            "https://exa mple.com/x",
            "https://example.com/\"onerror=",
            "https://user:pw@example.com/x",
            "https:///x",
        ] {
            assert_eq!(logo(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_partner_brand_keeps_only_valid_values() {
        let partner = Partner {
            name: "Acme".to_owned(),
            branding: Branding {
                product_name: Some("  Acme Mail  ".to_owned()),
                logo_url: Some("javascript:x".to_owned()),
                colour_primary: Some("#123456".to_owned()),
                colour_accent: Some("red;}*{display:none".to_owned()),
            },
            created_unix: 0,
        };
        let brand = Brand::of_partner(&partner);
        assert_eq!(brand.product_name, "Acme Mail");
        assert_eq!(brand.logo_url, None);
        let (key, text) = stylesheet(&partner).expect("a sheet");
        assert_eq!(text, ":root { --primary: #123456; }\n");
        assert_eq!(
            brand.stylesheet_path,
            Some(format!("/static/brand/{key}.css"))
        );
        let plain = Partner {
            branding: Branding::default(),
            ..partner
        };
        assert_eq!(Brand::of_partner(&plain), Brand::default());
    }
}
