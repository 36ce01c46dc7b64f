//! What RDS, MongoDB and PolarDB share: the paged DescribeBackups loop, one
//! discovery decoder driven by a description of each product's instance
//! list (`InstancesEnvelope`), and one DescribeBackupPolicy decoder
//! (`PolicyFields`). Lenient where Alibaba is inconsistent, strict about
//! what identifies an instance, as `kvstore`.

use std::collections::HashSet;

use serde::de::MapAccess;
use tokio::time::Instant;

use super::backups::{decode_page, BackupsEnvelope};
use super::kvstore::{InstanceQuery, Window};
use crate::aliyun::endpoint;
use crate::aliyun::json::quoted;
use crate::aliyun::lenient::{self, Fields, Flag, ListSeed, Object, Text, Time, Whole, Within};
use crate::aliyun::{ApiError, RpcClient};
use crate::model::{interned, label_value, Backup, InstanceInfo};
use crate::policy::{BackupPolicy, Weekdays};

/// A runaway total must not make us loop for ever.
const MAX_PAGES: usize = 200;

/// The backups of one node (`node_id`: the instance itself, or a MongoDB
/// shard) that started in the window: `id` names the instance (and node)
/// as the product wants (`[("DBInstanceId", ..)]`), all pages of
/// `envelope.page_size`, by `deadline`. A failed page fails the call.
pub async fn describe_backups(
    client: &RpcClient,
    envelope: &BackupsEnvelope,
    id: &[(&'static str, String)],
    node_id: &str,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    let mut backups = Vec::new();
    for page_number in 1..=MAX_PAGES {
        let mut params = id.to_vec();
        params.extend([
            ("StartTime", window.start_param()),
            ("EndTime", window.end_param()),
            ("PageSize", envelope.page_size.to_string()),
            ("PageNumber", page_number.to_string()),
        ]);
        let answer = client
            .call(
                "DescribeBackups",
                &params,
                |body| decode_page(body, envelope, node_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.backups.len();
        backups.extend(page.backups);
        let done = match page.total_count {
            Some(total) => backups.len() >= total,
            None => got < envelope.page_size,
        };
        if got == 0 || done {
            return Ok(backups);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_PAGES} pages of backups"),
        request_id: None,
    })
}

/// How a product's discovery call and its answer are laid out.
#[derive(Debug)]
pub struct InstancesEnvelope {
    /// `DescribeDBInstances`, `DescribeDBClusters`.
    pub action: &'static str,
    /// The list: `("Items", "DBInstance")`.
    pub list: (&'static str, &'static str),
    /// The items' name in errors: `Items.DBInstance`.
    pub path: &'static str,
    /// `TotalRecordCount`, `TotalCount`.
    pub total: &'static str,
    /// The request's comma-separated ID filter: `DBInstanceId`, `DBClusterIds`.
    pub ids_param: &'static str,
    /// How the request filters by tags.
    pub tags_param: TagsParam,
    /// Instances asked for per page.
    pub page_size: usize,
    /// The answer's field names.
    pub id: &'static str,
    pub name: &'static str,
    pub status: &'static str,
    pub class: &'static str,
    pub architecture: &'static str,
    pub engine_version: &'static str,
    pub created: &'static str,
    /// `Tags.Tag[]{Key,Value}` is in the answer.
    pub tags_listed: bool,
    /// A sharded cluster's shard list and the field of each shard's node
    /// ID: `("ShardList", "ShardAttribute", "NodeId")` (MongoDB).
    pub shards: Option<(&'static str, &'static str, &'static str)>,
}

/// How a discovery call takes the tags an instance must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagsParam {
    /// `Tag.N.Key` / `Tag.N.Value` (MongoDB, PolarDB, R-kvstore).
    Numbered,
    /// `Tags`: a JSON object of key → value (RDS).
    JsonObject,
}

/// A runaway total must not make discovery loop for ever.
const MAX_INSTANCE_PAGES: usize = 1000;

/// Every instance of a region matching `query` (plus `extra` parameters,
/// e.g. MongoDB's `DBInstanceType`), all pages, by `deadline`. A failed
/// page fails the whole call: a half list would drop instances.
///
/// When the answer does not list tags (RDS), the instances found carry
/// the tags the request filtered by, which they match; otherwise the tags
/// are checked again here (whether the API ANDs them is not documented).
pub async fn describe_instances(
    client: &RpcClient,
    spec: &InstancesEnvelope,
    extra: &[(&'static str, String)],
    query: &InstanceQuery<'_>,
    deadline: Instant,
) -> Result<Vec<InstanceInfo>, ApiError> {
    let mut found: Vec<InstanceInfo> = Vec::new();
    let mut seen = HashSet::new();
    let mut listed = 0;
    let tags: Vec<(String, String)> = query
        .tags
        .iter()
        .take(crate::config::MAX_TAGS)
        .cloned()
        .collect();
    for page_number in 1..=MAX_INSTANCE_PAGES {
        let mut params: Vec<(&str, String)> = vec![
            ("RegionId", query.region_id.to_string()),
            ("PageSize", spec.page_size.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        params.extend(extra.iter().cloned());
        if !query.instance_ids.is_empty() {
            params.push((spec.ids_param, query.instance_ids.join(",")));
        }
        let numbered: Vec<(String, String)> = match spec.tags_param {
            TagsParam::Numbered => tags
                .iter()
                .enumerate()
                .flat_map(|(i, (k, v))| {
                    [
                        (format!("Tag.{}.Key", i + 1), k.clone()),
                        (format!("Tag.{}.Value", i + 1), v.clone()),
                    ]
                })
                .collect(),
            TagsParam::JsonObject => Vec::new(),
        };
        params.extend(numbered.iter().map(|(k, v)| (k.as_str(), v.clone())));
        if spec.tags_param == TagsParam::JsonObject && !tags.is_empty() {
            let object: serde_json::Map<String, serde_json::Value> = tags
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            params.push(("Tags", serde_json::Value::Object(object).to_string()));
        }
        let answer = client
            .call(
                spec.action,
                &params,
                |body| decode_instances(body, spec, query.region_id),
                deadline,
            )
            .await?;
        let (instances, total) = answer.value;
        let got = instances.len();
        listed += got;
        for mut instance in instances {
            if !spec.tags_listed {
                instance.tags = tags.clone();
            }
            if seen.insert(instance.instance_id.clone()) && instance.has_tags(query.tags) {
                found.push(instance);
            }
        }
        let done = match total {
            Some(total) => listed >= total,
            None => got < spec.page_size,
        };
        if got == 0 || done {
            return Ok(found);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_INSTANCE_PAGES} pages of instances"),
        request_id: None,
    })
}

/// Tags listed on one instance: Alibaba allows 20 per resource.
const MAX_INSTANCE_TAGS: usize = 256;
/// Shards of one MongoDB cluster: at most 32; four times as many is an
/// answer gone wrong.
const MAX_SHARDS: usize = 128;

/// Label values are bounded: an instance name is the user's free text.
pub(super) fn bounded(value: &str) -> String {
    label_value(value, 256)
}

/// The ID of a listed instance, under its field `name`: strict, since it
/// identifies the instance (a missing or malformed one fails the page).
pub(super) fn listed_id<'t>(name: &str, id: &'t Text) -> Result<&'t str, String> {
    let id = id.get().ok_or_else(|| format!("{name} is missing"))?;
    if !crate::config::is_valid_instance_id(id) {
        return Err(format!("{name} {} is not an instance ID", quoted(id)));
    }
    Ok(id)
}

/// The region a listed instance names, or the one asked about when it
/// names none (or something that is not a region).
pub(super) fn listed_region(region: &Text, queried_region: &str) -> String {
    region
        .get()
        .filter(|r| endpoint::is_valid_region(r))
        .unwrap_or(queried_region)
        .to_string()
}

/// Decodes a page of a discovery answer: its instances and total.
pub fn decode_instances(
    body: &[u8],
    spec: &InstancesEnvelope,
    queried_region: &str,
) -> Result<(Vec<InstanceInfo>, Option<usize>), String> {
    let doc = lenient::decode(
        body,
        Object(InstancesDoc {
            spec,
            queried_region,
            total: Whole::Absent,
            instances: Vec::new(),
        }),
    )?;
    Ok((doc.instances, doc.total.count(spec.total)?))
}

struct InstancesDoc<'s> {
    spec: &'s InstancesEnvelope,
    queried_region: &'s str,
    total: Whole,
    instances: Vec<InstanceInfo>,
}

impl<'de> Fields<'de> for InstancesDoc<'_> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        let spec = self.spec;
        if key == spec.total {
            self.total = map.next_value()?;
        } else if key == spec.list.0 {
            let (queried_region, instances) = (self.queried_region, &mut self.instances);
            map.next_value_seed(ListSeed {
                field: spec.list.0,
                wrapper: spec.list.1,
                path: spec.path,
                within: Within::default(),
                max_items: spec.page_size * super::backups::MAX_PAGE_FACTOR,
                item: |i| Object(RawInstance::new(spec, i)),
                each: |i, item: Option<RawInstance>| {
                    let item =
                        item.ok_or_else(|| format!("{}[{i}] is not an object", spec.path))?;
                    let instance = item
                        .decode(queried_region)
                        .map_err(|e| format!("{}[{i}]: {e}", spec.path))?;
                    instances.push(instance);
                    Ok(())
                },
            })?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

struct RawInstance<'s, 'de> {
    spec: &'s InstancesEnvelope,
    index: usize,
    id: Text<'de>,
    region_id: Text<'de>,
    zone_id: Text<'de>,
    name: Text<'de>,
    status: Text<'de>,
    class: Text<'de>,
    architecture: Text<'de>,
    engine_version: Text<'de>,
    created: Time,
    tags: Vec<(String, String)>,
    shards: Vec<String>,
}

impl<'s> RawInstance<'s, '_> {
    fn new(spec: &'s InstancesEnvelope, index: usize) -> Self {
        RawInstance {
            spec,
            index,
            id: Text::default(),
            region_id: Text::default(),
            zone_id: Text::default(),
            name: Text::default(),
            status: Text::default(),
            class: Text::default(),
            architecture: Text::default(),
            engine_version: Text::default(),
            created: Time::Absent,
            tags: Vec::new(),
            shards: Vec::new(),
        }
    }

    fn decode(self, queried_region: &str) -> Result<InstanceInfo, String> {
        let spec = self.spec;
        let id = listed_id(spec.id, &self.id)?;
        let region_id = listed_region(&self.region_id, queried_region);
        let field = |text: &Text| bounded(text.get().unwrap_or_default());
        let mut tags = self.tags;
        tags.shrink_to_fit();
        let mut nodes = self.shards;
        nodes.shrink_to_fit();
        Ok(InstanceInfo {
            instance_id: id.into(),
            region_id: interned(&region_id),
            name: field(&self.name),
            zone_id: interned(&field(&self.zone_id)),
            engine_version: interned(&field(&self.engine_version)),
            architecture: interned(&field(&self.architecture).to_ascii_lowercase()),
            instance_class: interned(&field(&self.class)),
            status: interned(&field(&self.status)),
            shard_count: (!nodes.is_empty())
                .then(|| u32::try_from(nodes.len()).unwrap_or(u32::MAX)),
            tags,
            created: self.created.ok(),
            nodes,
        })
    }
}

impl<'de> Fields<'de> for RawInstance<'_, 'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        let spec = self.spec;
        match key {
            "RegionId" => self.region_id = map.next_value()?,
            "ZoneId" => self.zone_id = map.next_value()?,
            "Tags" if spec.tags_listed => {
                let tags = &mut self.tags;
                map.next_value_seed(ListSeed {
                    field: "Tags",
                    wrapper: "Tag",
                    path: "Tags.Tag",
                    within: Within(Some((spec.path, self.index))),
                    max_items: MAX_INSTANCE_TAGS,
                    item: |_| Object(RawPair::new("Key", "Value")),
                    // A tag that is not an object or has no key is left out.
                    each: |_, tag: Option<RawPair>| {
                        if let Some(key) = tag.as_ref().and_then(|t| t.key.get()) {
                            let value =
                                tag.as_ref().and_then(|t| t.value.get()).unwrap_or_default();
                            tags.push((bounded(key), bounded(value)));
                        }
                        Ok(())
                    },
                })?;
            }
            k if k == spec.id => self.id = map.next_value()?,
            k if k == spec.name => self.name = map.next_value()?,
            k if k == spec.status => self.status = map.next_value()?,
            k if k == spec.class => self.class = map.next_value()?,
            k if k == spec.architecture => self.architecture = map.next_value()?,
            k if k == spec.engine_version => self.engine_version = map.next_value()?,
            k if k == spec.created => self.created = map.next_value()?,
            k if spec.shards.is_some_and(|(field, _, _)| field == k) => {
                let Some((field, wrapper, node)) = spec.shards else {
                    return Ok(false);
                };
                let shards = &mut self.shards;
                map.next_value_seed(ListSeed {
                    field,
                    wrapper,
                    path: field,
                    within: Within(Some((spec.path, self.index))),
                    max_items: MAX_SHARDS,
                    item: |_| Object(RawPair::new(node, "")),
                    // A shard without a usable node ID cannot be asked
                    // for: the whole instance fails, rather than a shard
                    // going unwatched.
                    each: |i, shard: Option<RawPair>| {
                        let id = shard.as_ref().and_then(|s| s.key.get()).unwrap_or_default();
                        if !crate::config::is_valid_instance_id(id) {
                            return Err(format!("{field}[{i}]: {node} is missing or not an ID"));
                        }
                        if !shards.iter().any(|s| s == id) {
                            shards.push(id.to_string());
                        }
                        Ok(())
                    },
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Two text fields of a small object (a tag's key and value, a shard's
/// node ID).
struct RawPair<'de> {
    names: (&'static str, &'static str),
    key: Text<'de>,
    value: Text<'de>,
}

impl RawPair<'_> {
    fn new(key: &'static str, value: &'static str) -> Self {
        RawPair {
            names: (key, value),
            key: Text::default(),
            value: Text::default(),
        }
    }
}

impl<'de> Fields<'de> for RawPair<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        if key == self.names.0 {
            self.key = map.next_value()?;
        } else if !self.names.1.is_empty() && key == self.names.1 {
            self.value = map.next_value()?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Which fields of a product's DescribeBackupPolicy hold what the policy
/// model has; `None`: the product has no such field (unknown).
#[derive(Debug)]
pub struct PolicyFields {
    pub retention: Option<&'static str>,
    pub log_backup: Option<&'static str>,
}

/// `PreferredBackupTime` becomes a label: at most this many bytes.
const MAX_WINDOW_LEN: usize = 64;

/// DescribeBackupPolicy of the instance `id` names, by `deadline`.
pub async fn describe_backup_policy(
    client: &RpcClient,
    id: (&'static str, &str),
    fields: &PolicyFields,
    deadline: Instant,
) -> Result<BackupPolicy, ApiError> {
    let params = [(id.0, id.1.to_string())];
    let answer = client
        .call(
            "DescribeBackupPolicy",
            &params,
            |body| decode_backup_policy(body, fields),
            deadline,
        )
        .await?;
    Ok(answer.value)
}

/// Decodes DescribeBackupPolicy as `kvstore::decode_backup_policy` does,
/// with the product's field names: every field may be missing or of
/// another type; only a weekday name that is not one fails.
pub fn decode_backup_policy(body: &[u8], fields: &PolicyFields) -> Result<BackupPolicy, String> {
    let doc = lenient::decode(
        body,
        Object(PolicyDoc {
            fields,
            period: Text::default(),
            window: Text::default(),
            retention: Whole::Absent,
            log_backup: Flag::default(),
        }),
    )?;
    let days = match doc.period.get() {
        None => Weekdays::default(),
        Some(raw) => Weekdays::parse(raw).map_err(|e| format!("PreferredBackupPeriod: {e}"))?,
    };
    Ok(BackupPolicy {
        days,
        window: label_value(doc.window.get().unwrap_or_default(), MAX_WINDOW_LEN),
        retention_days: doc.retention.value(),
        log_backup_enabled: doc.log_backup.0,
    })
}

struct PolicyDoc<'s, 'de> {
    fields: &'s PolicyFields,
    period: Text<'de>,
    window: Text<'de>,
    retention: Whole,
    log_backup: Flag,
}

impl<'de> Fields<'de> for PolicyDoc<'_, 'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "PreferredBackupPeriod" => self.period = map.next_value()?,
            "PreferredBackupTime" => self.window = map.next_value()?,
            k if self.fields.retention == Some(k) => self.retention = map.next_value()?,
            k if self.fields.log_backup == Some(k) => self.log_backup = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
