//! Snapshot → the Prometheus text format, into a `Sink`: the families,
//! their HELP texts, the label and number formatting (`Writer`), and the
//! series that are not per instance. The per-instance series are rendered
//! once per change of an instance and kept (`prerender.rs`); a scrape
//! copies them (so an instance no longer watched leaves no series behind,
//! and ages are computed against "now").
//! Each family is cut into blocks of `BLOCK` instances, so that a sink can
//! reuse what it made of a block that did not change (the gzip fragments).

#[cfg(test)]
use std::ops::Range;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

#[cfg(test)]
use crate::config::TagLabel;
#[cfg(test)]
use crate::model::{BackupApi, InstanceInfo};
#[cfg(test)]
use crate::prerender::Rendered;
use crate::snapshot::Snapshot;
#[cfg(test)]
use crate::snapshot::{InstanceView, NodeSummary};
#[cfg(test)]
use crate::targets::InstanceKey;

const NS: &str = "aliyun_backup_";

/// Instances per block of a family.
pub const BLOCK: usize = 256;

/// Where the text goes: a `String`, or a scrape's stream of chunks.
pub trait Sink {
    fn push(&mut self, text: &str);
    /// Between two samples: a block of one family ends here.
    fn boundary(&mut self) {}
}

impl Sink for String {
    fn push(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn push(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

/// The HELP texts of the families built from snapshots.
const FAMILIES: &[(&str, &str)] = &[
    ("last_success_timestamp_seconds", "End time of the newest successful backup in the lookback window (from the exporter's last cached poll)."),
    ("last_success_age_seconds", "Seconds since the end of the newest successful backup, computed at scrape time (from the exporter's last cached poll)."),
    ("last_success_size_bytes", "Size of the newest successful backup (from the exporter's last cached poll)."),
    ("last_success_duration_seconds", "Duration (end - start) of the newest successful backup (from the exporter's last cached poll)."),
    ("last_success_info", "Kind of the newest successful backup; always 1 (from the exporter's last cached poll)."),
    ("last_attempt_timestamp_seconds", "Start time of the newest backup of any status (from the exporter's last cached poll)."),
    ("last_attempt_success", "1 if the newest backup of any status succeeded, else 0 (from the exporter's last cached poll)."),
    ("backups", "Backups in the lookback window by status (from the exporter's last cached poll)."),
    ("implausible_backups", "Backups of the last successful poll set aside because they cannot be true (started outside the window asked for, ended before they started or after now), or kept without their size (size_too_large), by reason; absent when none."),
    ("poll_success", "1 if the last poll of the instance succeeded, else 0 (from the exporter's last cached poll)."),
    ("poll_success_timestamp_seconds", "When the instance was last polled successfully (from the exporter's last cached poll)."),
    ("policy_info", "An instance's backup policy: the weekdays it backs up on and its window (DescribeBackupPolicy); always 1."),
    ("policy_max_interval_seconds", "Longest gap between two consecutive scheduled backup days of the instance's weekly policy."),
    ("policy_retention_seconds", "How long the instance's backups are kept: BackupRetentionPeriod (days) in seconds."),
    ("policy_log_backup_enabled", "1 if the instance's log (incremental, AOF) backup is on (EnableBackupLog), else 0."),
    ("expected_max_age_seconds", "Age above which the instance's newest successful backup is overdue: from its backup policy (source=\"policy\": longest gap + window + --backup.grace) or --backup.max-age (source=\"default\") when the policy is unknown."),
    ("poll_cycle_duration_seconds", "From the first start to the last finish of the last complete round of polls over all instances (from the exporter's last cached poll)."),
    ("instance_info", "What DescribeInstances says of a watched instance; always 1 (from the exporter's last discovery round)."),
    ("instance_created_timestamp_seconds", "When the instance was created: DescribeInstances' CreateTime (from the exporter's last discovery round)."),
    ("discovery_success", "1 if the last discovery round of the account and region succeeded (DescribeInstances; DescribeRegions for region_id=\"all\"), else 0."),
    ("discovery_timestamp_seconds", "When discovery last succeeded for the account and region."),
    ("targets", "Instances this replica polls, by account and region; instances in Creating are not counted."),
];

/// One watched instance, as a scrape sees it: its facts once polled, what
/// discovery says of it, the backup call in use, where its common labels
/// (`{product="…",region_id="…",instance_id="…"`) are in the scrape's
/// label text, and which of the scrape's nodes are its.
#[cfg(test)]
struct Row<'s> {
    key: &'s InstanceKey,
    view: Option<&'s InstanceView>,
    info: Option<&'s InstanceInfo>,
    api: BackupApi,
    labels: Range<usize>,
    nodes: Range<usize>,
}

/// One node of a polled instance: where its labels (the instance's and its
/// `node_id`) are in the label text, and its facts.
#[cfg(test)]
struct NodeRow<'s> {
    labels: Range<usize>,
    node: &'s NodeSummary,
}

/// Writes the snapshot's gauges. Families without samples are left out.
/// Renders every instance afresh; `/metrics` keeps the rendered instances
/// between scrapes instead (`metrics::Exposition`). Tests.
#[cfg(test)]
pub fn write_snapshot(
    out: &mut impl Sink,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    tag_labels: &[TagLabel],
) {
    Rendered::update(None, snapshot, tag_labels).write(out, snapshot, now);
}

/// The straightforward renderer the records replaced, walking the whole
/// snapshot for every family: the reference the rendered records are
/// checked against.
#[cfg(test)]
pub(crate) fn write_snapshot_reference(
    out: &mut impl Sink,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    tag_labels: &[TagLabel],
) {
    // The instances and nodes with their label text, once per scrape, side
    // by side in memory: every family walks them again, and chasing the
    // snapshot's pointers twenty times would cost more than the writing.
    let mut text = String::with_capacity(snapshot.targets.targets.len() * 200);
    let mut nodes: Vec<NodeRow> = Vec::with_capacity(snapshot.instances.len() * 2);
    let rows: Vec<Row> = walk(snapshot)
        .map(|(key, view, info, api)| {
            let start = text.len();
            let mut w = Writer::new(&mut text);
            w.label("product", key.product);
            w.label("region_id", &key.region_id);
            w.label("instance_id", &key.instance_id);
            let labels = start..text.len();
            let first = nodes.len();
            for (node_id, node) in view
                .iter()
                .flat_map(|v| v.summary.iter())
                .flat_map(|s| s.nodes.iter())
            {
                let start = text.len();
                text.extend_from_within(labels.clone());
                Writer::new(&mut text)
                    .continue_labels()
                    .label("node_id", node_id);
                nodes.push(NodeRow {
                    labels: start..text.len(),
                    node,
                });
            }
            Row {
                key,
                view,
                info,
                api,
                labels,
                nodes: first..nodes.len(),
            }
        })
        .collect();
    let polled: Vec<(&str, &InstanceView, &[NodeRow])> = rows
        .iter()
        .filter_map(|r| Some((&text[r.labels.clone()], r.view?, &nodes[r.nodes.clone()])))
        .collect();
    let mut w = Writer::new(out);
    let seconds = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
    let millis = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;

    // Per node: the newest success, then the newest attempt.
    let node_family =
        |w: &mut Writer<_>,
         name: &str,
         value: &dyn for<'n> Fn(&'n NodeSummary) -> Option<Sample<'n>>| {
            w.family(name);
            for (_, _, of_instance) in &polled {
                for row in *of_instance {
                    if let Some(sample) = value(row.node) {
                        w.start_with(name, &text[row.labels.clone()]);
                        for (k, v) in sample.extra {
                            w.label(k, v);
                        }
                        w.end(sample.value);
                    }
                }
                w.instance_done();
            }
            w.family_done();
        };
    node_family(&mut w, "last_success_timestamp_seconds", &|n| {
        n.last_success.as_ref().map(|s| Sample::of(seconds(s.end)))
    });
    node_family(&mut w, "last_success_age_seconds", &|n| {
        n.last_success
            .as_ref()
            .map(|s| Sample::of(millis(now - s.end)))
    });
    node_family(&mut w, "last_success_size_bytes", &|n| {
        n.last_success
            .as_ref()
            .and_then(|s| s.size_bytes)
            .map(|b| Sample::of(b as f64))
    });
    node_family(&mut w, "last_success_duration_seconds", &|n| {
        n.last_success
            .as_ref()
            .map(|s| Sample::of(millis(s.end - s.start)))
    });
    node_family(&mut w, "last_success_info", &|n| {
        n.last_success.as_ref().map(|s| Sample {
            extra: [
                ("backup_type", &*s.backup_type),
                ("backup_mode", &*s.backup_mode),
                ("backup_method", &*s.backup_method),
            ]
            .into_iter()
            .collect(),
            value: 1.0,
        })
    });
    node_family(&mut w, "last_attempt_timestamp_seconds", &|n| {
        n.last_attempt
            .as_ref()
            .map(|a| Sample::of(seconds(a.start)))
    });
    node_family(&mut w, "last_attempt_success", &|n| {
        n.last_attempt
            .as_ref()
            .map(|a| Sample::of(bool_value(a.success)))
    });

    w.family("backups");
    for (labels, view, _) in &polled {
        if let Some(summary) = &view.summary {
            for (status, count) in summary.counts.iter() {
                w.start_with("backups", labels);
                w.label("status", status);
                w.end(*count as f64);
            }
        }
        w.instance_done();
    }
    w.family_done();

    w.family("implausible_backups");
    for (labels, view, _) in &polled {
        for (reason, n) in view.implausible.reasons() {
            w.start_with("implausible_backups", labels);
            w.label("reason", reason);
            w.end(f64::from(n));
        }
        w.instance_done();
    }
    w.family_done();

    // Per instance, one sample or none.
    let instance_family =
        |w: &mut Writer<_>,
         name: &str,
         value: &dyn for<'v> Fn(&'v InstanceView) -> Option<Sample<'v>>| {
            w.family(name);
            for (labels, view, _) in &polled {
                if let Some(sample) = value(view) {
                    w.start_with(name, labels);
                    for (k, v) in sample.extra {
                        w.label(k, v);
                    }
                    w.end(sample.value);
                }
                w.instance_done();
            }
            w.family_done();
        };
    instance_family(&mut w, "poll_success", &|v| {
        Some(Sample::of(bool_value(v.last_poll_success)))
    });
    instance_family(&mut w, "poll_success_timestamp_seconds", &|v| {
        v.last_success_poll_at.map(|at| Sample::of(seconds(at)))
    });
    let mut days = String::new();
    w.family("policy_info");
    for (labels, view, _) in &polled {
        if let Some(policy) = &view.policy {
            days.clear();
            days.push_str(&policy.days.label());
            w.start_with("policy_info", labels);
            w.label("days", &days);
            w.label("window", &policy.window);
            w.end(1.0);
        }
        w.instance_done();
    }
    w.family_done();
    instance_family(&mut w, "policy_max_interval_seconds", &|v| {
        v.policy
            .as_ref()
            .and_then(|p| p.max_interval())
            .map(|d| Sample::of(d.as_secs_f64()))
    });
    instance_family(&mut w, "policy_retention_seconds", &|v| {
        v.policy
            .as_ref()
            .and_then(|p| p.retention_days)
            .map(|d| Sample::of(d as f64 * 86400.0))
    });
    instance_family(&mut w, "policy_log_backup_enabled", &|v| {
        v.policy
            .as_ref()
            .and_then(|p| p.log_backup_enabled)
            .map(|on| Sample::of(bool_value(on)))
    });
    instance_family(&mut w, "expected_max_age_seconds", &|v| {
        Some(Sample {
            extra: [("source", v.expected_source.label())]
                .into_iter()
                .collect(),
            value: v.expected_max_age.as_secs_f64(),
        })
    });

    write_poll_cycle(&mut w, snapshot);

    // What discovery knows: every watched instance with its info, polled or not.
    w.family("instance_info");
    for row in &rows {
        if let Some(info) = row.info {
            w.start_with("instance_info", &text[row.labels.clone()]);
            w.label("account", &row.key.account);
            w.label("instance_name", &info.name);
            w.label("zone_id", &info.zone_id);
            w.label("engine_version", &info.engine_version);
            w.label("architecture", &info.architecture);
            w.label("instance_class", &info.instance_class);
            w.label("status", &info.status);
            w.label("backup_api", row.api.label());
            for tag in tag_labels {
                if let Some((_, value)) = info.tags.iter().find(|(k, _)| *k == tag.key) {
                    w.label(&tag.label, value);
                }
            }
            w.end(1.0);
        }
        w.instance_done();
    }
    w.family_done();
    w.family("instance_created_timestamp_seconds");
    for row in &rows {
        if let Some(created) = row.info.and_then(|i| i.created) {
            w.start_with(
                "instance_created_timestamp_seconds",
                &text[row.labels.clone()],
            );
            w.end(seconds(created));
        }
        w.instance_done();
    }
    w.family_done();

    write_discovery(&mut w, snapshot);
}

