//! `baton validate` and the checks at the start of `baton run`: every
//! problem reported at once, each with its file, line, column and step.

mod support;

use support::Sandbox;

/// Validates `yaml` and returns the exit code and stderr.
fn validate(yaml: &str) -> (i32, String) {
    let sandbox = Sandbox::new();
    sandbox.write("w.yaml", yaml);
    let mut cmd = sandbox.baton();
    cmd.args(["validate", "w.yaml"]);
    let outcome = sandbox.finish(cmd);
    (outcome.code, outcome.stderr)
}

/// Asserts that `stderr` holds `message` reported at `place` (`line:col`).
fn assert_reported(stderr: &str, message: &str, place: &str) {
    let found = stderr
        .split("error: ")
        .any(|block| block.contains(message) && block.contains(&format!("--> w.yaml:{place}\n")));
    assert!(
        found,
        "expected `{message}` at w.yaml:{place} in:\n{stderr}"
    );
}

const MANY_MISTAKES: &str = r#"name: bad
inputs:
  topic: {}
stepz: {}
steps:
  search:
    agnet: web
    input: "{{inputs.topik}}"
  both:
    agent: a
    run: echo
  neither:
    input: x
  outline:
    agent: o
    input: "{{steps.serch.output}}"
    needs: [nothere]
  a: { agent: x, input: "{{steps.b.output}}" }
  b: { agent: x, input: "{{steps.c.output}}" }
  c: { agent: x, input: "{{steps.a.output}}" }
  self: { agent: x, needs: [self] }
  tpl: { agent: x, input: "{{#if x}}open" }
  bad.id: { agent: x }
  dur: { agent: x, timeout: 30 }
  quote: { run: "echo 'unclosed" }
outputs:
  o: "{{steps.ghost.output}}"
"#;

#[test]
fn every_mistake_is_reported_at_once_with_its_place() {
    let (code, stderr) = validate(MANY_MISTAKES);
    assert_eq!(code, 2);
    let expected = [
        ("unknown key `stepz`", "4:1"),
        ("did you mean `steps`?", "4:1"),
        ("step has neither `agent` nor `run` (step `search`)", "6:3"),
        ("unknown key `agnet` (step `search`)", "7:5"),
        ("did you mean `agent`?", "7:5"),
        (
            "input `topik`, which is not declared (step `search`)",
            "8:12",
        ),
        ("did you mean `topic`?", "8:12"),
        ("step has both `agent` and `run` (step `both`)", "9:3"),
        (
            "step has neither `agent` nor `run` (step `neither`)",
            "12:3",
        ),
        ("unknown step `serch` (step `outline`)", "16:12"),
        ("did you mean `search`?", "16:12"),
        ("unknown step `nothere` (step `outline`)", "17:13"),
        ("dependency cycle: a -> b -> c -> a", "18:3"),
        ("step `self` depends on itself", "21:3"),
        (
            "template syntax error at line 1, column 14 of the template",
            "22:27",
        ),
        ("step id `bad.id` is not valid", "23:3"),
        ("duration `30` has no unit", "24:29"),
        ("`run` has an unclosed quote (step `quote`)", "25:17"),
        ("unknown step `ghost`", "27:6"),
    ];
    for (message, place) in expected {
        assert_reported(&stderr, message, place);
    }
    assert!(stderr.contains("w.yaml: 15 problems"), "{stderr}");
}

#[test]
fn errors_draw_the_line_with_a_caret() {
    let (_, stderr) = validate("name: x\nsteps:\n  a:\n    agnet: y\n");
    assert!(stderr.contains("4 |     agnet: y\n  |     ^\n"), "{stderr}");
}

#[test]
fn duplicate_step_ids_are_all_named() {
    let (code, stderr) = validate(
        "name: d\nsteps:\n  a: {agent: x}\n  b: {agent: x}\n  a: {agent: y}\n  b: {agent: y}\n",
    );
    assert_eq!(code, 2);
    assert_reported(&stderr, "duplicate key `a`", "5:3");
    assert_reported(&stderr, "first defined at line 3", "5:3");
    assert_reported(&stderr, "duplicate key `b`", "6:3");
}

#[test]
fn yaml_syntax_errors_have_a_place() {
    let (code, stderr) = validate("name: x\nsteps:\n  a: [1,\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(stderr.contains("--> w.yaml:4:1"), "{stderr}");
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_quickly() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for name in names {
        let list = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("{name}: &{name} [{list}]\n"));
        prev = name;
    }
    let (code, stderr) = validate(&bomb);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid YAML"), "{stderr}");

    let (code, stderr) = validate(&format!("steps: {}", "[".repeat(200_000)));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid YAML"), "{stderr}");
}

#[test]
fn oversized_and_unreadable_files_are_errors() {
    let sandbox = Sandbox::new();
    let big = "#".repeat(17 * 1024 * 1024);
    sandbox.write("big.yaml", &big);
    let mut cmd = sandbox.baton();
    cmd.args(["validate", "big.yaml", "missing.yaml"]);
    let outcome = sandbox.finish(cmd);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.stderr.contains("larger than 16 MiB"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("--> missing.yaml"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn run_checks_before_calling_anything() {
    let fake = support::FakeAgentAi::echo();
    let outcome = Sandbox::new().run(
        "name: x\nsteps:\n  a: { agent: y, input: '{{steps.nope.output}}' }\n",
        &fake,
        &[],
    );
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("unknown step `nope`"),
        "{}",
        outcome.stderr
    );
    assert!(fake.calls().is_empty());
    assert!(
        !outcome.out_dir.exists(),
        "no run directory for an invalid workflow"
    );
}

#[test]
fn no_input_makes_the_loader_panic() {
    let cases = [
        "",
        "~",
        "[]",
        "42",
        "steps: 3",
        "steps: []",
        "steps: {a: 1}",
        "steps: {a: {agent: [1]}}",
        "steps: {a: {run: []}}",
        "steps: {a: {agent: x, needs: {b: 1}}}",
        "inputs: [a]",
        "steps: {a: {agent: x, retry: {attempts: 0}}}",
        "steps: {? [a]: {agent: x}}",
        "outputs: {o: {x: 1}}\nsteps: {a: {agent: x}}",
        "name: 'a b'\nsteps: {a: {agent: x}}",
        "steps: {a: {agent: x, input: {k=: v}}}",
        "concurrency: 0\nsteps: {a: {agent: x}}",
        "steps: {a: {agent: x, input: '{{steps}}'}}",
        "steps: {a: !tag {agent: x}}",
    ];
    for case in cases {
        let (code, stderr) = validate(case);
        assert_eq!(code, 2, "case {case:?}: {stderr}");
        assert!(stderr.contains("error: "), "case {case:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "case {case:?}: {stderr}");
    }
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "w.yaml",
        "name: g\nsteps:\n  a: { run: 'true' }\n  b: { agent: x, input: '{{steps.a.output}}' }\n",
    );
    let mut cmd = sandbox.baton();
    cmd.args(["graph", "w.yaml"]);
    let dot = sandbox.finish(cmd);
    dot.expect_code(0);
    assert!(dot.stdout.contains("\"a\" -> \"b\";"), "{}", dot.stdout);
    let mut cmd = sandbox.baton();
    cmd.args(["graph", "w.yaml", "--format", "mermaid"]);
    let mermaid = sandbox.finish(cmd);
    assert!(mermaid.stdout.contains("a --> b"), "{}", mermaid.stdout);
}
