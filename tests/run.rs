//! `baton run` against a fake agent.ai server: data flow, input shapes,
//! concurrency, retries, failures and results on disk.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Answer, FakeAgentAi, Sandbox, KEY};

//   research ──▶ outline ──▶ draft
#[test]
fn data_flows_through_a_chain_of_three_agents() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(
        r#"
name: chain
inputs:
  topic: { default: tokio }
steps:
  research: { agent: researcher, input: "{{inputs.topic}}" }
  outline: { agent: outliner, input: "notes: {{steps.research.output}}" }
  draft: { agent: writer, input: "{{steps.outline.output}}!" }
outputs:
  brief: "{{steps.draft.output}}"
"#,
        &fake,
        &["--json"],
    );
    outcome.expect_code(0);
    assert_eq!(
        fake.calls_to("outliner")[0].input,
        "notes: researcher(tokio)"
    );
    assert_eq!(
        fake.calls_to("writer")[0].input,
        "outliner(notes: researcher(tokio))!"
    );
    assert_eq!(fake.calls().len(), 3);
    let printed: serde_json::Value = serde_json::from_str(outcome.stdout.trim()).unwrap();
    assert_eq!(
        printed["outputs"]["brief"],
        "writer(outliner(notes: researcher(tokio))!)"
    );
    assert_eq!(outcome.json("outputs.json"), printed);
    let draft = outcome.step("draft");
    assert_eq!(draft["agent"], "writer");
    assert_eq!(draft["input"], "outliner(notes: researcher(tokio))!");
    assert_eq!(
        draft["output"],
        "writer(outliner(notes: researcher(tokio))!)"
    );
    let run = outcome.json("run.json");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["inputs"]["topic"], "tokio");
    assert_eq!(run["steps"]["outline"]["attempts"], 1);
    assert_eq!(run["workflow"]["sha256"].as_str().unwrap().len(), 64);
    let journal = std::fs::read_to_string(outcome.run_dir().join("journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 3);
}

#[test]
fn a_mapping_input_arrives_as_key_value_lines_in_file_order() {
    let fake = FakeAgentAi::echo();
    let outcome = Sandbox::new().run(
        r#"
name: fields
steps:
  draft:
    agent: writer
    input:
      outline: "{{workflow.name}} plan"
      tone: formal
      words: 300
"#,
        &fake,
        &[],
    );
    outcome.expect_code(0);
    assert_eq!(
        fake.calls()[0].input,
        "outline=fields plan\ntone=formal\nwords=300"
    );
    assert_eq!(
        fake.calls()[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
}

#[test]
fn think_block_is_kept_apart_from_the_output() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "deepseek-r1" => Answer::ok("<think>\nweigh options\n</think>\n\n\nUse tokio."),
        _ => Answer::ok(format!("got [{}]", call.input)),
    });
    let outcome = Sandbox::new().run(
        r#"
name: think
steps:
  reason: { agent: deepseek-r1, input: q }
  next: { agent: echo, input: "{{steps.reason.output}}|{{steps.reason.thinking}}" }
"#,
        &fake,
        &[],
    );
    outcome.expect_code(0);
    let reason = outcome.step("reason");
    assert_eq!(reason["output"], "Use tokio.");
    assert_eq!(reason["thinking"], "weigh options");
    assert_eq!(
        reason["raw"],
        "<think>\nweigh options\n</think>\n\n\nUse tokio."
    );
    assert_eq!(fake.calls_to("echo")[0].input, "Use tokio.|weigh options");
}

#[test]
fn json_replies_can_be_read_field_by_field() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "classify" => Answer::ok("```json\n{\"labels\": [\"bug\", \"ui\"]}\n```"),
        "object" => Answer::ok(json!({"score": 7})),
        _ => Answer::ok(call.input.clone()),
    });
    let outcome = Sandbox::new().run(
        r#"
name: json
steps:
  classify: { agent: classify }
  object: { agent: object }
  use:
    agent: echo
    input: "{{#each steps.classify.json.labels}}{{this}};{{/each}} {{steps.object.json.score}}"
"#,
        &fake,
        &[],
    );
    outcome.expect_code(0);
    assert_eq!(fake.calls_to("echo")[0].input, "bug;ui; 7");
    assert_eq!(outcome.step("object")["raw"], json!({"score": 7}));
}

