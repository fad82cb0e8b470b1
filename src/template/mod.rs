//! Handlebars templates: compiled once when the workflow loads, scanned for
//! the steps and inputs they mention, and rendered against a context that
//! holds only what each template refers to.

mod refs;
mod simple;

use std::collections::HashMap;

use handlebars::template::Template;
use handlebars::Handlebars;
use serde_json::{Map, Value};

pub use refs::Ref;
use simple::Simple;

/// Every compiled template of one workflow, looked up by name.
pub struct Templates {
    registry: Handlebars<'static>,
    /// Templates that need no Handlebars machinery, by name.
    light: HashMap<String, Light>,
}

enum Light {
    /// No `{{` at all: the text is its rendering.
    Literal(String),
    Simple(Simple),
}

/// A template compiled, not yet registered under a name.
pub struct Compiled {
    body: Body,
    pub refs: Vec<Ref>,
}

enum Body {
    Light(Light),
    Template(Template),
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        Templates {
            registry,
            light: HashMap::new(),
        }
    }
}

/// A template that failed to compile: the message, and where in the
/// template text it went wrong (line and column from 1).
#[derive(Debug)]
pub struct CompileError {
    pub message: String,
    pub at: Option<(usize, usize)>,
}

impl Templates {
    /// Compiles `source` under `name` and returns what it refers to.
    pub fn add(&mut self, name: &str, source: &str) -> Result<Vec<Ref>, CompileError> {
        Ok(self.register(name, compile(source)?))
    }

    /// Registers a compiled template under `name`; returns what it refers to.
    pub fn register(&mut self, name: &str, compiled: Compiled) -> Vec<Ref> {
        match compiled.body {
            Body::Light(light) => {
                self.light.insert(name.to_owned(), light);
            }
            Body::Template(template) => self.registry.register_template(name, template),
        }
        compiled.refs
    }

    /// Renders the template `name` against `context`.
    pub fn render(&self, name: &str, context: &Value) -> Result<String, String> {
        match self.light.get(name) {
            Some(Light::Literal(text)) => return Ok(text.clone()),
            Some(Light::Simple(simple)) => return simple.render(context),
            None => {}
        }
        self.registry
            .render(name, context)
            .map_err(|e| render_message(&e))
    }
}

/// Compiles one template and finds what it refers to.
pub fn compile(source: &str) -> Result<Compiled, CompileError> {
    if !source.contains("{{") {
        return Ok(Compiled {
            body: Body::Light(Light::Literal(source.to_owned())),
            refs: Vec::new(),
        });
    }
    if let Some(simple) = Simple::parse(source) {
        let mut refs = Vec::new();
        for (raw, segments) in simple.paths() {
            refs::root_path(segments, raw, &mut refs);
        }
        return Ok(Compiled {
            body: Body::Light(Light::Simple(simple)),
            refs,
        });
    }
    let template = Template::compile(source).map_err(|e| CompileError {
        message: e.reason().to_string(),
        at: e.pos(),
    })?;
    let mut refs = Vec::new();
    refs::collect(&template, &mut refs);
    Ok(Compiled {
        body: Body::Template(template),
        refs,
    })
}

/// Compiles many templates on every core; results keep the input's order.
pub fn compile_all(sources: &[&str]) -> Vec<Result<Compiled, CompileError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = sources.len().div_ceil(threads).max(256);
    std::thread::scope(|scope| {
        let workers: Vec<_> = sources
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|s| compile(s)).collect::<Vec<_>>()))
            .collect();
        let sizes = sources.chunks(chunk).map(<[&str]>::len);
        workers
            .into_iter()
            .zip(sizes)
            .flat_map(|(worker, size)| {
                worker.join().unwrap_or_else(|_| {
                    let failed = || CompileError {
                        message: "the template compiler failed".into(),
                        at: None,
                    };
                    (0..size).map(|_| Err(failed())).collect()
                })
            })
            .collect()
    })
}

fn render_message(e: &handlebars::RenderError) -> String {
    use handlebars::RenderErrorReason as R;
    match e.reason() {
        R::MissingVariable(Some(path)) => format!("`{path}` has no value"),
        other => other.to_string(),
    }
}

/// The fields a template may read of one finished step.
#[derive(Debug, Clone, Default)]
pub struct StepValues {
    pub output: String,
    pub thinking: Option<String>,
    pub raw: Value,
    pub json: Option<Value>,
}

impl StepValues {
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("output".into(), Value::String(self.output.clone()));
        let thinking = self.thinking.clone().unwrap_or_default();
        map.insert("thinking".into(), Value::String(thinking));
        map.insert("raw".into(), self.raw.clone());
        if let Some(json) = &self.json {
            map.insert("json".into(), json.clone());
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(source: &str) -> Vec<Ref> {
        Templates::default().add("t", source).unwrap()
    }

    #[test]
    fn finds_step_and_input_references() {
        let found = refs("{{inputs.topic}} {{steps.a.output}} {{#each steps.b.json.items}}{{this.x}}{{../steps.c.raw}}{{/each}}");
        assert_eq!(
            found,
            vec![
                Ref::Input("topic".into()),
                Ref::Step("a".into()),
                Ref::Step("b".into()),
                Ref::Step("c".into()),
            ]
        );
        assert_eq!(
            refs("{{#if (eq 1 1)}}{{@root.steps.d.output}}{{/if}}"),
            vec![Ref::Step("d".into())]
        );
    }

    #[test]
    fn renders_without_escaping_and_strictly() {
        let mut t = Templates::default();
        t.add("t", "<{{inputs.x}}>").unwrap();
        let out = t.render("t", &json!({"inputs": {"x": "a & b"}})).unwrap();
        assert_eq!(out, "<a & b>");
        let err = t.render("t", &json!({"inputs": {}})).unwrap_err();
        assert!(err.contains("inputs.x"), "{err}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = Templates::default()
            .add("t", "line\n{{#if x}}open")
            .unwrap_err();
        assert!(err.at.is_some(), "{err:?}");
    }
}
