//! R-kvstore's calls: `DescribeBackups` (time window, pagination, faults per
//! instance), `DescribeInstances` (pagination and the real filters) and
//! `DescribeRegions`. A key sees only its own account's instances (and
//! those without an account); released instances are gone.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::scenario::{
    self, FakeBackup, FakeClusterBackup, FakeInstance, FakePolicy, FakeProduct, Fault,
};
use super::{fail, fault_answer, ok_json, FakeKey, Params, Shared};
use crate::http::Response;

/// The page sizes the real DescribeBackups accepts.
const ACCEPTED_PAGE_SIZES: [usize; 5] = [30, 50, 100, 200, 300];

/// DescribeInstances' page size: default and largest.
const INSTANCES_DEFAULT_PAGE_SIZE: usize = 30;
const INSTANCES_MAX_PAGE_SIZE: usize = 50;
/// At most this many ids in `InstanceIds`, and tag pairs.
const MAX_INSTANCE_IDS: usize = 30;
const MAX_TAGS: u32 = 5;

/// The region the real API lists even for an empty account.
const HOME_REGION: &str = "cn-hangzhou";

/// `yyyy-MM-ddTHH:mmZ`, the form of DescribeBackups' window.
pub(super) fn parse_minute(raw: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%MZ")
        .ok()
        .map(|t| t.and_utc())
}

fn not_found(request_id: &str) -> Response {
    fail(
        404,
        "InvalidInstanceId.NotFound",
        "The specified instance is not found.",
        request_id,
    )
}

/// What DescribeBackups answers for a cloud-native cluster, and
/// DescribeClusterBackupList for any other instance.
fn not_supported(request_id: &str) -> Response {
    fail(
        400,
        "InstanceType.NotSupport",
        "The operation is not supported for the architecture of this instance.",
        request_id,
    )
}

/// The R-kvstore instance a backup-listing call (DescribeBackups,
/// DescribeClusterBackupList) is about: see `super::listing_lookup`.
fn listing_lookup<T>(
    shared: &Shared,
    key: &FakeKey,
    instance_id: &str,
    region: Option<&str>,
    request_id: &str,
    read: impl FnOnce(&FakeInstance) -> T,
) -> Result<(Option<Fault>, T), Box<Response>> {
    super::listing_lookup(
        shared,
        key,
        FakeProduct::Redis,
        instance_id,
        region,
        request_id,
        read,
    )
}

