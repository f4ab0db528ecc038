//! A recording proxy in front of moto: every AWS request berth makes passes through it and is
//! counted by operation, independently of berth's own metrics. It can also answer a share of
//! the requests with `ThrottlingException`, which moto cannot produce, answer every request of
//! one operation with a given AWS error until told to stop, and hold moto's answers back for a
//! while (as a slow network would).
//!
//! With `BERTH_RECORD_OPERATIONS=<file>` every forwarded request is also appended to that file
//! as `<service>:<Operation>` (e.g. `ecr:DescribeRepositories`), and every operator a test
//! starts talks to AWS through a proxy (see `recording_endpoint`), so that `scripts/test` can
//! check the IAM policies in `docs/` against all that berth did (`tests/iam_policy.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Call {
    pub operation: String,
    /// The SDK's `amz-sdk-invocation-id`: the same for every retry of one call.
    pub invocation: String,
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Every n-th matching request is throttled (0: never).
    throttle_every: Arc<AtomicU32>,
    /// Operation → (AWS error code, message) to answer its next request with.
    fail_next: Arc<Mutex<BTreeMap<String, (String, String)>>>,
    /// Operation → (AWS error code, message) to answer each of its requests with.
    fail_always: Arc<Mutex<BTreeMap<String, (String, String)>>>,
    /// Operations whose next request reaches moto but whose answer is replaced by a 500.
    lose_next_answer: Arc<Mutex<std::collections::BTreeSet<String>>>,
    seen: Arc<AtomicU32>,
    /// Operations whose answers wait until `release` turns true.
    hold: Arc<Mutex<std::collections::BTreeSet<String>>>,
    release: Arc<tokio::sync::watch::Sender<bool>>,
    /// Answers waiting now.
    held: Arc<AtomicU32>,
}

pub struct AwsProxy {
    pub endpoint: String,
    shared: Shared,
}

/// The operation of an AWS request: `X-Amz-Target` (JSON protocols) or `Action=` (query).
fn operation(target: Option<&str>, body: &[u8]) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_owned()
}

/// The signing name of a SigV4 request (`ecr`, `iam`, `sts`): the service field of the
/// credential scope, `Credential=<key>/<date>/<region>/<service>/aws4_request`.
fn service(authorization: Option<&str>) -> &str {
    authorization
        .and_then(|value| value.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unknown")
}

/// Appends `<service>:<operation>` to the file `BERTH_RECORD_OPERATIONS` names, if any. One
/// `O_APPEND` write per line, so that concurrent tests never interleave within a line.
fn record_operation(service: &str, operation: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os(RECORD_OPERATIONS) else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{RECORD_OPERATIONS}={}: {e}", path.to_string_lossy()));
    file.write_all(format!("{service}:{operation}\n").as_bytes())
        .expect("record an AWS operation");
}

/// The environment variable naming the file that recorded operations are appended to.
pub const RECORD_OPERATIONS: &str = "BERTH_RECORD_OPERATIONS";

/// When operations are recorded: the endpoint of one process-wide proxy in front of
/// `upstream`, running on a thread of its own (so that it serves even while a test blocks its
/// runtime), for operators that would otherwise talk to moto directly. None otherwise.
pub fn recording_endpoint(upstream: &str) -> Option<String> {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    std::env::var_os(RECORD_OPERATIONS)?;
    let endpoint = ENDPOINT.get_or_init(|| {
        let upstream = upstream.to_owned();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let proxy = AwsProxy::start(&upstream).await;
                sender.send(proxy.endpoint.clone()).unwrap();
                std::future::pending::<()>().await
            })
        });
        receiver.recv().expect("the recording proxy starts")
    });
    Some(endpoint.clone())
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let operation = operation(target, &body);
    let invocation = parts
        .headers
        .get("amz-sdk-invocation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    shared.calls.lock().unwrap().push(Call {
        operation: operation.clone(),
        invocation,
        at: Instant::now(),
    });
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    record_operation(service(authorization), &operation);

    let persistent = shared.fail_always.lock().unwrap().get(&operation).cloned();
    let injected = persistent.or_else(|| shared.fail_next.lock().unwrap().remove(&operation));
    if let Some((code, message)) = injected {
        let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            body,
        )
            .into_response();
    }

    let every = shared.throttle_every.load(Ordering::SeqCst);
    if every > 0 && shared.seen.fetch_add(1, Ordering::SeqCst) % every == 0 {
        let json = target.is_some();
        let (content_type, text) = if json {
            (
                "application/x-amz-json-1.1",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned(),
            )
        } else {
            (
                "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>".to_owned(),
            )
        };
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, content_type)], text).into_response();
    }

    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut upstream = axum::http::Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let upstream = upstream.body(Full::new(body)).expect("a valid request");
    let lose_answer = shared.lose_next_answer.lock().unwrap().remove(&operation);
    let answer = shared.client.request(upstream).await;
    if shared.hold.lock().unwrap().contains(&operation) {
        // moto has answered as things were now; the client gets that answer only later
        let mut release = shared.release.subscribe();
        shared.held.fetch_add(1, Ordering::SeqCst);
        let _ = release.wait_for(|released| *released).await;
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
    match answer {
        Ok(_) if lose_answer => {
            let (content_type, text) = if target.is_some() {
                (
                    "application/x-amz-json-1.1",
                    r#"{"__type":"InternalFailure","message":"answer lost"}"#,
                )
            } else {
                (
                    "text/xml",
                    "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>answer lost</Message></Error></ErrorResponse>",
                )
            };
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, content_type)],
                text,
            )
                .into_response()
        }
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

