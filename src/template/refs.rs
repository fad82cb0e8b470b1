//! What a template refers to, and the mistakes visible without running it:
//! names that no template can read, helpers and partials that do not exist.
//!
//! A path is checked only where it is read against the template's root
//! context, that is at the top level, inside `{{#if}}` and `{{#unless}}`
//! (which keep the context), in the `{{else}}` of `{{#each}}` and
//! `{{#with}}`, or when lifted there by `../` or `@root`. Inside the body
//! of `{{#each}}`, `{{#with}}` and other blocks, the context is whatever
//! the block was given, so any name may be legitimate and none is checked;
//! Handlebars' strict mode still fails the step if the name is missing.

use handlebars::template::{
    DecoratorTemplate, HelperTemplate, Parameter, Template, TemplateElement,
};
use handlebars::{Path, PathSeg};

use crate::diagnostic::did_you_mean;

/// Something a template refers to at its root, or a mistake in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `inputs.NAME`
    Input(String),
    /// `steps.ID...`
    Step(String),
    /// `steps` or `inputs` with no name after it.
    Bare(String),
    /// A name, helper or partial that cannot work, worded for the user.
    Invalid { message: String, help: String },
}

/// The names a template can start a path with.
const ROOTS: &[&str] = &["inputs", "steps", "run", "workflow"];

/// What a template can read of a step.
const STEP_FIELDS: &[&str] = &["output", "thinking", "raw", "json"];

/// The helpers a new `Handlebars` registry holds (handlebars 6 with no
/// optional features); a test checks each one against the registry.
pub(super) const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

/// Block helpers that render their block in the context they are given.
const SCOPING: &[&str] = &["each", "with"];

/// Block helpers that render their block in the surrounding context.
const KEEPING: &[&str] = &["if", "unless"];

/// The one decorator a registry holds.
const INLINE: &str = "inline";

/// Every reference in a compiled template, in the order written.
pub fn collect(template: &Template, refs: &mut Vec<Ref>) {
    let mut inline = Vec::new();
    inline_partials(template, &mut inline);
    let mut scan = Scan {
        refs,
        inline,
        lenient: false,
    };
    scan.template(template, 0);
}

/// Checks one plain path read at the root, as `a.b.c` split on dots.
pub fn root_path<S: AsRef<str>>(segments: &[S], raw: &str, refs: &mut Vec<Ref>) {
    check_root(segments, raw, false, refs);
}

struct Scan<'r> {
    refs: &'r mut Vec<Ref>,
    /// Partials the template defines for itself with `{{#*inline}}`.
    inline: Vec<String>,
    /// Set inside an inline partial: it is rendered wherever it is used,
    /// so unknown names are not reported there, only step and input
    /// references collected.
    /// Limitation: a misspelt root inside an inline partial is found only
    /// when the step renders it.
    lenient: bool,
}

