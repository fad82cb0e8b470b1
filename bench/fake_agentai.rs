//! A fast stand-in for the agent.ai API, used by the benchmark in `bench/run`.
//!
//! It listens on 127.0.0.1 and answers `POST <anything>/action/invoke_agent`
//! with a reply that depends only on the agent id and the input, after a
//! delay chosen by the agent id: `sleep20` waits 20 ms, `sleep0` (or any id
//! not starting with `sleep` and digits) answers at once. `GET /stats`
//! reports how many calls arrived and the most that were in flight at once;
//! `POST /stats/reset` zeroes both. HTTP/1.1 is parsed by hand, with
//! keep-alive and `Content-Length` bodies only, which is what reqwest and
//! aiohttp send. The server stops by itself after `--exit-after` seconds.
//!
//! Delays come from one timer thread rather than tokio's timer, whose
//! millisecond ticks made a 20 ms agent take about 21.6 ms; the benchmark
//! divides by the nominal latency, so the fake must keep close to it.
//!
//! Limitation: chunked request bodies are refused with 411, since neither
//! client under test sends them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Largest request head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The most the timer fires early, in nanoseconds.
const MAX_ADVANCE_NS: i64 = 2_000_000;

/// Fake agent.ai server for benchmarks.
#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Stop after this many seconds.
    #[arg(long, default_value_t = 900)]
    exit_after: u64,

    /// Worker threads of the runtime; one leaves the other core to the client.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What every connection shares.
struct State {
    stats: Stats,
    timer: Timer,
}

/// Counts of agent calls.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// Delayed answers, and how late they woke in total.
    sleeps: AtomicU64,
    late_ns: AtomicI64,
}

impl Stats {
    fn record_late(&self, late_ns: i64) {
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        self.late_ns.fetch_add(late_ns, Ordering::Relaxed);
    }

    fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.peak_in_flight.store(0, Ordering::Relaxed);
        self.sleeps.store(0, Ordering::Relaxed);
        self.late_ns.store(0, Ordering::Relaxed);
    }
}

/// Marks one agent call as in flight until dropped.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    is_keep_alive: bool,
}

/// The reply to one request.
struct Reply {
    status: u16,
    body: String,
}

/// Why a request could not be read.
enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// The request was malformed; answer with this status and close.
    Bad(u16),
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(err: std::io::Error) -> Self {
        ReadError::Io(err)
    }
}

/// The agent.ai request body.
#[derive(Deserialize)]
struct Invoke {
    id: String,
    #[serde(default)]
    input: String,
}

/// Wakes sleepers at their deadlines from a dedicated thread.
///
/// Waking is late twice over on a virtual machine: the kernel wakes the
/// timer thread late, and the tokio worker it signals takes time to wake
/// too. So each sleeper reports how late it resumed, and the thread fires
/// that much early from then on, which keeps the mean lateness near zero.
#[derive(Clone)]
struct Timer {
    shared: Arc<TimerShared>,
}

#[derive(Default)]
struct TimerShared {
    queue: Mutex<BinaryHeap<Reverse<Wakeup>>>,
    changed: Condvar,
    /// How early to fire, in nanoseconds.
    advance_ns: AtomicI64,
}