/// `poll_cycle_duration_seconds`, between the polled instances' families
/// and the info ones.
pub(crate) fn write_poll_cycle<S: Sink>(w: &mut Writer<S>, snapshot: &Snapshot) {
    w.family("poll_cycle_duration_seconds");
    if let Some(seconds) = snapshot.poll_cycle_seconds {
        w.start("poll_cycle_duration_seconds");
        w.end(seconds);
    }
    w.family_done();
}

/// The last families: discovery per account and region, and targets.
pub(crate) fn write_discovery<S: Sink>(w: &mut Writer<S>, snapshot: &Snapshot) {
    let seconds = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
    let regions = &snapshot.targets.discovery;
    for (name, with_value) in [
        ("discovery_success", true),
        ("discovery_timestamp_seconds", false),
    ] {
        w.family(name);
        for ((account, product, region), status) in regions {
            let value = if with_value {
                Some(bool_value(status.success))
            } else {
                status.last_success.map(seconds)
            };
            if let Some(value) = value {
                w.start(name);
                w.label("account", account);
                w.label("product", product);
                w.label("region_id", region);
                w.end(value);
            }
        }
        w.family_done();
    }
    w.family("targets");
    for ((account, product, region), n) in snapshot.targets.counts() {
        w.start("targets");
        w.label("account", &account);
        w.label("product", product);
        w.label("region_id", &region);
        w.end(n as f64);
    }
    w.family_done();
}

