//! Turns settings into running parts: picks each backend (embedded or
//! production), starts the processes a command asks for, and stops them on
//! SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use api::{ApiSettings, Application, Services, Store};
use calculator::{Calibration, FdmProfile, PriceBook, PrintSettings, QuoteRequest, SlaProfile};
use scheduler::broker::{AmqpBroker, MemoryBroker};
use scheduler::{
    BlobSettings, BlobStore, Broker, FaultInjection, Lane, Pricing, RetryPolicy, Topology, Worker, WorkerSettings,
};
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AnalyzeArgs, AuditArgs, BenchArgs, BenchCommand, Cli, Command, DeadLettersCommand, Format, KeysCommand, LimitArgs,
    LogFormat, MeasureArgs, OrdersCommand, PriceBookCommand, PriceBookShowArgs, PricingArgs, ProfileCommand,
    ProfileFormat, ProfileShowArgs, QuoteArgs, ReadArgs, ServiceArgs, StackArgs, StackKind, StoreArgs,
};
use crate::{benching, output, planning, profiles, quoting, telemetry};

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Quote(args) => quote(args),
        Command::Analyze(args) => analyze(args),
        Command::Serve(args) => run_services(args, Role::Serve),
        Command::Api(args) => run_services(args, Role::Api),
        Command::Worker(args) => run_services(args, Role::Worker),
        Command::Profile(ProfileCommand::Show(args)) => show_profile(&args),
        Command::Profile(ProfileCommand::Import(args)) => profiles::import(&args),
        Command::Calibrate(args) => profiles::calibrate(&args),
        Command::PriceBook(PriceBookCommand::Show(args)) => show_price_book(&args),
        Command::Bench(args) => run_bench(args),
        Command::Keys(command) => keys(command),
        Command::Orders(OrdersCommand::Audit(args)) => audit_orders(args),
        Command::DeadLetters(command) => dead_letters(command),
        Command::Reprice(args) => reprice(args),
        Command::Plan(args) => planning::plan(&args),
    }
}

/// The database a `farm keys` or `farm orders` command works on: the same
/// one `farm serve` or `farm api` would open with these settings.
fn open_store(args: &StoreArgs) -> anyhow::Result<(tokio::runtime::Runtime, Store)> {
    let runtime = store_runtime()?;
    let store = runtime.block_on(connect_store(args))?;
    Ok((runtime, store))
}

fn store_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")
}

async fn connect_store(args: &StoreArgs) -> anyhow::Result<Store> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("cannot create the data directory `{}`", args.data_dir.display()))?;
            Store::sqlite_url(&args.data_dir)
        }
    };
    Store::connect(&url, 2).await.context("cannot open the database")
}

