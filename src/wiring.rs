//! Turns settings into running parts: picks each backend (embedded or
//! production), starts the processes a command asks for, and stops them on
//! SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api::{ApiSettings, Application, Services, Store};
use calculator::{PriceBook, QuoteRequest};
use scheduler::broker::{AmqpBroker, MemoryBroker};
use scheduler::{BlobSettings, BlobStore, Broker, Topology, Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AnalyzeArgs, Cli, Command, LimitArgs, LogFormat, MeshArgs, ProfileCommand, ProfileFormat, ProfileShowArgs,
    QuoteArgs, ServiceArgs,
};
use crate::output;

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Quote(args) => quote(args),
        Command::Analyze(args) => analyze(args),
        Command::Serve(args) => run_services(args, Role::Serve),
        Command::Api(args) => run_services(args, Role::Api),
        Command::Worker(args) => run_services(args, Role::Worker),
        Command::Profile(ProfileCommand::Show(args)) => show_profile(&args),
    }
}

fn show_profile(args: &ProfileShowArgs) -> anyhow::Result<()> {
    init_tracing(LogFormat::Auto, "warn");
    let profile = match &args.profile {
        None => calculator::FdmProfile::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            let loaded = calculator::FdmProfile::from_ini(&text).with_context(|| format!("in `{}`", path.display()))?;
            if !loaded.ignored_keys.is_empty() {
                tracing::warn!(keys = loaded.ignored_keys.join(", "), "profile keys the estimate does not use");
            }
            loaded.profile
        }
    };
    match args.format {
        ProfileFormat::Ini => output::text(&profile.to_ini()),
    }
}

fn limits(args: &LimitArgs) -> mesh::Limits {
    mesh::Limits { max_bytes: args.max_model_bytes, max_triangles: args.max_triangles, max_layers: args.max_layers }
}

fn analysis_options(args: &MeshArgs) -> anyhow::Result<mesh::AnalysisOptions> {
    if let Some(h) = args.layer_height.filter(|h| !(h.is_finite() && *h > 0.0)) {
        bail!("--layer-height must be a positive number, got {h}");
    }
    if let Some(t) = args.weld_tolerance.filter(|t| !(t.is_finite() && *t > 0.0)) {
        bail!("--weld-tolerance must be a positive number, got {t}");
    }
    if !(0.0..=90.0).contains(&args.overhang_angle) {
        bail!("--overhang-angle must be between 0 and 90 degrees, got {}", args.overhang_angle);
    }
    Ok(mesh::AnalysisOptions {
        limits: limits(&args.limits),
        weld: args.weld_tolerance.map_or(mesh::Weld::Exact, mesh::Weld::Tolerance),
        units: args.units,
        overhang_angle_deg: args.overhang_angle,
        layer_height: args.layer_height,
        build_volume: args.build_volume,
    })
}

/// Analyses a file as it is read: a binary model is decoded and welded a
/// chunk at a time, so the file is never held in memory whole.
fn analyze_file(path: &std::path::Path, options: &mesh::AnalysisOptions) -> anyhow::Result<mesh::MeshReport> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot read `{}`", path.display()))?.len();
    if len > options.limits.max_bytes {
        bail!(
            "`{}` is {len} bytes, over the limit of {} bytes (--max-model-bytes)",
            path.display(),
            options.limits.max_bytes
        );
    }
    mesh::analyze_reader(file, len, options).with_context(|| format!("cannot analyse `{}`", path.display()))
}

fn quote(args: QuoteArgs) -> anyhow::Result<()> {
    init_tracing(LogFormat::Auto, "warn");
    let options = analysis_options(&args.mesh)?;
    let report = analyze_file(&args.file, &options)?;
    let request = QuoteRequest { material: args.material, quantity: args.quantity };
    let doc = scheduler::worker::price_report(&report, &request, &PriceBook::default())
        .map_err(|failure| anyhow::anyhow!(failure.message))
        .with_context(|| format!("cannot price `{}`", args.file.display()))?;
    output::quote(&doc, args.format)
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    init_tracing(LogFormat::Auto, "warn");
    let options = analysis_options(&args.mesh)?;
    let report = analyze_file(&args.file, &options)?;
    output::analysis(&scheduler::report::AnalysisDoc::from(&report), args.format)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Serve,
    Api,
    Worker,
}