/// Every watched instance that has series, in key order, with its view,
/// its info and the backup call in use. Both maps are sorted by key, and
/// views exist only for targets: one walk pairs them, without a lookup per
/// instance.
#[cfg(test)]
fn walk(
    snapshot: &Snapshot,
) -> impl Iterator<
    Item = (
        &InstanceKey,
        Option<&InstanceView>,
        Option<&InstanceInfo>,
        BackupApi,
    ),
> {
    let mut views = snapshot.instances.iter().peekable();
    snapshot
        .targets
        .targets
        .iter()
        .filter_map(move |(key, target)| {
            while views.next_if(|(k, _)| *k < key).is_some() {}
            let view = views.next_if(|(k, _)| *k == key).map(|(_, v)| v.as_ref());
            let info = target.info.as_deref();
            // The call in use: the poller's (it may have switched), else the plan.
            let api = view.map_or(target.backup_api, |v| v.backup_api);
            (view.is_some() || info.is_some()).then_some((key, view, info, api))
        })
}

/// One sample's own labels and value.
#[cfg(test)]
struct Sample<'a> {
    extra: smallvec3::Extra<'a>,
    value: f64,
}

#[cfg(test)]
impl Sample<'_> {
    fn of(value: f64) -> Self {
        Sample {
            extra: Default::default(),
            value,
        }
    }
}

