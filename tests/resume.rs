//! Never paying twice for a call: resuming a run, the cache across runs,
//! the run directory's lock, and whole-process faults (kills, a full disk,
//! a read-only or symlinked output directory).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Answer, FakeAgentAi, Sandbox};

//   a ──▶ b ──▶ c
//   d
const CHAIN: &str = r#"
name: chain
steps:
  a: { agent: a, input: "start" }
  b: { agent: b, input: "{{steps.a.output}}", retry: { attempts: 1 } }
  c: { agent: c, input: "{{steps.b.output}}" }
  d: { agent: d, input: "alone" }
outputs:
  end: "{{steps.c.output}}"
"#;

/// An echoing fake whose agent `b` fails until `fixed` is set.
fn broken_b() -> (FakeAgentAi, Arc<AtomicBool>) {
    let fixed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&fixed);
    let fake = FakeAgentAi::start(move |call| {
        if call.agent == "b" && !flag.load(Ordering::SeqCst) {
            return Answer::error(500, "b is down");
        }
        Answer::ok(format!("{}({})", call.agent, call.input))
    });
    (fake, fixed)
}

fn resume(sandbox: &Sandbox, fake: &FakeAgentAi, which: &str) -> support::Outcome {
    sandbox.rerun(fake, &["--resume", which])
}

#[test]
fn resume_calls_only_what_did_not_finish() {
    let (fake, fixed) = broken_b();
    let sandbox = Sandbox::new();
    let first = sandbox.run(CHAIN, &fake, &[]);
    first.expect_code(1);
    assert_eq!(first.status_of("c"), "skipped");
    fixed.store(true, Ordering::SeqCst);

    let second = resume(&sandbox, &fake, "latest");
    second.expect_code(0);
    assert_eq!(
        second.run_dir(),
        first.run_dir(),
        "resume writes in the same directory"
    );
    assert_eq!(
        fake.calls_to("a").len(),
        1,
        "a finished and is not called again"
    );
    assert_eq!(
        fake.calls_to("d").len(),
        1,
        "d finished and is not called again"
    );
    assert_eq!(fake.calls_to("b").len(), 2);
    assert_eq!(fake.calls_to("c").len(), 1);
    let run = second.json("run.json");
    assert_eq!(run["steps"]["a"]["reused"], true);
    assert_eq!(run["steps"]["b"].get("reused"), None);
    assert_eq!(
        second.json("outputs.json")["outputs"]["end"],
        "c(b(a(start)))"
    );
    assert!(
        second.stderr.contains("2 of 4 steps succeeded earlier"),
        "{}",
        second.stderr
    );

    let id = first
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    resume(&sandbox, &fake, &id).expect_code(0);
    assert_eq!(
        fake.calls().len(),
        5,
        "a finished run resumes without a call"
    );
}

/// Runs CHAIN, replaces `from` with `to` in it, and resumes the run.
fn resume_after_edit(from: &str, to: &str) -> (FakeAgentAi, support::Outcome) {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.run(CHAIN, &fake, &[]).expect_code(0);
    assert!(CHAIN.contains(from), "the edit changes something");
    sandbox.write("workflow.yaml", &CHAIN.replace(from, to));
    let outcome = resume(&sandbox, &fake, "latest");
    (fake, outcome)
}

#[test]
fn a_changed_workflow_reruns_the_changed_steps_and_their_dependents() {
    let (fake, outcome) = resume_after_edit("\"{{steps.a.output}}\"", "\"{{steps.a.output}}!\"");
    outcome.expect_code(0);
    assert!(
        outcome
            .stderr
            .contains("`b` changed; these run again: `b`, `c`"),
        "{}",
        outcome.stderr
    );
    assert_eq!(fake.calls_to("a").len(), 1);
    assert_eq!(fake.calls_to("d").len(), 1);
    assert_eq!(fake.calls_to("b").len(), 2);
    assert_eq!(fake.calls_to("b")[1].input, "a(start)!");
    assert_eq!(fake.calls_to("c").len(), 2);
}

#[test]
fn a_step_whose_agent_changed_runs_again_with_what_reads_it() {
    let (fake, outcome) = resume_after_edit("a: { agent: a,", "a: { agent: a2,");
    outcome.expect_code(0);
    assert!(
        outcome
            .stderr
            .contains("`a` changed; these run again: `a`, `b`, `c`"),
        "{}",
        outcome.stderr
    );
    assert_eq!(fake.calls_to("a2").len(), 1);
    assert_eq!(fake.calls_to("b").len(), 2);
    assert_eq!(fake.calls_to("d").len(), 1, "d does not depend on a");
    assert_eq!(
        outcome.json("outputs.json")["outputs"]["end"],
        "c(b(a2(start)))"
    );
}