/// [`open_store`] for a farm that must exist already: a `--data-dir` with
/// no database, or a database with no farm in it, is refused before
/// anything is created, so a mistyped path is an error, not a report of an
/// empty farm.
fn open_existing_store(args: &StoreArgs) -> anyhow::Result<(tokio::runtime::Runtime, Store)> {
    let runtime = store_runtime()?;
    match &args.database_url {
        None => {
            let file = args.data_dir.join("farm.db");
            if !file.is_file() {
                bail!(
                    "no farm in `{}` (it has no farm.db): check --data-dir (FARM_DATA_DIR), or give --database-url",
                    args.data_dir.display()
                );
            }
        }
        Some(url) => {
            let holds = runtime.block_on(Store::holds_a_farm(url)).context("cannot open the database")?;
            if !holds {
                bail!("the database at --database-url (FARM_DATABASE_URL) holds no farm: check the URL");
            }
        }
    }
    let store = runtime.block_on(connect_store(args))?;
    Ok((runtime, store))
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let now = scheduler::messages::now_ms();
    let create = |store_args: &StoreArgs, kind: api::auth::KeyKind, name: &str| -> anyhow::Result<()> {
        if name.trim().is_empty() {
            bail!("--name must not be empty");
        }
        let (runtime, store) = open_store(store_args)?;
        let minted = api::auth::mint(kind, name.trim(), now);
        runtime.block_on(store.insert_key(&minted.row)).context("cannot store the key")?;
        output::text(&format!(
            "created the {} key `{}` for {}; the secret is shown once, keep it safe:\n{}\n",
            kind.as_str(),
            minted.row.key_id,
            minted.row.name,
            minted.token
        ))
    };
    match command {
        KeysCommand::CreateSeller(a) => create(&a.store, api::auth::KeyKind::Seller, &a.name),
        KeysCommand::CreateOperator(a) => create(&a.store, api::auth::KeyKind::Operator, &a.name),
        KeysCommand::CreateCrm(a) => create(&a.store, api::auth::KeyKind::Crm, &a.name),
        KeysCommand::List(a) => {
            let (runtime, store) = open_existing_store(&a)?;
            let keys = runtime.block_on(store.keys()).context("cannot list the keys")?;
            output::keys(&keys)
        }
        KeysCommand::Revoke(a) => {
            let (runtime, store) = open_existing_store(&a.store)?;
            if runtime.block_on(store.revoke_key(&a.key_id, now)).context("cannot revoke the key")? {
                output::text(&format!("revoked `{}`; it stops working within 10 seconds\n", a.key_id))
            } else {
                bail!("no key `{}`, or it was revoked already (`farm keys list` lists them)", a.key_id)
            }
        }
    }
}

fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    match command {
        DeadLettersCommand::List(args) => {
            let (runtime, store) = open_existing_store(&args.store)?;
            let letters = runtime
                .block_on(store.dead_letters(args.all, api::letters::MAX_LISTED))
                .context("cannot read the dead letters")?;
            match args.format {
                Format::Json => output::json(&letters),
                Format::Table => output::dead_letters(&letters),
            }
        }
        DeadLettersCommand::Show(args) => {
            let (runtime, store) = open_existing_store(&args.store)?;
            let letter = runtime.block_on(store.dead_letter(args.id)).context("cannot read the dead letter")?;
            output::json(&letter.ok_or_else(|| anyhow!("no dead letter has the id {}", args.id))?)
        }
        DeadLettersCommand::Replay(args) => {
            let (runtime, store) = open_existing_store(&args.store)?;
            let ids: Vec<i64> = match args.id {
                Some(id) => vec![id],
                None => runtime
                    .block_on(store.dead_letters(false, i64::MAX))
                    .context("cannot read the dead letters")?
                    .into_iter()
                    .filter(|l| l.job_id.is_some())
                    .map(|l| l.id)
                    .collect(),
            };
            // Replayed ones are reported as they go; refusals together at the
            // end, as the error.
            let mut refused = Vec::new();
            for id in ids {
                let replay = store.replay_dead_letter(id, scheduler::messages::now_ms());
                match runtime.block_on(replay).with_context(|| format!("cannot replay dead letter {id}"))? {
                    api::store::Replay::Queued { job_id } => {
                        output::text(&format!("dead letter {id}: queued job {job_id}\n"))?;
                    }
                    api::store::Replay::AlreadyReplayed { job_id } => output::text(&format!(
                        "dead letter {id}: replayed before, as job {}; nothing queued\n",
                        job_id.as_deref().unwrap_or("(marked by hand)")
                    ))?,
                    api::store::Replay::NotFound => refused.push(format!("{id}: no such dead letter")),
                    api::store::Replay::NoJob => {
                        refused.push(format!("{id}: names no job to price again; check its job by hand"));
                    }
                }
            }
            if !refused.is_empty() {
                bail!("{} dead letters could not be replayed ({})", refused.len(), refused.join("; "));
            }
            Ok(())
        }
    }
}

