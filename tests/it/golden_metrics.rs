//! The whole `/metrics` body for a fixed snapshot and clock, compared with
//! a checked-in file. Regenerate with `UPDATE_GOLDEN=1 cargo test golden`
//! and review the diff: it is the metrics contract.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aliyun_backup_exporter::aliyun::CallObserver;
use aliyun_backup_exporter::clock::ManualClock;
use aliyun_backup_exporter::metrics;
use aliyun_backup_exporter::model::{Backup, BackupStatus};
use aliyun_backup_exporter::snapshot::{summarize, InstanceView, Snapshot};
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

fn at(day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, second)
        .unwrap()
}

fn backup(node: &str, status: &str, start: DateTime<Utc>, secs: i64, size: Option<u64>) -> Backup {
    Backup {
        node_id: node.into(),
        status: BackupStatus::parse(status),
        start,
        end: Some(start + chrono::Duration::seconds(secs)),
        size_bytes: size,
        backup_type: "full".into(),
        backup_mode: "automated".into(),
        backup_method: "physical".into(),
    }
}

fn fixed_snapshot() -> Snapshot {
    let mut instances = BTreeMap::new();
    let polled = at(26, 6, 0, 0);
    instances.insert(
        "r-std".to_string(),
        Arc::new(InstanceView {
            last_poll_success: true,
            last_success_poll_at: Some(polled),
            summary: Some(summarize(&[
                backup(
                    "r-std",
                    "Success",
                    at(25, 2, 0, 0),
                    300,
                    Some(1_073_741_824),
                ),
                backup(
                    "r-std",
                    "Success",
                    at(26, 2, 0, 0),
                    312,
                    Some(1_073_745_920),
                ),
                backup("r-std", "Failed", at(26, 4, 0, 0), 12, None),
            ])),
            last_error: None,
        }),
    );
    instances.insert(
        "r-cls".to_string(),
        Arc::new(InstanceView {
            // The latest poll failed: the facts of the one before stay.
            last_poll_success: false,
            last_success_poll_at: Some(at(26, 5, 55, 0)),
            summary: Some(summarize(&[
                backup("r-cls-db-0", "Success", at(26, 1, 0, 0), 60, Some(10)),
                backup("r-cls-db-1", "Success", at(26, 1, 0, 0), 90, None),
                backup("r-cls-db-1", "Running", at(26, 5, 0, 0), 0, None),
            ])),
            last_error: Some("Throttling.User".into()),
        }),
    );
    instances.insert(
        "r-gone".to_string(),
        Arc::new(InstanceView {
            last_poll_success: false,
            last_success_poll_at: None,
            summary: None,
            last_error: Some("InvalidInstanceId.NotFound".into()),
        }),
    );
    Snapshot {
        product: "redis",
        region_id: "cn-hangzhou".into(),
        // r-new is watched but not polled yet: it has no series at all.
        watched: Arc::new(vec![
            "r-std".into(),
            "r-cls".into(),
            "r-gone".into(),
            "r-new".into(),
        ]),
        instances,
        poll_cycle_seconds: Some(1.25),
    }
}

#[test]
fn metrics_body_matches_the_golden_file() {
    let (_tx, rx) = watch::channel(Arc::new(fixed_snapshot()));
    let clock = Arc::new(ManualClock::new(at(26, 6, 30, 0)));
    let metrics::Live { registry, api, .. } = metrics::registry(false).unwrap();
    api.attempt("DescribeBackups", "Success", Duration::from_millis(80));
    api.attempt("DescribeBackups", "Success", Duration::from_millis(300));
    api.attempt(
        "DescribeBackups",
        "Throttling.User",
        Duration::from_millis(40),
    );

    let exposition = metrics::Exposition {
        registry,
        snapshots: rx,
        clock,
    };
    let body = exposition.render().unwrap();
    let revision = option_env!("GIT_REVISION").unwrap_or("unknown");
    let normalised = body
        .replace(
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "version=\"@VERSION@\"",
        )
        .replace(
            &format!("revision=\"{revision}\""),
            "revision=\"@REVISION@\"",
        );

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/golden/metrics.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        // Rewriting the file makes this test pass; never in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_GOLDEN is not for CI"
        );
        std::fs::write(path, &normalised).unwrap();
    }
    let expected =
        std::fs::read_to_string(path).expect("golden file exists (UPDATE_GOLDEN=1 to create)");
    assert_eq!(
        normalised, expected,
        "the /metrics body changed; if intended, UPDATE_GOLDEN=1 and review"
    );
}