#[test]
fn concurrency_caps_requests_in_flight_and_is_reached() {
    let fake = FakeAgentAi::start(|_| Answer::ok("x").after(Duration::from_millis(300)));
    let steps: String = (0..8)
        .map(|i| format!("  s{i}: {{ agent: slow, input: '{i}' }}\n"))
        .collect();
    let outcome = Sandbox::new().run(
        &format!("name: wide\nconcurrency: 3\nsteps:\n{steps}"),
        &fake,
        &[],
    );
    outcome.expect_code(0);
    assert_eq!(fake.calls().len(), 8);
    assert_eq!(fake.peak_in_flight(), 3);

    let fake = FakeAgentAi::start(|_| Answer::ok("x").after(Duration::from_millis(300)));
    let outcome = Sandbox::new().run(
        &format!("name: wide\nconcurrency: 3\nsteps:\n{steps}"),
        &fake,
        &["--concurrency", "5"],
    );
    outcome.expect_code(0);
    assert_eq!(fake.peak_in_flight(), 5);
}

#[test]
fn a_server_error_is_retried_and_then_succeeds() {
    let fake = FakeAgentAi::start(|call| match call.nth {
        0 => Answer::error(503, "busy"),
        _ => Answer::ok("fine"),
    });
    let outcome = Sandbox::new().run(
        "name: retry\ndefaults: { retry: { attempts: 3, backoff: 50ms } }\nsteps:\n  a: { agent: flaky }\n",
        &fake,
        &[],
    );
    outcome.expect_code(0);
    assert_eq!(fake.calls().len(), 2);
    let a = outcome.step("a");
    assert_eq!(a["output"], "fine");
    assert_eq!(a["attempts"].as_array().unwrap().len(), 2);
    assert!(a["attempts"][0]["error"].as_str().unwrap().contains("503"));
}

#[test]
fn rate_limit_waits_for_retry_after_and_frees_the_slot_meanwhile() {
    // With one slot, `other` can only run while `limited` waits.
    let fake = FakeAgentAi::start(|call| match (call.agent.as_str(), call.nth) {
        ("limited", 0) => Answer::error(429, "slow down").header("Retry-After", "1"),
        _ => Answer::ok("done"),
    });
    let outcome = Sandbox::new().run(
        "name: limit\nconcurrency: 1\nsteps:\n  limited: { agent: limited }\n  other: { agent: other }\n",
        &fake,
        &[],
    );
    outcome.expect_code(0);
    let limited = fake.calls_to("limited");
    assert_eq!(limited.len(), 2);
    let waited = limited[1].at - limited[0].at;
    assert!(
        waited >= Duration::from_millis(1000),
        "retried after {waited:?}"
    );
    let other = &fake.calls_to("other")[0];
    assert!(
        other.at < limited[1].at,
        "`other` should run during the wait"
    );
}

#[test]
fn a_rejected_key_stops_the_whole_run() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "first" => Answer::error(401, "invalid api key"),
        _ => Answer::ok("x").after(Duration::from_millis(100)),
    });
    let outcome = Sandbox::new().run(
        r#"
name: auth
concurrency: 1
steps:
  first: { agent: first }
  second: { agent: second }
  third: { agent: third }
"#,
        &fake,
        &[],
    );
    outcome.expect_code(1);
    assert_eq!(fake.calls().len(), 1, "no call after the 401");
    assert!(outcome.stderr.contains("401"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("invalid api key"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.status_of("first"), "failed");
    assert_eq!(outcome.status_of("second"), "not_started");
    let run = outcome.json("run.json");
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("first"));
}

