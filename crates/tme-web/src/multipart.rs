//! The compose form's body: `multipart/form-data` (RFC 7578) read whole, within explicit
//! limits, into its text fields and uploaded files (`MultipartForm`), and the names of
//! uploaded files made safe to put in a message (`sanitize_file_name`).
//!
//! `require_csrf` (lib.rs) calls `read` for every multipart POST, checks the form's `csrf`
//! field and hands the form on to the handler as a request extension; `FormInput` is how a
//! handler takes it (or a urlencoded body, which scripts may post instead).
//!
//! It must not look at the session or the store, and never trusts a client's file name:
//! only the sanitised one leaves this module.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::respond::WebError;
use crate::{FORM_BODY_OCTETS_MAX, WebState};

/// The largest multipart body read, in octets: the message text and every upload together.
pub const UPLOAD_BODY_OCTETS_MAX: usize = 25 * 1024 * 1024;
/// The most parts (fields and files) one form may have.
pub const FORM_PARTS_MAX: usize = 64;
/// The largest text field (the message body is one), in octets.
pub const FORM_TEXT_FIELD_OCTETS_MAX: usize = 2 * 1024 * 1024;
/// The longest attachment file name kept, in characters (the extension is kept).
pub const FILE_NAME_CHARS_MAX: usize = 120;
/// The longest extension kept when a long name is cut, in characters.
const FILE_EXTENSION_CHARS_MAX: usize = 16;
/// The name of a file whose own name leaves nothing usable.
pub const FILE_NAME_FALLBACK: &str = "attachment";

/// A form's fields (in order) and its uploaded files. Empty file inputs are left out.
#[derive(Debug, Clone, Default)]
pub struct MultipartForm {
    pub fields: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

impl MultipartForm {
    /// The first value of the field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the field `name` (checkboxes), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The form field it came in.
    pub field: String,
    /// Already sanitised (`sanitize_file_name`).
    pub file_name: String,
    /// `type/subtype`, lower case; `application/octet-stream` when not given or not valid.
    pub media_type: String,
    pub content: Bytes,
}

/// Whether the request's body is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| {
            media_type
                .trim()
                .eq_ignore_ascii_case("multipart/form-data")
        })
}

/// Reads a multipart body: 413 past `UPLOAD_BODY_OCTETS_MAX` (refused from its
/// Content-Length before reading when that says so), 400 when it is not well formed.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<MultipartForm, WebError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| WebError::BadRequest("The form has no multipart boundary."))?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > UPLOAD_BODY_OCTETS_MAX as u64) {
        return Err(WebError::TooLarge);
    }
    let bytes = read_limited(body, UPLOAD_BODY_OCTETS_MAX).await?;
    parse(bytes, &boundary).await
}

/// The whole body, or TooLarge as soon as it passes `octets_max`.
async fn read_limited(mut body: Body, octets_max: usize) -> Result<Bytes, WebError> {
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| WebError::BadRequest("The form was not received whole."))?;
        if let Ok(data) = frame.into_data() {
            if collected.len().saturating_add(data.len()) > octets_max {
                return Err(WebError::TooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
}

/// Splits a whole multipart body into fields and files.
pub async fn parse(bytes: Bytes, boundary: &str) -> Result<MultipartForm, WebError> {
    const MALFORMED: WebError = WebError::BadRequest("The form's multipart body is malformed.");
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(UPLOAD_BODY_OCTETS_MAX as u64));
    let mut multipart = multer::Multipart::with_reader_with_constraints(
        std::io::Cursor::new(bytes),
        boundary,
        constraints,
    );
    let mut form = MultipartForm::default();
    let mut parts = 0usize;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(MALFORMED),
        };
        parts += 1;
        if parts > FORM_PARTS_MAX {
            return Err(WebError::BadRequest("The form has too many parts."));
        }
        let name = field.name().ok_or(MALFORMED)?.to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let media_type = field
            .content_type()
            .map(|mime| mime.essence_str().to_ascii_lowercase());
        let content = field.bytes().await.map_err(|_| MALFORMED)?;
        match file_name {
            // An empty file input: browsers send a part with an empty name and no content.
            Some(file_name) if file_name.is_empty() && content.is_empty() => {}
            Some(file_name) => form.files.push(Upload {
                field: name,
                file_name: sanitize_file_name(&file_name),
                media_type: media_type
                    .filter(|media_type| valid_media_type(media_type))
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                content,
            }),
            None => {
                if content.len() > FORM_TEXT_FIELD_OCTETS_MAX {
                    return Err(WebError::TooLarge);
                }
                let text = String::from_utf8(content.to_vec())
                    .map_err(|_| WebError::BadRequest("A form field is not UTF-8 text."))?;
                form.fields.push((name, text));
            }
        }
    }
    // A body with no part at all is not a form (a missing or wrong boundary reads so).
    if parts == 0 {
        return Err(MALFORMED);
    }
    Ok(form)
}