impl Scan<'_> {
    /// `depth` counts the block contexts between this template and the
    /// root; paths are checked only when they resolve at depth 0.
    fn template(&mut self, template: &Template, depth: usize) {
        for element in &template.elements {
            self.element(element, depth);
        }
    }

    fn element(&mut self, element: &TemplateElement, depth: usize) {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                self.expression(h, depth)
            }
            TemplateElement::HelperBlock(h) => self.block(h, depth),
            TemplateElement::DecoratorExpression(d) | TemplateElement::DecoratorBlock(d) => {
                self.decorator(d, depth)
            }
            TemplateElement::PartialExpression(d) => self.partial(d, depth),
            TemplateElement::PartialBlock(d) => {
                // A missing partial renders the block instead, so any name
                // is allowed here.
                self.params(&d.params, d.hash.values(), depth);
                let inner = if d.params.is_empty() {
                    depth
                } else {
                    depth + 1
                };
                if let Some(t) = &d.template {
                    self.template(t, inner);
                }
            }
            _ => {}
        }
    }

    fn expression(&mut self, h: &HelperTemplate, depth: usize) {
        let bare = h.params.is_empty() && h.hash.is_empty();
        match &h.name {
            Parameter::Name(name) => self.helper(name),
            // `{{len}}` with no arguments calls the helper.
            Parameter::Path(Path::Relative((segments, raw)))
                if bare && segments.len() == 1 && HELPERS.contains(&raw.as_str()) => {}
            name => self.param(name, depth),
        }
        self.params(&h.params, h.hash.values(), depth);
    }

    fn block(&mut self, h: &HelperTemplate, depth: usize) {
        let name = match &h.name {
            Parameter::Name(name) => name.as_str(),
            _ => "",
        };
        self.helper(name);
        self.params(&h.params, h.hash.values(), depth);
        let (inner, inverse) = match name {
            n if KEEPING.contains(&n) => (depth, depth),
            n if SCOPING.contains(&n) => (depth + 1, depth),
            _ => (depth + 1, depth + 1),
        };
        if let Some(t) = &h.template {
            self.template(t, inner);
        }
        if let Some(t) = &h.inverse {
            self.template(t, inverse);
        }
    }

    fn decorator(&mut self, d: &DecoratorTemplate, depth: usize) {
        match &d.name {
            Parameter::Name(name) if name == INLINE => {}
            other => self.invalid(
                format!(
                    "template uses decorator `{}`, which does not exist",
                    text(other)
                ),
                "the only decorator is `{{#*inline \"NAME\"}}…{{/inline}}`".into(),
            ),
        }
        self.params(&d.params, d.hash.values(), depth);
        if let Some(t) = &d.template {
            let lenient = std::mem::replace(&mut self.lenient, true);
            self.template(t, depth);
            self.lenient = lenient;
        }
    }

    fn partial(&mut self, d: &DecoratorTemplate, depth: usize) {
        match &d.name {
            Parameter::Name(name) if !self.inline.contains(name) => self.invalid(
                format!("template uses partial `{name}`, which is not defined"),
                format!(
                    "define it in the same template with `{{{{#*inline \"{name}\"}}}}…{{{{/inline}}}}`"
                ),
            ),
            Parameter::Name(_) => {}
            // A partial named by a subexpression is looked up at render time.
            name => self.param(name, depth),
        }
        self.params(&d.params, d.hash.values(), depth);
    }

    fn params<'p>(
        &mut self,
        params: &'p [Parameter],
        hash: impl Iterator<Item = &'p Parameter>,
        depth: usize,
    ) {
        for param in params.iter().chain(hash) {
            self.param(param, depth);
        }
    }

    fn param(&mut self, param: &Parameter, depth: usize) {
        match param {
            Parameter::Path(path) => self.path(path, depth),
            Parameter::Subexpression(sub) => self.element(&sub.element, depth),
            Parameter::Name(name) => self.helper(name),
            _ => {}
        }
    }

    fn path(&mut self, path: &Path, depth: usize) {
        // `@index` and the like are Handlebars' own, set inside blocks.
        let Path::Relative((segments, raw)) = path else {
            return;
        };
        // The parser has already dropped a leading `this.` or `./`, which
        // name the current context, as a bare path does.
        let rooted = raw
            .trim_start_matches("this.")
            .trim_start_matches("this/")
            .trim_start_matches("./")
            .starts_with("@root");
        let ups = segments
            .iter()
            .filter(|s| matches!(s, PathSeg::Ruled(_)))
            .count();
        // Going up past the root stays at the root, as in Handlebars.
        if !rooted && depth.saturating_sub(ups) > 0 {
            return;
        }
        let named: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                PathSeg::Named(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        check_root(&named, raw, self.lenient, self.refs);
    }

    fn helper(&mut self, name: &str) {
        if HELPERS.contains(&name) {
            return;
        }
        let help = match did_you_mean(name, HELPERS.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("the helpers are Handlebars' own: {}", HELPERS.join(", ")),
        };
        self.invalid(
            format!("template uses helper `{name}`, which does not exist"),
            help,
        );
    }

    fn invalid(&mut self, message: String, help: String) {
        self.refs.push(Ref::Invalid { message, help });
    }
}