pub(super) async fn describe_backups(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let fail = |status, code: &str, message: &str| fail(status, code, message, request_id);

    let Some(instance_id) = params.get("InstanceId").filter(|s| !s.is_empty()) else {
        return fail(
            400,
            "MissingInstanceId",
            "InstanceId is mandatory for this action.",
        );
    };
    let (start, end, page_size, page_number) =
        match window_and_page(params, &ACCEPTED_PAGE_SIZES, request_id) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };

    // Decide the fault (if any) and copy what is served, under the lock.
    let looked_up = listing_lookup(shared, key, instance_id, None, request_id, |instance| {
        let mut backups: Vec<FakeBackup> = instance
            .backups
            .iter()
            .filter(|b| b.start >= start && b.start <= end)
            .cloned()
            .collect();
        // Newest first, like the real API; the client must not rely on it.
        backups.sort_by_key(|b| std::cmp::Reverse(b.start));
        (instance.cloud_native, backups, instance.quirky_types)
    });
    let omit_total = shared.lock().omit_total_count;
    let (fault, (cloud_native, backups, quirky)) = match looked_up {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Some(fault) = fault {
        if let Some(answer) = fault_answer(fault, "DescribeBackups", request_id).await {
            return answer;
        }
    }
    if cloud_native {
        return not_supported(request_id);
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
    let mut body = json!({
        "RequestId": request_id,
        "PageNumber": page_number,
        "PageSize": page_size,
        "TotalCount": total_count,
        "FullStorageSize": 0,
        "LogStorageSize": 0,
        "FreeSize": 0,
        "Backups": { "Backup": items },
    });
    if omit_total {
        if let Some(o) = body.as_object_mut() {
            o.remove("TotalCount");
        }
    }
    ok_json(&body, request_id)
}

/// DescribeClusterBackupList's own parameters.
const CLUSTER_LIST_PARAMS: [&str; 8] = [
    "RegionId",
    "InstanceId",
    "StartTime",
    "EndTime",
    "PageSize",
    "PageNumber",
    "ClusterBackupId",
    "NoShardBackup",
];

/// The page sizes the real DescribeClusterBackupList accepts.
const CLUSTER_PAGE_SIZES: [usize; 9] = [5, 10, 15, 20, 30, 50, 100, 200, 300];

/// A window parameter of DescribeClusterBackupList:
/// `Err` is the answer for a missing or malformed one.
pub(super) fn minute_param(
    params: &Params,
    name: &str,
    request_id: &str,
) -> Result<DateTime<Utc>, Box<Response>> {
    match params.get(name) {
        None | Some("") => Err(Box::new(fail(
            400,
            &format!("Missing{name}"),
            &format!("{name} is mandatory for this action."),
            request_id,
        ))),
        Some(raw) => parse_minute(raw).ok_or_else(|| {
            Box::new(fail(
                400,
                &format!("Invalid{name}.Malformed"),
                &format!("Specified parameter {name} is not valid."),
                request_id,
            ))
        }),
    }
}

/// A listing's window (start, end) and page (size, number).
pub(super) type WindowAndPage = (DateTime<Utc>, DateTime<Utc>, usize, usize);

/// The window (`StartTime` < `EndTime`, minutes only) and the page
/// (`PageSize` one of `accepted`, default 30; `PageNumber` from 1) of a
/// backup listing, checked as the real API does.
pub(super) fn window_and_page(
    params: &Params,
    accepted: &[usize],
    request_id: &str,
) -> Result<WindowAndPage, Box<Response>> {
    let start = minute_param(params, "StartTime", request_id)?;
    let end = minute_param(params, "EndTime", request_id)?;
    if end <= start {
        return Err(Box::new(fail(
            400,
            "InvalidStartTimeAndEndTime.Malformed",
            "EndTime must be later than StartTime.",
            request_id,
        )));
    }
    let (page_size, page_number) = page(params, accepted, request_id)?;
    Ok((start, end, page_size, page_number))
}

/// The page of a backup listing (`PageSize` one of `accepted`, default 30;
/// `PageNumber` from 1), checked as the real API does.
pub(super) fn page(
    params: &Params,
    accepted: &[usize],
    request_id: &str,
) -> Result<(usize, usize), Box<Response>> {
    let fail = |code: &str, message: &str| Box::new(fail(400, code, message, request_id));
    let page_size = match params.get("PageSize").map(str::parse::<usize>) {
        None => 30,
        Some(Ok(n)) if accepted.contains(&n) => n,
        Some(_) => {
            return Err(fail(
                "InvalidPageSize.Malformed",
                "Specified parameter PageSize is not valid.",
            ))
        }
    };
    let page_number = match params.get("PageNumber").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return Err(fail(
                "InvalidPageNumber.Malformed",
                "Specified parameter PageNumber is not valid.",
            ))
        }
    };
    Ok((page_size, page_number))
}

