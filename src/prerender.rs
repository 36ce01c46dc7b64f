//! The snapshot's per-instance series, rendered once per change of an
//! instance instead of at every scrape.
//!
//! Each watched instance has its label text (`{product="…",
//! region_id="…",instance_id="…"` and each node's `,node_id="…"`) once, and
//! then, per metric family, its sample lines without the metric name and
//! without the label prefix: a tag naming the prefix (the instance's, or
//! one node's) followed by the rest of the line (`,status="success"} 3\n`).
//! A family keeps every instance's lines in one text, in key order, and
//! instances whose lines are the same text share them. `Rendered` holds
//! them for one snapshot. When a new snapshot comes, `Rendered::of` walks
//! it beside the previous `Rendered` and keeps every instance whose inputs
//! are the very same allocations (`Arc::ptr_eq` of the instance's view and
//! info, same backup call): only the instances polled or rediscovered since
//! are rendered again. A scrape then writes, per family, the header and
//! each instance's lines: the metric name, the prefix and the stored rest,
//! which are copies of contiguous bytes; piece by piece (`write_next`), as
//! the connection takes them, with the length counted beforehand
//! (`length`).
//!
//! The one series that depends on the time of the scrape,
//! `aliyun_backup_last_success_age_seconds`, is kept as the end times of the
//! nodes' newest successes and computed at every scrape; the series that
//! are not per instance are written once per snapshot.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::config::TagLabel;
use crate::exposition::{
    bool_value, family_header, write_discovery, write_poll_cycle, Numbers, Sink, Writer, BLOCK,
};
use crate::model::{BackupApi, InstanceInfo};
use crate::snapshot::{InstanceView, NodeSummary, Snapshot};
use crate::targets::InstanceKey;

/// The per-instance families, in the order of the exposition: first those
/// of polled instances (`POLLED` of them), then `poll_cycle_duration_seconds`
/// (not per instance), then those of every watched instance with info.
pub(crate) const RECORD_FAMILIES: [&str; 18] = [
    "last_success_timestamp_seconds",
    "last_success_age_seconds",
    "last_success_size_bytes",
    "last_success_duration_seconds",
    "last_success_info",
    "last_attempt_timestamp_seconds",
    "last_attempt_success",
    "backups",
    "implausible_backups",
    "poll_success",
    "poll_success_timestamp_seconds",
    "policy_info",
    "policy_max_interval_seconds",
    "policy_retention_seconds",
    "policy_log_backup_enabled",
    "expected_max_age_seconds",
    "instance_info",
    "instance_created_timestamp_seconds",
];

/// Families written only for polled instances (those with a view).
const POLLED: usize = 16;
/// The family computed at scrape time.
const AGE: usize = 1;
const FAMILIES: usize = RECORD_FAMILIES.len();
/// The part of a `Cursor` after the last family: discovery.
const DISCOVERY: usize = FAMILIES + 1;

/// The tag char of a line whose labels start with node `index`'s.
fn node_tag(index: usize) -> char {
    let mut code = 1 + index as u32;
    // Skip the surrogates, which are no chars.
    if code >= 0xD800 {
        code += 0x800;
    }
    char::from_u32(code).expect("fewer than a million nodes")
}

fn tag_node(tag: char) -> Option<usize> {
    let code = tag as u32;
    match code {
        0 => None,
        c if c >= 0xE000 => Some((c - 0x800 - 1) as usize),
        c => Some((c - 1) as usize),
    }
}

/// An offset in one of the texts (a rendered fleet is far below 4 GiB).
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("rendered text under 4 GiB")
}

/// One instance in a `Rendered`: what its series were made of, and where
/// its labels are.
struct Entry {
    key: InstanceKey,
    view: Option<Arc<InstanceView>>,
    info: Option<Arc<InstanceInfo>>,
    api: BackupApi,
    /// Its label prefix is `labels[prefix..nodes]`; its nodes' parts
    /// follow, ending at `node_ends[first_node..last_node]`.
    prefix: u32,
    nodes: u32,
    first_node: u32,
    last_node: u32,
}

impl Entry {
    fn same_inputs(
        &self,
        view: Option<&Arc<InstanceView>>,
        info: Option<&Arc<InstanceInfo>>,
        api: BackupApi,
    ) -> bool {
        fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        self.api == api && same(self.view.as_ref(), view) && same(self.info.as_ref(), info)
    }
}

/// One family's lines, instance by instance: `spans[i]` is where instance
/// `i`'s are in `text` (each line a tag char, 0 for the instance's label
/// prefix, n for the prefix and node n - 1's part, then the rest of the
/// line through its `\n`). Instances whose lines are the very same text
/// share it: most of a fleet has the same backup kind, policy, status
/// counts, and their lines are kept once.
#[derive(Default)]
struct Family {
    text: String,
    spans: Vec<(u32, u32)>,
    /// Where the lines of the instance being rendered start.
    open: usize,
    /// While the family is made: the texts kept, by their hash.
    seen: HashMap<u64, (u32, u32)>,
}

impl Family {
    fn of(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        &self.text[start as usize..end as usize]
    }

