//! What ships with baton works as documented: the README's set-up
//! commands and every workflow in `workflows/`.

mod support;

use std::path::Path;

use support::Sandbox;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The commands in the README's set-up code block.
fn setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = readme
        .split("## Set-up")
        .nth(1)
        .expect("README has a Set-up section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("set-up has a sh block");
    let block = block.split("```").next().unwrap();
    block
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn readme_set_up_is_two_commands_the_tests_follow() {
    let commands = setup_commands();
    assert_eq!(
        commands,
        [
            "cargo run --release -- run workflows/quickstart.yaml",
            "cargo test"
        ]
    );
    let ci = std::fs::read_to_string(repo(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run runs the README's test command"
    );
}

#[test]
fn the_quickstart_runs_as_the_readme_says() {
    // `cargo run --release --` is the binary; run it with the same arguments
    // from a copy of the repository's layout, with no key and no network.
    let args: Vec<String> = setup_commands()[0]
        .split_whitespace()
        .skip_while(|w| *w != "--")
        .skip(1)
        .map(str::to_owned)
        .collect();
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path().join("workflows")).unwrap();
    std::fs::copy(
        repo("workflows/quickstart.yaml"),
        sandbox.path().join("workflows/quickstart.yaml"),
    )
    .unwrap();
    let mut cmd = sandbox.baton();
    cmd.args(&args)
        .env_remove("AGENTAI_API_KEY")
        .env("AGENTAI_BASE_URL", "http://127.0.0.1:9/v1");
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(0);
    assert!(outcome.stdout.contains("words: 13"), "{}", outcome.stdout);
    let run_dirs: Vec<_> = std::fs::read_dir(sandbox.path().join("runs/quickstart"))
        .unwrap()
        .collect();
    assert_eq!(run_dirs.len(), 1);
    let run_dir = run_dirs.into_iter().next().unwrap().unwrap().path();
    for step in ["clean", "shout", "count", "vocabulary", "report"] {
        assert!(
            run_dir.join(format!("steps/{step}.json")).is_file(),
            "{step}"
        );
    }
    assert!(outcome
        .stderr
        .contains(&run_dir.file_name().unwrap().to_string_lossy().to_string()));
}

#[test]
fn every_shipped_workflow_validates() {
    let mut files: Vec<_> = std::fs::read_dir(repo("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.baton();
    cmd.arg("validate").args(&files);
    let outcome = sandbox.finish(cmd);
    outcome.expect_code(0);
    assert_eq!(
        outcome.stderr.matches(": ok (").count(),
        files.len(),
        "{}",
        outcome.stderr
    );
}
