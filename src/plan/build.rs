//! Every check that needs more than one step at a time: references between
//! steps, template syntax, declared inputs and cycles. It runs after the
//! file has been typed, and seals the result into a [`Plan`].

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::{InputTemplates, Output, Plan, Step, StepIdx};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::template::{compile_all, CompileError, Compiled, Ref, Templates};
use crate::workflow::source::Spans;
use crate::workflow::{StepInput, Workflow, DEFAULT_TIMEOUT};

/// Checks `wf` and builds its plan. Problems go to `out`; the plan is
/// returned only when there were none, counting those already in `out`.
pub(super) fn build(wf: Workflow, spans: &Spans, out: &mut Vec<Diagnostic>) -> Option<Plan> {
    let mut by_id = HashMap::with_capacity(wf.steps.len());
    for (idx, spec) in wf.steps.iter().enumerate() {
        // The loader reports duplicate keys, but only as YAML sees them; a
        // second step under the same id would leave a step without an id.
        if let Some(first) = by_id.insert(spec.id.clone(), idx) {
            by_id.insert(spec.id.clone(), first);
            out.push(
                Diagnostic::new(format!("duplicate step id `{}`", spec.id))
                    .at(spans.key(&["steps", &spec.id]))
                    .step(&spec.id)
                    .help("each step needs an id of its own"),
            );
        }
    }
    let mut cx = Cx {
        wf: &wf,
        spans,
        by_id: &by_id,
        templates: Templates::default(),
        compiled: compile_all(&template_sources(&wf)).into_iter(),
        out,
    };

    let mut steps = Vec::with_capacity(wf.steps.len());
    for (idx, spec) in wf.steps.iter().enumerate() {
        let (input, reads) = cx.step_input(idx);
        let mut deps = reads.clone();
        for (i, need) in spec.needs.iter().enumerate() {
            let index = i.to_string();
            let path = ["steps", spec.id.as_str(), "needs", index.as_str()];
            if let Some(dep) = cx.step_ref(need, &path, &spec.id) {
                deps.push(dep);
            }
        }
        dedup(&mut deps);
        steps.push(Step {
            definition: definition_hash(spec),
            spec: spec.clone(),
            timeout: spec
                .timeout
                .or(wf.defaults.timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            retry: spec.retry.or(wf.defaults.retry).unwrap_or_default(),
            deps,
            dependents: Vec::new(),
            reads,
            input,
        });
    }
    let outputs = cx.outputs();
    let Cx { templates, .. } = cx;

    for idx in 0..steps.len() {
        for d in steps[idx].deps.clone() {
            steps[d].dependents.push(idx);
        }
    }
    check_cycles(&steps, spans, out);

    out.is_empty().then(|| Plan {
        path: Default::default(),
        source: String::new(),
        workflow: wf,
        steps,
        by_id,
        templates,
        outputs,
    })
}

struct Cx<'a> {
    wf: &'a Workflow,
    spans: &'a Spans,
    by_id: &'a HashMap<String, StepIdx>,
    templates: Templates,
    /// Every template compiled ahead, in the order the checks ask for them.
    compiled: std::vec::IntoIter<Result<Compiled, CompileError>>,
    out: &'a mut Vec<Diagnostic>,
}

/// Every template source of the workflow, in the order [`Cx`] visits them:
/// each step's input (one text or each field), then the outputs.
fn template_sources(wf: &Workflow) -> Vec<&str> {
    let mut sources = Vec::with_capacity(wf.steps.len() + wf.outputs.len());
    for spec in &wf.steps {
        match &spec.input {
            StepInput::Text(text) => sources.push(text.as_str()),
            StepInput::Fields(fields) => sources.extend(fields.iter().map(|(_, t)| t.as_str())),
        }
    }
    sources.extend(wf.outputs.values().map(String::as_str));
    sources
}