    /// Ends the instance whose lines were appended since the last: they
    /// are shared with an earlier instance that has the same.
    fn close(&mut self) {
        let (start, end) = (self.open, self.text.len());
        let span = if start == end {
            (offset(start), offset(end))
        } else {
            let hash = xxhash_rust::xxh3::xxh3_64(&self.text.as_bytes()[start..]);
            match self.seen.get(&hash) {
                Some(&(s, e)) if self.text[s as usize..e as usize] == self.text[start..] => {
                    self.text.truncate(start);
                    (s, e)
                }
                Some(_) => (offset(start), offset(end)),
                None => {
                    self.seen.insert(hash, (offset(start), offset(end)));
                    (offset(start), offset(end))
                }
            }
        };
        self.spans.push(span);
        self.open = self.text.len();
    }

    /// Appends `lines` as the next instance's.
    fn push(&mut self, lines: &str) {
        self.text.push_str(lines);
        self.close();
    }

    /// Made: no spare room, and no more lookups.
    fn done(&mut self) {
        self.seen = HashMap::new();
        self.text.shrink_to_fit();
        self.spans.shrink_to_fit();
    }
}

/// The per-instance series of one snapshot, family by family, each family's
/// lines contiguous (a scrape reads them in order, as it writes them).
pub struct Rendered {
    /// The snapshot they were made from: a scrape writes the series that
    /// are not per instance from it, and may be handed this form after a
    /// newer snapshot came (`metrics::Exposition`).
    source: Option<Arc<Snapshot>>,
    /// When this was made.
    made: std::time::Instant,
    entries: Vec<Entry>,
    /// Every instance's label prefix and its nodes' parts.
    labels: String,
    node_ends: Vec<u32>,
    families: [Family; FAMILIES],
    /// `last_success_age_seconds`: each node's (index) newest success's
    /// end; `age_ends[i]` is where instance `i`'s end.
    ages: Vec<(u32, DateTime<Utc>)>,
    age_ends: Vec<u32>,
    /// Instances rendered (not carried over) when this was made.
    fresh: usize,
    /// The bytes each family writes (but the ages, which change with the
    /// time of the scrape): counted once, for the length of a scrape's body.
    lengths: OnceLock<[usize; FAMILIES]>,
    /// The series that are not per instance (the poll cycle; discovery and
    /// targets), which depend on the snapshot alone: written once.
    shared_parts: OnceLock<(String, String)>,
}

/// Where an instance of the next `Rendered` comes from: the previous one,
/// or the instances rendered for the update.
#[derive(Clone, Copy)]
enum Source {
    Previous(usize),
    Fresh(usize),
}

/// The rendered form an update starts from.
enum Previous<'p> {
    /// Still read by a scrape: copied from, kept whole.
    Shared(&'p Rendered),
    /// No longer read by anyone: its labels, ages and entries are given
    /// back once copied, and each family's memory as soon as it has been
    /// copied, so that an update holds two copies of one family at most,
    /// not of everything.
    Owned(Box<Rendered>),
}

impl Previous<'_> {
    fn get(&self) -> &Rendered {
        match self {
            Previous::Shared(p) => p,
            Previous::Owned(p) => p,
        }
    }

    fn release(&mut self, f: usize) {
        if let Previous::Owned(p) = self {
            p.families[f] = Family::default();
        }
    }

    /// Gives back what is copied before the families (labels, ages,
    /// entries): the families are copied from their texts alone.
    fn release_instances(&mut self) {
        if let Previous::Owned(p) = self {
            p.entries = Vec::new();
            p.labels = String::new();
            p.node_ends = Vec::new();
            p.ages = Vec::new();
            p.age_ends = Vec::new();
        }
    }
}

impl Rendered {
    fn empty(n: usize) -> Rendered {
        Rendered {
            source: None,
            made: std::time::Instant::now(),
            entries: Vec::with_capacity(n),
            labels: String::new(),
            node_ends: Vec::new(),
            families: std::array::from_fn(|_| Family {
                spans: Vec::with_capacity(n),
                ..Family::default()
            }),
            ages: Vec::new(),
            age_ends: Vec::with_capacity(n),
            fresh: 0,
            lengths: OnceLock::new(),
            shared_parts: OnceLock::new(),
        }
    }

    /// The rendered form of `snapshot`, reusing the instances of `previous`
    /// whose inputs did not change.
    #[cfg(test)]
    pub fn update(
        previous: Option<&Rendered>,
        snapshot: &Snapshot,
        tag_labels: &[TagLabel],
    ) -> Rendered {
        Rendered::assemble(previous.map(Previous::Shared), snapshot, tag_labels)
    }

    /// `update` for a snapshot that is shared (`is_of` knows it again),
    /// from the previous rendered form as cached: when no scrape reads it
    /// any more, its memory is given back family by family meanwhile.
    pub fn of(
        previous: Option<Arc<Rendered>>,
        snapshot: &Arc<Snapshot>,
        tag_labels: &[TagLabel],
    ) -> Rendered {
        let rendered = match previous.map(Arc::try_unwrap) {
            None => Rendered::assemble(None, snapshot, tag_labels),
            Some(Ok(owned)) => {
                Rendered::assemble(Some(Previous::Owned(Box::new(owned))), snapshot, tag_labels)
            }
            Some(Err(shared)) => {
                Rendered::assemble(Some(Previous::Shared(&shared)), snapshot, tag_labels)
            }
        };
        Rendered {
            source: Some(snapshot.clone()),
            made: std::time::Instant::now(),
            ..rendered
        }
    }

