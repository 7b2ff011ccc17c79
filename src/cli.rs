//! Command-line arguments. Every service setting can also come from a
//! `FARM_*` environment variable; a flag wins over the variable, and the
//! variable over the default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "farm", version, about = "Pricing farm and MES order API for 3D printing")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Analyse and price an STL file locally, with no services.
    Quote(QuoteArgs),
    /// Analyse an STL file locally: size, volume, area, topology.
    Analyze(AnalyzeArgs),
    /// Run the whole farm in one process: API, relay, result consumer and a
    /// worker. With no configuration it needs no services at all.
    Serve(ServiceArgs),
    /// Run the API, the outbox relay and the result consumer.
    Api(ServiceArgs),
    /// Run a pricing worker.
    Worker(ServiceArgs),
    /// Print settings: show the FDM profile the estimate uses, or import a
    /// printer's preset from a PrusaSlicer vendor bundle.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Fit the estimate to what a shop's printers really did: a small
    /// correction per feature class, cross-validated, written to a file
    /// quotes then use (`--calibration`).
    Calibrate(CalibrateArgs),
    /// Print prices: show the price book quotes use.
    #[command(subcommand)]
    PriceBook(PriceBookCommand),
    /// Benchmarks that drive the real farm. With no subcommand: the
    /// slow-model benchmark (a seeded workload through the farm, per-lane
    /// latency, queued against computing, the scaling curve), written as
    /// JSON, Markdown and an SVG chart, and compared with `--baseline`.
    Bench(BenchArgs),
    /// API keys: mint, list and revoke the credentials of sellers,
    /// operators and the CRM.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Plan workers and KEDA settings for a load: an M/G/c queueing model
    /// per lane, checked by a discrete-event simulation with KEDA's delays.
    Plan(PlanArgs),
    /// The order accounts.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Jobs the broker gave up on: list them, read one, replay it once its
    /// cause is fixed.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Prices again, under the current price book, every order priced and
    /// not yet approved whose quote came from another book; each keeps its
    /// old quote in its history. The jobs go through the outbox (a running
    /// API relays them).
    Reprice(RepriceArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RepriceArgs {
    /// The current price book's version (that of `--price-book`, or the
    /// built-in book's): orders priced under any other are priced again.
    #[arg(long)]
    pub(crate) before_version: String,
    /// Orders to reprice at most.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) limit: i64,
    /// The price book TOML file the farm prices with; without it, the
    /// built-in book.
    #[arg(long, env = "FARM_PRICE_BOOK")]
    pub(crate) price_book: Option<PathBuf>,
    /// Models with more triangles than this go to the slow lane.
    #[arg(long, env = "FARM_SLOW_LANE_TRIANGLES", default_value_t = 1_000_000)]
    pub(crate) slow_lane_triangles: u64,
    /// Models larger than this go to the slow lane, bytes.
    #[arg(long, env = "FARM_SLOW_LANE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub(crate) slow_lane_bytes: u64,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// Dead letters not replayed yet, oldest first (`--all`: every one).
    List(ListLettersArgs),
    /// One dead letter, with the message as it was sent.
    Show(LetterArgs),
    /// Queues a new job with a dead job's inputs, through the outbox (a
    /// running API relays it); a letter is replayed once.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListLettersArgs {
    /// Also those already replayed.
    #[arg(long)]
    pub(crate) all: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct LetterArgs {
    /// The letter's id (`farm dead-letters list`).
    pub(crate) id: i64,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The letter's id (`farm dead-letters list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub(crate) id: Option<i64>,
    /// Every letter not replayed yet that names a job.
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// The database a command works on: the same as `farm serve` or `farm api`
/// with these settings.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    #[arg(long, env = "FARM_DATA_DIR", default_value = ".farm-data")]
    pub(crate) data_dir: PathBuf,
    #[arg(long, env = "FARM_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// A key for an outside seller: it creates orders and sees only its own.
    /// The secret is printed on the last line, once.
    CreateSeller(CreateKeyArgs),
    /// A key for a factory operator.
    CreateOperator(CreateKeyArgs),
    /// A key for the CRM's status events.
    CreateCrm(CreateKeyArgs),
    /// Every key, without secrets.
    List(StoreArgs),
    /// Revokes a key by its id (`farm keys list`).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateKeyArgs {
    /// The seller's, operator's or CRM's name; a seller sees the orders
    /// under this name.
    #[arg(long)]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    pub(crate) key_id: String,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrdersCommand {
    /// How many orders were received, priced, in flight, failed and
    /// dead-lettered, per source; exits 1 if an order is unaccounted for.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// List the ids of orders created since this long ago (`24h`, `90m`)
    /// [default: ever]. The counts are always of every order.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// ... and created before this long ago [default: now].
    #[arg(long)]
    pub(crate) until: Option<String>,
    #[arg(long, env = "FARM_QUEUE_PREFIX", default_value = "farm")]
    pub(crate) queue_prefix: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) command: Option<BenchCommand>,
    #[command(flatten)]
    pub(crate) run: BenchRunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkloadKind {
    /// Mostly small parts and a few slow ones, as in production; real
    /// files from `--models` join the small ones.
    Mix,
    /// Only the generated models, each once per size class.
    Generated,
    /// Only the files under `--models`.
    Files,
}

/// The slow-model benchmark's settings.
#[derive(Debug, Args)]
pub(crate) struct BenchRunArgs {
    /// The CI preset: a small workload, 1 and 2 workers, under a minute.
    /// Without it, the full preset: millions of triangles and thousands of
    /// layers, 1, 2 and 4 workers.
    #[arg(long)]
    pub(crate) quick: bool,
    #[arg(long, value_enum, default_value_t = StackKind::Embedded)]
    pub(crate) stack: StackKind,
    /// Worker counts for the scaling curve (services: processes per lane;
    /// embedded: job slots per lane in the one process). Default: the
    /// preset's.
    #[arg(long, value_delimiter = ',')]
    pub(crate) workers: Vec<usize>,
    #[arg(long, value_enum, default_value_t = WorkloadKind::Mix)]
    pub(crate) workload: WorkloadKind,
    /// Folders (or files) of real STL models for the workload.
    #[arg(long = "models")]
    pub(crate) models: Vec<PathBuf>,
    /// Picks the workload: the same seed gives the same models in the same
    /// order.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Jobs per run (default: the preset's).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Where `bench.json`, `bench.md` and `bench.svg` go.
    #[arg(long, default_value = "bench-results")]
    pub(crate) out: PathBuf,
    /// An earlier run's `bench.json`: flag regressions against it and exit
    /// non-zero if there are any.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// How much worse (percent) a latency or throughput may get before it
    /// counts as a regression.
    #[arg(long, default_value_t = 25.0)]
    pub(crate) threshold: f64,
    /// A latency must also grow by at least this many ms to count, so the
    /// jitter of a job of a few milliseconds is no regression.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) min_delta_ms: f64,
    /// How long to wait for one run's jobs, seconds.
    #[arg(long, default_value_t = 3600.0)]
    pub(crate) patience_s: f64,
    /// Measure a farm that is already running (a deployment) at this URL,
    /// instead of starting one: the same workload and figures, one run;
    /// `--workers N` says how many workers per lane it has, for the report.
    #[arg(long, conflicts_with = "stack", requires = "key")]
    pub(crate) target: Option<String>,
    /// A seller key of the `--target` farm.
    #[arg(long, env = "FARM_BENCH_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// The folder to write the models to (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// The quick preset's smaller models.
    #[arg(long)]
    pub(crate) quick: bool,
}

#[derive(Debug, Args)]
pub(crate) struct OrdersBenchArgs {
    /// `services` seeds PostgreSQL and uses Redis for the cache when
    /// FARM_REDIS_URL is set; `embedded` uses SQLite and the in-process cache.
    #[arg(long, value_enum, default_value_t = StackKind::Services)]
    pub(crate) stack: StackKind,
    /// Orders in the database before measuring.
    #[arg(long, default_value_t = 240_000)]
    pub(crate) orders: usize,
    /// Requests per second to the operators' list, at a fixed rate.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// How long each load phase lasts, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// The page size of the list.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// Operators trying to take the same order at once.
    #[arg(long, default_value_t = 50)]
    pub(crate) takers: usize,
    /// Writes per second (new orders priced by a worker, CRM approvals)
    /// while the list is measured at each rate of --ladder; 0 skips it.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) write_rate: f64,
    /// The list's request rates under writes, one step each.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    pub(crate) ladder: Vec<f64>,
    /// The worker's niceness, 0 to 19 (services stack). Production runs its
    /// workers on nodes of their own; here they share the API's cores, and
    /// a higher niceness keeps their quote computing from taking the API's.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub(crate) worker_nice: u8,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Writes the generated models of the workload to a folder, so other
    /// tools can use the same files.
    Generate(GenerateArgs),
    /// The operators' list under a fixed request rate, from the cache and
    /// from the database, and 50 operators taking one order.
    Orders(OrdersBenchArgs),
    /// The fast lane's latency with the slow lane idle, saturated, and with
    /// one lane for all jobs.
    Lanes(LanesArgs),
    /// The queue path's cost per job: a near-empty model through the farm
    /// against `farm quote` on the same file.
    Overhead(OverheadArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StackKind {
    /// `farm serve`: SQLite, an in-process queue, one worker per lane.
    Embedded,
    /// `farm api` and `farm worker` processes on the services named by
    /// FARM_DATABASE_URL, FARM_AMQP_URL and FARM_S3_ENDPOINT.
    Services,
}

#[derive(Debug, Args)]
pub(crate) struct StackArgs {
    #[arg(long, value_enum, default_value_t = StackKind::Embedded)]
    pub(crate) stack: StackKind,
    /// Worker processes per lane (services stack).
    #[arg(long, default_value_t = 1)]
    pub(crate) workers: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct LanesArgs {
    #[command(flatten)]
    pub(crate) stack: StackArgs,
    #[arg(long, default_value_t = 30)]
    pub(crate) fast_jobs: usize,
    /// Fast jobs submitted per second.
    #[arg(long, default_value_t = 4.0)]
    pub(crate) fast_rate: f64,
    #[arg(long, default_value_t = 4)]
    pub(crate) slow_jobs: usize,
    /// Work injected into each slow job on top of its real analysis, seconds.
    #[arg(long, default_value_t = 6.0)]
    pub(crate) slow_job_extra_s: f64,
    /// Job slots per worker.
    #[arg(long, default_value_t = 1)]
    pub(crate) slots: usize,
}

#[derive(Debug, Args)]
pub(crate) struct OverheadArgs {
    #[command(flatten)]
    pub(crate) stack: StackArgs,
    #[arg(long, default_value_t = 30)]
    pub(crate) jobs: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PriceBookCommand {
    /// Print the price book as TOML: the built-in one, or `--price-book
    /// FILE` once it has been validated. A starting point for a shop's own.
    Show(PriceBookShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PriceBookShowArgs {
    /// A price book TOML file to validate and print.
    #[arg(long, env = "FARM_PRICE_BOOK")]
    pub(crate) price_book: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Print the effective FDM profile: PrusaSlicer's defaults, overridden
    /// by `--profile FILE` when given.
    Show(ProfileShowArgs),
    /// Flatten a printer, print and filament preset (or an SLA printer,
    /// print and material) of a PrusaSlicer vendor bundle
    /// (`profiles/VENDOR.ini`), resolving `inherits`, into one `.ini` that
    /// `farm quote --profile` and `prusa-slicer --load` both read.
    Import(ProfileImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ProfileImportArgs {
    /// The vendor bundle, e.g. /usr/share/PrusaSlicer/profiles/PrusaResearch.ini.
    #[arg(long)]
    pub(crate) bundle: PathBuf,
    /// The printer preset, e.g. "Original Prusa i3 MK3S & MK3S+".
    #[arg(long, required_unless_present = "list")]
    pub(crate) printer: Option<String>,
    /// The print preset (an `sla_print` one for a resin printer)
    /// [default: the printer's `default_print_profile`].
    #[arg(long)]
    pub(crate) print: Option<String>,
    /// The filament preset (an `sla_material` one for a resin printer)
    /// [default: the printer's `default_filament_profile`].
    #[arg(long, alias = "material")]
    pub(crate) filament: Option<String>,
    /// Write the flat preset here instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// List the bundle's presets of this kind instead (printer, print,
    /// filament, sla_print, sla_material).
    #[arg(long, value_name = "KIND")]
    pub(crate) list: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// The print profile the printers ran (a PrusaSlicer `.ini`, or a
    /// `farm profile import` preset); without it, PrusaSlicer's defaults.
    #[arg(long)]
    pub(crate) profile: Option<PathBuf>,
    /// What the printers did: CSV with a header and the columns `model`
    /// (an STL path, relative to the CSV's folder), `hours` and `grams`.
    #[arg(long)]
    pub(crate) observations: PathBuf,
    /// Where to write the corrections (TOML); quotes use them with
    /// `--calibration FILE`.
    #[arg(long, default_value = "calibration.toml")]
    pub(crate) out: PathBuf,
    /// Folds of the cross-validation (at most one per observation).
    #[arg(long, default_value_t = 5)]
    pub(crate) folds: usize,
    /// The filament's density, g/cm³, to turn grams into volume [default:
    /// the profile's `filament_density`, else 1.24].
    #[arg(long)]
    pub(crate) density: Option<f64>,
    #[command(flatten)]
    pub(crate) read: ReadArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileFormat {
    Ini,
}

#[derive(Debug, Args)]
pub(crate) struct ProfileShowArgs {
    /// A PrusaSlicer `.ini` export; keys it sets override the defaults.
    #[arg(long)]
    pub(crate) profile: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ProfileFormat::Ini)]
    pub(crate) format: ProfileFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// `farm plan`: the load, the targets and the cluster's delays.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Models priced per hour, all lanes together.
    #[arg(long)]
    pub(crate) arrivals_per_hour: f64,
    /// One class of the model mix, NAME=WEIGHT,LANE,SERVICE, repeated: e.g.
    /// `--class typical=7,fast,2m-3m --class worst=1,slow,3m-30m`. Service
    /// times: `150s` fixed, `2m-3m` uniform, `exp:150s` exponential.
    #[arg(long = "class", required_unless_present = "bench", conflicts_with = "bench")]
    pub(crate) classes: Vec<String>,
    /// A `farm bench` report (`bench.json`) instead of `--class`: each lane's
    /// measured compute times are its service time, its share of the jobs
    /// its share of the arrivals. Also replays every run of the report
    /// through the model, beside the waits the run measured.
    #[arg(long, value_name = "FILE")]
    pub(crate) bench: Option<PathBuf>,
    /// Which run of `--bench` gives the service times [default: the one
    /// with the fewest workers, where jobs share the machine the least].
    #[arg(long, requires = "bench", value_name = "WORKERS")]
    pub(crate) bench_workers: Option<usize>,
    /// Each lane's deadline (a job past it fails): `5m`, or `fast=5m,slow=1h`.
    #[arg(long, default_value = "fast=5m,slow=1h")]
    pub(crate) deadline: String,
    /// The p99 queue wait to meet, per lane: `60s`, or `fast=60s,slow=30m`.
    #[arg(long, default_value = "fast=60s,slow=30m")]
    pub(crate) target_p99: String,
    /// Job slots per worker (FARM_WORKER_SLOTS).
    #[arg(long, default_value_t = 2)]
    pub(crate) slots: u32,
    /// No lane is planned above this many workers.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_workers: u32,
    /// Add workers above this utilisation even when the target is met.
    #[arg(long, default_value_t = 0.85)]
    pub(crate) max_utilisation: f64,
    /// KEDA's polling interval.
    #[arg(long, default_value = "15s")]
    pub(crate) polling: String,
    /// From a scaling decision to a consuming pod.
    #[arg(long, default_value = "30s")]
    pub(crate) pod_start: String,
    /// Days of arrivals each simulation runs.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) days: f64,
    /// No simulated run goes past this many jobs (bounds a plan's work at a
    /// high arrival rate; the plan notes when it cuts `--days` short).
    #[arg(long, default_value_t = 2_000_000.0)]
    pub(crate) max_simulated_jobs: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct QuoteArgs {
    /// STL files (binary or ASCII), or directories to search for `*.stl`.
    /// One file prints one quote; several print a table or a JSON array.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Material name from the price book; it picks the technology and machine.
    #[arg(long, default_value = "pla")]
    pub(crate) material: String,
    #[arg(long, default_value_t = 1)]
    pub(crate) quantity: u32,
    /// One of the material's colours (`farm price-book show` lists them).
    #[arg(long)]
    pub(crate) colour: Option<String>,
    #[command(flatten)]
    pub(crate) pricing: PricingArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) read: ReadArgs,
}

/// Where prices and print settings come from.
#[derive(Debug, Args)]
pub(crate) struct PricingArgs {
    /// A PrusaSlicer `.ini` export (or `farm profile import` preset) with
    /// the FDM print settings; keys it does not set take PrusaSlicer's
    /// defaults. An SLA preset here prices resin materials.
    #[arg(long, env = "FARM_FDM_PROFILE")]
    pub(crate) profile: Option<PathBuf>,
    /// A PrusaSlicer SLA preset (`farm profile import` of an SL1/SL1S
    /// printer) to price resin materials with, instead of the price book's
    /// machine constants.
    #[arg(long, env = "FARM_SLA_PROFILE")]
    pub(crate) sla_profile: Option<PathBuf>,
    /// A calibration written by `farm calibrate`: its corrections apply to
    /// every FDM estimate.
    #[arg(long, env = "FARM_CALIBRATION")]
    pub(crate) calibration: Option<PathBuf>,
    /// A price book TOML file; without it, the built-in book.
    #[arg(long, env = "FARM_PRICE_BOOK")]
    pub(crate) price_book: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AnalyzeArgs {
    /// The STL file (binary or ASCII).
    pub(crate) file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    #[command(flatten)]
    pub(crate) measure: MeasureArgs,
}

/// How to read a model.
#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The unit the file's numbers are in (mm, inch or m); lengths are then
    /// reported in mm. Without it nothing is rescaled, and a guess is reported.
    #[arg(long, value_parser = parse_units)]
    pub(crate) units: Option<mesh::Units>,
    /// How to weld vertices. By default identical ones are welded, then the
    /// edges left open are closed by matching vertices within a tolerance
    /// scaled to the model (as slicers do); 0 welds only identical ones; a
    /// positive value rounds coordinates to a grid of that pitch (file units).
    #[arg(long)]
    pub(crate) weld_tolerance: Option<f64>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// What to measure beyond the basics.
#[derive(Debug, Args)]
pub(crate) struct MeasureArgs {
    /// Slice at this layer height (mm) and report each layer's area and perimeter.
    #[arg(long)]
    pub(crate) layer_height: Option<f64>,
    /// Check the fit in a build volume, as X,Y,Z in mm (e.g. 250,210,220).
    #[arg(long, value_parser = parse_build_volume)]
    pub(crate) build_volume: Option<[f64; 3]>,
    /// Faces steeper than this from vertical-down need support, degrees.
    #[arg(long, default_value_t = 45.0)]
    pub(crate) overhang_angle: f64,
}

fn parse_units(text: &str) -> Result<mesh::Units, String> {
    mesh::Units::parse(text).ok_or_else(|| format!("unknown unit `{text}`; use mm, inch or m"))
}

fn parse_build_volume(text: &str) -> Result<[f64; 3], String> {
    let numbers: Vec<f64> =
        text.split(',').map(|n| n.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    match numbers.as_slice() {
        [x, y, z] if numbers.iter().all(|n| n.is_finite() && *n > 0.0) => Ok([*x, *y, *z]),
        _ => Err(format!("expected three positive numbers X,Y,Z, got `{text}`")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Largest model accepted, bytes.
    #[arg(long, env = "FARM_MAX_MODEL_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub(crate) max_model_bytes: u64,
    /// Most triangles accepted in one model.
    #[arg(long, env = "FARM_MAX_TRIANGLES", default_value_t = 20_000_000)]
    pub(crate) max_triangles: u64,
    /// Most layers a model may be sliced into.
    #[arg(long, env = "FARM_MAX_LAYERS", default_value_t = 100_000)]
    pub(crate) max_layers: u64,
    /// Most triangle–layer crossings slicing and contour tracing may do.
    #[arg(long, env = "FARM_MAX_LAYER_CROSSINGS", default_value_t = 100_000_000)]
    pub(crate) max_layer_crossings: u64,
    /// Most ray–triangle crossings the support columns may count.
    #[arg(long, env = "FARM_MAX_RAY_CROSSINGS", default_value_t = 20_000_000)]
    pub(crate) max_ray_crossings: u64,
    /// Most separate shells in one model.
    #[arg(long, env = "FARM_MAX_SHELLS", default_value_t = 50_000)]
    pub(crate) max_shells: u64,
    /// The bytes one analysis may hold at once (one worker slot's share).
    #[arg(long, env = "FARM_MEMORY_BUDGET_BYTES", default_value_t = 1 << 30)]
    pub(crate) memory_budget_bytes: u64,
    /// Most vertices a 3MF or OBJ file may list.
    #[arg(long, env = "FARM_MAX_VERTICES", default_value_t = 30_000_000)]
    pub(crate) max_vertices: u64,
    /// Most entries in a 3MF package (checked before anything is inflated).
    #[arg(long, env = "FARM_MAX_ZIP_ENTRIES", default_value_t = 10_000)]
    pub(crate) max_zip_entries: u64,
    /// Most bytes a 3MF package's entries may inflate to, all together.
    #[arg(long, env = "FARM_MAX_UNZIPPED_BYTES", default_value_t = 4 << 30)]
    pub(crate) max_unzipped_bytes: u64,
    /// Largest inflated ÷ compressed ratio of a 3MF entry over 1 MiB.
    #[arg(long, env = "FARM_MAX_ZIP_RATIO", default_value_t = 200)]
    pub(crate) max_zip_ratio: u64,
    /// Most corners of one OBJ polygon.
    #[arg(long, env = "FARM_MAX_POLYGON_VERTICES", default_value_t = 4096)]
    pub(crate) max_polygon_vertices: u64,
    /// Longest line of an OBJ file, bytes.
    #[arg(long, env = "FARM_MAX_LINE_BYTES", default_value_t = 1 << 20)]
    pub(crate) max_line_bytes: u64,
}

fn parse_lane(text: &str) -> Result<scheduler::Lane, String> {
    scheduler::Lane::parse(text).ok_or_else(|| format!("unknown lane `{text}`; use fast or slow"))
}

/// The operators' console and the quote page: sessions and live updates.
#[derive(Debug, Args)]
pub(crate) struct WebArgs {
    /// How long a browser session lasts after sign-in, hours.
    #[arg(long, env = "FARM_SESSION_TTL_H", default_value_t = 12.0)]
    pub(crate) session_ttl_h: f64,
    /// Sessions one key may hold at once; signing in beyond it ends the oldest.
    #[arg(long, env = "FARM_MAX_SESSIONS_PER_KEY", default_value_t = 50)]
    pub(crate) max_sessions_per_key: i64,
    /// Mark the session cookie `Secure` even on plain HTTP (set it behind a
    /// TLS proxy that does not send `X-Forwarded-Proto: https`).
    #[arg(long, env = "FARM_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) secure_cookies: bool,
    /// Open live-update streams (server-sent events) one API process
    /// serves; keep it well under FARM_MAX_CONNECTIONS.
    #[arg(long, env = "FARM_MAX_EVENT_STREAMS", default_value_t = 256)]
    pub(crate) max_event_streams: usize,
    /// Open live-update streams of one key (its sessions included).
    #[arg(long, env = "FARM_MAX_EVENT_STREAMS_PER_KEY", default_value_t = 8)]
    pub(crate) max_event_streams_per_key: usize,
    /// Sign-ins of the pages one key may make in a minute.
    #[arg(long, env = "FARM_MAX_SIGN_INS_PER_MINUTE", default_value_t = 30)]
    pub(crate) max_sign_ins_per_minute: u32,
    /// How often an open stream checks that its key or session still
    /// stands, seconds.
    #[arg(long, env = "FARM_EVENT_RECHECK_S", default_value_t = 5.0)]
    pub(crate) event_recheck_s: f64,
    /// Orders one filtered operators'-list request looks through at most.
    #[arg(long, env = "FARM_MAX_FILTER_SCAN", default_value_t = 20_000)]
    pub(crate) max_filter_scan: usize,
}

/// Webhook deliveries and the farm's events on the broker.
#[derive(Debug, Args)]
pub(crate) struct WebhookArgs {
    /// Let webhooks point at loopback, private and link-local addresses
    /// (refused by default: protection against SSRF).
    #[arg(long, env = "FARM_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) webhook_allow_private: bool,
    /// How long one delivery attempt may take, seconds.
    #[arg(long, env = "FARM_WEBHOOK_TIMEOUT_S", default_value_t = 10.0)]
    pub(crate) webhook_timeout_s: f64,
    /// The pause after a first failed attempt, seconds; it doubles per
    /// attempt, with jitter.
    #[arg(long, env = "FARM_WEBHOOK_FIRST_BACKOFF_S", default_value_t = 10.0)]
    pub(crate) webhook_first_backoff_s: f64,
    /// The longest pause between attempts, seconds.
    #[arg(long, env = "FARM_WEBHOOK_MAX_BACKOFF_S", default_value_t = 3600.0)]
    pub(crate) webhook_max_backoff_s: f64,
    /// How long a delivery is retried before it is marked failed, hours.
    #[arg(long, env = "FARM_WEBHOOK_RETRY_FOR_H", default_value_t = 24.0)]
    pub(crate) webhook_retry_for_h: f64,
    /// Delivery attempts in flight at once, per API process.
    #[arg(long, env = "FARM_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub(crate) webhook_concurrency: usize,
    /// Delivery attempts in flight at once for one webhook.
    #[arg(long, env = "FARM_WEBHOOK_PER_TARGET_CONCURRENCY", default_value_t = 4)]
    pub(crate) webhook_per_target_concurrency: usize,
    /// Delivery attempts in flight at once for all the webhooks of one key.
    #[arg(long, env = "FARM_WEBHOOK_PER_KEY_CONCURRENCY", default_value_t = 8)]
    pub(crate) webhook_per_key_concurrency: usize,
    /// Webhooks one key may have.
    #[arg(long, env = "FARM_MAX_WEBHOOKS_PER_KEY", default_value_t = 10)]
    pub(crate) max_webhooks_per_key: i64,
    /// How often the webhook sender and the events relay look for new work
    /// when idle, seconds.
    #[arg(long, env = "FARM_EVENT_POLL_S", default_value_t = 0.5)]
    pub(crate) event_poll_s: f64,
    /// Events delivered and published are forgotten after this many days.
    #[arg(long, env = "FARM_EVENT_RETENTION_DAYS", default_value_t = 7.0)]
    pub(crate) event_retention_days: f64,
}

/// How jobs are routed, timed and retried.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// A job running longer in the fast lane is stopped and failed, seconds.
    #[arg(long, env = "FARM_FAST_DEADLINE_S", default_value_t = 300.0)]
    pub(crate) fast_deadline_s: f64,
    /// The same for the slow lane.
    #[arg(long, env = "FARM_SLOW_DEADLINE_S", default_value_t = 2700.0)]
    pub(crate) slow_deadline_s: f64,
    /// After SIGTERM, how long running jobs may finish before they are handed
    /// back to the queue, seconds [default: the lane's deadline].
    #[arg(long, env = "FARM_SHUTDOWN_GRACE_S")]
    pub(crate) shutdown_grace_s: Option<f64>,
    /// Running jobs report their progress at least this often, seconds.
    #[arg(long, env = "FARM_HEARTBEAT_S", default_value_t = 10.0)]
    pub(crate) heartbeat_s: f64,
    /// The API shows a running job whose worker has not reported for this
    /// long as stale, seconds.
    #[arg(long, env = "FARM_HEARTBEAT_STALE_S", default_value_t = 30.0)]
    pub(crate) heartbeat_stale_s: f64,
    /// A redelivered job whose first runner still reports waits, held; it
    /// asks the API again this often, seconds.
    #[arg(long, env = "FARM_CLAIM_RECHECK_S", default_value_t = 5.0)]
    pub(crate) claim_recheck_s: f64,
    /// With no answer from the API for this long, a redelivered job is
    /// computed anyway, seconds.
    #[arg(long, env = "FARM_CLAIM_PATIENCE_S", default_value_t = 60.0)]
    pub(crate) claim_patience_s: f64,
    /// Tries of a transient failure (the model store down) before the job fails.
    #[arg(long, env = "FARM_RETRY_ATTEMPTS", default_value_t = 5)]
    pub(crate) retry_attempts: u32,
    /// Deliveries of a job before the broker dead-letters it.
    #[arg(long, env = "FARM_DELIVERY_LIMIT", default_value_t = scheduler::broker::DEFAULT_DELIVERY_LIMIT)]
    pub(crate) delivery_limit: u32,
    /// The broker's `consumer_timeout`, seconds: a worker refuses a lane
    /// deadline the broker would cut short (deploy/README.md sets it to 3600).
    #[arg(long, env = "FARM_BROKER_CONSUMER_TIMEOUT_S", default_value_t = 3600.0)]
    pub(crate) broker_consumer_timeout_s: f64,
    /// Models with more triangles than this go to the slow lane.
    #[arg(long, env = "FARM_SLOW_LANE_TRIANGLES", default_value_t = 1_000_000)]
    pub(crate) slow_lane_triangles: u64,
    /// Models larger than this go to the slow lane, bytes.
    #[arg(long, env = "FARM_SLOW_LANE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub(crate) slow_lane_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// JSON lines, unless stderr is a terminal.
    Auto,
    Json,
    Pretty,
}

/// How traces leave the process; see `telemetry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OtlpProtocol {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
}

#[derive(Debug, Args)]
pub(crate) struct TracingArgs {
    /// OTLP/HTTP collector to export traces to, e.g. http://otel-collector:4318
    /// (traces go to /v1/traces under it); without it, tracing is off.
    #[arg(long, env = "FARM_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
    #[arg(long, env = "FARM_OTLP_PROTOCOL", value_enum, default_value = "http/protobuf")]
    pub(crate) otlp_protocol: OtlpProtocol,
    /// The service name in traces [default: farm-serve, farm-api or farm-worker-LANE].
    #[arg(long, env = "FARM_SERVICE_NAME")]
    pub(crate) service_name: Option<String>,
    /// Share of new traces kept, 0 to 1; a caller's sampled trace is always kept.
    #[arg(long, env = "FARM_TRACE_SAMPLE_RATIO", default_value_t = 1.0)]
    pub(crate) trace_sample_ratio: f64,
}

#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// Address to serve HTTP on [default: 127.0.0.1:8080; 127.0.0.1:9091 for
    /// `worker`, which serves only /healthz and /metrics].
    #[arg(long, env = "FARM_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// Where the embedded database and model folder live.
    #[arg(long, env = "FARM_DATA_DIR", default_value = ".farm-data")]
    pub(crate) data_dir: PathBuf,
    /// PostgreSQL URL; without it, SQLite in the data directory.
    #[arg(long, env = "FARM_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// RabbitMQ URL; without it, an in-process queue (`serve` only).
    #[arg(long, env = "FARM_AMQP_URL", hide_env_values = true)]
    pub(crate) amqp_url: Option<String>,
    /// Prefix of every queue name, so environments can share a broker.
    #[arg(long, env = "FARM_QUEUE_PREFIX", default_value = "farm")]
    pub(crate) queue_prefix: String,
    /// S3 endpoint; without it, models live in the data directory.
    #[arg(long, env = "FARM_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    #[arg(long, env = "FARM_S3_BUCKET", default_value = "farm-models")]
    pub(crate) s3_bucket: String,
    #[arg(long, env = "FARM_S3_REGION", default_value = "us-east-1")]
    pub(crate) s3_region: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub(crate) s3_access_key_id: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub(crate) s3_secret_access_key: Option<String>,
    /// Jobs one worker prices at once (also its broker prefetch).
    #[arg(long, env = "FARM_WORKER_SLOTS", default_value_t = 2)]
    pub(crate) worker_slots: usize,
    /// Redis for the operators' order list cache; without it, an in-process cache.
    #[arg(long, env = "FARM_REDIS_URL", hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    /// HTTP connections open at once; past it, new ones wait in the backlog.
    #[arg(long, env = "FARM_MAX_CONNECTIONS", default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// New models one key may upload in an hour (then 429).
    #[arg(long, env = "FARM_QUOTA_UPLOADS_PER_HOUR", default_value_t = 1_000)]
    pub(crate) quota_uploads_per_hour: i64,
    /// Bytes of new models one key may upload in a day (then 429).
    #[arg(long, env = "FARM_QUOTA_UPLOAD_BYTES_PER_DAY", default_value_t = 20 << 30)]
    pub(crate) quota_upload_bytes_per_day: i64,
    /// Pricing jobs of one key queued or running at once (then 429).
    #[arg(long, env = "FARM_QUOTA_JOBS_IN_FLIGHT", default_value_t = 200)]
    pub(crate) quota_jobs_in_flight: i64,
    /// Parts one order may hold (`{"items": [...]}`); each is a pricing job.
    #[arg(long, env = "FARM_MAX_ORDER_PARTS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) max_order_parts: u32,
    /// Uploads the API reads at once; each is spooled to disk (up to
    /// FARM_MAX_MODEL_BYTES) in FARM_SPOOL_DIR while it is checked.
    #[arg(long, env = "FARM_MAX_CONCURRENT_UPLOADS", default_value_t = 8)]
    pub(crate) max_concurrent_uploads: usize,
    /// Where uploads are spooled while they arrive [default: the system's
    /// temporary directory]. Needs FARM_MAX_CONCURRENT_UPLOADS ×
    /// FARM_MAX_MODEL_BYTES free.
    #[arg(long, env = "FARM_SPOOL_DIR")]
    pub(crate) spool_dir: Option<PathBuf>,
    /// Seconds a connection may take to send a whole request head.
    #[arg(long, env = "FARM_HEADER_READ_TIMEOUT_S", default_value_t = 30.0)]
    pub(crate) header_read_timeout_s: f64,
    /// Seconds a whole request may take, body included (then 408): a
    /// model upload must arrive within it, so raise it for slow links.
    #[arg(long, env = "FARM_REQUEST_TIMEOUT_S", default_value_t = 120.0)]
    pub(crate) request_timeout_s: f64,
    /// Serve the operators' list from the cache (`false`: always from the
    /// database, for comparison).
    #[arg(long, env = "FARM_OPERATOR_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) operator_cache: bool,
    /// Seconds a page (or a ping) of the Redis cache may take before the
    /// database answers that request instead; the cache stays on.
    #[arg(long, env = "FARM_OPERATOR_CACHE_READ_TIMEOUT_S", default_value_t = 0.25)]
    pub(crate) operator_cache_read_timeout_s: f64,
    /// Seconds a change may take to reach the Redis cache before the cache
    /// is turned off and rebuilt.
    #[arg(long, env = "FARM_OPERATOR_CACHE_WRITE_TIMEOUT_S", default_value_t = 1.0)]
    pub(crate) operator_cache_write_timeout_s: f64,
    /// Unanswered pings in a row (half a second apart) before Redis counts
    /// as gone and the cache is turned off.
    #[arg(long, env = "FARM_OPERATOR_CACHE_PINGS_TO_OUTAGE", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) operator_cache_pings_to_outage: u32,
    /// The lane a worker consumes (`serve` runs a worker for each).
    #[arg(long, env = "FARM_LANE", value_parser = parse_lane, default_value = "fast")]
    pub(crate) lane: scheduler::Lane,
    #[command(flatten)]
    pub(crate) jobs: JobArgs,
    #[command(flatten)]
    pub(crate) web: WebArgs,
    #[command(flatten)]
    pub(crate) webhooks: WebhookArgs,
    /// How long to keep retrying an unreachable broker at start, seconds.
    #[arg(long, env = "FARM_BROKER_CONNECT_PATIENCE_S", default_value_t = 60)]
    pub(crate) broker_connect_patience_s: u64,
    /// Database connections per process.
    #[arg(long, env = "FARM_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub(crate) database_max_connections: u32,
    #[arg(long, env = "FARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub(crate) log_format: LogFormat,
    #[command(flatten)]
    pub(crate) tracing: TracingArgs,
    #[command(flatten)]
    pub(crate) pricing: PricingArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}
