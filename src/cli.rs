//! The command line: parsing with clap, turning arguments into the settings
//! the library takes, and turning every outcome into an exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indexmap::IndexMap;
use serde_json::Value;

use crate::agent::agentai::{self, AgentAi};
use crate::plan::{self, graph, Plan};
use crate::run::{self, progress::Progress, RunOptions, RunStatus};
use crate::workflow::MAX_CONCURRENCY;

/// Exit codes, documented in the README.
pub mod exit {
    /// Every step succeeded.
    pub const SUCCESS: i32 = 0;
    /// A step failed or was skipped.
    pub const STEP_FAILED: i32 = 1;
    /// The workflow is invalid, or the command line is.
    pub const INVALID: i32 = 2;
    /// The run was interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

/// Run declarative pipelines of agent.ai agents.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More logging on stderr: -v for progress details, -vv for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Format of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// When to color log output.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow and write its results to disk.
    Run(RunArgs),
    /// Inspect or prune the cache of step results shared across runs.
    Cache {
        #[command(subcommand)]
        action: CacheCommand,
    },
    /// Check workflow files without running anything.
    Validate {
        /// Workflow files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a workflow's step graph.
    Graph {
        /// The workflow file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Count the entries and their size.
    Stats {
        /// The output directory whose cache to read.
        #[arg(long, value_name = "DIR", default_value = "runs")]
        out: PathBuf,
        /// Read this cache directory instead of the one under `--out`.
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Delete entries older than a given age.
    Prune {
        /// Age past which entries go, such as `30d` or `12h`.
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// The output directory whose cache to prune.
        #[arg(long, value_name = "DIR", default_value = "runs")]
        out: PathBuf,
        /// Prune this cache directory instead of the one under `--out`.
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file.
    pub file: PathBuf,

    /// Set a workflow input, as NAME=VALUE; repeat for several.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,

    /// Read workflow inputs from a YAML or JSON mapping; `--input` wins.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,

    /// Most steps in flight at once; overrides the file's `concurrency`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64))]
    pub concurrency: Option<u32>,

    /// Directory under which run directories are created.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,

    /// agent.ai base URL [default: $AGENTAI_BASE_URL or https://api-lr.agent.ai/v1].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Stop starting steps and cancel running ones after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    /// Print the outputs as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Continue an earlier run in its own directory (a run id, or `latest`):
    /// steps that finished with the same input are not called again.
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,

    /// Use the cache for every step, not only those with `cache:` set.
    #[arg(long, conflicts_with = "no_cache")]
    pub cache: bool,

    /// Use the cache for no step, whatever the workflow says.
    #[arg(long)]
    pub no_cache: bool,

    /// Keep the cache in this directory [default: .cache under --out].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Print no progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// Runs the parsed command and returns the process's exit code.
pub fn main(cli: Cli) -> i32 {
    init_logging(&cli);
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Graph { file, format } => match plan::load(&file) {
            Ok(plan) => {
                let format = match format {
                    GraphFormat::Dot => graph::Format::Dot,
                    GraphFormat::Mermaid => graph::Format::Mermaid,
                };
                print!("{}", graph::render(&plan, format));
                exit::SUCCESS
            }
            Err(report) => {
                eprint!("{report}");
                exit::INVALID
            }
        },
        Command::Run(args) => run_command(args, matches!(cli.log_format, LogFormat::Json)),
        Command::Cache { action } => cache_command(action),
    }
}

fn cache_command(action: CacheCommand) -> i32 {
    use crate::store::cache::Cache;
    let result: Result<(), String> = match &action {
        CacheCommand::Stats { out, cache_dir } => Cache::chosen(cache_dir.as_deref(), out)
            .stats()
            .map_err(|e| {
                format!(
                    "cannot read the cache `{}`: {e}",
                    Cache::chosen(cache_dir.as_deref(), out).dir().display()
                )
            })
            .map(|s| {
                let age = |t: Option<u64>| match t {
                    Some(secs) => {
                        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
                        humantime::format_rfc3339_seconds(at).to_string()
                    }
                    None => "-".into(),
                };
                println!("entries: {}", s.entries);
                println!("bytes:   {}", s.bytes);
                println!("oldest:  {}", age(s.oldest));
                println!("newest:  {}", age(s.newest));
            }),
        CacheCommand::Prune {
            older_than,
            out,
            cache_dir,
        } => {
            let age = match crate::workflow::duration::parse(older_than) {
                Ok(age) => age,
                Err(message) => {
                    eprintln!("error: --older-than: {message}");
                    return exit::INVALID;
                }
            };
            Cache::chosen(cache_dir.as_deref(), out)
                .prune(age)
                .map(|n| println!("removed {n} {}", if n == 1 { "entry" } else { "entries" }))
                .map_err(|e| chain(&e))
        }
    };
    match result {
        Ok(()) => exit::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            exit::STEP_FAILED
        }
    }
}

fn validate(files: &[PathBuf]) -> i32 {
    let mut code = exit::SUCCESS;
    for file in files {
        match plan::load(file) {
            Ok(plan) => eprintln!("{}: ok ({} steps)", file.display(), plan.steps().len()),
            Err(report) => {
                eprint!("{report}");
                let n = report.diagnostics.len();
                eprintln!(
                    "{}: {n} problem{}\n",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
                code = exit::INVALID;
            }
        }
    }
    code
}

fn run_command(args: RunArgs, json_progress: bool) -> i32 {
    let plan = match plan::load(&args.file) {
        Ok(plan) => Arc::new(plan),
        Err(report) => {
            eprint!("{report}");
            return exit::INVALID;
        }
    };
    let options = match resolve(&args, &plan, json_progress) {
        Ok(options) => options,
        Err(message) => {
            eprint!("{message}");
            return exit::INVALID;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::STEP_FAILED;
        }
    };
    runtime.block_on(async move {
        let interrupt = watch_signals();
        let summary = match run::execute(plan, options, interrupt).await {
            Ok(summary) => summary,
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                return exit::INVALID;
            }
        };
        for e in &summary.store_errors {
            eprintln!("error: {}", chain(e));
        }
        print_outputs(&summary.outputs, args.json);
        match summary.status {
            RunStatus::Interrupted => exit::INTERRUPTED,
            RunStatus::Failed => exit::STEP_FAILED,
            RunStatus::Succeeded if !summary.store_errors.is_empty() => exit::STEP_FAILED,
            RunStatus::Succeeded => exit::SUCCESS,
        }
    })
}

/// Turns arguments and environment into run settings, or a message.
fn resolve(args: &RunArgs, plan: &Plan, json_progress: bool) -> Result<RunOptions, String> {
    let resume = match &args.resume {
        Some(which) => {
            let dir = crate::store::previous::find(&args.out, plan.name(), which)
                .map_err(|e| format!("error: {e}\n"))?;
            Some(dir)
        }
        None => None,
    };
    let mut given = IndexMap::new();
    // A resumed run keeps the inputs it was given unless the command line
    // changes them; defaults come from the file as it is now, and inputs
    // the workflow no longer declares are dropped.
    let earlier = resume.as_deref().and_then(crate::store::previous::read_run);
    if let Some(run) = &earlier {
        for (name, value) in &run.inputs_given {
            if plan.workflow().inputs.contains_key(name) {
                given.insert(name.clone(), value.clone());
            }
        }
    }
    given.extend(given_inputs(args)?);
    let inputs = plan.resolve_inputs(&given).map_err(|r| r.render())?;
    let inputs_given = given.into_iter().collect();
    let agentai = if plan.has_agent_steps() {
        let key = std::env::var(agentai::KEY_VAR).unwrap_or_default();
        if key.trim().is_empty() {
            return Err(format!(
                "error: `{}` is not set; `{}` has agent steps that need an agent.ai API key\n",
                agentai::KEY_VAR,
                plan.path().display()
            ));
        }
        let base = args
            .base_url
            .clone()
            .or_else(|| {
                std::env::var(agentai::BASE_URL_VAR)
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| agentai::DEFAULT_BASE_URL.to_owned());
        Some(AgentAi::new(&base, key.trim()).map_err(|e| format!("error: {e}\n"))?)
    } else {
        None
    };
    let concurrency = args
        .concurrency
        .map(|c| c as usize)
        .unwrap_or(plan.concurrency());
    Ok(RunOptions {
        out_dir: args.out.clone(),
        concurrency,
        fail_fast: args.fail_fast,
        inputs,
        inputs_given,
        agentai,
        progress: Progress {
            quiet: args.quiet,
            json: json_progress,
        },
        resume,
        cache: crate::store::cache::Cache::chosen(args.cache_dir.as_deref(), &args.out),
        cache_all: match (args.cache, args.no_cache) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    })
}

/// `--inputs FILE` first, then each `--input NAME=VALUE` over it.
fn given_inputs(args: &RunArgs) -> Result<IndexMap<String, Value>, String> {
    let mut given = IndexMap::new();
    if let Some(path) = &args.inputs {
        given = read_inputs_file(path)?;
    }
    for pair in &args.input {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("error: `--input {pair}` must be NAME=VALUE\n"));
        };
        given.insert(name.trim().to_owned(), Value::String(value.to_owned()));
    }
    Ok(given)
}

fn read_inputs_file(path: &Path) -> Result<IndexMap<String, Value>, String> {
    let text = crate::workflow::source::read_capped(path, "inputs file")
        .map_err(|d| format!("error: `{}`: {}\n", path.display(), d.message))?;
    serde_yaml::from_str::<IndexMap<String, Value>>(&text).map_err(|e| {
        format!(
            "error: `{}` must be a YAML or JSON mapping of input names to values: {e}\n",
            path.display()
        )
    })
}

fn print_outputs(outputs: &crate::store::record::OutputsRecord, json: bool) {
    if json {
        let text = serde_json::to_string(outputs).expect("outputs serialize");
        println!("{text}");
        return;
    }
    for (name, value) in &outputs.outputs {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.contains('\n') {
            println!("{name}:");
            for line in text.lines() {
                println!("  {line}");
            }
        } else {
            println!("{name}: {text}");
        }
    }
}

/// Turns true on the first Ctrl-C or SIGTERM; a second one exits at once.
fn watch_signals() -> tokio::sync::watch::Receiver<bool> {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        for round in 0..2 {
            match term.as_mut() {
                Some(term) => tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                },
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            if round == 0 {
                eprintln!(
                    "interrupted: cancelling running steps (press Ctrl-C again to exit at once)"
                );
                let _ = sender.send(true);
            }
        }
        // Exiting drops no step, so their commands are killed here.
        crate::agent::command::kill_all();
        std::process::exit(exit::INTERRUPTED);
    });
    receiver
}

/// An error and its causes, one after another.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    text
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.verbose {
        0 => "warn",
        1 => "warn,baton=info",
        2 => "info,baton=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
