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
    assert!(stderr.contains("aliases expand to more than"), "{stderr}");

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
        "steps: {1: {run: x}, '1': {run: x}}",
        "steps: {true: {run: x}, 'true': {run: x}}",
        "steps: {0x1: {run: x}, 1: {run: x}}",
        "steps: {1e1: {run: x}, '10.0': {run: x}}",
        "steps: {~: {run: x}}",
        "concurrency: 100000000000000\nsteps: {a: {run: x}}",
        "steps: {a: {run: x, needs: ~}}",
        "steps: {a: {agent: ~}}",
        "inputs: {~: {}}\nsteps: {a: {run: x}}",
        "steps: {a: {run: x, input: {~: y}}}",
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

#[test]
fn step_ids_must_be_text_as_written() {
    let (code, stderr) = validate(
        "name: n\nsteps:\n  1: {run: 'true'}\n  '1': {run: 'true'}\n  1e1: {run: 'true'}\n  true: {run: 'true'}\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert_reported(&stderr, "step id `1` is a number in YAML, not text", "3:3");
    assert_reported(&stderr, "put it in quotes, `'1':`", "3:3");
    assert_reported(&stderr, "step id `1e1` is a number in YAML", "5:3");
    assert_reported(&stderr, "step id `true` is a boolean in YAML", "6:3");
    assert!(stderr.contains("w.yaml: 3 problems"), "{stderr}");
}

#[test]
fn names_that_yaml_reads_as_numbers_are_not_dropped() {
    let (code, stderr) = validate(
        "name: n\ninputs:\n  7: {}\noutputs:\n  8: x\nsteps:\n  a: {run: 'true', input: {~: x}}\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert_reported(&stderr, "input name `7` is a number", "3:3");
    assert_reported(&stderr, "output name `8` is a number", "5:3");
    assert_reported(
        &stderr,
        "input field `~` is null in YAML, not text (step `a`)",
        "7:28",
    );
}

#[test]
fn concurrency_is_capped_in_the_file_as_on_the_command_line() {
    let (code, stderr) = validate("name: n\nconcurrency: 10001\nsteps:\n  a: {run: 'true'}\n");
    assert_eq!(code, 2, "{stderr}");
    assert_reported(
        &stderr,
        "`concurrency` must be a whole number from 1 to 10000",
        "2:14",
    );
    let (code, stderr) = validate("name: n\nconcurrency: 10000\nsteps:\n  a: {run: 'true'}\n");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let (code, stderr) = validate("\u{feff}name: n\nsteps:\n  a: {run: 'true'}\n");
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = validate("\u{feff}name: 'a b'\nsteps:\n  a: {run: 'true'}\n");
    assert_eq!(code, 2, "{stderr}");
    assert_reported(&stderr, "workflow name `a b` is not a valid name", "1:7");
}

#[test]
fn every_step_of_a_cycle_is_named() {
    let (code, stderr) = validate(
        "name: n\nsteps:\n  a: {run: x, needs: [b]}\n  b: {run: x, needs: [a, c]}\n  c: {run: x, needs: [b]}\n  d: {run: x, needs: [d, e]}\n  e: {run: x, needs: [d]}\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert_reported(
        &stderr,
        "dependency cycle among `a`, `b` and `c`, for example a -> b -> a",
        "3:3",
    );
    assert_reported(
        &stderr,
        "dependency cycle: d -> e -> d, and `d` depends on itself",
        "6:3",
    );
}

const MORE_MISTAKES: &str = r#"name: more
inputs:
  topic: {}
steps:
  a: { agent: '', needs: nothere, timeout: ~ }
  b: { agent: ~, needs: ~, timeout: "" }
  c: { run: x, retry: { backoff: x, max_wait: y } }
  d: { run: x, input: "{{input.topic}} {{foo.x}}" }
  e: { run: x, input: "{{run.idd}} {{workflow.nam}} {{steps.c.outptu}}" }
  f: { run: x, input: "{{uppercase steps.c.output}} {{> p}}" }
  g: { run: x, input: "{{#each steps.c.json.items}}{{name}}{{../inputs.topic}}{{/each}}" }
"#;

#[test]
fn unclear_or_unplaced_mistakes_are_worded_and_placed() {
    let (code, stderr) = validate(MORE_MISTAKES);
    assert_eq!(code, 2);
    let expected = [
        ("`agent` is empty (step `a`)", "5:15"),
        ("unknown step `nothere` (step `a`)", "5:26"),
        (
            "`timeout` has no value; write a duration such as `30s`",
            "5:44",
        ),
        ("`agent` is empty (step `b`)", "6:15"),
        ("`needs` names no step", "6:25"),
        ("duration is empty", "6:37"),
        ("`x` is not a duration", "7:34"),
        ("`y` is not a duration", "7:47"),
        ("template reads `input.topic`, which does not exist", "8:23"),
        ("did you mean `inputs.topic`?", "8:23"),
        ("template reads `foo.x`, which does not exist", "8:23"),
        ("template reads `run.idd`, but `run` has only `id`", "9:23"),
        (
            "template reads `workflow.nam`, but `workflow` has only `name`",
            "9:23",
        ),
        ("did you mean `steps.c.output`?", "9:23"),
        (
            "helper `uppercase`, which does not exist (step `f`)",
            "10:23",
        ),
        ("partial `p`, which is not defined (step `f`)", "10:23"),
    ];
    for (message, place) in expected {
        assert_reported(&stderr, message, place);
    }
    assert!(stderr.contains("w.yaml: 15 problems"), "{stderr}");
}

#[test]
fn this_and_dot_slash_paths_make_dependencies() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "w.yaml",
        "name: g\nsteps:\n  b: { agent: x, input: '{{this.steps.a.output}} {{./steps.c.output}}' }\n  a: { run: 'true' }\n  c: { run: 'true' }\n",
    );
    let mut cmd = sandbox.baton();
    cmd.args(["graph", "w.yaml"]);
    let dot = sandbox.finish(cmd);
    dot.expect_code(0);
    assert!(dot.stdout.contains("\"a\" -> \"b\";"), "{}", dot.stdout);
    assert!(dot.stdout.contains("\"c\" -> \"b\";"), "{}", dot.stdout);
}

