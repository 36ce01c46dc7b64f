//! What one answer may cost to decode (issue 11): a 16 MiB answer, just under
//! the client's body cap, made of padding that carries no fact (zeros or
//! `{}` in an unknown field, a deep `[[[[…`, `{}` as the items of the list)
//! either decodes with the few real backups it holds or fails cleanly, and
//! the peak of the bytes allocated meanwhile stays under `MAX_EXTRA`,
//! whatever the padding. The whole body parsed into a `serde_json::Value`
//! first cost about 300 MiB for the zeros.
//!
//! Its own test binary, so that its counting allocator sees this process
//! only, and one test, so that nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use aliyun_backup_exporter::products::kvstore::{
    decode_backup_policy, decode_cluster_page, decode_instances, decode_page, decode_regions,
};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = IN_USE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The client refuses answers over 16 MiB: the padded answers are just under.
const BODY: usize = (16 << 20) - 4096;

/// What decoding one answer may allocate beyond the body itself, at its
/// peak: the real content here is a few kilobytes.
const MAX_EXTRA: usize = 1 << 20;

/// A decoder under test: what it decoded, counted, or its error.
type Decoder<'a> = &'a dyn Fn(&[u8]) -> Result<usize, String>;

/// Runs `decode` and returns (peak bytes allocated beyond what was in use
/// before, bytes still allocated after the result was dropped).
fn measure(
    decode: impl FnOnce() -> Result<usize, String>,
) -> (usize, usize, Result<usize, String>) {
    let before = IN_USE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let result = decode();
    let peak = PEAK.load(Ordering::SeqCst).saturating_sub(before);
    let kept = IN_USE.load(Ordering::SeqCst).saturating_sub(before);
    // The error text is the only thing kept; drop what it holds from "kept".
    let shown = match &result {
        Ok(n) => Ok(*n),
        Err(e) => Err(e.chars().take(200).collect()),
    };
    let kept = kept.saturating_sub(match &result {
        Ok(_) => 0,
        Err(e) => e.capacity(),
    });
    (peak, kept, shown)
}

const BACKUPS: &str = r#"{"Backup":[
  {"BackupId":1,"BackupStatus":"Success","BackupStartTime":"2026-11-20T05:00:00Z","BackupEndTime":"2026-11-20T05:03:00Z","BackupSize":1024,"NodeInstanceId":"r-x","BackupType":"FullBackup","BackupMode":"Automated","BackupMethod":"Physical"},
  {"BackupId":2,"BackupStatus":"Failed","BackupStartTime":"2026-11-21T05:00:00Z","BackupType":"FullBackup","BackupMode":"Automated","BackupMethod":"Physical"}
]}"#;