//   broken ──▶ after ──▶ later
//   fine   ──▶ joined
#[test]
fn a_failed_step_skips_its_dependents_and_not_its_neighbours() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "broken" => Answer::error(404, "no such agent"),
        _ => Answer::ok(call.agent.clone()),
    });
    let outcome = Sandbox::new().run(
        r#"
name: partial
steps:
  broken: { agent: broken }
  after: { agent: after, input: "{{steps.broken.output}}" }
  later: { agent: later, needs: [after] }
  fine: { agent: fine }
  joined: { agent: joined, input: "{{steps.fine.output}}" }
outputs:
  good: "{{steps.joined.output}}"
  bad: "{{steps.later.output}}"
"#,
        &fake,
        &[],
    );
    outcome.expect_code(1);
    assert_eq!(fake.calls_to("broken").len(), 1, "404 is not retried");
    assert!(fake.calls_to("after").is_empty() && fake.calls_to("later").is_empty());
    assert_eq!(outcome.status_of("broken"), "failed");
    assert_eq!(outcome.status_of("after"), "skipped");
    assert_eq!(outcome.status_of("later"), "skipped");
    assert_eq!(outcome.status_of("joined"), "succeeded");
    let run = outcome.json("run.json");
    assert_eq!(run["steps"]["after"]["reason"], "`broken` failed");
    assert!(run["steps"]["broken"]["error"]
        .as_str()
        .unwrap()
        .contains("no such agent"));
    let outputs = outcome.json("outputs.json");
    assert_eq!(outputs["outputs"]["good"], "joined");
    assert_eq!(outputs["missing"]["bad"], "step `later` skipped");
    assert_eq!(outcome.step("broken")["status"], "failed");
}

#[test]
fn fail_fast_cancels_what_is_running() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "broken" => Answer::error(400, "bad input"),
        _ => Answer::ok("x").after(Duration::from_secs(5)),
    });
    let outcome = Sandbox::new().run(
        "name: ff\nsteps:\n  slow: { agent: slow }\n  broken: { agent: broken }\n",
        &fake,
        &["--fail-fast"],
    );
    outcome.expect_code(1);
    assert_eq!(outcome.status_of("slow"), "cancelled");
    assert_eq!(outcome.status_of("broken"), "failed");
}

#[test]
fn a_slow_agent_times_out() {
    let fake = FakeAgentAi::start(|_| Answer::ok("late").after(Duration::from_secs(5)));
    let outcome = Sandbox::new().run(
        "name: slow\nsteps:\n  a: { agent: slow, timeout: 300ms, retry: { attempts: 2, backoff: 10ms } }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    assert_eq!(fake.calls().len(), 2);
    assert!(
        outcome.stderr.contains("did not answer within 300ms"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn interrupt_cancels_steps_and_records_the_run() {
    for signal in ["-INT", "-TERM"] {
        interrupted_by(signal);
    }
}

fn interrupted_by(signal: &str) {
    let fake = FakeAgentAi::start(|_| Answer::ok("x").after(Duration::from_secs(30)));
    let sandbox = Sandbox::new();
    sandbox.write(
        "workflow.yaml",
        "name: int\nsteps:\n  a: { agent: slow }\n  b: { run: 'true', needs: [a] }\n",
    );
    let mut cmd = sandbox.run_command(&["--out", "out", "--base-url", &fake.base_url]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.calls().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{signal}");
    let run_dir = sandbox.only_run("out/int");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "interrupted", "{signal}");
    assert_eq!(run["steps"]["a"]["status"], "cancelled", "{signal}");
    let ran = run["steps"]["a"]["duration_ms"]
        .as_u64()
        .unwrap_or_default();
    assert!(
        ran >= 200,
        "{signal}: a ran {ran} ms before it was cancelled"
    );
    assert_eq!(run["steps"]["a"]["attempts"], 1, "{signal}");
    assert_eq!(run["steps"]["b"]["status"], "not_started", "{signal}");
}

#[test]
fn the_key_never_reaches_files_or_logs() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "bad" => Answer::error(403, "forbidden"),
        _ => Answer::ok("x"),
    });
    let sandbox = Sandbox::new();
    sandbox.write(
        "workflow.yaml",
        "name: secret\nsteps:\n  a: { agent: ok }\n  b: { agent: bad }\n  c: { run: env }\n",
    );
    let mut cmd = sandbox.baton();
    cmd.args([
        "run",
        "workflow.yaml",
        "--out",
        "out",
        "--base-url",
        &fake.base_url,
        "-vvv",
    ])
    .env("RUST_LOG", "trace");
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(1);
    assert!(
        outcome.stderr.contains("forbidden"),
        "the run logged its error"
    );
    assert!(outcome.stderr.lines().count() > 20, "trace logging was on");
    assert!(!outcome.stderr.contains(KEY), "key in stderr");
    assert!(!outcome.stdout.contains(KEY), "key in stdout");
    let mut files = vec![outcome.run_dir()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains(KEY), "key in {}", path.display());
        }
    }
}