#[test]
fn a_file_without_name_says_its_name_came_from_the_file() {
    let sandbox = Sandbox::new();
    sandbox.write("my flow.yaml", "steps:\n  a: {run: 'true'}\n");
    let mut cmd = sandbox.baton();
    cmd.args(["validate", "my flow.yaml"]);
    let outcome = sandbox.finish(cmd);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains("has no `name`, and its file name `my flow` is not a valid name"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("add `name:`"), "{}", outcome.stderr);
}

#[test]
fn long_lines_are_cut_with_the_caret_in_place() {
    let filler = "x".repeat(5000);
    let (code, stderr) = validate(&format!(
        "name: n\nsteps:\n  a: {{run: x, description: '{filler}', timout: 1s}}\n"
    ));
    assert_eq!(code, 2);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("3 | "))
        .expect("the line is drawn");
    let caret = stderr
        .lines()
        .skip_while(|l| !l.starts_with("3 | "))
        .nth(1)
        .expect("a caret line");
    assert!(line.chars().count() < 220, "{line}");
    assert!(
        line.starts_with("3 | …") && line.ends_with("timout: 1s}"),
        "{line}"
    );
    let at = caret.chars().count() - 1;
    assert_eq!(caret.chars().last(), Some('^'));
    assert_eq!(line.chars().skip(at).take(6).collect::<String>(), "timout");
}

#[test]
fn aliases_that_copy_large_text_are_refused_quickly() {
    let big = "x".repeat(1024 * 1024);
    let copies = vec!["*big"; 200].join(", ");
    let started = std::time::Instant::now();
    let (code, stderr) = validate(&format!(
        "name: n\ndescription: &big {big}\nsteps:\n  a: {{run: x, input: [{copies}]}}\n"
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("aliases expand to more than 16 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("--> w.yaml:4:"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
