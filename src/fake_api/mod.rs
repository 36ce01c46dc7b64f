//! An in-process fake of the Alibaba Cloud APIs the exporter calls: a real
//! HTTP server on a real socket that checks requests the way the real API
//! does and serves a whole fleet from data it is given. `--demo`, the tests
//! and the benchmark use it.
//!
//! - `mod.rs`: the server, its shared state, the `FakeApi` handle, request
//!   dispatch, injected latency and per-action faults, and the record of
//!   received requests.
//! - `auth`: what is checked before any action (common parameters, the
//!   timestamp window, nonce reuse, the signature, the security token and
//!   its expiry), for signature V2 (parameters from the query string and a
//!   form body) and V3 (`x-acs-*` headers, `Authorization`, body hash).
//! - `kvstore`: R-kvstore's `DescribeBackups`, `DescribeClusterBackupList`
//!   (cloud-native clusters), `DescribeBackupPolicy`, `DescribeInstances`
//!   and `DescribeRegions`, with accounts, pagination and filters.
//! - `rds`, `dds`, `polardb`: the same calls of ApsaraDB RDS (2014-08-15),
//!   MongoDB (2015-12-01) and PolarDB (2017-08-01): `DescribeBackups` (per
//!   `NodeId` on sharded MongoDB clusters), `DescribeBackupPolicy`, and
//!   discovery (`DescribeDBInstances`, `DescribeDBClusters`), each in its
//!   product's envelope, field names and types. A request's `Version`
//!   picks the product, as the host does for the real API.
//! - `sts`: STS `AssumeRole`, minting keys that the other actions accept.
//! - `scenario`: the data types (keys, roles, instances, backups, faults)
//!   and how they render as JSON.

mod auth;
mod dds;
mod kvstore;
mod polardb;
mod rds;
pub mod scenario;
mod sts;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::aliyun::sign_v3;
use crate::clock::{self, Clock};
use crate::http::{self, respond, Request, Response};
pub use scenario::{
    FakeBackup, FakeClusterBackup, FakeInfo, FakeInstance, FakeKey, FakePolicy, FakeProduct,
    FakeRole, FakeShardBackup, Fault,
};

/// How many received requests are kept for inspection.
const MAX_RECEIVED: usize = 100_000;

/// The actions the fake serves (each for the products listed in
/// `product_serves`).
const ACTIONS: [&str; 8] = [
    "DescribeBackups",
    "DescribeClusterBackupList",
    "DescribeBackupPolicy",
    "DescribeInstances",
    "DescribeRegions",
    "DescribeDBInstances",
    "DescribeDBClusters",
    "AssumeRole",
];

/// Whether `product`'s API has `action` (an action of another product is
/// `InvalidAction.NotFound`, as on the real product's host).
fn product_serves(product: FakeProduct, action: &str) -> bool {
    match product {
        FakeProduct::Redis => matches!(
            action,
            "DescribeBackups"
                | "DescribeClusterBackupList"
                | "DescribeBackupPolicy"
                | "DescribeInstances"
                | "DescribeRegions"
        ),
        FakeProduct::Rds | FakeProduct::MongoDb => matches!(
            action,
            "DescribeBackups" | "DescribeBackupPolicy" | "DescribeDBInstances"
        ),
        FakeProduct::PolarDb => matches!(
            action,
            "DescribeBackups" | "DescribeBackupPolicy" | "DescribeDBClusters"
        ),
    }
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
    /// The request's `RegionId`, if it sent one.
    pub region_id: Option<String>,
    /// The request's `NodeId` (MongoDB shard), if it sent one.
    pub node_id: Option<String>,
    /// The API version it named (which product it was for).
    pub version: String,
    /// The `AccessKeyId` it was signed with (or claimed, if refused).
    pub access_key_id: String,
    /// The request-target as received: path and query string, i.e. what a
    /// proxy or access log in front of the API would record.
    pub target: String,
    /// `v2` or `v3`: how the request was signed (or claimed to be).
    pub signature_version: &'static str,
}