    fn assemble(
        mut previous: Option<Previous>,
        snapshot: &Snapshot,
        tag_labels: &[TagLabel],
    ) -> Rendered {
        // Which instances are carried over; the others rendered apart.
        let mut fresh = Rendered::empty(0);
        let mut sources = Vec::with_capacity(snapshot.targets.targets.len());
        {
            let prev = previous.as_ref().map(Previous::get);
            let mut old = prev
                .map_or(&[][..], |p| &p.entries[..])
                .iter()
                .enumerate()
                .peekable();
            for (key, view, info, api) in walk(snapshot) {
                while old.next_if(|(_, e)| e.key < *key).is_some() {}
                match old.next_if(|(_, e)| e.key == *key) {
                    Some((i, e)) if e.same_inputs(view, info, api) => {
                        sources.push(Source::Previous(i));
                    }
                    _ => {
                        sources.push(Source::Fresh(fresh.entries.len()));
                        fresh.render(key, view, info, api, tag_labels);
                        fresh.close();
                    }
                }
            }
        }
        if fresh.entries.len() == sources.len() {
            // Every instance rendered anew (the first scrape): in order
            // already, nothing to copy.
            fresh.fresh = fresh.entries.len();
            fresh.labels.shrink_to_fit();
            fresh.node_ends.shrink_to_fit();
            for family in &mut fresh.families {
                family.done();
            }
            fresh.ages.shrink_to_fit();
            return fresh;
        }
        let mut next = Rendered::empty(sources.len());
        next.fresh = fresh.entries.len();
        {
            let prev = previous.as_ref().map(Previous::get);
            let pick = |s: &Source| match *s {
                Source::Previous(i) => (prev.expect("a previous form"), i),
                Source::Fresh(j) => (&fresh, j),
            };
            let labels: usize = sources
                .iter()
                .map(|s| {
                    let (from, i) = pick(s);
                    from.labels_of(i).len()
                })
                .sum();
            next.labels.reserve_exact(labels);
            for s in &sources {
                let (from, i) = pick(s);
                next.copy_labels(from, i);
            }
            let ages: usize = sources
                .iter()
                .map(|s| {
                    let (from, i) = pick(s);
                    from.ages_of(i).len()
                })
                .sum();
            next.ages.reserve_exact(ages);
            for s in &sources {
                let (from, i) = pick(s);
                next.ages.extend_from_slice(from.ages_of(i));
                next.age_ends.push(offset(next.ages.len()));
            }
        }
        if let Some(previous) = previous.as_mut() {
            previous.release_instances();
        }
        for f in 0..FAMILIES {
            {
                let prev = previous.as_ref().map(Previous::get);
                let pick = |s: &Source| match *s {
                    Source::Previous(i) => (prev.expect("a previous form"), i),
                    Source::Fresh(j) => (&fresh, j),
                };
                let len: usize = sources
                    .iter()
                    .map(|s| {
                        let (from, i) = pick(s);
                        from.families[f].of(i).len()
                    })
                    .sum();
                let family = &mut next.families[f];
                // At most this much: less when instances share their lines.
                family.text.reserve_exact(len);
                for s in &sources {
                    let (from, i) = pick(s);
                    family.push(from.families[f].of(i));
                }
                family.done();
            }
            if let Some(previous) = previous.as_mut() {
                previous.release(f);
            }
        }
        next.node_ends.shrink_to_fit();
        next
    }

    /// Ends the instance last rendered: where its lines end in each family.
    fn close(&mut self) {
        for family in &mut self.families {
            family.close();
        }
        self.age_ends.push(offset(self.ages.len()));
    }

    /// Instance `i`'s label prefix and its nodes' parts.
    fn labels_of(&self, i: usize) -> &str {
        let e = &self.entries[i];
        let end = self.node_ends[e.first_node as usize..e.last_node as usize]
            .last()
            .copied()
            .unwrap_or(e.nodes);
        &self.labels[e.prefix as usize..end as usize]
    }

    fn ages_of(&self, i: usize) -> &[(u32, DateTime<Utc>)] {
        let start = if i == 0 { 0 } else { self.age_ends[i - 1] };
        &self.ages[start as usize..self.age_ends[i] as usize]
    }

    /// Made from this very snapshot.
    pub fn is_of(&self, snapshot: &Arc<Snapshot>) -> bool {
        self.source
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
    }