#[test]
fn changed_inputs_rerun_the_steps_that_read_them() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let workflow = "name: inp\ninputs:\n  who: { default: x }\nsteps:\n  a: { agent: a, input: '{{inputs.who}}' }\n  b: { agent: b, input: 'fixed' }\n";
    sandbox.run(workflow, &fake, &[]).expect_code(0);
    resume_with(&sandbox, &fake, &["--input", "who=y"]).expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 2);
    assert_eq!(fake.calls_to("a")[1].input, "y");
    assert_eq!(fake.calls_to("b").len(), 1);
}

//   a ──▶ g      (g only waits for a; its input is fixed)
//   z            (fails until fixed; with --fail-fast the run stops there)
const NEEDS_ONLY: &str = r#"
name: lineage
concurrency: 1
steps:
  a: { agent: a, input: "one" }
  z: { agent: z, input: "zed", retry: { attempts: 1 } }
  g: { agent: g, input: "go", needs: [a] }
"#;

#[test]
fn a_dependent_reruns_after_its_upstream_changed_even_if_a_resume_was_cut_short() {
    let fixed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&fixed);
    let fake = FakeAgentAi::start(move |call| {
        if call.agent == "z" && !flag.load(Ordering::SeqCst) {
            return Answer::error(500, "z is down");
        }
        Answer::ok(format!("{}({})", call.agent, call.input))
    });
    let sandbox = Sandbox::new();
    sandbox.run(NEEDS_ONLY, &fake, &[]).expect_code(1);
    assert_eq!(fake.calls_to("g").len(), 1);

    // The edit changes `a`; the resume re-runs it, then stops at `z` before
    // `g`, which still holds its result from the first run.
    sandbox.write("workflow.yaml", &NEEDS_ONLY.replace("\"one\"", "\"two\""));
    let cut = resume_with(&sandbox, &fake, &["--fail-fast"]);
    cut.expect_code(1);
    assert_eq!(fake.calls_to("a").len(), 2);
    assert_eq!(
        fake.calls_to("g").len(),
        1,
        "g did not start: {}",
        cut.stderr
    );

    fixed.store(true, Ordering::SeqCst);
    let done = resume_with(&sandbox, &fake, &[]);
    done.expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 2, "a's new result is reused");
    assert_eq!(
        fake.calls_to("g").len(),
        2,
        "g ran after the old a, so it runs again: {}",
        done.stderr
    );
    assert_eq!(done.json("run.json")["steps"]["a"]["reused"], true);
    assert_eq!(done.json("run.json")["steps"]["g"].get("reused"), None);

    resume_with(&sandbox, &fake, &[]).expect_code(0);
    assert_eq!(
        fake.calls().len(),
        2 + 3 + 2,
        "a finished run calls nothing"
    );
}

fn resume_with(sandbox: &Sandbox, fake: &FakeAgentAi, args: &[&str]) -> support::Outcome {
    let args: Vec<&str> = ["--resume", "latest"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    sandbox.rerun(fake, &args)
}

#[test]
fn a_resumed_run_keeps_given_inputs_and_takes_defaults_from_the_file() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let workflow = "name: defaults\ninputs:\n  who: { default: alice }\n  tone: {}\nsteps:\n  \
        a: { agent: a, input: '{{inputs.who}} {{inputs.tone}}' }\n";
    sandbox
        .run(workflow, &fake, &["--input", "tone=dry"])
        .expect_code(0);
    sandbox.write("workflow.yaml", &workflow.replace("alice", "bob"));
    resume_with(&sandbox, &fake, &[]).expect_code(0);
    let inputs: Vec<String> = fake.calls_to("a").into_iter().map(|c| c.input).collect();
    assert_eq!(inputs, ["alice dry", "bob dry"]);
}

