//! `baton run` against servers that misbehave at the socket: bodies that
//! trickle, stop short, reset or never end, replies that are not JSON,
//! redirects and odd `Retry-After` values. Each test checks what the user
//! is told, how many tries were made, and that the key stays hidden.

mod support;

#[path = "support/raw.rs"]
mod raw;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use raw::{Behaviour, RawServer};
use support::{Outcome, Sandbox, KEY};

#[test]
fn a_body_that_trickles_in_hits_the_attempt_timeout() {
    let server = RawServer::start(|_| Behaviour::Trickle {
        body: br#"{"status": 200, "response": "far too slow"}"#.to_vec(),
        every: Duration::from_millis(100),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, timeout: 500ms, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert_eq!(server.requests().len(), 2);
    assert_failed_with(&outcome, "agent.ai did not answer within 500ms");
    // The head came at once; only a timeout over the body ends it here.
    assert_every_attempt_timed_out(&outcome);
}

#[test]
fn a_server_that_never_answers_hits_the_attempt_timeout() {
    let server = RawServer::start(|_| Behaviour::Silence);
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, timeout: 500ms, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert_eq!(server.requests().len(), 2);
    assert_failed_with(&outcome, "agent.ai did not answer within 500ms");
    assert_eq!(attempts(&outcome).len(), 2);
    assert_every_attempt_timed_out(&outcome);
}

#[test]
fn a_connection_reset_mid_body_is_retried() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::Reset {
            claimed: 100,
            sent: br#"{"status": 200, "resp"#.to_vec(),
        },
        _ => Behaviour::ok("second time lucky"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, timeout: 5s, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(0);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.connections(), 2, "a reset connection is not reused");
    let a = outcome.step("a");
    assert_eq!(a["output"], "second time lucky");
    let attempts = attempts(&outcome);
    assert_eq!(attempts.len(), 2);
    let first = attempts[0]["error"].as_str().unwrap();
    assert!(first.contains("reading agent.ai's reply failed"), "{first}");
    assert!(attempts[1].get("error").is_none());
}

#[test]
fn a_body_cut_short_is_retried_then_fails() {
    let server = RawServer::start(|_| Behaviour::Truncate {
        claimed: 100,
        sent: br#"{"status":"#.to_vec(),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, timeout: 5s, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert_eq!(server.requests().len(), 2);
    assert_failed_with(&outcome, "reading agent.ai's reply failed");
    assert_eq!(attempts(&outcome).len(), 2);
}

#[test]
fn a_reply_that_is_not_json_is_retried_and_quoted() {
    let server = RawServer::start(|_| Behaviour::status(200, "this is not json {"));
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert_eq!(server.requests().len(), 2);
    assert_failed_with(
        &outcome,
        "agent.ai sent a reply that is not JSON: \"this is not json {\"",
    );
}

#[test]
fn an_html_error_page_is_reduced_to_its_words() {
    let page =
        "<html><head><title>502</title></head><body><h1>Bad Gateway</h1><p>nginx</p></body></html>";
    let server = RawServer::start(move |_| Behaviour::status(502, page));
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert_eq!(server.requests().len(), 2, "a 502 is retried");
    let error = step_error(&outcome);
    let (status, excerpt) = error.split_once(": ").expect("a status and an excerpt");
    assert_eq!(status, "agent.ai answered 502 Bad Gateway");
    assert!(
        excerpt.contains("Bad Gateway") && excerpt.contains("nginx"),
        "{excerpt}"
    );
    assert!(
        !excerpt.contains('<') && !excerpt.contains('>'),
        "{excerpt}"
    );
    assert!(outcome.stderr.contains(&error), "{}", outcome.stderr);
}

#[test]
fn an_endless_reply_stops_at_32_mib_and_memory_stays_flat() {
    let server = RawServer::start(|_| Behaviour::Endless);
    let sandbox = Sandbox::new();
    let memory = PeakMemory::watch(sandbox.path());
    let outcome = sandbox.run_at(
        "name: f\nsteps:\n  a: { agent: x, timeout: 60s, retry: { attempts: 3, backoff: 10ms } }\n",
        &server.base_url,
        &[],
    );
    let peak = memory.stop();
    outcome.expect_code(1);
    assert_key_hidden(&outcome);
    assert_failed_with(&outcome, "agent.ai's reply is larger than 32 MiB");
    assert_eq!(
        server.requests().len(),
        1,
        "an oversized reply is not retried"
    );
    assert_eq!(attempts(&outcome).len(), 1);
    assert!(
        server.bytes_sent() > 32 << 20,
        "sent {}",
        server.bytes_sent()
    );
    assert!(peak > 0, "the watcher never saw baton running");
    assert!(
        peak < 200 << 20,
        "baton's peak memory was {} MiB",
        peak >> 20
    );
}

#[test]
fn a_redirect_is_not_followed() {
    let elsewhere = RawServer::start(|_| Behaviour::ok("should never be asked"));
    let target = format!("{}/action/invoke_agent", elsewhere.base_url);
    let server = RawServer::start(move |_| Behaviour::status(307, "").header("Location", &target));
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 3, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(1);
    assert!(elsewhere.requests().is_empty(), "the key went elsewhere");
    assert_eq!(elsewhere.connections(), 0);
    assert_eq!(server.requests().len(), 1, "a redirect is not retried");
    assert_failed_with(&outcome, "redirects are not followed");
    assert!(step_error(&outcome).contains("307"));
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let server = RawServer::start(|request| match request.nth {
        0 => {
            let when = SystemTime::now() + Duration::from_secs(2);
            Behaviour::status(429, r#"{"error": "slow down"}"#)
                .header("Retry-After", &httpdate::fmt_http_date(when))
        }
        _ => Behaviour::ok("done"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms, max_wait: 30s } }\n",
        &server,
    );
    outcome.expect_code(0);
    // The date has one-second resolution, so the wait is between 1 and 2 s.
    let gap = server.gap(0, 1);
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "retried after {gap:?}"
    );
    let waited = attempts(&outcome)[1]["waited_ms"].as_u64().unwrap();
    assert!((900..=2000).contains(&waited), "waited {waited} ms");
}

#[test]
fn a_huge_retry_after_is_capped_by_max_wait() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::status(429, r#"{"error": "come back tomorrow"}"#)
            .header("Retry-After", "86400"),
        _ => Behaviour::ok("done"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms, max_wait: 1s } }\n",
        &server,
    );
    outcome.expect_code(0);
    let gap = server.gap(0, 1);
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(10),
        "retried after {gap:?}"
    );
    let attempts = attempts(&outcome);
    assert_eq!(attempts[1]["waited_ms"], 1000);
    let first = attempts[0]["error"].as_str().unwrap();
    assert!(
        first.contains("429") && first.contains("come back tomorrow"),
        "{first}"
    );
}

