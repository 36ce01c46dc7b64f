//! Parse, validate, run; print errors with their causes; exit codes:
//! 0 stopped by a signal (or `--config.check` passed), 1 failed at run
//! time, 2 bad configuration.

use std::process::ExitCode;
use std::sync::Arc;

use aliyun_backup_exporter::accounts::AccountBuilder;
use aliyun_backup_exporter::app::{self, StartError};
use aliyun_backup_exporter::cli::Cli;
use aliyun_backup_exporter::config::{Config, Regions};
use aliyun_backup_exporter::redact::redact;
use aliyun_backup_exporter::{clock, logging, metrics};
use clap::Parser;

fn main() -> ExitCode {
    aliyun_backup_exporter::memory::tune_malloc();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line, like every other configuration error.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match configure(&cli) {
        Ok(config) if cli.config_check => check(&config),
        Ok(config) => serve(config),
        Err(e) => fail(&e),
    }
}

/// The flags and the config file's text, validated.
fn configure(cli: &Cli) -> Result<Config, StartError> {
    let text = match &cli.config_file {
        Some(path) if !path.trim().is_empty() => {
            Some(app::read_config_file(std::path::Path::new(path.trim()))?)
        }
        _ => None,
    };
    Ok(Config::from_cli(
        cli,
        |name| std::env::var(name).ok(),
        text.as_deref(),
    )?)
}

fn fail(e: &StartError) -> ExitCode {
    // A credential source's error can echo a secret it was given.
    eprintln!("error: {}", redact(&e.to_string()));
    ExitCode::from(e.exit_code())
}

/// `--config.check`: the config is valid and every account's credentials
/// can be found (environment and files only; nothing is sent).
fn check(config: &Config) -> ExitCode {
    if let Err(e) = app::load_web_config(config) {
        return fail(&e);
    }
    let Ok(live) = metrics::registry(false) else {
        return ExitCode::FAILURE;
    };
    let builder = AccountBuilder {
        credentials: config.credentials.clone(),
        env: Arc::new(|name| std::env::var(name).ok()),
        clock: clock::system(),
        api_observer: live.api,
        credentials_metrics: live.credentials,
        timeout: config.poll.timeout,
        retry: Default::default(),
    };
    let mut sources = Vec::new();
    for account in &config.accounts {
        match builder.source(account) {
            Ok(source) => sources.push(format!("{} ({})", account.name, source.name())),
            Err(error) => {
                return fail(&StartError::Credentials {
                    account: account.name.clone(),
                    error,
                })
            }
        }
    }
    let statics: usize = config
        .accounts
        .iter()
        .flat_map(|a| a.products.values())
        .map(|p| p.instance_ids.len())
        .sum();
    // `account: regions` for Redis (as before), `account/product: regions`
    // for the others.
    let discovering: Vec<String> = config
        .accounts
        .iter()
        .flat_map(|a| a.products.iter().map(move |(product, p)| (a, product, p)))
        .filter(|(_, _, p)| p.discovery.is_some())
        .map(|(a, product, p)| {
            let who = match product {
                aliyun_backup_exporter::products::Product::Redis => a.name.clone(),
                other => format!("{}/{other}", a.name),
            };
            match &p.regions {
                Regions::All => format!("{who}: all regions"),
                Regions::List(list) => format!("{who}: {}", list.join(",")),
            }
        })
        .collect();
    if config.demo {
        println!("configuration OK: demo mode");
    } else {
        println!(
            "configuration OK: accounts: {} [{}]; static instances: {statics}; discovery: [{}]; shard {}",
            config.accounts.len(),
            sources.join(", "),
            discovering.join("; "),
            match config.shard.index {
                aliyun_backup_exporter::config::ShardIndex::Fixed(i) => format!("{i} of {}", config.shard.count),
                aliyun_backup_exporter::config::ShardIndex::FromHostname =>
                    format!("from the host name, of {}", config.shard.count),
            }
        );
    }
    ExitCode::SUCCESS
}

fn serve(config: Config) -> ExitCode {
    logging::init(config.log_level, config.log_format);
    let runtime = match app::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // A setting: one plain line, as for every other setting.
        Err(e) if e.exit_code() == 2 => fail(&e),
        // At run time the log is where operators look: said once, there.
        Err(e) => {
            tracing::error!(error = %e, "exporter failed");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Completes on SIGTERM (Kubernetes, Docker) or SIGINT (Ctrl-C). A second
/// signal during the drain that follows exits at once, with code 1: an
/// operator who asks twice does not want to wait.
async fn shutdown_signal() {
    let mut signals = Signals::new();
    let first = signals.next().await;
    tracing::info!("{first} received, shutting down");
    tokio::spawn(async move {
        let second = signals.next().await;
        tracing::warn!("{second} received during the shutdown, exiting at once");
        eprintln!("error: {second} received during the shutdown, exiting at once");
        std::process::exit(1);
    });
}

/// SIGTERM and SIGINT, listened to from the start so that none is missed
/// between the first and the second.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                let received = match s {
                    Some(s) => s.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                _ = recv(&mut self.term) => "SIGTERM",
                _ = recv(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