/// One sleeper, ordered by deadline and then by arrival.
struct Wakeup {
    deadline: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Wakeup {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Wakeup {}

impl PartialOrd for Wakeup {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wakeup {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl Timer {
    fn start() -> Self {
        let timer = Timer {
            shared: Arc::default(),
        };
        let shared = Arc::clone(&timer.shared);
        std::thread::spawn(move || fire_due(&shared));
        timer
    }

    /// Sleeps until `deadline`; returns how late it woke, in nanoseconds.
    async fn sleep_until(&self, deadline: Instant) -> i64 {
        let woken = self.enqueue(deadline);
        // The timer thread sends before dropping, so this is always Ok.
        let _ = woken.await;
        self.learn(deadline)
    }

    fn enqueue(&self, deadline: Instant) -> oneshot::Receiver<()> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let (wake, woken) = oneshot::channel();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let wakeup = Wakeup {
            deadline,
            seq,
            wake,
        };
        let mut queue = self.shared.queue.lock().expect("timer thread never panics");
        queue.push(Reverse(wakeup));
        self.shared.changed.notify_one();
        woken
    }

    /// Moves the advance an eighth of the way towards cancelling this lateness.
    fn learn(&self, deadline: Instant) -> i64 {
        let now = Instant::now();
        let late_ns = match now.checked_duration_since(deadline) {
            Some(late) => nanos(late),
            None => -nanos(deadline - now),
        };
        let step = |advance: i64| Some((advance + late_ns / 8).clamp(0, MAX_ADVANCE_NS));
        let advance = &self.shared.advance_ns;
        let _ = advance.fetch_update(Ordering::Relaxed, Ordering::Relaxed, step);
        late_ns
    }

    fn advance_ns(&self) -> i64 {
        self.shared.advance_ns.load(Ordering::Relaxed)
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The timer thread: wakes each sleeper once its deadline, less the advance,
/// has passed.
fn fire_due(shared: &TimerShared) {
    let mut queue = shared.queue.lock().expect("sleepers never panic");
    loop {
        let advance = shared.advance_ns.load(Ordering::Relaxed);
        let now = Instant::now() + Duration::from_nanos(advance.unsigned_abs());
        let wait = match queue.peek() {
            None => Duration::from_secs(3600),
            Some(Reverse(next)) if next.deadline <= now => {
                let Reverse(due) = queue.pop().expect("peeked entry exists");
                // A sleeper whose connection closed no longer listens.
                let _ = due.wake.send(());
                continue;
            }
            Some(Reverse(next)) => next.deadline - now,
        };
        queue = shared
            .changed
            .wait_timeout(queue, wait)
            .expect("sleepers never panic")
            .0;
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);

    let state = Arc::new(State {
        stats: Stats::default(),
        timer: Timer::start(),
    });
    let deadline = tokio::time::sleep(Duration::from_secs(args.exit_after));
    tokio::select! {
        result = accept_loop(listener, state) => result,
        () = deadline => Ok(()),
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            // A client that hangs up mid-request is not the server's concern.
            let _ = handle_connection(stream, &state).await;
        });
    }
}

async fn handle_connection(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8 * 1024);
    loop {
        let request = match read_request(&mut stream, &mut buf).await {
            Ok(request) => request,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Io(err)) => return Err(err),
            Err(ReadError::Bad(status)) => {
                let reply = error_reply(status, "malformed request");
                return write_reply(&mut stream, &reply, false).await;
            }
        };

        let reply = route(&request, state).await;
        write_reply(&mut stream, &reply, request.is_keep_alive).await?;
        if !request.is_keep_alive {
            return Ok(());
        }
    }
}

/// Reads one request from `stream`, keeping any bytes past it in `buf`.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Request, ReadError> {
    let head_len = loop {
        if let Some(end) = find_head_end(buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431));
        }
        if fill(stream, buf).await? == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Bad(400)
            });
        }
    };

    let mut request = parse_head(&buf[..head_len])?;
    let body_len = content_length(&buf[..head_len])?;
    while buf.len() < head_len + body_len {
        if fill(stream, buf).await? == 0 {
            return Err(ReadError::Bad(400));
        }
    }
    request.body = buf[head_len..head_len + body_len].to_vec();
    buf.drain(..head_len + body_len);
    Ok(request)
}

/// Reads more bytes from `stream` onto the end of `buf`.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(8 * 1024);
    stream.read_buf(buf).await
}

/// Length of the head including the blank line, once it is complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

