//! The compose form: one `multipart/form-data` form that posts to `/compose/send`, its
//! "Save draft" button to `/compose/draft` (`formaction`), so both work without
//! JavaScript. Every control has a label; the order of the fields is the order of focus.
//! With JavaScript, `app.js` saves the form as a draft in the background and says so in
//! the empty `#autosave-status` line (`role="status"`), which is all the page gives it.

use maud::{Markup, html};

use super::mail::size_text;
use super::{Viewer, csrf_field, layout};
use crate::compose::{CarriedAttachment, ComposeFields};

/// The form with `fields`; `carried` lists the attachments kept from the message the form
/// came from; `notice` says what just happened, `error` why the last try failed.
pub fn compose(
    viewer: Viewer<'_>,
    fields: &ComposeFields,
    carried: &[CarriedAttachment],
    notice: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let title = if fields.draft.is_some() {
        "Draft"
    } else if fields.replied.is_some() {
        "Reply"
    } else if fields.attached_message.is_some() || fields.subject.starts_with("Fwd: ") {
        "Forward"
    } else {
        "New message"
    };
    layout(
        title,
        Some(viewer),
        html! {
            main class="compose" {
                h1 { (title) }
                @if let Some(error) = error {
                    p class="error" role="alert" { (error) }
                }
                @if let Some(notice) = notice {
                    p class="notice" role="status" { (notice) }
                }
                form id="compose-form" method="post" action="/compose/send"
                    enctype="multipart/form-data" {
                    (csrf_field(viewer.csrf_token))
                    input type="hidden" name="in_reply_to" value=(fields.in_reply_to.join(" "));
                    input type="hidden" name="references" value=(fields.references.join(" "));
                    @if let Some(draft) = fields.draft {
                        input type="hidden" name="draft" value=(draft);
                    }
                    @if let Some(replied) = fields.replied {
                        input type="hidden" name="replied" value=(replied);
                    }
                    @if let Some(attached) = fields.attached_message {
                        input type="hidden" name="attached_message" value=(attached);
                    }
                    @if let Some(from) = fields.attachments_from {
                        input type="hidden" name="attachments_from" value=(from);
                    }
                    label for="to" { "To" }
                    input id="to" name="to" type="text" autocomplete="off" value=(fields.to)
                        aria-describedby="addresses-help";
                    label for="cc" { "Cc" }
                    input id="cc" name="cc" type="text" autocomplete="off" value=(fields.cc);
                    label for="bcc" { "Bcc" }
                    input id="bcc" name="bcc" type="text" autocomplete="off" value=(fields.bcc);
                    p id="addresses-help" class="help" {
                        "Separate addresses with commas, like: Ann <ann@example.com>, bob@example.org"
                    }
                    label for="subject" { "Subject" }
                    input id="subject" name="subject" type="text" value=(fields.subject);
                    label for="body" { "Message" }
                    textarea id="body" name="body" rows="16" { (fields.body) }
                    fieldset class="attachments" {
                        legend { "Attachments" }
                        @if fields.attached_message.is_some() {
                            p class="forwarded" { "The original message is attached." }
                        }
                        @if !carried.is_empty() {
                            ul class="kept-attachments" {
                                @for attachment in carried {
                                    @let id = format!("keep-{}", attachment.index);
                                    li {
                                        input type="checkbox" id=(id) name="keep_attachment"
                                            value=(attachment.index)
                                            checked[fields.keep_attachments.contains(&attachment.index)];
                                        label for=(id) {
                                            (attachment.name) " — " (attachment.media_type) ", "
                                            (size_text(attachment.size_octets))
                                        }
                                    }
                                }
                            }
                        }
                        label for="attachment" { "Add files" }
                        input id="attachment" name="attachment" type="file" multiple;
                    }
                    div class="actions" {
                        button type="submit" { "Send" }
                        button type="submit" formaction="/compose/draft" { "Save draft" }
                        p id="autosave-status" class="autosave-status" role="status"
                            aria-live="polite" {}
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::MessageRef;

    #[test]
    fn form_is_escaped_and_carries_its_state() {
        let fields = ComposeFields {
            to: "\"><script>x()</script>".to_owned(),
            body: "</textarea><script>y()</script>".to_owned(),
            draft: Some(MessageRef { mailbox: 4, uid: 9 }),
            ..ComposeFields::default()
        };
        let page = compose(
            Viewer {
                address: "a@example.org",
                csrf_token: "t",
                brand: crate::branding::default_brand(),
            },
            &fields,
            &[],
            None,
            Some("<b>bad</b>"),
        )
        .into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("name=\"draft\" value=\"4/9\""), "{page}");
        assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");
        assert!(page.contains("formaction=\"/compose/draft\""), "{page}");
        assert!(page.contains("&lt;b&gt;bad"), "{page}");
        assert!(
            page.contains(
                "id=\"autosave-status\" class=\"autosave-status\" role=\"status\" aria-live=\"polite\""
            ),
            "{page}"
        );
    }
}
