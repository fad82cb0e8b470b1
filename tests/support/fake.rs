//! A fake agent.ai server for tests: plain HTTP/1.1 on 127.0.0.1, answering
//! `invoke_agent` calls through a closure, counting calls and the most
//! requests it had in flight at once. It stops when dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub agent: String,
    pub input: String,
    pub authorization: Option<String>,
    /// How many calls this agent had received before this one.
    pub nth: usize,
    pub at: Instant,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Answer {
    /// `200` with `{"status": 200, "response": response}`.
    pub fn ok(response: impl Into<Value>) -> Answer {
        let body = json!({ "status": 200, "response": response.into() }).to_string();
        Answer::raw(200, body)
    }

    pub fn raw(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// An error status with a JSON body naming the problem.
    pub fn error(status: u16, message: &str) -> Answer {
        Answer::raw(status, json!({ "error": message }).to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Call) -> Answer + Send + Sync;

#[derive(Default)]
struct State {
    calls: Mutex<Vec<Call>>,
    per_agent: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// A running fake server.
pub struct FakeAgentAi {
    pub base_url: String,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeAgentAi {
    /// Starts a fake that answers every call with `handler`.
    pub fn start(handler: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> FakeAgentAi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime starts");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_state = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&accept_state);
                let handler = Arc::clone(&handler);
                tokio::spawn(serve(stream, state, handler));
            }
        });
        FakeAgentAi {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            state,
            _runtime: runtime,
        }
    }

    /// Echoes `agent(input)` for every call: replies show where data went.
    pub fn echo() -> FakeAgentAi {
        FakeAgentAi::start(|call| Answer::ok(format!("{}({})", call.agent, call.input)))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, agent: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.agent == agent)
            .collect()
    }

    /// The most requests that were being answered at the same moment.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>, handler: Arc<Handler>) {
    let mut buffer = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let call = record(&state, &head, &body);
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(now, Ordering::SeqCst);
        let answer = handler(&call);
        tokio::time::sleep(answer.delay).await;
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&answer.body);
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn record(state: &State, head: &str, body: &[u8]) -> Call {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let agent = json["id"].as_str().unwrap_or_default().to_owned();
    let authorization = header(head, "authorization");
    let nth = {
        let mut per_agent = state.per_agent.lock().unwrap();
        let n = per_agent.entry(agent.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let call = Call {
        agent,
        input: json["input"].as_str().unwrap_or_default().to_owned(),
        authorization,
        nth,
        at: Instant::now(),
    };
    state.calls.lock().unwrap().push(call.clone());
    call
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Reads one request: its head as text and its body.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = header(&head, "content-length")?.parse().ok()?;
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((head, body))
}
