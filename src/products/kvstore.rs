//! ApsaraDB for Redis / Tair (`R-kvstore`, API version 2015-01-01) calls,
//! decoded into model types.

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{Map, Value};

use tokio::time::Instant;

use crate::aliyun::endpoint;
use crate::aliyun::json::{as_u64, count, decode_each, object, parse_time, text, wrapped_list};
use crate::aliyun::{ApiError, RpcClient};
use crate::model::{normalize_backup_type, normalize_word, Backup, BackupStatus, InstanceInfo};

/// The R-kvstore API version all these calls belong to.
pub const API_VERSION: &str = "2015-01-01";

/// Backups asked for per page. The API takes 30, 50, 100, 200 or 300; the
/// older documentation lists only up to 100, which every version accepts.
pub const PAGE_SIZE: usize = 100;

/// A runaway `TotalCount` must not make us loop for ever.
const MAX_PAGES: usize = 200;

/// The backups of `instance_id` that started in the window, all pages,
/// retries included, by `deadline`. A page that fails fails the whole call:
/// no half-counted windows.
pub async fn describe_backups(
    client: &RpcClient,
    instance_id: &str,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    let mut backups = Vec::new();
    for page_number in 1..=MAX_PAGES {
        let params = [
            ("InstanceId", instance_id.to_string()),
            ("StartTime", window.start_param()),
            ("EndTime", window.end_param()),
            ("PageSize", PAGE_SIZE.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        let answer = client
            .call(
                "DescribeBackups",
                &params,
                |body| decode_page(body, instance_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.backups.len();
        backups.extend(page.backups);
        let total = page.total_count.unwrap_or(backups.len());
        if got == 0 || backups.len() >= total {
            return Ok(backups);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_PAGES} pages of backups"),
        request_id: None,
    })
}

/// The time window of a DescribeBackups call, in the API's minute format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// `now - lookback` to `now` rounded up to the next whole minute (the
    /// API takes minutes only, and the end must not cut off the present).
    pub fn ending_at(now: DateTime<Utc>, lookback: std::time::Duration) -> Self {
        let floor = |t: DateTime<Utc>| {
            t.with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(t)
        };
        // Config bounds the lookback; saturate anyway rather than panic.
        let lookback = ChronoDuration::from_std(lookback).unwrap_or(ChronoDuration::days(7));
        let start = now
            .checked_sub_signed(lookback)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let end = floor(now)
            .checked_add_signed(ChronoDuration::minutes(1))
            .unwrap_or(now);
        Window {
            start: floor(start),
            end,
        }
    }

    pub fn start_param(&self) -> String {
        format_minute(self.start)
    }

    pub fn end_param(&self) -> String {
        format_minute(self.end)
    }
}

/// `yyyy-MM-ddTHH:mmZ`.
pub fn format_minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// One page of a DescribeBackups answer.
#[derive(Debug)]
pub struct Page {
    pub backups: Vec<Backup>,
    pub total_count: Option<usize>,
}

/// Decodes a DescribeBackups page: lenient where Alibaba is inconsistent
/// (types, case, missing optional fields), strict where facts would be
/// wrong. Download URLs are never read.
pub fn decode_page(body: &[u8], instance_id: &str) -> Result<Page, String> {
    let doc = object(body)?;
    let total_count = count(&doc, "TotalCount")?;
    let items = wrapped_list(&doc, "Backups", "Backup")?;
    let backups = decode_each(items, "Backups.Backup", |item| {
        decode_backup(item, instance_id)
    })?;
    Ok(Page {
        backups,
        total_count,
    })
}

fn decode_backup(item: &Map<String, Value>, instance_id: &str) -> Result<Backup, String> {
    let status = text(item, "BackupStatus").ok_or("BackupStatus is missing")?;
    let status = BackupStatus::parse(&status);
    let start = text(item, "BackupStartTime").ok_or("BackupStartTime is missing")?;
    let start = parse_time(&start).ok_or(format!("BackupStartTime {start:?} is not a time"))?;
    let end = match text(item, "BackupEndTime") {
        None => None,
        Some(raw) => Some(parse_time(&raw).ok_or(format!("BackupEndTime {raw:?} is not a time"))?),
    };
    if status == BackupStatus::Success && end.is_none() {
        return Err("a successful backup has no BackupEndTime".into());
    }
    let size_bytes = match item.get("BackupSize") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(as_u64(v).ok_or("BackupSize is not a whole number")?),
    };
    let label = |name: &str, normalize: fn(&str) -> String| {
        text(item, name)
            .map(|v| normalize(&v))
            .unwrap_or_else(|| "unknown".into())
    };
    Ok(Backup {
        node_id: text(item, "NodeInstanceId").unwrap_or_else(|| instance_id.to_string()),
        status,
        start,
        end,
        size_bytes,
        backup_type: label("BackupType", normalize_backup_type),
        backup_mode: label("BackupMode", normalize_word),
        backup_method: label("BackupMethod", normalize_word),
    })
}

/// Instances asked for per DescribeInstances page: the API's maximum.
pub const INSTANCE_PAGE_SIZE: usize = 50;
/// IDs per DescribeInstances call with `InstanceIds`: the API's maximum.
pub const MAX_IDS_PER_CALL: usize = 30;
/// 50,000 instances in one region is beyond any real estate.
const MAX_INSTANCE_PAGES: usize = 1000;

/// What to list in one region.
#[derive(Debug, Clone, Copy)]
pub struct InstanceQuery<'a> {
    pub region_id: &'a str,
    /// Only these instances (at most `MAX_IDS_PER_CALL`); empty for all.
    pub instance_ids: &'a [String],
    /// An instance must carry every pair (sent as `Tag.N.*`, at most five,
    /// and checked again here: whether the API ANDs them is not documented).
    pub tags: &'a [(String, String)],
}

