//! The service's own words from a reply that went wrong, made fit for one
//! line of a message: a JSON body's `error`, `message` or `detail`, else the
//! readable text of the body, with HTML markup, styles and scripts left out.
//! The key is taken out before anything is cut, so no part of it survives.

use serde_json::Value;

use super::secret::Secret;
use super::shorten;

/// The longest detail taken from a JSON error body, in characters.
const DETAIL_MAX: usize = 300;

/// The longest excerpt of a body, in characters, quotes included.
pub const EXCERPT_MAX: usize = 160;

/// How much of a body an excerpt reads; an error page says what matters
/// well before this.
const EXCERPT_WINDOW: usize = 64 * 1024;

/// What an error body says, or `None` when it is blank.
pub fn detail(body: &[u8], secret: &Secret) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(text) = json_detail(&value) {
            let text = one_line(&secret.scrub(&text));
            return Some(shorten(&secret.scrub(&text), DETAIL_MAX));
        }
    }
    Some(excerpt(body, secret))
}

/// A quoted, single-line excerpt of `body`'s readable text.
pub fn excerpt(body: &[u8], secret: &Secret) -> String {
    let text = secret.scrub_bytes(body);
    let window = &text[..char_floor(&text, EXCERPT_WINDOW)];
    let plain = one_line(&decode_entities(&visible_text(window)));
    // Markup between two halves of the key could hide it until now.
    let plain = secret.scrub(&plain);
    // Two quotes and the mark of a cut fit within the limit.
    format!("\"{}\"", shorten(&plain, EXCERPT_MAX - 3))
}

/// The first of `error`, `message` and `detail` that says something; an
/// object there gives its own `message`, else its JSON text.
fn json_detail(value: &Value) -> Option<String> {
    for key in ["error", "message", "detail"] {
        match value.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.trim().is_empty() => {}
            Some(Value::String(text)) => return Some(text.clone()),
            Some(other) => match other.get("message").and_then(Value::as_str) {
                Some(text) => return Some(text.to_owned()),
                None => return Some(other.to_string()),
            },
        }
    }
    None
}

/// The text of `html` outside its tags, comments, styles and scripts. A
/// `<` that cannot open a tag (`a < b`) is kept as text.
fn visible_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len().min(4096));
    let mut at = 0;
    while let Some(found) = lower[at..].find('<') {
        let open = at + found;
        out.push_str(&html[at..open]);
        match markup_end(&lower, open) {
            Some(end) => {
                out.push(' ');
                at = end;
            }
            None => {
                out.push('<');
                at = open + 1;
            }
        }
    }
    out.push_str(&html[at..]);
    out
}

/// Where the markup opening at `open` ends, or `None` when the `<` there
/// is plain text. `lower` is the page in ASCII lower case, so its byte
/// offsets are the page's own.
fn markup_end(lower: &str, open: usize) -> Option<usize> {
    let rest = &lower[open..];
    if let Some(comment) = rest.strip_prefix("<!--") {
        let end = comment.find("-->").map_or(rest.len(), |i| 4 + i + 3);
        return Some(open + end);
    }
    let first = rest[1..].chars().next()?;
    if !(first.is_ascii_alphabetic() || matches!(first, '/' | '!' | '?')) {
        return None;
    }
    let tag_end = rest.find('>').map_or(rest.len(), |i| i + 1);
    let name: String = rest[1..tag_end]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let self_closing = rest[..tag_end].ends_with("/>");
    if !matches!(name.as_str(), "script" | "style") || self_closing {
        return Some(open + tag_end);
    }
    // Everything up to the element's closing tag is code, not words.
    let body = &rest[tag_end..];
    let close = format!("</{name}");
    let end = match body.find(&close) {
        Some(i) => {
            let after = &body[i..];
            tag_end + i + after.find('>').map_or(after.len(), |j| j + 1)
        }
        None => rest.len(),
    };
    Some(open + end)
}

/// Turns the few entities an error page is likely to hold into text.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `text` on one line: control characters become spaces and every run of
/// whitespace one space.
fn one_line(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The largest char boundary in `text` at or below `max`.
fn char_floor(text: &str, max: usize) -> usize {
    let mut cut = max.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("sk-abc")
    }

    #[test]
    fn json_bodies_give_their_error_message_or_detail() {
        let d = |body: &str| detail(body.as_bytes(), &secret());
        assert_eq!(d(r#"{"error": "bad id"}"#).as_deref(), Some("bad id"));
        assert_eq!(d(r#"{"error": "", "message": "m"}"#).as_deref(), Some("m"));
        assert_eq!(
            d(r#"{"detail": {"message": "deep"}}"#).as_deref(),
            Some("deep")
        );
        assert_eq!(d(r#"{"detail": [1]}"#).as_deref(), Some("[1]"));
        assert_eq!(d(" \n").as_deref(), None);
        assert_eq!(
            d("{\"message\": \"two\\nlines\"}").as_deref(),
            Some("two lines")
        );
    }

    #[test]
    fn the_key_is_taken_out_before_the_cut() {
        let long = format!(r#"{{"error": "{}Bearer sk-abc"}}"#, "x".repeat(295));
        let text = detail(long.as_bytes(), &secret()).unwrap();
        assert!(!text.contains("sk-"), "{text}");
        let page = format!("<p>{}Bearer sk-abc</p>", "y".repeat(148));
        let text = excerpt(page.as_bytes(), &secret());
        assert!(!text.contains("Bearer s"), "{text}");
    }

    #[test]
    fn styles_scripts_and_comments_are_not_words() {
        let page = format!(
            "<!DOCTYPE html><html><head><title>503</title>\
             <STYLE type=\"text/css\">body {{ color: red; }}</STYLE>\
             <script>var secret = 1; if (a < b) {{}}</script><!-- note -->\
             </head><body><h1>Service\nUnavailable</h1><p>{}</p>\
             <script src=\"x.js\"/><p>a &lt; b &amp; c</p></body></html>",
            "more words ".repeat(40)
        );
        let text = excerpt(page.as_bytes(), &secret());
        assert!(
            text.starts_with("\"503 Service Unavailable more words"),
            "{text}"
        );
        assert!(text.ends_with("…\""), "{text}");
        assert!(text.chars().count() <= EXCERPT_MAX, "{text}");
        for code in ["color", "var", "note", "<", "\n"] {
            assert!(!text.contains(code), "{code} in {text}");
        }
        let tail = excerpt(b"<p>a &lt; b &amp; c</p>", &secret());
        assert_eq!(tail, "\"a < b & c\"");
        assert_eq!(excerpt(b"value < 10", &secret()), "\"value < 10\"");
        assert_eq!(excerpt(b"<script>never closed", &secret()), "\"\"");
    }
}