/// A key the fake accepts; keys minted by `AssumeRole` expire.
#[derive(Debug, Clone)]
struct AcceptedKey {
    key: FakeKey,
    expires: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    keys: Vec<AcceptedKey>,
    roles: BTreeMap<String, FakeRole>,
    instances: BTreeMap<String, FakeInstance>,
    /// DescribeRegions' answer, when a test set one.
    regions: Option<Vec<String>>,
    /// Requests per instance, for `throttle_every`.
    counts: HashMap<String, u32>,
    /// A fault for every request of an action, until cleared.
    action_faults: HashMap<String, Fault>,
    /// Faults for the next requests of an action, one each.
    queued_action_faults: HashMap<String, VecDeque<Fault>>,
    /// Waited before every answer.
    latency: Duration,
    /// List answers (DescribeBackups, DescribeInstances, and the other
    /// products' DescribeBackups, DescribeDBInstances, DescribeDBClusters)
    /// leave out their total (`TotalCount`, `TotalRecordCount`), as some API
    /// versions and proxies do.
    omit_total_count: bool,
    /// AssumeRole requests received, answered or refused.
    assume_role_calls: usize,
    /// Keys minted by AssumeRole so far (for unique IDs).
    minted: u64,
    /// Nonces with the request timestamp they came with; forgotten once that
    /// timestamp is out of the accepted window (a replay would be refused
    /// for its timestamp anyway), so a long demo does not grow without end.
    seen_nonces: HashMap<String, DateTime<Utc>>,
    /// The most recent requests, for tests (bounded for long demo runs).
    received: VecDeque<Received>,
    next_request_id: u64,
    /// Where every request's arrival is written, from when it was set.
    request_log: Option<(Instant, Box<dyn Write + Send>)>,
}

impl State {
    /// The next fault of `action`: a queued one first, then the standing one.
    fn take_action_fault(&mut self, action: &str) -> Option<Fault> {
        self.queued_action_faults
            .get_mut(action)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.action_faults.get(action).cloned())
    }
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