/// Checks a path read at the root context. `lenient` skips the report of
/// a root that does not exist.
fn check_root<S: AsRef<str>>(segments: &[S], raw: &str, lenient: bool, refs: &mut Vec<Ref>) {
    let segment = |i: usize| segments.get(i).map(AsRef::as_ref);
    let Some(root) = segment(0) else {
        return;
    };
    let invalid = |message: String, help: String| Ref::Invalid { message, help };
    match (root, segment(1)) {
        ("steps" | "inputs", None) => refs.push(Ref::Bare(root.to_owned())),
        ("inputs", Some(name)) => refs.push(Ref::Input(name.to_owned())),
        ("steps", Some(id)) => {
            refs.push(Ref::Step(id.to_owned()));
            match segment(2) {
                Some(field) if !STEP_FIELDS.contains(&field) => refs.push(invalid(
                    format!("template reads `{raw}`, but a step has no `{field}`"),
                    match did_you_mean(field, STEP_FIELDS.iter().copied()) {
                        Some(near) => format!("did you mean `steps.{id}.{near}`?"),
                        None => "a step has `output`, `thinking`, `raw` and `json`".into(),
                    },
                )),
                _ => {}
            }
        }
        ("run", field) => only_field(root, "id", field, segments.len(), raw, refs),
        ("workflow", field) => only_field(root, "name", field, segments.len(), raw, refs),
        _ if lenient => {}
        _ => {
            let rest: Vec<&str> = segments[1..].iter().map(AsRef::as_ref).collect();
            let help = match did_you_mean(root, ROOTS.iter().copied()) {
                Some(near) if rest.is_empty() => format!("did you mean `{near}`?"),
                Some(near) => format!("did you mean `{near}.{}`?", rest.join(".")),
                None => {
                    "a template reads `inputs.NAME`, `steps.ID.output`, `run.id` or `workflow.name`"
                        .into()
                }
            };
            refs.push(invalid(
                format!("template reads `{raw}`, which does not exist"),
                help,
            ));
        }
    }
}

/// `run` and `workflow` each hold one field.
fn only_field(
    root: &str,
    only: &str,
    field: Option<&str>,
    len: usize,
    raw: &str,
    refs: &mut Vec<Ref>,
) {
    if field == Some(only) && len == 2 {
        return;
    }
    let message = match field {
        None => format!("template reads `{root}` without a field"),
        Some(_) => format!("template reads `{raw}`, but `{root}` has only `{only}`"),
    };
    refs.push(Ref::Invalid {
        message,
        help: format!("write `{root}.{only}`"),
    });
}

/// The name of a helper, decorator or partial as written.
fn text(param: &Parameter) -> String {
    match param {
        Parameter::Name(name) => name.clone(),
        Parameter::Path(Path::Relative((_, raw)) | Path::Local((_, _, raw))) => raw.clone(),
        _ => "…".into(),
    }
}

