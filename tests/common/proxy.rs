//! A recording proxy in front of moto: every AWS request berth makes passes through it and is
//! counted by operation, independently of berth's own metrics. It can also answer a share of
//! the requests with `ThrottlingException`, which moto cannot produce, answer every request of
//! one operation with a given AWS error until told to stop, and hold moto's answers back for a
//! while (as a slow network would). With `inject_faults`, a seeded fraction of all requests
//! meets one of the faults of a real network and service (see [`Fault`]), each counted. It pages
//! `DescribeRepositories` by the request's `maxResults` as AWS does, which moto does not (see
//! [`Paging`]).
//!
//! With `BERTH_RECORD_OPERATIONS=<file>` every forwarded request is also appended to that file
//! as `<service>:<Operation>` (e.g. `ecr:DescribeRepositories`), and every operator a test
//! starts talks to AWS through a proxy (see `recording_endpoint`), so that `scripts/test` can
//! check the IAM policies in `docs/` against all that berth did (`tests/iam_policy.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Call {
    /// Its place in the order of arrival, from 0.
    pub id: u64,
    pub operation: String,
    /// The SDK's `amz-sdk-invocation-id`: the same for every retry of one call.
    pub invocation: String,
    pub at: Instant,
    /// The request body as text (JSON for ECR, a form for IAM and STS).
    pub body: String,
    /// The fault this request met, if any (from `inject_faults`, or `lose_next_answer`).
    pub fault: Option<Fault>,
    /// The HTTP status moto answered with; None when the request did not reach moto.
    pub upstream_status: Option<u16>,
}

impl Call {
    /// Whether the request names `name` (a repository, a role), as a whole word: the
    /// characters around it cannot be part of a name (so `ns/a` is not in `ns/a-2`), and
    /// `ns/a` is found in an ARN `...:repository/ns/a` too.
    pub fn names(&self, name: &str) -> bool {
        let part_of_name = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        self.body.match_indices(name).any(|(at, _)| {
            let before = self.body[..at].chars().next_back();
            let after = self.body[at + name.len()..].chars().next();
            !before.is_some_and(part_of_name) && !after.is_some_and(|c| part_of_name(c) || c == '/')
        })
    }
}

/// A fault of the network or the service, as AWS clients meet them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `ThrottlingException` (JSON) or `Throttling` (query), HTTP 400.
    Throttle,
    /// `InternalFailure` (500) or `ServiceUnavailable` (503), in the protocol's shape.
    ServerError,
    /// No answer for [`Faults::delay`] (far longer than berth's SDK attempt timeout: only a
    /// timeout ends the wait), then the connection is closed; the request never reaches moto.
    Delay,
    /// The connection is closed without an answer; the request never reaches moto.
    Drop,
    /// Writes only: moto carries the request out, and its answer is replaced by a 5xx or a
    /// closed connection: the write happened, the client did not hear.
    LostAnswer,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Delay,
        Fault::Drop,
        Fault::LostAnswer,
    ];
}

/// What `inject_faults` does: `fraction` of the requests (chosen by a generator seeded with
/// `seed`, in arrival order) each meet one of `kinds`, picked uniformly among those that apply
/// (a read cannot lose a write's answer).
#[derive(Clone, Debug)]
pub struct Faults {
    pub fraction: f64,
    pub seed: u64,
    pub kinds: Vec<Fault>,
    /// How long a `Delay` holds a request.
    pub delay: Duration,
}

impl Faults {
    /// Every kind of fault, on `fraction` of the requests; a delayed request is answered by
    /// nothing but a closed connection ten minutes later, longer than any test waits.
    pub fn all(fraction: f64, seed: u64) -> Faults {
        Faults {
            fraction,
            seed,
            kinds: Fault::ALL.to_vec(),
            delay: Duration::from_secs(600),
        }
    }
}

/// splitmix64: a well-mixed 64-bit value from `x`, the same everywhere (no crate's stream).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The connection was closed on purpose, without an answer (hyper closes it when the service
/// fails).
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the fault injection")
    }
}

impl std::error::Error for Closed {}

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
    /// The fault mode, if on.
    faults: Arc<Mutex<Option<Faults>>>,
    /// Requests the fault mode has seen: the generator's position.
    drawn: Arc<AtomicU64>,
    /// Requests seen: the next call's id.
    arrived: Arc<AtomicU64>,
}

