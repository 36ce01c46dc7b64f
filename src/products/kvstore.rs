//! ApsaraDB for Redis / Tair (`R-kvstore`, API version 2015-01-01) calls,
//! decoded into model types.

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{Map, Value};

use crate::aliyun::json::{as_u64, parse_time, text};
use crate::aliyun::{ApiError, RpcClient};
use crate::model::{normalize_backup_type, normalize_word, Backup, BackupStatus};

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
    deadline: std::time::Instant,
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
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let doc = doc.as_object().ok_or("body is not a JSON object")?;
    let total_count = match doc.get("TotalCount") {
        None | Some(Value::Null) => None,
        Some(v) => Some(as_u64(v).ok_or("TotalCount is not a number")? as usize),
    };
    let list: Vec<&Value> = match doc.get("Backups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(o)) => match o.get("Backup") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::Object(_)) => vec![single],
            Some(_) => return Err("Backups.Backup is not a list".into()),
        },
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(_) => return Err("Backups is not an object".into()),
    };
    let backups = list
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item
                .as_object()
                .ok_or(format!("Backups.Backup[{i}] is not an object"))?;
            decode_backup(item, instance_id).map_err(|e| format!("Backups.Backup[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
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
}
