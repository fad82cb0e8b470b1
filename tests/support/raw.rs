//! A raw HTTP/1.1 server for fault tests. It reads each `invoke_agent`
//! request off the socket in full, then acts out whatever [`Behaviour`] the
//! test scripted for it: a proper reply, or a body that trickles, stops
//! short, resets or never ends. It counts connections, requests and the
//! bytes it wrote, and stops when dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the server read in full.
#[derive(Debug, Clone)]
pub struct Request {
    /// How many requests the server had read before this one.
    pub nth: usize,
    pub agent: String,
    pub head: String,
    pub at: Instant,
}

/// What the server does once it has read a request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// A complete response; the connection stays open for another request.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A correct `Content-Length`, then the body one byte per `every`.
    Trickle { body: Vec<u8>, every: Duration },
    /// Keeps the connection open and never answers.
    Silence,
    /// Promises `claimed` body bytes, sends `sent`, then resets the
    /// connection (`SO_LINGER` 0).
    Reset { claimed: usize, sent: Vec<u8> },
    /// Promises `claimed` body bytes, sends `sent`, then closes cleanly.
    Truncate { claimed: usize, sent: Vec<u8> },
    /// A chunked `200` made of 64 KiB chunks that never ends.
    Endless,
}

impl Behaviour {
    /// `200` with `{"status": 200, "response": response}`.
    pub fn ok(response: impl Into<Value>) -> Behaviour {
        let body = json!({ "status": 200, "response": response.into() });
        Behaviour::status(200, body.to_string())
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Behaviour {
        Behaviour::Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header to a [`Behaviour::Reply`].
    pub fn header(mut self, name: &str, value: &str) -> Behaviour {
        match &mut self {
            Behaviour::Reply { headers, .. } => headers.push((name.into(), value.into())),
            other => panic!("only a reply takes headers, not {other:?}"),
        }
        self
    }
}

type Script = dyn Fn(&Request) -> Behaviour + Send + Sync;

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    bytes_sent: AtomicU64,
}

/// A running raw server.
pub struct RawServer {
    pub base_url: String,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

impl RawServer {
    /// Starts a server that answers each request as `script` says.
    pub fn start(script: impl Fn(&Request) -> Behaviour + Send + Sync + 'static) -> RawServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test runtime starts");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let script: Arc<Script> = Arc::new(script);
        let accept_state = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                tokio::spawn(serve(stream, state, Arc::clone(&script)));
            }
        });
        RawServer {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            state,
            _runtime: runtime,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every byte written back, heads included.
    pub fn bytes_sent(&self) -> u64 {
        self.state.bytes_sent.load(Ordering::SeqCst)
    }

    /// The time between the `first` and `second` request arriving.
    pub fn gap(&self, first: usize, second: usize) -> Duration {
        let requests = self.requests();
        requests[second].at - requests[first].at
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>, script: Arc<Script>) {
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buffer).await {
        let request = record(&state, head, &body);
        let keep_open = act(&mut stream, script(&request), &state).await;
        if !keep_open {
            return;
        }
    }
}

fn record(state: &State, head: String, body: &[u8]) -> Request {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut requests = state.requests.lock().unwrap();
    let request = Request {
        nth: requests.len(),
        agent: json["id"].as_str().unwrap_or_default().to_owned(),
        head,
        at: Instant::now(),
    };
    requests.push(request.clone());
    request
}

/// Carries out `behaviour`; true when the connection can serve again.
async fn act(stream: &mut TcpStream, behaviour: Behaviour, state: &State) -> bool {
    let mut out = Writer { stream, state };
    match behaviour {
        Behaviour::Reply {
            status,
            headers,
            body,
        } => {
            let mut head = head(status, &format!("content-length: {}", body.len()));
            for (name, value) in headers {
                head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            out.send(&head).await && out.send(&body).await
        }
        Behaviour::Trickle { body, every } => {
            let mut head = head(200, &format!("content-length: {}", body.len()));
            head.extend_from_slice(b"\r\n");
            out.send(&head).await;
            for byte in body {
                tokio::time::sleep(every).await;
                if !out.send(&[byte]).await {
                    break;
                }
            }
            false
        }
        Behaviour::Silence => {
            // Read until the client gives up, so the task ends with it.
            let mut sink = [0u8; 1024];
            while matches!(out.stream.read(&mut sink).await, Ok(n) if n > 0) {}
            false
        }
        Behaviour::Reset { claimed, sent } => {
            out.send_partial(claimed, &sent).await;
            // Let the client take in the head before the reset arrives.
            tokio::time::sleep(Duration::from_millis(50)).await;
            out.stream.set_zero_linger().expect("set SO_LINGER 0");
            false
        }
        Behaviour::Truncate { claimed, sent } => {
            out.send_partial(claimed, &sent).await;
            let _ = out.stream.shutdown().await;
            false
        }
        Behaviour::Endless => {
            let mut head = head(200, "transfer-encoding: chunked");
            head.extend_from_slice(b"\r\n");
            let mut chunk = b"10000\r\n".to_vec();
            chunk.resize(chunk.len() + 64 * 1024, b'a');
            chunk.extend_from_slice(b"\r\n");
            let mut open = out.send(&head).await;
            while open {
                open = out.send(&chunk).await;
            }
            false
        }
    }
}

/// A status line and one header field, not yet ended by a blank line.
fn head(status: u16, field: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} \r\ncontent-type: application/json\r\n{field}\r\n").into_bytes()
}

struct Writer<'a> {
    stream: &'a mut TcpStream,
    state: &'a State,
}

impl Writer<'_> {
    /// Writes `bytes`, counting them; false once the client is gone.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        let sent = self.stream.write_all(bytes).await.is_ok();
        if sent {
            let n = bytes.len() as u64;
            self.state.bytes_sent.fetch_add(n, Ordering::SeqCst);
        }
        sent
    }

    /// A `200` head promising `claimed` body bytes, then only `sent`.
    async fn send_partial(&mut self, claimed: usize, sent: &[u8]) {
        let mut head = head(200, &format!("content-length: {claimed}"));
        head.extend_from_slice(b"\r\n");
        self.send(&head).await;
        self.send(sent).await;
    }
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
    let length = content_length(&head).unwrap_or(0);
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

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("content-length") {
            return None;
        }
        value.trim().parse().ok()
    })
}
