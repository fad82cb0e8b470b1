//! The agent.ai client: one `invoke_agent` call per attempt.
//!
//! The body is built as a JSON value, redirects are never followed (a
//! redirect would carry the key elsewhere), the reply is read under a size
//! cap, and the key goes out only in a header marked sensitive. Every
//! message the client makes has the key taken out, so a server that echoes
//! the request cannot put the key into logs or results.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::excerpt::{detail, excerpt};
use super::secret::Secret;
use super::{shorten, CallError, Reply};

/// The public endpoint's base address.
pub const DEFAULT_BASE_URL: &str = "https://api-lr.agent.ai/v1";

/// The environment variable holding the key, as in agent.ai's own clients.
pub const KEY_VAR: &str = "AGENTAI_API_KEY";

/// The environment variable that overrides the base address.
pub const BASE_URL_VAR: &str = "AGENTAI_BASE_URL";

/// The largest reply read; a longer one fails the attempt.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Problems with the client's settings, found before any call.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("base URL `{0}` is not a valid URL")]
    BadUrl(String),
    #[error("base URL `{0}` must use https (plain http is allowed only for loopback addresses)")]
    Insecure(String),
    #[error("the API key in `{KEY_VAR}` cannot be sent in a header")]
    BadKey,
    #[error("failed to set up the HTTP client: {0}")]
    Client(String),
}

/// A client for one agent.ai base address and key.
#[derive(Clone)]
pub struct AgentAi {
    client: reqwest::Client,
    endpoint: Url,
    auth: HeaderValue,
    secret: Secret,
}

impl std::fmt::Debug for AgentAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAi")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl AgentAi {
    pub fn new(base: &str, key: &str) -> Result<AgentAi, ConfigError> {
        let base_url = Url::parse(base).map_err(|_| ConfigError::BadUrl(base.to_owned()))?;
        let loopback = is_loopback(&base_url);
        match base_url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(ConfigError::Insecure(base.to_owned())),
        }
        let endpoint = Url::parse(&format!(
            "{}/action/invoke_agent",
            base.trim_end_matches('/')
        ))
        .map_err(|_| ConfigError::BadUrl(base.to_owned()))?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ConfigError::BadKey)?;
        auth.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")));
        if loopback {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(AgentAi {
            client,
            endpoint,
            auth,
            secret: Secret::new(key),
        })
    }

    /// One attempt: sends `input` to `agent` and reads the reply, all
    /// within `timeout`.
    pub async fn invoke(
        &self,
        agent: &str,
        input: &str,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let attempt = self.attempt(agent, input);
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(CallError::transient(format!(
                "agent.ai did not answer within {}",
                humantime::format_duration(timeout)
            ))),
        };
        result.map_err(|e| e.map_message(|m| self.secret.scrub(&m)))
    }

    async fn attempt(&self, agent: &str, input: &str) -> Result<Reply, CallError> {
        let body = json!({ "id": agent, "input": input });
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                CallError::transient(format!("request to agent.ai failed: {}", cause(&e)))
            })?;
        let status = response.status();
        let retry_after = retry_after(response.headers().get(RETRY_AFTER));
        let bytes = read_capped(response).await?;
        if !status.is_success() {
            let detail = detail(&bytes, &self.secret);
            return Err(classify(status, retry_after, detail));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            CallError::transient(format!(
                "agent.ai sent a reply that is not JSON: {}",
                excerpt(&bytes, &self.secret)
            ))
        })?;
        match body_status(body.get("status")) {
            BodyStatus::Ok => {}
            BodyStatus::Code(code) => {
                let detail = detail(&bytes, &self.secret);
                return Err(classify(code, retry_after, detail));
            }
            BodyStatus::Unreadable(text) => {
                let text = shorten(&self.secret.scrub(&text), 60);
                return Err(CallError::transient(format!(
                    "agent.ai's reply has a `status` that is not a number: `{text}`"
                )));
            }
        }
        match body {
            Value::Object(mut map) => match map.remove("response") {
                Some(response) => Ok(Reply::from_response(response)),
                None => Err(CallError::permanent("agent.ai's reply has no `response`")),
            },
            _ => Err(CallError::permanent(
                "agent.ai's reply is not a JSON object",
            )),
        }
    }
}