/// The parameters of one request: query string and form body together.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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

    /// Starts on `addr`; `clock` is the fake's idea of now (timestamp
    /// window, STS expirations).
    pub async fn start_on(
        addr: SocketAddr,
        keys: Vec<FakeKey>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<FakeApi> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let keys = keys
            .into_iter()
            .map(|key| AcceptedKey { key, expires: None })
            .collect();
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
            http::Limits::default(),
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

    /// Accepts one more key (it never expires).
    pub fn add_key(&self, key: FakeKey) {
        self.shared
            .lock()
            .keys
            .push(AcceptedKey { key, expires: None });
    }

    /// A role `AssumeRole` can hand out credentials for (replaces one with
    /// the same ARN).
    pub fn add_role(&self, role: FakeRole) {
        self.shared.lock().roles.insert(role.arn.clone(), role);
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

    /// DescribeRegions answers these regions. Until set, it answers the
    /// regions of all instances plus `cn-hangzhou`.
    pub fn set_regions(&self, regions: Vec<String>) {
        self.shared.lock().regions = Some(regions);
    }

    /// Every request of `action` (e.g. `DescribeInstances`, `AssumeRole`)
    /// answers `fault` until it is cleared with `None`. Queued faults of the
    /// action come first.
    pub fn set_action_fault(&self, action: &str, fault: Option<Fault>) {
        let mut state = self.shared.lock();
        match fault {
            Some(fault) => state.action_faults.insert(action.to_string(), fault),
            None => state.action_faults.remove(action),
        };
    }

    /// Faults for the next requests of `action`, one each.
    pub fn push_action_faults(&self, action: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .lock()
            .queued_action_faults
            .entry(action.to_string())
            .or_default()
            .extend(faults);
    }

    /// Every answer, of any action, waits this long first (benchmarks).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// List answers leave out `TotalCount` from now on (or put it back).
    pub fn omit_total_count(&self, omit: bool) {
        self.shared.lock().omit_total_count = omit;
    }

    /// From now on, writes one line per request as it arrives (before the
    /// injected latency): seconds since this call on the monotonic clock,
    /// with microseconds, then the action, e.g. `12.345678 DescribeBackups`
    /// (the benchmark's burst check). Write errors are ignored.
    pub fn log_requests(&self, sink: Box<dyn Write + Send>) {
        self.shared.lock().request_log = Some((Instant::now(), sink));
    }

    /// AssumeRole requests received so far, answered or refused.
    pub fn assume_role_calls(&self) -> usize {
        self.shared.lock().assume_role_calls
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

/// The host an error document names, per product.
fn host_of(action: &str) -> &'static str {
    if action == "AssumeRole" {
        "sts.aliyuncs.com"
    } else {
        "r-kvstore.aliyuncs.com"
    }
}

/// An error answer of `product`'s API, tagged with its code.
fn product_fail(
    product: FakeProduct,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response {
    outcome(
        error_from(product.host(), status, code, message, request_id),
        code,
    )
}

/// `product`'s answer for an instance that does not exist for the caller.
fn product_not_found(product: FakeProduct, request_id: &str) -> Response {
    let (code, message) = product.not_found();
    product_fail(product, 404, code, message, request_id)
}

/// The instance of `product` a backup listing is about, under the lock:
/// its next fault (queued, then `always`, then every `throttle_every`-th
/// request) and what `read` copies of it. An instance of another product,
/// released, unknown, of another account, or (when `region` is given) in
/// another region does not exist for the caller: `Err` is that answer.
fn listing_lookup<T>(
    shared: &Shared,
    key: &FakeKey,
    product: FakeProduct,
    instance_id: &str,
    region: Option<&str>,
    request_id: &str,
    read: impl FnOnce(&FakeInstance) -> T,
) -> Result<(Option<Fault>, T), Box<Response>> {
    let mut state = shared.lock();
    let Some(instance) = state.instances.get_mut(instance_id).filter(|i| {
        i.product == product
            && !i.released
            && i.visible_to(&key.account)
            && region.is_none_or(|r| r == i.info.region_id)
    }) else {
        drop(state);
        return Err(Box::new(product_not_found(product, request_id)));
    };
    let mut fault = instance
        .queued_faults
        .pop_front()
        .or_else(|| instance.always.clone());
    let throttle_every = instance.throttle_every;
    let copied = read(instance);
    let count = state.counts.entry(instance_id.to_string()).or_default();
    *count += 1;
    if fault.is_none() && throttle_every.is_some_and(|n| n > 0 && count.is_multiple_of(n)) {
        fault = Some(Fault::Throttle {
            retry_after_ms: None,
        });
    }
    Ok((fault, copied))
}

/// The policy of `product`'s instance `instance_id` and its policy fault;
/// `Err` is the not-found answer.
fn policy_lookup(
    shared: &Shared,
    key: &FakeKey,
    product: FakeProduct,
    instance_id: &str,
    request_id: &str,
) -> Result<(Option<Fault>, FakePolicy), Box<Response>> {
    let state = shared.lock();
    state
        .instances
        .get(instance_id)
        .filter(|i| i.product == product && !i.released && i.visible_to(&key.account))
        .map(|i| (i.policy_fault.clone(), i.policy.clone()))
        .ok_or_else(|| Box::new(product_not_found(product, request_id)))
}

/// The instances of `product` a key sees (not released), ordered by id (a
/// stable order across pages), that `keep` keeps, rendered by `render`.
fn listed<T>(
    shared: &Shared,
    key: &FakeKey,
    product: FakeProduct,
    keep: impl Fn(&str, &FakeInstance) -> bool,
    render: impl Fn(&str, &FakeInstance) -> T,
) -> Vec<T> {
    let state = shared.lock();
    state
        .instances
        .iter()
        .filter(|(id, i)| {
            i.product == product && !i.released && i.visible_to(&key.account) && keep(id, i)
        })
        .map(|(id, i)| render(id, i))
        .collect()
}

/// Page `page_number` (from 1) of `page_size` items.
fn page_of<T: Clone>(items: &[T], page_number: usize, page_size: usize) -> Vec<T> {
    items
        .iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .cloned()
        .collect()
}

/// `Tag.N.Key` / `Tag.N.Value` (N from 1 to 5), as R-kvstore, MongoDB and
/// PolarDB take them: each key with its value when one is given. `Err` is
/// the name of the first parameter that is not valid.
fn tag_params(params: &Params) -> Result<Vec<(String, Option<String>)>, String> {
    let mut tags: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (name, value) in &params.0 {
        let Some(rest) = name.strip_prefix("Tag.") else {
            continue;
        };
        let (n, field) = rest.split_once('.').ok_or_else(|| name.clone())?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| name.clone())?;
        let entry = tags.entry(n).or_default();
        match field {
            "Key" => entry.0 = Some(value.clone()),
            "Value" => entry.1 = Some(value.clone()),
            _ => return Err(name.clone()),
        }
    }
    tags.into_iter()
        .map(|(n, pair)| match pair {
            (Some(key), value) if !key.is_empty() => Ok((key, value)),
            _ => Err(format!("Tag.{n}.Key")),
        })
        .collect()
}

/// A page size of a discovery call: `default` when absent, else one of
/// `accepted`; `Err` when it is not.
fn list_page(
    params: &Params,
    accepted: &[usize],
    default: usize,
) -> Result<(usize, usize), String> {
    let page_size = match params.get("PageSize").map(str::parse::<usize>) {
        None => default,
        Some(Ok(n)) if accepted.contains(&n) => n,
        Some(_) => return Err("PageSize".into()),
    };
    let page_number = match params.get("PageNumber").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Err("PageNumber".into()),
    };
    Ok((page_size, page_number))
}

/// An error answer in the shape of the real API's.
fn error(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    error_from("r-kvstore.aliyuncs.com", status, code, message, request_id)
}

fn error_from(host: &str, status: u16, code: &str, message: &str, request_id: &str) -> Response {
    let body = json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": code,
        "Message": message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}"),
    });
    with_request_id(
        respond(status, "application/json;charset=utf-8", body.to_string()),
        request_id,
    )
}