/// At most three extra label pairs, on the stack.
#[cfg(test)]
mod smallvec3 {
    #[derive(Default)]
    pub struct Extra<'a> {
        pairs: [(&'a str, &'a str); 3],
        len: usize,
    }

    impl<'a> FromIterator<(&'a str, &'a str)> for Extra<'a> {
        fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
            let mut extra = Extra::default();
            for pair in iter.into_iter().take(3) {
                extra.pairs[extra.len] = pair;
                extra.len += 1;
            }
            extra
        }
    }

    impl<'a> IntoIterator for Extra<'a> {
        type Item = (&'a str, &'a str);
        type IntoIter = std::iter::Take<std::array::IntoIter<(&'a str, &'a str), 3>>;
        fn into_iter(self) -> Self::IntoIter {
            self.pairs.into_iter().take(self.len)
        }
    }
}

pub(crate) fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Writes samples label by label; a family's HELP and TYPE go out with its
/// first sample.
pub(crate) struct Writer<'o, S: Sink> {
    out: &'o mut S,
    /// The family whose header is due with its first sample.
    pending: Option<&'static str>,
    /// No label written yet in the current sample.
    bare: bool,
    /// Instances written in the current block.
    in_block: usize,
    number: String,
    numbers: Numbers,
    /// `aliyun_backup_` and the current family's name.
    name: String,
}

/// Scratch space of the fast number formatters.
#[derive(Default)]
pub(crate) struct Numbers {
    int: itoa::Buffer,
    float: ryu::Buffer,
    /// For the values the fast way does not print.
    slow: String,
}

