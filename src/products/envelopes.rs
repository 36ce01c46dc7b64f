//! The `DescribeBackups` envelope of every product, as `backups` decodes
//! it: where the list is, what the total and the size are called, which
//! field names the node, and the product's status words.
//!
//! Sources: the project's API reference sheet (`alibaba-api.md` §1 and §6,
//! from Alibaba's API reference and SDK models), each tested against
//! real-shaped answers in `tests/fixtures/<product>/`.

use super::backups::{BackupsEnvelope, Outcome};

/// ApsaraDB for Redis / Tair (`R-kvstore`, 2015-01-01):
/// `Backups.Backup[]`, `TotalCount` a number, one backup per shard node of a
/// classic cluster (`NodeInstanceId`).
pub const KVSTORE: BackupsEnvelope = BackupsEnvelope {
    product: super::REDIS,
    list: ("Backups", "Backup"),
    path: "Backups.Backup",
    total: "TotalCount",
    node: Some("NodeInstanceId"),
    size: "BackupSize",
    available: None,
    statuses: &[],
    page_size: super::kvstore::PAGE_SIZE,
};

/// The status words of R-kvstore's cloud-native cluster backups
/// (DescribeClusterBackupList), cluster and shards: `OK`, `ERROR`; and
/// `RUNNING`, kept as `running`.
pub const KVSTORE_CLUSTER_STATUSES: &[(&str, Outcome)] =
    &[("ok", Outcome::Success), ("error", Outcome::Failed)];

/// ApsaraDB RDS (`rds`, 2014-08-15): `Items.Backup[]`, counts as strings
/// (`TotalRecordCount`), `IsAvail` 0/1. No node: `HostInstanceID` names the
/// host of the HA pair that took a backup, which changes with every
/// switchover, and both hosts hold one data set; split by it, an old host's
/// old or failed backups would alert for the whole lookback window after a
/// switchover. The instance is its own node, as a standard Redis instance.
pub const RDS: BackupsEnvelope = BackupsEnvelope {
    product: "rds",
    list: ("Items", "Backup"),
    path: "Items.Backup",
    total: "TotalRecordCount",
    node: None,
    size: "BackupSize",
    available: Some("IsAvail"),
    statuses: &[],
    page_size: 100,
};

/// ApsaraDB for MongoDB (`dds`, 2015-12-01): `Backups.Backup[]`,
/// `TotalCount` a number, no node field (a sharded cluster is asked one
/// shard at a time, with `NodeId`), `IsAvail` a boolean.
pub const MONGODB: BackupsEnvelope = BackupsEnvelope {
    product: "mongodb",
    list: ("Backups", "Backup"),
    path: "Backups.Backup",
    total: "TotalCount",
    node: None,
    size: "BackupSize",
    available: Some("IsAvail"),
    statuses: &[],
    page_size: 100,
};

/// PolarDB (`polardb`, 2017-08-01): `Items.Backup[]`, every field a string,
/// the size in `BackupSetSize`, `TotalRecordCount`, no node field.
pub const POLARDB: BackupsEnvelope = BackupsEnvelope {
    product: "polardb",
    list: ("Items", "Backup"),
    path: "Items.Backup",
    total: "TotalRecordCount",
    node: None,
    size: "BackupSetSize",
    available: Some("IsAvail"),
    statuses: &[],
    page_size: 100,
};