/// Reads the body, failing once it passes [`MAX_REPLY_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut bytes = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            CallError::transient(format!("reading agent.ai's reply failed: {}", cause(&e)))
        })?;
        let Some(chunk) = chunk else { return Ok(bytes) };
        if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(CallError::permanent(format!(
                "agent.ai's reply is larger than {} MiB",
                MAX_REPLY_BYTES / 1024 / 1024
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// What the `status` inside a reply's body says.
#[derive(Debug, PartialEq, Eq)]
enum BodyStatus {
    /// 200, or no status at all.
    Ok,
    /// Any other code, as a number or a string of digits.
    Code(StatusCode),
    /// Something that is not a code, as JSON text.
    Unreadable(String),
}

/// Reads the body's `status`: a number, or a string holding one.
fn body_status(value: Option<&Value>) -> BodyStatus {
    let code = match value {
        None | Some(Value::Null) => return BodyStatus::Ok,
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Some(Value::String(text)) => text.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match code {
        Some(200) => BodyStatus::Ok,
        Some(code) => BodyStatus::Code(
            u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        None => BodyStatus::Unreadable(value.map(Value::to_string).unwrap_or_default()),
    }
}

/// Sorts an error status into what the scheduler should do with it; a
/// `Retry-After` counts for every status that is worth another try.
fn classify(status: StatusCode, after: Option<Duration>, detail: Option<String>) -> CallError {
    let message = match detail {
        Some(d) => format!("agent.ai answered {status}: {d}"),
        None => format!("agent.ai answered {status}"),
    };
    match status.as_u16() {
        401 | 402 => CallError::Fatal { message },
        408 | 429 | 500..=599 => CallError::Transient { message, after },
        300..=399 => CallError::permanent(format!("{message} (redirects are not followed)")),
        _ => CallError::Permanent { message },
    }
}

/// Reads `Retry-After` as seconds or an HTTP date; the caller clamps it.
pub fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = httpdate::parse_http_date(text).ok()?;
            when.duration_since(SystemTime::now()).unwrap_or_default()
        }
    };
    Some(wait)
}

/// The innermost cause of a reqwest error, which says what went wrong
/// without repeating the URL at every level.
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection error"
    };
    format!("{kind} ({source})")
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_for_loopback() {
        assert!(AgentAi::new("http://127.0.0.1:9/v1", "k").is_ok());
        assert!(AgentAi::new("http://localhost:9/v1", "k").is_ok());
        assert!(AgentAi::new("http://[::1]:9/v1", "k").is_ok());
        assert!(matches!(
            AgentAi::new("http://example.com/v1", "k"),
            Err(ConfigError::Insecure(_))
        ));
        assert!(AgentAi::new("https://api-lr.agent.ai/v1", "k").is_ok());
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_clamps() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(retry_after(Some(&h("3"))), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(Some(&h("86400"))),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(retry_after(Some(&h("soon"))), None);
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after(Some(&h(&later))).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
    }

    #[test]
    fn error_bodies_give_the_services_words() {
        let secret = Secret::new("k");
        let body = |b: &[u8]| detail(b, &secret);
        let e = classify(
            StatusCode::NOT_FOUND,
            None,
            body(br#"{"detail": "no agent named x"}"#),
        );
        assert_eq!(
            e,
            CallError::permanent("agent.ai answered 404 Not Found: no agent named x")
        );
        let e = classify(
            StatusCode::BAD_GATEWAY,
            None,
            body(b"<html><body><h1>Bad gateway</h1></body></html>"),
        );
        assert!(e.to_string().ends_with("\"Bad gateway\""), "{e}");
        assert!(matches!(
            classify(StatusCode::PAYMENT_REQUIRED, None, None),
            CallError::Fatal { .. }
        ));
    }

    #[test]
    fn retry_after_counts_for_server_errors_too() {
        let wait = Some(Duration::from_secs(2));
        for code in [429, 500, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            match classify(status, wait, None) {
                CallError::Transient { after, .. } => assert_eq!(after, wait, "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, wait, None),
            CallError::Permanent { .. }
        ));
    }

    #[test]
    fn a_status_in_the_body_counts_as_a_number_or_a_string() {
        let s = |v: Value| body_status(Some(&v));
        assert_eq!(s(json!(200)), BodyStatus::Ok);
        assert_eq!(s(json!("200")), BodyStatus::Ok);
        assert_eq!(body_status(None), BodyStatus::Ok);
        assert_eq!(s(Value::Null), BodyStatus::Ok);
        let code = |c: u16| BodyStatus::Code(StatusCode::from_u16(c).unwrap());
        assert_eq!(s(json!("500")), code(500));
        assert_eq!(s(json!(" 429 ")), code(429));
        assert_eq!(s(json!(404.0)), code(404));
        assert_eq!(s(json!(70000)), code(500));
        assert_eq!(
            s(json!("broken")),
            BodyStatus::Unreadable("\"broken\"".into())
        );
        assert_eq!(s(json!(true)), BodyStatus::Unreadable("true".into()));
    }

    #[test]
    fn debug_shows_no_key() {
        let client = AgentAi::new("http://127.0.0.1:9/v1", "sk-very-secret").unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
    }
}