pub(super) async fn describe_cluster_backup_list(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let fail = |status, code: &str, message: &str| fail(status, code, message, request_id);
    // The real API wants none of the action's parameters empty (common
    // ones are another matter: Alibaba's Python SDK signs an empty
    // `SignatureType`).
    if let Some((name, _)) = params
        .0
        .iter()
        .find(|(k, v)| v.is_empty() && CLUSTER_LIST_PARAMS.contains(&k.as_str()))
    {
        return fail(
            400,
            "InvalidParameter",
            &format!("The specified parameter {name} is not valid."),
        );
    }
    let Some(region_id) = params.get("RegionId") else {
        return fail(
            400,
            "MissingRegionId",
            "RegionId is mandatory for this action.",
        );
    };
    let Some(instance_id) = params.get("InstanceId") else {
        return fail(
            400,
            "MissingInstanceId",
            "InstanceId is mandatory for this action.",
        );
    };
    let (start, end, page_size, page_number) =
        match window_and_page(params, &CLUSTER_PAGE_SIZES, request_id) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
    let with_shards = match params.get("NoShardBackup").map(str::to_ascii_lowercase) {
        None => true,
        Some(v) if v == "false" => true,
        Some(v) if v == "true" => false,
        Some(_) => {
            return fail(
                400,
                "InvalidParameter",
                "The specified parameter NoShardBackup is not valid.",
            )
        }
    };

    let looked_up = listing_lookup(
        shared,
        key,
        instance_id,
        Some(region_id),
        request_id,
        |instance| {
            // Numbered by their place in the instance's list: stable IDs.
            let mut backups: Vec<(u64, FakeClusterBackup)> = instance
                .cluster_backups
                .iter()
                .enumerate()
                .filter(|(_, b)| b.start >= start && b.start <= end)
                .map(|(i, b)| {
                    let ids = (b.start.timestamp().unsigned_abs() % 10_000_000_000) * 1000
                        + (i as u64 % 1000);
                    (ids, b.clone())
                })
                .collect();
            // Newest first; the client must not rely on it.
            backups.sort_by_key(|(_, b)| std::cmp::Reverse(b.start));
            (instance.cloud_native, backups)
        },
    );
    let (fault, (cloud_native, backups)) = match looked_up {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Some(fault) = fault {
        if let Some(answer) = fault_answer(fault, "DescribeClusterBackupList", request_id).await {
            return answer;
        }
    }
    if !cloud_native {
        return not_supported(request_id);
    }

    let items: Vec<serde_json::Value> = backups
        .iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(ids, b)| scenario::render_cluster_backup(b, *ids, with_shards))
        .collect();
    let body = json!({
        "RequestId": request_id,
        "PageNumber": page_number,
        "PageSize": page_size,
        "MaxResults": page_size,
        "FullStorageSize": 0,
        "LogStorageSize": 0,
        // A plain array, unlike DescribeBackups' `{"Backup": [...]}`.
        "ClusterBackups": items,
    });
    ok_json(&body, request_id)
}

pub(super) async fn describe_backup_policy(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(instance_id) = params.get("InstanceId").filter(|s| !s.is_empty()) else {
        return fail(
            400,
            "MissingInstanceId",
            "InstanceId is mandatory for this action.",
            request_id,
        );
    };
    let found = {
        let state = shared.lock();
        state
            .instances
            .get(instance_id)
            .filter(|i| {
                i.product == FakeProduct::Redis && !i.released && i.visible_to(&key.account)
            })
            .map(|i| (i.policy_fault.clone(), i.policy.clone()))
    };
    let Some((fault, policy)) = found else {
        return not_found(request_id);
    };
    if let Some(fault) = fault {
        if let Some(answer) = fault_answer(fault, "DescribeBackupPolicy", request_id).await {
            return answer;
        }
    }
    let body = json!({
        "RequestId": request_id,
        "PreferredBackupPeriod": policy.period,
        "PreferredBackupTime": policy.time,
        "PreferredNextBackupTime": next_backup_time(&policy, shared.clock.now()),
        // A string and a number, as the real API sends them.
        "BackupRetentionPeriod": policy.retention_days.to_string(),
        "EnableBackupLog": u8::from(policy.log_backup),
        "DbsInstance": "0",
    });
    ok_json(&body, request_id)
}

