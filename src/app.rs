//! Wires the parts together: config → client → poller → snapshots → HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::aliyun::credentials::chain::{self, Source};
use crate::aliyun::credentials::CredentialsError;
use crate::aliyun::{ClientSettings, Credentials, RetryPolicy, RpcClient};
use crate::clock::{self, Clock};
use crate::config::{Config, Target};
use crate::poller::{self, PollerSettings};
use crate::products::kvstore;
use crate::secret::Secret;
use crate::server::Endpoints;
use crate::snapshot::Snapshot;
use crate::{demo, http, metrics};

/// Runs the exporter until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let running = start(config, clock::system()).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// A started exporter; `stop` shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    stop_server: tokio::sync::oneshot::Sender<()>,
    stop_poller: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
    /// Kept alive for as long as the exporter runs (demo mode).
    _fake_api: Option<crate::fake_api::FakeApi>,
}

impl Running {
    /// Lets scrapes in flight finish, then stops the poller.
    pub async fn stop(self) {
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        let _ = self.stop_poller.send(true);
        let _ = self.poller.await;
        tracing::info!("stopped");
    }
}

/// Binds the listener and starts the poller and the server.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let (endpoint, source, fake_api) = match &config.target {
        Target::Api {
            endpoint,
            credentials,
        } => (endpoint.clone(), credentials.clone(), None),
        Target::Demo => {
            let fake = demo::start_fake_api(clock.now())
                .await
                .context("cannot start the demo's fake API")?;
            let credentials = Credentials {
                access_key_id: demo::ACCESS_KEY_ID.into(),
                access_key_secret: Secret::new(demo::ACCESS_KEY_SECRET),
                security_token: None,
            };
            tracing::info!(endpoint = %fake.endpoint(), "demo mode: serving sample instances from the in-process fake API");
            (
                fake.endpoint(),
                Source::Static {
                    name: "demo",
                    credentials,
                },
                Some(fake),
            )
        }
    };

    let live = metrics::registry(true)?;
    let credentials = chain::build(&source, clock.clone(), live.credentials.clone())?;
    if let Source::Ecs {
        settings,
        probe: true,
    } = &source
    {
        // Nothing else was configured: make sure this is an ECS instance
        // with a role before promising to poll anything.
        if let Err(e) = credentials.credentials().await {
            return Err(CredentialsError {
                source_name: "chain",
                message: format!(
                    "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, \
                     or the RRSA variables, or a profile file; the ECS instance RAM role at {} is not available either ({e})",
                    settings.metadata_endpoint
                ),
            }
            .into());
        }
    }

    let listener = TcpListener::bind(config.listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--web.listen-address)",
                config.listen_address
            )
        })?;
    let addr = listener.local_addr()?;

    // Starts with the watched list, so that /readyz is 503 from the start.
    let (publish, snapshots) = watch::channel(Arc::new(Snapshot {
        product: "redis",
        region_id: config.region_id.clone(),
        watched: Arc::new(config.instance_ids.clone()),
        ..Default::default()
    }));
    let exposition = Arc::new(metrics::Exposition {
        registry: live.registry,
        snapshots: snapshots.clone(),
        clock: clock.clone(),
    });
    let client = RpcClient::new(
        ClientSettings {
            endpoint: endpoint.clone(),
            version: kvstore::API_VERSION,
            timeout: config.poll_timeout,
            retry: RetryPolicy {
                // Retries never run into the next poll of the instance.
                max_elapsed: RetryPolicy::default().max_elapsed.min(config.poll_interval),
                ..RetryPolicy::default()
            },
        },
        credentials,
        live.api,
        clock.clone(),
    )?;

    let (stop_poller, poller_stopped) = watch::channel(false);
    let settings = PollerSettings {
        product: "redis",
        region_id: config.region_id.clone(),
        instance_ids: config.instance_ids.clone(),
        interval: config.poll_interval,
        lookback: config.poll_lookback,
        concurrency: config.poll_concurrency,
    };
    let poller = tokio::spawn(poller::run(
        settings,
        Arc::new(client),
        clock.clone(),
        publish,
        poller_stopped,
    ));

    if fake_api.is_some() {
        tokio::spawn(show_demo_metrics(
            snapshots.clone(),
            exposition.clone(),
            addr,
            config.telemetry_path.clone(),
        ));
    }
    let endpoints = Arc::new(Endpoints {
        telemetry_path: config.telemetry_path.clone(),
        exposition,
        snapshots,
        clock,
    });
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        move |req| {
            let endpoints = endpoints.clone();
            async move { endpoints.handle(&req) }
        },
        async move {
            let _ = server_stopped.await;
        },
    ));
    tracing::info!(
        address = %addr,
        region_id = %config.region_id,
        endpoint = %endpoint,
        credentials = source.name(),
        instances = config.instance_ids.len(),
        interval = ?config.poll_interval,
        "listening"
    );
    Ok(Running {
        addr,
        stop_server,
        stop_poller,
        server,
        poller,
        _fake_api: fake_api,
    })
}

/// Demo mode: once every sample instance has been polled, print the
/// backup metrics being served, so that the first run shows real output.
async fn show_demo_metrics(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    exposition: Arc<metrics::Exposition>,
    addr: SocketAddr,
    path: String,
) {
    if snapshots
        .wait_for(|s| !s.watched.is_empty() && s.ready())
        .await
        .is_err()
    {
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
        "{out}\nThe demo is serving these metrics (and more) at http://{host}{path} and a status page at http://{host}/.\nPress Ctrl-C to stop."
    );
}