impl Cx<'_> {
    fn step_input(&mut self, idx: StepIdx) -> (InputTemplates, Vec<StepIdx>) {
        let spec = &self.wf.steps[idx];
        let id = spec.id.as_str();
        let mut reads = Vec::new();
        let input = match &spec.input {
            StepInput::Text(text) => {
                let name = format!("s{idx}");
                let path = ["steps", id, "input"];
                reads.extend(self.template(&name, text, &path, Some(id)));
                InputTemplates::Text(name)
            }
            StepInput::Fields(fields) => {
                let mut names = Vec::with_capacity(fields.len());
                for (i, (key, text)) in fields.iter().enumerate() {
                    let name = format!("s{idx}.{i}");
                    let path = ["steps", id, "input", key.as_str()];
                    reads.extend(self.template(&name, text, &path, Some(id)));
                    names.push((key.clone(), name));
                }
                InputTemplates::Fields(names)
            }
        };
        dedup(&mut reads);
        (input, reads)
    }

    fn outputs(&mut self) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(self.wf.outputs.len());
        for (i, (name, text)) in self.wf.outputs.iter().enumerate() {
            let template = format!("o{i}");
            let mut reads = self.template(&template, text, &["outputs", name], None);
            dedup(&mut reads);
            outputs.push(Output {
                name: name.clone(),
                template,
                reads,
            });
        }
        outputs
    }

    /// Compiles one template and resolves what it refers to.
    ///
    /// Limitation: a wrong name, helper or partial is placed at the start
    /// of the template's value, not at the `{{…}}` that holds it.
    fn template(
        &mut self,
        name: &str,
        text: &str,
        path: &[&str],
        step: Option<&str>,
    ) -> Vec<StepIdx> {
        let compiled = self
            .compiled
            .next()
            .expect("one compiled template per source");
        debug_assert!(text.contains("{{") || compiled.is_ok());
        let refs = match compiled.map(|c| self.templates.register(name, c)) {
            Ok(refs) => refs,
            Err(e) => {
                let at =
                    e.at.map(|(l, c)| format!(" at line {l}, column {c} of the template"));
                // The parser lists every token it expected; the position
                // says more than that list.
                let message = match e.message.find(": expected") {
                    Some(cut) => &e.message[..cut],
                    None => &e.message,
                };
                let d = Diagnostic::new(format!(
                    "template syntax error{}: {message}",
                    at.unwrap_or_default()
                ));
                self.push(d, path, step);
                return Vec::new();
            }
        };
        let mut reads = Vec::new();
        for r in refs {
            match r {
                Ref::Step(target) => {
                    let who = step.unwrap_or("");
                    if let Some(idx) = self.step_ref(&target, path, who) {
                        reads.push(idx);
                    }
                }
                Ref::Input(input) if !self.wf.inputs.contains_key(&input) => {
                    let mut d = Diagnostic::new(format!(
                        "template uses input `{input}`, which is not declared"
                    ));
                    d = match did_you_mean(&input, self.wf.inputs.keys().map(String::as_str)) {
                        Some(near) => d.help(format!("did you mean `{near}`?")),
                        None => d.help(format!("declare it under `inputs:` as `{input}: {{}}`")),
                    };
                    self.push(d, path, step);
                }
                Ref::Input(_) => {}
                Ref::Bare(root) => {
                    let d = Diagnostic::new(format!("template uses `{root}` without naming one"))
                        .help(format!("write `{root}.NAME...`"));
                    self.push(d, path, step);
                }
                Ref::Invalid { message, help } => {
                    self.push(Diagnostic::new(message).help(help), path, step);
                }
            }
        }
        reads
    }

    /// Resolves a reference from step `from` (empty for outputs) to `target`.
    fn step_ref(&mut self, target: &str, path: &[&str], from: &str) -> Option<StepIdx> {
        if let Some(&idx) = self.by_id.get(target) {
            return Some(idx);
        }
        let mut d = Diagnostic::new(format!("reference to unknown step `{target}`"));
        if let Some(near) = did_you_mean(target, self.by_id.keys().map(String::as_str)) {
            d = d.help(format!("did you mean `{near}`?"));
        }
        let step = (!from.is_empty()).then_some(from);
        self.push(d, path, step);
        None
    }

    /// Records `d` at `path`, or at the nearest enclosing key that has a
    /// place: `needs: a` has no item 0 to point at.
    fn push(&mut self, mut d: Diagnostic, path: &[&str], step: Option<&str>) {
        let at = (1..=path.len())
            .rev()
            .find_map(|n| self.spans.value(&path[..n]));
        d = d.at(at);
        if let Some(step) = step {
            d = d.step(step);
        }
        self.out.push(d);
    }
}