fn reprice(args: crate::cli::RepriceArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let book = match &args.price_book {
        None => PriceBook::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            PriceBook::from_toml(&text).with_context(|| format!("invalid price book `{}`", path.display()))?
        }
    };
    let terms = calculator::order::OrderTerms::of(&book);
    let current = book.version;
    if args.before_version != current {
        bail!(
            "the price book is version `{current}`, not `{}`: reprice under the book the farm prices with \
             (--price-book or FARM_PRICE_BOOK), naming its version",
            args.before_version
        );
    }
    if args.limit < 1 {
        bail!("--limit must be at least 1");
    }
    let (runtime, store) = open_existing_store(&args.store)?;
    let slow = api::orders::reprice::SlowLane { triangles: args.slow_lane_triangles, bytes: args.slow_lane_bytes };
    let now = scheduler::messages::now_ms();
    let repriced = runtime
        .block_on(api::orders::reprice::reprice_under(&store, &terms, slow, args.limit, "farm reprice", now))
        .context("cannot reprice the orders")?;
    for done in &repriced {
        let noun = if done.job_ids.len() == 1 { "job" } else { "jobs" };
        output::text(&format!("order {}: queued {noun} {}\n", done.order_id, done.job_ids.join(" ")))?;
    }
    output::text(&format!("{} orders repriced under price book `{current}`\n", repriced.len()))
}

fn audit_orders(args: AuditArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let now = scheduler::messages::now_ms();
    let ago = |flag: &str, text: &Option<String>, default: i64| -> anyhow::Result<i64> {
        let Some(text) = text else { return Ok(default) };
        let seconds = scheduler::capacity::spec::duration(text).map_err(|e| anyhow!("{flag}: {e}"))?;
        Ok(now - (seconds * 1000.0).round() as i64)
    };
    let (since_ms, until_ms) = (ago("--since", &args.since, 0)?, ago("--until", &args.until, now + 1)?);
    if since_ms >= until_ms {
        bail!("--since must be further back than --until");
    }
    let (runtime, store) = open_existing_store(&args.store)?;
    let topology = Topology::with_prefix(&args.queue_prefix);
    let audit = api::orders::audit(&store, &topology.orders_incoming, since_ms, until_ms);
    let stats = runtime.block_on(audit).context("cannot read the orders")?;
    match args.format {
        Format::Json => output::json(&stats),
        Format::Table => output::audit(&stats),
    }?;
    let unaccounted = stats["unaccounted"].as_i64().unwrap_or(0);
    if unaccounted != 0 {
        bail!("{unaccounted} orders are unaccounted for");
    }
    let stranded = stats["pricing_with_ended_job"].as_i64().unwrap_or(0);
    if stranded != 0 {
        bail!("{stranded} orders are still PRICING although their pricing job has ended");
    }
    Ok(())
}

