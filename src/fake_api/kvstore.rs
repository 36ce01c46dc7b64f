//! R-kvstore's calls: `DescribeBackups` (time window, pagination, faults per
//! instance), `DescribeInstances` (pagination and the real filters) and
//! `DescribeRegions`. A key sees only its own account's instances (and
//! those without an account); released instances are gone.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::scenario::{self, FakeBackup, Fault};
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
fn parse_minute(raw: &str) -> Option<DateTime<Utc>> {
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
    let Some(start) = params.get("StartTime").and_then(parse_minute) else {
        return fail(
            400,
            "InvalidStartTime.Malformed",
            "Specified parameter StartTime is not valid.",
        );
    };
    let Some(end) = params.get("EndTime").and_then(parse_minute) else {
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
    let page_size = match params.get("PageSize").map(str::parse::<usize>) {
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
    let page_number = match params.get("PageNumber").map(str::parse::<usize>) {
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
        // Another account's instance and a released one do not exist, as
        // far as this key can tell.
        let Some(instance) = state
            .instances
            .get_mut(instance_id)
            .filter(|i| !i.released && i.visible_to(&key.account))
        else {
            drop(state);
            return not_found(request_id);
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
        if fault.is_none() && throttle_every.is_some_and(|n| n > 0 && count.is_multiple_of(n)) {
            fault = Some(Fault::Throttle {
                retry_after_ms: None,
            });
        }
        // Newest first, like the real API; the client must not rely on it.
        backups.sort_by_key(|b| std::cmp::Reverse(b.start));
        (fault, backups, quirky)
    };
    if let Some(fault) = fault {
        if let Some(answer) = fault_answer(fault, "DescribeBackups", request_id).await {
            return answer;
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
    ok_json(&body, request_id)
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
    let (total, items) = {
        let state = shared.lock();
        // The map is ordered by id: a stable order across pages.
        let matching: Vec<_> = state
            .instances
            .iter()
            .filter(|(id, i)| {
                !i.released && i.visible_to(&key.account) && filter.matches(id, &i.info)
            })
            .collect();
        let items: Vec<serde_json::Value> = matching
            .iter()
            .skip((filter.page_number - 1).saturating_mul(filter.page_size))
            .take(filter.page_size)
            .map(|(id, i)| scenario::render_instance(id, i))
            .collect();
        (matching.len(), items)
    };
    let body = json!({
        "RequestId": request_id,
        "PageNumber": filter.page_number,
        "PageSize": filter.page_size,
        "TotalCount": total,
        "Instances": { "KVStoreInstance": items },
    });
    ok_json(&body, request_id)
}

pub(super) fn describe_regions(shared: &Shared, _params: &Params, request_id: &str) -> Response {
    let regions: Vec<serde_json::Value> = {
        let state = shared.lock();
        let mut zones: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for instance in state.instances.values() {
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
    fn backup_window_is_in_minutes() {
        assert!(parse_minute("2026-01-01T10:00Z").is_some());
        assert!(parse_minute("2026-01-01T10:00:00Z").is_none());
    }
}