/// An answer of `BODY` bytes: `head`, then `fill` repeated in an array
/// (`[fill,fill,…]`) under an unknown field, then `tail`.
fn padded(head: &str, fill: &str, tail: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(BODY);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(br#""Padding":["#);
    body.extend_from_slice(fill.as_bytes());
    while body.len() + fill.len() + 1 < BODY - tail.len() - 2 {
        body.push(b',');
        body.extend_from_slice(fill.as_bytes());
    }
    body.extend_from_slice(b"],");
    assert!(
        body.len() + tail.len() > BODY - 2 * fill.len() - 8,
        "{}",
        body.len()
    );
    body.extend_from_slice(tail.as_bytes());
    body
}

/// `[[[…]]]` as deep as fits in `BODY`, under an unknown field.
fn deep(head: &str, tail: &str) -> Vec<u8> {
    let depth = (BODY - head.len() - tail.len() - 16) / 2;
    let mut body = Vec::with_capacity(BODY);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(br#""Padding":"#);
    body.resize(body.len() + depth, b'[');
    body.resize(body.len() + depth, b']');
    body.push(b',');
    body.extend_from_slice(tail.as_bytes());
    body
}

#[test]
fn a_padded_answer_costs_what_its_facts_cost() {
    let backups_tail = format!(r#""Backups":{BACKUPS}}}"#);
    let page = |body: &[u8]| decode_page(body, "r-x").map(|p| p.backups.len());
    let mut failures = Vec::new();
    let mut check = |what: &str, body: Vec<u8>, decode: Decoder, want: Option<usize>| {
        assert!(body.len() <= 16 << 20, "{what}: {} bytes", body.len());
        let (peak, kept, result) = measure(|| decode(&body));
        println!(
            "{what}: {} bytes, peak {peak} bytes beyond the body, {kept} kept: {result:?}",
            body.len()
        );
        if peak >= MAX_EXTRA {
            failures.push(format!("{what}: peak {peak} bytes beyond the body"));
        }
        if kept >= 64 << 10 {
            failures.push(format!("{what}: {kept} bytes kept after decoding"));
        }
        match (want, &result) {
            (Some(n), Ok(got)) if *got == n => {}
            (None, Err(e)) if e.len() < 300 => {}
            _ => failures.push(format!("{what}: {result:?}, expected {want:?}")),
        }
    };

    let head = r#"{"RequestId":"R","TotalCount":2,"#;
    check("zeros", padded(head, "0", &backups_tail), &page, Some(2));
    check(
        "empty objects",
        padded(head, "{}", &backups_tail),
        &page,
        Some(2),
    );
    check(
        "empty arrays",
        padded(head, "[]", &backups_tail),
        &page,
        Some(2),
    );
    check(
        "long zero strings",
        padded(head, &format!("\"{}\"", "0".repeat(4096)), &backups_tail),
        &page,
        Some(2),
    );
    // Nested as deep as allowed, over and over: skipped as cheaply.
    let nested = format!("{}{}", "[".repeat(60), "]".repeat(60));
    check(
        "nested 60 deep",
        padded(head, &nested, &backups_tail),
        &page,
        Some(2),
    );
    // Nested far deeper than any answer: refused, cleanly.
    check("deep arrays", deep(head, &backups_tail), &page, None);
    // `{}` as the items of the list: the first one fails the page.
    let mut items = padded(r#"{"TotalCount":2,"Backups":{"#, "{}", r#""x":1}}"#);
    // Turn `"Padding":[…]` into `"Backup":[…]`.
    let at = items
        .windows(9)
        .position(|w| w == br#""Padding""#)
        .unwrap_or(0);
    items.splice(at..at + 9, br#""Backup""#.iter().copied());
    check("empty items", items, &page, None);

    // Every other decoder, on the same kinds of padding.
    let cluster = |body: &[u8]| decode_cluster_page(body, "r-x").map(|b| b.len());
    let cluster_tail = r#""ClusterBackups":[{"ClusterBackupId":"cb-1","ClusterBackupStatus":"OK","ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z","Backups":[{"InstanceName":"r-x-db-0","BackupStatus":"OK"}]}]}"#;
    let policy =
        |body: &[u8]| decode_backup_policy(body).map(|p| p.retention_days.unwrap_or(0) as usize);
    let policy_tail = r#""BackupRetentionPeriod":"7","PreferredBackupPeriod":"Monday"}"#;
    let instances = |body: &[u8]| decode_instances(body, "cn-hangzhou").map(|p| p.instances.len());
    let instances_tail =
        r#""Instances":{"KVStoreInstance":[{"InstanceId":"r-a"},{"InstanceId":"r-b"}]}}"#;
    let regions = |body: &[u8]| decode_regions(body).map(|r| r.len());
    let regions_tail = r#""RegionIds":{"KVStoreRegion":[{"RegionId":"cn-hangzhou"}]}}"#;
    let others: [(&str, Decoder, &str, usize); 4] = [
        ("cluster", &cluster, cluster_tail, 1),
        ("policy", &policy, policy_tail, 7),
        ("instances", &instances, instances_tail, 2),
        ("regions", &regions, regions_tail, 1),
    ];
    for (name, decode, tail, want) in others {
        check(
            &format!("{name}, zeros"),
            padded("{", "0", tail),
            decode,
            Some(want),
        );
        check(
            &format!("{name}, empty objects"),
            padded("{", "{}", tail),
            decode,
            Some(want),
        );
        check(
            &format!("{name}, deep arrays"),
            deep("{", tail),
            decode,
            None,
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
