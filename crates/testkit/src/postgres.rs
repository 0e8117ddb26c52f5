//! A throwaway PostgreSQL server for tests: its own temp dir and free port,
//! no durability (fsync off), stopped and removed when dropped — or, for the
//! one a test binary shares ([`PgServer::shared`]), when that binary exits.
//!
//! A missing `postgres` is a failure, never a skip: CI must really run the
//! store's tests on PostgreSQL. The binaries are looked for on `PATH` and in
//! `/usr/lib/postgresql/*/bin` (where Debian's `postgresql` package puts
//! them). PostgreSQL refuses to run as root; when the tests do, `initdb` and
//! `postgres` run as the `postgres` user (the package creates it) through
//! `runuser`, in a temp dir handed to that user.
//!
//! The server is not a direct child: a small `sh` watchdog starts it and
//! stops it (fast shutdown) and removes the temp dir as soon as its stdin
//! closes. The handle holds that stdin, so the server goes away when the
//! handle is dropped, and also when the test process exits without dropping
//! it (a `static`), or is killed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; every test database belongs to it.
const USER: &str = "tunerpool";

/// A running PostgreSQL server (see the module's doc). Tests get a fresh
/// database of it from [`PgServer::fresh_database`]: creating a database
/// takes milliseconds, starting a server about a second.
pub struct PgServer {
    watchdog: Option<Child>,
    port: u16,
    dir: PathBuf,
    databases: AtomicU64,
    /// The server's command line, for `sh` ([`PgServer::restart`] runs it again).
    command: String,
}

impl PgServer {
    /// The server this test binary shares, started on first use.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(PgServer::start)
    }

    /// Starts a server of its own on a free port and waits until it accepts
    /// connections. Panics with what to install when PostgreSQL is missing.
    pub fn start() -> PgServer {
        let mut last_error = String::new();
        // The free port can be taken between our probe and the server's bind: try a few.
        for _ in 0..3 {
            match Self::try_start() {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start PostgreSQL for the tests: {last_error}");
    }

    fn try_start() -> Result<PgServer, String> {
        let initdb = find_binary("initdb");
        let postgres = find_binary("postgres");
        let as_root = euid_is_root();
        let dir = tempfile::Builder::new().prefix("tunerpool-pg-").tempdir().map_err(|e| e.to_string())?.keep();
        if as_root {
            // The server's files must belong to the user it runs as.
            run(Command::new("chown").args(["postgres:postgres", &dir.display().to_string()]))?;
        }
        let data = dir.join("data");
        let mut init = as_user(as_root, &initdb);
        init.args(["-D", &data.display().to_string(), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"]);
        if let Err(e) = run(&mut init) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let mut server = as_user(as_root, &postgres);
        server.args(["-D", &data.display().to_string(), "-p", &port.to_string(), "-k", &dir.display().to_string()]);
        for setting in ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "listen_addresses=127.0.0.1"] {
            server.args(["-c", setting]);
        }
        // The watchdog: runs the server in the background, and when its own
        // stdin closes (the handle dropped, the test process gone) stops it
        // with a fast shutdown (SIGINT to the postmaster named by its pid
        // file: the one `restart` started, if any), waits for it (for its pid
        // file to go, for one it did not start), and removes the temp dir.
        let script = format!(
            "{} >{log} 2>&1 </dev/null & pg=$!\n\
             cat >/dev/null\n\
             kill -INT \"$(head -n 1 {pid} 2>/dev/null || echo $pg)\" 2>/dev/null\n\
             wait $pg\n\
             n=0; while [ -e {pid} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done\n\
             rm -rf {dir}\n",
            shell_words(&server),
            log = quote(&dir.join("server.log")),
            pid = quote(&data.join("postmaster.pid")),
            dir = quote(&dir),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let command = shell_words(&server);
        let mut server = PgServer { watchdog: Some(watchdog), port, dir, databases: AtomicU64::new(0), command };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if server.is_ready(&data) {
                return Ok(server);
            }
            if let Some(Ok(Some(_))) = server.watchdog.as_mut().map(Child::try_wait) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
        Err(format!("postgres on port {port} did not become ready; its log:\n{log}"))
    }

    /// The postmaster writes "ready" into its pid file once it accepts
    /// connections (PostgreSQL ≥ 10); anything can read it, root or not.
    fn is_ready(&self, data: &Path) -> bool {
        std::fs::read_to_string(data.join("postmaster.pid"))
            .is_ok_and(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Stops the server (a fast shutdown: its clients' connections are closed) and waits until it no longer
    /// accepts connections; its files stay, for [`PgServer::restart`]. For tests of what happens while the
    /// database is down: use a server of the test's own ([`PgServer::start`]), never the shared one.
    pub fn stop(&self) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {}: is the server running?", pid_file.display()));
        run(Command::new("kill").args(["-INT", &pid])).unwrap_or_else(|e| panic!("cannot stop PostgreSQL: {e}"));
        let started = Instant::now();
        while pid_file.exists() || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(20), "PostgreSQL on port {} did not stop", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again after [`PgServer::stop`], on the same port with the same databases, and waits
    /// until it accepts connections. The watchdog stops it as before (it reads the new process id).
    pub fn restart(&self) {
        let script = format!("{} >>{log} 2>&1 </dev/null &", self.command, log = quote(&self.dir.join("server.log")));
        run(Command::new("sh").args(["-c", &script])).unwrap_or_else(|e| panic!("cannot restart PostgreSQL: {e}"));
        let data = self.dir.join("data");
        let started = Instant::now();
        while !self.is_ready(&data) {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(20), "PostgreSQL did not start again; its log:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database and returns its URL: each test gets its
    /// own, so tests of one binary run in parallel on one server.
    pub async fn fresh_database(&self) -> String {
        use sqlx::Connection;
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL on port {}: {e}", self.port));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = conn.close().await;
        self.url(&name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// `name` on `PATH`, else in the newest `/usr/lib/postgresql/*/bin`.
/// Panics naming the package to install.
fn find_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or_default();
    if let Some(found) = on_path {
        return found;
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin").join(name)).filter(|f| f.is_file()).collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian.pop().unwrap_or_else(|| {
        panic!(
            "`{name}` not found on PATH nor in /usr/lib/postgresql/*/bin: install PostgreSQL \
             (apt-get install postgresql) — the store's tests need a real server and are not skipped"
        )
    })
}

/// Whether this process runs as root (the effective uid, from /proc).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// `program`, run as the `postgres` user when we are root.
fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// The command line of `cmd`, quoted for `sh`.
fn shell_words(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| quote(Path::new(a))).collect::<Vec<_>>().join(" ")
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}
