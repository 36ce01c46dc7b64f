//! An in-process fake of the Alibaba Cloud R-kvstore API: a real HTTP
//! server on a real socket that checks requests the way the real API does
//! (common parameters, timestamp window, nonce reuse, the signature itself)
//! and serves `DescribeBackups` from data it is given, with real time-window
//! filtering, pagination and injected faults. `--demo` and the tests use it.

pub mod scenario;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::aliyun::sign;
use crate::clock::{self, Clock};
use crate::http::{self, respond, Request, Response};
pub use scenario::{FakeBackup, FakeInstance, Fault};

/// The page sizes the real DescribeBackups accepts.
const ACCEPTED_PAGE_SIZES: [usize; 5] = [30, 50, 100, 200, 300];

/// How many received requests are kept for inspection.
const MAX_RECEIVED: usize = 100_000;

/// Clock skew the real API tolerates.
const MAX_SKEW_MINUTES: i64 = 15;

/// An AccessKey the fake accepts.
#[derive(Debug, Clone)]
pub struct FakeKey {
    pub id: String,
    pub secret: String,
    /// When set, requests must carry exactly this `SecurityToken`.
    pub security_token: Option<String>,
}

/// One request the fake received, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub action: String,
    pub instance_id: String,
    pub page_number: usize,
    pub page_size: usize,
    /// `Success` or the error code answered.
    pub outcome: String,
    pub security_token: Option<String>,
}

#[derive(Default)]
struct State {
    keys: Vec<FakeKey>,
    instances: BTreeMap<String, FakeInstance>,
    /// Requests per instance, for `throttle_every`.
    counts: HashMap<String, u32>,
    /// Nonces with the request timestamp they came with; forgotten once that
    /// timestamp is out of the accepted window (a replay would be refused
    /// for its timestamp anyway), so a long demo does not grow without end.
    seen_nonces: HashMap<String, DateTime<Utc>>,
    /// The most recent requests, for tests (bounded for long demo runs).
    received: VecDeque<Received>,
    next_request_id: u64,
}

struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own
        // failure behind a poisoned mutex.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake API. Dropping it stops the server.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl FakeApi {
    /// Starts on `127.0.0.1` at a free port, accepting `keys`.
    pub async fn start(keys: Vec<FakeKey>) -> std::io::Result<FakeApi> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), keys, clock::system()).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        keys: Vec<FakeKey>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<FakeApi> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                keys,
                ..Default::default()
            }),
            clock,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let handler_shared = shared.clone();
        tokio::spawn(http::serve(
            listener,
            move |req| handle(handler_shared.clone(), req),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(FakeApi {
            addr,
            shared,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give a client, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_instance(&self, instance_id: &str, instance: FakeInstance) {
        self.shared
            .lock()
            .instances
            .insert(instance_id.to_string(), instance);
    }

    pub fn remove_instance(&self, instance_id: &str) {
        self.shared.lock().instances.remove(instance_id);
    }

    /// Changes an instance in place (adds a backup, sets a fault…).
    pub fn update_instance(&self, instance_id: &str, change: impl FnOnce(&mut FakeInstance)) {
        let mut state = self.shared.lock();
        change(state.instances.entry(instance_id.to_string()).or_default());
    }

    /// Faults for the next requests about `instance_id`, one each.
    pub fn push_faults(&self, instance_id: &str, faults: impl IntoIterator<Item = Fault>) {
        self.update_instance(instance_id, |i| i.queued_faults.extend(faults));
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.iter().cloned().collect()
    }

    /// Requests about one instance so far.
    pub fn requests_for(&self, instance_id: &str) -> usize {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.instance_id == instance_id)
            .count()
    }
}

/// An error answer in the shape of the real API's.
fn error(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    let body = json!({
        "RequestId": request_id,
        "HostId": "r-kvstore.aliyuncs.com",
        "Code": code,
        "Message": message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}"),
    });
    with_request_id(
        respond(status, "application/json;charset=utf-8", body.to_string()),
        request_id,
    )
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-acs-request-id", v);
    }
    response
}

async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let is_form = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = match http_body_util::Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                400,
                "InvalidParameter",
                "request body too large or broken",
                "-",
            )
        }
    };
    // RPC parameters come in the query string, and for POST also in a form body.
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if is_form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let request_id = {
        let mut state = shared.lock();
        state.next_request_id += 1;
        format!(
            "FAKE{:08X}-0000-4000-8000-{:012X}",
            state.next_request_id, state.next_request_id
        )
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    if method != "GET" && method != "POST" {
        return error(
            405,
            "UnsupportedHTTPMethod",
            "only GET and POST",
            &request_id,
        );
    }
    if let Some(answer) = check_auth(&shared, &method, &params, &request_id) {
        record(&shared, &params, &answer);
        return answer;
    }
    let answer = match get("Action") {
        Some("DescribeBackups") => describe_backups(&shared, &params, &request_id).await,
        _ => error(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            &request_id,
        ),
    };
    record(&shared, &params, &answer);
    answer
}

