//! Property tests of the decoders (issue 11, item 5): arbitrary bytes,
//! arbitrary JSON and mutated real-shaped answers never panic a decoder;
//! what a decoder returns is in range and consistent with the answer; what
//! it refuses, it refuses with a short message that names the field.
//!
//! Decoders covered (all public, in `products::kvstore`): `decode_page`
//! (DescribeBackups), `decode_cluster_page` (DescribeClusterBackupList),
//! `decode_backup_policy` (DescribeBackupPolicy), `decode_instances`
//! (DescribeInstances) and `decode_regions` (DescribeRegions).
//!
//! By default each property runs 256 cases from a fixed seed, so that
//! `cargo test` is fast and repeatable. `PROPTEST_CASES` raises the count and
//! `PROPTEST_RNG_SEED` changes the seed (`bench/fuzz.sh` sets both, round
//! after round); `DECODE_PROPS_FAILURES` names a file where proptest keeps
//! the seeds of failures (none is written otherwise).

use aliyun_backup_exporter::fake_api::scenario::{
    render_backup, render_cluster_backup, render_instance, render_region,
};
use aliyun_backup_exporter::fake_api::{
    FakeBackup, FakeClusterBackup, FakeInfo, FakeInstance, FakeShardBackup,
};
use aliyun_backup_exporter::model::{Backup, BackupStatus};
use aliyun_backup_exporter::policy::BackupPolicy;
use aliyun_backup_exporter::products::kvstore::{
    decode_backup_policy, decode_cluster_page, decode_instances, decode_page, decode_regions,
    InstancePage, Page, RegionInfo,
};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, RngSeed, TestCaseError};
use serde_json::{json, Map, Number, Value};

// ---------------------------------------------------------------------------
// Configuration

/// The seed of `cargo test`: the same cases every run.
const DEFAULT_SEED: u64 = 0x0011_05DE_C0DE;

fn config() -> ProptestConfig {
    // `ProptestConfig::default()` reads the `PROPTEST_*` variables.
    let env = ProptestConfig::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    let failure_persistence = std::env::var("DECODE_PROPS_FAILURES")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|path| {
            let path: &'static str = Box::leak(path.into_boxed_str());
            Box::new(FileFailurePersistence::Direct(path)) as _
        });
    ProptestConfig {
        cases: if set("PROPTEST_CASES") {
            env.cases
        } else {
            256
        },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            env.rng_seed
        } else {
            RngSeed::Fixed(DEFAULT_SEED)
        },
        failure_persistence,
        ..env
    }
}

// ---------------------------------------------------------------------------
// What every answer must satisfy

/// An error is at most this long, in characters and in bytes, however large
/// the answer (`aliyun::json::quoted` bounds what it writes, escapes
/// included).
const MAX_ERROR_CHARS: usize = 300;

/// The fields (and lists) each decoder may name in an error.
const PAGE_FIELDS: &[&str] = &[
    "TotalCount",
    "Backups",
    "BackupStatus",
    "BackupStartTime",
    "BackupEndTime",
    "BackupSize",
];
const CLUSTER_FIELDS: &[&str] = &[
    "ClusterBackups",
    "ClusterBackupStatus",
    "ClusterBackupStartTime",
    "ClusterBackupEndTime",
    "ClusterBackupSize",
    "Backups",
    "BackupStatus",
    "BackupStartTime",
    "BackupEndTime",
    "BackupSize",
];
const POLICY_FIELDS: &[&str] = &["PreferredBackupPeriod"];
const INSTANCE_FIELDS: &[&str] = &["TotalCount", "Instances", "InstanceId", "Tags"];
const REGION_FIELDS: &[&str] = &["RegionIds"];

/// The reason of an error, after its item paths (`Backups.Backup[3]: `,
/// `ClusterBackups[0]: Backups[1]: `).
fn reason(err: &str) -> &str {
    let mut rest = err;
    while let Some(open) = rest.find('[') {
        let name = &rest[..open];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'.') {
            break;
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        if close == 0 || !after[..close].bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        let Some(next) = after[close + 1..].strip_prefix(": ") else {
            break;
        };
        rest = next;
    }
    rest
}

/// A refusal: short, one line, and its reason names a field of the answer
/// (before any quoted value, so that a value cannot pass for the field) or
/// says the body itself is wrong.
fn check_error(err: &str, fields: &[&str]) -> Result<(), TestCaseError> {
    let chars = err.chars().count();
    prop_assert!(
        chars < MAX_ERROR_CHARS && err.len() < MAX_ERROR_CHARS,
        "error of {} characters: {:?}",
        chars,
        err
    );
    prop_assert!(!err.contains('\n'), "error on several lines: {:?}", err);
    let reason = reason(err);
    let head = reason.split('"').next().unwrap_or_default();
    prop_assert!(
        reason.starts_with("body ") || fields.iter().any(|f| head.contains(f)),
        "error names no field: {:?}",
        err
    );
    Ok(())
}

/// A number the answer gave, read both ways.
#[derive(Debug, Clone, Copy)]
struct Given {
    whole: Option<u64>,
    float: Option<f64>,
}

impl Given {
    fn of(v: &Value) -> Option<Given> {
        match v {
            Value::Number(n) => Some(Given {
                whole: n.as_u64(),
                float: n.as_f64(),
            }),
            Value::String(s) => Some(Given {
                whole: s.trim().parse().ok(),
                float: s.trim().parse().ok(),
            }),
            _ => None,
        }
    }

    /// Whether `n` is exactly this number: not wrapped from a negative, not
    /// saturated from a huge one, not rounded from a fraction.
    fn is(self, n: u64) -> bool {
        self.whole == Some(n)
            || self
                .float
                .is_some_and(|f| f >= 0.0 && f.fract() == 0.0 && f == n as f64)
    }
}

/// Every value of a field named `name`, anywhere in `doc`.
fn given(doc: &Value, name: &dyn Fn(&str) -> bool, out: &mut Vec<Given>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                if name(k) {
                    out.extend(Given::of(v));
                }
                given(v, name, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| given(v, name, out)),
        _ => {}
    }
}

fn given_named(doc: &Value, name: &dyn Fn(&str) -> bool) -> Vec<Given> {
    let mut out = Vec::new();
    given(doc, name, &mut out);
    out
}