#[test]
fn a_garbage_retry_after_falls_back_to_backoff() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::status(429, r#"{"error": "slow down"}"#).header("Retry-After", "soon"),
        _ => Behaviour::ok("done"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 50ms, max_wait: 30s } }\n",
        &server,
    );
    outcome.expect_code(0);
    let gap = server.gap(0, 1);
    assert!(gap < Duration::from_secs(2), "retried after {gap:?}");
    // Backoff of 50 ms with jitter between half and one and a half times.
    let waited = attempts(&outcome)[1]["waited_ms"].as_u64().unwrap();
    assert!((25..=75).contains(&waited), "waited {waited} ms");
}

#[test]
fn status_500_inside_a_200_is_retried() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::status(200, r#"{"status": 500, "response": "x"}"#),
        _ => Behaviour::ok("recovered"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms } }\n",
        &server,
    );
    outcome.expect_code(0);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(outcome.step("a")["output"], "recovered");
    let attempts = attempts(&outcome);
    assert_eq!(attempts.len(), 2);
    let first = attempts[0]["error"].as_str().unwrap();
    assert!(first.contains("agent.ai answered 500"), "{first}");
}

#[test]
fn a_status_given_as_a_string_counts_like_a_number() {
    let server = RawServer::start(|request| match (request.agent.as_str(), request.nth) {
        ("flaky", 0) => Behaviour::status(200, r#"{"status": "500", "response": "x"}"#),
        ("missing", _) => Behaviour::status(200, r#"{"status": " 404 ", "response": "x"}"#),
        _ => Behaviour::ok("recovered"),
    });
    let outcome = Sandbox::new().run_at(
        "name: f\nconcurrency: 1\ndefaults: { retry: { attempts: 3, backoff: 10ms } }\n\
         steps:\n  flaky: { agent: flaky }\n  missing: { agent: missing }\n",
        &server.base_url,
        &[],
    );
    outcome.expect_code(1);
    assert_key_hidden(&outcome);
    let flaky = outcome.step("flaky");
    assert_eq!(flaky["output"], "recovered");
    let first = flaky["attempts"][0]["error"].as_str().unwrap();
    assert!(first.contains("agent.ai answered 500"), "{first}");
    assert_eq!(outcome.status_of("missing"), "failed");
    let missing = outcome.step("missing");
    assert_eq!(
        missing["attempts"].as_array().unwrap().len(),
        1,
        "404 is final"
    );
    let error = missing["error"].as_str().unwrap();
    assert!(error.contains("agent.ai answered 404 Not Found"), "{error}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_long_html_error_page_is_cut_and_keeps_no_code() {
    let page = format!(
        "<!DOCTYPE html><html><head><title>Service Unavailable</title>\
         <style>\nbody {{ font-family: sans-serif; color: #333; }}\n{}</style>\
         <script type=\"text/javascript\">\nfunction retry() {{ location.reload(); }}\n</script>\
         </head><body>\n<h1>We are down for maintenance</h1>\n<p>{}</p></body></html>",
        ".box { margin: 0 auto; }\n".repeat(300),
        "Please come back later. ".repeat(50)
    );
    let server = RawServer::start(move |_| Behaviour::status(503, page.clone()));
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 1 } }\n",
        &server,
    );
    outcome.expect_code(1);
    let error = step_error(&outcome);
    let excerpt = error
        .strip_prefix("agent.ai answered 503 Service Unavailable: ")
        .unwrap_or_else(|| panic!("{error}"));
    assert!(
        excerpt.starts_with("\"Service Unavailable We are down for maintenance Please"),
        "{excerpt}"
    );
    assert!(excerpt.ends_with("…\""), "{excerpt}");
    assert!(excerpt.chars().count() <= 160, "{excerpt}");
    assert!(!excerpt.contains('\n'), "{excerpt}");
    for code in ["font-family", "margin", "function", "reload", "{", "<"] {
        assert!(!excerpt.contains(code), "{code} in {excerpt}");
    }
}