fn parse_head(head: &[u8]) -> Result<Request, ReadError> {
    let head = std::str::from_utf8(head).map_err(|_| ReadError::Bad(400))?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400));
    };

    let path = target.split('?').next().unwrap_or_default();
    let connection = header(head, "connection").map(str::to_ascii_lowercase);
    let is_keep_alive = match version {
        "HTTP/1.1" => connection.as_deref() != Some("close"),
        "HTTP/1.0" => connection.as_deref() == Some("keep-alive"),
        _ => return Err(ReadError::Bad(505)),
    };
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        body: Vec::new(),
        is_keep_alive,
    })
}

fn content_length(head: &[u8]) -> Result<usize, ReadError> {
    let head = std::str::from_utf8(head).map_err(|_| ReadError::Bad(400))?;
    if header(head, "transfer-encoding").is_some() {
        return Err(ReadError::Bad(411));
    }
    let Some(value) = header(head, "content-length") else {
        return Ok(0);
    };
    match value.parse::<usize>() {
        Ok(len) if len <= MAX_BODY => Ok(len),
        Ok(_) => Err(ReadError::Bad(413)),
        Err(_) => Err(ReadError::Bad(400)),
    }
}

/// The trimmed value of the first header called `name`, ignoring case.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

async fn route(request: &Request, state: &State) -> Reply {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", path) if path.ends_with("/action/invoke_agent") => {
            invoke(&request.body, state).await
        }
        ("GET", "/stats") => stats_reply(state),
        ("POST", "/stats/reset") => {
            state.stats.reset();
            stats_reply(state)
        }
        _ => error_reply(404, "no such route"),
    }
}

async fn invoke(body: &[u8], state: &State) -> Reply {
    let received = Instant::now();
    let _in_flight = InFlight::enter(&state.stats);
    let call: Invoke = match serde_json::from_slice(body) {
        Ok(call) => call,
        Err(_) => return error_reply(400, "body is not {\"id\", \"input\"} JSON"),
    };

    let delay = latency_ms(&call.id);
    if delay > 0 {
        let deadline = received + Duration::from_millis(delay);
        let late_ns = state.timer.sleep_until(deadline).await;
        state.stats.record_late(late_ns);
    }
    let response = serde_json::json!({"status": 200, "response": answer(&call.id, &call.input)});
    Reply {
        status: 200,
        body: response.to_string(),
    }
}

/// Milliseconds to wait before answering for agent `id`.
fn latency_ms(id: &str) -> u64 {
    let Some(rest) = id.strip_prefix("sleep") else {
        return 0;
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().unwrap_or(0)
}

/// The deterministic reply: the agent id and a hash of id and input.
///
/// It holds no character that Handlebars escapes, so a runner that renders
/// templates with escaping and one that substitutes plainly agree.
fn answer(id: &str, input: &str) -> String {
    let mut hash = Fnv1a::new();
    hash.write(id.as_bytes());
    hash.write(&[0]);
    hash.write(input.as_bytes());
    format!("{id}:{:016x}", hash.finish())
}

/// 64-bit FNV-1a.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn stats_reply(state: &State) -> Reply {
    let stats = &state.stats;
    let sleeps = stats.sleeps.load(Ordering::Relaxed);
    let late_ns = stats.late_ns.load(Ordering::Relaxed);
    let mean_late_us = late_ns as f64 / sleeps.max(1) as f64 / 1000.0;
    let body = serde_json::json!({
        "requests": stats.requests.load(Ordering::Relaxed),
        "in_flight": stats.in_flight.load(Ordering::Relaxed),
        "peak_in_flight": stats.peak_in_flight.load(Ordering::Relaxed),
        "mean_late_us": mean_late_us,
        "timer_advance_us": state.timer.advance_ns() as f64 / 1000.0,
    });
    Reply {
        status: 200,
        body: body.to_string(),
    }
}

fn error_reply(status: u16, message: &str) -> Reply {
    Reply {
        status,
        body: serde_json::json!({"status": status, "error": message}).to_string(),
    }
}

async fn write_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    is_keep_alive: bool,
) -> std::io::Result<()> {
    let connection = if is_keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len(),
        connection,
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(reply.body.as_bytes());
    stream.write_all(&bytes).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}