/// A number decoded from `doc` is one that `doc` gave for such a field.
fn check_number(
    doc: Option<&Value>,
    n: u64,
    what: &dyn Fn(&str) -> bool,
) -> Result<(), TestCaseError> {
    if let Some(doc) = doc {
        let candidates = given_named(doc, what);
        prop_assert!(
            candidates.iter().any(|g| g.is(n)),
            "{} is none of the numbers given: {:?}",
            n,
            candidates
        );
    }
    Ok(())
}

/// Label values (and anything else decoded from free text) are at most this
/// many bytes.
const MAX_LABEL: usize = 256;

/// A label value: bounded, printable, non-empty, no leading blank.
fn check_label(what: &str, v: &str) -> Result<(), TestCaseError> {
    prop_assert!(v.len() <= MAX_LABEL, "{} of {} bytes", what, v.len());
    prop_assert!(
        !v.chars().any(char::is_control),
        "{} {:?} has a control character",
        what,
        v
    );
    prop_assert!(!v.starts_with(char::is_whitespace), "{} {:?}", what, v);
    Ok(())
}

/// An enum word: a label, non-empty, with no ASCII upper case.
fn check_word(what: &str, word: &str) -> Result<(), TestCaseError> {
    check_label(what, word)?;
    prop_assert!(!word.is_empty(), "{} is empty", what);
    prop_assert!(
        !word.bytes().any(|b| b.is_ascii_uppercase()),
        "{} {:?} is not in lower case",
        what,
        word
    );
    Ok(())
}

/// Whether `label` is `given` cut short, control characters replaced.
fn is_cut_from(label: &str, given: &str) -> bool {
    let mut g = given.chars();
    label.chars().all(|c| {
        g.next()
            .is_some_and(|o| o == c || (o.is_control() && c == '_'))
    })
}

/// What every decoded backup satisfies, whichever call it came from.
fn check_backup(b: &Backup, doc: Option<&Value>) -> Result<(), TestCaseError> {
    prop_assert!(!b.node_id.is_empty(), "empty node_id: {:?}", b);
    check_label("node_id", &b.node_id)?;
    check_word("status", b.status.label())?;
    if let BackupStatus::Other(s) = &b.status {
        prop_assert!(s != "success" && s != "failed", "{:?}", b);
    }
    check_word("backup_type", &b.backup_type)?;
    check_word("backup_mode", &b.backup_mode)?;
    check_word("backup_method", &b.backup_method)?;
    // A success always has an end; a restore point is always a success.
    if b.status == BackupStatus::Success {
        prop_assert!(b.end.is_some(), "a success without an end: {:?}", b);
    }
    if let Some(size) = b.size_bytes {
        check_number(doc, size, &|k| k.ends_with("Size"))?;
    }
    // Download URLs are never read.
    let shown = format!("{b:?}");
    prop_assert!(
        !shown.contains("downloadSIGNATURE"),
        "a URL leaked: {}",
        shown
    );
    Ok(())
}

fn check_page(
    result: &Result<Page, String>,
    doc: Option<&Value>,
    id: &str,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) => check_error(e, PAGE_FIELDS),
        Ok(page) => {
            if let (Some(total), Some(doc)) = (page.total_count, doc) {
                let given = doc.get("TotalCount").and_then(Given::of);
                prop_assert!(
                    given.is_some_and(|g| g.is(total as u64)),
                    "TotalCount {} from {:?}",
                    total,
                    doc.get("TotalCount")
                );
            }
            for b in &page.backups {
                check_backup(b, doc)?;
                // DescribeBackups lists restore points only.
                prop_assert!(b.restorable, "{:?}", b);
                if let Some(doc) = doc {
                    // The node is the one named, or the instance.
                    let named = given_texts(doc, "NodeInstanceId");
                    prop_assert!(
                        b.node_id == id || named.iter().any(|n| is_cut_from(&b.node_id, n)),
                        "node_id {:?} from nowhere",
                        b.node_id
                    );
                }
            }
            Ok(())
        }
    }
}

/// Every string (trimmed) or number given for a field named `name`.
fn given_texts(doc: &Value, name: &str) -> Vec<String> {
    fn walk(doc: &Value, name: &str, out: &mut Vec<String>) {
        match doc {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == name {
                        match v {
                            Value::String(s) => out.push(s.trim().to_string()),
                            Value::Number(n) => out.push(n.to_string()),
                            _ => {}
                        }
                    }
                    walk(v, name, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, name, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, name, &mut out);
    out
}

/// A node ID as a cluster shard may give it (`r-bp1xxx-db-0`).
fn is_node_id(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 64
        && b.len() > 2
        && b[0].is_ascii_lowercase()
        && b[1] == b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn check_cluster(
    result: &Result<Vec<Backup>, String>,
    doc: Option<&Value>,
    id: &str,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) => check_error(e, CLUSTER_FIELDS),
        Ok(backups) => {
            for b in backups {
                check_backup(b, doc)?;
                // A shard's node is a node ID it gave, or its position;
                // the whole cluster's is the instance.
                let position = b
                    .node_id
                    .strip_prefix(id)
                    .and_then(|rest| rest.strip_prefix("-shard-"))
                    .is_some_and(|n| n.parse::<usize>().is_ok());
                prop_assert!(
                    b.node_id == id || position || is_node_id(&b.node_id),
                    "node_id {:?}",
                    b.node_id
                );
                if b.restorable {
                    prop_assert_eq!(&b.status, &BackupStatus::Success);
                }
            }
            Ok(())
        }
    }
}

/// Weekday labels, in week order.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn check_policy(
    result: &Result<BackupPolicy, String>,
    doc: Option<&Value>,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) => check_error(e, POLICY_FIELDS),
        Ok(policy) => {
            prop_assert!(policy.window.len() <= 64, "window {:?}", policy.window);
            check_label("window", &policy.window)?;
            let label = policy.days.label();
            let days: Vec<&str> = label.split(',').filter(|d| !d.is_empty()).collect();
            let mut last = None;
            for d in &days {
                let at = DAYS.iter().position(|x| x == d);
                prop_assert!(at.is_some() && at > last, "days {:?}", label);
                last = at;
            }
            if let Some(interval) = policy.max_interval() {
                let days = interval.as_secs() / 86_400;
                prop_assert!((1..=7).contains(&days) && interval.as_secs() % 86_400 == 0);
            } else {
                prop_assert!(policy.days.is_empty());
            }
            if let Some(r) = policy.retention_days {
                check_number(doc, r, &|k| k == "BackupRetentionPeriod")?;
            }
            Ok(())
        }
    }
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