/// A list answer: `body` without its total (`total_key`) when the fake
/// was told to leave totals out (`FakeApi::omit_total_count`).
fn list_json(
    shared: &Shared,
    mut body: serde_json::Value,
    total_key: &str,
    request_id: &str,
) -> Response {
    if shared.lock().omit_total_count {
        if let Some(o) = body.as_object_mut() {
            o.remove(total_key);
        }
    }
    ok_json(&body, request_id)
}

/// A successful JSON answer.
fn ok_json(body: &serde_json::Value, request_id: &str) -> Response {
    with_request_id(
        respond(200, "application/json;charset=utf-8", body.to_string()),
        request_id,
    )
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-acs-request-id", v);
    }
    response
}

/// Tags an answer with the code the fake meant, for `Received::outcome`.
fn outcome(mut response: Response, code: &str) -> Response {
    if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
        response.headers_mut().insert("x-fake-outcome", v);
    }
    response
}

/// An error answer tagged with its code.
fn fail(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    outcome(error(status, code, message, request_id), code)
}

/// The answer a fault makes for `action`; `None` when the request goes on
/// (a slow answer, once it has waited).
async fn fault_answer(fault: Fault, action: &str, request_id: &str) -> Option<Response> {
    let not_found = FakeProduct::Redis.not_found();
    fault_answer_at(host_of(action), not_found, fault, action, request_id).await
}

/// Plays a looked-up instance's fault, if it has one, for `action`: `Some`
/// is the answer that ends the request (a `Slow` fault only delays it).
async fn play_fault(
    product: FakeProduct,
    fault: Option<Fault>,
    action: &str,
    request_id: &str,
) -> Option<Response> {
    product_fault_answer(product, fault?, action, request_id).await
}