/// `type/subtype` of RFC 2045 token characters only, so it can go in a header as it is.
fn valid_media_type(media_type: &str) -> bool {
    let token = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|octet| octet.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&octet))
    };
    media_type
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

/// A client's file name made safe: only its last path segment (browsers on Windows and
/// hostile clients send `C:\dir\name` or `../../etc/passwd`), without control characters
/// or the characters file systems forbid, without leading dots or white space, and at most
/// `FILE_NAME_CHARS_MAX` characters with its extension kept. The result goes into the
/// message as an RFC 2231 parameter (`mail-builder` encodes it), never into a path.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|character| !character.is_control())
        .map(|character| match character {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            other => other,
        })
        .collect();
    let trimmed = cleaned
        .trim()
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return FILE_NAME_FALLBACK.to_owned();
    }
    if trimmed.chars().count() <= FILE_NAME_CHARS_MAX {
        return trimmed.to_owned();
    }
    let (stem, extension) = match trimmed.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty() && extension.chars().count() <= FILE_EXTENSION_CHARS_MAX =>
        {
            (stem, Some(extension))
        }
        _ => (trimmed, None),
    };
    match extension {
        Some(extension) => {
            let stem_chars = FILE_NAME_CHARS_MAX - extension.chars().count() - 1;
            let stem: String = stem.chars().take(stem_chars).collect();
            format!("{}.{extension}", stem.trim_end())
        }
        None => stem.chars().take(FILE_NAME_CHARS_MAX).collect(),
    }
}

/// A POST's form, as a handler takes it: the multipart form `require_csrf` read, or a
/// urlencoded body (no files) read here within `FORM_BODY_OCTETS_MAX`.
#[derive(Debug, Clone)]
pub struct FormInput(pub MultipartForm);

impl FromRequest<WebState> for FormInput {
    type Rejection = WebError;

    async fn from_request(request: Request, _state: &WebState) -> Result<FormInput, WebError> {
        let (mut parts, body) = request.into_parts();
        if let Some(form) = parts.extensions.remove::<MultipartForm>() {
            return Ok(FormInput(form));
        }
        let bytes = read_limited(body, FORM_BODY_OCTETS_MAX).await?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| WebError::BadRequest("The form body is malformed."))?;
        Ok(FormInput(MultipartForm {
            fields,
            files: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_controls_and_length() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\x\\y"), "y");
        assert_eq!(sanitize_file_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("a\u{0}b\r\n\u{1b}c.txt"), "abc.txt");
        assert_eq!(sanitize_file_name(".."), FILE_NAME_FALLBACK);
        assert_eq!(sanitize_file_name("../"), FILE_NAME_FALLBACK);
        assert_eq!(sanitize_file_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_file_name("a:b*?.txt"), "a_b__.txt");
        assert_eq!(
            sanitize_file_name("Jahresabschluß 2024.pdf"),
            "Jahresabschluß 2024.pdf"
        );
        let long = format!("{}.pdf", "x".repeat(500));
        let cut = sanitize_file_name(&long);
        assert_eq!(cut.chars().count(), FILE_NAME_CHARS_MAX);
        assert!(cut.ends_with("xx.pdf"), "{cut}");
        let no_extension = "é".repeat(500);
        assert_eq!(
            sanitize_file_name(&no_extension).chars().count(),
            FILE_NAME_CHARS_MAX
        );
    }

    #[test]
    fn media_types_are_tokens() {
        assert!(valid_media_type("image/png"));
        assert!(valid_media_type("application/vnd.ms-excel"));
        assert!(!valid_media_type("text/plain\r\nBcc: x"));
        assert!(!valid_media_type("text"));
    }

    fn body(parts: &str) -> Bytes {
        Bytes::from(parts.replace('\n', "\r\n"))
    }

    #[tokio::test]
    async fn fields_and_files() {
        let form = parse(
            body(
                "--b\n\
Content-Disposition: form-data; name=\"csrf\"\n\n\
token\n\
--b\n\
Content-Disposition: form-data; name=\"attachment\"; filename=\"../x.bin\"\n\
Content-Type: application/octet-stream\n\n\
abc\n\
--b\n\
Content-Disposition: form-data; name=\"attachment\"; filename=\"\"\n\
Content-Type: application/octet-stream\n\n\n\
--b--\n",
            ),
            "b",
        )
        .await
        .expect("form");
        assert_eq!(form.field("csrf"), Some("token"));
        assert_eq!(form.files.len(), 1);
        assert_eq!(form.files[0].file_name, "x.bin");
        assert_eq!(&form.files[0].content[..], b"abc");
    }

    #[tokio::test]
    async fn malformed_bodies_are_bad_requests() {
        for malformed in [
            "garbage without a boundary",
            "--b\nContent-Disposition: form-data; name=\"csrf\"\n\ntoken",
            "--b\nno header end",
        ] {
            let result = parse(body(malformed), "b").await;
            assert!(
                matches!(result, Err(WebError::BadRequest(_))),
                "{malformed}: {result:?}"
            );
        }
    }
}