fn is_alibaba_host(h: &str) -> bool {
    h.len() <= 253
        && h.ends_with(".aliyuncs.com")
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn check_instances(
    result: &Result<InstancePage, String>,
    doc: Option<&Value>,
    queried: &str,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) => check_error(e, INSTANCE_FIELDS),
        Ok(page) => {
            if let (Some(total), Some(doc)) = (page.total_count, doc) {
                let given = doc.get("TotalCount").and_then(Given::of);
                prop_assert!(given.is_some_and(|g| g.is(total as u64)));
            }
            for i in &page.instances {
                let id = &i.instance_id;
                prop_assert!(
                    !id.is_empty()
                        && id.len() <= 64
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "instance_id {:?}",
                    id
                );
                prop_assert!(
                    &*i.region_id == queried || is_region(&i.region_id),
                    "region_id {:?}",
                    i.region_id
                );
                for (what, v) in [
                    ("name", i.name.as_str()),
                    ("zone_id", &i.zone_id),
                    ("engine_version", &i.engine_version),
                    ("architecture", &i.architecture),
                    ("instance_class", &i.instance_class),
                    ("status", &i.status),
                ] {
                    check_label(what, v)?;
                }
                prop_assert!(!i.architecture.bytes().any(|b| b.is_ascii_uppercase()));
                for (k, v) in &i.tags {
                    prop_assert!(!k.is_empty());
                    check_label("tag key", k)?;
                    check_label("tag value", v)?;
                }
                if let Some(n) = i.shard_count {
                    check_number(doc, u64::from(n), &|k| k == "ShardCount")?;
                }
            }
            Ok(())
        }
    }
}

fn check_regions(result: &Result<Vec<RegionInfo>, String>) -> Result<(), TestCaseError> {
    match result {
        Err(e) => check_error(e, REGION_FIELDS),
        Ok(regions) => {
            prop_assert!(!regions.is_empty());
            for (n, r) in regions.iter().enumerate() {
                prop_assert!(is_region(&r.region_id), "region {:?}", r.region_id);
                prop_assert!(
                    regions[..n].iter().all(|o| o.region_id != r.region_id),
                    "{:?} twice",
                    r.region_id
                );
                if let Some(host) = &r.endpoint_host {
                    prop_assert!(is_alibaba_host(host), "endpoint {:?}", host);
                }
            }
            Ok(())
        }
    }
}

const INSTANCE: &str = "r-bp1zxszhcgatnxqw";
const REGION: &str = "cn-hangzhou";

/// Every decoder on `body`, each checked.
fn decode_all(body: &[u8]) -> Result<(), TestCaseError> {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let doc = doc.as_ref();
    check_page(&decode_page(body, INSTANCE), doc, INSTANCE)?;
    check_cluster(&decode_cluster_page(body, INSTANCE), doc, INSTANCE)?;
    check_policy(&decode_backup_policy(body), doc)?;
    check_instances(&decode_instances(body, REGION), doc, REGION)?;
    check_regions(&decode_regions(body))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Arbitrary JSON

/// The field names the decoders read (and their wrappers), so that arbitrary
/// objects reach the decoders' inner paths.
const FIELDS: &[&str] = &[
    "TotalCount",
    "Backups",
    "Backup",
    "BackupStatus",
    "BackupStartTime",
    "BackupEndTime",
    "BackupSize",
    "NodeInstanceId",
    "BackupType",
    "BackupMode",
    "BackupMethod",
    "ClusterBackups",
    "ClusterBackup",
    "ClusterBackupId",
    "ClusterBackupStatus",
    "ClusterBackupStartTime",
    "ClusterBackupEndTime",
    "ClusterBackupSize",
    "ClusterBackupMode",
    "IsAvail",
    "InstanceName",
    "PreferredBackupPeriod",
    "PreferredBackupTime",
    "BackupRetentionPeriod",
    "EnableBackupLog",
    "Instances",
    "KVStoreInstance",
    "InstanceId",
    "RegionId",
    "ZoneId",
    "EngineVersion",
    "ArchitectureType",
    "InstanceClass",
    "InstanceStatus",
    "ShardCount",
    "Tags",
    "Tag",
    "Key",
    "Value",
    "CreateTime",
    "RegionIds",
    "KVStoreRegion",
    "RegionEndpoint",
];

/// Words the API uses, in odd spellings, and near misses.
const WORDS: &[&str] = &[
    "Success",
    "SUCCESS",
    "success",
    " Success ",
    "Failed",
    "FAILED",
    "OK",
    "ok",
    "Ok",
    "ERROR",
    "error",
    "RUNNING",
    "Running",
    "Pending",
    "FullBackup",
    "Fullbackup",
    "IncrementalBackup",
    "Automated",
    "MANUAL",
    "Physical",
    "Logical",
    "Monday",
    "mon",
    "MONDAY, thursday,Sun",
    "Funday",
    "Monday,,Tuesday",
    "05:00Z-06:00Z",
    "23:00Z-01:00Z",
    "r-bp1xxx-db-0",
    "R-BP1-DB-0",
    "hins100322106",
    "r-",
    "cn-hangzhou",
    "CN-Hangzhou",
    "-cn",
    "../etc",
    "r-kvstore.aliyuncs.com",
    "r-kvstore.eu-central-1.aliyuncs.com",
    "evil.example.com",
    "aliyuncs.com",
    ".aliyuncs.com",
    "x..aliyuncs.com",
    "cluster",
    "Cluster",
    "standard",
    "1",
    "0",
    "-1",
    "true",
    "False",
    "7",
    "7.0",
    " 7 ",
    "+7",
    "1e3",
    "0x10",
    "NaN",
    "inf",
    "18446744073709551615",
    "18446744073709551616",
    "1e300",
    "-0",
    "null",
    "{}",
    "[]",
    "yesterday",
];

/// A time in a shape the API uses, or one it might.
fn time_text() -> impl Strategy<Value = String> {
    (
        0i64..4_102_444_800,
        0u32..1_000_000_000,
        -1439i32..1440,
        0usize..16,
    )
        .prop_map(|(secs, nanos, offset, shape)| {
            let t = Utc.timestamp_opt(secs, nanos).single().unwrap_or_default();
            let local = t.naive_utc() + Duration::minutes(offset.into());
            let sign = if offset < 0 { '-' } else { '+' };
            let off = format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
            match shape {
                0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                1 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                2 => t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
                3 => t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string(),
                4 => format!("{}{off}", local.format("%Y-%m-%dT%H:%M:%S")),
                5 => t.format("%Y-%m-%dT%H:%MZ").to_string(),
                6 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
                7 => t.format("%Y-%m-%dt%H:%M:%Sz").to_string(),
                8 => t.format("%Y-%m-%d").to_string(),
                9 => t.timestamp().to_string(),
                10 => t.format("%Y-%m-30T%H:%M:%SZ").to_string(),
                11 => t.format("%Y-%m-%dT24:%M:%SZ").to_string(),
                12 => t.format("%Y-%m-%dT%H:%M:60Z").to_string(),
                13 => format!("{}+24:00", t.format("%Y-%m-%dT%H:%M:%S")),
                14 => format!(" {} ", t.format("%Y-%m-%dT%H:%M:%SZ")),
                _ => t.format("+%Y-%m-%dT%H:%M:%SZjunk").to_string(),
            }
        })
}

/// Any text: the API's words, times, arbitrary and control characters,
/// empty, blank, and long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(WORDS).prop_map(String::from),
        6 => time_text(),
        3 => any::<String>(),
        2 => prop::collection::vec(any::<char>(), 0..48).prop_map(String::from_iter),
        2 => prop::sample::select(&["", " ", "\t\n", "\u{0}", "\u{feff}"][..]).prop_map(String::from),
        1 => (any::<char>(), 0usize..10_000).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => (prop::sample::select(WORDS), 0usize..2_000)
            .prop_map(|(w, n)| format!("{}{w}{}", " ".repeat(n), "x".repeat(n))),
    ]
}

