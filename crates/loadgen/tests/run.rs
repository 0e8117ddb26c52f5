//! The real `loadgen` binary against an in-process `fakeprovider`, over real sockets.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fakeprovider::{AccountSpec, FakeConfig, FakeProvider, Fault, FaultKind};
use serde_json::Value;

/// Size of the sample the fake loops (testdata/media/sample-720p.ts).
const SAMPLE_LEN: u64 = 2_277_244;

async fn provider(bitrate_bps: u64) -> FakeProvider {
    let cfg =
        FakeConfig { bitrate_bps: Some(bitrate_bps), ..FakeConfig::with_accounts(vec![AccountSpec::new("u", "p", 0)]) };
    FakeProvider::start(cfg).await.expect("fakeprovider starts")
}

/// Run the binary (off the runtime, so the provider keeps serving).
async fn loadgen(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen")).args(&args).output().expect("loadgen runs")
    })
    .await
    .unwrap()
}

/// The report of a run that must have completed (exit 0).
fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}\nstdout: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is the JSON report")
}

fn clients(r: &Value) -> &Vec<Value> {
    r["clients"].as_array().expect("--per-client rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_streams_at_the_paced_rate_without_ts_errors() {
    let p = provider(2_000_000).await;
    let started = Instant::now();
    let template = format!("{}/live/u/p/{{channel}}.ts", p.url());
    let report_path = std::env::temp_dir().join(format!("loadgen-test-{}.json", std::process::id()));
    let out = loadgen(&[
        "--url-template",
        &template,
        "--channels",
        "1,2,3",
        "--clients",
        "20",
        "--ramp",
        "1s",
        "--duration",
        "2500ms",
        "--per-client",
        "--report",
        report_path.to_str().unwrap(),
    ])
    .await;
    let since_provider_start = started.elapsed();
    let r = report(&out);

    // The file holds the same report.
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    std::fs::remove_file(&report_path).ok();
    assert_eq!(file, r);

    assert_eq!(r["config"]["clients_per_channel"], serde_json::json!({"1": 7, "2": 7, "3": 6}));
    let t = &r["totals"];
    assert_eq!(t["clients"], 20);
    assert_eq!(t["ok"], 20, "{t}");
    assert_eq!(t["failed"], 0);
    assert_eq!(t["by_status"], serde_json::json!({"200": 20}));
    assert_eq!(t["ended_early"], 0);
    let peak = t["peak_streaming"].as_u64().unwrap();
    assert!((2..=20).contains(&peak), "peak {peak}");
    // Ramp 1 s + 2.5 s per client.
    let wall = t["wall_s"].as_f64().unwrap();
    assert!((3.4..5.0).contains(&wall), "wall {wall}");

    // The provider saw exactly these viewers and sent at least what they received.
    let counters = p.counters();
    assert_eq!(counters.total_opened, 20);
    let received: u64 = clients(&r).iter().map(|c| c["bytes"].as_u64().unwrap()).sum();
    assert_eq!(t["bytes"].as_u64().unwrap(), received);
    assert!(counters.accounts["u"].bytes_sent >= received);

    // The fake's first loop point is 9.1 s after its start at 2 Mbit/s; runs that end before it
    // see no counter jump, later ones at most one per PID (5) per client.
    let cc_allowed = if since_provider_start < Duration::from_secs(9) { 0 } else { 5 };
    for c in clients(&r) {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["status"], 200);
        let ttfb = c["ttfb_us"].as_u64().expect("ttfb");
        assert!(ttfb > 0 && ttfb < 1_000_000, "ttfb {ttfb}");
        assert!(c["headers_us"].as_u64().unwrap() <= ttfb);
        let rate = c["rate_bps"].as_u64().unwrap() as f64;
        assert!((1_600_000.0..=2_400_000.0).contains(&rate), "rate {rate} in {c}");
        let reading = c["reading_ms"].as_f64().unwrap();
        assert!((2000.0..=2600.0).contains(&reading), "reading {reading}");
        let gap = c["longest_gap_ms"].as_f64().unwrap();
        assert!(gap > 0.0 && gap < 500.0, "gap {gap}");
        assert_eq!(c["ts"]["sync_errors"], 0, "{c}");
        assert_eq!(c["ts"]["skipped_bytes"], 0, "the fake starts on a packet boundary: {c}");
        assert!(c["ts"]["continuity_errors"].as_u64().unwrap() <= cc_allowed, "{c}");
        let bytes = c["bytes"].as_u64().unwrap();
        assert_eq!(c["ts"]["packets"].as_u64().unwrap(), bytes / 188, "{c}");
    }

    assert_eq!(r["ttfb_us"]["n"], 20);
    for k in ["min", "p50", "p90", "p99", "max"] {
        assert!(r["ttfb_us"][k].as_f64().unwrap() > 0.0, "ttfb {k}");
    }
    let d = &r["delivered_mbps"];
    assert_eq!(d["n"], 20);
    assert!(d["min"].as_f64().unwrap() <= d["p1"].as_f64().unwrap());
    assert!(d["p1"].as_f64().unwrap() <= d["p10"].as_f64().unwrap());
    assert!(d["p10"].as_f64().unwrap() <= d["p50"].as_f64().unwrap());
    assert!(d["p50"].as_f64().unwrap() <= d["max"].as_f64().unwrap());
    assert!((1.6..=2.4).contains(&d["p50"].as_f64().unwrap()), "{d}");
    let sum = t["sum_client_mbps"].as_f64().unwrap();
    assert!((32.0..=48.0).contains(&sum), "sum {sum}");
    assert!(r["longest_gap_ms"]["max"].as_f64().unwrap() >= r["longest_gap_ms"]["p50"].as_f64().unwrap());
    assert_eq!(r["ts"]["sync_errors"], 0);
    assert_eq!(r["ts"]["clients_with_sync_errors"], 0);
    assert_eq!(r["ts"]["clients_without_ts"], 0);
    assert!(r["loadgen"]["cpu_user_s"].as_f64().is_some());
    assert!(r["loadgen"]["peak_rss_mib"].as_f64().unwrap() > 0.0);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_failed_with_their_status() {
    let p = provider(2_000_000).await;
    // Wrong password: the fake answers 401 to every client.
    let template = format!("{}/live/u/wrong/{{channel}}.ts", p.url());
    let out =
        loadgen(&["--url-template", &template, "--channel-range", "1-2", "--clients", "6", "--duration", "1s"]).await;
    let r = report(&out);
    let t = &r["totals"];
    assert_eq!((t["clients"].as_u64(), t["ok"].as_u64(), t["failed"].as_u64()), (Some(6), Some(0), Some(6)));
    assert_eq!(t["failed_by_reason"], serde_json::json!({"status 401": 6}));
    assert_eq!(t["by_status"], serde_json::json!({"401": 6}));
    assert_eq!(t["bytes"], 0);
    assert_eq!(r["ttfb_us"], serde_json::json!({"n": 0}));
    assert!(r.get("clients").is_none(), "no rows without --per-client");

    // A channel that does not exist is a 404; the others stream.
    let template = format!("{}/live/u/p/{{channel}}.ts", p.url());
    let out = loadgen(&[
        "--url-template",
        &template,
        "--channels",
        "1,99999",
        "--clients",
        "4",
        "--duration",
        "1s",
        "--per-client",
        "-q",
    ])
    .await;
    let r = report(&out);
    assert_eq!(r["totals"]["ok"], 2);
    assert_eq!(r["totals"]["failed_by_reason"], serde_json::json!({"status 404": 2}));
    for c in clients(&r) {
        let missing = c["channel"] == "99999";
        assert_eq!(c["ok"], !missing, "{c}");
        if missing {
            assert_eq!((c["status"].as_u64(), c["reason"].as_str()), (Some(404), Some("status 404")));
            assert!(c["ttfb_us"].is_null());
        }
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_ends_early_and_a_stalled_one_times_out() {
    let p = provider(2_000_000).await;
    p.set_fault(Fault::new(FaultKind::CutAfter { bytes: 100_000 }).for_stream(1));
    p.set_fault(Fault::new(FaultKind::Stall { after_bytes: 50_000 }).for_stream(2));
    let template = format!("{}/live/u/p/{{channel}}.ts", p.url());
    let out = loadgen(&[
        "--url-template",
        &template,
        "--channels",
        "1,2,3",
        "--clients",
        "3",
        "--duration",
        "3s",
        "--read-timeout",
        "1s",
        "--per-client",
    ])
    .await;
    let r = report(&out);
    let rows = clients(&r);
    let cut = &rows[0];
    assert_eq!((cut["ok"].as_bool(), cut["ended_early"].as_bool()), (Some(false), Some(true)), "{cut}");
    assert_eq!(cut["status"], 200);
    assert_eq!(cut["bytes"], 100_000, "{cut}");
    let reason = cut["reason"].as_str().unwrap();
    assert!(reason.starts_with("body error") || reason == "eof", "{reason}");

    let stalled = &rows[1];
    assert_eq!(stalled["reason"], "read timeout", "{stalled}");
    assert_eq!(stalled["ended_early"], true);
    assert_eq!(stalled["bytes"], 50_000);
    let gap = stalled["longest_gap_ms"].as_f64().unwrap();
    assert!((1000.0..1300.0).contains(&gap), "the stall is the longest gap: {gap}");

    assert_eq!(rows[2]["ok"], true, "{}", rows[2]);
    assert_eq!(r["totals"]["ended_early"], 2);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fakes_loop_point_shows_as_continuity_errors() {
    // At 20 Mbit/s the 2.28 MB sample loops every 0.91 s, and the fake does not flag the loop
    // with a discontinuity_indicator: every PID (PAT, PMT, SDT, video, audio) restarts at
    // counter 0, which is 5 continuity errors per loop a client reads through.
    let p = provider(20_000_000).await;
    let template = format!("{}/live/u/p/{{channel}}.ts", p.url());
    let out = loadgen(&[
        "--url-template",
        &template,
        "--channels",
        "1",
        "--clients",
        "2",
        "--duration",
        "2500ms",
        "--per-client",
    ])
    .await;
    let r = report(&out);
    for c in clients(&r) {
        assert_eq!(c["ok"], true, "{c}");
        let bytes = c["bytes"].as_u64().unwrap();
        let loops = bytes / SAMPLE_LEN + 1;
        let cc = c["ts"]["continuity_errors"].as_u64().unwrap();
        assert!(bytes > 2 * SAMPLE_LEN, "{c}");
        assert!((5..=5 * loops).contains(&cc), "{cc} continuity errors over {bytes} bytes");
        assert_eq!(c["ts"]["sync_errors"], 0);
    }
    assert_eq!(r["ts"]["clients_with_continuity_errors"], 2);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_error_not_a_crash() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let template = format!("http://127.0.0.1:{port}/live/{{channel}}.ts");
    let out = loadgen(&[
        "--url-template",
        &template,
        "--channels",
        "1",
        "--clients",
        "3",
        "--duration",
        "1s",
        "--per-client",
    ])
    .await;
    let r = report(&out);
    assert_eq!(r["totals"]["failed"], 3);
    assert_eq!(r["totals"]["by_status"], serde_json::json!({"none": 3}));
    let reasons = r["totals"]["failed_by_reason"].as_object().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let (reason, n) = reasons.iter().next().unwrap();
    assert!(reason.starts_with("connect error: "), "{reason}");
    assert_eq!(n, 3);
    let row = &clients(&r)[0];
    assert!(row["error"].as_str().unwrap().contains("onnection refused"), "{row}");
    assert!(!row["error"].as_str().unwrap().contains("127.0.0.1"), "no URL in the error text: {row}");
}

#[tokio::test]
async fn bad_arguments_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (&["--url-template", "http://h/live.ts", "--channels", "1"], "--url-template"),
        (&["--url-template", "http://h/{channel}.ts", "--channels", "1", "--ramp", "5parsecs"], "--ramp"),
        (&["--url-template", "http://h/{channel}.ts"], "--channels"),
        (&["--url-template", "http://h/{channel}.ts", "--channel-range", "50-1"], "--channel-range"),
    ];
    for (args, flag) in cases {
        let out = loadgen(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} should name {flag}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// `--client raw` against the bare server (close-delimited bodies): the same measurements as the
/// default client; a chunked answer (the provider's own) is a clear failure, a 404 is a status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_client_measures_close_delimited_streams_and_refuses_chunked_ones() {
    let p = provider(2_000_000).await;
    let server =
        loadgen::bare::Server::new(loadgen::bare::Config::new(format!("{}/live/u/p/{{channel}}.ts", p.url()))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.run(listener));

    let template = format!("{bare}/live/u/p/{{channel}}.ts");
    let args = ["--channels", "1,2", "--clients", "6", "--ramp", "500ms", "--duration", "2500ms", "--per-client"];
    let r = report(&loadgen(&[&["--url-template", &template, "--client", "raw"], &args[..]].concat()).await);
    assert_eq!(r["config"]["client"], "raw");
    assert_eq!(r["totals"]["ok"], 6, "{}", r["totals"]);
    for c in clients(&r) {
        assert_eq!(c["status"], 200, "{c}");
        let rate = c["rate_bps"].as_u64().unwrap() as f64;
        assert!((1_600_000.0..=2_400_000.0).contains(&rate), "rate {rate} in {c}");
        assert!(c["headers_us"].as_u64().unwrap() <= c["ttfb_us"].as_u64().unwrap());
        assert_eq!(c["ts"]["sync_errors"], 0, "{c}");
        assert_eq!(c["ts"]["skipped_bytes"], 0, "{c}");
        assert_eq!(c["ts"]["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap() / 188, "{c}");
    }
    // The bare server shared one upstream per channel among the six.
    assert_eq!(p.counters().total_opened, 2);

    // The provider answers chunked: refused by name, not misread.
    let chunked = format!("{}/live/u/p/{{channel}}.ts", p.url());
    let r =
        report(&loadgen(&["--url-template", &chunked, "--client", "raw", "--channels", "1", "--duration", "1s"]).await);
    assert_eq!(r["totals"]["failed"], 1);
    let reasons = r["totals"]["failed_by_reason"].as_object().unwrap();
    assert!(reasons.keys().all(|k| k.contains("chunked")), "{reasons:?}");

    // Not a channel of the bare server: a 404 status, like the default client reports it.
    let missing = format!("{bare}/live/u/p/{{channel}}.ts");
    let r = report(
        &loadgen(&["--url-template", &missing, "--client", "raw", "--channels", "a%20b", "--duration", "1s"]).await,
    );
    assert_eq!(r["totals"]["by_status"], serde_json::json!({"404": 1}), "{}", r["totals"]);
    p.shutdown().await;
}