/// `farm plan`: the model mix split into lanes, each lane planned and
/// simulated (scheduler::capacity), printed as a table or JSON.
fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let Some(command) = args.command else { return benching::slow_models(&args.run) };
    let binary = std::env::current_exe().context("cannot find the farm binary")?;
    let scratch = tempfile_dir()?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let stack = |args: &StackArgs| match args.stack {
        StackKind::Embedded => bench::Stack::Embedded,
        StackKind::Services => bench::Stack::Services { fast_workers: args.workers, slow_workers: args.workers },
    };
    match command {
        BenchCommand::Lanes(args) => {
            if !scheduler::faults::ENABLED {
                bail!(
                    "`bench lanes` injects work into its slow jobs, which this build cannot do: \
                     build the farm with `cargo build --release --features fault-injection`"
                );
            }
            let settings = bench::scenarios::LaneIsolation {
                binary,
                stack: stack(&args.stack),
                fast_jobs: args.fast_jobs,
                fast_rate: args.fast_rate,
                slow_jobs: args.slow_jobs,
                slow_job_extra: seconds("--slow-job-extra-s", args.slow_job_extra_s)?,
                slots: args.slots.max(1),
                scratch: scratch.path().to_path_buf(),
            };
            let phases = runtime.block_on(bench::scenarios::lane_isolation(&settings))?;
            match args.stack.format {
                Format::Json => output::json(&phases),
                Format::Table => output::text(&bench::scenarios::lanes_markdown(&settings.stack, &phases)),
            }
        }
        BenchCommand::Generate(args) => benching::generate(&args),
        BenchCommand::Orders(args) => {
            let settings = bench::orders::OrdersBench {
                binary,
                stack: match args.stack {
                    StackKind::Embedded => bench::Stack::Embedded,
                    // One worker prices the orders of the write-load phase.
                    StackKind::Services => bench::Stack::Services { fast_workers: 1, slow_workers: 0 },
                },
                orders: args.orders,
                rate: args.rate,
                duration: seconds("--seconds", args.seconds)?,
                limit: args.limit,
                takers: args.takers,
                write_rate: args.write_rate,
                ladder: args.ladder.clone(),
                worker_niceness: args.worker_nice,
                scratch: scratch.path().to_path_buf(),
            };
            let report = runtime.block_on(bench::orders::run(&settings))?;
            match args.format {
                Format::Json => output::json(&report),
                Format::Table => output::text(&bench::orders::markdown(&report)),
            }
        }
        BenchCommand::Overhead(args) => {
            let stack = stack(&args.stack);
            let measured =
                runtime.block_on(bench::scenarios::overhead(binary, stack, args.jobs, scratch.path().into()))?;
            match args.stack.format {
                Format::Json => output::json(&measured),
                Format::Table => output::text(&bench::scenarios::overhead_markdown(&stack, &measured)),
            }
        }
    }
}

/// A scratch directory removed when dropped.
fn tempfile_dir() -> anyhow::Result<bench::ScratchDir> {
    bench::ScratchDir::new().context("cannot create a scratch directory")
}

fn show_price_book(args: &PriceBookShowArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    match &args.price_book {
        None => output::text(calculator::BUILTIN_PRICE_BOOK),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            PriceBook::from_toml(&text).with_context(|| format!("invalid price book `{}`", path.display()))?;
            output::text(&text)
        }
    }
}

fn show_profile(args: &ProfileShowArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let profile = match &args.profile {
        None => FdmProfile::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            if SlaProfile::is_sla(&text) {
                let loaded = SlaProfile::from_ini(&text).with_context(|| format!("in `{}`", path.display()))?;
                return output::text(&format!("{:#?}\n", loaded.profile));
            }
            let loaded = FdmProfile::from_ini(&text).with_context(|| format!("in `{}`", path.display()))?;
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
    mesh::Limits {
        max_bytes: args.max_model_bytes,
        max_triangles: args.max_triangles,
        max_layers: args.max_layers,
        max_layer_crossings: args.max_layer_crossings,
        max_ray_crossings: args.max_ray_crossings,
        max_shells: args.max_shells,
        memory_budget: args.memory_budget_bytes,
        max_vertices: args.max_vertices,
        max_zip_entries: args.max_zip_entries,
        max_unzipped_bytes: args.max_unzipped_bytes,
        max_zip_ratio: args.max_zip_ratio,
        max_polygon_vertices: args.max_polygon_vertices,
        max_line_bytes: args.max_line_bytes,
    }
}

/// How to read a model, from the flags every command shares.
pub(crate) fn read_options(args: &ReadArgs) -> anyhow::Result<mesh::AnalysisOptions> {
    if let Some(t) = args.weld_tolerance.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        bail!("--weld-tolerance must be 0 or a positive number, got {t}");
    }
    let weld = match args.weld_tolerance {
        None => mesh::Weld::Nearby,
        Some(0.0) => mesh::Weld::Exact,
        Some(pitch) => mesh::Weld::Tolerance(pitch),
    };
    Ok(mesh::AnalysisOptions {
        limits: limits(&args.limits),
        weld,
        units: args.units,
        ..mesh::AnalysisOptions::default()
    })
}

