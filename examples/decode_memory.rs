//! Peak RSS of real DescribeBackups polls (the signed client, real HTTP)
//! against the fake API answering a padded 16 MiB page, for
//! `bench/decode_memory.sh` (issue 11).
//!
//!     cargo run --release --example decode_memory -- --kind zeros --polls 3
//!
//! The fake runs in a child process (this program started again with
//! `--serve`), so that the figures are the polling side's alone: resident
//! memory before the polls, its peak during them (`VmHWM`, reset first
//! through `/proc/self/clear_refs`) and what stays resident after. Linux
//! only. Prints one line of `key=value` fields.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aliyun_backup_exporter::aliyun::{
    CallLabels, ClientSettings, Credentials, NoObserver, RetryPolicy, RpcClient, StaticProvider,
};
use aliyun_backup_exporter::clock;
use aliyun_backup_exporter::fake_api::{FakeApi, FakeKey, Fault};
use aliyun_backup_exporter::products::kvstore::{self, Window};
use aliyun_backup_exporter::secret::Secret;
use chrono::Utc;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Peak RSS of DescribeBackups polls of a padded 16 MiB answer")]
struct Args {
    /// What fills the answer: zeros, objects ({}), strings (of 4 KiB of
    /// zeros), deep ([[[[…]]]] as deep as fits), items ({} as the items of
    /// the list), or small (a plain two-backup page, for comparison).
    #[arg(long, default_value = "zeros")]
    kind: String,
    /// Polls of the instance, one after the other.
    #[arg(long, default_value_t = 3)]
    polls: usize,
    /// Serve the answers (the child process); internal.
    #[arg(long, hide = true)]
    serve: bool,
}

const KEY_ID: &str = "bench-key";
const KEY_SECRET: &str = "bench-secret";
const INSTANCE: &str = "r-bench";

/// Just under the client's 16 MiB cap on an answer.
const BODY: usize = (16 << 20) - 4096;

const BACKUPS: &str = r#"{"Backup":[
  {"BackupId":1,"BackupStatus":"Success","BackupStartTime":"2026-11-20T05:00:00Z","BackupEndTime":"2026-11-20T05:03:00Z","BackupSize":1024,"BackupType":"FullBackup","BackupMode":"Automated","BackupMethod":"Physical"},
  {"BackupId":2,"BackupStatus":"Failed","BackupStartTime":"2026-11-21T05:00:00Z","BackupType":"FullBackup","BackupMode":"Automated","BackupMethod":"Physical"}
]}"#;

/// The answer of `kind`.
fn answer(kind: &str) -> Result<String, String> {
    let head = r#"{"RequestId":"BENCH","TotalCount":2,"#;
    let tail = format!(r#""Backups":{BACKUPS}}}"#);
    let fill = |fill: &str| {
        let mut body = String::with_capacity(BODY);
        body.push_str(head);
        body.push_str(r#""Padding":["#);
        body.push_str(fill);
        while body.len() + fill.len() + 1 < BODY - tail.len() - 2 {
            body.push(',');
            body.push_str(fill);
        }
        body.push_str("],");
        body.push_str(&tail);
        body
    };
    Ok(match kind {
        "zeros" => fill("0"),
        "objects" => fill("{}"),
        "strings" => fill(&format!("\"{}\"", "0".repeat(4096))),
        "deep" => {
            let depth = (BODY - head.len() - tail.len() - 16) / 2;
            format!(
                r#"{head}"Padding":{}{},{tail}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        }
        "items" => fill("{}")
            .replacen(r#""Padding":["#, r#""Backups":{"Backup":["#, 1)
            .replacen(&format!(r#"],{tail}"#), r#"]}}"#, 1),
        "small" => format!("{head}{tail}"),
        other => return Err(format!("unknown kind {other:?}")),
    })
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The child: serves `polls` copies of the answer, until its stdin closes.
async fn serve(kind: &str, polls: usize) -> Result<(), String> {
    let body = answer(kind)?;
    let key = FakeKey {
        id: KEY_ID.into(),
        secret: KEY_SECRET.into(),
        security_token: None,
        account: "main".into(),
    };
    let fake = FakeApi::start(vec![key]).await.map_err(|e| e.to_string())?;
    let faults = (0..polls).map(|_| Fault::Raw {
        status: 200,
        body: body.clone(),
    });
    fake.push_faults(INSTANCE, faults);
    println!("{} {}", fake.endpoint(), body.len());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Until the parent is done (or gone).
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn poll(kind: &str, polls: usize) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--serve", "--kind", kind, "--polls", &polls.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
    }
    let mut words = line.split_whitespace();
    let (Some(endpoint), Some(body_len)) = (words.next(), words.next()) else {
        return Err(format!("the fake did not start: {line:?}"));
    };
    let client = RpcClient::new(
        ClientSettings {
            endpoint: endpoint.to_string(),
            labels: CallLabels::default(),
            version: kvstore::API_VERSION,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        },
        Arc::new(StaticProvider::new(
            "bench",
            Credentials {
                access_key_id: KEY_ID.into(),
                access_key_secret: Secret::new(KEY_SECRET),
                security_token: None,
            },
        )),
        Arc::new(NoObserver),
        clock::system(),
    )
    .map_err(|e| e.to_string())?;
    let window = Window::ending_at(Utc::now(), Duration::from_secs(7 * 86400));

    let before = status_bytes("VmRSS");
    // Resets VmHWM to the current RSS (Linux 4.0 and later).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let mut outcome = String::new();
    for _ in 0..polls {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        outcome = match kvstore::describe_backups(&client, INSTANCE, &window, deadline).await {
            Ok(backups) => format!("ok:{}_backups", backups.len()),
            Err(e) => format!("error:{:?}", e.to_string().replace(' ', "_")),
        };
    }
    let peak = status_bytes("VmHWM");
    drop(client);
    let after = status_bytes("VmRSS");
    drop(child.stdin.take());
    let _ = child.wait();
    println!(
        "kind={kind} body_bytes={body_len} polls={polls} result={outcome} rss_before_mib={} peak_rss_mib={}{} rss_after_mib={}",
        mib(before),
        mib(peak),
        if reset { "" } else { "(since_start)" },
        mib(after),
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // As the exporter's main does.
    aliyun_backup_exporter::memory::tune_malloc();
    let args = Args::parse();
    let result = if args.serve {
        serve(&args.kind, args.polls).await
    } else {
        poll(&args.kind, args.polls).await
    };
    if let Err(e) = result {
        eprintln!("decode_memory: {e}");
        std::process::exit(1);
    }
}