impl Numbers {
    /// `value` in the text format.
    pub(crate) fn push(&mut self, out: &mut impl Sink, value: f64) {
        match format_value(value, self) {
            Some(text) => out.push(text),
            None => {
                let mut slow = std::mem::take(&mut self.slow);
                slow.clear();
                write_value(&mut slow, value);
                out.push(&slow);
                self.slow = slow;
            }
        }
    }
}

/// A family's full name (`aliyun_backup_…`) and its HELP and TYPE lines.
pub(crate) fn family_header(name: &str) -> (&'static str, &'static str) {
    static HEADERS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
        FAMILIES
            .iter()
            .map(|(name, help)| {
                (
                    format!("{NS}{name}"),
                    format!("# HELP {NS}{name} {help}\n# TYPE {NS}{name} gauge\n"),
                )
            })
            .collect()
    });
    let at = FAMILIES
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a known family");
    let (name, header) = &HEADERS[at];
    (name, header)
}

/// `value` as the text format prints it, the fast way, when that way is
/// sure to print what `write_value` would: integers, and fractions without
/// an exponent and with at most 15 significant digits (timestamps and ages
/// in milliseconds are 13).
fn format_value(value: f64, numbers: &mut Numbers) -> Option<&str> {
    if !value.is_finite() || (value == 0.0 && value.is_sign_negative()) {
        return None;
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return Some(numbers.int.format(value as i64));
    }
    if (1e-4..1e15).contains(&value.abs()) {
        // Up to 15 significant digits the shortest decimal that reads back
        // as `value` is unique, so both formatters print it; beyond, they
        // may pick different last digits.
        let text = numbers.float.format_finite(value);
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        let leading = text
            .bytes()
            .take_while(|b| matches!(b, b'0' | b'.' | b'-'))
            .filter(u8::is_ascii_digit)
            .count();
        if digits - leading <= 15 {
            return Some(text);
        }
    }
    None
}

impl<'o, S: Sink> Writer<'o, S> {
    pub(crate) fn new(out: &'o mut S) -> Self {
        Writer {
            out,
            pending: None,
            bare: true,
            in_block: 0,
            number: String::new(),
            numbers: Numbers::default(),
            name: String::new(),
        }
    }

    /// One char, as is (the tags of rendered lines).
    pub(crate) fn raw(&mut self, c: char) {
        self.out.push(c.encode_utf8(&mut [0; 4]));
    }

    fn family(&mut self, name: &str) {
        self.pending = FAMILIES.iter().find(|(n, _)| *n == name).map(|(n, _)| *n);
        self.in_block = 0;
        self.name.clear();
        self.name.push_str(NS);
        self.name.push_str(name);
    }

    fn start(&mut self, name: &str) {
        if let Some(family) = self.pending.take() {
            let help = FAMILIES
                .iter()
                .find(|(n, _)| *n == family)
                .map_or("", |(_, h)| h);
            for part in [
                "# HELP ",
                NS,
                family,
                " ",
                help,
                "\n# TYPE ",
                NS,
                family,
                " gauge\n",
            ] {
                self.out.push(part);
            }
        }
        // The family's full name, written once per sample in one piece.
        if self.name.len() == NS.len() + name.len() && self.name.ends_with(name) {
            self.out.push(&self.name);
        } else {
            self.out.push(NS);
            self.out.push(name);
        }
        self.bare = true;
    }

    /// Labels added after others already written (`{a="x"`).
    pub(crate) fn continue_labels(&mut self) -> &mut Self {
        self.bare = false;
        self
    }

    /// A sample whose first labels are `labels`, already in the text
    /// format (`{a="x",b="y"`).
    #[cfg(test)]
    fn start_with(&mut self, name: &str, labels: &str) {
        self.start(name);
        self.out.push(labels);
        self.bare = labels.is_empty();
    }

    pub(crate) fn label(&mut self, name: &str, value: &str) -> &mut Self {
        self.out.push(if self.bare { "{" } else { "," });
        self.bare = false;
        self.out.push(name);
        self.out.push("=\"");
        // The text format's escapes for label values (rarely needed).
        if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
            self.out.push(value);
        } else {
            let mut rest = value;
            while let Some(at) = rest.find(['\\', '"', '\n']) {
                self.out.push(&rest[..at]);
                self.out.push(match rest.as_bytes()[at] {
                    b'\\' => "\\\\",
                    b'"' => "\\\"",
                    _ => "\\n",
                });
                rest = &rest[at + 1..];
            }
            self.out.push(rest);
        }
        self.out.push("\"");
        self
    }

    pub(crate) fn end(&mut self, value: f64) {
        self.out.push(if self.bare { " " } else { "} " });
        match format_value(value, &mut self.numbers) {
            Some(text) => self.out.push(text),
            None => {
                self.number.clear();
                write_value(&mut self.number, value);
                self.out.push(&self.number);
            }
        }
        self.out.push("\n");
    }

    #[cfg(test)]
    fn instance_done(&mut self) {
        self.in_block += 1;
        if self.in_block == BLOCK {
            self.in_block = 0;
            self.out.boundary();
        }
    }

    fn family_done(&mut self) {
        self.pending = None;
        self.in_block = 0;
        self.out.boundary();
    }
}

