//! What one answer may cost, through the real client and the fake API
//! (issue 11): padding in unknown fields costs nothing and the poll goes
//! on; a page with far more items than asked for, or nested deeper than
//! any answer, fails that call with a decode error, counted and not
//! retried.

use aliyun_backup_exporter::aliyun::ApiError;
use aliyun_backup_exporter::fake_api::Fault;
use aliyun_backup_exporter::products::kvstore::{self, Window};
use chrono::Utc;
use std::time::Duration;

use crate::helpers::*;

const ONE_BACKUP: &str = r#"{"BackupStatus":"Success","BackupStartTime":"2026-01-01T00:00:00Z","BackupEndTime":"2026-01-01T00:03:00Z","BackupSize":1024}"#;

async fn describe(
    client: &aliyun_backup_exporter::aliyun::RpcClient,
) -> Result<Vec<aliyun_backup_exporter::model::Backup>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let window = Window::ending_at(Utc::now(), Duration::from_secs(7 * 86400));
    kvstore::describe_backups(client, "r-1", &window, deadline).await
}

#[tokio::test]
async fn padding_in_unknown_fields_costs_nothing_and_the_poll_succeeds() {
    let fake = fake().await;
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();
    // Just under the client's 16 MiB cap, almost all of it zeros.
    let head = r#"{"RequestId":"REQ-1","TotalCount":1,"Padding":["#;
    let tail = format!(r#"],"Backups":{{"Backup":[{ONE_BACKUP}]}}}}"#);
    let zeros = ((16 << 20) - 4096 - head.len() - tail.len()) / 2;
    let mut body = String::with_capacity(16 << 20);
    body.push_str(head);
    body.push('0');
    for _ in 1..zeros {
        body.push_str(",0");
    }
    body.push_str(&tail);
    fake.push_faults("r-1", [Fault::Raw { status: 200, body }]);
    let backups = describe(&client).await.expect("the padded page decodes");
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].size_bytes, Some(1024));
    assert_eq!(attempts.codes(), ["Success"]);
}

#[tokio::test]
async fn a_page_far_larger_than_asked_for_fails_the_call() {
    let fake = fake().await;
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();
    let max = kvstore::PAGE_SIZE * 3;
    let ok = vec![ONE_BACKUP; max].join(",");
    let page = |items: &str| {
        format!(r#"{{"RequestId":"REQ-2","TotalCount":{max},"Backups":{{"Backup":[{items}]}}}}"#)
    };
    // Three times the page asked for still decodes…
    fake.push_faults(
        "r-1",
        [Fault::Raw {
            status: 200,
            body: page(&ok),
        }],
    );
    assert_eq!(
        describe(&client).await.expect("300 backups decode").len(),
        max
    );
    // …one more is refused, by name, and not retried.
    let over = format!("{ok},{ONE_BACKUP}");
    fake.push_faults(
        "r-1",
        [Fault::Raw {
            status: 200,
            body: page(&over),
        }],
    );
    let err = describe(&client).await.unwrap_err();
    let ApiError::Decode { detail, request_id } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(detail, "Backups.Backup has more than 300 items");
    assert!(
        request_id.as_deref().is_some_and(|id| !id.is_empty()),
        "{err:?}"
    );
    assert_eq!(attempts.codes(), ["Success", "decode"]);
}

#[tokio::test]
async fn an_answer_nested_deeper_than_any_fails_the_call() {
    let fake = fake().await;
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();
    let depth = 100_000;
    let body = format!(
        r#"{{"RequestId":"REQ-3","Padding":{}{},"Backups":{{"Backup":[{ONE_BACKUP}]}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    fake.push_faults("r-1", [Fault::Raw { status: 200, body }]);
    let err = describe(&client).await.unwrap_err();
    let ApiError::Decode { detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(detail, "body nests deeper than 64 levels");
    assert_eq!(attempts.codes(), ["decode"]);
}