#[test]
fn a_missing_key_is_a_usage_error_before_any_call() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.write("workflow.yaml", "name: nokey\nsteps:\n  a: { agent: x }\n");
    let mut cmd = sandbox.baton();
    cmd.args(["run", "workflow.yaml", "--base-url", &fake.base_url])
        .env_remove("AGENTAI_API_KEY");
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("AGENTAI_API_KEY"),
        "{}",
        outcome.stderr
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn plain_http_is_refused_for_remote_hosts() {
    let sandbox = Sandbox::new();
    sandbox.write("workflow.yaml", "name: tls\nsteps:\n  a: { agent: x }\n");
    let mut cmd = sandbox.baton();
    cmd.args([
        "run",
        "workflow.yaml",
        "--base-url",
        "http://agent.example/v1",
    ]);
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("must use https"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn local_command_failure_shows_the_end_of_stderr() {
    let fake = FakeAgentAi::echo();
    let outcome = Sandbox::new().run(
        "name: cmd\nsteps:\n  a: { run: ['sh', '-c', 'echo oops >&2; exit 4'], retry: { attempts: 1 } }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    let error = outcome.json("run.json")["steps"]["a"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("status 4") && error.contains("oops"),
        "{error}"
    );
}

#[test]
fn inputs_come_from_flags_and_files_and_are_checked() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.write("in.yaml", "topic: from-file\naudience: file-people\n");
    let workflow = r#"
name: inputs
inputs:
  topic: { default: dflt }
  audience: {}
steps:
  a: { agent: x, input: "{{inputs.topic}}/{{inputs.audience}}" }
"#;
    sandbox
        .run(
            workflow,
            &fake,
            &["--inputs", "in.yaml", "--input", "audience=cli"],
        )
        .expect_code(0);
    assert_eq!(fake.calls()[0].input, "from-file/cli");

    let missing = sandbox.run(workflow, &fake, &[]);
    missing.expect_code(2);
    assert!(
        missing
            .stderr
            .contains("required input `audience` was not given"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("workflow.yaml:5:3"),
        "{}",
        missing.stderr
    );

    let unknown = sandbox.run(workflow, &fake, &["--input", "audiense=x"]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("did you mean `audience`?"),
        "{}",
        unknown.stderr
    );
    assert_eq!(fake.calls().len(), 1);
}

#[test]
fn a_key_echoed_by_the_service_is_redacted_everywhere() {
    let fake = FakeAgentAi::start(|call| {
        let auth = call.authorization.clone().unwrap_or_default();
        let long = format!("{}{auth}", "x".repeat(290));
        match call.agent.as_str() {
            "error" => Answer::raw(400, json!({ "error": format!("bad {auth}") }).to_string()),
            "message" => Answer::raw(
                500,
                json!({ "message": format!("{auth} refused") }).to_string(),
            ),
            "detail" => Answer::raw(400, json!({ "detail": { "message": auth } }).to_string()),
            "long" => Answer::raw(400, json!({ "error": long }).to_string()),
            "inner" => Answer::raw(200, json!({ "status": 500, "error": auth }).to_string()),
            _ => Answer::raw(
                500,
                format!(
                    "<html><head><style>p {{ color: red }}</style></head><body>\
                     <p>Authorization: {auth}</p><p>key {KEY}</p></body></html>"
                ),
            ),
        }
    });
    let agents = ["error", "message", "detail", "long", "inner", "html"];
    let steps: String = agents
        .iter()
        .map(|agent| format!("  {agent}: {{ agent: {agent} }}\n"))
        .collect();
    let sandbox = Sandbox::new();
    sandbox.write(
        "workflow.yaml",
        &format!(
            "name: echo\ndefaults: {{ retry: {{ attempts: 2, backoff: 10ms }} }}\nsteps:\n{steps}"
        ),
    );
    let mut cmd = sandbox.baton();
    cmd.args(["run", "workflow.yaml", "--out", "out", "-vvv"])
        .args(["--base-url", &fake.base_url])
        .env("RUST_LOG", "trace");
    let outcome = sandbox.finish(cmd);

    outcome.expect_code(1);
    assert!(fake
        .calls()
        .iter()
        .all(|c| c.authorization.as_deref() == Some(&*format!("Bearer {KEY}"))));
    assert!(outcome.stderr.lines().count() > 20, "trace logging was on");
    assert!(!outcome.stderr.contains(KEY), "key in stderr");
    assert!(!outcome.stdout.contains(KEY), "key in stdout");
    let run = outcome.json("run.json");
    for agent in agents {
        let error = run["steps"][agent]["error"].as_str().unwrap();
        let shown = error.contains("[redacted]") || agent == "long";
        assert!(shown && !error.contains("sk-"), "{agent}: {error}");
    }
    assert_no_file_holds_the_key(&outcome.run_dir());
}

fn assert_no_file_holds_the_key(dir: &std::path::Path) {
    let mut files = vec![dir.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(!text.contains(KEY), "key in {}", path.display());
        }
    }
}

#[test]
fn no_credits_stop_the_whole_run() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "first" => Answer::error(402, "no credits left").after(Duration::from_millis(100)),
        _ => Answer::ok("x").after(Duration::from_secs(5)),
    });
    let outcome = Sandbox::new().run(
        r#"
name: credits
concurrency: 2
steps:
  first: { agent: first }
  running: { agent: running }
  waiting: { agent: waiting }
  after: { agent: after, needs: [first] }
"#,
        &fake,
        &[],
    );
    outcome.expect_code(1);
    assert!(outcome.stderr.contains("402"), "{}", outcome.stderr);
    assert_eq!(outcome.status_of("first"), "failed");
    assert_eq!(outcome.status_of("running"), "cancelled");
    assert_eq!(outcome.status_of("waiting"), "not_started");
    assert_eq!(outcome.status_of("after"), "skipped");
    assert!(fake.calls_to("waiting").is_empty() && fake.calls_to("after").is_empty());
    let run = outcome.json("run.json");
    let error = run["steps"]["first"]["error"].as_str().unwrap();
    assert!(
        error.contains("402 Payment Required") && error.contains("no credits left"),
        "{error}"
    );
}