    /// The snapshot this was made from (`of`).
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.source.as_ref()
    }

    /// How long ago this was made.
    pub fn age(&self) -> std::time::Duration {
        self.made.elapsed()
    }

    /// Instances with series.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Instances rendered anew when this was made.
    pub fn fresh(&self) -> usize {
        self.fresh
    }

    /// Bytes of rendered text and offsets kept.
    pub fn bytes(&self) -> usize {
        self.labels.len()
            + self.node_ends.len() * 4
            + self
                .families
                .iter()
                .map(|f| f.text.len() + f.spans.len() * 8)
                .sum::<usize>()
            + self.ages.len() * std::mem::size_of::<(u32, DateTime<Utc>)>()
            + self.age_ends.len() * 4
            + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// Instance `i`'s label prefix.
    fn prefix(&self, i: usize) -> &str {
        let e = &self.entries[i];
        &self.labels[e.prefix as usize..e.nodes as usize]
    }

    /// Instance `i`'s node `node`'s label part.
    fn node_part(&self, i: usize, node: usize) -> &str {
        let e = &self.entries[i];
        let at = e.first_node as usize + node;
        let start = if node == 0 {
            e.nodes
        } else {
            self.node_ends[at - 1]
        };
        &self.labels[start as usize..self.node_ends[at] as usize]
    }

    /// Instance `i` of `from` as the next instance: its labels (its lines
    /// are copied family by family).
    fn copy_labels(&mut self, from: &Rendered, i: usize) {
        let e = &from.entries[i];
        let prefix = offset(self.labels.len());
        let shift = |at: u32| at - e.prefix + prefix;
        let first_node = offset(self.node_ends.len());
        self.labels.push_str(from.labels_of(i));
        self.node_ends.extend(
            from.node_ends[e.first_node as usize..e.last_node as usize]
                .iter()
                .map(|at| shift(*at)),
        );
        self.entries.push(Entry {
            key: e.key.clone(),
            view: e.view.clone(),
            info: e.info.clone(),
            api: e.api,
            prefix,
            nodes: shift(e.nodes),
            first_node,
            last_node: offset(self.node_ends.len()),
        });
    }

    /// Renders one instance: its view when polled, its info when
    /// discovery knows it.
    fn render(
        &mut self,
        key: &InstanceKey,
        view_arc: Option<&Arc<InstanceView>>,
        info_arc: Option<&Arc<InstanceInfo>>,
        api: BackupApi,
        tag_labels: &[TagLabel],
    ) {
        let (view, info) = (view_arc.map(|v| &**v), info_arc.map(|i| &**i));
        let prefix = offset(self.labels.len());
        let mut w = Writer::new(&mut self.labels);
        w.label("product", key.product);
        w.label("region_id", &key.region_id);
        w.label("instance_id", &key.instance_id);
        let nodes_at = offset(self.labels.len());
        let first_node = offset(self.node_ends.len());
        let nodes: Vec<(&str, &NodeSummary)> = view
            .iter()
            .flat_map(|v| v.summary.iter())
            .flat_map(|s| s.nodes.iter())
            .collect();
        for (node_id, _) in &nodes {
            Writer::new(&mut self.labels)
                .continue_labels()
                .label("node_id", node_id);
            self.node_ends.push(offset(self.labels.len()));
        }
        self.entries.push(Entry {
            key: key.clone(),
            view: view_arc.cloned(),
            info: info_arc.cloned(),
            api,
            prefix,
            nodes: nodes_at,
            first_node,
            last_node: offset(self.node_ends.len()),
        });
        let seconds = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
        let millis = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
        for (f, name) in RECORD_FAMILIES.iter().enumerate() {
            let mut out = Line::new(&mut self.families[f].text);
            match (*name, view) {
                ("last_success_age_seconds", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(s) = &node.last_success {
                            self.ages.push((i as u32, s.end));
                        }
                    }
                }
                ("last_success_timestamp_seconds", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(s) = &node.last_success {
                            out.node(i).end(seconds(s.end));
                        }
                    }
                }
                ("last_success_size_bytes", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(b) = node.last_success.as_ref().and_then(|s| s.size_bytes) {
                            out.node(i).end(b as f64);
                        }
                    }
                }
                ("last_success_duration_seconds", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(s) = &node.last_success {
                            out.node(i).end(millis(s.end - s.start));
                        }
                    }
                }
                ("last_success_info", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(s) = &node.last_success {
                            out.node(i)
                                .label("backup_type", &s.backup_type)
                                .label("backup_mode", &s.backup_mode)
                                .label("backup_method", &s.backup_method)
                                .end(1.0);
                        }
                    }
                }
                ("last_attempt_timestamp_seconds", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(a) = &node.last_attempt {
                            out.node(i).end(seconds(a.start));
                        }
                    }
                }
                ("last_attempt_success", Some(_)) => {
                    for (i, (_, node)) in nodes.iter().enumerate() {
                        if let Some(a) = &node.last_attempt {
                            out.node(i).end(bool_value(a.success));
                        }
                    }
                }
                ("backups", Some(view)) => {
                    if let Some(summary) = &view.summary {
                        for (status, count) in summary.counts.iter() {
                            out.instance().label("status", status).end(*count as f64);
                        }
                    }
                }
                ("implausible_backups", Some(view)) => {
                    for (reason, n) in view.implausible.reasons() {
                        out.instance().label("reason", reason).end(f64::from(n));
                    }
                }
                ("poll_success", Some(view)) => {
                    out.instance().end(bool_value(view.last_poll_success));
                }
                ("poll_success_timestamp_seconds", Some(view)) => {
                    if let Some(at) = view.last_success_poll_at {
                        out.instance().end(seconds(at));
                    }
                }
                ("policy_info", Some(view)) => {
                    if let Some(policy) = &view.policy {
                        out.instance()
                            .label("days", &policy.days.label())
                            .label("window", &policy.window)
                            .end(1.0);
                    }
                }
                ("policy_max_interval_seconds", Some(view)) => {
                    if let Some(d) = view.policy.as_ref().and_then(|p| p.max_interval()) {
                        out.instance().end(d.as_secs_f64());
                    }
                }
                ("policy_retention_seconds", Some(view)) => {
                    if let Some(d) = view.policy.as_ref().and_then(|p| p.retention_days) {
                        out.instance().end(d as f64 * 86400.0);
                    }
                }
                ("policy_log_backup_enabled", Some(view)) => {
                    if let Some(on) = view.policy.as_ref().and_then(|p| p.log_backup_enabled) {
                        out.instance().end(bool_value(on));
                    }
                }
                ("expected_max_age_seconds", Some(view)) => {
                    out.instance()
                        .label("source", view.expected_source.label())
                        .end(view.expected_max_age.as_secs_f64());
                }
                ("instance_info", _) => {
                    if let Some(info) = info {
                        let line = out.instance();
                        line.label("account", &key.account)
                            .label("instance_name", &info.name)
                            .label("zone_id", &info.zone_id)
                            .label("engine_version", &info.engine_version)
                            .label("architecture", &info.architecture)
                            .label("instance_class", &info.instance_class)
                            .label("status", &info.status)
                            .label("backup_api", api.label());
                        for tag in tag_labels {
                            if let Some((_, value)) = info.tags.iter().find(|(k, _)| *k == tag.key)
                            {
                                line.label(&tag.label, value);
                            }
                        }
                        line.end(1.0);
                    }
                }
                ("instance_created_timestamp_seconds", _) => {
                    if let Some(created) = info.and_then(|i| i.created) {
                        out.instance().end(seconds(created));
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes the snapshot's gauges (`snapshot` is the one this was made
    /// from: the few series that are not per instance come from it).
    /// Families without samples are left out; each family is cut into
    /// blocks of `BLOCK` instances.
    pub fn write(&self, out: &mut impl Sink, snapshot: &Snapshot, now: DateTime<Utc>) {
        let mut cursor = Cursor::default();
        let mut numbers = Numbers::default();
        while self.write_next(out, snapshot, now, &mut cursor, &mut numbers) {}
    }

    /// The text of the poll cycle and of discovery (`snapshot` is the one
    /// this was made from).
    fn shared_parts(&self, snapshot: &Snapshot) -> &(String, String) {
        self.shared_parts.get_or_init(|| {
            let (mut poll_cycle, mut discovery) = (String::new(), String::new());
            write_poll_cycle(&mut Writer::new(&mut poll_cycle), snapshot);
            write_discovery(&mut Writer::new(&mut discovery), snapshot);
            (poll_cycle, discovery)
        })
    }

    /// How many bytes `write` writes at `now`: the families counted once,
    /// the ages and the series that are not per instance counted now. The
    /// first call counts the families (a pass over every instance without
    /// copying): make it where such work belongs, off the async workers.
    pub(crate) fn length(&self, snapshot: &Snapshot, now: DateTime<Utc>) -> usize {
        let mut numbers = Numbers::default();
        let families = self.lengths.get_or_init(|| {
            std::array::from_fn(|f| {
                let mut count = Count(0);
                if f != AGE {
                    self.write_block(
                        &mut count,
                        f,
                        0..self.entries.len(),
                        &mut true,
                        now,
                        &mut numbers,
                    );
                }
                count.0
            })
        });
        let mut count = Count(families.iter().sum());
        self.write_block(
            &mut count,
            AGE,
            0..self.entries.len(),
            &mut true,
            now,
            &mut numbers,
        );
        let (poll_cycle, discovery) = self.shared_parts(snapshot);
        count.0 + poll_cycle.len() + discovery.len()
    }

    /// Writes the next piece of the exposition at `cursor` (a block of one
    /// family, or a few series that are not per instance; a block is
    /// `BLOCK` instances unless the cursor says otherwise) and moves the
    /// cursor past it; false once everything is written. A scrape's body
    /// is made piece by piece as the connection asks for more.
    pub(crate) fn write_next(
        &self,
        out: &mut impl Sink,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
        cursor: &mut Cursor,
        numbers: &mut Numbers,
    ) -> bool {
        // The parts: the polled families, the poll cycle, the other
        // families, discovery.
        let family = match cursor.part {
            p if p < POLLED => p,
            POLLED => {
                out.push(&self.shared_parts(snapshot).0);
                cursor.enter(POLLED + 1);
                return true;
            }
            p if p <= FAMILIES => p - 1,
            DISCOVERY => {
                out.push(&self.shared_parts(snapshot).1);
                cursor.enter(DISCOVERY + 1);
                return true;
            }
            _ => return false,
        };
        let to = (cursor.next + cursor.step).min(self.entries.len());
        self.write_block(
            out,
            family,
            cursor.next..to,
            &mut cursor.header_due,
            now,
            numbers,
        );
        if to == self.entries.len() {
            // A family ends with a boundary of its own, even right after a
            // full block's (the sink sees an empty block).
            if to.is_multiple_of(cursor.step) && to > cursor.next {
                out.boundary();
            }
            out.boundary();
            cursor.enter(cursor.part + 1);
        } else {
            out.boundary();
            cursor.next = to;
        }
        true
    }

    /// Writes the samples of family `f` of the instances `range`, its
    /// header first if `header_due` and they have any.
    fn write_block(
        &self,
        out: &mut impl Sink,
        f: usize,
        range: std::ops::Range<usize>,
        header_due: &mut bool,
        now: DateTime<Utc>,
        numbers: &mut Numbers,
    ) {
        let (name, header) = family_header(RECORD_FAMILIES[f]);
        let family = &self.families[f];
        for i in range {
            let (start, end) = if f == AGE {
                let start = if i == 0 { 0 } else { self.age_ends[i - 1] };
                (start as usize, self.age_ends[i] as usize)
            } else {
                let (start, end) = family.spans[i];
                (start as usize, end as usize)
            };
            if f < POLLED && self.entries[i].view.is_none() {
                continue;
            }
            if start == end {
                continue;
            }
            if std::mem::take(header_due) {
                out.push(header);
            }
            let prefix = self.prefix(i);
            if f == AGE {
                for (node, at) in &self.ages[start..end] {
                    out.push(name);
                    out.push(prefix);
                    out.push(self.node_part(i, *node as usize));
                    out.push("} ");
                    let age = (now - *at).num_milliseconds() as f64 / 1000.0;
                    numbers.push(out, age);
                    out.push("\n");
                }
            } else {
                let mut lines = &family.text[start..end];
                while let Some(tag) = lines.chars().next() {
                    let rest = &lines[tag.len_utf8()..];
                    let end = rest.find('\n').map_or(rest.len(), |at| at + 1);
                    out.push(name);
                    out.push(prefix);
                    if let Some(node) = tag_node(tag) {
                        out.push(self.node_part(i, node));
                    }
                    out.push(&rest[..end]);
                    lines = &rest[end..];
                }
            }
        }
    }
}

/// A sink that only counts bytes.
struct Count(usize);

impl Sink for Count {
    #[inline]
    fn push(&mut self, text: &str) {
        self.0 += text.len();
    }
}

/// Where a scrape is in the exposition (`Rendered::write_next`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    /// The part being written: see `write_next`.
    part: usize,
    /// The first instance of the next block of a family.
    next: usize,
    /// The family's HELP and TYPE are still to be written.
    header_due: bool,
    /// Instances per block.
    step: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor::with_blocks_of(BLOCK)
    }
}