fn analysis_options(read: &ReadArgs, measure: &MeasureArgs) -> anyhow::Result<mesh::AnalysisOptions> {
    if let Some(h) = measure.layer_height.filter(|h| !(h.is_finite() && *h > 0.0)) {
        bail!("--layer-height must be a positive number, got {h}");
    }
    if !(0.0..=90.0).contains(&measure.overhang_angle) {
        bail!("--overhang-angle must be between 0 and 90 degrees, got {}", measure.overhang_angle);
    }
    Ok(mesh::AnalysisOptions {
        overhang_angle_deg: measure.overhang_angle,
        layering: measure.layer_height.map(mesh::Layering::uniform),
        build_volumes: measure.build_volume.into_iter().collect(),
        ..read_options(read)?
    })
}

/// Loads and validates the price book, the print profiles and the
/// calibration, once, before any model is read: a typo in any fails fast
/// with the file and line. `--profile` may name an SLA preset too (a flat
/// preset with `printer_technology = SLA`); it is then the SLA profile.
pub(crate) fn load_pricing(args: &PricingArgs) -> anyhow::Result<Pricing> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
    };
    let book = match &args.price_book {
        None => PriceBook::builtin(),
        Some(path) => {
            PriceBook::from_toml(&read(path)?).with_context(|| format!("invalid price book `{}`", path.display()))?
        }
    };
    let mut settings = PrintSettings::default();
    let sla = |path: &std::path::Path, text: &str| {
        SlaProfile::from_ini(text).with_context(|| format!("invalid SLA profile `{}`", path.display()))
    };
    if let Some(path) = &args.profile {
        let text = read(path)?;
        if SlaProfile::is_sla(&text) {
            settings.sla = Some(sla(path, &text)?);
        } else {
            settings.fdm =
                FdmProfile::from_ini(&text).with_context(|| format!("invalid profile `{}`", path.display()))?;
        }
    }
    if let Some(path) = &args.sla_profile {
        let text = read(path)?;
        if !SlaProfile::is_sla(&text) {
            bail!("`{}` is not an SLA preset (it has no `printer_technology = SLA`)", path.display());
        }
        settings.sla = Some(sla(path, &text)?);
    }
    if let Some(path) = &args.calibration {
        settings.calibration = Some(
            Calibration::from_toml(&read(path)?)
                .with_context(|| format!("invalid calibration `{}`", path.display()))?,
        );
    }
    Ok(Pricing { book, settings })
}

/// A technology the loaded profiles do not cover, for `farm quote`: an SLA
/// preset given as `--profile` with an FDM material would silently price
/// with PrusaSlicer's FDM defaults.
fn check_profile_matches(args: &PricingArgs, pricing: &Pricing, request: &QuoteRequest) -> anyhow::Result<()> {
    let material = pricing.book.material(&request.material).map_err(|e| anyhow!(e))?;
    if args.profile.is_some()
        && args.sla_profile.is_none()
        && pricing.settings.sla.is_some()
        && material.technology == calculator::Technology::Fdm
    {
        bail!(
            "--profile is an SLA preset, but `{}` is an FDM material; quote a resin (`farm price-book show` lists \
             them) or give an FDM profile",
            material.name
        );
    }
    Ok(())
}

