//! One decoder for the `DescribeBackups` answers of every product, driven
//! by a description of the product's envelope (`BackupsEnvelope`; the
//! descriptions are in `envelopes`).
//!
//! Lenient where Alibaba is inconsistent (types, case, missing optional
//! fields, unknown fields skipped unread), strict where the facts would be
//! wrong: a backup without a status or a start time, a successful backup
//! without an end time, an unreadable time or size fails the page, with a
//! message that names the item and the field. Download URLs are never read.

use serde::de::MapAccess;

use crate::aliyun::lenient::{self, Fields, Flag, ListSeed, Object, Text, Time, Whole, Within};
use crate::model::{
    label_value, normalize_backup_type, normalize_word, Backup, BackupStatus, MAX_ID, MAX_WORD,
};

/// How a product's `DescribeBackups` answer is laid out.
#[derive(Debug)]
pub struct BackupsEnvelope {
    /// The `product` label.
    pub product: &'static str,
    /// The list: field and wrapper, `("Backups", "Backup")` for
    /// `{"Backups": {"Backup": [..]}}`.
    pub list: (&'static str, &'static str),
    /// The items' name in errors: `Backups.Backup`.
    pub path: &'static str,
    /// The total over all pages: `TotalCount` (a number) or
    /// `TotalRecordCount` (a string).
    pub total: &'static str,
    /// The node a backup is of (`NodeInstanceId`, `HostInstanceID`); none:
    /// the instance itself.
    pub node: Option<&'static str>,
    /// The size in bytes: `BackupSize` or `BackupSetSize`.
    pub size: &'static str,
    /// A 0/1 or boolean saying whether the backup can be restored from
    /// (`IsAvail`); none: every backup listed is a restore point.
    pub available: Option<&'static str>,
    /// The product's status words, beyond `success` and `failed` (see
    /// `status`).
    pub statuses: &'static [(&'static str, Outcome)],
    /// Backups asked for per page. A page with more than
    /// `MAX_PAGE_FACTOR` times as many is refused.
    pub page_size: usize,
}

/// What a status word means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
}

/// A status in a product's words, in any case: `success` and `failed`, or
/// a word of `words` (lower case: `("ok", Outcome::Success)`); any other
/// word is kept in lower case (`running` is an attempt in progress), a
/// bounded label value.
pub fn status(raw: &str, words: &[(&str, Outcome)]) -> BackupStatus {
    let word = label_value(raw, MAX_WORD).to_ascii_lowercase();
    let outcome = match word.as_str() {
        "success" => Some(Outcome::Success),
        "failed" => Some(Outcome::Failed),
        other => words.iter().find(|(w, _)| *w == other).map(|(_, o)| *o),
    };
    match outcome {
        Some(Outcome::Success) => BackupStatus::Success,
        Some(Outcome::Failed) => BackupStatus::Failed,
        None => BackupStatus::Other(word),
    }
}

/// A page may hold this many times the backups asked for (R-kvstore takes
/// page sizes up to 300, three times the 100 asked for, and some calls
/// ignore `PageSize`); more is an answer gone wrong, refused before it
/// costs more.
pub const MAX_PAGE_FACTOR: usize = 3;

impl BackupsEnvelope {
    /// The most backups one page may hold.
    pub fn max_items(&self) -> usize {
        self.page_size.saturating_mul(MAX_PAGE_FACTOR)
    }
}

/// One page of a DescribeBackups answer.
#[derive(Debug)]
pub struct Page {
    pub backups: Vec<Backup>,
    pub total_count: Option<usize>,
}

/// Decodes a DescribeBackups page of the product `envelope` describes;
/// `instance_id` is the node of backups that name none.
pub fn decode_page(
    body: &[u8],
    envelope: &BackupsEnvelope,
    instance_id: &str,
) -> Result<Page, String> {
    let doc = lenient::decode(
        body,
        Object(Envelope {
            spec: envelope,
            instance_id,
            total: Whole::Absent,
            backups: Vec::new(),
        }),
    )?;
    Ok(Page {
        total_count: doc.total.count(envelope.total)?,
        backups: doc.backups,
    })
}