#[test]
fn a_result_file_lost_after_the_journal_line_is_reported_and_run_again() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let first = sandbox.run(CHAIN, &fake, &[]);
    first.expect_code(0);
    std::fs::remove_file(first.run_dir().join("steps/d.json")).unwrap();
    let torn = first.run_dir().join("steps/a.json");
    let text = std::fs::read_to_string(&torn).unwrap();
    std::fs::write(&torn, &text[..text.len() / 2]).unwrap();

    let second = resume(&sandbox, &fake, "latest");
    second.expect_code(0);
    assert!(
        second
            .stderr
            .contains("the journal records `a`, `d` as finished, but the result file"),
        "{}",
        second.stderr
    );
    assert_eq!(fake.calls_to("a").len(), 2);
    assert_eq!(fake.calls_to("d").len(), 2);
    assert_eq!(
        second.step("a")["output"],
        "a(start)",
        "a's file is whole again"
    );
}

#[test]
fn outputs_that_cannot_be_written_fail_the_run() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let first = sandbox.run(CHAIN, &fake, &[]);
    first.expect_code(0);
    let outputs = first.run_dir().join("outputs.json");
    std::fs::remove_file(&outputs).unwrap();
    std::fs::create_dir(&outputs).unwrap();
    std::fs::write(outputs.join("in-the-way"), b"").unwrap();
    let second = resume(&sandbox, &fake, "latest");
    second.expect_code(1);
    assert!(second.stderr.contains("outputs.json"), "{}", second.stderr);
    let run = second.json("run.json");
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().contains("outputs.json"),
        "{run}"
    );
}

#[test]
fn resume_names_only_run_directories() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.run(CHAIN, &fake, &[]).expect_code(0);
    for which in ["..", ".", "", "../chain", "steps"] {
        let outcome = resume(&sandbox, &fake, which);
        outcome.expect_code(2);
        assert!(
            outcome.stderr.contains("no run to resume"),
            "{which}: {}",
            outcome.stderr
        );
    }
    assert!(!sandbox.path().join("out/run.json").exists());
    assert!(!sandbox.path().join("out/chain/run.json").exists());
    assert_eq!(fake.calls().len(), 4);
}

#[test]
fn resume_does_not_follow_a_symlinked_output_directory() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.run(CHAIN, &fake, &[]).expect_code(0);
    std::os::unix::fs::symlink(sandbox.path().join("out"), sandbox.path().join("link")).unwrap();
    for out in ["link", "link/"] {
        let url = fake.base_url.as_str();
        let cmd = sandbox.run_command(&["--out", out, "--base-url", url, "--resume", "latest"]);
        let outcome = sandbox.finish(cmd);
        outcome.expect_code(2);
        assert!(
            outcome.stderr.contains("symbolic link"),
            "{}",
            outcome.stderr
        );
    }
    assert_eq!(fake.calls().len(), 4);
}

#[test]
fn a_second_process_cannot_write_the_same_run() {
    let fake = FakeAgentAi::start(|_| Answer::ok("x").after(Duration::from_secs(3)));
    let sandbox = Sandbox::new();
    sandbox.write(
        "workflow.yaml",
        "name: lock\nsteps:\n  a: { agent: slow }\n",
    );
    let mut first = sandbox.baton();
    first
        .args([
            "run",
            "workflow.yaml",
            "--out",
            "out",
            "--base-url",
            &fake.base_url,
        ])
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    while fake.calls().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let second = resume(&sandbox, &fake, "latest");
    second.expect_code(2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert!(
        second.stderr.contains("in use by another baton process"),
        "{}",
        second.stderr
    );
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(fake.calls().len(), 1);
}

#[test]
fn resume_removes_half_written_temp_files() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let first = sandbox.run(CHAIN, &fake, &[]);
    let leftover = first.run_dir().join("steps/.tmp-b.json.1234abcd");
    std::fs::write(&leftover, "{\"step\": \"b\", \"stat").unwrap();
    resume(&sandbox, &fake, "latest").expect_code(0);
    assert!(!leftover.exists());
}

