//! What the exporter knows, as immutable values: pure functions turn one
//! poll's backups into per-node summaries; the poller assembles them into a
//! `Snapshot` that `/metrics` renders.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::{Backup, BackupApi, BackupStatus};
use crate::policy::{BackupPolicy, ExpectationSource};
use crate::targets::{InstanceKey, TargetSet};

/// The newest successful backup of a node (latest end time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSuccess {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub size_bytes: Option<u64>,
    /// The usual words are not allocated again for every instance.
    pub backup_type: Cow<'static, str>,
    pub backup_mode: Cow<'static, str>,
    pub backup_method: Cow<'static, str>,
}

/// `word` without an allocation when it is one of the usual label values.
fn interned(word: &str) -> Cow<'static, str> {
    const USUAL: &[&str] = &[
        "success",
        "failed",
        "running",
        "full",
        "incremental",
        "automated",
        "manual",
        "physical",
        "logical",
        "snapshot",
        "unknown",
    ];
    match USUAL.iter().find(|u| **u == word) {
        Some(usual) => Cow::Borrowed(usual),
        None => Cow::Owned(word.to_string()),
    }
}

/// A small map sorted by key: an instance has one node or a few, and two or
/// three statuses; a `BTreeMap` would allocate room for eleven entries each.
/// The usual keys (`success`, `failed`) are not allocated for every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallMap<V>(Vec<(Cow<'static, str>, V)>);

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        SmallMap(Vec::new())
    }
}

impl<V: Default> SmallMap<V> {
    fn entry(&mut self, key: &str) -> &mut V {
        let at = match self.0.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (interned(key), V::default()));
                at
            }
        };
        &mut self.0[at].1
    }
}

impl<V> SmallMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|at| &self.0[at].1)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<V> std::ops::Index<&str> for SmallMap<V> {
    type Output = V;
    fn index(&self, key: &str) -> &V {
        self.get(key).expect("no such key")
    }
}

/// The newest backup of any status of a node (latest start time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAttempt {
    pub start: DateTime<Utc>,
    pub success: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSummary {
    pub last_success: Option<LastSuccess>,
    pub last_attempt: Option<LastAttempt>,
}

/// What one successful poll of an instance learned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// By node ID (`NodeInstanceId`, or the instance ID).
    pub nodes: SmallMap<NodeSummary>,
    /// Backups in the window by status label; `success` and `failed` are
    /// always present.
    pub counts: SmallMap<u64>,
}

/// Backups of one poll set aside, or a size dropped, because they cannot be
/// true: a year-9999 success would hide every stale backup behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Implausible {
    /// Started outside the window asked for (years 1 and 9999 included).
    pub outside_window: u32,
    /// Ended before it started.
    pub end_before_start: u32,
    /// Ended after now.
    pub in_the_future: u32,
    /// A size over `MAX_SIZE`: kept, without its size.
    pub size_too_large: u32,
}

impl Implausible {
    pub fn is_empty(&self) -> bool {
        *self == Implausible::default()
    }

