//! What a step produced, in the forms templates read: the text without a
//! reasoning block, the reasoning itself, the reply as received, and the
//! reply parsed as JSON when it holds an object or array.

use serde_json::Value;

use crate::template::StepValues;

/// A successful attempt's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply as received: a string, or the JSON value the service sent.
    pub raw: Value,
    /// The reply text, without a leading `<think>` block.
    pub output: String,
    /// The text of a leading `<think>` block, when there was one.
    pub thinking: Option<String>,
    /// The reply parsed, when it is or holds a JSON object or array.
    pub json: Option<Value>,
}

impl Reply {
    /// Builds a reply from an agent's `response` field.
    pub fn from_response(raw: Value) -> Reply {
        match &raw {
            Value::String(text) => {
                let (thinking, output) = split_thinking(text);
                let json = parse_json(output);
                Reply {
                    output: output.to_owned(),
                    thinking: thinking.map(str::to_owned),
                    json,
                    raw,
                }
            }
            Value::Object(_) | Value::Array(_) => Reply {
                output: raw.to_string(),
                thinking: None,
                json: Some(raw.clone()),
                raw,
            },
            other => Reply {
                output: match other {
                    Value::Null => String::new(),
                    v => v.to_string(),
                },
                thinking: None,
                json: None,
                raw,
            },
        }
    }

    /// Builds a reply from a local command's standard output.
    pub fn from_stdout(stdout: String) -> Reply {
        let output = stdout
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&stdout)
            .to_owned();
        let json = parse_json(&output);
        Reply {
            raw: Value::String(stdout),
            output,
            thinking: None,
            json,
        }
    }

    pub fn values(&self) -> StepValues {
        StepValues {
            output: self.output.clone(),
            thinking: self.thinking.clone(),
            raw: self.raw.clone(),
            json: self.json.clone(),
        }
    }
}

/// Splits a leading `<think>…</think>` block from the text after it,
/// dropping the blank lines between them.
pub fn split_thinking(text: &str) -> (Option<&str>, &str) {
    let body = text.trim_start();
    let Some(rest) = body.strip_prefix("<think>") else {
        return (None, text);
    };
    let Some(end) = rest.find("</think>") else {
        return (None, text);
    };
    let thinking = rest[..end].trim();
    let after = &rest[end + "</think>".len()..];
    let output = after.trim_start_matches(['\n', '\r', ' ', '\t']);
    (Some(thinking), output)
}

/// Parses `text` as a JSON object or array, optionally fenced in a
/// Markdown code block.
pub fn parse_json(text: &str) -> Option<Value> {
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        body = rest.trim().strip_suffix("```")?.trim();
    }
    if !(body.starts_with('{') || body.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(body)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_thinking_and_blank_lines() {
        let reply = Reply::from_response(json!("<think>\nweigh it\n</think>\n\n\nThe answer."));
        assert_eq!(reply.output, "The answer.");
        assert_eq!(reply.thinking.as_deref(), Some("weigh it"));
        assert_eq!(
            reply.raw,
            json!("<think>\nweigh it\n</think>\n\n\nThe answer.")
        );
    }

    #[test]
    fn leaves_text_without_think_alone() {
        let reply = Reply::from_response(json!("plain <think>not leading</think>"));
        assert_eq!(reply.output, "plain <think>not leading</think>");
        assert_eq!(reply.thinking, None);
    }

    #[test]
    fn parses_json_in_strings_fenced_or_not() {
        assert_eq!(
            parse_json("```json\n{\"a\": 1}\n```"),
            Some(json!({"a": 1}))
        );
        assert_eq!(parse_json(" [1, 2] "), Some(json!([1, 2])));
        assert_eq!(parse_json("\"just a string\""), None);
        assert_eq!(parse_json("{broken"), None);
        let reply = Reply::from_response(json!({"items": [1]}));
        assert_eq!(reply.json, Some(json!({"items": [1]})));
        assert_eq!(reply.output, "{\"items\":[1]}");
    }

    #[test]
    fn trims_one_trailing_newline_from_stdout() {
        assert_eq!(Reply::from_stdout("3\n".into()).output, "3");
        assert_eq!(Reply::from_stdout("a\n\n".into()).output, "a\n");
    }
}