/// Analyses a file as it is read: a binary model is decoded and welded a
/// chunk at a time, so the file is never held in memory whole.
pub(crate) fn analyze_file(
    path: &std::path::Path,
    options: &mesh::AnalysisOptions,
) -> anyhow::Result<mesh::MeshReport> {
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
    telemetry::init_logs(LogFormat::Auto, "warn");
    let pricing = load_pricing(&args.pricing)?;
    let request = QuoteRequest { material: args.material, quantity: args.quantity, colour: args.colour };
    check_profile_matches(&args.pricing, &pricing, &request)?;
    let options = pricing.analysis_options(&request, read_options(&args.read)?).map_err(|f| anyhow!(f.message))?;
    let models = quoting::collect_models(&args.paths)?;
    let price = |path: &std::path::Path| {
        let mut report = analyze_file(path, &options)?;
        // A part that fits only on another side is estimated standing that way.
        if let Some(up_axis) = pricing.turn_needed(&report, &request) {
            report = analyze_file(path, &mesh::AnalysisOptions { up_axis, ..options.clone() })?;
        }
        pricing
            .price(&report, &request)
            .map_err(|failure| anyhow!(failure.message))
            .with_context(|| format!("cannot price `{}`", path.display()))
    };
    // One file named on its own prints one quote, as it always has.
    if let [only] = args.paths.as_slice()
        && models.len() == 1
        && models[0] == *only
    {
        return output::quote(&price(only)?, args.format);
    }
    let results = quoting::price_all(&models, price);
    let failed = results.iter().filter(|r| r.is_err()).count();
    output::quotes(&models, &results, args.format)?;
    if failed > 0 {
        bail!("{failed} of {} models could not be priced", models.len());
    }
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let options = analysis_options(&args.read, &args.measure)?;
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
    let service = match role {
        Role::Serve => "farm-serve".to_string(),
        Role::Api => "farm-api".to_string(),
        Role::Worker => format!("farm-worker-{}", args.lane),
    };
    let telemetry = telemetry::init(args.log_format, "info", Some(&args.tracing), &service)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let outcome = runtime.block_on(run_services_async(args, role));
    // The runtime goes first: the exporter's last flush blocks.
    drop(runtime);
    drop(telemetry);
    outcome
}