/// Checks everything about a request but its action's own parameters, in
/// the order the real API does; `Some` is the error answer.
fn check_auth(
    shared: &Shared,
    method: &str,
    params: &[(String, String)],
    request_id: &str,
) -> Option<Response> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    for required in [
        "Action",
        "Version",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ] {
        if get(required).is_none() {
            let message = format!("{required} is mandatory for this action.");
            return Some(error(
                400,
                &format!("Missing{required}"),
                &message,
                request_id,
            ));
        }
    }
    if get("Version") != Some(crate::products::kvstore::API_VERSION) {
        return Some(error(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
            request_id,
        ));
    }
    if get("Format").is_some_and(|f| !f.eq_ignore_ascii_case("JSON")) {
        return Some(error(
            400,
            "InvalidParameter.Format",
            "This fake answers JSON only.",
            request_id,
        ));
    }
    if get("SignatureMethod") != Some("HMAC-SHA1") {
        return Some(error(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
            request_id,
        ));
    }
    if get("SignatureVersion") != Some("1.0") {
        return Some(error(
            400,
            "InvalidSignatureVersion",
            "Specified signature version is not valid.",
            request_id,
        ));
    }
    let timestamp = get("Timestamp").unwrap_or_default();
    let Some(sent_at) = parse_timestamp(timestamp) else {
        return Some(error(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
            request_id,
        ));
    };
    let skew = (shared.clock.now() - sent_at).num_minutes().abs();
    if skew > MAX_SKEW_MINUTES {
        return Some(error(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
            request_id,
        ));
    }
    let mut state = shared.lock();
    let id = get("AccessKeyId").unwrap_or_default();
    let Some(key) = state.keys.iter().find(|k| k.id == id).cloned() else {
        return Some(error(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
            request_id,
        ));
    };
    let unsigned: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let string_to_sign = sign::string_to_sign(method, &unsigned);
    let expected = sign::sign_string(&string_to_sign, &key.secret);
    if !sign::signatures_equal(&expected, get("Signature").unwrap_or_default()) {
        // The real API echoes its string-to-sign; so does the fake, so that
        // tests prove the client does not repeat it.
        let message = format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}");
        return Some(error(400, "SignatureDoesNotMatch", &message, request_id));
    }
    if let Some(token) = &key.security_token {
        if get("SecurityToken") != Some(token.as_str()) {
            return Some(error(
                400,
                "InvalidSecurityToken.Mismatch",
                "Specified SecurityToken is invalid.",
                request_id,
            ));
        }
    }
    // Only a correctly signed nonce is remembered, like the real API.
    let nonce = get("SignatureNonce").unwrap_or_default().to_string();
    if state.seen_nonces.len() >= 10_000 {
        let horizon = shared.clock.now() - chrono::Duration::minutes(2 * MAX_SKEW_MINUTES);
        state.seen_nonces.retain(|_, sent| *sent > horizon);
    }
    if state.seen_nonces.insert(nonce, sent_at).is_some() {
        return Some(error(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
            request_id,
        ));
    }
    None
}

/// `yyyy-MM-ddTHH:mm:ssZ`, the only form the API takes.
fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// `yyyy-MM-ddTHH:mmZ`, the form of DescribeBackups' window.
fn parse_minute(raw: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%MZ")
        .ok()
        .map(|t| t.and_utc())
}

fn record(shared: &Shared, params: &[(String, String)], answer: &Response) {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let outcome = answer
        .headers()
        .get("x-fake-outcome")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(if answer.status().is_success() {
            "Success"
        } else {
            "error"
        })
        .to_string();
    let received = Received {
        action: get("Action").unwrap_or_default(),
        instance_id: get("InstanceId").unwrap_or_default(),
        page_number: get("PageNumber").and_then(|v| v.parse().ok()).unwrap_or(1),
        page_size: get("PageSize").and_then(|v| v.parse().ok()).unwrap_or(30),
        outcome,
        security_token: get("SecurityToken"),
    };
    let mut state = shared.lock();
    if state.received.len() >= MAX_RECEIVED {
        state.received.pop_front();
    }
    state.received.push_back(received);
}

/// Tags an answer with the code the fake meant, for `Received::outcome`.
fn outcome(mut response: Response, code: &str) -> Response {
    if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
        response.headers_mut().insert("x-fake-outcome", v);
    }
    response
}

