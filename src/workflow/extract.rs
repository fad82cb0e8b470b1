//! Turning the parsed YAML value into the typed [`Workflow`], collecting
//! every mistake instead of stopping at the first.

use indexmap::IndexMap;
use serde_yaml::{Mapping, Value};

use super::source::Spans;
use super::Workflow;
use super::{
    duration, is_valid_id, Action, CacheSetting, InputSpec, Retry, StepDefaults, StepInput,
    StepSpec, MAX_CONCURRENCY,
};
use crate::diagnostic::{did_you_mean, Diagnostic};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "inputs",
    "concurrency",
    "defaults",
    "steps",
    "outputs",
];
const STEP_KEYS: &[&str] = &[
    "agent",
    "run",
    "input",
    "needs",
    "timeout",
    "retry",
    "cache",
    "description",
];
const INPUT_KEYS: &[&str] = &["default", "description"];
const DEFAULTS_KEYS: &[&str] = &["timeout", "retry"];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_wait"];

/// Builds the workflow from `value`, pushing every problem to `out`.
/// `fallback_name` names the workflow when the file does not.
pub fn workflow(
    value: &Value,
    spans: &Spans,
    fallback_name: &str,
    out: &mut Vec<Diagnostic>,
) -> Workflow {
    let mut cx = Cx { spans, out };
    let empty = Mapping::new();
    let top = match value {
        Value::Mapping(m) => m,
        Value::Null => {
            cx.push(Diagnostic::new("workflow file is empty"));
            &empty
        }
        _ => {
            cx.push(
                Diagnostic::new("workflow file must be a mapping of keys").at(spans.value(&[])),
            );
            &empty
        }
    };
    cx.keys(top, &[], TOP_KEYS, None);

    let name = match top.get("name") {
        Some(v) => cx.name(v),
        None => cx.fallback_name(fallback_name),
    };
    let steps = match top.get("steps") {
        Some(v) => cx.steps(v),
        None => {
            cx.push(Diagnostic::new("workflow has no `steps`"));
            Vec::new()
        }
    };
    Workflow {
        name,
        description: top
            .get("description")
            .and_then(|v| cx.string(v, &["description"], None)),
        inputs: top.get("inputs").map(|v| cx.inputs(v)).unwrap_or_default(),
        concurrency: top.get("concurrency").and_then(|v| cx.concurrency(v)),
        defaults: top
            .get("defaults")
            .map(|v| cx.defaults(v))
            .unwrap_or_default(),
        steps,
        outputs: top
            .get("outputs")
            .map(|v| cx.outputs(v))
            .unwrap_or_default(),
    }
}