/// `DescribeBackups` of RDS and PolarDB: the instance's backups that started
/// within `[start, end]` (and have `status`, when asked), newest first as the
/// real APIs list them, each with its index (its backup ID's number), and
/// whether the instance answers with quirky types; its fault, if any,
/// already played. `Err` is the answer that ends the request.
#[allow(clippy::too_many_arguments)]
async fn backups_in_window(
    shared: &Shared,
    key: &FakeKey,
    product: FakeProduct,
    instance_id: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    status: Option<&str>,
    request_id: &str,
) -> Result<(Vec<(usize, FakeBackup)>, bool), Response> {
    let (fault, found) = listing_lookup(shared, key, product, instance_id, None, request_id, |i| {
        let mut backups: Vec<(usize, FakeBackup)> = i
            .backups
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, b)| b.start >= start && b.start <= end)
            .filter(|(_, b)| status.is_none_or(|s| s.eq_ignore_ascii_case(&b.status)))
            .collect();
        backups.sort_by_key(|(_, b)| std::cmp::Reverse(b.start));
        (backups, i.quirky_types)
    })
    .map_err(|answer| *answer)?;
    match play_fault(product, fault, "DescribeBackups", request_id).await {
        Some(answer) => Err(answer),
        None => Ok(found),
    }
}

/// The same for an action of `product`: its host and its not-found code.
async fn product_fault_answer(
    product: FakeProduct,
    fault: Fault,
    action: &str,
    request_id: &str,
) -> Option<Response> {
    fault_answer_at(
        product.host(),
        product.not_found(),
        fault,
        action,
        request_id,
    )
    .await
}

async fn fault_answer_at(
    host: &str,
    (not_found_code, not_found_message): (&str, &str),
    fault: Fault,
    action: &str,
    request_id: &str,
) -> Option<Response> {
    let fail = |status, code: &str, message: &str| {
        outcome(error_from(host, status, code, message, request_id), code)
    };
    Some(match fault {
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            return None;
        }
        Fault::Throttle { retry_after_ms } => {
            let mut answer = fail(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
            if let Some(ms) = retry_after_ms {
                answer.headers_mut().insert("x-acs-retry-after", ms.into());
            }
            answer
        }
        Fault::TooManyRequests => {
            fail(429, "Throttling", "Request was denied due to flow control.")
        }
        Fault::ServerError => fail(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error.",
        ),
        Fault::Unavailable => {
            let body = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
            outcome(
                with_request_id(respond(503, "text/html", body), request_id),
                "http_503",
            )
        }
        Fault::InvalidJson => {
            // Cut off in the middle of the list, as a broken proxy would.
            let list = match action {
                "DescribeInstances" => "\"Instances\":{\"KVStoreInstance\":[{\"InstanceId\":",
                "DescribeRegions" => "\"RegionIds\":{\"KVStoreRegion\":[{\"RegionId\":",
                "AssumeRole" => "\"Credentials\":{\"AccessKeyId\":",
                "DescribeClusterBackupList" => "\"ClusterBackups\":[{\"ClusterBackupStatus\":",
                "DescribeBackupPolicy" => "\"PreferredBackupPeriod\":",
                "DescribeDBInstances" | "DescribeDBClusters" => "\"Items\":{\"DBInstance\":[{",
                _ => "\"Backups\":{\"Backup\":[{\"BackupStatus\":",
            };
            let body = format!("{{\"RequestId\":\"{request_id}\",{list}");
            outcome(
                with_request_id(respond(200, "application/json", body), request_id),
                "invalid_json",
            )
        }
        Fault::NotFound => fail(404, not_found_code, not_found_message),
        Fault::Forbidden => fail(
            403,
            "Forbidden.RAM",
            "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
        ),
        Fault::Raw { status, body } => outcome(
            with_request_id(respond(status, "application/json", body), request_id),
            "raw",
        ),
    })
}