async fn describe_backups(
    shared: &Shared,
    params: &[(String, String)],
    request_id: &str,
) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let fail =
        |status, code: &str, message: &str| outcome(error(status, code, message, request_id), code);

    let Some(instance_id) = get("InstanceId").filter(|s| !s.is_empty()) else {
        return fail(
            400,
            "MissingInstanceId",
            "InstanceId is mandatory for this action.",
        );
    };
    let Some(start) = get("StartTime").and_then(parse_minute) else {
        return fail(
            400,
            "InvalidStartTime.Malformed",
            "Specified parameter StartTime is not valid.",
        );
    };
    let Some(end) = get("EndTime").and_then(parse_minute) else {
        return fail(
            400,
            "InvalidEndTime.Malformed",
            "Specified parameter EndTime is not valid.",
        );
    };
    if end <= start {
        return fail(
            400,
            "InvalidStartTimeAndEndTime.Malformed",
            "EndTime must be later than StartTime.",
        );
    }
    let page_size = match get("PageSize").map(str::parse::<usize>) {
        None => 30,
        Some(Ok(n)) if ACCEPTED_PAGE_SIZES.contains(&n) => n,
        Some(_) => {
            return fail(
                400,
                "InvalidPageSize.Malformed",
                "Specified parameter PageSize is not valid.",
            )
        }
    };
    let page_number = match get("PageNumber").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return fail(
                400,
                "InvalidPageNumber.Malformed",
                "Specified parameter PageNumber is not valid.",
            )
        }
    };

    // Decide the fault (if any) and copy what is served, under the lock.
    let (fault, backups, quirky) = {
        let mut state = shared.lock();
        let Some(instance) = state.instances.get_mut(instance_id) else {
            drop(state);
            return fail(
                404,
                "InvalidInstanceId.NotFound",
                "The specified instance is not found.",
            );
        };
        let mut fault = instance
            .queued_faults
            .pop_front()
            .or_else(|| instance.always.clone());
        let throttle_every = instance.throttle_every;
        let mut backups: Vec<FakeBackup> = instance
            .backups
            .iter()
            .filter(|b| b.start >= start && b.start <= end)
            .cloned()
            .collect();
        let quirky = instance.quirky_types;
        let count = state.counts.entry(instance_id.to_string()).or_default();
        *count += 1;
        if fault.is_none() && throttle_every.is_some_and(|n| n > 0 && *count % n == 0) {
            fault = Some(Fault::Throttle {
                retry_after_ms: None,
            });
        }
        // Newest first, like the real API; the client must not rely on it.
        backups.sort_by_key(|b| std::cmp::Reverse(b.start));
        (fault, backups, quirky)
    };

    match fault {
        None => {}
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Throttle { retry_after_ms }) => {
            let mut answer = fail(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            if let Some(ms) = retry_after_ms {
                answer.headers_mut().insert("x-acs-retry-after", ms.into());
            }
            return answer;
        }
        Some(Fault::TooManyRequests) => {
            return fail(429, "Throttling", "Request was denied due to flow control.")
        }
        Some(Fault::ServerError) => {
            return fail(
                500,
                "InternalError",
                "The request processing has failed due to some unknown error.",
            )
        }
        Some(Fault::Unavailable) => {
            let body = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
            return outcome(
                with_request_id(respond(503, "text/html", body), request_id),
                "http_503",
            );
        }
        Some(Fault::InvalidJson) => {
            let body = format!(
                "{{\"RequestId\":\"{request_id}\",\"Backups\":{{\"Backup\":[{{\"BackupStatus\":"
            );
            return outcome(
                with_request_id(respond(200, "application/json", body), request_id),
                "invalid_json",
            );
        }
        Some(Fault::NotFound) => {
            return fail(
                404,
                "InvalidInstanceId.NotFound",
                "The specified instance is not found.",
            )
        }
        Some(Fault::Raw { status, body }) => {
            return outcome(
                with_request_id(respond(status, "application/json", body), request_id),
                "raw",
            );
        }
    }

    let total = backups.len();
    let items: Vec<serde_json::Value> = backups
        .iter()
        .enumerate()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(i, b)| scenario::render_backup(b, 100_000 + i as u64, quirky))
        .collect();
    let total_count = if quirky {
        json!(total.to_string())
    } else {
        json!(total)
    };
    let body = json!({
        "RequestId": request_id,
        "PageNumber": page_number,
        "PageSize": page_size,
        "TotalCount": total_count,
        "FullStorageSize": 0,
        "LogStorageSize": 0,
        "FreeSize": 0,
        "Backups": { "Backup": items },
    });
    with_request_id(
        respond(200, "application/json;charset=utf-8", body.to_string()),
        request_id,
    )
}