#[test]
fn retry_after_on_a_503_is_honoured() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::status(503, r#"{"error": "restarting"}"#).header("Retry-After", "1"),
        _ => Behaviour::ok("done"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms, max_wait: 30s } }\n",
        &server,
    );
    outcome.expect_code(0);
    let gap = server.gap(0, 1);
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "retried after {gap:?}"
    );
    assert_eq!(attempts(&outcome)[1]["waited_ms"], 1000);
}

#[test]
fn retry_after_on_any_5xx_is_capped_by_max_wait() {
    let server = RawServer::start(|request| match request.nth {
        0 => Behaviour::status(500, "{}").header("Retry-After", "86400"),
        _ => Behaviour::ok("done"),
    });
    let outcome = run(
        "name: f\nsteps:\n  a: { agent: x, retry: { attempts: 2, backoff: 10ms, max_wait: 300ms } }\n",
        &server,
    );
    outcome.expect_code(0);
    assert_eq!(attempts(&outcome)[1]["waited_ms"], 300);
    assert!(server.gap(0, 1) >= Duration::from_millis(250));
}

#[test]
fn the_key_stays_out_of_fault_messages_even_at_trace_level() {
    let page = "<html><body><h1>Bad Gateway</h1></body></html>";
    let server = RawServer::start(move |request| match request.agent.as_str() {
        "trickle" => Behaviour::Trickle {
            body: b"{}".repeat(20),
            every: Duration::from_millis(100),
        },
        "reset" => Behaviour::Reset {
            claimed: 50,
            sent: b"{".to_vec(),
        },
        "short" => Behaviour::Truncate {
            claimed: 50,
            sent: b"{".to_vec(),
        },
        "garbled" => Behaviour::status(200, "<<not json>>"),
        "gateway" => Behaviour::status(502, page),
        "limited" => Behaviour::status(429, "{}").header("Retry-After", "soon"),
        _ => Behaviour::status(307, "").header("Location", "http://127.0.0.1:9/"),
    });
    let agents = [
        "trickle", "reset", "short", "garbled", "gateway", "limited", "moved",
    ];
    let steps: String = agents
        .iter()
        .map(|agent| format!("  {agent}: {{ agent: {agent} }}\n"))
        .collect();
    let workflow = format!(
        "name: f\ndefaults: {{ timeout: 500ms, retry: {{ attempts: 2, backoff: 10ms }} }}\nsteps:\n{steps}"
    );
    let sandbox = Sandbox::new();
    sandbox.write("workflow.yaml", &workflow);
    let mut cmd = sandbox.baton();
    cmd.args(["run", "workflow.yaml", "--out", "out", "-vvv"])
        .args(["--base-url", &server.base_url])
        .env("RUST_LOG", "trace");
    let outcome = sandbox.finish(cmd);

    outcome.expect_code(1);
    let sent_key = format!("Bearer {KEY}");
    assert!(
        server.requests().iter().all(|r| r.head.contains(&sent_key)),
        "every request carried the key"
    );
    for agent in agents {
        assert_eq!(outcome.status_of(agent), "failed", "{agent}");
        let error = outcome.json("run.json")["steps"][agent]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(outcome.stderr.contains(&error), "{agent}: {error}");
    }
    assert!(outcome.stderr.lines().count() > 50, "trace logging was on");
    assert_key_hidden(&outcome);
}

