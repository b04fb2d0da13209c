//! The `persona` command line: its words ([`args`]), their conversion into the library's
//! option types ([`convert`]), and [`dispatch`], which runs one command and prints its report.

pub mod args;
mod convert;

use persona_jobs::commands::pipeline::{self, CheckOptions, RunOptions};
use persona_jobs::commands::{als, audience, demo, experiment, kmeans, propensity, query};
use persona_jobs::engine::progress::Progress;
use persona_jobs::engine::servers::{run_executor, run_scheduler};
use persona_jobs::generate;
use persona_jobs::stages::registry::NightTable;
use persona_jobs::{PipelineError, Result};

use args::{AudienceCommand, Command, ExperimentCommand};

/// Runs one command on a new multi-threaded runtime.
pub fn dispatch(command: Command) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Internal(format!("cannot start the async runtime: {e}")))?;
    match command {
        Command::Demo(args) => {
            let summary = runtime.block_on(demo::run(&args.into()))?;
            print(&summary)?;
        }
        Command::Generate(args) => {
            let summary = runtime.block_on(generate::generate(&args.into()))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
        }
        Command::Run(args) => {
            let dry_run = args.dry_run;
            night(&runtime, RunOptions::try_from(args)?, dry_run)?;
        }
        Command::Evaluate(args) => {
            let dry_run = args.run.dry_run;
            night(&runtime, RunOptions::try_from(args)?, dry_run)?;
        }
        Command::Check(args) => {
            let opts = CheckOptions::try_from(args)?;
            let mut report = None;
            let result = runtime.block_on(pipeline::check(&opts, &mut report));
            if let Some(report) = &report {
                print(report)?;
            }
            result?;
        }
        Command::Experiment(ExperimentCommand::Plan(args)) => {
            print(&experiment::plan(&args.into())?)?;
        }
        Command::Experiment(ExperimentCommand::Assign(args)) => {
            print(&runtime.block_on(experiment::assign(&args.into()))?)?;
        }
        Command::Experiment(ExperimentCommand::Report(args)) => {
            print(&runtime.block_on(experiment::report(&args.try_into()?))?)?;
        }
        Command::Experiment(ExperimentCommand::Analyse(args)) => {
            print(&runtime.block_on(experiment::analyse(&args.try_into()?))?)?;
        }
        Command::Audience(AudienceCommand::Preview(args)) => {
            let json = args.json;
            let preview = runtime.block_on(audience::preview(&args.try_into()?))?;
            if json {
                let text = serde_json::to_string_pretty(&preview)
                    .map_err(|e| PipelineError::Internal(format!("preview as JSON: {e}")))?;
                println!("{text}");
            } else {
                print(&preview)?;
            }
        }
        Command::Report(args) => {
            let path = runtime.block_on(persona_jobs::report_page::rebuild(&args.try_into()?))?;
            println!("{}", path.display());
        }
        Command::Stages => print(&NightTable)?,
        Command::Sql(args) => runtime.block_on(query::run(&args.try_into()?))?,
        Command::Kmeans(args) => {
            let summary = runtime.block_on(kmeans::run(&args.try_into()?))?;
            print(&summary)?;
        }
        Command::Als(args) => {
            let report = runtime.block_on(als::run(&args.try_into()?))?;
            print(&report)?;
        }
        Command::Recommend(args) => {
            let report = runtime.block_on(als::run(&args.try_into()?))?;
            print(&report)?;
        }
        Command::Propensity(args) => {
            let report = runtime.block_on(propensity::run(&args.try_into()?))?;
            print(&report)?;
        }
        Command::Scheduler(args) => runtime.block_on(run_scheduler(&args.into()))?,
        Command::Executor(args) => runtime.block_on(run_executor(&args.into()))?,
    }
    Ok(())
}

/// `persona run` and `persona evaluate`, or their `--dry-run`.
fn night(runtime: &tokio::runtime::Runtime, opts: RunOptions, dry_run: bool) -> Result<()> {
    if dry_run {
        print(&runtime.block_on(pipeline::dry_run(&opts))?)?;
    } else {
        print(&runtime.block_on(pipeline::run(&opts, &mut Progress::new()))?)?;
    }
    Ok(())
}

/// Prints a report on stdout. A reader that went away (`persona stages | head`) is not an
/// error; a stdout that cannot be written (a full disk) is.
fn print(report: &impl std::fmt::Display) -> Result<()> {
    use std::io::Write;
    match write!(std::io::stdout().lock(), "{report}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(PipelineError::Storage(
            format!("cannot write the report to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}