fn run_services(args: ServiceArgs, role: Role) -> anyhow::Result<()> {
    init_tracing(args.log_format, "info");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run_services_async(args, role))
}

async fn run_services_async(args: ServiceArgs, role: Role) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let topology = Topology::with_prefix(&args.queue_prefix);
    let broker = match &args.amqp_url {
        Some(url) => Broker::Amqp(
            AmqpBroker::connect(url, &topology, Duration::from_secs(args.broker_connect_patience_s))
                .await
                .context("cannot connect to RabbitMQ (FARM_AMQP_URL)")?,
        ),
        None if role == Role::Serve => Broker::Memory(MemoryBroker::new()),
        None => bail!(
            "`farm {}` needs a broker shared with other processes: set FARM_AMQP_URL, \
             or run `farm serve` for the all-in-one embedded farm",
            if role == Role::Api { "api" } else { "worker" }
        ),
    };
    let blobs = BlobStore::open(&blob_settings(&args)?).await.context("cannot open the model store")?;
    let price_book = Arc::new(PriceBook::default());
    let limits = limits(&args.limits);

    let mut tasks = tokio::task::JoinSet::new();
    if role != Role::Api {
        let analysis = mesh::AnalysisOptions { limits, ..mesh::AnalysisOptions::default() };
        let settings = WorkerSettings { slots: args.worker_slots, analysis, ..WorkerSettings::default() };
        let worker = Worker::new(broker.clone(), blobs.clone(), topology.clone(), price_book.clone(), settings)?;
        let stop = shutdown.clone();
        tasks.spawn(async move { worker.run(stop).await.context("the worker stopped") });
    }
    if role == Role::Worker {
        let listen = args.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9091)));
        let stop = shutdown.clone();
        tasks.spawn(async move { api::serve_ops(listen, stop).await.context("the ops endpoint stopped") });
    } else {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create the data directory `{}`", args.data_dir.display()))?;
        let database_url = args.database_url.clone().unwrap_or_else(|| Store::sqlite_url(&args.data_dir));
        let store =
            Store::connect(&database_url, args.database_max_connections).await.context("cannot open the database")?;
        let settings = ApiSettings {
            listen: args.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            max_model_bytes: args.limits.max_model_bytes,
            mesh_limits: limits,
            ..ApiSettings::default()
        };
        let services = Services { store, broker, blobs, topology, price_book };
        let app = Application::build(settings, services).await?;
        let stop = shutdown.clone();
        tasks.spawn(async move { app.run_until_stopped(stop).await.context("the API server stopped") });
    }

    // Any part stopping stops the rest; the first error is the exit status.
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        shutdown.cancel();
        let result = joined.context("a task panicked").and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "stopping");
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
    }
    tracing::info!("stopped");
    outcome
}

fn blob_settings(args: &ServiceArgs) -> anyhow::Result<BlobSettings> {
    let Some(endpoint) = &args.s3_endpoint else {
        return Ok(BlobSettings::Local { dir: args.data_dir.clone() });
    };
    let (Some(access_key_id), Some(secret_access_key)) = (&args.s3_access_key_id, &args.s3_secret_access_key) else {
        bail!("FARM_S3_ENDPOINT is set, so AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be too");
    };
    Ok(BlobSettings::S3 {
        endpoint: endpoint.clone(),
        bucket: args.s3_bucket.clone(),
        region: args.s3_region.clone(),
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.clone(),
    })
}

/// Fires `shutdown` on SIGTERM (Kubernetes) or Ctrl-C (a person).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
    shutdown.cancel();
}

/// Logs go to stderr, so stdout carries only command output. `RUST_LOG`
/// overrides the level.
fn init_tracing(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
