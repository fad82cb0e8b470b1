//! Local commands as steps: the rendered input goes to standard input, the
//! output is what the command prints. No shell is involved unless the
//! workflow names one.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{shorten, CallError, Reply};
use crate::agent::agentai::KEY_VAR;

/// How much of a failed command's standard error is shown.
const STDERR_TAIL: usize = 1000;

/// Names the run and step to the command through its environment.
#[derive(Debug, Clone)]
pub struct CommandEnv<'a> {
    pub run_id: &'a str,
    pub workflow: &'a str,
    pub step: &'a str,
}

/// Runs `args` once with `input` on standard input, within `timeout`.
pub async fn run(
    args: &[String],
    input: &str,
    timeout: Duration,
    env: &CommandEnv<'_>,
) -> Result<Reply, CallError> {
    let (program, rest) = args
        .split_first()
        .expect("`run` was checked to be non-empty");
    let mut child = Command::new(program)
        .args(rest)
        .env_remove(KEY_VAR)
        .env("BATON_RUN_ID", env.run_id)
        .env("BATON_WORKFLOW", env.workflow)
        .env("BATON_STEP", env.step)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::permanent(format!("cannot start `{program}`: {e}")))?;

    let mut stdin = child.stdin.take().expect("stdin was piped");
    let input = input.to_owned();
    // A command may exit without reading its input; a broken pipe then is
    // not the step's failure, its exit status is.
    let feeder = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let finished = tokio::time::timeout(timeout, child.wait_with_output()).await;
    feeder.abort();
    let output = match finished {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(CallError::transient(format!("`{program}` failed: {e}"))),
        Err(_) => {
            return Err(CallError::transient(format!(
                "`{program}` did not finish within {}",
                humantime::format_duration(timeout)
            )))
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = tail(&stderr, STDERR_TAIL);
        let status = match output.status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        };
        let message = if tail.is_empty() {
            format!("`{program}` {status}")
        } else {
            format!("`{program}` {status}: {tail}")
        };
        return Err(CallError::transient(message));
    }
    let stdout = String::from_utf8(output.stdout).map_err(|_| {
        CallError::permanent(format!("`{program}` printed output that is not UTF-8"))
    })?;
    Ok(Reply::from_stdout(stdout))
}

/// The last `max` characters of `text`, trimmed.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let skip = count - max;
    let cut = text.char_indices().nth(skip).map(|(i, _)| i).unwrap_or(0);
    format!("…{}", shorten(&text[cut..], max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CommandEnv<'static> {
        CommandEnv {
            run_id: "r",
            workflow: "w",
            step: "s",
        }
    }

    #[tokio::test]
    async fn feeds_stdin_and_reads_stdout() {
        let args = vec!["tr".to_owned(), "a-z".to_owned(), "A-Z".to_owned()];
        let reply = run(&args, "shout\n", Duration::from_secs(5), &env())
            .await
            .unwrap();
        assert_eq!(reply.output, "SHOUT");
    }

    #[tokio::test]
    async fn failure_shows_end_of_stderr() {
        let args = ["sh", "-c", "echo first >&2; echo last words >&2; exit 3"].map(String::from);
        let err = run(&args, "", Duration::from_secs(5), &env())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("status 3") && text.ends_with("last words"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_command() {
        let args = ["sleep", "5"].map(String::from);
        let err = run(&args, "", Duration::from_millis(100), &env())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
    }

    #[tokio::test]
    async fn missing_program_is_permanent() {
        let args = ["no-such-program-baton".to_owned()];
        let err = run(&args, "", Duration::from_secs(5), &env())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Permanent { .. }), "{err:?}");
    }
}
