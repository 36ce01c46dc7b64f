//! Fake STS and fake ECS metadata servers: real HTTP on 127.0.0.1, for the
//! credentials tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliyun_backup_exporter::clock::Clock;
use aliyun_backup_exporter::http::{respond, serve, Request, Response};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What a fake answers next instead of credentials.
#[derive(Clone, Debug)]
pub enum Trouble {
    Status(u16),
    Body(String),
}

#[derive(Default)]
pub struct StsState {
    pub calls: usize,
    /// `OIDCToken` of every call.
    pub tokens: Vec<String>,
    pub troubles: VecDeque<Trouble>,
    pub always_failing: bool,
}

pub struct FakeSts {
    pub endpoint: String,
    pub state: Arc<Mutex<StsState>>,
    _stop: oneshot::Sender<()>,
}

/// Issues credentials `STS.<n>` / `token-<n>` valid for `lifetime` from the
/// clock's now; takes `delay` to answer.
pub async fn fake_sts(clock: Arc<dyn Clock>, lifetime: Duration, delay: Duration) -> FakeSts {
    let state = Arc::new(Mutex::new(StsState::default()));
    let shared = state.clone();
    let handler = move |req: Request| {
        let state = shared.clone();
        let clock = clock.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let get = |k: &str| {
                form.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            tokio::time::sleep(delay).await;
            let (n, trouble) = {
                let mut s = state.lock().unwrap();
                s.calls += 1;
                s.tokens.push(get("OIDCToken"));
                let trouble = if s.always_failing {
                    Some(Trouble::Status(503))
                } else {
                    s.troubles.pop_front()
                };
                (s.calls, trouble)
            };
            if !query.contains("Action=AssumeRoleWithOIDC")
                || get("RoleArn").is_empty()
                || get("OIDCProviderArn").is_empty()
            {
                return respond(
                    400,
                    "application/json",
                    r#"{"Code":"MissingParameter","Message":"bad request"}"#,
                );
            }
            match trouble {
                Some(Trouble::Status(code)) => respond(
                    code,
                    "application/json",
                    r#"{"Code":"ServiceUnavailable","Message":"try later"}"#,
                ),
                Some(Trouble::Body(body)) => respond(200, "application/json", body),
                None => {
                    let expiration = clock.now() + chrono::Duration::from_std(lifetime).unwrap();
                    let body = json!({
                        "RequestId": "sts-req",
                        "Credentials": {
                            "AccessKeyId": format!("STS.{n}"),
                            "AccessKeySecret": format!("sts-secret-{n}"),
                            "SecurityToken": format!("token-{n}"),
                            "Expiration": expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        }
                    });
                    respond(200, "application/json", body.to_string())
                }
            }
        }
    };
    let (endpoint, stop) = start(handler).await;
    FakeSts {
        endpoint,
        state,
        _stop: stop,
    }
}

#[derive(Default)]
pub struct MetadataState {
    pub token_requests: usize,
    pub credential_reads: usize,
    /// Reads that carried the session token.
    pub reads_with_token: usize,
    pub reads_without_token: usize,
    /// Answered instead of the role's credentials, when set.
    pub credentials_body: Option<String>,
}

pub struct FakeMetadata {
    pub endpoint: String,
    pub state: Arc<Mutex<MetadataState>>,
    _stop: oneshot::Sender<()>,
}

/// An ECS metadata service with role `role`; `hardened` hands out session
/// tokens (else `PUT /latest/api/token` answers 403, as on old images).
pub async fn fake_metadata(
    clock: Arc<dyn Clock>,
    role: &'static str,
    hardened: bool,
) -> FakeMetadata {
    let state = Arc::new(Mutex::new(MetadataState::default()));
    let shared = state.clone();
    let handler = move |req: Request| {
        let state = shared.clone();
        let clock = clock.clone();
        async move {
            let path = req.uri().path().to_string();
            let token = req
                .headers()
                .get("x-aliyun-ecs-metadata-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut s = state.lock().unwrap();
            if req.method() == hyper::Method::PUT && path == "/latest/api/token" {
                s.token_requests += 1;
                let ttl = req
                    .headers()
                    .get("x-aliyun-ecs-metadata-token-ttl-seconds")
                    .is_some();
                return if hardened && ttl {
                    respond(200, "text/plain", "session-token-1")
                } else {
                    respond(403, "text/plain", "forbidden")
                };
            }
            if hardened && token.is_some() && token.as_deref() != Some("session-token-1") {
                return respond(401, "text/plain", "bad token");
            }
            if token.is_some() {
                s.reads_with_token += 1
            } else {
                s.reads_without_token += 1
            }
            match path.as_str() {
                "/latest/meta-data/ram/security-credentials/" => respond(200, "text/plain", role),
                p if p == format!("/latest/meta-data/ram/security-credentials/{role}") => {
                    s.credential_reads += 1;
                    if let Some(body) = &s.credentials_body {
                        return respond(200, "application/json", body.clone());
                    }
                    let n = s.credential_reads;
                    let expiration = clock.now() + chrono::Duration::hours(6);
                    let body = json!({
                        "Code": "Success",
                        "AccessKeyId": format!("STS.ecs{n}"),
                        "AccessKeySecret": format!("ecs-secret-{n}"),
                        "SecurityToken": format!("ecs-token-{n}"),
                        "Expiration": expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        "LastUpdated": "2026-01-01T00:00:00Z",
                    });
                    respond(200, "application/json", body.to_string())
                }
                _ => respond(404, "text/plain", "not found"),
            }
        }
    };
    let (endpoint, stop) = start(handler).await;
    FakeMetadata {
        endpoint,
        state,
        _stop: stop,
    }
}

async fn start<H, F>(handler: H) -> (String, oneshot::Sender<()>)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, Default::default(), handler, async move {
        let _ = stopped.await;
    }));
    (endpoint, stop)
}
