//! Shared helpers for the integration tests: a fake agent.ai server and a
//! small builder that runs the real `baton` binary against it.

#![allow(dead_code, unused_imports)]

pub mod fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

pub use fake::{Answer, Call, FakeAgentAi};

/// The key tests send; it must never show up in results or logs.
pub const KEY: &str = "sk-test-7f3c9a1e-never-log-me";

/// A workflow in a temporary directory, ready to run or validate.
pub struct Sandbox {
    dir: Rc<tempfile::TempDir>,
}

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub out_dir: PathBuf,
    /// Keeps the sandbox alive while the outcome is read.
    _dir: Rc<tempfile::TempDir>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: Rc::new(tempfile::tempdir().expect("temp dir")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` as `name` in the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `baton` command running in the sandbox, with the test key set and
    /// no agent.ai address from the environment.
    pub fn baton(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.current_dir(self.path())
            .env("AGENTAI_API_KEY", KEY)
            .env_remove("AGENTAI_BASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `baton run workflow.yaml` against `fake` with extra `args`.
    pub fn run(&self, workflow: &str, fake: &FakeAgentAi, args: &[&str]) -> Outcome {
        self.run_at(workflow, &fake.base_url, args)
    }

    /// Runs `baton run workflow.yaml` against whatever answers at
    /// `base_url`, with extra `args`.
    pub fn run_at(&self, workflow: &str, base_url: &str, args: &[&str]) -> Outcome {
        self.write("workflow.yaml", workflow);
        self.rerun_at(base_url, args)
    }

    /// Runs `baton run workflow.yaml` again, on the workflow already in
    /// the sandbox, against `fake` with extra `args` (`--resume`, say).
    pub fn rerun(&self, fake: &FakeAgentAi, args: &[&str]) -> Outcome {
        self.rerun_at(&fake.base_url, args)
    }

    fn rerun_at(&self, base_url: &str, args: &[&str]) -> Outcome {
        let mut cmd = self.run_command(&["--out", "out", "--base-url", base_url]);
        cmd.args(args);
        self.finish(cmd)
    }

    /// `baton run workflow.yaml` with `args` after it, not yet started.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.baton();
        cmd.args(["run", "workflow.yaml"]).args(args);
        cmd
    }

    /// The only run directory under `dir`, a workflow's folder relative to
    /// the sandbox (`out/NAME`).
    pub fn only_run(&self, dir: &str) -> PathBuf {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.path().join(dir))
            .expect("the workflow's folder exists")
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "expected one run directory: {runs:?}");
        runs.pop().unwrap()
    }

    /// Runs a prepared command to its end, with a generous time limit.
    pub fn finish(&self, mut cmd: Command) -> Outcome {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        let output = wait_with_limit(child, Duration::from_secs(120));
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            out_dir: self.path().join("out"),
            _dir: Rc::clone(&self.dir),
        }
    }
}

fn wait_with_limit(child: std::process::Child, limit: Duration) -> std::process::Output {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
        }
    });
    let output = child.wait_with_output().expect("wait for baton");
    let _ = tx.send(());
    output
}

impl Outcome {
    /// The only run directory under the output directory.
    pub fn run_dir(&self) -> PathBuf {
        let mut dirs = Vec::new();
        for workflow in std::fs::read_dir(&self.out_dir).expect("out dir exists") {
            let workflow = workflow.unwrap();
            if workflow.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            for run in std::fs::read_dir(workflow.path()).unwrap() {
                dirs.push(run.unwrap().path());
            }
        }
        assert_eq!(dirs.len(), 1, "expected one run directory: {dirs:?}");
        dirs.pop().unwrap()
    }

    pub fn json(&self, relative: &str) -> Value {
        let path = self.run_dir().join(relative);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
    }

    pub fn step(&self, id: &str) -> Value {
        self.json(&format!("steps/{id}.json"))
    }

    pub fn status_of(&self, id: &str) -> String {
        self.json("run.json")["steps"][id]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Fails the test with everything the run printed.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}