async fn run_services_async(args: ServiceArgs, role: Role) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    // The metrics recorder first: what is recorded before it exists is lost
    // (the price book a worker announces when it is built, for one).
    api::telemetry::metrics_handle();
    // Checked before anything connects, Redis or not: a bad value is an
    // error now, not when FARM_REDIS_URL is set one day.
    let cache_timeouts = cache_timeouts(&args)?;

    let topology =
        Topology { delivery_limit: args.jobs.delivery_limit.max(1), ..Topology::with_prefix(&args.queue_prefix) };
    let broker = match &args.amqp_url {
        Some(url) => Broker::Amqp({
            tracing::info!(queue_prefix = %args.queue_prefix, "connecting to RabbitMQ");
            AmqpBroker::connect(url, &topology, Duration::from_secs(args.broker_connect_patience_s))
                .await
                .context("cannot connect to RabbitMQ (FARM_AMQP_URL)")?
        }),
        None if role == Role::Serve => Broker::Memory(MemoryBroker::with_topology(&topology)),
        None => bail!(
            "`farm {}` needs a broker shared with other processes: set FARM_AMQP_URL, \
             or run `farm serve` for the all-in-one embedded farm",
            if role == Role::Api { "api" } else { "worker" }
        ),
    };
    tracing::info!("opening the model store");
    let blobs = BlobStore::open(&blob_settings(&args)?).await.context("cannot open the model store")?;
    let pricing = Arc::new(load_pricing(&args.pricing)?);
    tracing::info!(
        price_book = %pricing.book.version,
        ignored_profile_keys = pricing.settings.fdm.ignored_keys.join(", "),
        sla_profile = pricing.settings.sla.is_some(),
        calibrated = pricing.settings.calibration.is_some(),
        "pricing loaded"
    );
    let limits = limits(&args.limits);

    let mut tasks = tokio::task::JoinSet::new();
    let lanes: &[Lane] = match role {
        Role::Api => &[],
        Role::Worker => std::slice::from_ref(&args.lane),
        Role::Serve => &Lane::ALL,
    };
    for &lane in lanes {
        let settings = worker_settings(&args, lane, limits, broker.is_durable())?;
        let worker = Worker::new(broker.clone(), blobs.clone(), topology.clone(), pricing.clone(), settings)?;
        let stop = shutdown.clone();
        tasks.spawn(async move { worker.run(stop).await.context("the worker stopped") });
    }
    // The worker's ops endpoint outlives its drain, which may take as long as
    // the lane's deadline: probes must keep passing and Prometheus keep
    // scraping the jobs still running. `/readyz` says 503 from the moment the
    // drain starts. It stops once it is the last task left.
    let ops_stop = CancellationToken::new();
    if role == Role::Worker {
        let listen = args.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9091)));
        let (draining, stop) = (shutdown.clone(), ops_stop.clone());
        let broker = broker.clone();
        tasks.spawn(
            async move { api::serve_ops(listen, broker, draining, stop).await.context("the ops endpoint stopped") },
        );
    } else {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create the data directory `{}`", args.data_dir.display()))?;
        let database_url = args.database_url.clone().unwrap_or_else(|| Store::sqlite_url(&args.data_dir));
        let store =
            Store::connect(&database_url, args.database_max_connections).await.context("cannot open the database")?;
        // A spool that cannot be written would fail every upload: fail now.
        let spool_dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&spool_dir)
            .and_then(|()| tempfile::tempfile_in(&spool_dir).map(drop))
            .with_context(|| format!("cannot write upload files in `{}` (FARM_SPOOL_DIR)", spool_dir.display()))?;
        let settings = ApiSettings {
            listen: args.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            max_model_bytes: args.limits.max_model_bytes,
            spool_dir,
            mesh_limits: limits,
            slow_lane_triangles: args.jobs.slow_lane_triangles,
            slow_lane_bytes: args.jobs.slow_lane_bytes,
            heartbeat_stale_after: seconds("--heartbeat-stale-s", args.jobs.heartbeat_stale_s)?,
            operator_cache: args.operator_cache,
            max_order_parts: args.max_order_parts,
            request_timeout: seconds("--request-timeout-s", args.request_timeout_s)?,
            connections: api::serve::ConnectionLimits {
                max_connections: args.max_connections,
                header_read_timeout: seconds("--header-read-timeout-s", args.header_read_timeout_s)?,
                ..api::serve::ConnectionLimits::default()
            },
            quotas: api::quota::Quotas {
                uploads_per_hour: args.quota_uploads_per_hour,
                upload_bytes_per_day: args.quota_upload_bytes_per_day,
                jobs_in_flight: args.quota_jobs_in_flight,
                concurrent_uploads: args.max_concurrent_uploads,
            },
            web: api::web::WebSettings {
                session_ttl: seconds("--session-ttl-h", args.web.session_ttl_h * 3600.0)?,
                max_sessions_per_key: args.web.max_sessions_per_key.max(1),
                secure_cookies: args.web.secure_cookies,
                max_event_streams: args.web.max_event_streams,
                max_event_streams_per_key: args.web.max_event_streams_per_key.max(1),
                max_sign_ins_per_minute: args.web.max_sign_ins_per_minute.max(1),
                event_recheck: seconds("--event-recheck-s", args.web.event_recheck_s)?,
                max_filter_scan: args.web.max_filter_scan.max(1),
                // Order changes reach the consoles on every replica through
                // the same Redis as the list cache.
                redis_url: args.redis_url.clone(),
                channel: format!("{}:orders:changes", args.queue_prefix),
                ..api::web::WebSettings::default()
            },
            webhooks: webhook_settings(&args.webhooks)?,
            events: api::events::EventSettings {
                poll: seconds("--event-poll-s", args.webhooks.event_poll_s)?,
                retention: seconds("--event-retention-days", args.webhooks.event_retention_days * 86_400.0)?,
                ..api::events::EventSettings::default()
            },
            ..ApiSettings::default()
        };
        let cache = match &args.redis_url {
            Some(url) => api::orders::cache::OrderCache::redis(url, &args.queue_prefix, cache_timeouts)
                .await
                .context("cannot connect to Redis (FARM_REDIS_URL)")?,
            None => api::orders::cache::OrderCache::memory(),
        };
        let services = Services { store, broker, blobs, topology, pricing, cache };
        let app = Application::build(settings, services).await?;
        let stop = shutdown.clone();
        tasks.spawn(async move { app.run_until_stopped(stop).await.context("the API server stopped") });
    }

    // Any part stopping stops the rest; the first error is the exit status.
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        shutdown.cancel();
        if tasks.len() <= 1 {
            ops_stop.cancel();
        }
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