/// Names given to `{{#*inline "NAME"}}` anywhere in `template`.
fn inline_partials(template: &Template, names: &mut Vec<String>) {
    for element in &template.elements {
        match element {
            TemplateElement::DecoratorBlock(d) => {
                if let (Parameter::Name(name), Some(Parameter::Literal(json))) =
                    (&d.name, d.params.first())
                {
                    if let (INLINE, Some(partial)) = (name.as_str(), json.as_str()) {
                        names.push(partial.to_owned());
                    }
                }
                if let Some(t) = &d.template {
                    inline_partials(t, names);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for t in [&h.template, &h.inverse].into_iter().flatten() {
                    inline_partials(t, names);
                }
            }
            TemplateElement::PartialBlock(d) => {
                if let Some(t) = &d.template {
                    inline_partials(t, names);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(source: &str) -> Vec<Ref> {
        super::super::compile(source).unwrap().refs
    }

    fn problems(source: &str) -> Vec<String> {
        refs(source)
            .into_iter()
            .filter_map(|r| match r {
                Ref::Invalid { message, help } => Some(format!("{message}; {help}")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn names_outside_the_context_are_reported_with_a_suggestion() {
        let cases = [
            ("{{input.topic}}", "did you mean `inputs.topic`?"),
            (
                "{{#if input.topic}}x{{/if}}",
                "did you mean `inputs.topic`?",
            ),
            ("{{foo.x}}", "a template reads `inputs.NAME`"),
            ("{{run.idd}}", "`run` has only `id`"),
            ("{{run}}", "template reads `run` without a field"),
            ("{{workflow.nam}}", "write `workflow.name`"),
            ("{{steps.a.outptu}}", "did you mean `steps.a.output`?"),
            (
                "{{uppercase steps.a.output}}",
                "helper `uppercase`, which does not exist",
            ),
            ("{{#eahc steps.a.json}}{{/eahc}}", "did you mean `each`?"),
            ("{{> p}}", "partial `p`, which is not defined"),
            ("{{*deco}}", "decorator `deco`"),
        ];
        for (source, expected) in cases {
            let found = problems(source);
            assert_eq!(found.len(), 1, "{source}: {found:?}");
            assert!(found[0].contains(expected), "{source}: {found:?}");
        }
    }

    #[test]
    fn allowed_roots_fields_and_helpers_pass() {
        for source in [
            "{{inputs.topic.deep}} {{steps.a.output}} {{steps.a.thinking}} {{steps.a.raw.x}}",
            "{{steps.a.json.items.[0]}} {{run.id}} {{workflow.name}} {{this}}",
            "{{lookup steps.a 'output'}} {{len steps.a.output}} {{#if (eq 1 2)}}{{/if}}",
            "{{#*inline \"p\"}}{{steps.a.output}}{{/inline}}{{> p}} {{#> q}}none{{/q}}",
            "{{#unless (not true)}}{{log 'x'}}{{/unless}} {{{steps.a.output}}}",
        ] {
            assert_eq!(problems(source), Vec::<String>::new(), "{source}");
        }
    }

    #[test]
    fn block_contexts_are_not_checked_but_lifted_paths_are() {
        let source = "{{#each steps.a.json.items as |item|}}{{item.name}} {{this.x}} {{@index}} \
            {{../steps.b.output}} {{@root.inputs.topic}} {{#if x}}{{y}}{{/if}}\
            {{else}}{{steps.c.output}}{{/each}}\
            {{#with steps.d}}{{output}}{{#with json}}{{../../run.idd}}{{/with}}{{/with}}";
        assert_eq!(
            refs(source),
            vec![
                Ref::Step("a".into()),
                Ref::Step("b".into()),
                Ref::Input("topic".into()),
                Ref::Step("c".into()),
                Ref::Step("d".into()),
                Ref::Invalid {
                    message: "template reads `../../run.idd`, but `run` has only `id`".into(),
                    help: "write `run.id`".into(),
                },
            ]
        );
    }

    #[test]
    fn this_and_dot_slash_read_the_root_like_bare_paths() {
        for source in [
            "{{this.steps.a.output}}",
            "{{./steps.a.output}}",
            "{{this/steps/a/output}}",
        ] {
            assert_eq!(refs(source), vec![Ref::Step("a".into())], "{source}");
        }
    }

    /// The list of helpers must match what a registry holds: each listed
    /// name is found, and a name left out is not.
    #[test]
    fn helper_list_matches_the_registry() {
        let registry = handlebars::Handlebars::new();
        let missing = |name: &str| {
            let source = format!("{{{{{name} 1 2}}}}");
            match registry.render_template(&source, &()) {
                Err(e) => e.to_string().contains("not found"),
                Ok(_) => false,
            }
        };
        for name in HELPERS {
            assert!(!missing(name), "`{name}` is not registered");
        }
        for name in ["uppercase", "lowercase", "concat", "json", "default"] {
            assert!(missing(name), "`{name}` is registered; add it to HELPERS");
        }
    }
}