async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    // The request-target as received, for tests to prove what URLs carry.
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let is_form = content_type.as_deref().is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(FORM))
    });
    let (head, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, 1 << 20).collect().await {
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
    let headers = head.headers;
    // V3 names itself in `Authorization`; anything else is checked as V2.
    let v3 = headers.contains_key(hyper::header::AUTHORIZATION);
    // RPC parameters come in the query string, in a form body, or both.
    let query_params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let body_params: Vec<(String, String)> = if is_form {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        Vec::new()
    };
    let mut params = query_params.clone();
    params.extend(body_params.iter().cloned());
    if v3 {
        // What V3 says in headers, as parameters for the actions and the record.
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        for (param, value) in [
            ("Action", header(sign_v3::ACTION)),
            ("Version", header(sign_v3::VERSION)),
            ("SecurityToken", header(sign_v3::SECURITY_TOKEN)),
            (
                "AccessKeyId",
                header("authorization")
                    .and_then(sign_v3::parse_authorization)
                    .map(|a| a.access_key_id),
            ),
        ] {
            params.retain(|(k, _)| k != param);
            if let Some(value) = value {
                params.push((param.to_string(), value.to_string()));
            }
        }
    }
    let params = Params(params);
    let action = params.get("Action").unwrap_or_default().to_string();
    let (request_id, latency) = {
        let mut state = shared.lock();
        state.next_request_id += 1;
        if action == "AssumeRole" {
            state.assume_role_calls += 1;
        }
        if let Some((since, sink)) = &mut state.request_log {
            let at = since.elapsed().as_secs_f64();
            let _ = writeln!(sink, "{at:.6} {action}");
        }
        let id = format!(
            "FAKE{:08X}-0000-4000-8000-{:012X}",
            state.next_request_id, state.next_request_id
        );
        (id, state.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let seen = Seen {
        target,
        signature_version: if v3 { "v3" } else { "v2" },
    };
    let refuse = |status, code: &str, message: &str| {
        outcome(
            error_from(host_of(&action), status, code, message, &request_id),
            code,
        )
    };
    if method != "GET" && method != "POST" {
        let answer = refuse(405, "UnsupportedHTTPMethod", "only GET and POST");
        record(&shared, &params, &seen, &answer);
        return answer;
    }
    // A body the fake would not read must not pass unnoticed: its
    // parameters would go unsigned and unchecked.
    if !body.is_empty() && !is_form {
        let message = format!(
            "the body must be {FORM}, not {}",
            content_type.as_deref().unwrap_or("without a content type")
        );
        let answer = refuse(400, "InvalidParameter.ContentType", &message);
        record(&shared, &params, &seen, &answer);
        return answer;
    }
    if let Some((name, _)) = body_params
        .iter()
        .find(|(name, _)| query_params.iter().any(|(q, _)| q == name))
    {
        let message =
            format!("The parameter {name} is given both in the query string and in the body.");
        let answer = refuse(400, "InvalidParameter", &message);
        record(&shared, &params, &seen, &answer);
        return answer;
    }
    let checked = if v3 {
        let request = auth::V3Request {
            method: &method,
            headers: &headers,
            query: &query_params,
            body: &body,
        };
        auth::check_v3(&shared, &request, &request_id)
    } else {
        auth::check(&shared, &method, &params, &request_id)
    };
    let answer = match checked {
        Err(refused) => *refused,
        Ok(key) => dispatch(&shared, &key, &action, &params, &request_id).await,
    };
    record(&shared, &params, &seen, &answer);
    answer
}

/// The form body's content type.
const FORM: &str = "application/x-www-form-urlencoded";

/// What `record` keeps of the request besides its parameters.
struct Seen {
    target: String,
    signature_version: &'static str,
}

/// Runs an authenticated request: the action's injected fault if any, else
/// the action itself.
async fn dispatch(
    shared: &Shared,
    key: &FakeKey,
    action: &str,
    params: &Params,
    request_id: &str,
) -> Response {
    if !ACTIONS.contains(&action) {
        return error(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            request_id,
        );
    }
    // The version names the product (authentication has checked that it
    // is one the fake knows); STS's is not a product's.
    let product = params.get("Version").and_then(FakeProduct::from_version);
    if product.is_some_and(|p| !product_serves(p, action)) {
        return error_from(
            product.map_or("", |p| p.host()),
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            request_id,
        );
    }
    let fault = shared.lock().take_action_fault(action);
    if let Some(fault) = fault {
        let answer = match product {
            Some(p) if p != FakeProduct::Redis => {
                product_fault_answer(p, fault, action, request_id).await
            }
            _ => fault_answer(fault, action, request_id).await,
        };
        if let Some(answer) = answer {
            return answer;
        }
    }
    match (product, action) {
        (Some(FakeProduct::Rds), "DescribeBackups") => {
            rds::describe_backups(shared, key, params, request_id).await
        }
        (Some(FakeProduct::Rds), "DescribeBackupPolicy") => {
            rds::describe_backup_policy(shared, key, params, request_id).await
        }
        (Some(FakeProduct::Rds), _) => rds::describe_db_instances(shared, key, params, request_id),
        (Some(FakeProduct::MongoDb), "DescribeBackups") => {
            dds::describe_backups(shared, key, params, request_id).await
        }
        (Some(FakeProduct::MongoDb), "DescribeBackupPolicy") => {
            dds::describe_backup_policy(shared, key, params, request_id).await
        }
        (Some(FakeProduct::MongoDb), _) => {
            dds::describe_db_instances(shared, key, params, request_id)
        }
        (Some(FakeProduct::PolarDb), "DescribeBackups") => {
            polardb::describe_backups(shared, key, params, request_id).await
        }
        (Some(FakeProduct::PolarDb), "DescribeBackupPolicy") => {
            polardb::describe_backup_policy(shared, key, params, request_id).await
        }
        (Some(FakeProduct::PolarDb), _) => {
            polardb::describe_db_clusters(shared, key, params, request_id)
        }
        _ => redis_or_sts(shared, key, action, params, request_id).await,
    }
}

/// R-kvstore's actions and STS's.
async fn redis_or_sts(
    shared: &Shared,
    key: &FakeKey,
    action: &str,
    params: &Params,
    request_id: &str,
) -> Response {
    match action {
        "DescribeBackups" => kvstore::describe_backups(shared, key, params, request_id).await,
        "DescribeClusterBackupList" => {
            kvstore::describe_cluster_backup_list(shared, key, params, request_id).await
        }
        "DescribeBackupPolicy" => {
            kvstore::describe_backup_policy(shared, key, params, request_id).await
        }
        "DescribeInstances" => kvstore::describe_instances(shared, key, params, request_id),
        "DescribeRegions" => kvstore::describe_regions(shared, params, request_id),
        _ => sts::assume_role(shared, key, params, request_id),
    }
}

fn record(shared: &Shared, params: &Params, seen: &Seen, answer: &Response) {
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
    let text = |name: &str| params.get(name).map(str::to_string);
    let received = Received {
        action: text("Action").unwrap_or_default(),
        // Each product names its instance its own way.
        instance_id: text("InstanceId")
            .or_else(|| text("DBInstanceId"))
            .or_else(|| text("DBClusterId"))
            .unwrap_or_default(),
        page_number: params
            .get("PageNumber")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        page_size: params
            .get("PageSize")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
        outcome,
        security_token: text("SecurityToken"),
        region_id: text("RegionId"),
        node_id: text("NodeId"),
        version: text("Version").unwrap_or_default(),
        access_key_id: text("AccessKeyId").unwrap_or_default(),
        target: seen.target.clone(),
        signature_version: seen.signature_version,
    };
    let mut state = shared.lock();
    if state.received.len() >= MAX_RECEIVED {
        state.received.pop_front();
    }
    state.received.push_back(received);
}
