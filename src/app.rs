//! Wires the parts together: accounts → target manager → poller →
//! snapshots → HTTP. `run` ends when the shutdown future completes, or with
//! an error when the poller or the target manager dies: an exporter whose
//! loop is gone must not go on serving frozen facts.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::accounts::{AccountBuilder, Env};
use crate::aliyun::credentials::{Credentials, CredentialsError};
use crate::aliyun::RetryPolicy;
use crate::clock::{self, Clock};
use crate::config::{
    bad, tag_label_name, AccountConfig, AccountCredentials, Config, ConfigError, DiscoveryConfig,
    ProductConfig, Regions, ShardIndex, TagLabel, DEFAULT_ACCOUNT,
};
use crate::fake_api::FakeApi;
use crate::poller::{self, PollerSettings};
use crate::products::Product;
use crate::secret::Secret;
use crate::server::{Endpoints, ReloadFn};
use crate::snapshot::Snapshot;
use crate::targets::manager::{self, BuildAccount, ManagerSettings, Reload};
use crate::targets::{shard, Shard, TargetSet};
use crate::web::Web;
use crate::{demo, http, metrics};

/// Why the exporter could not start (or stopped), with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A bad flag or config file: exit 2.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An account whose credentials cannot be had: exit 2.
    #[error("invalid configuration: account {account:?}: credentials: {error}")]
    Credentials {
        account: String,
        error: CredentialsError,
    },
    /// Anything else (a loop that died): exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::Credentials { .. } => 2,
            StartError::Runtime(_) => 1,
        }
    }
}

/// The exporter's async runtime: two workers (renders and compression run
/// on blocking threads of their own), timers and I/O.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Runs the exporter until `shutdown` completes; SIGHUP re-reads the
/// config file.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let env: Env = Arc::new(|name| std::env::var(name).ok());
    run_with(config, clock::system(), env, shutdown).await
}

/// `run` on the given clock and environment (tests).
pub async fn run_with(
    config: Config,
    clock: Arc<dyn Clock>,
    env: Env,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let mut running = start_with_env(config, clock, env).await?;
    #[cfg(unix)]
    let hangups = {
        let reload = running.reload.clone();
        tokio::spawn(reload_on_sighup(reload))
    };
    let outcome = tokio::select! {
        _ = shutdown => Ok(()),
        failure = running.failed() => Err(StartError::Runtime(failure)),
    };
    #[cfg(unix)]
    hangups.abort();
    running.stop().await;
    outcome
}

#[cfg(unix)]
async fn reload_on_sighup(reload: ReloadFn) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; use POST /-/reload with --web.enable-lifecycle");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading the config file");
        let _ = reload().await;
    }
}

/// A started exporter; `stop` shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    /// Re-reads the config file and applies it (as SIGHUP and `/-/reload` do).
    pub reload: ReloadFn,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    stop_server: oneshot::Sender<()>,
    stop_background: watch::Sender<bool>,
    server: JoinHandle<()>,
    poller: Option<JoinHandle<Result<(), String>>>,
    manager: Option<JoinHandle<Result<(), String>>>,
    /// Kept alive for as long as the exporter runs (demo mode).
    _fake_api: Option<Arc<FakeApi>>,
}

impl Running {
    /// Lets scrapes in flight finish, then stops the poller and discovery.
    pub async fn stop(mut self) {
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        let _ = self.stop_background.send(true);
        for handle in [self.poller.take(), self.manager.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.await;
        }
        tracing::info!("stopped");
    }

    /// Completes, with the reason, when the poller or the target manager
    /// ends before being asked to.
    pub async fn failed(&mut self) -> String {
        let (Some(poller), Some(manager)) = (self.poller.as_mut(), self.manager.as_mut()) else {
            return std::future::pending().await;
        };
        let (what, ended) = tokio::select! {
            ended = poller => { self.poller = None; ("the poll loop", ended) }
            ended = manager => { self.manager = None; ("discovery", ended) }
        };
        let reason = match ended {
            Ok(Ok(())) => "stopped".to_string(),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        tracing::error!(reason = %reason, "{what} ended; stopping the exporter");
        format!("{what} ended: {reason}")
    }
}

/// Binds the listener and starts discovery, the poller and the server,
/// with the process's environment.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    start_with_env(config, clock, Arc::new(|name| std::env::var(name).ok())).await
}