    /// By `reason` label, the non-zero ones.
    pub fn reasons(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [
            ("outside_window", self.outside_window),
            ("end_before_start", self.end_before_start),
            ("in_the_future", self.in_the_future),
            ("size_too_large", self.size_too_large),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
    }
}

/// No backup of a Redis instance comes near a pebibyte.
pub const MAX_SIZE: u64 = 1 << 50;

/// Clock skew and rounding tolerated around the window and now.
const SLACK: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Sets aside what cannot be true of backups asked for in `from`..`to` at
/// `now`.
pub fn screen(
    backups: Vec<Backup>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<Backup>, Implausible) {
    let mut implausible = Implausible::default();
    let kept = backups
        .into_iter()
        .filter_map(|mut backup| {
            if backup.start < from - SLACK || backup.start > to + SLACK {
                implausible.outside_window += 1;
                return None;
            }
            if backup.end.is_some_and(|end| end < backup.start) {
                implausible.end_before_start += 1;
                return None;
            }
            if backup.end.is_some_and(|end| end > now + SLACK) {
                implausible.in_the_future += 1;
                return None;
            }
            if backup.size_bytes.is_some_and(|size| size > MAX_SIZE) {
                implausible.size_too_large += 1;
                backup.size_bytes = None;
            }
            Some(backup)
        })
        .collect();
    (kept, implausible)
}

/// Summarises one window of backups. The API's order is not relied on.
pub fn summarize(backups: &[Backup]) -> BackupSummary {
    let mut summary = BackupSummary::default();
    summary.counts.entry("success");
    summary.counts.entry("failed");
    for backup in backups {
        *summary.counts.entry(backup.status.label()) += 1;
        let node = summary.nodes.entry(&backup.node_id);
        let success = backup.status == BackupStatus::Success;
        // Newest attempt by start time, among finished ones (a backup still
        // running has not failed); on a tie the unsuccessful one wins, so
        // that an alert is never hidden by the order of the list.
        let newer_attempt = !backup.status.is_in_progress()
            && node.last_attempt.as_ref().is_none_or(|a| {
                backup.start > a.start || (backup.start == a.start && a.success && !success)
            });
        if newer_attempt {
            node.last_attempt = Some(LastAttempt {
                start: backup.start,
                success,
            });
        }
        // A restore point only: a shard's part of a cluster backup that
        // failed elsewhere is not one.
        if let (true, Some(end)) = (success && backup.restorable, backup.end) {
            let newer_success = node
                .last_success
                .as_ref()
                .is_none_or(|s| (end, backup.start) > (s.end, s.start));
            if newer_success {
                node.last_success = Some(LastSuccess {
                    start: backup.start,
                    end,
                    size_bytes: backup.size_bytes,
                    backup_type: interned(&backup.backup_type),
                    backup_mode: interned(&backup.backup_mode),
                    backup_method: interned(&backup.backup_method),
                });
            }
        }
    }
    // Kept until the next poll, for every instance: no spare room.
    summary.nodes.0.shrink_to_fit();
    summary.counts.0.shrink_to_fit();
    summary
}

/// One watched instance, once its first poll has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Whether the latest poll succeeded.
    pub last_poll_success: bool,
    /// When a poll last succeeded.
    pub last_success_poll_at: Option<DateTime<Utc>>,
    /// What the last successful poll learned; kept through failed polls
    /// because those facts are still true.
    pub summary: Option<BackupSummary>,
    /// Why the latest poll failed (error code), for the landing page.
    pub last_error: Option<String>,
    /// The call that lists its backups, as last used.
    pub backup_api: BackupApi,
    /// The backup policy as last read; kept through failed reads.
    pub policy: Option<Arc<BackupPolicy>>,
    /// Above this age its newest successful backup is overdue.
    pub expected_max_age: std::time::Duration,
    pub expected_source: ExpectationSource,
    /// What the last successful poll set aside as impossible.
    pub implausible: Implausible,
}