/// A number as the API might send it, and some it must not be trusted with.
fn number() -> impl Strategy<Value = Value> {
    let special = [
        json!(0),
        json!(1),
        json!(-1),
        json!(-0.0),
        json!(0.5),
        json!(1.5),
        json!(7.0),
        json!(1e300),
        json!(-1e300),
        json!(1.8e19),
        json!(1.7999999999999998e19),
        json!(18446744073709551615u64),
        json!(i64::MIN),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        // 2^64 does not fit any integer: serde_json reads it as a float.
        serde_json::from_str::<Value>("18446744073709551616").unwrap_or(Value::Null),
        serde_json::from_str::<Value>("1e400").unwrap_or(Value::Null),
    ];
    prop_oneof![
        2 => prop::sample::select(special.to_vec()),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => (0u64..100_000).prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        5 => text().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(FIELDS).prop_map(String::from),
        1 => "[A-Za-z]{1,16}",
        1 => any::<String>(),
    ]
}

/// Any JSON value, at most a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            3 => prop::collection::vec((key(), inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Mostly an object at the top, as every answer is.
fn json_document() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::vec((key(), json_value()), 0..10)
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => json_value(),
    ]
}

// ---------------------------------------------------------------------------
// Real-shaped answers, rendered by the fake API as the real one sends them

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// Seconds between 1970 and 2100.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(at)
}

fn took() -> impl Strategy<Value = Duration> {
    (0i64..2 * 86_400).prop_map(Duration::seconds)
}

/// (as the API spells it, as the decoder reports it)
const STATUSES: &[(&str, &str)] = &[
    ("Success", "success"),
    ("SUCCESS", "success"),
    ("Failed", "failed"),
    ("failed", "failed"),
    ("Running", "running"),
    ("Pending", "pending"),
];
const TYPES: &[(&str, &str)] = &[
    ("FullBackup", "full"),
    ("Fullbackup", "full"),
    ("full", "full"),
    ("IncrementalBackup", "incremental"),
    ("Snapshot", "snapshot"),
];
const MODES: &[(&str, &str)] = &[("Automated", "automated"), ("Manual", "manual")];
const METHODS: &[(&str, &str)] = &[
    ("Physical", "physical"),
    ("Logical", "logical"),
    ("Snapshot", "snapshot"),
];

fn node_id() -> impl Strategy<Value = String> {
    "r-[a-z0-9]{4,16}-db-[0-9]{1,2}"
}

/// A backup as the fake serves it, and what decoding it must give.
fn described_backup() -> impl Strategy<Value = (FakeBackup, Backup)> {
    (
        proptest::option::of(node_id()),
        prop::sample::select(STATUSES),
        instant(),
        proptest::option::of(took()),
        proptest::option::of(prop_oneof![any::<u64>(), 0u64..1 << 40]),
        prop::sample::select(TYPES),
        prop::sample::select(MODES),
        prop::sample::select(METHODS),
    )
        .prop_map(|(node, status, start, took, size, ty, mode, method)| {
            // A success always has an end.
            let took = if status.1 == "success" {
                Some(took.unwrap_or_default())
            } else {
                took
            };
            let end = took.map(|d| start + d);
            let fake = FakeBackup {
                node_id: node.clone(),
                status: status.0.into(),
                start,
                end,
                size,
                backup_type: ty.0.into(),
                backup_mode: mode.0.into(),
                backup_method: method.0.into(),
            };
            let expected = Backup {
                node_id: node.unwrap_or_else(|| INSTANCE.to_string()),
                status: BackupStatus::parse(status.1),
                start,
                end,
                size_bytes: size,
                backup_type: ty.1.into(),
                backup_mode: mode.1.into(),
                backup_method: method.1.into(),
                restorable: true,
            };
            (fake, expected)
        })
}