struct Cx<'a> {
    spans: &'a Spans,
    out: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }

    fn name(&mut self, v: &Value) -> String {
        let name = self.string(v, &["name"], None).unwrap_or_default();
        if !is_valid_id(&name) {
            let message = match name.is_empty() {
                true => "workflow `name` is empty".to_owned(),
                false => format!("workflow name `{name}` is not a valid name"),
            };
            self.push(
                Diagnostic::new(message)
                    .at(self.spans.value(&["name"]))
                    .help("use 1 to 64 letters, digits, `_` or `-`; it names the run directory"),
            );
        }
        name
    }

    /// A file without `name:` is named after its file; say so when that
    /// name will not do, since no line of the file shows it.
    fn fallback_name(&mut self, fallback: &str) -> String {
        if !is_valid_id(fallback) {
            self.push(
                Diagnostic::new(format!(
                    "the workflow has no `name`, and its file name `{fallback}` is not a valid name"
                ))
                .help("add `name:` with 1 to 64 letters, digits, `_` or `-`, or rename the file"),
            );
        }
        fallback.to_owned()
    }

    fn error(&mut self, path: &[&str], step: Option<&str>, message: String) {
        let mut d = Diagnostic::new(message).at(self.spans.value(path));
        if let Some(step) = step {
            d = d.step(step);
        }
        self.push(d);
    }

    /// The name a mapping key gives, when YAML reads it as a string. Any
    /// other key is reported as the user wrote it, so that `1e1` is not
    /// shown as `10.0`; `what` says what the key names.
    fn key_name<'v>(
        &mut self,
        key: &'v Value,
        (path, index): (&[&str], usize),
        what: &str,
        step: Option<&str>,
    ) -> Option<&'v str> {
        if let Value::String(name) = key {
            return Some(name);
        }
        let written = self.spans.nth_key(path, index);
        let text = match written {
            Some((text, _)) => text.to_owned(),
            None => scalar_text(key).unwrap_or_else(|| "<complex key>".into()),
        };
        let kind = match key {
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
            _ => "a structure",
        };
        let mut d = Diagnostic::new(format!("{what} `{text}` is {kind} in YAML, not text"))
            .at(written.map(|(_, at)| at));
        if let Some(step) = step {
            d = d.step(step);
        }
        d = match key {
            Value::Number(_) | Value::Bool(_) | Value::Null => d.help(format!(
                "put it in quotes, `'{text}':`, to use it as a name"
            )),
            _ => d.help("a key must be a plain name"),
        };
        self.push(d);
        None
    }

    /// Reports keys of `map` that are not in `allowed`.
    fn keys(&mut self, map: &Mapping, path: &[&str], allowed: &[&str], step: Option<&str>) {
        for (i, key) in map.keys().enumerate() {
            let Some(key) = self.key_name(key, (path, i), "key", step) else {
                continue;
            };
            if allowed.contains(&key) {
                continue;
            }
            let mut full = path.to_vec();
            full.push(key);
            let mut d = Diagnostic::new(format!("unknown key `{key}`")).at(self.spans.key(&full));
            if let Some(step) = step {
                d = d.step(step);
            }
            d = match did_you_mean(key, allowed.iter().copied()) {
                Some(near) => d.help(format!("did you mean `{near}`?")),
                None => d.help(format!("expected one of: {}", allowed.join(", "))),
            };
            self.push(d);
        }
    }

    fn mapping<'v>(
        &mut self,
        v: &'v Value,
        path: &[&str],
        step: Option<&str>,
    ) -> Option<&'v Mapping> {
        match v {
            Value::Mapping(m) => Some(m),
            _ => {
                let what = path.last().copied().unwrap_or("value");
                self.error(path, step, format!("`{what}` must be a mapping"));
                None
            }
        }
    }

    /// A scalar read as text; numbers and booleans are written as in YAML.
    fn string(&mut self, v: &Value, path: &[&str], step: Option<&str>) -> Option<String> {
        match scalar_text(v) {
            Some(text) => Some(text),
            None => {
                let what = path.last().copied().unwrap_or("value");
                self.error(path, step, format!("`{what}` must be text"));
                None
            }
        }
    }

    fn duration(
        &mut self,
        v: &Value,
        path: &[&str],
        step: Option<&str>,
    ) -> Option<std::time::Duration> {
        if v.is_null() {
            let what = path.last().copied().unwrap_or("duration");
            let message = format!("`{what}` has no value; write a duration such as `30s`");
            self.error(path, step, message);
            return None;
        }
        let text = self.string(v, path, step)?;
        match duration::parse(&text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(path, step, message);
                None
            }
        }
    }

    fn concurrency(&mut self, v: &Value) -> Option<usize> {
        match v.as_u64() {
            Some(n) if (1..=MAX_CONCURRENCY as u64).contains(&n) => Some(n as usize),
            _ => {
                let message =
                    format!("`concurrency` must be a whole number from 1 to {MAX_CONCURRENCY}");
                self.error(&["concurrency"], None, message);
                None
            }
        }
    }

    fn inputs(&mut self, v: &Value) -> IndexMap<String, InputSpec> {
        let mut inputs = IndexMap::new();
        let Some(map) = self.mapping(v, &["inputs"], None) else {
            return inputs;
        };
        for (i, (key, spec)) in map.iter().enumerate() {
            let Some(name) = self.key_name(key, (&["inputs"], i), "input name", None) else {
                continue;
            };
            let path = ["inputs", name];
            let mut input = InputSpec::default();
            match spec {
                Value::Null => {}
                Value::Mapping(m) => {
                    self.keys(m, &path, INPUT_KEYS, None);
                    input.default = m.get("default").map(yaml_to_json);
                    input.description = m
                        .get("description")
                        .and_then(|d| self.string(d, &["inputs", name, "description"], None));
                }
                _ => self.error(
                    &path,
                    None,
                    format!(
                        "input `{name}` must be a mapping such as `{{ default: ... }}` or `{{}}`"
                    ),
                ),
            }
            inputs.insert(name.to_owned(), input);
        }
        inputs
    }

    fn defaults(&mut self, v: &Value) -> StepDefaults {
        let mut defaults = StepDefaults::default();
        let Some(map) = self.mapping(v, &["defaults"], None) else {
            return defaults;
        };
        self.keys(map, &["defaults"], DEFAULTS_KEYS, None);
        defaults.timeout = map
            .get("timeout")
            .and_then(|t| self.duration(t, &["defaults", "timeout"], None));
        defaults.retry = map
            .get("retry")
            .and_then(|r| self.retry(r, &["defaults", "retry"], None, Retry::default()));
        defaults
    }

    fn retry(
        &mut self,
        v: &Value,
        path: &[&str],
        step: Option<&str>,
        base: Retry,
    ) -> Option<Retry> {
        let map = self.mapping(v, path, step)?;
        self.keys(map, path, RETRY_KEYS, step);
        let mut retry = base;
        if let Some(a) = map.get("attempts") {
            let mut p = path.to_vec();
            p.push("attempts");
            match a.as_u64() {
                Some(n) if (1..=100).contains(&n) => retry.attempts = n as u32,
                _ => self.error(
                    &p,
                    step,
                    "`attempts` must be a whole number from 1 to 100".into(),
                ),
            }
        }
        // Both durations are read before giving up, so both are reported.
        let mut ok = true;
        for (key, field) in [
            ("backoff", &mut retry.backoff),
            ("max_wait", &mut retry.max_wait),
        ] {
            let Some(v) = map.get(key) else { continue };
            let mut p = path.to_vec();
            p.push(key);
            match self.duration(v, &p, step) {
                Some(d) => *field = d,
                None => ok = false,
            }
        }
        ok.then_some(retry)
    }

    fn outputs(&mut self, v: &Value) -> IndexMap<String, String> {
        let mut outputs = IndexMap::new();
        let Some(map) = self.mapping(v, &["outputs"], None) else {
            return outputs;
        };
        for (i, (key, template)) in map.iter().enumerate() {
            let Some(name) = self.key_name(key, (&["outputs"], i), "output name", None) else {
                continue;
            };
            if let Some(text) = self.string(template, &["outputs", name], None) {
                outputs.insert(name.to_owned(), text);
            }
        }
        outputs
    }

    fn steps(&mut self, v: &Value) -> Vec<StepSpec> {
        let Some(map) = self.mapping(v, &["steps"], None) else {
            return Vec::new();
        };
        if map.is_empty() {
            self.error(&["steps"], None, "workflow has no steps".into());
        }
        let mut steps = Vec::with_capacity(map.len());
        for (i, (key, body)) in map.iter().enumerate() {
            let Some(id) = self.key_name(key, (&["steps"], i), "step id", None) else {
                continue;
            };
            if !is_valid_id(id) {
                self.push(
                    Diagnostic::new(format!("step id `{id}` is not valid"))
                        .at(self.spans.key(&["steps", id]))
                        .step(id)
                        .help("use 1 to 64 letters, digits, `_` or `-`; it becomes a file name"),
                );
            }
            if let Some(step) = self.step(id, body) {
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, id: &str, body: &Value) -> Option<StepSpec> {
        let path = ["steps", id];
        let map = self.mapping(body, &path, Some(id))?;
        self.keys(map, &path, STEP_KEYS, Some(id));
        let at = |key: &'static str| ["steps", id, key];

        let agent = map
            .get("agent")
            .and_then(|v| self.agent(v, &at("agent"), id));
        let run = map.get("run").and_then(|v| self.command(v, &at("run"), id));
        let action = match (
            agent,
            run,
            map.contains_key("agent"),
            map.contains_key("run"),
        ) {
            (Some(a), None, _, false) => Some(Action::Agent(a)),
            (None, Some(r), false, _) => Some(Action::Run(r)),
            (_, _, true, true) => {
                self.push(
                    Diagnostic::new("step has both `agent` and `run`")
                        .at(self.spans.key(&path))
                        .step(id)
                        .help("a step either calls an agent or runs a command; keep one"),
                );
                None
            }
            (_, _, false, false) => {
                self.push(
                    Diagnostic::new("step has neither `agent` nor `run`")
                        .at(self.spans.key(&path))
                        .step(id)
                        .help("add `agent: <agent id>` or `run: <command>`"),
                );
                None
            }
            _ => None,
        };
        // A step whose action is wrong is still checked further; the
        // placeholder never runs, since a problem was already recorded.
        let action = action.unwrap_or(Action::Run(Vec::new()));
        let input = match map.get("input") {
            None | Some(Value::Null) => StepInput::Text(String::new()),
            Some(Value::Mapping(m)) => StepInput::Fields(self.fields(m, id)),
            Some(v) => StepInput::Text(self.string(v, &at("input"), Some(id))?),
        };
        let needs = map
            .get("needs")
            .map(|v| self.needs(v, id))
            .unwrap_or_default();
        let timeout = map
            .get("timeout")
            .and_then(|v| self.duration(v, &at("timeout"), Some(id)));
        let retry = map
            .get("retry")
            .and_then(|v| self.retry(v, &at("retry"), Some(id), Retry::default()));
        let cache = map
            .get("cache")
            .and_then(|v| self.cache(v, &at("cache"), id));
        let description = map
            .get("description")
            .and_then(|v| self.string(v, &at("description"), Some(id)));
        Some(StepSpec {
            id: id.to_owned(),
            action,
            input,
            needs,
            timeout,
            retry,
            cache,
            description,
        })
    }

    fn agent(&mut self, v: &Value, path: &[&str], id: &str) -> Option<String> {
        let agent = self.string(v, path, Some(id))?;
        if agent.trim().is_empty() {
            let d = Diagnostic::new("`agent` is empty")
                .at(self.spans.value(path))
                .step(id)
                .help("write the id of an agent.ai agent, such as `agent: deepseek-r1`");
            self.push(d);
            return None;
        }
        Some(agent)
    }

    fn cache(&mut self, v: &Value, path: &[&str], id: &str) -> Option<CacheSetting> {
        match v {
            Value::Bool(true) => Some(CacheSetting::Forever),
            Value::Bool(false) => Some(CacheSetting::Off),
            Value::String(_) => self.duration(v, path, Some(id)).map(CacheSetting::For),
            _ => {
                let message = "`cache` must be `true`, `false` or a time to live such as `7d`";
                self.error(path, Some(id), message.into());
                None
            }
        }
    }

    fn command(&mut self, v: &Value, path: &[&str], id: &str) -> Option<Vec<String>> {
        let args = match v {
            Value::Sequence(items) => {
                let mut args = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let index = i.to_string();
                    let mut p = path.to_vec();
                    p.push(&index);
                    args.push(self.string(item, &p, Some(id))?);
                }
                args
            }
            _ => {
                let text = self.string(v, path, Some(id))?;
                match shlex::split(&text) {
                    Some(args) => args,
                    None => {
                        self.error(path, Some(id), "`run` has an unclosed quote".into());
                        return None;
                    }
                }
            }
        };
        if args.is_empty() {
            self.error(path, Some(id), "`run` is empty".into());
            return None;
        }
        Some(args)
    }

    fn fields(&mut self, map: &Mapping, id: &str) -> Vec<(String, String)> {
        let mut fields = Vec::with_capacity(map.len());
        for (i, (key, value)) in map.iter().enumerate() {
            let parent = ["steps", id, "input"];
            let Some(key) = self.key_name(key, (&parent, i), "input field", Some(id)) else {
                continue;
            };
            let key = key.to_owned();
            let path = ["steps", id, "input", key.as_str()];
            if key.is_empty() || key.contains(['=', '\n']) {
                self.error(
                    &path,
                    Some(id),
                    format!("input field `{key}` cannot hold `=` or a line break"),
                );
            }
            if let Some(text) = self.string(value, &path, Some(id)) {
                fields.push((key, text));
            }
        }
        fields
    }

    /// A list of step ids; a lone id stands for a list of one.
    fn needs(&mut self, v: &Value, id: &str) -> Vec<String> {
        match v {
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let index = i.to_string();
                    self.need(item, &["steps", id, "needs", &index], id)
                })
                .collect(),
            Value::Mapping(_) => {
                let message = "`needs` must be a list of step ids, such as `needs: [a, b]`";
                self.error(&["steps", id, "needs"], Some(id), message.into());
                Vec::new()
            }
            _ => self
                .need(v, &["steps", id, "needs"], id)
                .into_iter()
                .collect(),
        }
    }

    fn need(&mut self, v: &Value, path: &[&str], id: &str) -> Option<String> {
        let need = self.string(v, path, Some(id))?;
        if need.is_empty() {
            let message = "`needs` names no step; write step ids, such as `needs: [a, b]`";
            self.error(path, Some(id), message.into());
            return None;
        }
        Some(need)
    }
}

/// The text of a scalar, or `None` for mappings, sequences and tagged values.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn yaml_to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