/// Everything `/metrics`, `/readyz` and `/` show, swapped whole.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// What is watched: every instance with what discovery said of it, and
    /// how discovery went per account and region.
    pub targets: Arc<TargetSet>,
    /// Polled instances whose first poll has finished.
    pub instances: BTreeMap<InstanceKey, Arc<InstanceView>>,
    /// Instances being polled (watched, and not in `Creating`).
    pub polling: usize,
    /// First start to last finish of the last complete pass, in seconds.
    pub poll_cycle_seconds: Option<f64>,
    /// The first discovery round is done and every instance it found has
    /// been polled once (latched).
    pub ready: bool,
    /// Snapshots published before this one (how many swaps the poller made).
    pub sequence: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, hour, 0, 0).unwrap()
    }

    fn backup(node: &str, status: &str, start: u32, end: Option<u32>, size: Option<u64>) -> Backup {
        Backup {
            node_id: node.into(),
            status: BackupStatus::parse(status),
            start: at(start),
            end: end.map(at),
            size_bytes: size,
            backup_type: "full".into(),
            backup_mode: "automated".into(),
            backup_method: "physical".into(),
            restorable: true,
        }
    }

    #[test]
    fn newest_success_by_end_and_newest_attempt_by_start_in_any_order() {
        let backups = vec![
            backup("n", "Success", 1, Some(2), Some(10)),
            backup("n", "Failed", 9, Some(10), None),
            // Started earlier but ended later than the first: it is newer.
            backup("n", "Success", 0, Some(5), Some(20)),
            backup("n", "Success", 3, Some(4), Some(30)),
        ];
        for order in [backups.clone(), backups.iter().rev().cloned().collect()] {
            let s = summarize(&order);
            let node = &s.nodes["n"];
            let last = node.last_success.as_ref().unwrap();
            assert_eq!((last.end, last.size_bytes), (at(5), Some(20)));
            assert_eq!(
                node.last_attempt,
                Some(LastAttempt {
                    start: at(9),
                    success: false
                })
            );
            assert_eq!(s.counts["success"], 3);
            assert_eq!(s.counts["failed"], 1);
        }
    }

    #[test]
    fn nodes_are_summarised_apart() {
        let s = summarize(&[
            backup("r-db-0", "Success", 1, Some(2), Some(1)),
            backup("r-db-1", "Failed", 1, None, None),
        ]);
        assert_eq!(s.nodes.len(), 2);
        assert!(s.nodes["r-db-0"].last_success.is_some());
        assert!(s.nodes["r-db-1"].last_success.is_none());
        assert_eq!(
            s.nodes["r-db-1"].last_attempt.as_ref().map(|a| a.success),
            Some(false)
        );
    }

    #[test]
    fn both_statuses_always_counted_and_unknown_ones_apart() {
        let empty = summarize(&[]);
        assert_eq!(empty.counts.get("success"), Some(&0));
        assert_eq!(empty.counts.get("failed"), Some(&0));
        let s = summarize(&[backup("n", "Deleting", 1, None, None)]);
        assert_eq!(s.counts.get("deleting"), Some(&1));
        assert_eq!(
            s.nodes["n"].last_attempt.as_ref().map(|a| a.success),
            Some(false)
        );
        assert!(s.nodes["n"].last_success.is_none());
    }

    #[test]
    fn a_running_backup_is_counted_but_is_not_the_newest_attempt() {
        let s = summarize(&[
            backup("n", "Success", 1, Some(2), None),
            backup("n", "RUNNING", 5, None, None),
        ]);
        assert_eq!(s.counts.get("running"), Some(&1));
        let attempt = s.nodes["n"].last_attempt.as_ref().unwrap();
        assert_eq!((attempt.start, attempt.success), (at(1), true));
        // Only running: no finished attempt yet, but the node is known.
        let s = summarize(&[backup("n", "Running", 5, None, None)]);
        assert_eq!(s.nodes["n"].last_attempt, None);
    }

    #[test]
    fn a_shard_success_within_a_failed_cluster_backup_is_no_restore_point() {
        let mut partial = backup("shard-0", "Success", 10, Some(11), Some(5));
        partial.restorable = false;
        let s = summarize(&[backup("shard-0", "Success", 1, Some(2), Some(4)), partial]);
        let node = &s.nodes["shard-0"];
        // The shard's own part worked: its newest attempt succeeded ...
        assert_eq!(
            node.last_attempt.as_ref().map(|a| (a.start, a.success)),
            Some((at(10), true))
        );
        // ... but the newest restore point is the older, complete backup.
        assert_eq!(node.last_success.as_ref().map(|l| l.end), Some(at(2)));
        assert_eq!(s.counts["success"], 2);
    }

    #[test]
    fn what_cannot_be_true_is_set_aside_and_counted() {
        let year = |y: i32| Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap();
        let (from, to, now) = (at(0), at(12), at(12));
        let mut huge = backup("n", "Success", 2, Some(3), Some(10u64.pow(19)));
        huge.size_bytes = Some(10u64.pow(19));
        let mut far_future = backup("n", "Success", 5, Some(6), None);
        far_future.end = Some(year(9999));
        let mut ancient = backup("n", "Success", 5, Some(6), None);
        ancient.start = year(1);
        ancient.end = Some(year(1));
        let backups = vec![
            backup("n", "Success", 1, Some(2), Some(5)),
            huge,
            // Ends before it starts.
            backup("n", "Success", 8, Some(7), None),
            far_future,
            ancient,
            // Started in year 9999.
            Backup {
                start: year(9999),
                end: Some(year(9999)),
                ..backup("n", "Success", 1, None, None)
            },
        ];
        let (kept, implausible) = screen(backups, from, to, now);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept[1].size_bytes, None,
            "the size is dropped, the backup kept"
        );
        assert_eq!(
            implausible,
            Implausible {
                outside_window: 2,
                end_before_start: 1,
                in_the_future: 1,
                size_too_large: 1,
            }
        );
        // The year-9999 success no longer hides the real newest one.
        let summary = summarize(&kept);
        assert_eq!(summary.nodes["n"].last_success.as_ref().unwrap().end, at(3));
        // Within the slack: kept.
        let (kept, implausible) = screen(
            vec![backup("n", "Success", 12, Some(12), None)],
            from,
            to,
            now,
        );
        assert_eq!((kept.len(), implausible.is_empty()), (1, true));
    }

    #[test]
    fn a_tie_in_start_time_shows_the_failure() {
        let s = summarize(&[
            backup("n", "Success", 4, Some(5), None),
            backup("n", "Failed", 4, None, None),
        ]);
        assert_eq!(
            s.nodes["n"].last_attempt.as_ref().map(|a| a.success),
            Some(false)
        );
    }
}