/// A DescribeBackups page as the fake renders it (`quirky`: numbers as
/// strings, odd case, unknown fields), and the backups it holds.
fn describe_backups_answer() -> impl Strategy<Value = (Value, Vec<Backup>)> {
    (
        prop::collection::vec(described_backup(), 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(backups, quirky, wrapped)| {
            let items: Vec<Value> = backups
                .iter()
                .enumerate()
                .map(|(i, (fake, _))| render_backup(fake, 100_000 + i as u64, quirky))
                .collect();
            let total = if quirky {
                json!(items.len().to_string())
            } else {
                json!(items.len())
            };
            let list = if wrapped {
                json!({ "Backup": items })
            } else {
                Value::Array(items)
            };
            let doc = json!({
                "RequestId": "6D9C2F3B-1E4A-4B8C-9D7E-2A5F0C1B3E47",
                "PageNumber": 1,
                "PageSize": 100,
                "TotalCount": total,
                "FullStorageSize": 0,
                "Backups": list,
            });
            (doc, backups.into_iter().map(|(_, b)| b).collect())
        })
}

const CLUSTER_STATUSES: &[(&str, &str)] = &[
    ("OK", "success"),
    ("ok", "success"),
    ("RUNNING", "running"),
    ("Failed", "failed"),
    ("ERROR", "failed"),
];

/// A cloud-native cluster backup as the fake serves it, and the backups
/// (one per shard, or one for the whole) decoding it must give.
fn cluster_backup() -> impl Strategy<Value = (FakeClusterBackup, bool, Vec<Backup>)> {
    let shard = (
        prop_oneof![node_id(), "hins[0-9]{6,9}", Just(String::new())],
        prop::sample::select(CLUSTER_STATUSES),
        instant(),
        proptest::option::of(took()),
        proptest::option::of(0u64..1 << 40),
    );
    (
        prop::sample::select(CLUSTER_STATUSES),
        instant(),
        proptest::option::of(took()),
        prop::sample::select(MODES),
        prop::collection::vec(shard, 0..4),
        any::<bool>(),
    )
        .prop_map(|(status, start, took, mode, shards, with_shards)| {
            let end = if status.1 == "success" {
                Some(start + took.unwrap_or_default())
            } else {
                took.map(|d| start + d)
            };
            let shards: Vec<FakeShardBackup> = shards
                .into_iter()
                .map(|(name, status, start, took, size)| FakeShardBackup {
                    instance_name: name,
                    status: status.0.into(),
                    start,
                    // An OK shard always has an end, its own or the cluster's.
                    end: if status.1 == "success" && end.is_none() {
                        Some(start + took.unwrap_or_default())
                    } else {
                        took.map(|d| start + d)
                    },
                    size,
                })
                .collect();
            let fake = FakeClusterBackup {
                status: status.0.into(),
                start,
                end,
                mode: mode.0.into(),
                shards,
            };
            let ok = |s: &str| s.eq_ignore_ascii_case("OK");
            let whole = ok(&fake.status) && fake.shards.iter().all(|s| ok(&s.status));
            let status_of = |s: &str| {
                let (_, label) = CLUSTER_STATUSES
                    .iter()
                    .find(|(raw, _)| *raw == s)
                    .copied()
                    .unwrap_or(("", "?"));
                BackupStatus::parse(label)
            };
            let expected = if with_shards && !fake.shards.is_empty() {
                fake.shards
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Backup {
                        node_id: if is_node_id(&s.instance_name) {
                            s.instance_name.clone()
                        } else {
                            format!("{INSTANCE}-shard-{i}")
                        },
                        status: status_of(&s.status),
                        start: s.start,
                        end: s.end.or(end),
                        size_bytes: s.size,
                        backup_type: "full".into(),
                        backup_mode: mode.1.into(),
                        backup_method: "unknown".into(),
                        restorable: whole,
                    })
                    .collect()
            } else {
                vec![Backup {
                    node_id: INSTANCE.into(),
                    status: status_of(&fake.status),
                    start,
                    end,
                    size_bytes: Some(fake.shards.iter().filter_map(|s| s.size).sum()),
                    backup_type: "full".into(),
                    backup_mode: mode.1.into(),
                    backup_method: "unknown".into(),
                    restorable: whole,
                }]
            };
            (fake, with_shards, expected)
        })
}

/// A DescribeClusterBackupList page as the fake renders it, and the
/// backups it holds.
fn cluster_answer() -> impl Strategy<Value = (Value, Vec<Backup>)> {
    (prop::collection::vec(cluster_backup(), 0..4), any::<bool>()).prop_map(
        |(clusters, wrapped)| {
            let items: Vec<Value> = clusters
                .iter()
                .enumerate()
                .map(|(i, (fake, with_shards, _))| {
                    render_cluster_backup(fake, 1 + i as u64, *with_shards)
                })
                .collect();
            let list = if wrapped {
                json!({ "ClusterBackup": items })
            } else {
                Value::Array(items)
            };
            let doc = json!({
                "RequestId": "R",
                "PageNumber": 1,
                "PageSize": 100,
                "MaxResults": 100,
                "ClusterBackups": list,
            });
            let expected = clusters.into_iter().flat_map(|(_, _, b)| b).collect();
            (doc, expected)
        },
    )
}

const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A DescribeBackupPolicy answer and what decoding it must give.
fn policy_answer() -> impl Strategy<Value = (Value, u8, String, u32, bool)> {
    (
        0u8..128,
        prop::collection::vec(0u8..4, 7),
        prop::sample::select(&[",", ", ", " ,", ",,"][..]),
        (0u32..24, 0u32..60, 0u32..24, 0u32..60),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(days, spelling, sep, (h1, m1, h2, m2), retention, log, as_text)| {
                let names: Vec<String> = (0..7)
                    .filter(|d| days & (1 << d) != 0)
                    .map(|d| {
                        let long = DAY_NAMES[d];
                        match spelling[d] {
                            0 => long.to_string(),
                            1 => long.to_ascii_uppercase(),
                            2 => long[..3].to_string(),
                            _ => long[..3].to_ascii_lowercase(),
                        }
                    })
                    .collect();
                let window = format!("{h1:02}:{m1:02}Z-{h2:02}:{m2:02}Z");
                let (retention_value, log_value) = if as_text {
                    (
                        json!(retention.to_string()),
                        json!(u8::from(log).to_string()),
                    )
                } else {
                    (json!(retention), json!(u8::from(log)))
                };
                let doc = json!({
                    "RequestId": "R",
                    "PreferredBackupPeriod": names.join(sep),
                    "PreferredBackupTime": window,
                    "PreferredNextBackupTime": "2024-01-10T05:00Z",
                    "BackupRetentionPeriod": retention_value,
                    "EnableBackupLog": log_value,
                    "DbsInstance": "0",
                });
                (doc, days, window, retention, log)
            },
        )
}