impl Shared {
    /// Notes on the call `id` what moto answered, and whether that answer was lost.
    fn record_answer(&self, id: u64, status: Option<u16>, lost: bool) {
        let mut calls = self.calls.lock().unwrap();
        if let Some(call) = calls.iter_mut().rev().find(|call| call.id == id) {
            call.upstream_status = status;
            if lost {
                call.fault = Some(Fault::LostAnswer);
            }
        }
    }

    /// The fault for the next request, if the fault mode gives it one.
    fn draw_fault(&self, write: bool) -> Option<(Fault, u64)> {
        let faults = self.faults.lock().unwrap().clone()?;
        let n = self.drawn.fetch_add(1, Ordering::SeqCst);
        let draw = mix(faults.seed ^ mix(n));
        // 53 random bits as a fraction of 1
        if (draw >> 11) as f64 / (1u64 << 53) as f64 >= faults.fraction {
            return None;
        }
        let applicable: Vec<Fault> = faults
            .kinds
            .iter()
            .copied()
            .filter(|kind| write || *kind != Fault::LostAnswer)
            .collect();
        let more = mix(draw);
        let kind = *applicable.get((more % applicable.len().max(1) as u64) as usize)?;
        Some((kind, mix(more)))
    }
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

/// An AWS error answer in the request's protocol: JSON (`X-Amz-Target`) or query (XML).
fn aws_error(json: bool, status: StatusCode, code: &str, message: &str) -> Response {
    let (content_type, text) = if json {
        (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else {
        let side = if status.is_server_error() { "Receiver" } else { "Sender" };
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ),
        )
    };
    (status, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// A throttling answer (the codes differ by protocol).
fn throttled(json: bool) -> Response {
    let code = if json { "ThrottlingException" } else { "Throttling" };
    aws_error(json, StatusCode::BAD_REQUEST, code, "Rate exceeded")
}

/// A 500 or a 503, by `bits`.
fn server_error(json: bool, bits: u64) -> Response {
    if bits.is_multiple_of(2) {
        aws_error(
            json,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "injected fault",
        )
    } else {
        aws_error(
            json,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "injected fault",
        )
    }
}

/// Serves one connection; a request answered by `Err` closes it without an answer.
async fn serve_connection(shared: Shared, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        forward(shared.clone(), request.map(Body::new))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn forward(shared: Shared, request: axum::http::Request<Body>) -> Result<Response, Closed> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(StatusCode::BAD_REQUEST.into_response()),
    };
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let json = target.is_some();
    let operation = operation(target, &body);
    let invocation = parts
        .headers
        .get("amz-sdk-invocation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // the other modes come first; the fault mode draws only for what they let through
    let persistent = shared.fail_always.lock().unwrap().get(&operation).cloned();
    let injected = persistent.or_else(|| shared.fail_next.lock().unwrap().remove(&operation));
    let every = shared.throttle_every.load(Ordering::SeqCst);
    let throttle = every > 0 && shared.seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(every);
    let drawn = if injected.is_none() && !throttle {
        shared.draw_fault(is_write(&operation))
    } else {
        None
    };
    let id = shared.arrived.fetch_add(1, Ordering::SeqCst);
    shared.calls.lock().unwrap().push(Call {
        id,
        operation: operation.clone(),
        invocation,
        at: Instant::now(),
        body: String::from_utf8_lossy(&body).into_owned(),
        fault: drawn.map(|(fault, _)| fault),
        upstream_status: None,
    });
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    record_operation(service(authorization), &operation);

    if let Some((code, message)) = injected {
        return Ok(aws_error(true, StatusCode::BAD_REQUEST, &code, &message));
    }
    if throttle {
        return Ok(throttled(json));
    }

    match drawn {
        Some((Fault::Throttle, _)) => return Ok(throttled(json)),
        Some((Fault::ServerError, bits)) => return Ok(server_error(json, bits)),
        Some((Fault::Delay, _)) => {
            let delay = shared.faults.lock().unwrap().as_ref().map(|f| f.delay);
            tokio::time::sleep(delay.unwrap_or_default()).await;
            return Err(Closed);
        }
        Some((Fault::Drop, _)) => return Err(Closed),
        Some((Fault::LostAnswer, _)) | None => {}
    }

    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let paging = Paging::of(&operation, &body);
    let mut upstream = axum::http::Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        // a paged request's body is rewritten: its length is the new body's
        if !(paging.is_some() && name == header::CONTENT_LENGTH) {
            upstream = upstream.header(name, value);
        }
    }
    let body = paging.as_ref().map_or(body, |paging| paging.upstream_body.clone());
    let upstream = upstream.body(Full::new(body)).expect("a valid request");
    let lose_answer = shared.lose_next_answer.lock().unwrap().remove(&operation);
    let answer = shared.client.request(upstream).await;
    shared.record_answer(id, answer.as_ref().ok().map(|a| a.status().as_u16()), lose_answer);
    if shared.hold.lock().unwrap().contains(&operation) {
        // moto has answered as things were now; the client gets that answer only later
        let mut release = shared.release.subscribe();
        shared.held.fetch_add(1, Ordering::SeqCst);
        let _ = release.wait_for(|released| *released).await;
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
    if let (Ok(_), Some((Fault::LostAnswer, bits))) = (&answer, drawn) {
        // moto carried it out; the answer is lost as a closed connection or a 5xx
        return if bits.is_multiple_of(3) {
            Err(Closed)
        } else {
            Ok(server_error(json, bits / 3))
        };
    }
    match answer {
        Ok(_) if lose_answer => Ok(aws_error(
            json,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "answer lost",
        )),
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            // moto closes the connection after every answer; AWS keeps it open, and so does the
            // proxy, so that berth pays per request what it pays against AWS (with a new
            // connection per request, about 30% of berth's CPU in the benchmark was the kernel's)
            parts.headers.remove(header::CONNECTION);
            match paging {
                Some(paging) if parts.status.is_success() => {
                    let whole = body.collect().await.map_err(|_| Closed)?.to_bytes();
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Ok(Response::from_parts(parts, Body::from(paging.page(&whole))))
                }
                _ => Ok(Response::from_parts(parts, Body::new(body))),
            }
        }
        Err(error) => Ok((StatusCode::BAD_GATEWAY, error.to_string()).into_response()),
    }
}

/// A `DescribeRepositories` of the whole region with `maxResults`: moto answers it with every
/// repository in one page, AWS with at most `maxResults` (1,000 at most) and a `nextToken`. The
/// proxy asks moto for all of them and answers the page AWS would, with a token of its own (the
/// offset of the next page). Without paging, berth held 10,000 repositories' answer at once
/// (about 9 MiB at its peak in the benchmark) where against AWS it holds one page of 1,000.
struct Paging {
    upstream_body: Bytes,
    offset: usize,
    size: usize,
}

const PAGE_TOKEN: &str = "berth-proxy-page-";

impl Paging {
    fn of(operation: &str, body: &[u8]) -> Option<Paging> {
        if operation != "DescribeRepositories" {
            return None;
        }
        let mut request: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        if request.contains_key("repositoryNames") {
            return None;
        }
        let size = usize::try_from(request.get("maxResults")?.as_u64()?)
            .ok()?
            .clamp(1, 1000);
        let offset = match request.remove("nextToken") {
            Some(token) => token.as_str()?.strip_prefix(PAGE_TOKEN)?.parse().ok()?,
            None => 0,
        };
        request.remove("maxResults");
        Some(Paging {
            upstream_body: serde_json::to_vec(&request).ok()?.into(),
            offset,
            size,
        })
    }

    /// This request's page of moto's whole answer.
    fn page(&self, whole: &[u8]) -> Vec<u8> {
        let Ok(mut answer) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(whole) else {
            return whole.to_vec();
        };
        let repositories = match answer.remove("repositories") {
            Some(serde_json::Value::Array(repositories)) => repositories,
            _ => Vec::new(),
        };
        let end = self.offset.saturating_add(self.size).min(repositories.len());
        let page: Vec<_> = repositories.get(self.offset..end).unwrap_or_default().to_vec();
        answer.insert("repositories".into(), page.into());
        if end < repositories.len() {
            answer.insert("nextToken".into(), format!("{PAGE_TOKEN}{end}").into());
        }
        serde_json::to_vec(&answer).expect("JSON")
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
            faults: Arc::default(),
            drawn: Arc::default(),
            arrived: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let serving = shared.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_connection(serving.clone(), stream));
                }
            }
        });
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

    /// From now on, gives `faults.fraction` of all requests a fault (see [`Faults`]).
    pub fn inject_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = Some(faults);
    }

    /// Turns the fault mode off.
    pub fn stop_faults(&self) {
        *self.shared.faults.lock().unwrap() = None;
    }

    /// Faults injected so far, by kind and operation.
    pub fn fault_counts(&self) -> BTreeMap<(Fault, String), u64> {
        let mut counts = BTreeMap::new();
        for call in self.shared.calls.lock().unwrap().iter() {
            if let Some(fault) = call.fault {
                *counts.entry((fault, call.operation.clone())).or_default() += 1;
            }
        }
        counts
    }

    /// Every request seen so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
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