fn definition_hash(spec: &crate::workflow::StepSpec) -> String {
    use crate::workflow::Action;
    let mut parts: Vec<&[u8]> = Vec::new();
    match &spec.action {
        Action::Agent(agent) => parts.extend([b"agent".as_slice(), agent.as_bytes()]),
        Action::Run(args) => {
            parts.push(b"run");
            parts.extend(args.iter().map(|a| a.as_bytes()));
        }
    }
    match &spec.input {
        StepInput::Text(text) => parts.extend([b"text".as_slice(), text.as_bytes()]),
        StepInput::Fields(fields) => {
            parts.push(b"fields");
            for (key, text) in fields {
                parts.extend([key.as_bytes(), text.as_bytes()]);
            }
        }
    }
    crate::hash::sha256_parts(parts)
}

fn dedup(list: &mut Vec<StepIdx>) {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.retain(|x| seen.insert(*x));
}

/// Reports each set of steps that wait on each other (a strongly
/// connected component), naming every step in it, with one loop through
/// them in the order they wait, and every step that waits on itself.
fn check_cycles(steps: &[super::Step], spans: &Spans, out: &mut Vec<Diagnostic>) {
    let mut graph = DiGraph::<StepIdx, ()>::with_capacity(steps.len(), steps.len());
    let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    for (idx, step) in steps.iter().enumerate() {
        for &d in &step.deps {
            graph.add_edge(nodes[d], nodes[idx], ());
        }
    }
    for scc in tarjan_scc(&graph) {
        let mut members: Vec<StepIdx> = scc.iter().map(|n| graph[*n]).collect();
        members.sort_unstable();
        let on_self: Vec<StepIdx> = members
            .iter()
            .copied()
            .filter(|&i| steps[i].deps.contains(&i))
            .collect();
        if members.len() == 1 && on_self.is_empty() {
            continue;
        }
        let id = steps[members[0]].spec.id.as_str();
        out.push(
            Diagnostic::new(cycle_message(steps, &members, &on_self))
                .at(spans.key(&["steps", id]))
                .step(id)
                .help("each step waits for the next; a step cannot wait, directly or through others, for itself"),
        );
    }
}

/// Words one component: a lone step waiting on itself, a single loop
/// through every member, or the members listed with one loop as an example.
fn cycle_message(steps: &[super::Step], members: &[StepIdx], on_self: &[StepIdx]) -> String {
    let id = |i: StepIdx| steps[i].spec.id.as_str();
    if members.len() == 1 {
        return format!("step `{}` depends on itself", id(members[0]));
    }
    let order = cycle_order(steps, members, members[0]);
    let mut path: Vec<&str> = order.iter().map(|&i| id(i)).collect();
    path.push(id(members[0]));
    let path = path.join(" -> ");
    let mut message = match order.len() == members.len() {
        true => format!("dependency cycle: {path}"),
        false => format!(
            "dependency cycle among {}, for example {path}",
            names(members.iter().map(|&i| id(i)))
        ),
    };
    match on_self {
        [] => {}
        [one] => message.push_str(&format!(", and `{}` depends on itself", id(*one))),
        many => message.push_str(&format!(
            ", and {} each depend on themselves",
            names(many.iter().map(|&i| id(i)))
        )),
    }
    message
}