/// A DescribeInstances page as the fake renders it.
fn instances_answer() -> impl Strategy<Value = Value> {
    let instance = (
        "r-[a-z0-9]{4,16}",
        prop::sample::select(&["cn-hangzhou", "eu-central-1", "ap-southeast-5"][..]),
        text(),
        prop::sample::select(&["standard", "cluster", "rwsplit", "Cluster"][..]),
        proptest::option::of(any::<u32>()),
        prop::collection::vec(("[a-z]{1,8}", text()), 0..3),
        instant(),
        any::<bool>(),
    )
        .prop_map(|(id, region, name, arch, shards, tags, created, quirky)| {
            let fake = FakeInstance {
                info: FakeInfo {
                    name,
                    architecture: arch.into(),
                    shard_count: shards,
                    tags,
                    create_time: created,
                    ..FakeInfo::in_region(region)
                },
                quirky_types: quirky,
                ..Default::default()
            };
            render_instance(&id, &fake)
        });
    (prop::collection::vec(instance, 0..4), any::<bool>()).prop_map(|(items, total)| {
        let mut doc = json!({
            "RequestId": "R",
            "PageNumber": 1,
            "PageSize": 50,
            "Instances": { "KVStoreInstance": items },
        });
        if total {
            doc["TotalCount"] = json!(doc["Instances"]["KVStoreInstance"]
                .as_array()
                .map_or(0, Vec::len));
        }
        doc
    })
}

/// A DescribeRegions answer as the fake renders it.
fn regions_answer() -> impl Strategy<Value = Value> {
    prop::collection::vec("[a-z]{2}-[a-z]{4,9}(-[1-9])?", 1..6).prop_map(|ids| {
        let regions: Vec<Value> = ids.iter().map(|id| render_region(id, &[])).collect();
        json!({ "RequestId": "R", "RegionIds": { "KVStoreRegion": regions } })
    })
}

const CLUSTER_FIXTURE: &[u8] = include_bytes!("../fixtures/kvstore/DescribeClusterBackupList.json");
const POLICY_FIXTURE: &[u8] = include_bytes!("../fixtures/kvstore/DescribeBackupPolicy.json");