/// The answer's top level: the total and the backups, decoded as they come.
struct Envelope<'s> {
    spec: &'s BackupsEnvelope,
    instance_id: &'s str,
    total: Whole,
    backups: Vec<Backup>,
}

impl<'de> Fields<'de> for Envelope<'_> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        let spec = self.spec;
        if key == spec.total {
            self.total = map.next_value()?;
        } else if key == spec.list.0 {
            let (instance_id, backups) = (self.instance_id, &mut self.backups);
            map.next_value_seed(ListSeed {
                field: spec.list.0,
                wrapper: spec.list.1,
                path: spec.path,
                within: Within::default(),
                max_items: spec.max_items(),
                item: |_| Object(RawBackup::new(spec)),
                each: |i, item: Option<RawBackup>| {
                    let item =
                        item.ok_or_else(|| format!("{}[{i}] is not an object", spec.path))?;
                    let backup = item
                        .decode(instance_id)
                        .map_err(|e| format!("{}[{i}]: {e}", spec.path))?;
                    backups.push(backup);
                    Ok(())
                },
            })?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// The fields of one backup the exporter reads.
struct RawBackup<'s, 'de> {
    spec: &'s BackupsEnvelope,
    status: Text<'de>,
    start: Time,
    end: Time,
    size: Whole,
    node: Text<'de>,
    available: Flag,
    backup_type: Text<'de>,
    backup_mode: Text<'de>,
    backup_method: Text<'de>,
}

impl<'s, 'de> RawBackup<'s, 'de> {
    fn new(spec: &'s BackupsEnvelope) -> Self {
        RawBackup {
            spec,
            status: Text::default(),
            start: Time::Absent,
            end: Time::Absent,
            size: Whole::Absent,
            node: Text::default(),
            available: Flag::default(),
            backup_type: Text::default(),
            backup_mode: Text::default(),
            backup_method: Text::default(),
        }
    }

    fn decode(self, instance_id: &str) -> Result<Backup, String> {
        let spec = self.spec;
        let raw = self.status.get().ok_or("BackupStatus is missing")?;
        let status = status(raw, spec.statuses);
        let start = self
            .start
            .get("BackupStartTime")?
            .ok_or("BackupStartTime is missing")?;
        let end = self.end.get("BackupEndTime")?;
        if status == BackupStatus::Success && end.is_none() {
            return Err("a successful backup has no BackupEndTime".into());
        }
        let size_bytes = self.size.size(spec.size)?;
        let label = |text: &Text, normalize: fn(&str) -> String| {
            text.get()
                .map(normalize)
                .unwrap_or_else(|| "unknown".into())
        };
        Ok(Backup {
            node_id: self
                .node
                .get()
                .map(|n| label_value(n, MAX_ID))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| instance_id.to_string()),
            status,
            start,
            end,
            size_bytes,
            backup_type: label(&self.backup_type, normalize_backup_type),
            backup_mode: label(&self.backup_mode, normalize_word),
            backup_method: label(&self.backup_method, normalize_word),
            restorable: self.available.0 != Some(false),
        })
    }
}

impl<'de> Fields<'de> for RawBackup<'_, 'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        let spec = self.spec;
        match key {
            "BackupStatus" => self.status = map.next_value()?,
            "BackupStartTime" => self.start = map.next_value()?,
            "BackupEndTime" => self.end = map.next_value()?,
            "BackupType" => self.backup_type = map.next_value()?,
            "BackupMode" => self.backup_mode = map.next_value()?,
            "BackupMethod" => self.backup_method = map.next_value()?,
            k if k == spec.size => self.size = map.next_value()?,
            k if Some(k) == spec.node => self.node = map.next_value()?,
            k if Some(k) == spec.available => self.available = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
