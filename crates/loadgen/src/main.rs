//! `loadgen`: the measuring instrument of the relay benchmarks.
//!
//! It ramps N HTTP viewers over M live channels of a tunerpool (or any server of MPEG-TS over
//! HTTP), reads every stream, checks it (TS sync and continuity), and prints a JSON report. It is
//! built to stay cheap per viewer so that it is not what limits a benchmark: one shared HTTP/1.1
//! client, one task per viewer that owns all its measurements (no locks or shared counters per
//! chunk), records merged once at the end, and its own CPU time in the report.
//!
//! Timing: client i (0-based) starts at `ramp * i / clients` after the run start and reads for
//! exactly `duration` from its own start; the run lasts `ramp + duration`.
//!
//! Exit code: 0 whenever the run completed (failed viewers are in the report); 2 for bad
//! arguments (the message names the flag); 1 if the report could not be written or the runtime
//! could not start.

mod cli;
mod report;

use loadgen::{client, sys};

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use cli::{Args, Plan};
use client::{ClientRecord, Job, Progress, Shared};
use sys::{CpuTimes, FileLimit};

/// Time between the end of setup and the first client's start, so spawning never delays it.
const START_LEAD: Duration = Duration::from_millis(50);
/// Interval of the progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// File descriptors kept free for everything but client sockets.
const FD_HEADROOM: u64 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match cli::plan(&args) {
        Ok(p) => p,
        Err(e) => e.exit(),
    };
    // Open the report file first: a bad path is an argument error, not a lost run.
    let mut report_file = match &args.report {
        None => None,
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => Args::command()
                .error(ErrorKind::ValueValidation, format!("--report: cannot create '{}': {e}", path.display()))
                .exit(),
        },
    };

    let file_limit = FileLimit::current();
    if let Some(soft) = file_limit.and_then(|l| l.soft) {
        if u64::from(args.clients) + FD_HEADROOM > soft {
            eprintln!(
                "loadgen: warning: {} clients need about {} file descriptors but the limit is {soft}; \
                 clients past it fail with EMFILE (raise it with `ulimit -n {}`)",
                args.clients,
                u64::from(args.clients) + FD_HEADROOM,
                (u64::from(args.clients) + 256).next_power_of_two()
            );
        }
    }

    let worker_threads =
        args.worker_threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |n| n as usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(worker_threads).enable_all().build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let cpu_before = CpuTimes::now();
    let outcome = runtime.block_on(run(&args, &plan));
    let (records, wall, peak_streaming) = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cpu = match (CpuTimes::now(), cpu_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    drop(runtime);

    let facts =
        report::RunFacts { wall, cpu, peak_rss: sys::peak_rss_bytes(), peak_streaming, worker_threads, file_limit };
    let report = report::build(&args, &plan, records, facts);
    let json = match serde_json::to_string_pretty(&report) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("loadgen: cannot serialize the report: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{json}");
    if let (Some(file), Some(path)) = (report_file.as_mut(), &args.report) {
        if let Err(e) = file.write_all(json.as_bytes()).and_then(|()| file.write_all(b"\n")) {
            eprintln!("loadgen: --report: cannot write '{}': {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Start every client at its time, wait for all, and return their records, the wall time and
/// the peak number of concurrent streams.
async fn run(args: &Args, plan: &Plan) -> anyhow::Result<(Vec<ClientRecord>, Duration, u64)> {
    let shared = Arc::new(Shared {
        http: client::http_client(args.connect_timeout, args.clients as usize)?,
        read_timeout: args.read_timeout,
        connect_timeout: args.connect_timeout,
        progress: Progress::default(),
        client: args.client,
    });

    // One connection cap per host:port, if asked.
    let mut limiters: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let limiter_of = |url: &str, limiters: &mut HashMap<String, Arc<Semaphore>>| {
        let cap = args.max_connections_per_host?;
        let u = reqwest::Url::parse(url).ok()?;
        let key = format!("{}:{}", u.host_str()?, u.port_or_known_default()?);
        Some(limiters.entry(key).or_insert_with(|| Arc::new(Semaphore::new(cap as usize))).clone())
    };
    let channel_limiters: Vec<Option<Arc<Semaphore>>> =
        plan.urls.iter().map(|u| limiter_of(u, &mut limiters)).collect();

    let n = plan.assignment.len();
    let start = Instant::now() + START_LEAD;
    let mut handles = Vec::with_capacity(n);
    for (id, &ch) in plan.assignment.iter().enumerate() {
        // Even spacing: client i at ramp * i / n (exact in nanoseconds).
        let offset = Duration::from_nanos((args.ramp.as_nanos() * id as u128 / n as u128) as u64);
        let job = Job {
            id,
            channel: plan.channels[ch].clone(),
            url: plan.urls[ch].clone(),
            offset,
            start_at: start + offset,
            end_at: start + offset + args.duration,
            limiter: channel_limiters[ch].clone(),
        };
        handles.push(tokio::spawn(client::run(job, shared.clone())));
    }

    let progress = (!args.quiet).then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tick.tick().await;
                let p = &shared.progress;
                eprintln!(
                    "loadgen: {:>6.1}s  started {}/{n}  streaming {}  finished {}  failed {}",
                    start.elapsed().as_secs_f64(),
                    p.started.load(Ordering::Relaxed),
                    p.streaming.load(Ordering::Relaxed),
                    p.finished.load(Ordering::Relaxed),
                    p.failed.load(Ordering::Relaxed),
                );
            }
        })
    });

    let mut records = Vec::with_capacity(n);
    for h in handles {
        records.push(h.await?);
    }
    let wall = start.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let peak = shared.progress.peak_streaming.load(Ordering::Relaxed);
    Ok((records, wall, peak))
}