#[test]
fn resume_of_a_missing_run_is_a_usage_error() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    sandbox.write("workflow.yaml", CHAIN);
    let outcome = resume(&sandbox, &fake, "latest");
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("no run to resume"),
        "{}",
        outcome.stderr
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn the_cache_answers_repeated_calls_across_runs() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let workflow = "name: cached\nsteps:\n  a: { agent: a, input: 'q', cache: true }\n  b: { agent: b, input: '{{steps.a.output}}' }\n";
    sandbox.run(workflow, &fake, &[]).expect_code(0);
    let second = sandbox.run(workflow, &fake, &[]);
    second.expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 1, "a came from the cache");
    assert_eq!(fake.calls_to("b").len(), 2, "b does not use the cache");
    let dirs: Vec<_> = std::fs::read_dir(second.out_dir.join("cached"))
        .unwrap()
        .collect();
    assert_eq!(dirs.len(), 2, "two runs");

    let third = sandbox.run(workflow, &fake, &["--cache"]);
    third.expect_code(0);
    let fourth = sandbox.run(workflow, &fake, &["--cache"]);
    fourth.expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 1);
    assert_eq!(
        fake.calls_to("b").len(),
        3,
        "--cache caches b from the third run on"
    );

    sandbox.run(workflow, &fake, &["--no-cache"]).expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 2, "--no-cache calls again");

    let mut stats = sandbox.baton();
    stats.args(["cache", "stats", "--out", "out"]);
    let stats = sandbox.finish(stats);
    stats.expect_code(0);
    assert!(stats.stdout.contains("entries: 2"), "{}", stats.stdout);
    let mut prune = sandbox.baton();
    prune.args(["cache", "prune", "--older-than", "0s", "--out", "out"]);
    std::thread::sleep(Duration::from_millis(1100));
    let pruned = sandbox.finish(prune);
    assert!(
        pruned.stdout.contains("removed 2 entries"),
        "{}",
        pruned.stdout
    );
}

#[test]
fn a_cache_hit_is_recorded_and_expires_with_its_time_to_live() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let workflow = "name: ttl\nsteps:\n  a: { agent: a, input: 'q', cache: 1s }\n";
    sandbox.run(workflow, &fake, &[]).expect_code(0);
    std::fs::remove_dir_all(sandbox.path().join("out/ttl")).unwrap();
    let hit = sandbox.run(workflow, &fake, &[]);
    hit.expect_code(0);
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(hit.step("a")["cached"], true);
    assert_eq!(hit.step("a")["output"], "a(q)");
    assert_eq!(hit.json("run.json")["steps"]["a"]["cached"], true);
    std::thread::sleep(Duration::from_millis(2100));
    sandbox.run(workflow, &fake, &[]);
    assert_eq!(fake.calls().len(), 2, "the entry expired");
}

#[test]
fn an_output_path_that_is_a_symlink_is_not_followed() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(sandbox.path().join("elsewhere"), sandbox.path().join("out"))
        .unwrap();
    let outcome = sandbox.run(CHAIN, &fake, &[]);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("is a symbolic link"),
        "{}",
        outcome.stderr
    );
    assert!(fake.calls().is_empty());
    assert_eq!(
        std::fs::read_dir(sandbox.path().join("elsewhere"))
            .unwrap()
            .count(),
        0
    );
}