/// `a`, `b` and `c`
fn names<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    let count = ids.len();
    let mut out = String::new();
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == count { " and " } else { ", " });
        }
        out.push_str(&format!("`{id}`"));
    }
    out
}

/// Walks a loop through `first` within one strongly connected component,
/// following "waits for" edges, and returns its steps in that order. Edges
/// from a step to itself are left out: those are named apart.
fn cycle_order(steps: &[super::Step], members: &[StepIdx], first: StepIdx) -> Vec<StepIdx> {
    let inside: std::collections::HashSet<StepIdx> = members.iter().copied().collect();
    // Depth-first search for a path back to `first`; the component is
    // strongly connected and has more than one member, so one exists.
    let mut path = vec![first];
    let mut seen = std::collections::HashSet::from([first]);
    let mut next_edge = vec![0usize];
    while let Some(&node) = path.last() {
        let edges = &steps[node].deps;
        let i = next_edge
            .last_mut()
            .expect("one cursor per node on the path");
        if *i >= edges.len() {
            path.pop();
            next_edge.pop();
            continue;
        }
        let to = edges[*i];
        *i += 1;
        if to == first && node != first {
            return path;
        }
        if inside.contains(&to) && seen.insert(to) {
            path.push(to);
            next_edge.push(0);
        }
    }
    members.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{extract, source};

    /// Loads `yaml` as far as the plan and returns the messages.
    fn problems(yaml: &str, edit: impl FnOnce(&mut Workflow)) -> Vec<String> {
        let mut src = source::parse(yaml.into()).expect("valid YAML");
        src.locate();
        let mut out = Vec::new();
        let mut wf = extract::workflow(&src.value, &src.spans, "w", &mut out);
        assert_eq!(out, Vec::new());
        edit(&mut wf);
        let plan = build(wf, &src.spans, &mut out);
        assert_eq!(plan.is_some(), out.is_empty());
        out.into_iter().map(|d| d.message).collect()
    }

    // a ⇄ b ⇄ c: one component, no single loop through all three.
    #[test]
    fn every_step_of_a_tangled_cycle_is_named() {
        let yaml = "steps:\n  a: {run: x, needs: [b]}\n  b: {run: x, needs: [a, c]}\n  c: {run: x, needs: [b]}\n";
        assert_eq!(
            problems(yaml, |_| {}),
            ["dependency cycle among `a`, `b` and `c`, for example a -> b -> a"]
        );
    }

    // a ⇄ b, and a → a.
    #[test]
    fn a_self_loop_inside_a_cycle_is_named_apart() {
        let yaml = "steps:\n  a: {run: x, needs: [a, b]}\n  b: {run: x, needs: [a]}\n  c: {run: x, needs: [c]}\n";
        assert_eq!(
            problems(yaml, |_| {}),
            [
                "dependency cycle: a -> b -> a, and `a` depends on itself",
                "step `c` depends on itself",
            ]
        );
    }

    // a → b → c → a
    #[test]
    fn a_simple_cycle_is_shown_in_order() {
        let yaml = "steps:\n  a: {run: x, needs: [c]}\n  b: {run: x, needs: [a]}\n  c: {run: x, needs: [b]}\n";
        assert_eq!(
            problems(yaml, |_| {}),
            ["dependency cycle: a -> c -> b -> a"]
        );
    }

    #[test]
    fn two_steps_under_one_id_are_refused() {
        let yaml = "steps:\n  a: {run: x}\n  b: {run: x, input: '{{steps.a.output}}'}\n";
        let found = problems(yaml, |wf| {
            let mut again = wf.steps[0].clone();
            again.id = "b".into();
            wf.steps.push(again);
        });
        assert_eq!(found, ["duplicate step id `b`"]);
    }
}