impl AwsProxy {
    pub async fn start(upstream: &str) -> AwsProxy {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: Arc::default(),
            throttle_every: Arc::default(),
            fail_next: Arc::default(),
            fail_always: Arc::default(),
            lose_next_answer: Arc::default(),
            seen: Arc::default(),
            hold: Arc::default(),
            release: Arc::new(tokio::sync::watch::channel(false).0),
            held: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let router = axum::Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        AwsProxy {
            endpoint: format!("http://{address}"),
            shared,
        }
    }

    /// Answers every n-th request from now on with a throttling error (0 turns it off).
    pub fn throttle_every(&self, n: u32) {
        self.shared.seen.store(0, Ordering::SeqCst);
        self.shared.throttle_every.store(n, Ordering::SeqCst);
    }

    /// Answers the next request of `operation` (a JSON-protocol API such as ECR) with this
    /// AWS error, as AWS would and moto cannot.
    pub fn fail_next(&self, operation: &str, code: &str, message: &str) {
        self.shared
            .fail_next
            .lock()
            .unwrap()
            .insert(operation.to_owned(), (code.to_owned(), message.to_owned()));
    }

    /// Answers every request of `operation` (a JSON-protocol API) with this AWS error until
    /// [`AwsProxy::stop_failing`].
    pub fn fail_always(&self, operation: &str, code: &str, message: &str) {
        self.shared
            .fail_always
            .lock()
            .unwrap()
            .insert(operation.to_owned(), (code.to_owned(), message.to_owned()));
    }

    /// Lets the requests of `operation` through again.
    pub fn stop_failing(&self, operation: &str) {
        self.shared.fail_always.lock().unwrap().remove(operation);
    }

    /// Lets the next request of `operation` reach moto (it takes effect) but answers it with a
    /// 500, as when an answer is lost on the way back.
    pub fn lose_next_answer(&self, operation: &str) {
        self.shared
            .lose_next_answer
            .lock()
            .unwrap()
            .insert(operation.to_owned());
    }

    /// Holds back moto's answers to `operation` from now on until `release_answers`: the
    /// client receives an answer that was true when it asked.
    pub fn hold_answers(&self, operation: &str) {
        self.shared.release.send_replace(false);
        self.shared.hold.lock().unwrap().insert(operation.to_owned());
    }

    /// How many answers are held back now.
    pub fn held_answers(&self) -> u32 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Sends every held answer and stops holding.
    pub fn release_answers(&self) {
        self.shared.hold.lock().unwrap().clear();
        self.shared.release.send_replace(true);
    }

    /// Requests seen so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts_since(None)
    }

    /// Requests that arrived after `since` (all with None), by operation.
    pub fn counts_since(&self, since: Option<Instant>) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for call in self.shared.calls.lock().unwrap().iter() {
            if since.is_none_or(|since| call.at > since) {
                *counts.entry(call.operation.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The calls berth made of `operation`, in order: each the requests of one SDK invocation
    /// (its first attempt and its retries).
    pub fn invocations(&self, operation: &str) -> Vec<Vec<Call>> {
        let mut invocations: Vec<Vec<Call>> = Vec::new();
        for call in self.shared.calls.lock().unwrap().iter() {
            if call.operation != operation {
                continue;
            }
            match invocations.iter_mut().find(|i| i[0].invocation == call.invocation) {
                Some(invocation) => invocation.push(call.clone()),
                None => invocations.push(vec![call.clone()]),
            }
        }
        invocations
    }

    /// Forgets the requests seen so far.
    pub fn reset(&self) {
        self.shared.calls.lock().unwrap().clear();
    }
}

/// Operations that change something in AWS (`BatchGet*` / `BatchCheck*` only read).
pub fn is_write(operation: &str) -> bool {
    let batch_read = operation.starts_with("BatchGet") || operation.starts_with("BatchCheck");
    [
        "Create", "Put", "Set", "Tag", "Untag", "Delete", "Update", "Attach", "Detach", "Batch",
    ]
    .iter()
    .any(|prefix| operation.starts_with(prefix))
        && !batch_read
}