/// Runs `workflow` against `server` and checks the key stayed hidden.
fn run(workflow: &str, server: &RawServer) -> Outcome {
    let outcome = Sandbox::new().run_at(workflow, &server.base_url, &[]);
    assert_key_hidden(&outcome);
    outcome
}

fn assert_key_hidden(outcome: &Outcome) {
    assert!(!outcome.stderr.contains(KEY), "key in stderr");
    assert!(!outcome.stdout.contains(KEY), "key in stdout");
}

/// Checks that step `a` failed with an error containing `text`, in
/// `run.json` and on stderr.
fn assert_failed_with(outcome: &Outcome, text: &str) {
    assert_eq!(outcome.status_of("a"), "failed");
    let error = step_error(outcome);
    assert!(error.contains(text), "{error}");
    assert!(outcome.stderr.contains(&error), "{}", outcome.stderr);
}

/// Checks that every attempt of step `a` ended at its 500 ms timeout.
fn assert_every_attempt_timed_out(outcome: &Outcome) {
    for attempt in attempts(outcome) {
        assert_eq!(attempt["error"], "agent.ai did not answer within 500ms");
        let took = attempt["duration_ms"].as_u64().unwrap();
        assert!((500..1500).contains(&took), "attempt took {took} ms");
    }
}

fn step_error(outcome: &Outcome) -> String {
    let run = outcome.json("run.json");
    run["steps"]["a"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn attempts(outcome: &Outcome) -> Vec<serde_json::Value> {
    outcome.step("a")["attempts"].as_array().unwrap().clone()
}

/// Watches the peak resident memory (`VmHWM`) of the processes working in
/// one directory, by polling `/proc`.
struct PeakMemory {
    done: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl PeakMemory {
    fn watch(dir: &Path) -> PeakMemory {
        let dir = dir.canonicalize().expect("sandbox path");
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                for pid in processes_in(&dir) {
                    let hwm = high_water_mark(pid).unwrap_or(0);
                    peak = peak.max(hwm);
                    // A runaway baton would take the machine down with it.
                    if hwm > 1 << 30 {
                        let _ = std::process::Command::new("kill")
                            .args(["-9", &pid.to_string()])
                            .status();
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        PeakMemory { done, thread }
    }

    /// The highest peak seen, in bytes.
    fn stop(self) -> u64 {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().expect("memory watcher")
    }
}

fn processes_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