/// `start`, with the environment looked up through `env` (tests).
pub async fn start_with_env(
    config: Config,
    clock: Arc<dyn Clock>,
    env: Env,
) -> Result<Running, StartError> {
    let live = metrics::registry(true).map_err(|e| StartError::Runtime(e.to_string()))?;
    let shard = resolve_shard(&config, &*env)?;
    live.exporter.set_shard(shard.index, shard.count);
    live.exporter.set_poll_interval(config.poll.interval);
    // The port first: a busy one is a setting error before anything starts.
    let listener = TcpListener::bind(config.listen_address)
        .await
        .map_err(|e| {
            // A port in use or an address not on this host: the setting.
            StartError::Config(bad(
                "web.listen-address",
                format!("cannot listen on {}: {e}", config.listen_address),
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    let web = load_web_config(&config)?;

    let (accounts, fake_api) = if config.demo {
        let fake = demo::start_fake_api(clock.now())
            .await
            .map_err(|e| StartError::Runtime(format!("cannot start the demo's fake API: {e}")))?;
        tracing::info!(endpoint = %fake.endpoint(), "demo mode: discovering sample instances in two regions of the in-process fake API");
        let account = demo_account(&config, fake.endpoint());
        (vec![account], Some(Arc::new(fake)))
    } else {
        (config.accounts.clone(), None)
    };

    let builder = Arc::new(AccountBuilder {
        credentials: config.credentials.clone(),
        env,
        clock: clock.clone(),
        api_observer: live.api.clone(),
        credentials_metrics: live.credentials.clone(),
        timeout: config.poll.timeout,
        retry: RetryPolicy {
            // Retries never run into the next poll (or round).
            max_elapsed: RetryPolicy::default()
                .max_elapsed
                .min(config.poll.interval)
                .min(config.discovery_interval),
            ..RetryPolicy::default()
        },
    });
    let mut built = Vec::new();
    for account in accounts {
        let name = account.name.clone();
        let account = builder
            .build(account)
            .await
            .map_err(|error| StartError::Credentials {
                account: name,
                error,
            })?;
        built.push(account);
    }
    // The flags and the file (if any) were loaded: 1, as Prometheus says
    // of its own config; a failed reload turns it to 0.
    live.exporter.config_loaded(true, clock.now());

    let (stop_background, background_stopped) = watch::channel(false);
    let (publish_targets, targets) = watch::channel(Arc::new(TargetSet {
        shard,
        ..Default::default()
    }));
    let (reloads, reload_requests) = mpsc::channel::<Reload>(1);
    let build: BuildAccount = {
        let builder = builder.clone();
        Arc::new(move |config: AccountConfig| {
            let builder = builder.clone();
            Box::pin(async move { builder.build(config).await.map_err(|e| e.to_string()) })
        })
    };
    let manager = tokio::spawn(manager::run(
        built.clone(),
        build,
        ManagerSettings {
            discovery_interval: config.discovery_interval,
            poll_interval: config.poll.interval,
            shard,
        },
        clock.clone(),
        publish_targets,
        reload_requests,
        background_stopped.clone(),
    ));

    let (publish, snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let tag_labels = if config.demo && config.tag_labels.is_empty() {
        // The demo's instances carry these; show what the flag does.
        ["env", "team"]
            .into_iter()
            .map(|key| TagLabel {
                key: key.to_string(),
                label: tag_label_name(key),
            })
            .collect()
    } else {
        config.tag_labels.clone()
    };
    let exposition = Arc::new(metrics::Exposition::new(
        live.registry,
        snapshots.clone(),
        clock.clone(),
        tag_labels,
    ));
    let poller = tokio::spawn(poller::run(
        PollerSettings {
            interval: config.poll.interval,
            lookback: config.poll.lookback,
            concurrency: config.poll.concurrency,
            policy_every: config.discovery_interval,
            expectation: config.backup,
        },
        targets,
        clock.clone(),
        publish,
        background_stopped,
    ));

    let reload = reload_fn(
        config.clone(),
        reloads,
        live.exporter.clone(),
        clock.clone(),
    );
    if let Some(fake) = &fake_api {
        tokio::spawn(show_demo_metrics(
            snapshots.clone(),
            exposition.clone(),
            format!(
                "{}://",
                if web.as_ref().is_some_and(|w| w.tls()) {
                    "https"
                } else {
                    "http"
                }
            ),
            addr,
            config.telemetry_path.clone(),
        ));
        tokio::spawn(add_late_instance(fake.clone(), clock.clone()));
    }
    let endpoints = Arc::new(Endpoints {
        telemetry_path: config.telemetry_path.clone(),
        exposition,
        snapshots: snapshots.clone(),
        clock,
        reload: config.enable_lifecycle.then(|| reload.clone()),
    });
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let limits = http::Limits {
        max_connections: crate::connections::cap_for_open_files(config.max_connections),
        ..http::Limits::default()
    };
    if limits.max_connections < config.max_connections {
        tracing::info!(
            max_connections = limits.max_connections,
            "fewer connections than --web.max-connections: half the open-files limit"
        );
    }
    let handshake = web.as_ref().filter(|w| w.tls()).map(|web| {
        let web = web.clone();
        let handshake: http::Handshake =
            Arc::new(move |stream| Box::pin(web.clone().handshake(stream)));
        handshake
    });
    let server = tokio::spawn(http::serve_with(
        listener,
        limits,
        move |req| {
            let endpoints = endpoints.clone();
            let web = web.clone();
            async move {
                match web {
                    None => endpoints.handle(&req).await,
                    Some(web) => {
                        web.handle(req, |req| async move { endpoints.handle(&req).await })
                            .await
                    }
                }
            }
        },
        handshake,
        async move {
            let _ = server_stopped.await;
        },
    ));
    let names: Vec<&str> = built.iter().map(|a| &*a.name).collect();
    tracing::info!(
        address = %addr,
        accounts = ?names,
        shard = format!("{}/{}", shard.index, shard.count),
        poll_interval = ?config.poll.interval,
        discovery_interval = ?config.discovery_interval,
        "listening"
    );
    Ok(Running {
        addr,
        reload,
        snapshots,
        stop_server,
        stop_background,
        server,
        poller: Some(poller),
        manager: Some(manager),
        _fake_api: fake_api,
    })
}

/// `--web.config.file`, read and checked (certificates included); a bad
/// file is a setting error: one line, exit 2.
pub fn load_web_config(config: &Config) -> Result<Option<Arc<Web>>, StartError> {
    let Some(path) = &config.web_config_file else {
        return Ok(None);
    };
    let web = Web::load(path).map_err(|e| {
        StartError::Config(bad("web.config.file", format!("{}: {e}", path.display())))
    })?;
    tracing::info!(
        file = %path.display(),
        tls = web.tls(),
        basic_auth_users = web.users(),
        "web config loaded"
    );
    Ok(Some(web))
}

/// This replica's shard; the host name is read here, not in validation.
fn resolve_shard(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Shard, StartError> {
    let count = config.shard.count;
    let index = match config.shard.index {
        ShardIndex::Fixed(index) => index,
        ShardIndex::FromHostname => {
            let hostname = env("HOSTNAME")
                .filter(|h| !h.trim().is_empty())
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .unwrap_or_default();
            let hostname = hostname.trim();
            let ordinal = shard::ordinal_from_hostname(hostname).ok_or_else(|| {
                bad(
                    "shard.from-hostname",
                    format!("the host name {hostname:?} does not end in -<ordinal> like a StatefulSet pod's"),
                )
            })?;
            if ordinal >= count {
                return Err(bad(
                    "shard.from-hostname",
                    format!("ordinal {ordinal} of {hostname:?} is not below --shard.count={count}"),
                )
                .into());
            }
            ordinal
        }
    };
    Ok(Shard { index, count })
}

/// The demo's account: its fake API's key and endpoint; discovery of every
/// product in two regions, and one static Redis instance that has been
/// released.
fn demo_account(config: &Config, endpoint: String) -> AccountConfig {
    let regions = || Regions::List(demo::REGIONS.iter().map(|r| r.to_string()).collect());
    AccountConfig {
        name: DEFAULT_ACCOUNT.to_string(),
        credentials: AccountCredentials::Static(Credentials {
            access_key_id: demo::ACCESS_KEY_ID.into(),
            access_key_secret: Secret::new(demo::ACCESS_KEY_SECRET),
            security_token: None,
        }),
        role: None,
        rate_limit: config.file_defaults.rate_limit,
        endpoint: Some(endpoint),
        signature_version: config.file_defaults.signature_version,
        products: std::iter::once((
            Product::Redis,
            ProductConfig {
                regions: regions(),
                static_region: Some(demo::REGION_ID.to_string()),
                instance_ids: vec![demo::RELEASED.to_string()],
                discovery: Some(DiscoveryConfig::default()),
                backup_api: Default::default(),
            },
        ))
        .chain(demo::OTHER_PRODUCTS.into_iter().map(|product| {
            let config = ProductConfig {
                regions: regions(),
                static_region: None,
                instance_ids: Vec::new(),
                discovery: Some(DiscoveryConfig::default()),
                backup_api: Default::default(),
            };
            (product, config)
        }))
        .collect(),
    }
}

/// Reads the config file again, validates it with the same flags, and asks
/// the target manager to switch; on any error the running config stays and
/// `…_config_last_reload_successful` turns 0. One reload at a time.
fn reload_fn(
    config: Config,
    reloads: mpsc::Sender<Reload>,
    exporter: Arc<metrics::ExporterMetrics>,
    clock: Arc<dyn Clock>,
) -> ReloadFn {
    let config = Arc::new(config);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    Arc::new(move || {
        let (config, reloads, exporter, clock, lock) = (
            config.clone(),
            reloads.clone(),
            exporter.clone(),
            clock.clone(),
            lock.clone(),
        );
        Box::pin(async move {
            let _one_at_a_time = lock.lock().await;
            let result = reload(&config, &reloads).await;
            exporter.config_loaded(result.is_ok(), clock.now());
            match &result {
                Ok(summary) => tracing::info!(summary = %summary, "config reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "config reload failed; keeping the running config")
                }
            }
            result
        })
    })
}

async fn reload(config: &Config, reloads: &mpsc::Sender<Reload>) -> Result<String, String> {
    let Some(path) = &config.config_file else {
        return Err("no --config.file to reload".into());
    };
    // Off the async workers: a file on a slow or stuck file system (or a
    // named pipe) must not stall the server.
    let path = path.clone();
    let text = tokio::task::spawn_blocking(move || read_config_file(&path))
        .await
        .map_err(|e| format!("reading the config file failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let accounts = config.with_file(Some(&text)).map_err(|e| e.to_string())?;
    let (reply, answer) = oneshot::channel();
    reloads
        .send(Reload { accounts, reply })
        .await
        .map_err(|_| "discovery is not running".to_string())?;
    answer
        .await
        .map_err(|_| "discovery stopped during the reload".to_string())?
}

/// The config file's text (the only file read for the configuration).
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        bad(
            "config.file",
            format!("cannot read {}: {e}", PathBuf::from(path).display()),
        )
    })
}

/// Demo mode: an instance created a minute after the start, for discovery
/// to find.
async fn add_late_instance(fake: Arc<FakeApi>, clock: Arc<dyn Clock>) {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    fake.set_instance(demo::LATE, demo::late_instance(clock.now()));
    tracing::info!(
        instance_id = demo::LATE,
        "demo: a new instance was created; the next discovery round finds it"
    );
}

/// Demo mode: once every sample instance has been polled, print the
/// backup metrics being served, so that the first run shows real output.
async fn show_demo_metrics(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    exposition: Arc<metrics::Exposition>,
    scheme: String,
    addr: SocketAddr,
    path: String,
) {
    if snapshots.wait_for(|s| s.ready).await.is_err() {
        return;
    }
    let Ok(text) = exposition.render() else {
        return;
    };
    let host = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    let mut out = String::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("aliyun_backup_") && !l.contains("_bucket"))
    {
        out.push_str(line);
        out.push('\n');
    }
    println!(
        "{out}\nThe demo is serving these metrics (and more) at {scheme}{host}{path} and a status page at {scheme}{host}/.\nA new instance (r-demo-new) appears in about a minute, found by discovery.\nPress Ctrl-C to stop."
    );
}
