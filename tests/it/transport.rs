//! How requests travel, through real sockets: signed parameters in a POST
//! form body (never in a URL a proxy would log), signature V2 and V3 from
//! the client, and the fake API checking V3 as strictly as V2 (wrong
//! signature, signed headers missing or extra, stale date, reused nonce,
//! body hash), mixed query/body parameters and content types.

use std::sync::Arc;
use std::time::Duration;

use aliyun_backup_exporter::aliyun::{sign, sign_v3, ApiError, RpcClient, SignatureVersion};
use aliyun_backup_exporter::clock::ManualClock;
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeInfo, FakeInstance, FakeKey, FakeRole, Received,
};
use aliyun_backup_exporter::products::kvstore::{self, Window};
use chrono::{SubsecRound, Utc};

use crate::helpers::*;

const ROLE_ARN: &str = "acs:ram::1234567890123456:role/backup-reader";

fn sts_key() -> FakeKey {
    FakeKey {
        security_token: Some(TOKEN.into()),
        ..key()
    }
}

/// One successful backup an hour ago.
fn one_backup(id: &str) -> FakeInstance {
    let start = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(1);
    FakeInstance::with_backups(vec![FakeBackup::success(
        id,
        start,
        Duration::from_secs(60),
        2048,
    )])
}

fn client(fake: &FakeApi, version: SignatureVersion, token: Option<&str>) -> RpcClient {
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.credentials = credentials(KEY_SECRET, token);
    let (client, _) = builder.build();
    client.with_signature_version(version)
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

/// Asserts that no request-target the fake received carries a query
/// string, a signature, a token, a key ID or a secret.
fn assert_clean_urls(received: &[Received]) {
    assert!(!received.is_empty());
    for r in received {
        assert_eq!(r.target, "/", "{} sent a query: {}", r.action, r.target);
        for secret in [
            "Signature",
            "SecurityToken",
            "AccessKeyId",
            KEY_ID,
            KEY_SECRET,
            TOKEN,
        ] {
            assert!(!r.target.contains(secret), "{secret} in {}", r.target);
        }
    }
}

#[tokio::test]
async fn every_signed_call_is_a_post_form_and_no_url_carries_a_secret() {
    for version in [SignatureVersion::V2, SignatureVersion::V3] {
        let fake = FakeApi::start(vec![sts_key()]).await.unwrap();
        fake.set_instance("r-1", one_backup("r-1"));
        let client = client(&fake, version, Some(TOKEN));

        let backups = kvstore::describe_backups(
            &client,
            "r-1",
            &Window::ending_at(Utc::now(), Duration::from_secs(86400)),
            deadline(),
        )
        .await
        .unwrap();
        assert_eq!(backups.len(), 1, "{version:?}");
        let query = kvstore::InstanceQuery {
            region_id: "cn-hangzhou",
            instance_ids: &[],
            tags: &[],
        };
        let listed = kvstore::describe_instances(&client, &query, deadline())
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{version:?}");

        let received = fake.received();
        assert_clean_urls(&received);
        assert!(
            received
                .iter()
                .all(|r| r.signature_version == version.as_str()
                    && r.outcome == "Success"
                    // The token still travels, and is checked: in the body (V2)
                    // or the x-acs-security-token header (V3).
                    && r.security_token.as_deref() == Some(TOKEN)),
            "{received:?}"
        );
    }
}

#[tokio::test]
async fn the_exporter_and_its_assumed_role_send_nothing_in_urls() {
    for version in ["v2", "v3"] {
        let fake = fake().await;
        fake.add_role(FakeRole {
            arn: ROLE_ARN.into(),
            account: "partner-account".into(),
            trusted_key_ids: vec![KEY_ID.into()],
            lifetime: None,
        });
        let mut instance = one_backup("r-partner");
        instance.account = Some("partner-account".into());
        instance.info = FakeInfo::in_region("cn-hangzhou");
        fake.set_instance("r-partner", instance);
        let text = format!(
            "accounts:
  - name: partner
    credentials:
      access_key_id_env: AK_ID
      access_key_secret_env: AK_SECRET
    role_arn: {ROLE_ARN}
    signature_version: {version}
    redis:
      regions: [cn-hangzhou]
      discovery: {{enabled: true}}
"
        );
        let path = config_file("transport", &text);
        let file = format!("--config.file={}", path.display());
        let config = flags_config_with_file(
            &fake,
            &["--poll.interval=1s", "--aliyun.rate-limit=0", &file],
            Some(&text),
        );
        let env = vec![
            ("AK_ID".to_string(), KEY_ID.to_string()),
            ("AK_SECRET".to_string(), KEY_SECRET.to_string()),
        ];
        let running = start_exporter(config, &env).await;
        wait_ready(&running).await;
        let m = scrape(&running).await;
        assert_eq!(
            value(
                &m,
                "aliyun_backup_poll_success",
                &[("instance_id", "r-partner")]
            ),
            1.0,
            "{version}"
        );
        running.stop().await;

        let received = fake.received();
        assert_clean_urls(&received);
        let actions: Vec<(&str, &str)> = received
            .iter()
            .map(|r| (r.action.as_str(), r.signature_version))
            .collect();
        // STS AssumeRole is signed as the account says, like its API calls.
        assert!(actions.contains(&("AssumeRole", version)), "{actions:?}");
        assert!(
            actions.contains(&("DescribeBackups", version)),
            "{actions:?}"
        );
        assert!(actions.iter().all(|(_, v)| *v == version), "{actions:?}");
        // The database calls carried the minted STS token.
        assert!(received
            .iter()
            .filter(|r| r.action == "DescribeBackups")
            .all(|r| r.access_key_id.starts_with("STS.") && r.security_token.is_some()));
    }
}

#[tokio::test]
async fn v3_client_errors_are_the_real_codes_and_leak_nothing() {
    let fake = FakeApi::start(vec![sts_key()]).await.unwrap();
    fake.set_instance("r-1", one_backup("r-1"));
    let window = Window::ending_at(Utc::now(), Duration::from_secs(86400));

    // A wrong secret: refused once (not retried), nothing secret in the error.
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.credentials = credentials("not-the-secret", Some(TOKEN));
    let (wrong, attempts) = builder.build();
    let wrong = wrong.with_signature_version(SignatureVersion::V3);
    let err = kvstore::describe_backups(&wrong, "r-1", &window, deadline())
        .await
        .unwrap_err();
    assert_eq!(err.code_label(), "SignatureDoesNotMatch");
    assert_eq!(attempts.codes(), ["SignatureDoesNotMatch"]);
    let text = format!("{err} {err:?}");
    assert_no_secret(&text);
    assert!(!text.contains("not-the-secret"), "{text}");

    // No token: the STS key's requests must carry it.
    let no_token = client(&fake, SignatureVersion::V3, None);
    let err = kvstore::describe_backups(&no_token, "r-1", &window, deadline())
        .await
        .unwrap_err();
    assert_eq!(err.code_label(), "InvalidSecurityToken.Mismatch");

    // A clock 20 minutes behind.
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.credentials = credentials(KEY_SECRET, Some(TOKEN));
    builder.clock = Arc::new(ManualClock::new(Utc::now() - chrono::Duration::minutes(20)));
    let (skewed, _) = builder.build();
    let skewed = skewed.with_signature_version(SignatureVersion::V3);
    let err = kvstore::describe_backups(&skewed, "r-1", &window, deadline())
        .await
        .unwrap_err();
    assert_eq!(err.code_label(), "InvalidTimeStamp.Expired");
    assert!(matches!(err, ApiError::Api { status: 400, .. }), "{err:?}");
}

/// A V3 request built by hand, to probe the fake's checks one by one.
#[derive(Clone)]
struct V3 {
    query: Vec<(String, String)>,
    body: String,
    /// Signed headers (the signature covers exactly these).
    signed: Vec<(String, String)>,
    /// Sent but left out of the signature.
    unsigned: Vec<(String, String)>,
    secret: String,
    key_id: String,
    /// Replaces the body after signing.
    tampered_body: Option<String>,
    /// Replaces the whole Authorization header.
    authorization: Option<String>,
    /// Extra names in SignedHeaders that are not sent.
    phantom: Vec<String>,
}

impl V3 {
    fn new(fake: &FakeApi, nonce: &str) -> Self {
        let body = sign::canonical_query(&[
            ("InstanceId", "r-1"),
            ("StartTime", "2026-01-01T00:00Z"),
            ("EndTime", "2026-01-02T00:00Z"),
        ]);
        let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let signed = [
            ("host", fake.addr().to_string()),
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("x-acs-action", "DescribeBackups".into()),
            ("x-acs-version", "2015-01-01".into()),
            ("x-acs-date", now),
            ("x-acs-signature-nonce", nonce.into()),
            ("x-acs-content-sha256", sign_v3::sha256_hex(body.as_bytes())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        V3 {
            query: Vec::new(),
            body,
            signed,
            unsigned: Vec::new(),
            secret: KEY_SECRET.into(),
            key_id: KEY_ID.into(),
            tampered_body: None,
            authorization: None,
            phantom: Vec::new(),
        }
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        self.signed.retain(|(k, _)| k != name);
        self.signed.push((name.into(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.signed.retain(|(k, _)| k != name);
        self
    }

    async fn send(self, fake: &FakeApi) -> (u16, String) {
        let mut names: Vec<String> = self.signed.iter().map(|(k, _)| k.clone()).collect();
        names.extend(self.phantom.iter().cloned());
        names.sort();
        let mut for_signing: Vec<(String, String)> = self.signed.clone();
        for name in &self.phantom {
            for_signing.push((name.clone(), String::new()));
        }
        let hashed = self
            .signed
            .iter()
            .find(|(k, _)| k == "x-acs-content-sha256")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let (canonical_headers, _) = sign_v3::canonical_headers(&for_signing);
        let canonical = format!(
            "POST\n/\n{}\n{canonical_headers}\n{}\n{hashed}",
            sign::canonical_query(&self.query),
            names.join(";")
        );
        let signature = sign_v3::signature(&sign_v3::string_to_sign(&canonical), &self.secret);
        let authorization = self
            .authorization
            .clone()
            .unwrap_or_else(|| sign_v3::authorization(&self.key_id, &names.join(";"), &signature));
        let url = if self.query.is_empty() {
            format!("{}/", fake.endpoint())
        } else {
            format!(
                "{}/?{}",
                fake.endpoint(),
                sign::canonical_query(&self.query)
            )
        };
        let mut request = reqwest::Client::new()
            .post(url)
            .header("authorization", authorization);
        for (name, value) in self.signed.iter().chain(&self.unsigned) {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(self.tampered_body.unwrap_or(self.body))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// `(status, Code)` of an answer.
fn code(answer: &(u16, String)) -> (u16, String) {
    let doc: serde_json::Value = serde_json::from_str(&answer.1).unwrap_or_default();
    let code = doc["Code"].as_str().unwrap_or("Success").to_string();
    (answer.0, code)
}

#[tokio::test]
async fn the_fake_checks_v3_signatures_as_strictly_as_v2() {
    let fake = FakeApi::start(vec![key(), {
        let mut k = sts_key();
        k.id = "STS.key".into();
        k
    }])
    .await
    .unwrap();
    fake.set_instance("r-1", one_backup("r-1"));
    let ok = |answer: (u16, String)| {
        assert_eq!(answer.0, 200, "{}", answer.1);
    };

    ok(V3::new(&fake, "v3-ok").send(&fake).await);
    // Parameters in the query string of an empty POST, as the SDKs send them.
    let mut in_query = V3::new(&fake, "v3-query");
    in_query.query = url::form_urlencoded::parse(in_query.body.as_bytes())
        .into_owned()
        .collect();
    in_query.body = String::new();
    let empty = sign_v3::sha256_hex(b"");
    ok(in_query
        .set("x-acs-content-sha256", &empty)
        .without("content-type")
        .send(&fake)
        .await);

    let stale = (Utc::now() - chrono::Duration::minutes(16))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let other_hash = sign_v3::sha256_hex(b"InstanceId=r-2");
    let mut cases: Vec<(&str, V3, (u16, &str))> = vec![
        (
            "reused nonce",
            V3::new(&fake, "v3-ok"),
            (400, "SignatureNonceUsed"),
        ),
        (
            "stale x-acs-date",
            V3::new(&fake, "v3-stale").set("x-acs-date", &stale),
            (400, "InvalidTimeStamp.Expired"),
        ),
        (
            "unreadable x-acs-date",
            V3::new(&fake, "v3-format").set("x-acs-date", "2026-01-01 10:00:00"),
            (400, "InvalidTimeStamp.Format"),
        ),
        (
            "no x-acs-date",
            V3::new(&fake, "v3-nodate").without("x-acs-date"),
            (400, "MissingTimestamp"),
        ),
        (
            "no x-acs-signature-nonce",
            V3::new(&fake, "v3-nonce").without("x-acs-signature-nonce"),
            (400, "MissingSignatureNonce"),
        ),
        (
            "no x-acs-content-sha256",
            V3::new(&fake, "v3-nohash").without("x-acs-content-sha256"),
            (400, "IncompleteSignature"),
        ),
        (
            "wrong version",
            V3::new(&fake, "v3-version").set("x-acs-version", "2014-05-26"),
            (400, "InvalidVersion"),
        ),
        (
            "hash of another body (correctly signed)",
            V3::new(&fake, "v3-hash").set("x-acs-content-sha256", &other_hash),
            (400, "SignatureDoesNotMatch"),
        ),
    ];
    let mut wrong_secret = V3::new(&fake, "v3-secret");
    wrong_secret.secret = "wrong".into();
    cases.push(("wrong secret", wrong_secret, (400, "SignatureDoesNotMatch")));
    let mut unknown = V3::new(&fake, "v3-unknown");
    unknown.key_id = "LTAInobody".into();
    cases.push(("unknown key", unknown, (404, "InvalidAccessKeyId.NotFound")));
    let mut tampered = V3::new(&fake, "v3-tampered");
    tampered.tampered_body = Some(tampered.body.replace("r-1", "r-2"));
    cases.push((
        "body changed after signing",
        tampered,
        (400, "SignatureDoesNotMatch"),
    ));
    let mut unsigned = V3::new(&fake, "v3-unsigned").without("x-acs-signature-nonce");
    unsigned
        .unsigned
        .push(("x-acs-signature-nonce".into(), "v3-unsigned".into()));
    cases.push((
        "a required header sent but not signed",
        unsigned,
        (400, "SignatureDoesNotMatch"),
    ));
    let mut unsigned_token = V3::new(&fake, "v3-unsigned-token");
    unsigned_token
        .unsigned
        .push(("x-acs-security-token".into(), "anything".into()));
    cases.push((
        "an x-acs header sent but not signed",
        unsigned_token,
        (400, "SignatureDoesNotMatch"),
    ));
    let mut unsigned_host = V3::new(&fake, "v3-unsigned-host").without("host");
    unsigned_host
        .unsigned
        .push(("host".into(), fake.addr().to_string()));
    cases.push((
        "host not signed",
        unsigned_host,
        (400, "SignatureDoesNotMatch"),
    ));
    let mut phantom = V3::new(&fake, "v3-phantom");
    phantom.phantom.push("x-acs-extra".into());
    cases.push((
        "a signed header that was not sent",
        phantom,
        (400, "SignatureDoesNotMatch"),
    ));
    for (i, authorization) in [
        "ACS3-HMAC-SHA1 Credential=x,SignedHeaders=host,Signature=00",
        "acs LTAI5tTestKeyId:c2lnbmF0dXJl",
        "ACS3-HMAC-SHA256 Credential=x,SignedHeaders=host",
    ]
    .into_iter()
    .enumerate()
    {
        let mut bad = V3::new(&fake, &format!("v3-auth-{i}"));
        bad.authorization = Some(authorization.into());
        cases.push(("malformed Authorization", bad, (400, "IncompleteSignature")));
    }
    // The STS key: its token must come, signed, in x-acs-security-token.
    let mut sts = V3::new(&fake, "v3-sts").set("x-acs-security-token", TOKEN);
    sts.key_id = "STS.key".into();
    let mut sts_wrong = V3::new(&fake, "v3-sts-wrong").set("x-acs-security-token", "other");
    sts_wrong.key_id = "STS.key".into();
    cases.push((
        "a wrong security token",
        sts_wrong,
        (400, "InvalidSecurityToken.Mismatch"),
    ));
    let mut sts_none = V3::new(&fake, "v3-sts-none");
    sts_none.key_id = "STS.key".into();
    cases.push((
        "no security token",
        sts_none,
        (400, "InvalidSecurityToken.Mismatch"),
    ));

    for (what, request, (status, expected)) in cases {
        let answer = request.send(&fake).await;
        assert_eq!(
            code(&answer),
            (status, expected.to_string()),
            "{what}: {}",
            answer.1
        );
        // The real API echoes its string-to-sign; for V3 that is a hash,
        // never a secret.
        assert!(
            !answer.1.contains(KEY_SECRET) && !answer.1.contains(TOKEN),
            "{what}"
        );
    }
    ok(sts.send(&fake).await);

    // A correctly signed nonce is remembered only once accepted: the
    // refused requests above did not burn theirs.
    ok(V3::new(&fake, "v3-secret").send(&fake).await);
    let v3: Vec<&'static str> = fake
        .received()
        .iter()
        .map(|r| r.signature_version)
        .collect();
    assert!(v3.iter().all(|v| *v == "v3"), "{v3:?}");
}

/// A V2 request built by hand: `query` in the URL, `body` as a form, the
/// signature over both.
async fn v2_split(
    fake: &FakeApi,
    nonce: &str,
    method: &str,
    query: &[(&str, &str)],
    body: &[(&str, &str)],
    content_type: &str,
) -> (u16, String) {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut common: Vec<(&str, &str)> = vec![
        ("Action", "DescribeBackups"),
        ("Version", "2015-01-01"),
        ("Format", "JSON"),
        ("AccessKeyId", KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", &now),
    ];
    let mut all = common.clone();
    all.extend_from_slice(query);
    all.extend_from_slice(body);
    let signature = sign::sign(method, &all, KEY_SECRET);
    common.push(("Signature", &signature));
    let mut in_body = common;
    in_body.extend_from_slice(body);
    let url = if query.is_empty() {
        format!("{}/", fake.endpoint())
    } else {
        format!("{}/?{}", fake.endpoint(), sign::canonical_query(query))
    };
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(sign::canonical_query(&in_body))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_fake_reads_v2_from_query_and_body_but_not_twice_or_unread() {
    let fake = fake().await;
    fake.set_instance("r-1", one_backup("r-1"));
    let form = "application/x-www-form-urlencoded; charset=utf-8";
    let window = [
        ("StartTime", "2026-01-01T00:00Z"),
        ("EndTime", "2026-01-02T00:00Z"),
    ];
    let id = [("InstanceId", "r-1")];

    // Signed over the parameters from wherever they came.
    let answer = v2_split(&fake, "p-1", "POST", &id, &window, form).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    // POST is signed as POST.
    let answer = v2_split(&fake, "p-2", "GET", &id, &window, form).await;
    assert_eq!(code(&answer), (400, "SignatureDoesNotMatch".into()));
    // A parameter both in the query string and the body.
    let both = [("InstanceId", "r-1"), window[0], window[1]];
    let answer = v2_split(&fake, "p-3", "POST", &id, &both, form).await;
    assert_eq!(
        code(&answer),
        (400, "InvalidParameter".into()),
        "{}",
        answer.1
    );
    assert!(answer.1.contains("InstanceId"), "{}", answer.1);
    // A body that is not a form: its parameters would go unread.
    for content_type in ["text/plain", "application/json"] {
        let answer = v2_split(&fake, "p-4", "POST", &id, &window, content_type).await;
        assert_eq!(
            code(&answer),
            (400, "InvalidParameter.ContentType".into()),
            "{content_type}: {}",
            answer.1
        );
    }
    let targets: Vec<String> = fake.received().iter().map(|r| r.target.clone()).collect();
    assert!(
        targets.iter().all(|t| t == "/?InstanceId=r-1"),
        "{targets:?}"
    );
}
