//! `tunerpool store copy`: a single instance's SQLite catalog copied into
//! PostgreSQL, so that an operator moving to a cluster keeps everything
//! (the copy itself is `tunerpool_catalog::copy`; this is its command line:
//! where the two catalogs are, progress, the summary, what to do next).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tunerpool_catalog::copy::{copy_sqlite_to_postgres, sqlite_file, CopyError, CopyOptions, CopyProgress};
use tunerpool_catalog::{CatalogError, StoreUrl};

use crate::cli::{StoreCommand, StoreCopyArgs};
use crate::config::Config;

/// How often a big table's progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub async fn run(config: &Config, cmd: &StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Copy(args) => copy(config, args).await,
    }
}

async fn copy(config: &Config, args: &StoreCopyArgs) -> anyhow::Result<ExitCode> {
    let (from, from_key) = match &args.from {
        Some(from) => (from.clone(), "--from"),
        None => (config.data_dir.clone(), "data_dir (--data-dir)"),
    };
    // store.url was checked when the configuration loaded; --to is checked here by the same rule.
    let (to, to_key) = match (&args.to, &config.store.url) {
        (Some(to), _) => match StoreUrl::parse(Some(to)) {
            Ok(StoreUrl::Postgres(url)) => (url, "--to"),
            Ok(StoreUrl::Sqlite) => {
                eprintln!("--to: the copy goes into PostgreSQL: give postgres://user:password@host:port/database");
                return Ok(ExitCode::from(2));
            }
            Err(CatalogError::Invalid(fields)) => {
                for f in fields {
                    eprintln!("--to: {}", f.message);
                }
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e.into()),
        },
        (None, Some(url)) => (url.clone(), "store.url"),
        (None, None) => {
            eprintln!(
                "--to: name the PostgreSQL catalog to copy into (postgres://user:password@host:port/database), or \
                 set store.url (TUNERPOOL_STORE_URL keeps the password out of shell history and `ps`)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let source = sqlite_file(&from);
    let shown_to = tunerpool_upstream::redact::redact_url(&to, &[]);
    eprintln!("copying {} into {shown_to}", source.display());

    let mut printer = Progress::default();
    let options = CopyOptions { replace: args.replace };
    let report = match copy_sqlite_to_postgres(&from, &to, &options, &mut |p| printer.show(p)).await {
        Ok(report) => report,
        Err(e) => anyhow::bail!(explain(e, from_key, to_key)),
    };

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "copied {} into {shown_to} (schema: SQLite migration {}, PostgreSQL migration {}{})",
        source.display(),
        report.schema.0,
        report.schema.1,
        if report.migrated_target { ", migrated just now" } else { "" }
    )?;
    if report.replaced_rows > 0 {
        writeln!(out, "replaced {} rows the PostgreSQL catalog held", report.replaced_rows)?;
    }
    let width = report.tables.iter().map(|t| t.table.len()).max().unwrap_or(5).max("total".len());
    writeln!(out, "{:<width$}  {:>10}", "table", "rows")?;
    for t in &report.tables {
        writeln!(out, "{:<width$}  {:>10}", t.table, t.rows)?;
    }
    writeln!(out, "{:<width$}  {:>10}", "total", report.tables.iter().map(|t| t.rows).sum::<u64>())?;
    if !report.sequences.is_empty() {
        let next: Vec<String> = report.sequences.iter().map(|(col, next)| format!("{col} {next}")).collect();
        writeln!(out, "next ids: {}", next.join(", "))?;
    }
    writeln!(
        out,
        "The live listing is rebuilt by the first `tunerpool serve` on it. Guides are not in the catalog: each \
         instance fetches its own into its data dir.\nNext: set store.url (TUNERPOOL_STORE_URL) to the PostgreSQL \
         URL on every instance and start them; keep {} as a backup.",
        source.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The copy's error with what to do, naming the flag or key the operator
/// gave.
fn explain(e: CopyError, from_key: &str, to_key: &str) -> String {
    match e {
        CopyError::Source { .. } => format!("{from_key}: {e}"),
        CopyError::Target(CatalogError::Open { path, reason }) => {
            format!("{to_key}: cannot open the PostgreSQL catalog at {path}: {reason}")
        }
        CopyError::Target(e) => format!("{to_key}: {e}"),
        CopyError::NotEmpty { .. } => format!(
            "{e}: pass --replace to delete everything it holds first (in the same transaction), or give --to \
             another database"
        ),
        e => e.to_string(),
    }
}

/// Progress on stderr: a line per table when it is done, and every
/// [`PROGRESS_EVERY`] while a big one is copied.
#[derive(Default)]
struct Progress {
    last: Option<Instant>,
}

impl Progress {
    fn show(&mut self, p: CopyProgress<'_>) {
        let now = Instant::now();
        let done = p.copied == p.total;
        let due = p.copied > 0 && self.last.is_none_or(|at| now.duration_since(at) >= PROGRESS_EVERY);
        if done || due {
            eprintln!("  {}: {} of {} rows", p.table, p.copied, p.total);
            self.last = Some(now);
        }
    }
}
