//! Drawing a plan's graph as Graphviz DOT or a Mermaid flowchart.

use super::Plan;
use crate::workflow::Action;

/// The formats `baton graph` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
}

pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Dot => dot(plan),
        Format::Mermaid => mermaid(plan),
    }
}

fn label(action: &Action) -> String {
    match action {
        Action::Agent(agent) => format!("agent {agent}"),
        Action::Run(args) => format!("run {}", args.join(" ")),
    }
}

fn dot(plan: &Plan) -> String {
    let mut out = format!("digraph {:?} {{\n  rankdir=LR;\n", plan.name());
    for step in plan.steps() {
        let text = format!("{}\n{}", step.spec.id, label(&step.spec.action));
        out.push_str(&format!(
            "  {:?} [shape=box, label={:?}];\n",
            step.spec.id, text
        ));
    }
    for step in plan.steps() {
        for &d in &step.deps {
            let from = &plan.step(d).spec.id;
            out.push_str(&format!("  {:?} -> {:?};\n", from, step.spec.id));
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for step in plan.steps() {
        let text = label(&step.spec.action).replace('"', "#quot;");
        out.push_str(&format!(
            "  {}[\"{}<br/>{}\"]\n",
            step.spec.id, step.spec.id, text
        ));
    }
    for step in plan.steps() {
        for &d in &step.deps {
            out.push_str(&format!(
                "  {} --> {}\n",
                plan.step(d).spec.id,
                step.spec.id
            ));
        }
    }
    out
}