/// Every envelope, for the tests that hold for all of them.
pub const ALL: [&BackupsEnvelope; 4] = [&KVSTORE, &RDS, &MONGODB, &POLARDB];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::json::parse_time;
    use crate::products::backups::decode_page;

    /// (node, status, start, end, size, type, mode, method, restorable)
    type Row<'a> = (
        &'a str,
        &'a str,
        i64,
        Option<i64>,
        Option<u64>,
        &'a str,
        &'a str,
        &'a str,
        bool,
    );

    fn ts(s: &str) -> i64 {
        parse_time(s).map(|t| t.timestamp()).unwrap_or_default()
    }

    fn rows(
        body: &[u8],
        envelope: &BackupsEnvelope,
        id: &str,
    ) -> (Option<usize>, Vec<Row<'static>>) {
        let page = decode_page(body, envelope, id).unwrap();
        assert!(!format!("{page:?}").contains("SIGNATURE"), "a URL was read");
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        let rows = page
            .backups
            .iter()
            .map(|b| {
                (
                    leak(&b.node_id),
                    leak(b.status.label()),
                    b.start.timestamp(),
                    b.end.map(|t| t.timestamp()),
                    b.size_bytes,
                    leak(&b.backup_type),
                    leak(&b.backup_mode),
                    leak(&b.backup_method),
                    b.restorable,
                )
            })
            .collect();
        (page.total_count, rows)
    }

    #[test]
    fn kvstore_fixture() {
        let body = include_bytes!("../../tests/fixtures/kvstore/DescribeBackups.json");
        let (total, rows) = rows(body, &KVSTORE, "r-bp10noxlhcoim2****");
        assert_eq!(total, Some(3));
        assert_eq!(
            rows,
            [
                (
                    "r-bp10noxlhcoim2****-db-0",
                    "success",
                    ts("2019-03-14T05:28:50Z"),
                    Some(ts("2019-03-14T05:31:13Z")),
                    Some(15_630_336),
                    "full",
                    "automated",
                    "physical",
                    true
                ),
                (
                    "r-bp10noxlhcoim2****-db-1",
                    "success",
                    ts("2019-03-14T05:28:51Z"),
                    Some(ts("2019-03-14T05:31:20Z")),
                    Some(15_630_336),
                    "full",
                    "automated",
                    "physical",
                    true
                ),
                (
                    "r-bp10noxlhcoim2****-db-0",
                    "failed",
                    ts("2019-03-15T05:28:50Z"),
                    None,
                    None,
                    "full",
                    "manual",
                    "physical",
                    true
                ),
            ]
        );
    }

    #[test]
    fn rds_fixture() {
        let body = include_bytes!("../../tests/fixtures/rds/DescribeBackups.json");
        let (total, rows) = rows(body, &RDS, "rm-uf6wjk5xxxxxxx");
        // TotalRecordCount is a string. Every backup is the instance's own
        // (HostInstanceID, the HA host that took it, is not a node).
        assert_eq!(total, Some(3));
        assert_eq!(
            rows,
            [
                (
                    "rm-uf6wjk5xxxxxxx",
                    "success",
                    ts("2019-03-14T05:28:50Z"),
                    Some(ts("2019-03-14T05:31:13Z")),
                    Some(2_167_808),
                    "full",
                    "automated",
                    "physical",
                    true
                ),
                // IsAvail 0: a success that cannot be restored from.
                (
                    "rm-uf6wjk5xxxxxxx",
                    "success",
                    ts("2019-03-15T05:28:49Z"),
                    Some(ts("2019-03-15T05:33:02Z")),
                    Some(2_167_808),
                    "full",
                    "manual",
                    "snapshot",
                    false
                ),
                (
                    "rm-uf6wjk5xxxxxxx",
                    "failed",
                    ts("2019-03-16T05:28:51Z"),
                    None,
                    Some(0),
                    "full",
                    "automated",
                    "physical",
                    false
                ),
            ]
        );
    }

    #[test]
    fn mongodb_fixture() {
        let body = include_bytes!("../../tests/fixtures/mongodb/DescribeBackups.json");
        let (total, rows) = rows(body, &MONGODB, "dds-bp1xxxx");
        assert_eq!(total, Some(3));
        assert_eq!(
            rows,
            [
                // No node field: the instance.
                (
                    "dds-bp1xxxx",
                    "success",
                    ts("2019-03-13T12:11:02Z"),
                    Some(ts("2019-03-13T12:20:00Z")),
                    Some(6_168_576),
                    "full",
                    "automated",
                    "physical",
                    true
                ),
                (
                    "dds-bp1xxxx",
                    "success",
                    ts("2019-03-14T12:11:02Z"),
                    Some(ts("2019-03-14T12:13:41Z")),
                    Some(6_168_576),
                    "full",
                    "manual",
                    "snapshot",
                    true
                ),
                // IsAvail false, a boolean.
                (
                    "dds-bp1xxxx",
                    "failed",
                    ts("2019-03-15T12:11:03Z"),
                    None,
                    Some(0),
                    "full",
                    "automated",
                    "logical",
                    false
                ),
            ]
        );
    }

    #[test]
    fn polardb_fixture() {
        let body = include_bytes!("../../tests/fixtures/polardb/DescribeBackups.json");
        let (total, rows) = rows(body, &POLARDB, "pc-bp1s826a1up******");
        assert_eq!(total, Some(3));
        assert_eq!(
            rows,
            [
                // Every field a string; the size in BackupSetSize.
                (
                    "pc-bp1s826a1up******",
                    "success",
                    ts("2020-11-15T07:30:05Z"),
                    Some(ts("2020-11-15T07:33:05Z")),
                    Some(7_251_056),
                    "full",
                    "automated",
                    "snapshot",
                    true
                ),
                (
                    "pc-bp1s826a1up******",
                    "success",
                    ts("2020-11-16T07:30:04Z"),
                    Some(ts("2020-11-16T07:32:59Z")),
                    Some(7_340_032),
                    "full",
                    "manual",
                    "snapshot",
                    true
                ),
                // An empty size is no size; IsAvail "0".
                (
                    "pc-bp1s826a1up******",
                    "failed",
                    ts("2020-11-17T07:30:06Z"),
                    None,
                    None,
                    "full",
                    "automated",
                    "snapshot",
                    false
                ),
            ]
        );
    }

    #[test]
    fn each_product_reads_only_its_own_fields() {
        // A size or node under another product's name is not read.
        let body = br#"{"Items":{"Backup":[{"BackupStatus":"Failed","BackupStartTime":"2020-11-17T07:30:06Z",
            "BackupSize":"12","NodeInstanceId":"x-1","BackupSetSize":"big"}]},"TotalCount":"n/a"}"#;
        let page = decode_page(body, &RDS, "rm-1").unwrap();
        assert_eq!(page.total_count, None);
        assert_eq!(
            (page.backups[0].node_id.as_str(), page.backups[0].size_bytes),
            ("rm-1", Some(12))
        );
        let err = decode_page(body, &POLARDB, "pc-1").unwrap_err();
        assert_eq!(err, "Items.Backup[0]: BackupSetSize is not a whole number");
        // R-kvstore's list is elsewhere: nothing of it here.
        assert!(decode_page(body, &KVSTORE, "r-1")
            .unwrap_err()
            .contains("TotalCount"));
        let body = br#"{"Items":{"Backup":[]},"TotalRecordCount":"x"}"#;
        for envelope in [&RDS, &POLARDB] {
            let err = decode_page(body, envelope, "i").unwrap_err();
            assert_eq!(err, "TotalRecordCount is not a number");
        }
    }

    #[test]
    fn every_product_is_strict_where_facts_would_be_wrong() {
        for envelope in ALL {
            let (field, wrapper) = envelope.list;
            let page = |items: &str| format!(r#"{{"{field}":{{"{wrapper}":[{items}]}}}}"#);
            for (item, expected) in [
                (
                    r#"{"BackupStartTime":"2019-03-14T05:28:50Z"}"#,
                    "BackupStatus is missing",
                ),
                (r#"{"BackupStatus":"Failed"}"#, "BackupStartTime is missing"),
                (
                    r#"{"BackupStatus":"success","BackupStartTime":"2019-03-14T05:28:50Z"}"#,
                    "no BackupEndTime",
                ),
                (
                    r#"{"BackupStatus":"Failed","BackupStartTime":"14/03/2019"}"#,
                    "BackupStartTime \"14/03/2019\" is not a time",
                ),
                ("7", "is not an object"),
            ] {
                let err = decode_page(page(item).as_bytes(), envelope, "i").unwrap_err();
                assert!(err.starts_with(&format!("{}[0]", envelope.path)), "{err}");
                assert!(
                    err.contains(expected),
                    "{}: {err} should mention {expected}",
                    envelope.product
                );
            }
            // The page cap: three times the page asked for.
            let item = r#"{"BackupStatus":"Failed","BackupStartTime":"2019-03-14T05:28:50Z"}"#;
            let full = vec![item; envelope.max_items()].join(",");
            let page_ok = decode_page(page(&full).as_bytes(), envelope, "i").unwrap();
            assert_eq!(page_ok.backups.len(), 3 * envelope.page_size);
            let over = format!("{full},{item}");
            let err = decode_page(page(&over).as_bytes(), envelope, "i").unwrap_err();
            assert_eq!(
                err,
                format!(
                    "{} has more than {} items",
                    envelope.path,
                    envelope.max_items()
                )
            );
        }
    }

    #[test]
    fn status_words() {
        use crate::model::BackupStatus;
        use crate::products::backups::status;
        assert_eq!(status(" SUCCESS ", &[]), BackupStatus::Success);
        assert_eq!(status("Failed", &[]), BackupStatus::Failed);
        assert_eq!(status("OK", &[]).label(), "ok");
        assert_eq!(
            status("OK", KVSTORE_CLUSTER_STATUSES),
            BackupStatus::Success
        );
        assert_eq!(
            status("error", KVSTORE_CLUSTER_STATUSES),
            BackupStatus::Failed
        );
        assert!(status("Running", KVSTORE_CLUSTER_STATUSES).is_in_progress());
        assert_eq!(status("Fail\u{7}ed", &[]).label(), "fail_ed");
    }
}
