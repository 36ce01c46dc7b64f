//! Log set-up: logfmt (the Prometheus ecosystem's default) or JSON, to
//! stderr, every line cut of the secrets the process knows (`redact`).

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;
use crate::redact::RedactingStderr;

pub fn init(level: tracing::Level, format: LogFormat) {
    // Only our own crate logs at the chosen level; the HTTP libraries stay at
    // warnings, since at debug they would log request lines (signed URLs).
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::WARN.min(LevelFilter::from_level(level)))
        .with_target("aliyun_backup_exporter", LevelFilter::from_level(level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(RedactingStderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(RedactingStderr),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging already set up: {e}");
    }
}