fn fixture(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------
// Mutations

/// One change to a JSON document.
#[derive(Debug, Clone)]
enum Mutation {
    /// The value becomes another (often of another type, or an odd one).
    Replace(Value),
    /// The field or item goes.
    Delete,
    /// An object gains a field (maybe a known one), a list an item.
    Insert(String, Value),
    /// Upper, lower or swapped case of a string, or of an object's keys.
    Case(u8),
    /// A number becomes its text; a text that is a number becomes one.
    Retype,
    /// Edits of a time's text: no `Z`, an offset, a fraction, ...
    TimeEdit(u8, i32),
    /// A string made very long.
    Lengthen(char, usize),
    /// The value wrapped in a list, or in an object.
    Wrap(Option<String>),
    /// A list's first item repeated.
    Repeat,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => json_value().prop_map(Mutation::Replace),
        3 => scalar().prop_map(Mutation::Replace),
        2 => Just(Mutation::Delete),
        2 => (key(), json_value()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        2 => (0u8..4).prop_map(Mutation::Case),
        2 => Just(Mutation::Retype),
        2 => (0u8..10, -1500i32..1500).prop_map(|(k, m)| Mutation::TimeEdit(k, m)),
        1 => (any::<char>(), 1usize..50_000).prop_map(|(c, n)| Mutation::Lengthen(c, n)),
        1 => proptest::option::of(prop::sample::select(FIELDS).prop_map(String::from))
            .prop_map(Mutation::Wrap),
        1 => Just(Mutation::Repeat),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

/// Every node of `doc`, root first, as paths.
fn paths(doc: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    here.push(Step::Key(k.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    here.push(Step::At(i));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'a>(doc: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::At(i) => v.get_mut(*i),
    })
}

fn case(s: &str, kind: u8) -> String {
    match kind {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        2 => s
            .chars()
            .map(|c| {
                if c.is_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect(),
        _ => {
            let mut cs = s.chars();
            cs.next()
                .map(|c| {
                    c.to_uppercase()
                        .chain(cs.flat_map(char::to_lowercase))
                        .collect()
                })
                .unwrap_or_default()
        }
    }
}

fn time_edit(s: &str, kind: u8, minutes: i32) -> String {
    let no_z = s.trim_end_matches(['Z', 'z']);
    let sign = if minutes < 0 { '-' } else { '+' };
    let off = format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60);
    match kind {
        0 => no_z.to_string(),
        1 => format!("{no_z}{off}"),
        2 => format!("{no_z}.{:09}Z", minutes.unsigned_abs()),
        3 => no_z.replacen('T', " ", 1),
        4 => s.to_lowercase(),
        5 => s
            .chars()
            .take(minutes.unsigned_abs() as usize % 24)
            .collect(),
        6 => format!("{s}{off}"),
        7 => format!(
            "{:04}{}",
            minutes.unsigned_abs() % 10_000,
            s.get(4..).unwrap_or("")
        ),
        8 => format!("  {s}\t"),
        _ => s.replacen(':', &format!(":{}", minutes.unsigned_abs() % 100), 1),
    }
}

fn apply(doc: &mut Value, at: Index, mutation: &Mutation) {
    let all = paths(doc);
    let path = all[at.index(all.len())].clone();
    if let (Mutation::Delete, Some((last, parent))) = (mutation, path.split_last()) {
        if let Some(parent) = node_mut(doc, parent) {
            match (parent, last) {
                (Value::Object(map), Step::Key(k)) => {
                    map.remove(k);
                }
                (Value::Array(items), Step::At(i)) if *i < items.len() => {
                    items.remove(*i);
                }
                _ => {}
            }
        }
        return;
    }
    let Some(node) = node_mut(doc, &path) else {
        return;
    };
    match mutation {
        Mutation::Replace(v) => *node = v.clone(),
        Mutation::Delete => *node = json!({}),
        Mutation::Insert(k, v) => match node {
            Value::Object(map) => {
                map.insert(k.clone(), v.clone());
            }
            Value::Array(items) => items.push(v.clone()),
            other => *other = v.clone(),
        },
        Mutation::Case(kind) => match node {
            Value::String(s) => *s = case(s, *kind),
            Value::Object(map) => {
                let cased: Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (case(&k, *kind), v))
                    .collect();
                *map = cased;
            }
            _ => {}
        },
        Mutation::Retype => match node {
            Value::Number(n) => *node = Value::String(n.to_string()),
            Value::String(s) => {
                if let Ok(v) = serde_json::from_str::<Value>(s.trim()) {
                    if v.is_number() {
                        *node = v;
                    }
                }
            }
            Value::Bool(b) => *node = json!(u8::from(*b)),
            _ => {}
        },
        Mutation::TimeEdit(kind, minutes) => {
            if let Value::String(s) = node {
                *s = time_edit(s, *kind, *minutes);
            }
        }
        Mutation::Lengthen(c, n) => {
            let long = c.to_string().repeat(*n);
            match node {
                Value::String(s) => s.push_str(&long),
                other => *other = Value::String(long),
            }
        }
        Mutation::Wrap(key) => {
            let inner = node.take();
            *node = match key {
                None => Value::Array(vec![inner]),
                Some(k) => Value::Object(Map::from_iter([(k.clone(), inner)])),
            };
        }
        Mutation::Repeat => {
            if let Value::Array(items) = node {
                if let Some(first) = items.first().cloned() {
                    items.push(first);
                }
            }
        }
    }
}

fn mutations() -> impl Strategy<Value = Vec<(Index, Mutation)>> {
    prop::collection::vec((any::<Index>(), mutation()), 1..5)
}

fn mutated(mut doc: Value, changes: &[(Index, Mutation)]) -> (Value, Vec<u8>) {
    for (at, m) in changes {
        apply(&mut doc, *at, m);
    }
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    // What the decoder reads: serde_json may read a float back a unit of
    // least precision away from the one it wrote.
    let doc = serde_json::from_slice(&body).unwrap_or(doc);
    (doc, body)
}

/// Byte-level damage to a serialized answer: cut short, a byte changed, a
/// byte inserted.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    Set(Index, u8),
    Insert(Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>()).prop_map(Damage::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (
            any::<Index>(),
            prop::sample::select(&b"{}[]\",:0-.eE\\ \x00\xff"[..])
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
}

// ---------------------------------------------------------------------------
// The properties

proptest! {
    #![proptest_config(config())]

    /// Any bytes at all: no decoder panics, and each result holds.
    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&body)?;
    }

    /// Any JSON document, biased to the decoders' field names.
    #[test]
    fn arbitrary_json(doc in json_document()) {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        decode_all(&body)?;
    }

    /// DescribeBackups answers with fields replaced, deleted, added,
    /// re-cased, re-typed, lengthened, wrapped.
    #[test]
    fn mutated_describe_backups((doc, _) in describe_backups_answer(), changes in mutations()) {
        let (doc, body) = mutated(doc, &changes);
        check_page(&decode_page(&body, INSTANCE), Some(&doc), INSTANCE)?;
    }

    #[test]
    fn mutated_cluster_backup_list(
        doc in prop_oneof![
            1 => Just(fixture(CLUSTER_FIXTURE)),
            3 => cluster_answer().prop_map(|(doc, _)| doc),
        ],
        changes in mutations(),
    ) {
        let (doc, body) = mutated(doc, &changes);
        check_cluster(&decode_cluster_page(&body, INSTANCE), Some(&doc), INSTANCE)?;
    }

    #[test]
    fn mutated_backup_policy(
        doc in prop_oneof![
            1 => Just(fixture(POLICY_FIXTURE)),
            3 => policy_answer().prop_map(|(doc, ..)| doc),
        ],
        changes in mutations(),
    ) {
        let (doc, body) = mutated(doc, &changes);
        check_policy(&decode_backup_policy(&body), Some(&doc))?;
    }

    #[test]
    fn mutated_describe_instances(doc in instances_answer(), changes in mutations()) {
        let (doc, body) = mutated(doc, &changes);
        check_instances(&decode_instances(&body, REGION), Some(&doc), REGION)?;
    }

    #[test]
    fn mutated_describe_regions(doc in regions_answer(), changes in mutations()) {
        let (_, body) = mutated(doc, &changes);
        check_regions(&decode_regions(&body))?;
    }

    /// Real answers damaged byte by byte, fed to every decoder.
    #[test]
    fn damaged_bytes_of_real_answers(
        doc in prop_oneof![
            describe_backups_answer().prop_map(|(doc, _)| doc),
            cluster_answer().prop_map(|(doc, _)| doc),
            policy_answer().prop_map(|(doc, ..)| doc),
            instances_answer(),
            regions_answer(),
        ],
        damage in prop::collection::vec(damage(), 1..4),
    ) {
        let mut body = serde_json::to_vec(&doc).unwrap_or_default();
        for d in &damage {
            match *d {
                Damage::Truncate(i) => body.truncate(i.index(body.len() + 1)),
                Damage::Set(i, b) if !body.is_empty() => {
                    let i = i.index(body.len());
                    body[i] = b;
                }
                Damage::Set(..) => {}
                Damage::Insert(i, b) => body.insert(i.index(body.len() + 1), b),
            }
        }
        decode_all(&body)?;
    }

    /// What the fake renders as DescribeBackups decodes to exactly the
    /// backups it was made from (statuses and labels normalised).
    #[test]
    fn describe_backups_round_trip((doc, expected) in describe_backups_answer()) {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let page = decode_page(&body, INSTANCE).map_err(TestCaseError::fail)?;
        prop_assert_eq!(page.total_count, Some(expected.len()));
        prop_assert_eq!(page.backups, expected);
    }

    /// The same for DescribeClusterBackupList: one backup per shard, or
    /// one for the whole cluster backup when it lists no shard.
    #[test]
    fn cluster_backup_list_round_trip((doc, expected) in cluster_answer()) {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let backups = decode_cluster_page(&body, INSTANCE).map_err(TestCaseError::fail)?;
        prop_assert_eq!(backups, expected);
    }

    /// And for DescribeBackupPolicy: days in any spelling, the window as
    /// given, retention and log flag as numbers or text.
    #[test]
    fn backup_policy_round_trip((doc, days, window, retention, log) in policy_answer()) {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let policy = decode_backup_policy(&body).map_err(TestCaseError::fail)?;
        let label: Vec<&str> = (0..7).filter(|d| days & (1 << d) != 0).map(|d| DAYS[d]).collect();
        prop_assert_eq!(policy.days.label(), label.join(","));
        prop_assert_eq!(policy.window, window);
        prop_assert_eq!(policy.retention_days, Some(u64::from(retention)));
        prop_assert_eq!(policy.log_backup_enabled, Some(log));
    }

    /// A size is read exactly, or refused by name: never wrapped from a
    /// negative, saturated from a huge value, or rounded from a fraction.
    #[test]
    fn sizes_are_exact_or_refused(
        size in prop_oneof![number(), text().prop_map(Value::String)],
        shard in any::<bool>(),
    ) {
        // As the decoder will read it (a float may come back a unit of least
        // precision away).
        let size: Value = serde_json::from_slice(&serde_json::to_vec(&size).unwrap_or_default())
            .unwrap_or(Value::Null);
        let (result, field) = if shard {
            let body = json!({"ClusterBackups": [{"ClusterBackupStatus": "OK",
                "ClusterBackupStartTime": "2024-01-09T17:20:39Z",
                "ClusterBackupEndTime": "2024-01-09T17:22:01Z",
                "Backups": [{"InstanceName": "r-x-db-0", "BackupStatus": "OK", "BackupSize": size}]}]});
            let body = serde_json::to_vec(&body).unwrap_or_default();
            (decode_cluster_page(&body, INSTANCE).map(|b| b[0].size_bytes), "BackupSize")
        } else {
            let body = json!({"Backups": {"Backup": [{"BackupStatus": "Success",
                "BackupStartTime": "2024-01-09T17:20:39Z",
                "BackupEndTime": "2024-01-09T17:22:01Z", "BackupSize": size}]}});
            let body = serde_json::to_vec(&body).unwrap_or_default();
            (decode_page(&body, INSTANCE).map(|p| p.backups[0].size_bytes), "BackupSize")
        };
        let exact = match &size {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let blank = match &size {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        };
        match result {
            Ok(None) => prop_assert!(blank, "{:?} read as no size", size),
            Ok(Some(n)) => {
                prop_assert!(Given::of(&size).is_some_and(|g| g.is(n)), "{:?} read as {}", size, n);
            }
            Err(e) => {
                prop_assert!(exact.is_none() && !blank, "{:?} refused: {}", size, e);
                prop_assert!(reason(&e).starts_with(field), "{}", e);
                check_error(&e, CLUSTER_FIELDS)?;
            }
        }
    }

    /// A time is read in every shape the API uses (with or without `Z`,
    /// with an offset or a fraction, to the minute), as the instant it
    /// names; anything else is refused by name, never read as another time.
    #[test]
    fn times_in_every_shape(
        secs in -62_135_596_800i64..253_402_300_800,
        nanos in 0u32..1_000_000_000,
        digits in 1usize..10,
        offset in -1439i32..1440,
        shape in 0usize..7,
        field in prop::sample::select(&["BackupStartTime", "BackupEndTime"][..]),
        cluster in any::<bool>(),
    ) {
        let t = at(secs);
        let cut = 10u32.pow(9 - digits as u32);
        let fraction = nanos / cut;
        let local = t.naive_utc() + Duration::minutes(offset.into());
        let sign = if offset < 0 { '-' } else { '+' };
        let off = format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
        let fmt = |f: &str| t.format(f).to_string();
        let (raw, want) = match shape {
            0 => (fmt("%Y-%m-%dT%H:%M:%SZ"), Some(t)),
            1 => (fmt("%Y-%m-%dT%H:%M:%S"), Some(t)),
            2 => (
                format!("{}.{fraction:0digits$}Z", fmt("%Y-%m-%dT%H:%M:%S")),
                t.with_nanosecond(fraction * cut),
            ),
            3 if (1..=9999).contains(&local.year()) => (
                format!("{}{off}", local.format("%Y-%m-%dT%H:%M:%S")),
                Some(t),
            ),
            3 => (fmt("%Y-%m-%dT%H:%M:%SZ"), Some(t)),
            4 => (fmt("%Y-%m-%dT%H:%MZ"), t.with_second(0)),
            5 => (fmt("%Y-%m-%dT%H:%M"), t.with_second(0)),
            // Not times: a date alone, an impossible hour, seconds since 1970.
            _ => (
                [fmt("%Y-%m-%d"), fmt("%Y-%m-%dT25:%M:%SZ"), t.timestamp().to_string()]
                    [nanos as usize % 3].clone(),
                None,
            ),
        };
        let item = |status: &str| {
            let mut item = json!({"BackupStatus": status,
                "BackupStartTime": "2024-01-09T17:20:39Z", "BackupEndTime": "2024-01-09T17:22:01Z"});
            item[field] = json!(raw);
            item
        };
        let result = if cluster {
            let body = json!({"ClusterBackups": [{"ClusterBackupStatus": "ERROR",
                "ClusterBackupStartTime": "2024-01-09T17:20:39Z", "Backups": [item("ERROR")]}]});
            decode_cluster_page(&serde_json::to_vec(&body).unwrap_or_default(), INSTANCE)
                .map(|b| b[0].clone())
        } else {
            let body = json!({"Backups": [item("Failed")]});
            decode_page(&serde_json::to_vec(&body).unwrap_or_default(), INSTANCE)
                .map(|p| p.backups[0].clone())
        };
        match (result, want) {
            (Ok(b), Some(want)) => {
                let got = if field == "BackupStartTime" { Some(b.start) } else { b.end };
                prop_assert_eq!(got, Some(want), "{:?}", raw);
            }
            (Err(e), None) => {
                prop_assert!(reason(&e).starts_with(field), "{}", e);
                check_error(&e, CLUSTER_FIELDS)?;
            }
            (result, want) => prop_assert!(false, "{:?} gave {:?}, not {:?}", raw, result, want),
        }
    }
}