/// `PreferredNextBackupTime`: the start of the next window on a day of the
/// period, in minutes (`2026-01-02T02:00Z`); empty when the policy cannot
/// tell.
pub(super) fn next_backup_time(policy: &FakePolicy, now: DateTime<Utc>) -> String {
    let Some((hour, minute)) = policy
        .time
        .split('-')
        .next()
        .map(|t| t.trim().trim_end_matches('Z'))
        .and_then(|t| t.split_once(':'))
        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
    else {
        return String::new();
    };
    let days: Vec<String> = policy
        .period
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    (0..=7)
        .filter_map(|d| {
            let day = now.date_naive() + chrono::Days::new(d);
            let at = day.and_hms_opt(hour, minute, 0)?.and_utc();
            let name = day.format("%A").to_string().to_ascii_lowercase();
            (at > now && days.contains(&name)).then_some(at)
        })
        .next()
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

/// DescribeInstances' filters, checked.
#[derive(Debug, Default, PartialEq)]
struct InstanceFilter {
    region_id: Option<String>,
    instance_ids: Option<BTreeSet<String>>,
    status: Option<String>,
    instance_type: Option<String>,
    architecture: Option<String>,
    /// Key and, when given, value of every `Tag.N`.
    tags: Vec<(String, Option<String>)>,
    page_size: usize,
    page_number: usize,
}

/// Reads DescribeInstances' parameters; `Err` is `(code, message)`.
fn instance_filter(params: &Params) -> Result<InstanceFilter, (&'static str, String)> {
    let invalid = |name: &str| {
        (
            "InvalidParameter",
            format!("The specified parameter {name} is not valid."),
        )
    };
    let given = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let mut tags: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (name, value) in &params.0 {
        let Some(rest) = name.strip_prefix("Tag.") else {
            continue;
        };
        let (n, field) = rest.split_once('.').ok_or_else(|| invalid(name))?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| (1..=MAX_TAGS).contains(n))
            .ok_or_else(|| invalid(name))?;
        let entry = tags.entry(n).or_default();
        match field {
            "Key" => entry.0 = Some(value.clone()),
            "Value" => entry.1 = Some(value.clone()),
            _ => return Err(invalid(name)),
        }
    }
    let tags = tags
        .into_iter()
        .map(|(n, pair)| match pair {
            (Some(key), value) if !key.is_empty() => Ok((key, value)),
            _ => Err(invalid(&format!("Tag.{n}.Key"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let region_id = given("RegionId").map(str::to_string);
    if !tags.is_empty() && region_id.is_none() {
        return Err((
            "MissingRegionId",
            "RegionId is mandatory for this action.".into(),
        ));
    }
    let page_size = match params.get("PageSize").map(str::parse::<usize>) {
        None => INSTANCES_DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=INSTANCES_MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return Err(invalid("PageSize")),
    };
    let page_number = match params.get("PageNumber").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Err(invalid("PageNumber")),
    };
    let instance_ids = match given("InstanceIds") {
        None => None,
        Some(list) => {
            let ids: BTreeSet<String> = list
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect();
            if ids.len() > MAX_INSTANCE_IDS {
                return Err(invalid("InstanceIds"));
            }
            Some(ids)
        }
    };
    Ok(InstanceFilter {
        region_id,
        instance_ids,
        status: given("InstanceStatus").map(str::to_string),
        instance_type: given("InstanceType").map(str::to_string),
        architecture: given("ArchitectureType").map(str::to_string),
        tags,
        page_size,
        page_number,
    })
}

impl InstanceFilter {
    fn matches(&self, instance_id: &str, info: &scenario::FakeInfo) -> bool {
        let same = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        self.region_id
            .as_deref()
            .is_none_or(|r| r == info.region_id)
            && self
                .instance_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(instance_id))
            && same(&self.status, &info.status)
            && same(&self.instance_type, &info.instance_type)
            && same(&self.architecture, &info.architecture)
            && self.tags.iter().all(|(k, v)| info.has_tag(k, v.as_deref()))
    }
}

pub(super) fn describe_instances(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let filter = match instance_filter(params) {
        Ok(filter) => filter,
        Err((code, message)) => return fail(400, code, &message, request_id),
    };
    let (total, items, omit_total) = {
        let state = shared.lock();
        // The map is ordered by id: a stable order across pages.
        let matching: Vec<_> = state
            .instances
            .iter()
            .filter(|(id, i)| {
                i.product == FakeProduct::Redis
                    && !i.released
                    && i.visible_to(&key.account)
                    && filter.matches(id, &i.info)
            })
            .collect();
        let items: Vec<serde_json::Value> = matching
            .iter()
            .skip((filter.page_number - 1).saturating_mul(filter.page_size))
            .take(filter.page_size)
            .map(|(id, i)| scenario::render_instance(id, i))
            .collect();
        (matching.len(), items, state.omit_total_count)
    };
    let mut body = json!({
        "RequestId": request_id,
        "PageNumber": filter.page_number,
        "PageSize": filter.page_size,
        "TotalCount": total,
        "Instances": { "KVStoreInstance": items },
    });
    if omit_total {
        if let Some(o) = body.as_object_mut() {
            o.remove("TotalCount");
        }
    }
    ok_json(&body, request_id)
}

pub(super) fn describe_regions(shared: &Shared, _params: &Params, request_id: &str) -> Response {
    let regions: Vec<serde_json::Value> = {
        let state = shared.lock();
        let mut zones: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let redis = state
            .instances
            .values()
            .filter(|i| i.product == FakeProduct::Redis);
        for instance in redis {
            zones
                .entry(instance.info.region_id.as_str())
                .or_default()
                .insert(instance.info.zone_id.clone());
        }
        let ids: Vec<String> = match &state.regions {
            Some(set) => set.clone(),
            None => zones
                .keys()
                .map(|r| r.to_string())
                .chain([HOME_REGION.to_string()])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        ids.iter()
            .map(|id| {
                let known: Vec<String> = zones
                    .get(id.as_str())
                    .map(|z| z.iter().cloned().collect())
                    .unwrap_or_default();
                scenario::render_region(id, &known)
            })
            .collect()
    };
    let body = json!({
        "RequestId": request_id,
        "RegionIds": { "KVStoreRegion": regions },
    });
    ok_json(&body, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn instance_filter_defaults() {
        let f = instance_filter(&params(&[])).unwrap();
        assert_eq!(f.page_size, 30);
        assert_eq!(f.page_number, 1);
        assert!(f.tags.is_empty() && f.region_id.is_none() && f.instance_ids.is_none());
    }

    #[test]
    fn instance_filter_limits() {
        let code = |pairs: &[(&str, &str)]| instance_filter(&params(pairs)).unwrap_err().0;
        assert_eq!(code(&[("PageSize", "100")]), "InvalidParameter");
        assert_eq!(code(&[("PageSize", "0")]), "InvalidParameter");
        assert_eq!(code(&[("PageSize", "x")]), "InvalidParameter");
        assert_eq!(code(&[("PageNumber", "0")]), "InvalidParameter");
        assert_eq!(code(&[("Tag.1.Key", "env")]), "MissingRegionId");
        let ids: Vec<String> = (0..31).map(|i| format!("r-{i}")).collect();
        assert_eq!(code(&[("InstanceIds", &ids.join(","))]), "InvalidParameter");
        let r = ("RegionId", "cn-hangzhou");
        assert_eq!(code(&[r, ("Tag.6.Key", "env")]), "InvalidParameter");
        assert_eq!(code(&[r, ("Tag.0.Key", "env")]), "InvalidParameter");
        assert_eq!(code(&[r, ("Tag.1.Value", "prod")]), "InvalidParameter");
        assert_eq!(code(&[r, ("Tag.1.Colour", "red")]), "InvalidParameter");
        assert_eq!(code(&[r, ("Tag.x", "red")]), "InvalidParameter");
        assert!(instance_filter(&params(&[("PageSize", "50")])).is_ok());
        let ids30 = ids[..30].join(",");
        assert!(instance_filter(&params(&[("InstanceIds", &ids30)])).is_ok());
    }

    #[test]
    fn instance_filter_matches_every_tag() {
        let f = instance_filter(&params(&[
            ("RegionId", "cn-hangzhou"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod"),
            ("Tag.2.Key", "team"),
        ]))
        .unwrap();
        let mut info = scenario::FakeInfo {
            tags: vec![("env".into(), "prod".into())],
            ..Default::default()
        };
        assert!(!f.matches("r-1", &info));
        info.tags.push(("team".into(), "payments".into()));
        assert!(f.matches("r-1", &info));
        info.region_id = "cn-shanghai".into();
        assert!(!f.matches("r-1", &info));
    }

    #[test]
    fn next_backup_time_follows_the_policy() {
        use chrono::TimeZone;
        // A Wednesday.
        let now = Utc.with_ymd_and_hms(2026, 1, 7, 12, 0, 0).unwrap();
        let next = |period: &str, time: &str| {
            let policy = FakePolicy {
                period: period.into(),
                time: time.into(),
                ..Default::default()
            };
            next_backup_time(&policy, now)
        };
        assert_eq!(
            next(
                "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
                "02:00Z-03:00Z"
            ),
            "2026-01-08T02:00Z"
        );
        assert_eq!(next("Wednesday", "13:30Z-14:30Z"), "2026-01-07T13:30Z");
        assert_eq!(next("Wednesday", "02:00Z-03:00Z"), "2026-01-14T02:00Z");
        assert_eq!(next("Monday", "02:00Z-03:00Z"), "2026-01-12T02:00Z");
        assert_eq!(next("", "02:00Z-03:00Z"), "");
        assert_eq!(next("Monday", "nightly"), "");
    }

    #[test]
    fn backup_window_is_in_minutes() {
        assert!(parse_minute("2026-01-01T10:00Z").is_some());
        assert!(parse_minute("2026-01-01T10:00:00Z").is_none());
    }
}
