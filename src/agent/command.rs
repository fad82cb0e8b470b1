//! Local commands as steps: the rendered input goes to standard input, the
//! output is what the command prints. No shell is involved unless the
//! workflow names one.
//!
//! Each command leads a process group of its own. A timeout, or a step
//! dropped because the run was cancelled, kills the whole group, so what a
//! shell started in the background does not outlive the step.
//!
//! Limitation: being outside the terminal's foreground group, a command
//! that reads from `/dev/tty` (a password prompt) stops until its timeout.

use std::io;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

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
    let child = Command::new(program)
        .args(rest)
        .env_remove(KEY_VAR)
        .env("BATON_RUN_ID", env.run_id)
        .env("BATON_WORKFLOW", env.workflow)
        .env("BATON_STEP", env.step)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::permanent(format!("cannot start `{program}`: {e}")))?;
    let mut group = Group::new(child);

    let mut stdin = group.child.stdin.take().expect("stdin was piped");
    let input = input.to_owned();
    // A command may exit without reading its input; a broken pipe then is
    // not the step's failure, its exit status is.
    let feeder = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let finished = tokio::time::timeout(timeout, group.finish()).await;
    feeder.abort();
    // On a timeout, dropping `group` on the way out kills it.
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
        // The command ran and may have done part of its work; running it
        // again is for the workflow to ask, not for baton to guess.
        return Err(CallError::permanent(message));
    }
    let stdout = String::from_utf8(output.stdout).map_err(|_| {
        CallError::permanent(format!("`{program}` printed output that is not UTF-8"))
    })?;
    Ok(Reply::from_stdout(stdout))
}

/// A started command and the process group it leads. Until the command has
/// been waited for, dropping this kills the whole group.
struct Group {
    child: Child,
    /// The group's id, the command's own pid.
    pgid: Option<i32>,
    /// Whether the command was waited for, which frees its pid.
    reaped: bool,
}

/// The groups of commands still running, for [`kill_all`].
static LIVE: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Kills every command still running and all it started: for a process
/// about to exit without dropping its steps (a second Ctrl-C).
pub fn kill_all() {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for &pgid in live.iter() {
        // SAFETY: as in `Group::drop`; a listed group's leader is unreaped.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

impl Group {
    fn new(child: Child) -> Group {
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        if let Some(pgid) = pgid {
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pgid);
        }
        Group {
            child,
            pgid,
            reaped: false,
        }
    }

    /// Reads the command's output to its end, then waits for it.
    async fn finish(&mut self) -> io::Result<Output> {
        let stdout = self.child.stdout.take().expect("stdout was piped");
        let stderr = self.child.stderr.take().expect("stderr was piped");
        // Output first: while the pipes are open something of the group may
        // still run, and an unreaped leader keeps the group's id from being
        // given to another process, so killing it stays safe.
        let (stdout, stderr) = tokio::try_join!(read_all(stdout), read_all(stderr))?;
        let status = self.child.wait().await?;
        self.reaped = true;
        self.forget();
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Group {
    /// Takes the group off the list of live ones, before its leader's pid
    /// can be given to another process.
    fn forget(&self) {
        if let Some(pgid) = self.pgid {
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&id| id != pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.forget();
        let Some(pgid) = self.pgid.filter(|&id| id > 1) else {
            return;
        };
        if !self.reaped {
            // SAFETY: kill(2) touches no memory of ours; a negative id
            // names the command's own group, whose leader is not reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).await?;
    Ok(bytes)
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

    /// `kill_all` reaches every command of the process: while its test
    /// runs, no other test of this module runs one.
    static COMMANDS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

    fn env() -> CommandEnv<'static> {
        CommandEnv {
            run_id: "r",
            workflow: "w",
            step: "s",
        }
    }

    #[tokio::test]
    async fn feeds_stdin_and_reads_stdout() {
        let _shared = COMMANDS.read().await;
        let args = vec!["tr".to_owned(), "a-z".to_owned(), "A-Z".to_owned()];
        let reply = run(&args, "shout\n", Duration::from_secs(5), &env())
            .await
            .unwrap();
        assert_eq!(reply.output, "SHOUT");
    }

    #[tokio::test]
    async fn failure_shows_end_of_stderr() {
        let _shared = COMMANDS.read().await;
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
    async fn failure_is_not_worth_another_try() {
        let _shared = COMMANDS.read().await;
        let args = ["sh", "-c", "exit 1"].map(String::from);
        let err = run(&args, "", Duration::from_secs(5), &env())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Permanent { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn timeout_kills_the_command() {
        let _shared = COMMANDS.read().await;
        let args = ["sleep", "5"].map(String::from);
        let err = run(&args, "", Duration::from_millis(100), &env())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    }

    /// A shell that starts `sleep` in the background, writes its pid to a
    /// file in `dir` and waits for it.
    fn background_sleep(dir: &std::path::Path) -> (Vec<String>, std::path::PathBuf) {
        let file = dir.join("pid");
        let script = format!("sleep 30 & echo $! > '{}'; wait", file.display());
        (vec!["sh".into(), "-c".into(), script], file)
    }

    async fn pid_in(file: &std::path::Path) -> u32 {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(file) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no pid in {}", file.display());
    }

    /// Whether `pid` ended within a second; a zombie has ended.
    async fn ends(pid: u32) -> bool {
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit_once(") ")
                        .is_some_and(|(_, s)| s.starts_with('Z')) =>
                {
                    return true
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        false
    }

    #[tokio::test]
    async fn timeout_kills_what_the_command_started() {
        let _shared = COMMANDS.read().await;
        let dir = tempfile::tempdir().unwrap();
        let (args, file) = background_sleep(dir.path());
        let err = run(&args, "", Duration::from_millis(300), &env())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        let pid = pid_in(&file).await;
        assert!(ends(pid).await, "`sleep` ({pid}) outlived its step");
    }

    #[tokio::test]
    async fn dropping_the_step_kills_what_the_command_started() {
        let _shared = COMMANDS.read().await;
        let dir = tempfile::tempdir().unwrap();
        let (args, file) = background_sleep(dir.path());
        let env = env();
        let step = run(&args, "", Duration::from_secs(30), &env);
        let pid = tokio::select! {
            _ = step => panic!("the step should still be running"),
            pid = pid_in(&file) => pid,
        };
        assert!(ends(pid).await, "`sleep` ({pid}) outlived its step");
    }

    #[tokio::test]
    async fn kill_all_stops_running_commands_and_what_they_started() {
        let _alone = COMMANDS.write().await;
        let dir = tempfile::tempdir().unwrap();
        let (args, file) = background_sleep(dir.path());
        let env = env();
        let step = run(&args, "", Duration::from_secs(30), &env);
        tokio::pin!(step);
        let pid = tokio::select! {
            _ = &mut step => panic!("the step should still be running"),
            pid = pid_in(&file) => pid,
        };
        kill_all();
        // The step still holds its group, as a process about to exit would.
        assert!(ends(pid).await, "`sleep` ({pid}) outlived kill_all");
        let err = step.await.unwrap_err();
        assert!(err.to_string().contains("killed by a signal"), "{err}");
    }

    #[tokio::test]
    async fn missing_program_is_permanent() {
        let _shared = COMMANDS.read().await;
        let args = ["no-such-program-baton".to_owned()];
        let err = run(&args, "", Duration::from_secs(5), &env())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Permanent { .. }), "{err:?}");
    }
}