/// Every instance of a region matching `query`, all pages, by `deadline`.
/// A failed page fails the whole call: a half list would drop instances.
pub async fn describe_instances(
    client: &RpcClient,
    query: &InstanceQuery<'_>,
    deadline: Instant,
) -> Result<Vec<InstanceInfo>, ApiError> {
    let mut found: Vec<InstanceInfo> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut listed = 0;
    for page_number in 1..=MAX_INSTANCE_PAGES {
        let mut params = vec![
            ("RegionId", query.region_id.to_string()),
            ("PageSize", INSTANCE_PAGE_SIZE.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        if !query.instance_ids.is_empty() {
            params.push(("InstanceIds", query.instance_ids.join(",")));
        }
        let tag_params: Vec<(String, String)> = query
            .tags
            .iter()
            .take(crate::config::MAX_TAGS)
            .enumerate()
            .flat_map(|(i, (k, v))| {
                [
                    (format!("Tag.{}.Key", i + 1), k.clone()),
                    (format!("Tag.{}.Value", i + 1), v.clone()),
                ]
            })
            .collect();
        params.extend(tag_params.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let answer = client
            .call(
                "DescribeInstances",
                &params,
                |body| decode_instances(body, query.region_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.instances.len();
        listed += got;
        // Pages can shift while instances come and go: never count one twice.
        for instance in page.instances {
            if seen.insert(instance.instance_id.clone()) && instance.has_tags(query.tags) {
                found.push(instance);
            }
        }
        let total = page.total_count.unwrap_or(listed);
        if got == 0 || listed >= total {
            return Ok(found);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_INSTANCE_PAGES} pages of instances"),
        request_id: None,
    })
}

/// One page of a DescribeInstances answer.
#[derive(Debug)]
pub struct InstancePage {
    pub instances: Vec<InstanceInfo>,
    pub total_count: Option<usize>,
}

/// Label values are bounded: an instance name is the user's free text.
fn bounded(value: String) -> String {
    if value.len() <= 256 {
        return value;
    }
    let mut end = 256;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// Decodes a DescribeInstances page. Strict about what identifies an
/// instance (a missing or malformed `InstanceId` fails the page, so the
/// last known list is kept rather than an instance dropped), lenient about
/// everything else.
pub fn decode_instances(body: &[u8], queried_region: &str) -> Result<InstancePage, String> {
    let doc = object(body)?;
    let total_count = count(&doc, "TotalCount")?;
    let items = wrapped_list(&doc, "Instances", "KVStoreInstance")?;
    let instances = decode_each(items, "Instances.KVStoreInstance", |item| {
        decode_instance(item, queried_region)
    })?;
    Ok(InstancePage {
        instances,
        total_count,
    })
}

fn decode_instance(
    item: &Map<String, Value>,
    queried_region: &str,
) -> Result<InstanceInfo, String> {
    let instance_id = text(item, "InstanceId").ok_or("InstanceId is missing")?;
    if !crate::config::is_valid_instance_id(&instance_id) {
        return Err(format!("InstanceId {instance_id:?} is not an instance ID"));
    }
    let region_id = text(item, "RegionId")
        .filter(|r| endpoint::is_valid_region(r))
        .unwrap_or_else(|| queried_region.to_string());
    let field = |name: &str| bounded(text(item, name).unwrap_or_default());
    let tags = wrapped_list(item, "Tags", "Tag")?
        .into_iter()
        .filter_map(|t| t.as_object())
        .filter_map(|t| {
            Some((
                bounded(text(t, "Key")?),
                bounded(text(t, "Value").unwrap_or_default()),
            ))
        })
        .collect();
    Ok(InstanceInfo {
        instance_id,
        region_id,
        name: field("InstanceName"),
        zone_id: field("ZoneId"),
        engine_version: field("EngineVersion"),
        architecture: field("ArchitectureType").to_ascii_lowercase(),
        instance_class: field("InstanceClass"),
        status: field("InstanceStatus"),
        shard_count: item
            .get("ShardCount")
            .and_then(as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        tags,
        // A creation time that cannot be read only leaves out its series.
        created: text(item, "CreateTime").and_then(|t| parse_time(&t)),
    })
}

/// A region and the host DescribeRegions says serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub region_id: String,
    /// `RegionEndpoint`, when it is a plausible Alibaba host name.
    pub endpoint_host: Option<String>,
}

/// Every region R-kvstore is offered in, by `deadline`.
pub async fn describe_regions(
    client: &RpcClient,
    deadline: Instant,
) -> Result<Vec<RegionInfo>, ApiError> {
    let answer = client
        .call("DescribeRegions", &[], decode_regions, deadline)
        .await?;
    Ok(answer.value)
}

/// Decodes DescribeRegions. A region ID that could not be a region is
/// skipped (it would end up in a host name); an endpoint that is not an
/// `*.aliyuncs.com` host is ignored, so the signed requests never go to a
/// host that an answer made up.
pub fn decode_regions(body: &[u8]) -> Result<Vec<RegionInfo>, String> {
    let doc = object(body)?;
    let items = wrapped_list(&doc, "RegionIds", "KVStoreRegion")?;
    let mut regions: Vec<RegionInfo> = Vec::new();
    for item in items.into_iter().filter_map(Value::as_object) {
        let Some(region_id) = text(item, "RegionId").filter(|r| endpoint::is_valid_region(r))
        else {
            continue;
        };
        if regions.iter().any(|r| r.region_id == region_id) {
            continue;
        }
        let endpoint_host = text(item, "RegionEndpoint").filter(|h| endpoint::is_alibaba_host(h));
        regions.push(RegionInfo {
            region_id,
            endpoint_host,
        });
    }
    if regions.is_empty() {
        return Err("RegionIds.KVStoreRegion names no region".into());
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn window_is_in_whole_minutes_and_covers_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 4, 46, 7).unwrap();
        let w = Window::ending_at(now, std::time::Duration::from_secs(7 * 86400));
        assert_eq!(w.start_param(), "2026-11-19T04:46Z");
        assert_eq!(w.end_param(), "2026-11-26T04:47Z");
        let on_the_minute = Utc.with_ymd_and_hms(2026, 11, 26, 4, 46, 0).unwrap();
        let w = Window::ending_at(on_the_minute, std::time::Duration::from_secs(3600));
        assert_eq!(w.end_param(), "2026-11-26T04:47Z");
    }

    #[test]
    fn lenient_about_types_case_and_missing_fields() {
        let body = br#"{"RequestId":"R","TotalCount":"2","PageNumber":1,
          "Backups":{"Backup":[
            {"BackupId":"123","BackupStatus":"SUCCESS","BackupStartTime":"2019-03-14T05:28:50Z",
             "BackupEndTime":"2019-03-14T05:31:13Z","BackupSize":"1024","BackupType":"Fullbackup",
             "EngineVersion":4,"RecoverConfigMode":{"x":1},"Unknown":[1],
             "BackupDownloadURL":"https://oss/x?Signature=abc"},
            {"BackupId":7,"BackupStatus":"Failed","BackupStartTime":"2019-03-15T05:28:50Z",
             "NodeInstanceId":"r-1-db-0","BackupSize":2048,"BackupMode":"Manual","BackupMethod":"Physical"}
          ]}}"#;
        let page = decode_page(body, "r-1").unwrap();
        assert_eq!(page.total_count, Some(2));
        let [a, b] = &page.backups[..] else {
            panic!("two backups")
        };
        assert_eq!(a.node_id, "r-1");
        assert_eq!(a.status, BackupStatus::Success);
        assert_eq!(a.size_bytes, Some(1024));
        assert_eq!(a.backup_type, "full");
        assert_eq!(a.backup_mode, "unknown");
        assert_eq!(b.node_id, "r-1-db-0");
        assert_eq!(b.status, BackupStatus::Failed);
        assert_eq!(b.end, None);
        assert_eq!(b.backup_method, "physical");
        assert_eq!(b.backup_mode, "manual");
        assert!(!format!("{page:?}").contains("Signature"));
    }

    #[test]
    fn empty_answers() {
        for body in [
            &br#"{"TotalCount":0}"#[..],
            br#"{"TotalCount":0,"Backups":{"Backup":[]}}"#,
            br#"{"TotalCount":0,"Backups":{}}"#,
            br#"{"Backups":[]}"#,
        ] {
            let page = decode_page(body, "r").unwrap();
            assert!(page.backups.is_empty());
        }
    }

    #[test]
    fn strict_where_facts_would_be_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"<html>busy</html>", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"Backups":{"Backup":[{"BackupStartTime":"2019-03-14T05:28:50Z"}]}}"#, "BackupStatus is missing"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed"}]}}"#, "BackupStartTime is missing"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Success","BackupStartTime":"2019-03-14T05:28:50Z"}]}}"#, "no BackupEndTime"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed","BackupStartTime":"14/03/2019"}]}}"#, "BackupStartTime \"14/03/2019\" is not a time"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed","BackupStartTime":"2019-03-14T05:28:50Z","BackupSize":"big"}]}}"#, "BackupSize"),
        ];
        for (body, expected) in cases {
            let err = decode_page(body, "r").unwrap_err();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    #[test]
    fn instances_decoded_leniently() {
        let body = br#"{"RequestId":"R","TotalCount":"2","PageNumber":1,"PageSize":50,
          "Instances":{"KVStoreInstance":[
            {"InstanceId":"r-a","InstanceName":"orders","RegionId":"cn-shanghai","ZoneId":"cn-shanghai-b",
             "EngineVersion":5,"ArchitectureType":"Cluster","InstanceClass":"redis.logic.sharding.2g.2db.0rodb.4proxy.default",
             "InstanceStatus":"Normal","ShardCount":"2","CreateTime":"2026-01-02T03:04:05Z",
             "Tags":{"Tag":[{"Key":"env","Value":"prod"},{"Key":"team","Value":7}]},"Port":"6379","Unknown":[1]},
            {"InstanceId":"r-b","InstanceStatus":"Creating","CreateTime":"soon","Tags":{}}
          ]}}"#;
        let page = decode_instances(body, "cn-hangzhou").unwrap();
        assert_eq!(page.total_count, Some(2));
        let [a, b] = &page.instances[..] else {
            panic!()
        };
        assert_eq!(a.region_id, "cn-shanghai");
        assert_eq!(a.engine_version, "5");
        assert_eq!(a.architecture, "cluster");
        assert_eq!(a.shard_count, Some(2));
        assert_eq!(
            a.tags,
            vec![("env".into(), "prod".into()), ("team".into(), "7".into())]
        );
        assert_eq!(a.created.map(|t| t.timestamp()), Some(1_767_323_045));
        assert!(a.has_tags(&[("env".into(), "prod".into())]));
        assert!(!a.has_tags(&[("env".into(), "dev".into())]));
        // Fields left out: the queried region, empty labels, no created time.
        assert_eq!(b.region_id, "cn-hangzhou");
        assert!(b.is_creating());
        assert_eq!((b.name.as_str(), b.created), ("", None));
        // A single object instead of a list, and an empty answer.
        let one = decode_instances(
            br#"{"Instances":{"KVStoreInstance":{"InstanceId":"r-c"}}}"#,
            "x",
        )
        .unwrap();
        assert_eq!(one.instances.len(), 1);
        assert!(decode_instances(br#"{"TotalCount":0,"Instances":{}}"#, "x")
            .unwrap()
            .instances
            .is_empty());
        // Label values are bounded.
        let long = format!(
            r#"{{"Instances":{{"KVStoreInstance":[{{"InstanceId":"r-d","InstanceName":"{}"}}]}}}}"#,
            "é".repeat(300)
        );
        assert!(
            decode_instances(long.as_bytes(), "x").unwrap().instances[0]
                .name
                .len()
                <= 256
        );
    }

    #[test]
    fn an_instance_without_a_usable_id_fails_the_page() {
        for (body, expected) in [
            (
                &br#"{"Instances":{"KVStoreInstance":[{"InstanceName":"x"}]}}"#[..],
                "InstanceId is missing",
            ),
            (
                br#"{"Instances":{"KVStoreInstance":[{"InstanceId":"r-a b"}]}}"#,
                "not an instance ID",
            ),
            (br#"{"Instances":{"KVStoreInstance":"x"}}"#, "not a list"),
            (b"<html>", "not JSON"),
        ] {
            let err = decode_instances(body, "cn-hangzhou").unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn regions_and_their_endpoints() {
        let body = br#"{"RequestId":"R","RegionIds":{"KVStoreRegion":[
            {"RegionId":"cn-hangzhou","RegionEndpoint":"r-kvstore.aliyuncs.com","LocalName":"x","ZoneIds":"cn-hangzhou-b"},
            {"RegionId":"eu-central-1","RegionEndpoint":"r-kvstore.eu-central-1.aliyuncs.com"},
            {"RegionId":"ap-south-1","RegionEndpoint":"evil.example.com"},
            {"RegionId":"ap-south-1"},
            {"RegionId":"../etc","RegionEndpoint":"r-kvstore.aliyuncs.com"},
            {"RegionId":"me-east-1","RegionEndpoint":"r-kvstore.aliyuncs.com/../x"}
        ]}}"#;
        let regions = decode_regions(body).unwrap();
        let got: Vec<(&str, Option<&str>)> = regions
            .iter()
            .map(|r| (r.region_id.as_str(), r.endpoint_host.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("cn-hangzhou", Some("r-kvstore.aliyuncs.com")),
                ("eu-central-1", Some("r-kvstore.eu-central-1.aliyuncs.com")),
                ("ap-south-1", None),
                ("me-east-1", None),
            ]
        );
        assert!(decode_regions(br#"{"RegionIds":{"KVStoreRegion":[]}}"#).is_err());
    }
}
