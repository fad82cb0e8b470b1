//! Backends that carry out one attempt of a step: the agent.ai client and
//! the local-command runner. Both answer with a [`Reply`] or a
//! [`CallError`] whose kind tells the scheduler what to do next.

pub mod agentai;
pub mod command;
mod excerpt;
pub mod reply;
mod secret;

use std::time::Duration;

pub use reply::Reply;

/// Why an attempt failed, sorted by what should happen next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth another try, after `after` when the service asked for a wait.
    #[error("{message}")]
    Transient {
        message: String,
        after: Option<Duration>,
    },
    /// Fails this step at once; another try would fail the same way.
    #[error("{message}")]
    Permanent { message: String },
    /// Fails this step and stops the run: no other step can succeed
    /// (a rejected key, no credits left).
    #[error("{message}")]
    Fatal { message: String },
}

impl CallError {
    pub fn transient(message: impl Into<String>) -> Self {
        CallError::Transient {
            message: message.into(),
            after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        CallError::Permanent {
            message: message.into(),
        }
    }

    /// The same error with its message passed through `f`.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            CallError::Transient { message, after } => CallError::Transient {
                message: f(message),
                after,
            },
            CallError::Permanent { message } => CallError::Permanent {
                message: f(message),
            },
            CallError::Fatal { message } => CallError::Fatal {
                message: f(message),
            },
        }
    }
}

/// Shortens `text` to at most `max` characters, marking the cut.
pub fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