/// Mounts a tmpfs of `size` at `dir`; false where the machine forbids it.
fn mount_tmpfs(dir: &std::path::Path, options: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status();
    status.is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_output_directory_is_caught_before_any_call() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    if !mount_tmpfs(&out, "ro,size=1m") {
        eprintln!("skipped: this machine does not allow mounting a read-only tmpfs");
        return;
    }
    let _guard = Unmount(out);
    let outcome = sandbox.run(CHAIN, &fake, &[]);
    outcome.expect_code(2);
    assert!(
        outcome.stderr.contains("cannot create run directory"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("Read-only file system"),
        "{}",
        outcome.stderr
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn a_full_disk_is_reported_with_the_path_and_loses_nothing_earlier() {
    let big = "x".repeat(60_000);
    let fake = FakeAgentAi::start(move |call| match call.agent.as_str() {
        "big" => Answer::ok(big.clone()),
        _ => Answer::ok("small"),
    });
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    if !mount_tmpfs(&out, "size=200k") {
        eprintln!("skipped: this machine does not allow mounting a tmpfs");
        return;
    }
    let _guard = Unmount(out);
    let steps: String = (0..8)
        .map(|i| format!("  s{i}: {{ agent: big, input: '{i}', needs: [first] }}\n"))
        .collect();
    let workflow =
        format!("name: full\nconcurrency: 1\nsteps:\n  first: {{ agent: small }}\n{steps}");
    let outcome = sandbox.run(&workflow, &fake, &[]);
    outcome.expect_code(1);
    assert!(
        outcome.stderr.contains("cannot write"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("No space left on device"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("out/full/"),
        "the path is named: {}",
        outcome.stderr
    );
    let first = outcome.step("first");
    assert_eq!(first["output"], "small", "the earlier result is intact");
    assert!(
        fake.calls_to("big").len() < 8,
        "the run stops calling once results cannot be kept: {}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("its result could not be saved"),
        "{}",
        outcome.stderr
    );
    for entry in std::fs::read_dir(outcome.run_dir().join("steps")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "torn {}",
            path.display()
        );
    }
}

#[test]
fn the_cache_is_shared_by_workflows_under_one_output_directory() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let first = "name: one\nsteps:\n  x: { agent: a, input: 'same', cache: true }\n";
    let second = "name: two\nsteps:\n  y: { agent: a, input: 'same', cache: true }\n  \
        z: { run: cat, input: 'same', cache: true }\n";
    sandbox.run(first, &fake, &[]).expect_code(0);
    let outcome = sandbox.run(second, &fake, &[]);
    outcome.expect_code(0);
    assert_eq!(fake.calls_to("a").len(), 1, "two's `y` took one's entry");
    let run = sandbox.only_run("out/two");
    let step = |id: &str| -> serde_json::Value {
        let text = std::fs::read(run.join(format!("steps/{id}.json"))).unwrap();
        serde_json::from_slice(&text).unwrap()
    };
    assert_eq!(step("y")["cached"], true);
    assert_eq!(step("y")["output"], "a(same)");
    // The same input to a command is another key than to an agent.
    assert_eq!(step("z").get("cached"), None);
    assert_eq!(step("z")["output"], "same");
}

#[test]
fn a_cache_dir_of_its_own_serves_runs_under_any_output_directory() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let workflow = "name: cd\nsteps:\n  x: { agent: a, input: 'q', cache: true }\n";
    sandbox.write("workflow.yaml", workflow);
    for out in ["first", "second"] {
        let url = fake.base_url.as_str();
        let cmd = sandbox.run_command(&["--out", out, "--cache-dir", "shared", "--base-url", url]);
        sandbox.finish(cmd).expect_code(0);
    }
    assert_eq!(
        fake.calls_to("a").len(),
        1,
        "the second run hit the shared cache"
    );
    assert!(!sandbox.path().join("first/.cache").exists());
    let mut stats = sandbox.baton();
    stats.args(["cache", "stats", "--cache-dir", "shared"]);
    let stats = sandbox.finish(stats);
    stats.expect_code(0);
    assert!(stats.stdout.contains("entries: 1"), "{}", stats.stdout);
}

#[test]
fn concurrent_runs_share_the_cache_without_torn_entries() {
    let fake = FakeAgentAi::start(|call| Answer::ok(call.input.repeat(2000)));
    let sandbox = Sandbox::new();
    let steps: String = (0..40)
        .map(|i| {
            format!(
                "  s{i}: {{ agent: a, input: 'k{}', cache: true }}\n",
                i % 10
            )
        })
        .collect();
    sandbox.write("workflow.yaml", &format!("name: race\nsteps:\n{steps}"));
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = sandbox.baton();
            cmd.args(["run", "workflow.yaml", "--out", "out", "-q"]);
            cmd.args(["--base-url", &fake.base_url]);
            cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // Every run finished; whatever raced, each entry is whole and right.
    let mut stats = sandbox.baton();
    stats.args(["cache", "stats", "--out", "out"]);
    let stats = sandbox.finish(stats);
    assert!(stats.stdout.contains("entries: 10"), "{}", stats.stdout);
    for shard in std::fs::read_dir(sandbox.path().join("out/.cache")).unwrap() {
        for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp-"), "left behind: {name}");
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let output = value["reply"]["output"].as_str().unwrap();
            let key = output.get(..2).unwrap();
            assert_eq!(output, key.repeat(2000), "{name}");
        }
    }
    let calls = fake.calls().len();
    sandbox.rerun(&fake, &["-q"]).expect_code(0);
    assert_eq!(
        fake.calls().len(),
        calls,
        "a fifth run takes everything from the cache"
    );
}

#[test]
fn prune_refuses_an_age_it_cannot_read() {
    let sandbox = Sandbox::new();
    for age in ["", "30", "soon", "-1d"] {
        let mut prune = sandbox.baton();
        prune.args(["cache", "prune", "--older-than", age, "--out", "out"]);
        let outcome = sandbox.finish(prune);
        outcome.expect_code(2);
        assert!(
            outcome.stderr.contains("--older-than"),
            "{age:?}: {}",
            outcome.stderr
        );
    }
}

#[test]
fn prune_reports_what_it_cannot_remove() {
    let fake = FakeAgentAi::echo();
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    if !mount_tmpfs(&out, "size=1m") {
        eprintln!("skipped: this machine does not allow mounting a tmpfs");
        return;
    }
    let _guard = Unmount(out.clone());
    let workflow = "name: pr\nsteps:\n  a: { agent: a, input: 'q', cache: true }\n";
    sandbox.run(workflow, &fake, &[]).expect_code(0);
    let remounted = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(remounted.success());
    std::thread::sleep(Duration::from_millis(1100));
    let mut prune = sandbox.baton();
    prune.args(["cache", "prune", "--older-than", "0s", "--out", "out"]);
    let pruned = sandbox.finish(prune);
    pruned.expect_code(1);
    assert!(
        pruned.stderr.contains("cannot remove `out/.cache/"),
        "{}",
        pruned.stderr
    );
    assert!(
        pruned.stderr.contains("Read-only file system"),
        "{}",
        pruned.stderr
    );
}

/// Step ids of the run in `out` whose own file says they succeeded.
fn finished_steps(out: &std::path::Path) -> std::collections::HashSet<String> {
    let mut done = std::collections::HashSet::new();
    let Ok(workflows) = std::fs::read_dir(out.join("kill")) else {
        return done;
    };
    for run in workflows {
        let Ok(steps) = std::fs::read_dir(run.unwrap().path().join("steps")) else {
            continue;
        };
        for step in steps {
            let step = step.unwrap();
            // A temporary file is not a result until it is renamed.
            if step.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let text = std::fs::read_to_string(step.path()).unwrap_or_default();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if value["status"] == "succeeded" {
                done.insert(value["step"].as_str().unwrap().to_owned());
            }
        }
    }
    done
}

//   l0_0 … l0_7        8 independent steps
//   l1_i reads l0_i    then two more layers the same way
#[test]
fn killed_at_random_moments_and_resumed_it_never_pays_twice() {
    let mut workflow = String::from("name: kill\nconcurrency: 4\nsteps:\n");
    for layer in 0..3 {
        for i in 0..8 {
            let input = match layer {
                0 => format!("seed{i}"),
                _ => format!("{{{{steps.l{}_{i}.output}}}}", layer - 1),
            };
            workflow.push_str(&format!(
                "  l{layer}_{i}: {{ agent: l{layer}_{i}, input: '{input}' }}\n"
            ));
        }
    }
    workflow.push_str("outputs:\n");
    for i in 0..8 {
        workflow.push_str(&format!("  o{i}: '{{{{steps.l2_{i}.output}}}}'\n"));
    }
    let answer = |call: &support::Call| {
        Answer::ok(format!("{}({})", call.agent, call.input)).after(Duration::from_millis(80))
    };

    let reference = Sandbox::new().run(&workflow, &FakeAgentAi::start(answer), &[]);
    reference.expect_code(0);

    let fake = FakeAgentAi::start(answer);
    let sandbox = Sandbox::new();
    sandbox.write("workflow.yaml", &workflow);
    let out = sandbox.path().join("out");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut kills = Vec::new();
    let mut finished = false;
    for _ in 0..60 {
        let mut cmd = sandbox.baton();
        cmd.args([
            "run",
            "workflow.yaml",
            "--out",
            "out",
            "--base-url",
            &fake.base_url,
            "-q",
        ]);
        let has_run = std::fs::read_dir(out.join("kill")).is_ok_and(|mut d| d.next().is_some());
        if has_run {
            cmd.args(["--resume", "latest"]);
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(10..200)));
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            finished = true;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills.push((std::time::Instant::now(), finished_steps(&out)));
    }
    assert!(finished, "the run completed within 60 tries");
    assert!(
        kills.len() >= 3,
        "the run was killed along the way ({} kills)",
        kills.len()
    );

    for (killed_at, done) in &kills {
        for call in fake.calls().iter().filter(|c| c.at > *killed_at) {
            assert!(
                !done.contains(&call.agent),
                "`{}` was finished yet called again",
                call.agent
            );
        }
    }
    let dirs: Vec<_> = std::fs::read_dir(out.join("kill")).unwrap().collect();
    assert_eq!(dirs.len(), 1, "every attempt resumed the same run");
    let outcome_dir = dirs.into_iter().next().unwrap().unwrap().path();
    let outputs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outcome_dir.join("outputs.json")).unwrap()).unwrap();
    assert_eq!(outputs, reference.json("outputs.json"));
}
