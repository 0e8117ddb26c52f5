//! Shared transcoding: one ffmpeg per (channel, profile), fed from the channel's shared ring, writing into a ring
//! of its own that every viewer of that profile reads.
//!
//! A transcode is a [`Session`] like any other (same ring, keyframe join, slow-viewer rules, linger, sessions
//! API), whose producer is not an upstream connection but an ffmpeg child process: the task joins the channel's
//! own session as one viewer (so the provider still sees one connection, whoever watches plain or transcoded),
//! pipes that stream into ffmpeg's stdin, and chunks ffmpeg's stdout into its ring. The gateway supervises the
//! child: started with the first viewer, stopped after the linger, restarted when it dies (at most
//! `max_restarts` in a row; an hour of good output earns them back), its stderr's last lines kept for the
//! sessions API, and killed and reaped on every path (`kill_on_drop`, then an explicit kill and wait).
//! A template that fails at once ends the session with ffmpeg's first error line, which the viewer is told.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tunerpool_domain::{Channel, Level, NewEvent};

use crate::linger::{Linger, Watched};
use crate::relay::{Inner, Membership, Relay, WatchError};
use crate::ring::{Next, Reader};
use crate::session::{Session, State};

/// A named ffmpeg output template; exists so that operators can offer lighter or more compatible versions of every
/// channel (a 480p H.264 for phones, an AAC audio track for TVs without AC-3) by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub name: String,
    /// ffmpeg's output options, between the input (`-f mpegts -i pipe:0`) and the output (`-f mpegts pipe:1`).
    pub args: Vec<String>,
    /// Most transcodes of this profile at once (0: only the global cap).
    pub max_running: u32,
}

/// As `transcode.profiles` writes it: `NAME = options`, `NAME@N = options` with a cap.
impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.max_running {
            0 => write!(f, "{} = {}", self.name, self.args.join(" ")),
            n => write!(f, "{}@{n} = {}", self.name, self.args.join(" ")),
        }
    }
}

impl Profile {
    fn new(name: &str, args: &str) -> Profile {
        Profile { name: name.into(), args: args.split_whitespace().map(String::from).collect(), max_running: 0 }
    }
}

/// The profiles every installation has (operators add their own, and may replace these by name).
pub fn builtin_profiles() -> Vec<Profile> {
    let h264 = |height: u32, rate: &str| {
        format!(
            "-map 0:v:0 -map 0:a:0? -c:v libx264 -preset veryfast -tune zerolatency -vf scale=-2:{height} \
             -b:v {rate} -maxrate {rate} -bufsize {rate} -g 50 -c:a aac -b:a 128k -ac 2"
        )
    };
    vec![
        Profile::new("copy", "-map 0 -c copy"),
        Profile::new("h264-720p", &h264(720, "3M")),
        Profile::new("h264-480p", &h264(480, "1200k")),
        Profile::new("aac-audio", "-map 0:v? -map 0:a? -c:v copy -c:a aac -b:a 128k -ac 2"),
    ]
}

/// How transcoding runs, from the `[transcode]` configuration.
#[derive(Debug, Clone)]
pub struct TranscodeSettings {
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// Arguments before the input, for hardware acceleration (`-hwaccel vaapi -hwaccel_device /dev/dri/renderD128`).
    pub input_args: Vec<String>,
    /// Most transcodes at once, all profiles together.
    pub max_running: u32,
    /// Restarts of a dying ffmpeg in a row before the transcode gives up.
    pub max_restarts: u32,
    pub profiles: Vec<Profile>,
}

impl Default for TranscodeSettings {
    fn default() -> Self {
        TranscodeSettings {
            ffmpeg: PathBuf::from("ffmpeg"),
            input_args: Vec::new(),
            max_running: 4,
            max_restarts: 3,
            profiles: builtin_profiles(),
        }
    }
}