impl Cursor {
    /// A cursor at the start that moves `step` instances at a time (a
    /// sink that reuses nothing of a block can take smaller ones).
    pub(crate) fn with_blocks_of(step: usize) -> Self {
        Cursor {
            part: 0,
            next: 0,
            header_due: true,
            step: step.max(1),
        }
    }

    fn enter(&mut self, part: usize) {
        *self = Cursor {
            part,
            ..Cursor::with_blocks_of(self.step)
        };
    }
}

/// Writes the lines of a record, each after its tag.
struct Line<'t> {
    w: Writer<'t, String>,
}

impl<'t> Line<'t> {
    fn new(text: &'t mut String) -> Self {
        Line {
            w: Writer::new(text),
        }
    }

    fn instance(&mut self) -> &mut Writer<'t, String> {
        self.w.raw('\0');
        self.w.continue_labels()
    }

    fn node(&mut self, index: usize) -> &mut Writer<'t, String> {
        self.w.raw(node_tag(index));
        self.w.continue_labels()
    }
}

/// Every watched instance that has series, in key order, with its view,
/// its info and the backup call in use. Both maps are sorted by key, and
/// views exist only for targets: one walk pairs them, without a lookup per
/// instance.
#[allow(clippy::type_complexity)]
fn walk(
    snapshot: &Snapshot,
) -> impl Iterator<
    Item = (
        &InstanceKey,
        Option<&Arc<InstanceView>>,
        Option<&Arc<InstanceInfo>>,
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
            let view = views.next_if(|(k, _)| *k == key).map(|(_, v)| v);
            let info = target.info.as_ref();
            // The call in use: the poller's (it may have switched), else the plan.
            let api = view.map_or(target.backup_api, |v| v.backup_api);
            (view.is_some() || info.is_some()).then_some((key, view, info, api))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::{
        ClientSettings, Credentials, NoObserver, RetryPolicy, RpcClient, StaticProvider,
    };
    use crate::exposition::write_snapshot_reference;
    use crate::model::{Backup, BackupStatus};
    use crate::policy::{BackupPolicy, ExpectationSource, Weekdays};
    use crate::snapshot::{summarize, Implausible};
    use crate::targets::{DiscoveryStatus, Target, TargetSet};
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn client() -> Arc<RpcClient> {
        Arc::new(
            RpcClient::new(
                ClientSettings {
                    endpoint: "http://127.0.0.1:9".into(),
                    labels: Default::default(),
                    version: "2015-01-01",
                    timeout: Duration::from_secs(1),
                    retry: RetryPolicy::none(),
                },
                Arc::new(StaticProvider::new(
                    "test",
                    Credentials {
                        access_key_id: "id".into(),
                        access_key_secret: crate::secret::Secret::new("s"),
                        security_token: None,
                    },
                )),
                Arc::new(NoObserver),
                crate::clock::system(),
            )
            .unwrap(),
        )
    }

    /// A label value: mostly plain, sometimes with what must be escaped,
    /// sometimes not ASCII, sometimes empty.
    fn word(rng: &mut fastrand::Rng) -> String {
        const PARTS: &[&str] = &["r-bp1", "db", "\\", "\"", "\n", "é", "東京", "", "x", "-0"];
        (0..rng.usize(0..4))
            .map(|_| PARTS[rng.usize(..PARTS.len())])
            .collect()
    }

    fn time(rng: &mut fastrand::Rng) -> DateTime<Utc> {
        Utc.timestamp_opt(
            rng.i64(1_700_000_000..1_800_000_000),
            rng.u32(0..1_000_000_000),
        )
        .unwrap()
    }

    fn view(rng: &mut fastrand::Rng) -> InstanceView {
        // Up to a dozen nodes: node 9's tag is the char '\n'.
        let nodes: Vec<String> = (0..rng.usize(1..13))
            .map(|i| format!("{}{i}", word(rng)))
            .collect();
        let backups: Vec<Backup> = (0..rng.usize(0..8))
            .map(|_| {
                let start = time(rng);
                Backup {
                    node_id: nodes[rng.usize(..nodes.len())].clone(),
                    status: BackupStatus::parse(
                        ["Success", "Failed", "Running", "Deleting", &word(rng)][rng.usize(..5)],
                    ),
                    start,
                    end: rng
                        .bool()
                        .then(|| start + chrono::Duration::milliseconds(rng.i64(0..90_000_000))),
                    size_bytes: rng.bool().then(|| rng.u64(..1 << 50)),
                    backup_type: ["full", "incremental", "odd"][rng.usize(..3)].into(),
                    backup_mode: word(rng),
                    backup_method: "physical".into(),
                    restorable: rng.u8(..4) > 0,
                }
            })
            .collect();
        let policy = rng.bool().then(|| {
            Arc::new(BackupPolicy {
                days: Weekdays::parse(
                    ["", "Monday", "Monday,Thursday", "Sunday,Wednesday,Friday"][rng.usize(..4)],
                )
                .unwrap(),
                window: word(rng),
                retention_days: rng.bool().then(|| rng.u64(0..800)),
                log_backup_enabled: rng.bool().then(|| rng.bool()),
            })
        });
        InstanceView {
            last_poll_success: rng.bool(),
            last_success_poll_at: rng.bool().then(|| time(rng)),
            summary: rng.u8(..4).gt(&0).then(|| summarize(&backups)),
            last_error: rng.bool().then(|| word(rng)),
            backup_api: if rng.bool() {
                BackupApi::DescribeBackups
            } else {
                BackupApi::ClusterBackupList
            },
            policy,
            expected_max_age: Duration::from_millis(rng.u64(..10_000_000_000)),
            expected_source: if rng.bool() {
                ExpectationSource::Policy
            } else {
                ExpectationSource::Default
            },
            implausible: Implausible {
                outside_window: rng.u32(0..3),
                end_before_start: rng.u32(0..2),
                in_the_future: 0,
                size_too_large: rng.u32(0..2),
            },
        }
    }

    fn info(rng: &mut fastrand::Rng, id: &str) -> InstanceInfo {
        InstanceInfo {
            instance_id: id.into(),
            region_id: "cn-hangzhou".into(),
            name: word(rng),
            zone_id: word(rng).into(),
            engine_version: "5.0".into(),
            architecture: word(rng).into(),
            instance_class: word(rng).into(),
            status: ["Normal", "Creating", "Changing"][rng.usize(..3)].into(),
            shard_count: None,
            nodes: Vec::new(),
            tags: (0..rng.usize(0..3))
                .map(|_| {
                    (
                        ["env", "team", "cost-center"][rng.usize(..3)].into(),
                        word(rng),
                    )
                })
                .collect(),
            created: rng.bool().then(|| time(rng)),
        }
    }

    fn tag_labels() -> Vec<TagLabel> {
        ["env", "cost-center"]
            .iter()
            .map(|k| TagLabel {
                key: k.to_string(),
                label: crate::config::tag_label_name(k),
            })
            .collect()
    }

    /// A random snapshot of up to `n` instances.
    fn snapshot(rng: &mut fastrand::Rng, n: usize) -> Snapshot {
        let client = client();
        let mut targets = BTreeMap::new();
        let mut instances = BTreeMap::new();
        for i in 0..rng.usize(0..=n) {
            let key = InstanceKey::new(
                ["default", "prod"][rng.usize(..2)].into(),
                "redis",
                ["cn-hangzhou", "eu-central-1"][rng.usize(..2)].into(),
                format!("r-{i}{}", word(rng)).into(),
            );
            let info = rng
                .u8(..4)
                .gt(&0)
                .then(|| Arc::new(info(rng, &key.instance_id)));
            targets.insert(
                key.clone(),
                Target {
                    backup_api: BackupApi::DescribeBackups,
                    info,
                    polled: true,
                    client: client.clone(),
                },
            );
            if rng.u8(..4) > 0 {
                instances.insert(key, Arc::new(view(rng)));
            }
        }
        let discovery = BTreeMap::from([(
            ("default".into(), "redis", "cn-hangzhou".into()),
            DiscoveryStatus {
                success: rng.bool(),
                last_success: rng.bool().then(|| time(rng)),
            },
        )]);
        Snapshot {
            targets: Arc::new(TargetSet {
                targets,
                discovery,
                initial_round_done: true,
                ..Default::default()
            }),
            instances,
            polling: 0,
            poll_cycle_seconds: rng.bool().then(|| rng.f64() * 100.0),
            ready: true,
            sequence: 0,
        }
    }

    fn reference(snapshot: &Snapshot, now: DateTime<Utc>) -> String {
        let mut text = String::new();
        write_snapshot_reference(&mut text, snapshot, now, &tag_labels());
        text
    }

    /// The text `write` gives, checked against what a scrape's body is
    /// made of: the length counted beforehand, and the same text written
    /// in pieces of 1, 2, 3 or 16 instances.
    fn prerendered(rendered: &Rendered, snapshot: &Snapshot, now: DateTime<Utc>) -> String {
        let mut text = String::new();
        rendered.write(&mut text, snapshot, now);
        assert_eq!(rendered.length(snapshot, now), text.len());
        for step in [1, 2, 3, 16] {
            let (mut cursor, mut numbers) = (Cursor::with_blocks_of(step), Numbers::default());
            let mut pieces = Vec::new();
            while rendered.write_next(&mut pieces, snapshot, now, &mut cursor, &mut numbers) {}
            assert!(pieces == text.as_bytes(), "pieces of {step}");
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The records give the very text the straightforward renderer
        /// gives, at any time of scrape, and after an update that keeps
        /// some instances, changes others, drops and adds some.
        #[test]
        fn records_write_what_the_reference_writes(seed: u64) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let first = snapshot(&mut rng, 12);
            let now = time(&mut rng);
            let rendered = Rendered::update(None, &first, &tag_labels());
            prop_assert_eq!(prerendered(&rendered, &first, now), reference(&first, now));
            let later = now + chrono::Duration::milliseconds(rng.i64(0..100_000_000));
            prop_assert_eq!(prerendered(&rendered, &first, later), reference(&first, later));

            // The next snapshot: the same allocations for some instances.
            let mut next = snapshot(&mut rng, 12);
            let mut targets = (*next.targets).clone();
            for (key, target) in &first.targets.targets {
                if rng.bool() {
                    targets.targets.insert(key.clone(), target.clone());
                    match first.instances.get(key) {
                        Some(view) if rng.u8(..4) > 0 => {
                            next.instances.insert(key.clone(), view.clone());
                        }
                        Some(_) if rng.bool() => {
                            next.instances.insert(key.clone(), Arc::new(view(&mut rng)));
                        }
                        _ => {
                            next.instances.remove(key);
                        }
                    }
                }
            }
            next.targets = Arc::new(targets);
            let expected = reference(&next, later);
            // From a previous form still read by a scrape ...
            let updated = Rendered::update(Some(&rendered), &next, &tag_labels());
            prop_assert_eq!(&prerendered(&updated, &next, later), &expected);
            // ... shared ...
            let next = Arc::new(next);
            let shared = Arc::new(rendered);
            let held = shared.clone();
            let updated = Rendered::of(Some(shared), &next, &tag_labels());
            prop_assert_eq!(&prerendered(&updated, &next, later), &expected);
            // ... and owned, its families given back as they are copied.
            let updated = Rendered::of(Some(held), &next, &tag_labels());
            prop_assert!(updated.is_of(&next));
            prop_assert_eq!(&prerendered(&updated, &next, later), &expected);
            // Again from the result: nothing changed, nothing rendered.
            let again = Rendered::of(Some(Arc::new(updated)), &next, &tag_labels());
            prop_assert_eq!(again.fresh(), 0);
            prop_assert_eq!(&prerendered(&again, &next, later), &expected);
        }
    }

    #[test]
    fn only_what_changed_is_rendered_again() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut first = snapshot(&mut rng, 0);
        while first.targets.targets.len() < 5 || first.instances.len() < 3 {
            first = snapshot(&mut rng, 20);
        }
        let first = Arc::new(first);
        let rendered = Rendered::of(None, &first, &tag_labels());
        assert!(rendered.is_of(&first));
        assert_eq!(rendered.fresh(), rendered.len());
        let first_len = rendered.len();
        // One view replaced, by an equal value in a new allocation.
        let mut next = (*first).clone();
        let (key, view) = next.instances.iter().next().unwrap();
        let (key, view) = (key.clone(), Arc::new((**view).clone()));
        next.instances.insert(key, view);
        let next = Arc::new(next);
        assert!(!rendered.is_of(&next));
        let updated = Rendered::of(Some(Arc::new(rendered)), &next, &tag_labels());
        assert_eq!(updated.fresh(), 1);
        assert_eq!(updated.len(), first_len);
        let now = Utc::now();
        assert_eq!(prerendered(&updated, &next, now), reference(&next, now));
    }

    #[test]
    fn instances_with_the_same_lines_share_them() {
        let mut family = Family::default();
        for lines in ["\0} 1\n", "\0} 2\n", "\0} 1\n", "", "\u{1}} 2\n\0} 1\n"] {
            family.push(lines);
        }
        family.done();
        assert_eq!(family.text, "\0} 1\n\0} 2\n\u{1}} 2\n\0} 1\n");
        let lines: Vec<&str> = (0..5).map(|i| family.of(i)).collect();
        assert_eq!(
            lines,
            ["\0} 1\n", "\0} 2\n", "\0} 1\n", "", "\u{1}} 2\n\0} 1\n"]
        );
    }

    #[test]
    fn node_tags_round_trip() {
        for index in [0, 1, 9, 126, 127, 0xD7FE, 0xD7FF, 0xD800, 100_000] {
            assert_eq!(tag_node(node_tag(index)), Some(index), "{index}");
        }
        assert_eq!(tag_node('\0'), None);
    }
}