fn cache_timeouts(args: &crate::cli::ServiceArgs) -> anyhow::Result<api::orders::cache::CacheTimeouts> {
    Ok(api::orders::cache::CacheTimeouts {
        read: seconds("--operator-cache-read-timeout-s", args.operator_cache_read_timeout_s)?,
        write: seconds("--operator-cache-write-timeout-s", args.operator_cache_write_timeout_s)?,
        pings_to_outage: args.operator_cache_pings_to_outage,
    })
}

/// A positive, finite number of seconds from a flag.
pub(crate) fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    match Duration::try_from_secs_f64(value) {
        // A duration so long it overflows would panic further on: refuse it.
        Ok(duration) if value > 0.0 && duration.as_secs() < 100 * 365 * 86_400 => Ok(duration),
        _ => bail!("{flag} must be a positive number of seconds under a century, got {value}"),
    }
}

fn webhook_settings(args: &crate::cli::WebhookArgs) -> anyhow::Result<api::webhooks::WebhookSettings> {
    Ok(api::webhooks::WebhookSettings {
        allow_private: args.webhook_allow_private,
        timeout: seconds("--webhook-timeout-s", args.webhook_timeout_s)?,
        first_backoff: seconds("--webhook-first-backoff-s", args.webhook_first_backoff_s)?,
        max_backoff: seconds("--webhook-max-backoff-s", args.webhook_max_backoff_s)?,
        retry_for: seconds("--webhook-retry-for-h", args.webhook_retry_for_h * 3600.0)?,
        concurrency: args.webhook_concurrency.max(1),
        per_webhook_concurrency: args.webhook_per_target_concurrency.max(1),
        per_key_concurrency: args.webhook_per_key_concurrency.max(1),
        max_per_key: args.max_webhooks_per_key.max(0),
        ..api::webhooks::WebhookSettings::default()
    })
}

fn worker_settings(
    args: &ServiceArgs,
    lane: Lane,
    limits: mesh::Limits,
    durable: bool,
) -> anyhow::Result<WorkerSettings> {
    let jobs = &args.jobs;
    let deadline = match lane {
        Lane::Fast => seconds("--fast-deadline-s", jobs.fast_deadline_s)?,
        Lane::Slow => seconds("--slow-deadline-s", jobs.slow_deadline_s)?,
    };
    let grace = match jobs.shutdown_grace_s {
        Some(s) => seconds("--shutdown-grace-s", s)?,
        None => deadline,
    };
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "worker".into());
    Ok(WorkerSettings {
        lane,
        slots: args.worker_slots.max(1),
        analysis: mesh::AnalysisOptions { limits, ..mesh::AnalysisOptions::default() },
        deadline,
        grace,
        heartbeat: seconds("--heartbeat-s", jobs.heartbeat_s)?,
        claim_recheck: seconds("--claim-recheck-s", jobs.claim_recheck_s)?,
        claim_patience: seconds("--claim-patience-s", jobs.claim_patience_s)?,
        retry: RetryPolicy { attempts: jobs.retry_attempts.max(1), ..RetryPolicy::default() },
        // The in-process queue has no consumer timeout.
        broker_consumer_timeout: durable
            .then(|| seconds("--broker-consumer-timeout-s", jobs.broker_consumer_timeout_s))
            .transpose()?,
        name: format!("{host}-{}-{lane}", std::process::id()),
        // Only a build with the `fault-injection` feature reads these.
        faults: FaultInjection::from_env(),
        ..WorkerSettings::default()
    })
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
