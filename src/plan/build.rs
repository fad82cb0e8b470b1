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
        by_id.insert(spec.id.clone(), idx);
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

    fn push(&mut self, mut d: Diagnostic, path: &[&str], step: Option<&str>) {
        d = d.at(self.spans.value(path));
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

/// Reports every cycle, each with its steps in the order they wait on
/// each other, and every step that waits on itself.
fn check_cycles(steps: &[super::Step], spans: &Spans, out: &mut Vec<Diagnostic>) {
    let mut graph = DiGraph::<StepIdx, ()>::with_capacity(steps.len(), steps.len());
    let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    for (idx, step) in steps.iter().enumerate() {
        for &d in &step.deps {
            graph.add_edge(nodes[d], nodes[idx], ());
        }
    }
    for scc in tarjan_scc(&graph) {
        let members: Vec<StepIdx> = scc.iter().map(|n| graph[*n]).collect();
        let first = *members.iter().min().expect("a component has a member");
        let is_cycle = members.len() > 1 || steps[first].deps.contains(&first);
        if !is_cycle {
            continue;
        }
        let order = cycle_order(steps, &members, first);
        let mut names: Vec<&str> = order.iter().map(|&i| steps[i].spec.id.as_str()).collect();
        names.push(&steps[first].spec.id);
        let id = steps[first].spec.id.as_str();
        let message = if members.len() == 1 {
            format!("step `{id}` depends on itself")
        } else {
            format!("dependency cycle: {}", names.join(" -> "))
        };
        out.push(
            Diagnostic::new(message)
                .at(spans.key(&["steps", id]))
                .step(id)
                .help("each step waits for the next; a step cannot wait, directly or through others, for itself"),
        );
    }
}

/// Walks the cycle through `first` within one strongly connected component,
/// following "waits for" edges, and returns the steps in that order.
fn cycle_order(steps: &[super::Step], members: &[StepIdx], first: StepIdx) -> Vec<StepIdx> {
    let inside: std::collections::HashSet<StepIdx> = members.iter().copied().collect();
    // Depth-first search for a path back to `first`; the component is
    // strongly connected, so one exists.
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
        if to == first {
            return path;
        }
        if inside.contains(&to) && seen.insert(to) {
            path.push(to);
            next_edge.push(0);
        }
    }
    members.to_vec()
}