#[test]
fn bad_requests_and_forbidden_calls_are_not_retried() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "bad" => Answer::error(400, "bad input"),
        _ => Answer::error(403, "not your agent"),
    });
    let outcome = Sandbox::new().run(
        "name: once\ndefaults: { retry: { attempts: 3, backoff: 10ms } }\nsteps:\n  \
         bad: { agent: bad }\n  forbidden: { agent: forbidden }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    assert_eq!(fake.calls_to("bad").len(), 1);
    assert_eq!(fake.calls_to("forbidden").len(), 1);
    assert_eq!(outcome.step("bad")["attempts"].as_array().unwrap().len(), 1);
    assert!(outcome.stderr.contains("403"), "{}", outcome.stderr);
}

#[test]
fn the_services_message_is_shown_and_a_long_one_is_shortened() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "said" => Answer::raw(
            400,
            json!({ "message": "input too long for this agent" }).to_string(),
        ),
        _ => Answer::error(400, &"very long complaint ".repeat(100)),
    });
    let outcome = Sandbox::new().run(
        "name: words\nsteps:\n  said: { agent: said }\n  long: { agent: long }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    let run = outcome.json("run.json");
    let said = run["steps"]["said"]["error"].as_str().unwrap();
    assert_eq!(
        said,
        "agent.ai answered 400 Bad Request: input too long for this agent"
    );
    assert!(outcome.stderr.contains(said), "{}", outcome.stderr);
    let long = run["steps"]["long"]["error"].as_str().unwrap();
    assert!(long.starts_with("agent.ai answered 400 Bad Request: very long complaint"));
    assert!(long.ends_with('…'), "{long}");
    assert!(
        long.chars().count() <= 350,
        "{} chars",
        long.chars().count()
    );
}