/// A value in the text format: integers without a fraction (as Rust's
/// float `Display` prints them).
pub fn write_value(out: &mut String, value: f64) {
    use std::fmt::Write;
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        let mut w = Writer::new(&mut out);
        w.start("x");
        w.label("a", "x\"y\\z\nw");
        w.label("b", "plain");
        w.end(1.0);
        assert_eq!(
            out,
            "aliyun_backup_x{a=\"x\\\"y\\\\z\\nw\",b=\"plain\"} 1\n"
        );
    }

    #[test]
    fn values_in_the_text_format() {
        let mut out = String::new();
        // Integers print as Rust's float Display would (which is what the
        // exposition printed before the integer shortcut), -0 included.
        let cases = [
            1.0,
            0.25,
            1795658404.0,
            1795658404.125,
            -0.0,
            -3.0,
            1e15,
            1e16,
            42.5e-3,
        ];
        for v in cases {
            write_value(&mut out, v);
            out.push(' ');
            let mut display = String::new();
            std::fmt::Write::write_fmt(&mut display, format_args!("{v}")).unwrap();
            assert!(out.ends_with(&format!("{display} ")), "{v}: {out}");
        }
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            write_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(
            out,
            "1 0.25 1795658404 1795658404.125 -0 -3 1000000000000000 10000000000000000 0.0425 +Inf -Inf NaN "
        );
    }

    #[test]
    fn the_fast_formatting_prints_what_display_prints() {
        let mut numbers = Numbers::default();
        let mut values = vec![
            0.001,
            0.5,
            1.25,
            86400.0,
            1795658404.5,
            123456.789,
            99999.999,
        ];
        for _ in 0..100_000 {
            // Timestamps and ages with milliseconds, sizes, small fractions.
            values.push(fastrand::i64(0..4_000_000_000_000) as f64 / 1000.0);
            values.push(fastrand::u64(0..1 << 50) as f64);
            values.push(fastrand::f64() * 10f64.powi(fastrand::i32(-6..16)));
        }
        for v in values {
            let mut display = String::new();
            write_value(&mut display, v);
            if let Some(fast) = format_value(v, &mut numbers) {
                assert_eq!(fast, display, "{v:?}");
            }
        }
    }

    #[test]
    fn an_empty_snapshot_writes_nothing() {
        let mut out = String::new();
        write_snapshot(&mut out, &Snapshot::default(), chrono::Utc::now(), &[]);
        assert_eq!(out, "");
    }

    /// Records where blocks end.
    #[derive(Default)]
    struct Blocks {
        text: String,
        ends: Vec<usize>,
    }

    impl Sink for Blocks {
        fn push(&mut self, text: &str) {
            self.text.push_str(text);
        }
        fn boundary(&mut self) {
            self.ends.push(self.text.len());
        }
    }

    #[test]
    fn blocks_end_between_samples() {
        let mut w = Blocks::default();
        {
            let mut writer = Writer::new(&mut w);
            writer.family("poll_success");
            for i in 0..(BLOCK * 2 + 3) {
                writer.start("poll_success");
                writer.label("instance_id", &format!("r-{i}"));
                writer.end(1.0);
                writer.instance_done();
            }
            writer.family_done();
        }
        // Two full blocks, then the rest of the family.
        assert_eq!(w.ends.len(), 3);
        for end in &w.ends {
            assert!(w.text[..*end].ends_with('\n'));
        }
        let lines_before = |end: usize| {
            w.text[..end]
                .matches("\naliyun_backup_poll_success{")
                .count()
        };
        // The first block holds the header and BLOCK samples.
        assert_eq!(lines_before(w.ends[0]), BLOCK);
        assert_eq!(lines_before(w.ends[1]), 2 * BLOCK);
    }
}
