//! The common case of a template, text with `{{a.b.c}}` paths in it, parsed
//! and rendered without Handlebars' machinery. Workflows with thousands of
//! steps are mostly such templates; each takes a few hundred bytes here
//! against kilobytes as a Handlebars template, and renders by looking the
//! paths up in place. Anything else (helpers, blocks, `{{{`, `~`, `\{{`)
//! goes to Handlebars, and the output is the same either way: values are
//! printed by Handlebars' own `JsonRender`.

use handlebars::JsonRender;
use serde_json::Value;

/// A template made of text and plain paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The path as written, and its segments.
    Path(String, Vec<String>),
}

/// Roots a plain path may start from; a single name could be a helper.
const ROOTS: &[&str] = &["steps", "inputs", "run", "workflow"];

impl Simple {
    /// Parses `source` when every `{{…}}` in it is a plain path, else `None`.
    pub fn parse(source: &str) -> Option<Simple> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if rest[..open].ends_with('\\') {
                return None;
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            let inner = after[..close].trim();
            parts.push(Part::Path(inner.to_owned(), path(inner)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Some(Simple { parts })
    }

    /// The paths, as written and as segments, in order.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.parts.iter().filter_map(|p| match p {
            Part::Path(raw, segments) => Some((raw.as_str(), segments.as_slice())),
            Part::Text(_) => None,
        })
    }

    /// Renders against `context`; a path with no value is an error, as in
    /// Handlebars' strict mode.
    pub fn render(&self, context: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(raw, segments) => {
                    let value =
                        lookup(context, segments).ok_or_else(|| format!("`{raw}` has no value"))?;
                    match value {
                        Value::String(s) => out.push_str(s),
                        other => out.push_str(&other.render()),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Splits a plain path, or refuses anything Handlebars would read as more.
fn path(inner: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = inner.split('.').collect();
    let plain = |s: &&str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let is_plain =
        segments.len() >= 2 && ROOTS.contains(&segments[0]) && segments.iter().all(plain);
    is_plain.then(|| segments.into_iter().map(str::to_owned).collect())
}

fn lookup<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for segment in segments {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn takes_plain_paths_and_refuses_the_rest() {
        let simple = Simple::parse("a {{ steps.x.output }} b {{inputs.y}}").unwrap();
        assert_eq!(
            simple.paths().map(|(raw, _)| raw).collect::<Vec<_>>(),
            ["steps.x.output", "inputs.y"]
        );
        for other in [
            "{{#if x}}y{{/if}}",
            "{{{steps.x.output}}}",
            "{{~steps.x.output}}",
            "\\{{steps.x.output}}",
            "{{lookup steps.x 'output'}}",
            "{{steps.x.items.0}}",
            "{{this}}",
            "{{steps.x.output",
        ] {
            assert_eq!(Simple::parse(other), None, "{other}");
        }
    }

    #[test]
    fn renders_like_handlebars() {
        let context = json!({
            "steps": {"x": {"output": "<b>", "n": 3, "ok": true, "none": null, "list": [1, "a"], "obj": {}}}
        });
        let cases = [
            ("{{steps.x.output}}", "<b>"),
            ("{{steps.x.n}}/{{steps.x.ok}}/{{steps.x.none}}", "3/true/"),
            ("{{steps.x.list}} {{steps.x.obj}}", "[1, a] [object]"),
        ];
        for (source, expected) in cases {
            let ours = Simple::parse(source).unwrap().render(&context).unwrap();
            let mut registry = handlebars::Handlebars::new();
            registry.set_strict_mode(true);
            registry.register_escape_fn(handlebars::no_escape);
            let theirs = registry.render_template(source, &context).unwrap();
            assert_eq!(ours, expected);
            assert_eq!(ours, theirs, "{source}");
        }
        let err = Simple::parse("{{steps.x.missing}}")
            .unwrap()
            .render(&context)
            .unwrap_err();
        assert_eq!(err, "`steps.x.missing` has no value");
    }
}
