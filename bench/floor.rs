//! The floor for the benchmark's shapes: the same calls, in the same order,
//! through the same HTTP client baton uses (reqwest on tokio), with nothing
//! else. No checks, no templates beyond substituting `{{steps.ID.output}}`,
//! no retries, no files. What baton takes beyond this runner is what its
//! bookkeeping costs; what this runner takes beyond the ideal is the
//! machine's.
//!
//!     AGENTAI_API_KEY=k floor WF.json --concurrency 64 --base-url http://127.0.0.1:PORT/v1
//!
//! It reads the JSON twin that `bench/gen.py` writes and prints
//! `{"outputs": {...}, "missing": {}}`, the shape of `baton run --json`.

use std::collections::HashMap;
use std::sync::Arc;

use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

#[derive(Parser)]
struct Args {
    /// The JSON twin of a generated workflow.
    workflow: std::path::PathBuf,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    base_url: String,
}

#[derive(Deserialize)]
struct Workflow {
    steps: indexmap::IndexMap<String, StepSpec>,
    outputs: indexmap::IndexMap<String, String>,
}

#[derive(Deserialize)]
struct StepSpec {
    agent: String,
    input: String,
}

/// A step's input split at its references: text, then the step whose
/// output follows it, and so on.
struct Parsed {
    agent: String,
    parts: Vec<(String, Option<usize>)>,
    deps: Vec<usize>,
}

fn parse(
    template: &str,
    index: &HashMap<&str, usize>,
) -> (Vec<(String, Option<usize>)>, Vec<usize>) {
    let mut parts = Vec::new();
    let mut deps = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{steps.") {
        let after = &rest[start + "{{steps.".len()..];
        let Some(end) = after.find(".output}}") else {
            break;
        };
        let id = index[&after[..end]];
        parts.push((rest[..start].to_owned(), Some(id)));
        if !deps.contains(&id) {
            deps.push(id);
        }
        rest = &after[end + ".output}}".len()..];
    }
    parts.push((rest.to_owned(), None));
    (parts, deps)
}

fn render(parts: &[(String, Option<usize>)], outputs: &[Option<Arc<str>>]) -> String {
    let mut text = String::new();
    for (literal, reference) in parts {
        text.push_str(literal);
        if let Some(id) = reference {
            text.push_str(outputs[*id].as_deref().expect("dependencies finish first"));
        }
    }
    text
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.workflow).expect("the workflow file is readable");
    let workflow: Workflow = serde_json::from_str(&text).expect("the workflow is a JSON twin");
    let index: HashMap<&str, usize> = workflow
        .steps
        .keys()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let steps: Vec<Parsed> = workflow
        .steps
        .values()
        .map(|spec| {
            let (parts, deps) = parse(&spec.input, &index);
            Parsed {
                agent: spec.agent.clone(),
                parts,
                deps,
            }
        })
        .collect();
    let mut children = vec![Vec::new(); steps.len()];
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
    for (i, step) in steps.iter().enumerate() {
        for &d in &step.deps {
            children[d].push(i);
        }
    }

    let key = std::env::var("AGENTAI_API_KEY").unwrap_or_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let url = format!(
        "{}/action/invoke_agent",
        args.base_url.trim_end_matches('/')
    );
    let slots = Arc::new(Semaphore::new(args.concurrency));
    let (done, mut finished) = mpsc::unbounded_channel::<(usize, String)>();
    let mut outputs: Vec<Option<Arc<str>>> = vec![None; steps.len()];
    let start = |i: usize, outputs: &[Option<Arc<str>>]| {
        let body = json!({ "id": steps[i].agent, "input": render(&steps[i].parts, outputs) });
        let (client, url, key, slots, done) = (
            client.clone(),
            url.clone(),
            key.clone(),
            Arc::clone(&slots),
            done.clone(),
        );
        tokio::spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("the semaphore stays open");
            let reply: Value = client
                .post(&url)
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("the fake server answers")
                .json()
                .await
                .expect("the fake server answers JSON");
            let output = reply["response"]
                .as_str()
                .expect("a string response")
                .to_owned();
            let _ = done.send((i, output));
        });
    };
    let mut left = steps.len();
    for i in (0..steps.len()).filter(|&i| waiting[i] == 0) {
        start(i, &outputs);
    }
    while left > 0 {
        let (i, output) = finished.recv().await.expect("steps report back");
        outputs[i] = Some(output.into());
        left -= 1;
        for &child in &children[i] {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                start(child, &outputs);
            }
        }
    }

    let rendered: serde_json::Map<String, Value> = workflow
        .outputs
        .iter()
        .map(|(name, template)| {
            let (parts, _) = parse(template, &index);
            (name.clone(), Value::String(render(&parts, &outputs)))
        })
        .collect();
    println!("{}", json!({ "outputs": rendered, "missing": {} }));
}