#[test]
fn a_json_array_response_is_read_through_json_and_raw() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "list" => Answer::ok(json!([{ "name": "ada" }, { "name": "bob" }])),
        _ => Answer::ok(call.input.clone()),
    });
    let outcome = Sandbox::new().run(
        r#"
name: array
steps:
  list: { agent: list }
  use:
    agent: echo
    input: "{{#each steps.list.json}}{{this.name}};{{/each}} {{steps.list.raw.[1].name}}"
"#,
        &fake,
        &[],
    );
    outcome.expect_code(0);
    assert_eq!(fake.calls_to("echo")[0].input, "ada;bob; bob");
    let list = outcome.step("list");
    assert_eq!(list["raw"], json!([{ "name": "ada" }, { "name": "bob" }]));
    assert_eq!(list["json"], list["raw"]);
}

#[test]
fn run_id_in_a_template_is_the_runs_id() {
    let fake = FakeAgentAi::echo();
    let outcome = Sandbox::new().run(
        "name: ids\nsteps:\n  a: { agent: x, input: 'run={{run.id}}' }\n",
        &fake,
        &[],
    );
    outcome.expect_code(0);
    let run_id = outcome.json("run.json")["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!run_id.is_empty());
    assert_eq!(fake.calls()[0].input, format!("run={run_id}"));
    assert!(outcome.run_dir().ends_with(&run_id));
}

#[test]
fn fail_fast_starts_no_step_that_was_waiting() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "broken" => Answer::error(400, "bad input"),
        _ => Answer::ok("x"),
    });
    let workflow = "name: ff\nconcurrency: 1\nsteps:\n  broken: { agent: broken }\n  \
                    next: { agent: next }\n  last: { agent: last }\n";
    let outcome = Sandbox::new().run(workflow, &fake, &["--fail-fast"]);
    outcome.expect_code(1);
    assert_eq!(fake.calls().len(), 1, "{:?}", fake.calls());
    assert_eq!(outcome.status_of("next"), "not_started");
    assert_eq!(outcome.status_of("last"), "not_started");

    // Without the flag the same run goes on past the failure.
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "broken" => Answer::error(400, "bad input"),
        _ => Answer::ok("x"),
    });
    Sandbox::new().run(workflow, &fake, &[]).expect_code(1);
    assert_eq!(fake.calls().len(), 3);
}

