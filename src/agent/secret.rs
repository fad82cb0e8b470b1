//! The API key as the client keeps it: able to take itself out of any text
//! before that text becomes a message, and never printed by `Debug`.

use std::sync::Arc;

/// What stands in for the key wherever it was found.
pub const REDACTED: &str = "[redacted]";

/// The key, shared by the client's clones.
#[derive(Clone)]
pub struct Secret {
    key: Arc<str>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl Secret {
    pub fn new(key: &str) -> Secret {
        Secret { key: key.into() }
    }

    /// `text` with every `Bearer <key>`, and then every bare key, replaced
    /// by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        // An empty key would match between every two characters.
        if self.key.is_empty() || !text.contains(&*self.key) {
            return text.to_owned();
        }
        let bearer = format!("Bearer {}", self.key);
        text.replace(&bearer, REDACTED)
            .replace(&*self.key, REDACTED)
    }

    /// Like [`Secret::scrub`], for a body that may not be UTF-8.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> String {
        self.scrub(&String::from_utf8_lossy(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_out_the_header_and_the_bare_key() {
        let secret = Secret::new("sk-123");
        assert_eq!(
            secret.scrub("got Authorization: Bearer sk-123, key sk-123!"),
            "got Authorization: [redacted], key [redacted]!"
        );
        assert_eq!(secret.scrub("nothing here"), "nothing here");
        assert_eq!(secret.scrub_bytes(b"\xffsk-123"), "\u{fffd}[redacted]");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn an_empty_key_changes_nothing() {
        assert_eq!(Secret::new("").scrub("Bearer x"), "Bearer x");
    }
}