impl TranscodeSettings {
    /// The built-in profiles with `own` added (replacing a built-in one of the same name).
    pub fn with_profiles(mut self, own: &[Profile]) -> Self {
        for p in own {
            self.profiles.retain(|b| b.name != p.name);
            self.profiles.push(p.clone());
        }
        self
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

/// What the sessions API shows of a transcode's ffmpeg.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct TranscoderInfo {
    /// The running ffmpeg's process id.
    pub pid: Option<u32>,
    /// Times ffmpeg was restarted after dying.
    pub restarts: u32,
    /// ffmpeg's last stderr lines (at most [`LOG_LINES`]).
    pub log: Vec<String>,
}

/// stderr lines kept per transcode.
pub const LOG_LINES: usize = 20;
/// Longest stderr line kept.
const LOG_LINE_CHARS: usize = 300;
/// ffmpeg's first output may take this long (a keyframe from the channel, then the encoder's start).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// No output for this long once running: ffmpeg is stuck, and is restarted.
const OUTPUT_STALL: Duration = Duration::from_secs(15);
/// Output for this long earns back the restarts.
const HEALTHY_AFTER: Duration = Duration::from_secs(3600);

/// Why one ffmpeg run ended.
enum Ended {
    Stopped,
    Idle,
    /// ffmpeg exited or stalled, or its input ended.
    Failed(String),
}

/// The transcode session's task: from joining the channel to the last byte.
///
/// Boxed: the task joins the channel through the relay, which spawns tasks like this one; a named `Send` future
/// type breaks that cycle for the compiler.
pub(crate) fn run(
    session: Arc<Session>,
    inner: Arc<Inner>,
    channel: Channel,
    profile: Profile,
) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let reason = transcode(&session, &inner, &channel, &profile).await;
        tracing::info!(session = session.id, channel = %channel.name, profile = %profile.name, %reason,
            "transcode closed");
        if !matches!(reason.as_str(), "stopped" | "no viewers") {
            let msg = format!("channel {} as {}: {reason}", channel.name, profile.name);
            inner.catalog.note(NewEvent::new(Level::Warn, "transcode", msg).channel(channel.id));
        }
        session.close(&inner, reason);
    })
}

async fn transcode(session: &Arc<Session>, inner: &Arc<Inner>, channel: &Channel, profile: &Profile) -> String {
    let relay = Relay::from_inner(inner.clone());
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let joined = relay
        .join(channel.id, session.claim, |s| {
            s.add_viewer(id, format!("transcoder {}", profile.name), None, session.priority());
            Membership { session: s.clone(), viewer: id }
        })
        .await;
    let (source, membership) = match joined {
        Ok(j) => j,
        Err(WatchError::NoCapacity(why)) => {
            session.set_no_capacity();
            return why;
        }
        Err(e) => return e.to_string(),
    };
    session.set_source(source.clone());
    let settings = &inner.settings.transcode;
    let mut restarts = 0;
    let reason = loop {
        let reader = source.ring.subscribe_at_keyframe(inner.settings.keyframe_wait);
        let mut child = match spawn(settings, profile) {
            Ok(c) => c,
            Err(e) => break format!("profile {}: cannot start {} ({e})", profile.name, settings.ffmpeg.display()),
        };
        session.transcoder_mut(|t| t.pid = child.id());
        let feeder = tokio::spawn(feed(reader, child.stdin.take().expect("piped")));
        let stderr = child.stderr.take().expect("piped");
        let log_session = session.clone();
        let logger = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line: String = line.chars().take(LOG_LINE_CHARS).collect();
                log_session.transcoder_mut(|t| {
                    if t.log.len() == LOG_LINES {
                        t.log.remove(0);
                    }
                    t.log.push(line);
                });
            }
        });
        let started = Instant::now();
        let produced_before = session.has_run();
        let ended = pump(inner, session, &mut child).await;
        feeder.abort();
        // Kill and reap: no zombie and no orphan, whatever ended the run.
        let _ = child.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), logger).await;
        session.transcoder_mut(|t| t.pid = None);
        match ended {
            Ended::Stopped => break "stopped".to_string(),
            Ended::Idle => break "no viewers".to_string(),
            Ended::Failed(why) => {
                let last = session.transcoder_log().into_iter().rev().find(|l| !l.trim().is_empty());
                let why = match &last {
                    Some(line) => format!("{why}: {line}"),
                    None => why,
                };
                if source.is_stopping() {
                    break format!("the channel ended ({why})");
                }
                if !produced_before && !session.has_run() {
                    // Failed before its first output: the template (or ffmpeg) does not work; say why.
                    break format!("profile {}: ffmpeg failed: {why}", profile.name);
                }
                if started.elapsed() >= HEALTHY_AFTER {
                    restarts = 0;
                }
                restarts += 1;
                if restarts > settings.max_restarts {
                    break format!("profile {}: ffmpeg failed {restarts} times in a row: {why}", profile.name);
                }
                tracing::warn!(session = session.id, profile = %profile.name, restarts, reason = %why,
                    "ffmpeg ended; restarting it, viewers stay");
                session.transcoder_mut(|t| t.restarts += 1);
                session.set_switching();
            }
        }
    };
    drop(membership);
    reason
}