//   a ──▶ b
#[test]
fn progress_shows_each_step_with_its_time_and_a_summary() {
    let fake = FakeAgentAi::echo();
    let outcome = Sandbox::new().run(
        "name: shown\nsteps:\n  a: { agent: x }\n  b: { run: 'true', needs: [a] }\n",
        &fake,
        &[],
    );
    outcome.expect_code(0);
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    for step in ["a", "b"] {
        let start = format!("  start    {step} (");
        assert!(lines.iter().any(|l| l.starts_with(&start)), "{lines:#?}");
        let done = format!("  ok       {step} in ");
        let took = lines
            .iter()
            .find_map(|l| l.strip_prefix(&done))
            .unwrap_or_else(|| panic!("no end of `{step}`: {lines:#?}"));
        let secs = took.strip_suffix('s').expect("a duration in seconds");
        assert!(secs.parse::<f64>().is_ok(), "{took}");
    }
    let run_id = outcome.json("run.json")["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let summary = lines
        .iter()
        .position(|l| *l == format!("run {run_id} succeeded"))
        .unwrap_or_else(|| panic!("no summary: {lines:#?}"));
    let rows = &lines[summary + 1..];
    for step in ["a", "b"] {
        let row = rows
            .iter()
            .find(|l| l.split_whitespace().next() == Some(step))
            .unwrap_or_else(|| panic!("`{step}` missing from the summary: {rows:#?}"));
        assert!(row.contains("succeeded"), "{row}");
    }
    assert!(rows.iter().any(|l| l.starts_with("results: ")), "{rows:#?}");
}

#[test]
fn inputs_can_come_from_a_json_file() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.write(
        "in.json",
        r#"{"topic": "from-json", "audience": "json-people"}"#,
    );
    let outcome = sandbox.run(
        "name: json-in\ninputs:\n  topic: {}\n  audience: {}\nsteps:\n  \
         a: { agent: x, input: '{{inputs.topic}}/{{inputs.audience}}' }\n",
        &fake,
        &["--inputs", "in.json"],
    );
    outcome.expect_code(0);
    assert_eq!(fake.calls()[0].input, "from-json/json-people");
    assert_eq!(outcome.json("run.json")["inputs"]["topic"], "from-json");
}

#[test]
fn a_failing_command_is_not_run_again_but_a_hung_one_is() {
    let sandbox = Sandbox::new();
    let fake = FakeAgentAi::echo();
    let outcome = sandbox.run(
        "name: once\nsteps:\n  a: { run: ['sh', '-c', 'echo ran >> failed.txt; exit 1'] }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    let ran = std::fs::read_to_string(sandbox.path().join("failed.txt")).unwrap();
    assert_eq!(ran.lines().count(), 1, "the default retry ran it again");
    assert_eq!(outcome.step("a")["attempts"].as_array().unwrap().len(), 1);

    let outcome = sandbox.run(
        "name: hung\nsteps:\n  a: { run: ['sh', '-c', 'echo ran >> hung.txt; exec sleep 5'], \
         timeout: 200ms, retry: { attempts: 2, backoff: 10ms } }\n",
        &fake,
        &[],
    );
    outcome.expect_code(1);
    let ran = std::fs::read_to_string(sandbox.path().join("hung.txt")).unwrap();
    assert_eq!(ran.lines().count(), 2);
}

/// A step that starts `sleep` in the background, writes its pid to `pid`
/// in the sandbox and waits for it.
const BACKGROUND_SLEEP: &str = "['sh', '-c', 'sleep 30 & echo $! > pid; wait']";

#[test]
fn a_timed_out_command_takes_its_background_processes_with_it() {
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(
        &format!(
            "name: group\nsteps:\n  a: {{ run: {BACKGROUND_SLEEP}, timeout: 300ms, \
             retry: {{ attempts: 1 }} }}\n"
        ),
        &FakeAgentAi::echo(),
        &[],
    );
    outcome.expect_code(1);
    assert!(outcome.stderr.contains("did not finish within 300ms"));
    assert_ends(pid_in(&sandbox));
}

#[test]
fn a_cancelled_command_takes_its_background_processes_with_it() {
    let fake =
        FakeAgentAi::start(|_| Answer::error(400, "bad input").after(Duration::from_millis(300)));
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(
        &format!(
            "name: group\nsteps:\n  a: {{ run: {BACKGROUND_SLEEP} }}\n  broken: {{ agent: x }}\n"
        ),
        &fake,
        &["--fail-fast"],
    );
    outcome.expect_code(1);
    assert_eq!(outcome.status_of("a"), "cancelled");
    assert_ends(pid_in(&sandbox));
}

fn pid_in(sandbox: &Sandbox) -> u32 {
    let text = std::fs::read_to_string(sandbox.path().join("pid")).expect("the step wrote its pid");
    text.trim().parse().expect("a pid")
}

/// Fails unless `pid` ends within a second; a zombie has ended.
fn assert_ends(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let state = stat.as_deref().ok().and_then(|s| s.rsplit_once(") "));
        match state {
            None => return,
            Some((_, rest)) if rest.starts_with('Z') => return,
            Some(_) if std::time::Instant::now() > deadline => {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                panic!("process {pid} outlived its step");
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn run_json_names_the_commit_the_workflow_was_run_at() {
    let sandbox = Sandbox::new();
    let workflow = "name: prov\nsteps:\n  a: { run: 'echo hi' }\n";
    sandbox.write("workflow.yaml", workflow);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(sandbox.path())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q"]);
    git(&["add", "workflow.yaml"]);
    git(&["commit", "-q", "-m", "workflow"]);
    let head = git(&["rev-parse", "HEAD"]);

    let clean = sandbox.finish(sandbox.run_command(&["--out", "out"]));
    clean.expect_code(0);
    let record = clean.json("run.json")["workflow"].clone();
    assert_eq!(record["git_commit"], head.as_str());
    assert_eq!(record["git_dirty"], false);
    assert_eq!(record["path"], "workflow.yaml");
    let sha = baton::hash::sha256_hex(workflow.as_bytes());
    assert_eq!(record["sha256"], sha.as_str());

    sandbox.write("workflow.yaml", &workflow.replace("hi", "there"));
    let edited = sandbox.finish(sandbox.run_command(&["--out", "edited"]));
    edited.expect_code(0);
    let run = sandbox.only_run("edited/prov");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["workflow"]["git_commit"], head.as_str());
    assert_eq!(record["workflow"]["git_dirty"], true);
}

//   a ──▶ b      (fast)
//   c            (slow, unrelated)
#[test]
fn a_step_starts_when_its_dependency_ends_not_when_a_wave_does() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "slow" => Answer::ok("late").after(Duration::from_millis(800)),
        _ => Answer::ok("soon"),
    });
    let sandbox = Sandbox::new();
    let workflow = "name: waves\nsteps:\n  a: { agent: fast }\n  \
        b: { agent: fast, input: '{{steps.a.output}}' }\n  c: { agent: slow }\n";
    sandbox.run(workflow, &fake, &[]).expect_code(0);
    let slow = fake.calls_to("slow")[0].at;
    let b = fake.calls_to("fast")[1].clone();
    assert_eq!(b.input, "soon");
    assert!(
        b.at < slow + Duration::from_millis(400),
        "b waited for the unrelated slow step: {:?} after it started",
        b.at - slow
    );
}