/// ffmpeg reading MPEG-TS on stdin and writing MPEG-TS on stdout, killed if dropped.
fn spawn(settings: &TranscodeSettings, profile: &Profile) -> std::io::Result<Child> {
    let mut cmd = Command::new(&settings.ffmpeg);
    cmd.args(["-hide_banner", "-loglevel", "error", "-fflags", "+genpts+discardcorrupt"])
        .args(&settings.input_args)
        .args(["-f", "mpegts", "-i", "pipe:0"])
        .args(&profile.args)
        .args(["-f", "mpegts", "-muxdelay", "0", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn()
}

/// Copies the channel's stream into ffmpeg until the channel ends (or ffmpeg stops reading).
async fn feed(mut reader: Reader, mut stdin: ChildStdin) {
    loop {
        match reader.next().await {
            Next::Chunk(b) => {
                if stdin.write_all(&b).await.is_err() {
                    return;
                }
            }
            Next::Jumped { .. } => {}
            Next::Closed => return,
        }
    }
}

/// Reads ffmpeg's output into the session's ring until it ends, the session is stopped, or nobody watched for
/// the linger.
async fn pump(inner: &Inner, session: &Session, child: &mut Child) -> Ended {
    let settings = &inner.settings;
    let Some(mut stdout) = child.stdout.take() else { return Ended::Failed("no output pipe".into()) };
    let mut ring_feed = crate::session::RingFeed::new(settings);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut flush_tick = tokio::time::interval(settings.chunk_delay);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut linger = Linger::new(session.viewer_count() == 0, settings.linger, tokio::time::Instant::now());
    let mut stall_at = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        tokio::select! {
            _ = session.stop.cancelled() => return Ended::Stopped,
            _ = session.viewers_changed() => {
                let idle = session.viewer_count() == 0;
                match linger.viewers_changed(idle, || settings.linger, tokio::time::Instant::now()) {
                    Watched::Lingering => {
                        session.set_idle(true);
                        inner.slot_released.notify_waiters();
                    }
                    Watched::Running if session.has_run() => session.set_idle(false),
                    Watched::Running => {}
                }
            }
            _ = linger.run_out(), if linger.deadline().is_some() => {
                if linger.expired(session.viewer_count() == 0) {
                    return Ended::Idle;
                }
            }
            _ = tokio::time::sleep_until(stall_at) => {
                let waited = if ring_feed.keyframe_out() { OUTPUT_STALL } else { START_TIMEOUT };
                return Ended::Failed(format!("ffmpeg gave no output for {waited:?}"));
            }
            _ = flush_tick.tick() => {
                ring_feed.feed(&session.ring, &[], Instant::now(), true, |_| {});
            }
            read = stdout.read_buf(&mut buf) => match read {
                Ok(0) => {
                    let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return Ended::Failed(format!("ffmpeg ended ({status})"));
                }
                Ok(_) => {
                    stall_at = tokio::time::Instant::now() + OUTPUT_STALL;
                    let first = !ring_feed.keyframe_out();
                    let keyframe = ring_feed.feed(&session.ring, &buf, Instant::now(), false, |_| {});
                    buf.clear();
                    if keyframe && first {
                        session.set_producing();
                    }
                }
                Err(e) => return Ended::Failed(format!("cannot read ffmpeg's output: {e}")),
            },
        }
    }
}

impl Session {
    /// The transcode produced its first keyframe (again, after a restart): it runs.
    fn set_producing(&self) {
        self.mark_running();
        self.set_idle(self.viewer_count() == 0);
    }

    fn set_idle(&self, idle: bool) {
        self.set_state_pub(if idle { State::Lingering } else { State::Running });
    }

    fn set_switching(&self) {
        self.set_state_pub(if self.has_run() { State::Switching } else { State::Starting });
    }
}