#[test]
fn an_unreadable_inputs_file_is_named_as_such() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "workflow.yaml",
        "name: i\ninputs:\n  x: {}\nsteps:\n  a: { run: cat, input: '{{inputs.x}}' }\n",
    );
    let cmd = sandbox.run_command(&["--out", "out", "--inputs", "missing.yaml"]);
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(2);
    assert!(
        outcome
            .stderr
            .contains("`missing.yaml`: cannot read inputs file"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn log_format_json_makes_every_progress_line_json() {
    let fake = FakeAgentAi::start(|call| match call.agent.as_str() {
        "bad" => Answer::error(404, "no such agent"),
        _ => Answer::ok("fine"),
    });
    let sandbox = Sandbox::new();
    let workflow = "name: jl\nsteps:\n  a: { agent: good }\n  b: { agent: bad }\n  \
        c: { agent: good, input: '{{steps.b.output}}' }\n";
    let outcome = sandbox.run(workflow, &fake, &["--log-format", "json"]);
    outcome.expect_code(1);
    let events: Vec<serde_json::Value> = outcome
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let step = e["step"].as_str().unwrap_or("");
            (e["event"].as_str().unwrap(), step)
        })
        .collect();
    for expected in [
        ("start", "a"),
        ("finish", "a"),
        ("finish", "b"),
        ("skipped", "c"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    let failed = events
        .iter()
        .find(|e| e["event"] == "finish" && e["step"] == "b")
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("404"));
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["steps"]["c"]["status"], "skipped");
    assert!(events
        .iter()
        .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z'))));
}
