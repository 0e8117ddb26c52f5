//! Configuration: built-in defaults, an optional `tunerpool.toml`, `TUNERPOOL_*`
//! environment variables and command-line overrides, in that order (later wins).
//!
//! Every layer is parsed by hand against a fixed table of keys so that *all*
//! problems can be reported at once, each naming where it came from and which
//! key it concerns, instead of stopping at the first serde error.
//!
//! Each key is declared once, in the `config_tables!` invocation below: its
//! field, default, parser, TOML output and reference text all come from there.
//!
//! Environment variables are `TUNERPOOL_` followed by the key in upper case with
//! `.` replaced by `_` (`sync.catalog_interval` → `TUNERPOOL_SYNC_CATALOG_INTERVAL`).
//! `TUNERPOOL_CONFIG`, `TUNERPOOL_USER_PASSWORD` and every variable starting with
//! `TUNERPOOL_PROVIDER_` or `TUNERPOOL_TEST_` are not configuration keys (they belong to CLI subcommands
//! and tests) and are ignored here; any other unknown `TUNERPOOL_*` variable is
//! reported as a problem.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use tunerpool_catalog::quality::{QualityPolicy, QualityWeights};
use tunerpool_catalog::Secret;

/// Name of the configuration file that is read from the working directory
/// when no file is given explicitly.
pub const DEFAULT_FILE: &str = "tunerpool.toml";

/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "TUNERPOOL_";

// ---------------------------------------------------------------------------
// The key table: every key declared once
//
// `config_tables!` takes the whole configuration, the top-level keys and then
// one block per `[section]`, and makes from each key's single entry:
//
// - the public struct field, with the doc comment written above the entry;
// - its default, in the generated `impl Default` of its struct (and so of
//   `Config`);
// - its entry in `KEYS`: the dotted path (`sync.catalog_interval`), the
//   `about` text, and the step that parses a value from the file, the
//   environment or `--set` into the field;
// - its line in `Config::to_toml` (so in `config show`);
// - and so its row in the README's configuration reference ([`reference`]:
//   key, default as `to_toml` writes it, `about`, environment variable, flag).
//
// The order of the entries is the order everywhere: struct, `KEYS`, `to_toml`
// and the reference.
//
// To add a key, add one entry to its section (or to `Config` for a top-level
// key):
//
//     /// What it does and its range: this becomes the field's doc comment.
//     name: Type = default_expression,
//         parse = parser, show = shower, about = " (what the reference adds)";
//
// - `name` is both the field and the last part of the key. Where the key
//   cannot be a Rust field name, write `field as "key"`, as `lineup.match`
//   does (`match_streams as "match": bool = ...`).
// - `parse` is a function or closure `fn(Raw<'_, '_>) -> Result<Type, String>`
//   (see the per-key parsers below: `parse_duration`, `parse_int`, ...). Its
//   error says what is wrong and what to do; the source and key are added by
//   the caller. Checks that span several keys belong in `finish`.
// - `show` is a function or closure `fn(&Type) -> Shown`: `Shown::Value` with
//   the value as TOML text (`show_duration`, `show_bytes`, `show_string`,
//   `show_plain`, ...), or `Shown::Commented` to write a commented-out example
//   line instead (an unset optional key, or a secret). It must write what
//   `parse` reads back: a test loads `to_toml`'s output and compares.
// - `about` may be left out: it is what the reference says after the default
//   (a range, the other choices), starting with a space or a colon.
//
// Then run `tunerpool config reference` and put its output in README.md's
// table, and add the key to `tunerpool.example.toml` (tests check both).
//
// A new section is one more `name => pub struct NameConfig { ... }` block; the
// doc comment above `name` documents the field of `Config`, the one above
// `pub struct` the struct. `Default` is generated: do not derive it.
macro_rules! config_tables {
    (
        $(#[$root_meta:meta])*
        pub struct $Root:ident {
            $(
                $(#[$doc:meta])*
                $field:ident $(as $name:literal)? : $ty:ty = $default:expr,
                    parse = $parse:expr, show = $show:expr $(, about = $about:literal)?;
            )*
        }
        $(
            $(#[$section_doc:meta])*
            $section:ident => $(#[$section_meta:meta])* pub struct $Section:ident {
                $(
                    $(#[$sdoc:meta])*
                    $sfield:ident $(as $sname:literal)? : $sty:ty = $sdefault:expr,
                        parse = $sparse:expr, show = $sshow:expr $(, about = $sabout:literal)?;
                )*
            }
        )*
    ) => {
        $(#[$root_meta])*
        pub struct $Root {
            $( $(#[$doc])* pub $field: $ty, )*
            $( $(#[$section_doc])* pub $section: $Section, )*
        }

        impl Default for $Root {
            fn default() -> Self {
                $Root { $( $field: $default, )* $( $section: $Section::default(), )* }
            }
        }

        $(
            $(#[$section_meta])*
            pub struct $Section {
                $( $(#[$sdoc])* pub $sfield: $sty, )*
            }

            impl Default for $Section {
                fn default() -> Self {
                    $Section { $( $sfield: $sdefault, )* }
                }
            }
        )*

        /// Table names that hold keys.
        const SECTIONS: &[&str] = &[$( stringify!($section) ),*];

        /// Every key, in documentation order.
        static KEYS: &[Key] = &[
            $(
                Key {
                    path: key_name!($field $($name)?),
                    about: key_about!($($about)?),
                    apply: |c, r| {
                        let parse: fn(Raw<'_, '_>) -> Result<$ty, String> = $parse;
                        c.$field = parse(r)?;
                        Ok(())
                    },
                },
            )*
            $($(
                Key {
                    path: concat!(stringify!($section), ".", key_name!($sfield $($sname)?)),
                    about: key_about!($($sabout)?),
                    apply: |c, r| {
                        let parse: fn(Raw<'_, '_>) -> Result<$sty, String> = $sparse;
                        c.$section.$sfield = parse(r)?;
                        Ok(())
                    },
                },
            )*)*
        ];

        /// The text of [`Config::to_toml`]: one line per key, a `[section]`
        /// header before each section's keys.
        fn write_toml(cfg: &$Root) -> String {
            let mut out = String::new();
            $(
                let show: fn(&$ty) -> Shown = $show;
                show(&cfg.$field).write_line(key_name!($field $($name)?), &mut out);
            )*
            $(
                out.push_str(concat!("\n[", stringify!($section), "]\n"));
                $(
                    let show: fn(&$sty) -> Shown = $sshow;
                    show(&cfg.$section.$sfield).write_line(key_name!($sfield $($sname)?), &mut out);
                )*
            )*
            out
        }
    };
}

/// The key's name in the file: the field's, unless `field as "key"` gave one.
macro_rules! key_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $name:literal) => {
        $name
    };
}

/// A key's `about` text, empty when the entry has none.
macro_rules! key_about {
    () => {
        ""
    };
    ($about:literal) => {
        $about
    };
}

config_tables! {
    /// The complete, validated configuration of the gateway.
    ///
    /// It exists so that the rest of the binary receives one value with every
    /// setting already parsed and checked, whichever layer it came from.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Config {
        /// Address the HTTP server listens on.
        listen: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080)),
            parse = parse_listen, show = show_string;
        /// Directory holding the SQLite database and other state.
        data_dir: PathBuf = PathBuf::from("./tunerpool-data"),
            parse = parse_data_dir, show = |p| quoted(&p.to_string_lossy());
        /// `tracing_subscriber::EnvFilter` directives, e.g. `info` or `tunerpool=debug`.
        log_level: String = "info".to_owned(),
            parse = parse_log_filter, show = show_string;
        /// Output format of the logs.
        log_format: LogFormat = LogFormat::Text,
            parse = parse_log_format, show = |f| quoted(f.as_str()), about = " (or `json`)";
        /// Base URL clients use to reach this gateway (http or https, no trailing
        /// slash); `None` when not configured.
        public_url: Option<String> = None,
            parse = parse_public_url, show = |u| show_or_example(u, "\"http://192.168.1.10:8080\"");
    }

    /// Where the catalog is kept.
    store =>
    /// Which database holds the catalog (providers, lineup, users, history).
    ///
    /// Grouped in its own `[store]` table because it is handed as a unit to
    /// the store when it opens.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StoreConfig {
        /// `postgres://user:password@host:port/database` keeps the catalog in
        /// PostgreSQL, shared by several instances; unset (or `sqlite:`): the
        /// SQLite file in `data_dir`. Checked here; the password is never shown.
        url: Option<String> = None,
            parse = parse_store_url, show = show_store_url,
            about = ": the SQLite file in `data_dir` (or `postgres://user:password@host:port/db`)";
    }

    /// Background synchronisation timing.
    sync =>
    /// Timing of the background jobs that keep provider data fresh.
    ///
    /// Grouped in its own `[sync]` table because these settings only matter to the
    /// sync scheduler.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SyncConfig {
        /// How often the provider catalog is re-synced (at least 1m).
        catalog_interval: Duration = Duration::from_secs(12 * 60 * 60),
            parse = |r| parse_duration(r, Duration::from_secs(60)), show = show_duration;
        /// How often account details are refreshed (at least 5s).
        details_interval: Duration = Duration::from_secs(60),
            parse = |r| parse_duration(r, Duration::from_secs(5)), show = show_duration;
        /// Delay before the first account details refresh after start-up.
        details_initial_delay: Duration = Duration::from_secs(60),
            parse = |r| parse_duration(r, Duration::ZERO), show = show_duration;
        /// The largest M3U playlist accepted, in bytes, counted after
        /// decompression (at least 1 MiB).
        max_playlist_bytes: u64 = tunerpool_upstream::Caps::default().playlist,
            parse = |r| parse_bytes(r, MIN_BODY_CAP), show = show_bytes, about = " (after decompression)";
        /// The largest `player_api.php` answer accepted, in bytes (at least 1 MiB).
        max_api_bytes: u64 = tunerpool_upstream::Caps::default().api,
            parse = |r| parse_bytes(r, MIN_BODY_CAP), show = show_bytes, about = " (one `player_api.php` answer)";
    }

    /// Settings for calls to upstream provider APIs.
    upstream =>
    /// Settings of the HTTP client that talks to upstream provider APIs.
    ///
    /// Grouped in its own `[upstream]` table because they are handed as a unit to
    /// the upstream client.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct UpstreamConfig {
        /// Time limit of one upstream API call (at least 1s).
        timeout: Duration = Duration::from_secs(30),
            parse = |r| parse_duration(r, Duration::from_secs(1)), show = show_duration;
        /// Time limit for establishing a connection (at least 1s).
        connect_timeout: Duration = Duration::from_secs(10),
            parse = |r| parse_duration(r, Duration::from_secs(1)), show = show_duration;
        /// `User-Agent` header sent upstream (printable ASCII, not empty).
        user_agent: String = concat!("tunerpool/", env!("CARGO_PKG_VERSION")).to_owned(),
            parse = parse_user_agent, show = show_string;
        /// Maximum number of redirects followed (0..=20).
        max_redirects: u32 = 5,
            parse = |r| parse_int(r, 0, 20), show = show_plain;
    }

    /// How connection slots of provider accounts are handed out.
    pool =>
    /// How the account pool picks accounts and where it keeps its leases.
    ///
    /// Grouped in its own `[pool]` table because these settings belong to the pool
    /// and its ledger.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PoolConfig {
        /// Account order within a provider.
        policy: PoolPolicy = PoolPolicy::Priority,
            parse = parse_pool_policy, show = |p| quoted(p.as_str()), about = " (or `least_loaded`)";
        /// Accounts expiring within this many days are flagged (0 to 365).
        expiry_warning_days: u32 = 7,
            parse = |r| parse_int(r, 0, 365), show = show_plain;
        /// Where leases live: in this process, or in Redis shared by several instances.
        ledger: LedgerBackend = LedgerBackend::Memory,
            parse = parse_ledger, show = |l| quoted(l.as_str()), about = " (or `redis` for several instances)";
        /// `redis://[:password@]host:port[/db]`; required when `ledger` is `redis`.
        redis_url: Option<String> = None,
            parse = parse_redis_url, show = |u| show_or_example(u, "\"redis://127.0.0.1:6379\""),
            about = " (required for `redis`)";
        /// How long a lease lives without renewal: a crashed instance's slots come back after this (3s to 5m).
        lease_ttl: Duration = Duration::from_secs(15),
            parse = parse_lease_ttl, show = show_duration;
        /// A slot whose connection closed is not reused for this long: providers notice closes late
        /// (0s to 10s; instances sharing a Redis ledger should agree on it).
        release_cooldown: Duration = tunerpool_ledger::DEFAULT_RELEASE_COOLDOWN,
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(10)), show = show_duration,
            about = " (0s to 10s)";
        /// Slots kept free on each account (and on a provider that caps its accounts together) for downstream
        /// users of at least `reserved_priority`: a lower one starts a stream only where this many stay free
        /// after it (0 to 100).
        reserved_slots: u32 = 0,
            parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100): none kept";
        /// The user priority (0 to 100) that may use the reserved slots.
        reserved_priority: u32 = 5,
            parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// When nothing is free for a user of priority P, stop the session of lowest priority below P (a
        /// session's priority is its viewers' highest) on an account the channel could use.
        preempt: bool = false,
            parse = parse_bool, show = show_plain, about = " (`true`: a user's request may stop a session of lower priority)";
    }

    /// How live sessions behave.
    relay =>
    /// How live sessions share, hold and give back upstream connections.
    ///
    /// Grouped in its own `[relay]` table because only the relay reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RelayConfig {
        /// A session with no viewers keeps its upstream this long (0s to 1m).
        linger: Duration = Duration::from_secs(3),
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(60)), show = show_duration;
        /// A request that finds no free slot waits this long for one (0s to 30s).
        acquire_wait: Duration = Duration::from_secs(3),
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(30)), show = show_duration;
        /// No upstream data for this long is a failure (1s to 1m).
        stall_timeout: Duration = Duration::from_secs(5),
            parse = |r| parse_duration_max(r, Duration::from_secs(1), Duration::from_secs(60)), show = show_duration;
        /// Seconds of stream each channel's shared buffer holds, at the bitrate the relay measures on that
        /// channel (0 to 60, fractions allowed): how far a viewer may fall behind before it jumps to the live
        /// edge. The buffer also holds at least the channel's last GOP plus a quarter, so that a joining viewer
        /// starts at a keyframe, and never more than `buffer_max`.
        buffer_seconds: Duration = Duration::from_secs(1),
            parse = parse_buffer_seconds, show = show_seconds,
            about = " s at the channel's measured bitrate, and at least its last GOP plus a quarter (0 to 60; e.g. 2.5)";
        /// The most one channel's shared buffer may hold, whatever its bitrate and GOP (256KiB to 64MiB).
        buffer_max: u64 = 16 << 20,
            parse = parse_buffer_size, show = show_bytes, about = " per channel (256KiB to 64MiB)";
        /// Upstream switches a session may make in a row before it gives up; delivered media earns them back
        /// (0 to 100).
        max_switches: u32 = 8,
            parse = |r| parse_int(r, 0, 100), show = show_plain;
        /// A downstream user at its own connection limit asking for another
        /// stream: end its oldest stream, or refuse.
        user_limit_policy: UserLimitPolicy = UserLimitPolicy::ReplaceOldest,
            parse = parse_user_limit_policy, show = |p| quoted(p.as_str()), about = " (or `refuse`)";
        /// Viewers one shared session may have; 0: no cap (0 to 10000).
        max_viewers_per_session: u32 = 0,
            parse = |r| parse_int(r, 0, 10_000), show = show_plain, about = ": no cap (0 to 10000)";
        /// How long a warm channel (started `warm_after_starts` times in the last hour) lingers with no
        /// viewers, when longer than `linger`; 0s: off (0s to 1h).
        warm_linger: Duration = Duration::ZERO,
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(3600)), show = show_duration,
            about = ": off (0s to 1h; e.g. 5m)";
        /// Starts within the last hour that make a channel warm (1 to 1000).
        warm_after_starts: u32 = 3,
            parse = |r| parse_int(r, 1, 1000), show = show_plain, about = " (1 to 1000)";
        /// An always-on channel's session with no viewers yields its slot to a viewer who needs it, like any
        /// idle session (it starts again once a slot is free).
        always_on_yields: bool = true,
            parse = parse_bool, show = show_plain;
        /// A session wakes its viewers at most this often, and each viewer sends what was buffered in between
        /// in one write: fewer, larger writes for the server, the kernel and the players. Adds at most this to
        /// the live delay, nothing to a join; 0s: every chunk at once (0s to 1s).
        wake_interval: Duration = Duration::from_millis(100),
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(1)), show = show_duration,
            about = " (0s to 1s; 0s: every chunk at once)";
        /// A live viewer whose connection takes no byte for this long is dropped (a player that stopped
        /// reading without closing); a shorter pause resumes at the live edge (1s to 1h).
        viewer_stall: Duration = Duration::from_secs(30),
            parse = |r| parse_duration_max(r, Duration::from_secs(1), Duration::from_secs(3600)), show = show_duration,
            about = " (1s to 1h)";
    }

    /// Who may use the admin API and web UI.
    admin =>
    /// Access to the admin API (`/api/v1`) and so to the web UI.
    ///
    /// Its own `[admin]` table because the token is a secret: it is never
    /// serialized or printed with the rest of the configuration.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AdminConfig {
        /// The bearer token (at least 16 characters). When unset, the token in
        /// `{data_dir}/admin-token` is used, generated on first start.
        token: Option<AdminTokenSetting> = None,
            parse = parse_admin_token, show = show_admin_token,
            about = ": `{data_dir}/admin-token`, generated on first start";
    }

    /// Several instances as one gateway (with `pool.redis_url`).
    cluster =>
    /// Cluster mode: on when `pool.redis_url` and `secret` are set. Instances register in Redis, one instance
    /// owns each live channel's provider connection and the others relay its stream over an internal endpoint.
    ///
    /// Its own `[cluster]` table because the secret is a secret (never shown) and because the keys mean nothing
    /// on a single instance.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ClusterConfig {
        /// The secret every instance of the cluster shares (at least 16 characters): internal requests carry it,
        /// the internal endpoint refuses any request without it. Setting it (with `pool.redis_url`) turns cluster
        /// mode on.
        secret: Option<Secret> = None,
            parse = parse_cluster_secret, show = show_cluster_secret, about = ": cluster mode off";
        /// How the other instances reach this one (`http://10.0.0.5:8080`): a URL with a scheme; required in
        /// cluster mode.
        advertise_url: Option<String> = None,
            parse = parse_public_url, show = |u| show_or_example(u, "\"http://10.0.0.5:8080\""),
            about = " (required in cluster mode)";
        /// This instance's id in the cluster (letters, digits, `.`, `_`, `-`; at most 64). When unset, the id in
        /// `{data_dir}/instance-id` is used, generated on first start.
        instance_id: Option<String> = None,
            parse = parse_instance_id, show = |u| show_or_example(u, "\"node-1\""),
            about = ": `{data_dir}/instance-id`, generated on first start";
        /// How long an instance's registration and a channel's ownership record live without renewal (renewed
        /// every third of it), and in cluster mode the leases too (the shorter of this and `pool.lease_ttl`): a
        /// dead instance's channels are taken over, and its slots come back, after about this long (1s to 10s).
        ttl: Duration = Duration::from_secs(2),
            parse = |r| parse_duration_max(r, Duration::from_secs(1), Duration::from_secs(10)), show = show_duration,
            about = " (1s to 10s)";
    }

    /// Provider guides (XMLTV).
    epg =>
    /// How provider guides are kept fresh.
    ///
    /// Grouped in its own `[epg]` table because only the guide job reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct EpgConfig {
        /// How often every provider's guide is fetched again (at least 10m). A
        /// missing guide is fetched at start-up; a failed fetch is retried sooner.
        refresh: Duration = Duration::from_secs(12 * 60 * 60),
            parse = |r| parse_duration(r, Duration::from_secs(10 * 60)), show = show_duration;
        /// The largest guide accepted, in bytes, counted after decompression
        /// (at least 1 MiB): a guide URL that never ends must not fill the disk.
        max_guide_bytes: u64 = tunerpool_upstream::Caps::default().guide,
            parse = |r| parse_bytes(r, MIN_BODY_CAP), show = show_bytes, about = " (after decompression)";
    }

    /// Streams and the guide without a login, for a trusted LAN.
    outputs =>
    /// Access to `/stream`, `/movie`, `/series` and `/epg.xml` without a login.
    ///
    /// Its own `[outputs]` table because it is a security decision about the
    /// client-facing routes: off, they want a downstream user's URL or the admin
    /// token.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OutputsConfig {
        /// Anyone who reaches the port may use those routes (a trusted LAN only).
        anonymous_streams: bool = false,
            parse = parse_bool, show = show_plain;
        /// Streams the anonymous users may hold at once, together (1 to 1000).
        anonymous_max_connections: u32 = 2,
            parse = |r| parse_int(r, 1, 1000), show = show_plain;
        /// A refused `/live/U/P/{id}.ts` (M3U and Xtream players) gets the refusal clip with `200` and
        /// `x-tunerpool-refused`, instead of the bare 503/403 (JSON clients and HLS keep the status).
        refusal_clip_live: bool = true,
            parse = parse_bool, show = show_plain;
        /// The same for HDHomeRun tune URLs.
        refusal_clip_hdhomerun: bool = true,
            parse = parse_bool, show = show_plain;
        /// The same for the admin's (or anonymous) `/stream/{id}.ts`.
        refusal_clip_stream: bool = true,
            parse = parse_bool, show = show_plain;
        /// An MPEG-TS file to send instead of the built-in clip ("All tuners are busy"); empty: the built-in one.
        refusal_clip_file: String = String::new(),
            parse = parse_clip_file, show = |f| show_or_example(&Some(f.clone()).filter(|f| !f.is_empty()), "\"/srv/busy.ts\""),
            about = ": the built-in clip (an MPEG-TS file with timestamps)";
        /// How long the clip plays (looped), then the response ends (1s to 1m).
        refusal_clip_seconds: Duration = Duration::from_secs(10),
            parse = |r| parse_duration_max(r, Duration::from_secs(1), Duration::from_secs(60)), show = show_duration,
            about = " (1s to 1m)";
    }

    /// Whom the HTTP server believes and what it shows without the token.
    http =>
    /// How the HTTP server treats its peers.
    ///
    /// Its own `[http]` table: reverse-proxy trust and the metrics endpoint are
    /// server settings, not the relay's or the pool's.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HttpConfig {
        /// Reverse proxies (addresses or CIDR networks) whose client-address
        /// header is believed; empty: none.
        trusted_proxies: Vec<ipnet::IpNet> = Vec::new(),
            parse = parse_nets, show = |n| show_list(n),
            about = " (a list of IPs or CIDRs; from the environment, comma-separated)";
        /// The header those proxies put the client's address in.
        client_ip_header: ClientIpHeader = ClientIpHeader::XForwardedFor,
            parse = parse_client_ip_header, show = |h| quoted(h.as_str()), about = " (or `forwarded`)";
        /// `/metrics` without the admin token.
        open_metrics: bool = false,
            parse = parse_bool, show = show_plain;
    }

    /// How syncs fill the lineup (the user's channels).
    lineup =>
    /// How each sync brings new streams into the lineup: join a channel of
    /// another provider with the same tvg-id or name, become a channel of their
    /// own, or wait for the user.
    ///
    /// Grouped in its own `[lineup]` table because only the sync reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LineupConfig {
        /// `lineup.match`: a new stream joins an existing channel (that has no
        /// source at its provider yet) with the same tvg-id, else the same
        /// normalized name.
        match_streams as "match": bool = true,
            parse = parse_bool, show = show_plain,
            about = ": new streams join channels of other providers with the same tvg-id or normalized name";
        /// `lineup.match_groups`: only streams in these provider groups (names,
        /// case-insensitive) are matched; empty: every group.
        match_groups: Vec<String> = Vec::new(),
            parse = parse_names, show = |g| show_list(g),
            about = ": every group (provider group names, case-insensitive; from the environment, comma-separated)";
        /// `lineup.auto_create`: a new stream that joins no channel becomes a
        /// channel of its own (else it waits, unassigned, for the user).
        auto_create: bool = true,
            parse = parse_bool, show = show_plain,
            about = ": unmatched new streams become channels (`false`: they wait, unassigned)";
    }

    /// How a channel's sources are ordered by their measured quality.
    quality =>
    /// How each source's measured quality (resolution, frame rate, bitrate,
    /// codec, stability, start time) becomes a score from 0 to 100, and
    /// whether that score or the provider ranking orders a channel's sources
    /// first (for channels that order themselves).
    ///
    /// Its own `[quality]` table: only source selection and the listings read it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct QualityConfig {
        /// `availability_first`: the provider ranking (kind, free capacity,
        /// priority), the score among equals; `quality_first`: the best score first.
        policy: QualityPolicy = QualityPolicy::AvailabilityFirst,
            parse = parse_quality_policy, show = |p| quoted(p.as_str()),
            about = " (or `quality_first`)";
        /// Weight of the picture's height (0 to 100; the weights are relative).
        weight_resolution: u32 = 6, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// Weight of the frame rate.
        weight_fps: u32 = 3, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// Weight of the video bitrate.
        weight_bitrate: u32 = 2, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// Weight of the codec (H.264, HEVC and AV1 above MPEG-2).
        weight_codec: u32 = 1, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// Weight of stability: failures per hour of playback over the last week.
        weight_stability: u32 = 4, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// Weight of the time to the first picture.
        weight_start_time: u32 = 2, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
    }

    /// Shared transcoding with ffmpeg.
    transcode =>
    /// How viewers' `?profile=NAME` streams are made: one ffmpeg per channel
    /// and profile, fed from the channel's one upstream, shared by all the
    /// profile's viewers.
    ///
    /// Its own `[transcode]` table: only the relay's transcodes read it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TranscodeConfig {
        /// The ffmpeg program (a name on `PATH` or a path).
        ffmpeg: String = "ffmpeg".to_owned(), parse = parse_program, show = show_string;
        /// Most transcodes at once, all profiles together (1 to 256).
        max_running: u32 = 4, parse = |r| parse_int(r, 1, 256), show = show_plain, about = " (1 to 256)";
        /// ffmpeg options before the input, for hardware decoding
        /// (e.g. `-hwaccel vaapi -hwaccel_device /dev/dri/renderD128`); empty: none.
        input_args: String = String::new(), parse = parse_ffmpeg_args, show = show_string,
            about = ": none (e.g. \"-hwaccel vaapi -hwaccel_device /dev/dri/renderD128\")";
        /// Profiles of your own, `"NAME = ffmpeg output options"` (`NAME@N`
        /// caps it at N transcodes); a built-in one (`copy`, `h264-720p`,
        /// `h264-480p`, `aac-audio`) of the same name is replaced.
        profiles: Vec<tunerpool_relay::transcode::Profile> = Vec::new(), parse = parse_profiles,
            show = |p| show_list(p),
            about = ": the built-in ones only (from the environment, separated by `;`)";
    }

    /// Active probing of the sources nobody watches.
    probe =>
    /// How sources nobody watches are measured with spare slots: a probe
    /// streams a source for a while, through the ledger like any session,
    /// only where `reserve` slots stay free, and stops the moment a viewer
    /// needs its slot. Requests from the API and UI run whatever `auto` says.
    ///
    /// Its own `[probe]` table: only the probe scheduler reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ProbeConfig {
        /// Probe by itself: never-measured and dead sources first, then the
        /// oldest measurements. Off by default: probes open connections the
        /// provider sees.
        auto: bool = false, parse = parse_bool, show = show_plain,
            about = ": probe unwatched sources by itself (API/UI requests run either way)";
        /// Slots that must stay free on an account (and its provider) while a
        /// probe holds one (0 to 100).
        reserve: u32 = 1, parse = |r| parse_int(r, 0, 100), show = show_plain, about = " (0 to 100)";
        /// How long a probe streams a source (2s to 5m; less when it is found dead sooner).
        duration: Duration = Duration::from_secs(15),
            parse = |r| parse_duration_max(r, Duration::from_secs(2), Duration::from_secs(300)),
            show = show_duration, about = " (2s to 5m)";
        /// The shortest time between two probe starts on one provider (0s to 1d).
        interval: Duration = Duration::from_secs(60),
            parse = |r| parse_duration_max(r, Duration::ZERO, Duration::from_secs(86_400)),
            show = show_duration, about = " (0s to 1d)";
        /// A source measured more recently than this is left alone by `auto` (1m to 365d).
        remeasure_after: Duration = Duration::from_secs(86_400),
            parse = |r| parse_duration_max(r, Duration::from_secs(60), Duration::from_secs(365 * 86_400)),
            show = show_duration, about = " (1m to 365d)";
    }

    /// What is kept of the past (accounts, pool, channel views).
    history =>
    /// How much history is kept and how often the pool is sampled.
    ///
    /// Its own `[history]` table: only the history job reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HistoryConfig {
        /// History and resolved alerts older than this are deleted (1h to 10 years).
        retention: Duration = Duration::from_secs(30 * 24 * 60 * 60),
            parse = |r| parse_duration_max(r, Duration::from_secs(3600), Duration::from_secs(10 * 365 * 86_400)),
            show = show_duration, about = " (1h to 10 years)";
        /// Samples are kept as taken this long, then folded into one per hour
        /// (1h to 90 days; at most `retention`).
        raw_retention: Duration = Duration::from_secs(48 * 60 * 60),
            parse = |r| parse_duration_max(r, Duration::from_secs(3600), Duration::from_secs(90 * 86_400)),
            show = show_duration, about = " (1h to 90 days, at most `history.retention`)";
        /// How often the pool is sampled and the alert conditions checked (5s to 1h).
        sample_interval: Duration = Duration::from_secs(60),
            parse = |r| parse_duration_max(r, Duration::from_secs(5), Duration::from_secs(3600)),
            show = show_duration, about = " (5s to 1h; alerts are checked as often)";
    }

    /// The HDHomeRun tuner at the root, and its discovery on the LAN.
    hdhomerun =>
    /// An HDHomeRun tuner at the server's root (`/discover.json`,
    /// `/lineup.json`, `/auto/v{id}`, …) for apps that take only an IP
    /// address (Plex, Jellyfin, Channels DVR), and its discovery on the LAN
    /// (SSDP and SiliconDust's protocol).
    ///
    /// Its own `[hdhomerun]` table because it is a security decision: it lets
    /// whoever reaches the port use the gateway as one downstream user,
    /// without a password. Off unless `root_user` names that user.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HdhomerunConfig {
        /// The downstream user the root tuner serves as: what it sees and its
        /// connection limit. Empty: no tuner at the root (its routes answer 404).
        root_user: String = String::new(),
            parse = parse_root_user, show = |u| show_or_example(&Some(u.clone()).filter(|u| !u.is_empty()), "\"livingroom\""),
            about = ": no tuner at the root (a downstream user's name)";
        /// The root tuner's name in the apps.
        friendly_name: String = "tunerpool".to_owned(),
            parse = parse_friendly_name, show = show_string;
        /// Answer SSDP (UDP 1900) and HDHomeRun (UDP 65001) discovery, so apps
        /// find the root tuner by themselves. Off: add it by IP address.
        discovery: bool = false,
            parse = parse_bool, show = show_plain, about = " (needs `hdhomerun.root_user`)";
        /// Answer only searches whose answer leaves by the interface with this
        /// IPv4 address; `0.0.0.0`: every interface.
        discovery_bind: Ipv4Addr = Ipv4Addr::UNSPECIFIED,
            parse = parse_ipv4, show = show_string, about = " (every interface; or one interface's IPv4 address)";
        /// SSDP's UDP port.
        ssdp_port: u16 = 1900,
            parse = parse_port, show = show_plain;
        /// SiliconDust discovery's UDP port.
        discovery_port: u16 = 65001,
            parse = parse_port, show = show_plain;
    }

    /// Where alerts are sent.
    alerts =>
    /// Where alerts (an account expiring or refused, a sync failing, the
    /// pool exhausted) are sent, and how hard delivery tries.
    ///
    /// Its own `[alerts]` table: the webhooks are secrets (a token in a URL),
    /// never shown by `config show`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AlertsConfig {
        /// Receivers as `format:url`, format one of json, ntfy, gotify, discord,
        /// slack, apprise (e.g. `"ntfy:https://ntfy.sh/my-topic"`); empty: alerts
        /// are only shown in the API.
        webhooks: Vec<tunerpool_alerts::Webhook> = Vec::new(),
            parse = parse_webhooks, show = |w| show_webhooks(w),
            about = ": none (a list of `format:url`; json, ntfy, gotify, discord, slack, apprise; from the \
                     environment, comma-separated; never shown)";
        /// Also send an alert's resolution.
        notify_resolved: bool = true,
            parse = parse_bool, show = show_plain;
        /// A delivery still failing this long after its alert is given up (1m to 30 days); until then it is
        /// retried with exponential backoff.
        retry_for: Duration = Duration::from_secs(24 * 60 * 60),
            parse = |r| parse_duration_max(r, Duration::from_secs(60), Duration::from_secs(30 * 86_400)),
            show = show_duration, about = " (1m to 30 days)";
    }
}

impl QualityConfig {
    /// The weights as the score takes them.
    pub fn weights(&self) -> QualityWeights {
        QualityWeights {
            resolution: self.weight_resolution.into(),
            fps: self.weight_fps.into(),
            bitrate: self.weight_bitrate.into(),
            codec: self.weight_codec.into(),
            stability: self.weight_stability.into(),
            start_time: self.weight_start_time.into(),
        }
    }
}

impl LineupConfig {
    /// The catalog's view of these settings.
    pub fn settings(&self) -> tunerpool_catalog::lineup::LineupSettings {
        tunerpool_catalog::lineup::LineupSettings {
            match_streams: self.match_streams,
            match_groups: self.match_groups.clone(),
            auto_create: self.auto_create,
        }
    }
}

/// Where a trusted proxy says who the client is (`http.client_ip_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, Traefik, Caddy).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

impl ClientIpHeader {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        }
    }
}

impl Config {
    /// Cluster mode: a shared Redis and a cluster secret.
    pub fn cluster_mode(&self) -> bool {
        self.pool.redis_url.is_some() && self.cluster.secret.is_some()
    }
}

/// At least 16 printable ASCII characters without spaces (it travels in a header). Empty means "not set".
/// Messages never echo it.
fn parse_cluster_secret(raw: Raw<'_, '_>) -> Result<Option<Secret>, String> {
    Ok(parse_admin_token(raw)?.map(|t| Secret::new(t.expose())))
}

/// Never the secret itself: only whether one is set.
fn show_cluster_secret(secret: &Option<Secret>) -> Shown {
    Shown::Commented(
        match secret {
            Some(_) => "\"…\"  (set; never shown)",
            None => "\"…\"  (not set: cluster mode off)",
        }
        .to_owned(),
    )
}

/// 1 to 64 letters, digits, `.`, `_` or `-`. Empty means "not set".
fn parse_instance_id(raw: Raw<'_, '_>) -> Result<Option<String>, String> {
    let s = want_str(raw, "\"node-1\"")?.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!("{s:?}: use 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    Ok(Some(s.to_owned()))
}

/// A configured admin token: compared, never shown (`Debug` prints `***`).
///
/// A newtype so that printing a `Config` (logs, `config show`) cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTokenSetting(String);

impl AdminTokenSetting {
    /// The token itself, for the HTTP layer to compare against.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminTokenSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// What a downstream user at its own limit gets (`relay.user_limit_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserLimitPolicy {
    /// End the user's oldest stream (a player zapping opens the new channel
    /// before closing the old one).
    #[default]
    ReplaceOldest,
    /// Wait `relay.acquire_wait` for one of its streams to end, then refuse.
    Refuse,
}

impl UserLimitPolicy {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            UserLimitPolicy::ReplaceOldest => "replace_oldest",
            UserLimitPolicy::Refuse => "refuse",
        }
    }
}

/// Account order within a provider (seed 000: priority; seed 004: least loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolPolicy {
    /// The first account with room, by priority (lower first).
    #[default]
    Priority,
    /// The account with the lowest active/max.
    LeastLoaded,
}

impl PoolPolicy {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolPolicy::Priority => "priority",
            PoolPolicy::LeastLoaded => "least_loaded",
        }
    }
}

/// Where the lease ledger lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedgerBackend {
    /// In this process: one instance.
    #[default]
    Memory,
    /// In Redis: several instances share the accounts' capacity.
    Redis,
}

impl LedgerBackend {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerBackend::Memory => "memory",
            LedgerBackend::Redis => "redis",
        }
    }
}

/// How log lines are written.
///
/// A closed set so that an unsupported format is caught at start-up instead of
/// silently falling back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The spelling used in the config file (`text` or `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// One problem, with where it came from and which key.
///
/// Problems are collected rather than returned one by one so that a user can
/// fix a whole configuration in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the value came from: the file path as given (e.g. `tunerpool.toml`),
    /// `env TUNERPOOL_X`, `--set`, `--listen`, `--data-dir` or `--log-level`.
    pub source: String,
    /// The dotted key (e.g. `sync.catalog_interval`). Empty for problems with a
    /// whole file (unreadable, TOML syntax error). For an unknown environment
    /// variable it is the variable name.
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `{source}: {key}: {message}`. The key is left out when it is empty, and
    /// for environment variables, whose name already says which key it is
    /// (`env TUNERPOOL_LOG_LEVEL: "verbose" is not a log filter ...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() || self.source.starts_with("env ") {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {}: {}", self.source, self.key, self.message)
        }
    }
}

/// Every problem found while loading a configuration.
///
/// It exists so callers get the complete list (one per line when displayed)
/// instead of only the first error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_problems(.problems))]
pub struct ConfigError {
    /// The problems, in the order the layers were applied (file, env, CLI).
    pub problems: Vec<Problem>,
}

fn join_problems(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n")
}

/// Overrides from the command line: the common ones have flags, and any key
/// can be set with `--set key=value`.
///
/// The flags are applied after all `--set` entries, so `--listen` beats
/// `--set listen=...`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen ADDR`
    pub listen: Option<String>,
    /// `--data-dir PATH`
    pub data_dir: Option<String>,
    /// `--log-level FILTER`
    pub log_level: Option<String>,
    /// `--set key=value`, any key, e.g. `sync.catalog_interval=6h`.
    pub set: Vec<String>,
}

impl Config {
    /// Load: defaults, then `file` if Some (a missing explicitly-given file is
    /// an error), else `./tunerpool.toml` if it exists, then env vars from `env`
    /// (only TUNERPOOL_* considered; unknown TUNERPOOL_* vars → problem), then
    /// overrides. Collects all problems.
    ///
    /// `TUNERPOOL_CONFIG`, `TUNERPOOL_USER_PASSWORD`, `TUNERPOOL_PROVIDER_*` and
    /// `TUNERPOOL_TEST_*` are ignored. Variables are applied in name order so problems are reported
    /// deterministically.
    #[cfg(test)]
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        Config::load_noting(file, env, overrides).map(|(cfg, _)| cfg)
    }

    /// `Config::load` (the test-only shorthand), with the notes on deprecated keys that were used (each with where it came from): an old
    /// name still works, and the caller tells the operator what it is now.
    pub fn load_noting(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<(Config, Vec<Problem>), ConfigError> {
        let mut notes = Vec::new();
        let cfg = load_with_default_file(file, Path::new(DEFAULT_FILE), env, overrides, &mut notes)?;
        Ok((cfg, notes))
    }

    /// Validate only a file (for `config check`): all problems in that file.
    ///
    /// Environment variables and overrides are not consulted; on success the
    /// result is the defaults with the file applied.
    #[cfg(test)]
    pub fn check_file(path: &Path) -> Result<Config, ConfigError> {
        Config::check_file_noting(path).map(|(cfg, _)| cfg)
    }

    /// `Config::check_file` (the test-only shorthand), with the notes on deprecated keys the file uses.
    pub fn check_file_noting(path: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let mut cfg = Config::default();
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let source = path.display().to_string();
        match read_file(path, &source, true) {
            Ok(Some(text)) => apply_toml(&mut cfg, &source, &text, &mut problems, &mut notes),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
        Ok((finish(cfg, problems)?, notes))
    }

    /// The TOML text of a config (for `config show` / docs), with every key,
    /// each written by the `show` of its entry in `config_tables!`.
    ///
    /// An unset `public_url` or `pool.redis_url` is written as a commented-out
    /// line; so is `admin.token`, set or not, because it is a secret. The
    /// output loads back to an equal `Config` when no admin token is set.
    pub fn to_toml(&self) -> String {
        write_toml(self)
    }

    /// Every configuration key, dotted (e.g. `sync.catalog_interval`), in
    /// documentation order.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        KEYS.iter().map(|k| k.path)
    }

    /// The environment variable that sets `key`
    /// (`sync.catalog_interval` → `TUNERPOOL_SYNC_CATALOG_INTERVAL`).
    pub fn env_var_name(key: &str) -> String {
        format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "_"))
    }
}

/// `true` for `TUNERPOOL_*` variables that are not configuration keys.
fn is_ignored_env(name: &str) -> bool {
    name == "TUNERPOOL_CONFIG"
        || name == "TUNERPOOL_USER_PASSWORD"
        || name.starts_with("TUNERPOOL_PROVIDER_")
        || name.starts_with("TUNERPOOL_TEST_")
}

fn load_with_default_file(
    file: Option<&Path>,
    default_file: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
    notes: &mut Vec<Problem>,
) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    let mut problems = Vec::new();

    // File layer.
    let (path, required) = match file {
        Some(p) => (p, true),
        None => (default_file, false),
    };
    let source = path.display().to_string();
    match read_file(path, &source, required) {
        Ok(Some(text)) => apply_toml(&mut cfg, &source, &text, &mut problems, notes),
        Ok(None) => {}
        Err(p) => problems.push(p),
    }

    // Environment layer.
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX) && !is_ignored_env(name)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in &vars {
        let source = format!("env {name}");
        let deprecated = DEPRECATED.iter().find(|(old, _, _)| Config::env_var_name(old) == *name);
        let key = match deprecated {
            Some((_, new, _)) => find_key(new),
            None => KEYS.iter().find(|k| Config::env_var_name(k.path) == *name),
        };
        match key {
            Some(key) => {
                note(notes, &source, name, deprecated.map(|(_, _, n)| *n));
                apply_key(&mut cfg, key, &source, Raw::Text(value), &mut problems)
            }
            None => {
                let hint = match suggest_env(name) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!(
                        "configuration variables are {ENV_PREFIX} plus the key in upper case, \
                         e.g. TUNERPOOL_LOG_LEVEL for log_level"
                    ),
                };
                problems.push(Problem {
                    source,
                    key: name.clone(),
                    message: format!("unknown configuration variable ({hint})"),
                });
            }
        }
    }

    // Command-line layer: `--set` in order, then the dedicated flags.
    for entry in &overrides.set {
        match entry.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                apply_text(&mut cfg, "--set", key.trim(), value.trim(), &mut problems, notes)
            }
            _ => problems.push(Problem {
                source: "--set".to_owned(),
                key: entry.trim().to_owned(),
                message: "expected key=value (e.g. --set sync.catalog_interval=6h)".to_owned(),
            }),
        }
    }
    let flags = [
        ("--listen", "listen", &overrides.listen),
        ("--data-dir", "data_dir", &overrides.data_dir),
        ("--log-level", "log_level", &overrides.log_level),
    ];
    for (flag, key, value) in flags {
        if let Some(value) = value {
            apply_text(&mut cfg, flag, key, value, &mut problems, notes);
        }
    }

    finish(cfg, problems)
}

fn finish(cfg: Config, mut problems: Vec<Problem>) -> Result<Config, ConfigError> {
    if cfg.pool.ledger == LedgerBackend::Redis && cfg.pool.redis_url.is_none() {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "pool.redis_url".to_owned(),
            message: "is required when pool.ledger is \"redis\" (e.g. redis://127.0.0.1:6379)".to_owned(),
        });
    }
    if cfg.cluster.secret.is_some() && cfg.pool.redis_url.is_none() {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "cluster.secret".to_owned(),
            message: "needs pool.redis_url: the instances of a cluster coordinate through Redis".to_owned(),
        });
    }
    if cfg.cluster_mode() && cfg.cluster.advertise_url.is_none() {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "cluster.advertise_url".to_owned(),
            message: "is required in cluster mode: how the other instances reach this one (e.g. http://10.0.0.5:8080)"
                .to_owned(),
        });
    }
    if cfg.history.raw_retention > cfg.history.retention {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "history.raw_retention".to_owned(),
            message: format!(
                "{} is longer than history.retention ({}): raw samples cannot outlive the history",
                humantime::format_duration(cfg.history.raw_retention),
                humantime::format_duration(cfg.history.retention)
            ),
        });
    }
    if cfg.hdhomerun.discovery && cfg.hdhomerun.root_user.is_empty() {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "hdhomerun.discovery".to_owned(),
            message: "needs hdhomerun.root_user: discovery announces the tuner at the root, which serves as that user"
                .to_owned(),
        });
    }
    if cfg.hdhomerun.discovery && cfg.hdhomerun.ssdp_port == cfg.hdhomerun.discovery_port {
        problems.push(Problem {
            source: "configuration".to_owned(),
            key: "hdhomerun.discovery_port".to_owned(),
            message: format!(
                "is hdhomerun.ssdp_port too ({}): the two protocols need ports of their own",
                cfg.hdhomerun.ssdp_port
            ),
        });
    }
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError { problems })
    }
}

/// Reads a config file. `Ok(None)` when an optional file does not exist.
fn read_file(path: &Path, source: &str, required: bool) -> Result<Option<String>, Problem> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                "file does not exist (check the path, or give no file to use the defaults)".to_owned()
            } else {
                format!("cannot read file: {e}")
            };
            Err(Problem { source: source.to_owned(), key: String::new(), message })
        }
    }
}

// ---------------------------------------------------------------------------
// Key table

/// A value to parse: either straight from TOML, or a string from the
/// environment / command line (parsed like a TOML string).
#[derive(Clone, Copy)]
enum Raw<'a, 'i> {
    Toml(&'a DeValue<'i>),
    Text(&'a str),
}

type Apply = fn(&mut Config, Raw<'_, '_>) -> Result<(), String>;

/// One configuration key: where it is, what the reference says of it
/// after its default (a range, the other choices), and how it is applied.
/// `config_tables!` makes the table of them (`KEYS`) from the key
/// declarations; the README's configuration reference is made from this
/// table ([`reference`]), so a key is documented where it is defined.
struct Key {
    path: &'static str,
    about: &'static str,
    apply: Apply,
}

/// Command-line flags that set a key directly (any key: `--set`).
const FLAGS: &[(&str, &str)] = &[("listen", "--listen"), ("data_dir", "--data-dir"), ("log_level", "--log-level")];

/// The configuration reference as a Markdown table, made from the key
/// table: every key, its default (from [`Config::default`]) and what else
/// to know, its environment variable and flag. README.md carries it (a test
/// keeps the two the same); `tunerpool config reference` prints it.
pub fn reference() -> String {
    let defaults: toml::Table = Config::default().to_toml().parse().expect("to_toml writes TOML");
    let mut out = String::from("| key | default | env / flag |\n|---|---|---|\n");
    for k in KEYS {
        let (section, leaf) = split_path(k.path);
        let table = match section {
            Some(section) => defaults.get(section).and_then(toml::Value::as_table),
            None => Some(&defaults),
        };
        let default = match table.and_then(|t| t.get(leaf)) {
            None => "unset".to_owned(),
            Some(toml::Value::String(v)) => format!("`{}`", v.replace(env!("CARGO_PKG_VERSION"), "<version>")),
            Some(v) => format!("`{v}`"),
        };
        let mut set_by = format!("`{}`", Config::env_var_name(k.path));
        if let Some((_, flag)) = FLAGS.iter().find(|(key, _)| *key == k.path) {
            set_by.push_str(&format!(", `{flag}`"));
        }
        out.push_str(&format!("| `{}` | {default}{} | {set_by} |\n", k.path, k.about));
    }
    out
}

/// How [`Config::to_toml`] writes one key: what a key's `show` returns.
enum Shown {
    /// `key = value`, with the value already written as TOML.
    Value(String),
    /// `# key = text`: the key is unset or secret, so the line is a
    /// commented-out example with a note (`"…"  (not set)`).
    Commented(String),
}

impl Shown {
    /// Appends the key's line to `out`.
    fn write_line(self, key: &str, out: &mut String) {
        match self {
            Shown::Value(value) => out.push_str(&format!("{key} = {value}\n")),
            Shown::Commented(text) => out.push_str(&format!("# {key} = {text}\n")),
        }
    }
}

/// A TOML string (quoted and escaped).
fn quoted(s: &str) -> Shown {
    Shown::Value(toml::Value::String(s.to_owned()).to_string())
}

/// A value written as a TOML string of its `Display` form.
fn show_string(v: &impl fmt::Display) -> Shown {
    quoted(&v.to_string())
}

/// A number or boolean, written as itself.
fn show_plain(v: &impl fmt::Display) -> Shown {
    Shown::Value(v.to_string())
}

/// A duration, as [`parse_duration`] reads it back (`"12h"`, `"600ms"`).
fn show_duration(d: &Duration) -> Shown {
    quoted(&humantime::format_duration(*d).to_string())
}

/// A size, as [`parse_bytes`] reads it back (`"4MiB"`).
fn show_bytes(n: &u64) -> Shown {
    quoted(&format_bytes(*n))
}

/// A list of strings (`["a", "b"]`, `[]` when empty).
fn show_list(items: &[impl fmt::Display]) -> Shown {
    let items: Vec<String> = items.iter().map(|i| toml::Value::String(i.to_string()).to_string()).collect();
    Shown::Value(format!("[{}]", items.join(", ")))
}

/// An optional string; unset, a commented-out `example`.
fn show_or_example(v: &Option<String>, example: &str) -> Shown {
    match v {
        Some(v) => quoted(v),
        None => Shown::Commented(format!("{example}  (not set)")),
    }
}

/// Never the token itself: only whether one is set.
fn show_admin_token(token: &Option<AdminTokenSetting>) -> Shown {
    Shown::Commented(
        match token {
            Some(_) => "\"…\"  (set; never shown)",
            None => "\"…\"  (not set: the token in data_dir/admin-token is used)",
        }
        .to_owned(),
    )
}
/// Alert webhooks: a TOML array of `format:url` strings, or comma-separated
/// text (environment, `--set`). Every bad entry is named by its position,
/// never by its URL (which may hold a token).
fn parse_webhooks(raw: Raw<'_, '_>) -> Result<Vec<tunerpool_alerts::Webhook>, String> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::String(s)) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::Array(a)) => a
            .iter()
            .map(|v| match v.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => {
                    Err(format!("expected strings like \"ntfy:https://ntfy.sh/my-topic\", found {}", describe(other)))
                }
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!(
                "expected a list like [\"ntfy:https://ntfy.sh/my-topic\", \"json:https://example.com/hook\"], found {}",
                describe(other)
            ))
        }
    };
    let items: Vec<&str> = items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    if items.len() > 20 {
        return Err(format!("at most 20 webhooks (got {})", items.len()));
    }
    let mut hooks = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.parse::<tunerpool_alerts::Webhook>() {
            Ok(w) => hooks.push(w),
            Err(e) => bad.push(format!("entry {}: {e}", i + 1)),
        }
    }
    if bad.is_empty() {
        Ok(hooks)
    } else {
        Err(bad.join("; "))
    }
}

/// Webhook URLs are secrets: an empty list is written, a set one only counted.
fn show_webhooks(hooks: &[tunerpool_alerts::Webhook]) -> Shown {
    if hooks.is_empty() {
        Shown::Value("[]".to_owned())
    } else {
        Shown::Commented(format!("[\"…\"]  ({} set; never shown)", hooks.len()))
    }
}

/// A list of group names: a TOML array of strings, or comma-separated text
/// (environment, `--set`). Each name non-empty and at most 200 characters.
fn parse_names(raw: Raw<'_, '_>) -> Result<Vec<String>, String> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::String(s)) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::Array(a)) => a
            .iter()
            .map(|v| match v.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(format!("expected group names like \"News\", found {}", describe(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!("expected a list like [\"News\", \"Sports\"], found {}", describe(other)))
        }
    };
    let names: Vec<String> = items.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if let Some(long) = names.iter().find(|n| n.chars().count() > 200) {
        return Err(format!("group name {long:?} is longer than 200 characters"));
    }
    if names.len() > 1000 {
        return Err(format!("at most 1000 groups (got {})", names.len()));
    }
    Ok(names)
}

/// The smallest size cap on provider bodies: below it a real playlist or
/// guide would not fit.
const MIN_BODY_CAP: u64 = 1 << 20;

/// Byte sizes: a whole number of bytes (a TOML integer or a string of
/// digits), or a number with a unit: `KB`, `MB`, `GB` (powers of 1000),
/// `KiB`, `MiB`, `GiB` (powers of 1024), case-insensitive, e.g. `"256MiB"`.
fn parse_bytes(raw: Raw<'_, '_>, min: u64) -> Result<u64, String> {
    let n = match raw {
        Raw::Toml(DeValue::Integer(i)) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n < 0 => return Err(format!("{n} is negative (use a size like \"256MiB\")")),
            Ok(n) => n.unsigned_abs(),
            Err(_) => return Err(format!("{i} is too large (use a size like \"1GiB\")")),
        },
        Raw::Toml(DeValue::String(s)) => parse_bytes_str(s)?,
        Raw::Text(s) => parse_bytes_str(s)?,
        Raw::Toml(other) => {
            return Err(format!(
                "expected a size like \"256MiB\" or a whole number of bytes, found {}",
                describe(other)
            ))
        }
    };
    if n < min {
        return Err(format!("{} is too small (must be at least {})", format_bytes(n), format_bytes(min)));
    }
    Ok(n)
}

fn parse_bytes_str(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a size (use e.g. 256MiB, 1GiB, 500MB or a number of bytes)");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(|| format!("{s:?} is too large"))
}

/// A size as [`parse_bytes`] reads it back: `256MiB`, `1GiB`, or bytes.
fn format_bytes(n: u64) -> String {
    // Whole units of a power of two have no lower bits set.
    match n {
        0 => "0".to_owned(),
        n if n & ((1 << 30) - 1) == 0 => format!("{}GiB", n >> 30),
        n if n & ((1 << 20) - 1) == 0 => format!("{}MiB", n >> 20),
        n if n & ((1 << 10) - 1) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// `true` or `false` (from the environment or `--set` also 1/0, yes/no, on/off).
fn parse_bool(raw: Raw<'_, '_>) -> Result<bool, String> {
    match raw {
        Raw::Toml(DeValue::Boolean(b)) => Ok(*b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        },
        Raw::Toml(DeValue::String(s)) => {
            Err(format!("expected true or false, found the string {s:?} (remove the quotes)"))
        }
        Raw::Toml(other) => Err(format!("expected true or false, found {}", describe(other))),
    }
}

/// A list of IP addresses or CIDR networks: a TOML array of strings, or (from
/// the environment or `--set`) one string separated by commas. A plain
/// address means just that address; networks are stored by their prefix.
fn parse_nets(raw: Raw<'_, '_>) -> Result<Vec<ipnet::IpNet>, String> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::String(s)) => s.split(',').map(str::to_owned).collect(),
        Raw::Toml(DeValue::Array(a)) => a
            .iter()
            .map(|v| match v.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(format!("expected strings like \"10.0.0.0/8\", found {}", describe(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!("expected a list like [\"127.0.0.1\", \"10.0.0.0/8\"], found {}", describe(other)))
        }
    };
    let mut nets = Vec::new();
    let mut bad = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match item.parse::<ipnet::IpNet>() {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => match item.parse::<std::net::IpAddr>() {
                Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                Err(_) => bad.push(format!("{item:?}")),
            },
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "{} {} not an IP address or CIDR network (use e.g. \"127.0.0.1\" or \"10.0.0.0/8\")",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" }
        ));
    }
    Ok(nets)
}

/// At least 16 printable ASCII characters without spaces (it travels in an
/// `Authorization` header). Empty means "not set". Messages never echo it.
fn parse_admin_token(raw: Raw<'_, '_>) -> Result<Option<AdminTokenSetting>, String> {
    let s = want_str(raw, "\"a-long-random-string\"")?.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces (it is sent in an Authorization header)".to_owned());
    }
    if s.len() < 16 {
        return Err(format!(
            "is too short ({} characters; use at least 16, e.g. the output of `openssl rand -hex 32`)",
            s.len()
        ));
    }
    Ok(Some(AdminTokenSetting(s.to_owned())))
}

/// A duration within `min..=max`.
fn parse_duration_max(raw: Raw<'_, '_>, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(raw, min)?;
    if d > max {
        return Err(format!("must be at most {}", humantime::format_duration(max)));
    }
    Ok(d)
}

fn parse_pool_policy(raw: Raw<'_, '_>) -> Result<PoolPolicy, String> {
    match want_str(raw, "\"priority\"")?.trim().to_ascii_lowercase().as_str() {
        "priority" => Ok(PoolPolicy::Priority),
        "least_loaded" | "least-loaded" => Ok(PoolPolicy::LeastLoaded),
        other => Err(format!("{other:?} is not a policy (use \"priority\" or \"least_loaded\")")),
    }
}

fn parse_ledger(raw: Raw<'_, '_>) -> Result<LedgerBackend, String> {
    match want_str(raw, "\"memory\"")?.trim().to_ascii_lowercase().as_str() {
        "memory" => Ok(LedgerBackend::Memory),
        "redis" => Ok(LedgerBackend::Redis),
        other => Err(format!("{other:?} is not a ledger (use \"memory\" or \"redis\")")),
    }
}

/// Empty means "not set".
/// `store.url`: checked by the store's own parser (the one rule), so that a
/// wrong scheme is a start-up error naming the key; `sqlite:` is the default.
fn parse_store_url(raw: Raw<'_, '_>) -> Result<Option<String>, String> {
    let s = want_str(raw, "\"postgres://tunerpool:password@127.0.0.1:5432/tunerpool\"")?.trim();
    match tunerpool_catalog::StoreUrl::parse(Some(s)) {
        Ok(tunerpool_catalog::StoreUrl::Sqlite) => Ok(None),
        Ok(tunerpool_catalog::StoreUrl::Postgres(url)) => Ok(Some(url)),
        Err(tunerpool_catalog::CatalogError::Invalid(fields)) => {
            Err(fields.into_iter().map(|f| f.message).collect::<Vec<_>>().join("; "))
        }
        Err(other) => Err(tunerpool_upstream::redact::redact_text(&other.to_string(), &[])),
    }
}

/// A store URL with a password is shown masked, as a comment (like the
/// admin token): `config show` never prints it.
fn show_store_url(v: &Option<String>) -> Shown {
    match v {
        Some(url) if tunerpool_upstream::redact::redact_url(url, &[]) != *url => {
            let masked = toml::Value::String(tunerpool_upstream::redact::redact_url(url, &[])).to_string();
            Shown::Commented(format!("{masked}  (set; the password is never shown)"))
        }
        other => show_or_example(other, "\"postgres://tunerpool:password@127.0.0.1:5432/tunerpool\""),
    }
}

fn parse_redis_url(raw: Raw<'_, '_>) -> Result<Option<String>, String> {
    match want_str(raw, "\"redis://127.0.0.1:6379\"")?.trim() {
        "" => Ok(None),
        s if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("unix://") => {
            Ok(Some(s.to_owned()))
        }
        _ => Err("must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379)".to_owned()),
    }
}

fn parse_lease_ttl(raw: Raw<'_, '_>) -> Result<Duration, String> {
    let ttl = parse_duration(raw, Duration::from_secs(3))?;
    if ttl > Duration::from_secs(300) {
        return Err("must be at most 5m (a crashed instance's slots stay taken this long)".to_owned());
    }
    Ok(ttl)
}

/// A number of seconds, 0 to 60, fractions allowed (`1`, `2.5`).
fn parse_buffer_seconds(raw: Raw<'_, '_>) -> Result<Duration, String> {
    let range = "use a number of seconds from 0 to 60, e.g. 1 or 2.5";
    let secs: f64 = match raw {
        Raw::Toml(DeValue::Integer(i)) => {
            i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| format!("{i} is too large ({range})"))? as f64
        }
        Raw::Toml(DeValue::Float(f)) => {
            f.as_str().replace('_', "").parse::<f64>().map_err(|_| format!("{f} is not a number ({range})"))?
        }
        Raw::Text(t) => {
            let t = t.trim();
            t.strip_suffix('s')
                .unwrap_or(t)
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{t:?} is not a number ({range})"))?
        }
        Raw::Toml(DeValue::String(s)) => {
            return Err(format!("expected a number of seconds like 1, found the string {s:?} (remove the quotes)"))
        }
        Raw::Toml(other) => return Err(format!("expected a number of seconds like 1, found {}", describe(other))),
    };
    if !secs.is_finite() || !(0.0..=60.0).contains(&secs) {
        return Err(format!("{secs} is out of range ({range})"));
    }
    // Whole milliseconds: what `show_seconds` writes back exactly.
    Ok(Duration::from_millis((secs * 1000.0).round() as u64))
}

/// Seconds as [`parse_buffer_seconds`] reads them back: `1`, `2.5`.
fn show_seconds(d: &Duration) -> Shown {
    let ms = d.as_millis();
    Shown::Value(match ms % 1000 {
        0 => (ms / 1000).to_string(),
        _ => format!("{}.{:03}", ms / 1000, ms % 1000).trim_end_matches('0').to_owned(),
    })
}

/// 256KiB to 64MiB per channel.
fn parse_buffer_size(raw: Raw<'_, '_>) -> Result<u64, String> {
    let n = parse_bytes(raw, 256 << 10)?;
    if n > 64 << 20 {
        return Err(format!("{} is more than 64MiB per channel", format_bytes(n)));
    }
    Ok(n)
}

fn parse_user_limit_policy(raw: Raw<'_, '_>) -> Result<UserLimitPolicy, String> {
    match want_str(raw, "\"replace_oldest\"")?.trim().to_ascii_lowercase().as_str() {
        "replace_oldest" | "replace-oldest" => Ok(UserLimitPolicy::ReplaceOldest),
        "refuse" => Ok(UserLimitPolicy::Refuse),
        other => Err(format!("{other:?} is not a policy (use \"replace_oldest\" or \"refuse\")")),
    }
}

fn parse_quality_policy(raw: Raw<'_, '_>) -> Result<QualityPolicy, String> {
    match want_str(raw, "\"availability_first\"")?.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "availability_first" => Ok(QualityPolicy::AvailabilityFirst),
        "quality_first" => Ok(QualityPolicy::QualityFirst),
        other => Err(format!("{other:?} is not a policy (use \"availability_first\" or \"quality_first\")")),
    }
}

fn parse_client_ip_header(raw: Raw<'_, '_>) -> Result<ClientIpHeader, String> {
    match want_str(raw, "\"x-forwarded-for\"")?.trim().to_ascii_lowercase().as_str() {
        "x-forwarded-for" => Ok(ClientIpHeader::XForwardedFor),
        "forwarded" => Ok(ClientIpHeader::Forwarded),
        other => Err(format!("{other:?} is not a header tunerpool reads (use \"x-forwarded-for\" or \"forwarded\")")),
    }
}

fn find_key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

fn apply_key(cfg: &mut Config, key: &Key, source: &str, raw: Raw<'_, '_>, out: &mut Vec<Problem>) {
    apply_as(cfg, key, key.path, source, raw, out)
}

/// [`apply_key`] under the name that was written (an old name of `key`), which its problem names.
fn apply_as(cfg: &mut Config, key: &Key, written: &str, source: &str, raw: Raw<'_, '_>, out: &mut Vec<Problem>) {
    if let Err(message) = (key.apply)(cfg, raw) {
        out.push(Problem { source: source.to_owned(), key: written.to_owned(), message });
    }
}

/// Records the deprecation note of an old key name.
fn note(notes: &mut Vec<Problem>, source: &str, path: &str, note: Option<&str>) {
    if let Some(message) = note {
        notes.push(Problem { source: source.to_owned(), key: path.to_owned(), message: message.to_owned() });
    }
}

/// Applies a string value (`--set`, flags) to a dotted key.
fn apply_text(
    cfg: &mut Config,
    source: &str,
    path: &str,
    value: &str,
    out: &mut Vec<Problem>,
    notes: &mut Vec<Problem>,
) {
    match resolve_key(path) {
        Some((key, deprecated)) => {
            note(notes, source, path, deprecated);
            apply_as(cfg, key, path, source, Raw::Text(value), out)
        }
        None => {
            out.push(Problem { source: source.to_owned(), key: path.to_owned(), message: unknown_key_message(path) })
        }
    }
}

/// Old keys still read, as the key that replaced them, each with a note for the operator (printed when it is
/// used, never a problem: an old file keeps loading).
const DEPRECATED: &[(&str, &str, &str)] = &[(
    "relay.buffer_size",
    "relay.buffer_max",
    "is deprecated, read as relay.buffer_max: the buffer is no longer a fixed size but holds \
     relay.buffer_seconds of the channel's measured bitrate (and its last GOP), up to this",
)];

/// The key `path` sets, and the deprecation note when it is an old name.
fn resolve_key(path: &str) -> Option<(&'static Key, Option<&'static str>)> {
    match DEPRECATED.iter().find(|(old, _, _)| *old == path) {
        Some((_, new, note)) => find_key(new).map(|k| (k, Some(*note))),
        None => find_key(path).map(|k| (k, None)),
    }
}

fn unknown_key_message(path: &str) -> String {
    if SECTIONS.contains(&path) {
        let example = KEYS.iter().find(|k| k.path.starts_with(&format!("{path}."))).map_or("", |k| k.path);
        return format!("is a section, not a key (set one of its keys, e.g. {example})");
    }
    match suggest_key(path) {
        Some(s) => format!("unknown key (did you mean {s}?)"),
        None => {
            let (section, _) = split_path(path);
            let valid: Vec<&str> = match section {
                Some(sec) if SECTIONS.contains(&sec) => {
                    KEYS.iter().filter(|k| split_path(k.path).0 == Some(sec)).map(|k| k.path).collect()
                }
                _ => Config::keys().collect(),
            };
            format!("unknown key (valid keys: {})", valid.join(", "))
        }
    }
}

fn split_path(path: &str) -> (Option<&str>, &str) {
    match path.rsplit_once('.') {
        Some((section, leaf)) => (Some(section), leaf),
        None => (None, path),
    }
}

// ---------------------------------------------------------------------------
// TOML layer

fn apply_toml(cfg: &mut Config, source: &str, text: &str, out: &mut Vec<Problem>, notes: &mut Vec<Problem>) {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            out.push(Problem { source: source.to_owned(), key: String::new(), message: syntax_message(&e) });
            return;
        }
    };

    // Flatten to (position, dotted key, value) and apply in file order so
    // problems are listed in the order a reader meets them.
    let mut leaves: Vec<(usize, String, &DeValue<'_>)> = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name = key.get_ref().as_ref();
        if SECTIONS.contains(&name) {
            match value.get_ref() {
                DeValue::Table(table) => {
                    for (k, v) in table.iter() {
                        leaves.push((k.span().start, format!("{name}.{}", k.get_ref()), v.get_ref()));
                    }
                }
                other => out.push(Problem {
                    source: source.to_owned(),
                    key: name.to_owned(),
                    message: format!("expected a table (a [{name}] section), found {}", describe(other)),
                }),
            }
        } else {
            leaves.push((key.span().start, name.to_owned(), value.get_ref()));
        }
    }
    leaves.sort_by_key(|(pos, _, _)| *pos);

    for (_, path, value) in leaves {
        match resolve_key(&path) {
            Some((key, deprecated)) => {
                note(notes, source, &path, deprecated);
                apply_as(cfg, key, &path, source, Raw::Toml(value), out)
            }
            None => {
                out.push(Problem { source: source.to_owned(), key: path.clone(), message: unknown_key_message(&path) })
            }
        }
    }
}

/// One-line description of a TOML syntax error, with the line and column the
/// toml crate reports.
fn syntax_message(e: &toml::de::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("");
    match first.strip_prefix("TOML parse error at ") {
        Some(position) => format!("invalid TOML at {position}: {}", e.message()),
        None => format!("invalid TOML: {}", e.message()),
    }
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the number {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date/time {d}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Per-key parsers. Each returns a message that says what is wrong and what to
// do; the key and source are added by the caller.

fn want_str<'a>(raw: Raw<'a, '_>, example: &str) -> Result<&'a str, String> {
    match raw {
        Raw::Text(s) => Ok(s),
        Raw::Toml(DeValue::String(s)) => Ok(s.as_ref()),
        Raw::Toml(other) => Err(format!("expected a string like {example}, found {}", describe(other))),
    }
}

fn parse_listen(raw: Raw<'_, '_>) -> Result<SocketAddr, String> {
    let s = want_str(raw, "\"0.0.0.0:8080\"")?.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)));
        }
    }
    let looks_like_host = match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.starts_with('[')
                && host.parse::<std::net::IpAddr>().is_err()
                && port.parse::<u16>().is_ok()
        }
        None => false,
    };
    if looks_like_host {
        Err(format!(
            "{s:?} is not an address (use an IP address and port, e.g. 0.0.0.0:8080 for all \
             interfaces or 127.0.0.1:8080 for this machine only; host names are not supported)"
        ))
    } else {
        Err(format!("{s:?} is not an address (use host:port, e.g. 0.0.0.0:8080)"))
    }
}

fn parse_data_dir(raw: Raw<'_, '_>) -> Result<PathBuf, String> {
    let s = want_str(raw, "\"./tunerpool-data\"")?;
    if s.trim().is_empty() {
        return Err("must not be empty (use a directory path, e.g. ./tunerpool-data)".to_owned());
    }
    Ok(PathBuf::from(s))
}

/// Accepts what `EnvFilter` accepts, except bare words that are not a level:
/// `EnvFilter` would read `verbose` as "target `verbose` at trace", which is
/// almost never what was meant (write `verbose=trace` for that).
fn parse_log_filter(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"info\"")?.trim();
    let bad = || {
        format!(
            "{s:?} is not a log filter (use error, warn, info, debug, trace, or a filter like \
             tunerpool=debug)"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(s) {
        return Err(format!("{}: {e}", bad()));
    }
    for directive in s.split(',').map(str::trim) {
        let bare_word = !directive.is_empty()
            && directive.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
        if bare_word && directive.parse::<tracing::level_filters::LevelFilter>().is_err() {
            return Err(bad());
        }
    }
    Ok(s.to_owned())
}

fn parse_log_format(raw: Raw<'_, '_>) -> Result<LogFormat, String> {
    let s = want_str(raw, "\"text\"")?.trim();
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (use text or json)")),
    }
}

/// An empty string means "not set", so an environment variable or `--set` can
/// clear a value from the file. The URL is stored with a lower-case scheme and
/// without trailing slashes.
fn parse_public_url(raw: Raw<'_, '_>) -> Result<Option<String>, String> {
    let s = want_str(raw, "\"http://192.168.1.10:8080\"")?.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("{s:?} has no scheme (use a full URL, e.g. \"http://{s}\" or \"https://{s}\")"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{s:?} uses scheme {scheme:?} (use http:// or https://)"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains spaces (remove them or encode them as %20)"));
    }
    if s.contains(['?', '#']) {
        return Err(format!("{s:?} has a query or fragment (use only scheme, host, port and optional path)"));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{s:?} has no host (use e.g. http://192.168.1.10:8080)"));
    }
    let rest = rest.trim_end_matches('/');
    Ok(Some(format!("{scheme}://{rest}")))
}

/// Durations are humantime strings (`90s`, `5m`, `1h 30m`) or a whole number
/// of seconds (a TOML integer, or a string of digits).
fn parse_duration(raw: Raw<'_, '_>, min: Duration) -> Result<Duration, String> {
    let d = match raw {
        Raw::Toml(DeValue::Integer(i)) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n < 0 => return Err(format!("{n} is negative (use a positive duration like \"30s\")")),
            Ok(n) => Duration::from_secs(n.unsigned_abs()),
            Err(_) => return Err(format!("{i} is too large (use a duration like \"12h\")")),
        },
        Raw::Toml(DeValue::String(s)) => parse_duration_str(s)?,
        Raw::Text(s) => parse_duration_str(s)?,
        Raw::Toml(other) => {
            return Err(format!(
                "expected a string like \"30s\" or a whole number of seconds, found {}",
                describe(other)
            ))
        }
    };
    if d < min {
        return Err(format!(
            "{} is too short (must be at least {})",
            humantime::format_duration(d),
            humantime::format_duration(min)
        ));
    }
    Ok(d)
}

fn parse_duration_str(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative (use a positive duration like \"30s\")"));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{s:?} is too large (use a duration like \"12h\")"));
    }
    humantime::parse_duration(t).map_err(|_| format!("{s:?} is not a duration (use e.g. 30s, 5m, 12h)"))
}

fn parse_user_agent(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"tunerpool/1.0\"")?;
    if s.trim().is_empty() {
        return Err("must not be empty (use e.g. \"tunerpool/1.0\")".to_owned());
    }
    if !s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(format!("{s:?} must be printable ASCII without line breaks (it is sent as an HTTP header)"));
    }
    Ok(s.to_owned())
}

/// `transcode.ffmpeg`: a program name or path.
fn parse_program(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"/usr/bin/ffmpeg\"")?.trim();
    if s.is_empty() {
        return Err("must not be empty (use \"ffmpeg\" or a path)".to_owned());
    }
    Ok(s.to_owned())
}

/// ffmpeg options: whitespace-separated words, none of which names an input or output.
fn ffmpeg_words(s: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    if let Some(w) = words.iter().find(|w| *w == "-i" || w.starts_with("pipe:") || *w == "-f") {
        return Err(format!(
            "{w:?}: the input and output (MPEG-TS through pipes) are tunerpool's; give only codec and filter options"
        ));
    }
    Ok(words)
}

fn parse_ffmpeg_args(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"-hwaccel vaapi\"")?;
    ffmpeg_words(s)?;
    Ok(s.trim().to_owned())
}

/// `transcode.profiles`: `"NAME = options"` or `"NAME@N = options"` each.
fn parse_profiles(raw: Raw<'_, '_>) -> Result<Vec<tunerpool_relay::transcode::Profile>, String> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(';').map(str::to_owned).collect(),
        Raw::Toml(DeValue::Array(a)) => a
            .iter()
            .map(|v| match v.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(format!(
                    "expected profiles like \"mobile = -c:v libx264 -vf scale=-2:360\", found {}",
                    describe(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!("expected a list of \"NAME = options\" strings, found {}", describe(other)))
        }
    };
    let mut out: Vec<tunerpool_relay::transcode::Profile> = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (head, args) =
            item.split_once('=').ok_or_else(|| format!("{item:?}: write it as \"NAME = ffmpeg options\""))?;
        let (name, cap) = match head.trim().split_once('@') {
            Some((n, c)) => (
                n.trim(),
                c.trim().parse::<u32>().map_err(|_| format!("{head:?}: the cap after @ must be a whole number"))?,
            ),
            None => (head.trim(), 0),
        };
        if name.is_empty()
            || name.len() > 40
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{name:?} is not a profile name (1 to 40 letters, digits, - or _)"));
        }
        let args = ffmpeg_words(args).map_err(|e| format!("profile {name}: {e}"))?;
        if args.is_empty() {
            return Err(format!("profile {name} has no ffmpeg options"));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(format!("profile {name} is given twice"));
        }
        out.push(tunerpool_relay::transcode::Profile { name: name.to_owned(), args, max_running: cap });
    }
    Ok(out)
}

/// `hdhomerun.root_user`: empty (off) or a name a downstream user could have.
fn parse_root_user(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"livingroom\"")?.trim();
    if s.chars().count() > 64 {
        return Err("is longer than 64 characters: no downstream user has such a name".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control() || "/?#&%\\".contains(c)) {
        return Err(format!("{s:?} is not a downstream user's name (no spaces, control characters or / ? # & % \\)"));
    }
    Ok(s.to_owned())
}

/// `outputs.refusal_clip_file`: a path, read when the server starts (a file that is not a clip stops the start,
/// naming the key).
fn parse_clip_file(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"/srv/busy.ts\"")?;
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(format!("{s:?}: a path without leading or trailing spaces or control characters"));
    }
    Ok(s.to_owned())
}

/// `hdhomerun.friendly_name`: shown in apps, 1 to 64 printable characters.
fn parse_friendly_name(raw: Raw<'_, '_>) -> Result<String, String> {
    let s = want_str(raw, "\"tunerpool\"")?.trim();
    if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
        return Err("must be 1 to 64 characters without control characters (e.g. \"tunerpool\")".to_owned());
    }
    Ok(s.to_owned())
}

/// An interface's IPv4 address, or `0.0.0.0` for every interface.
fn parse_ipv4(raw: Raw<'_, '_>) -> Result<Ipv4Addr, String> {
    let s = want_str(raw, "\"0.0.0.0\"")?.trim();
    s.parse().map_err(|_| format!("{s:?} is not an IPv4 address (e.g. 0.0.0.0 for every interface, or 192.168.1.10)"))
}

/// A UDP or TCP port, 1 to 65535.
fn parse_port(raw: Raw<'_, '_>) -> Result<u16, String> {
    parse_int(raw, 1, 65535).map(|n| u16::try_from(n).unwrap_or(u16::MAX))
}

fn parse_int(raw: Raw<'_, '_>, min: u32, max: u32) -> Result<u32, String> {
    let range = format!("use a whole number from {min} to {max}");
    let n: i128 = match raw {
        Raw::Toml(DeValue::Integer(i)) => {
            i128::from_str_radix(i.as_str(), i.radix()).map_err(|_| format!("{i} is too large ({range})"))?
        }
        Raw::Text(s) => s.trim().parse::<i128>().map_err(|_| format!("{s:?} is not a whole number ({range})"))?,
        Raw::Toml(DeValue::String(s)) => {
            return Err(format!("expected a number like {max}, found the string {s:?} (remove the quotes)"))
        }
        Raw::Toml(other) => return Err(format!("expected a whole number like {max}, found {}", describe(other))),
    };
    if n < 0 {
        return Err(format!("{n} is negative ({range})"));
    }
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("{n} is out of range ({range})"));
    }
    // In range of u32 by the check above.
    Ok(n as u32)
}

// ---------------------------------------------------------------------------
// Suggestions

fn close_enough(name: &str, distance: usize) -> bool {
    let limit = match name.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    distance <= limit
}

/// Closest known key or section to an unknown dotted key. A key put in the
/// wrong section (`sync.timeout`, `timeout`) is matched by its last part.
fn suggest_key(path: &str) -> Option<&'static str> {
    let leaf = split_path(path).1;
    let candidates = KEYS.iter().map(|k| k.path).chain(SECTIONS.iter().copied());
    let mut best: Option<(usize, &'static str)> = None;
    for cand in candidates {
        let full = strsim::osa_distance(path, cand);
        let by_leaf = strsim::osa_distance(leaf, split_path(cand).1);
        let dist = if close_enough(path, full) { full } else { usize::MAX };
        let dist = if close_enough(leaf, by_leaf) { dist.min(by_leaf) } else { dist };
        if dist != usize::MAX && best.is_none_or(|(b, _)| dist < b) {
            best = Some((dist, cand));
        }
    }
    best.map(|(_, c)| c)
}

fn suggest_env(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let mut best: Option<(usize, String)> = None;
    for key in KEYS {
        let var = Config::env_var_name(key.path);
        let dist = strsim::osa_distance(rest, &var[ENV_PREFIX.len()..]);
        if close_enough(rest, dist) && best.as_ref().is_none_or(|(b, _)| dist < *b) {
            best = Some((dist, var));
        }
    }
    best.map(|(_, v)| v)
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A config file in a fresh temp dir; the dir is kept alive by the guard.
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tunerpool.toml");
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        (dir, path)
    }

    /// Problems from checking a file with this content.
    fn problems(text: &str) -> Vec<Problem> {
        let (_dir, path) = file(text);
        Config::check_file(&path).unwrap_err().problems
    }

    fn one_problem(text: &str) -> Problem {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:#?}");
        p.into_iter().next().unwrap()
    }

    /// Loads with no file at all (the default file path points nowhere).
    fn load_no_file(env: Vec<(String, String)>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        load_with_default_file(None, &dir.path().join("absent.toml"), env, overrides, &mut Vec::new())
    }

    #[test]
    fn defaults_with_no_file() {
        let cfg = load_no_file(no_env(), &Overrides::default()).unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(cfg.data_dir, PathBuf::from("./tunerpool-data"));
        assert_eq!(cfg.log_level, "info");
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(cfg.public_url, None);
        assert_eq!(cfg.sync.catalog_interval, Duration::from_secs(43200));
        assert_eq!(cfg.sync.details_interval, Duration::from_secs(60));
        assert_eq!(cfg.sync.details_initial_delay, Duration::from_secs(60));
        assert_eq!(cfg.upstream.timeout, Duration::from_secs(30));
        assert_eq!(cfg.upstream.connect_timeout, Duration::from_secs(10));
        assert_eq!(cfg.upstream.user_agent, format!("tunerpool/{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(cfg.upstream.max_redirects, 5);
    }

    #[test]
    fn default_file_is_used_when_present() {
        let (_dir, path) = file("log_level = \"debug\"\n");
        let cfg = load_with_default_file(None, &path, no_env(), &Overrides::default(), &mut Vec::new()).unwrap();
        assert_eq!(cfg.log_level, "debug");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].source, path.display().to_string());
        assert!(err.problems[0].message.contains("does not exist"));
    }

    #[test]
    fn file_values_applied() {
        let (_dir, path) = file(
            r#"
listen = "127.0.0.1:9000"
data_dir = "/var/lib/tunerpool"
log_level = "warn,tunerpool=debug"
log_format = "json"
public_url = "https://tv.example.com/"

[sync]
catalog_interval = "6h"
details_interval = 30
details_initial_delay = "1h 30m"

[upstream]
timeout = "45s"
connect_timeout = "5s"
user_agent = "MyPlayer/2.0"
max_redirects = 0
"#,
        );
        let cfg = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/tunerpool"));
        assert_eq!(cfg.log_level, "warn,tunerpool=debug");
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.public_url.as_deref(), Some("https://tv.example.com"));
        assert_eq!(cfg.sync.catalog_interval, Duration::from_secs(6 * 3600));
        assert_eq!(cfg.sync.details_interval, Duration::from_secs(30));
        assert_eq!(cfg.sync.details_initial_delay, Duration::from_secs(5400));
        assert_eq!(cfg.upstream.timeout, Duration::from_secs(45));
        assert_eq!(cfg.upstream.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.upstream.user_agent, "MyPlayer/2.0");
        assert_eq!(cfg.upstream.max_redirects, 0);
        assert_eq!(Config::check_file(&path).unwrap(), cfg);
    }

    #[test]
    fn dotted_keys_and_inline_tables_work() {
        let (_dir, path) = file("sync.catalog_interval = \"2h\"\nupstream = { max_redirects = 2 }\n");
        let cfg = Config::check_file(&path).unwrap();
        assert_eq!(cfg.sync.catalog_interval, Duration::from_secs(7200));
        assert_eq!(cfg.upstream.max_redirects, 2);
    }

    #[test]
    fn env_beats_file() {
        let (_dir, path) = file("log_level = \"debug\"\n[sync]\ncatalog_interval = \"2h\"\n");
        let cfg = Config::load(
            Some(&path),
            env(&[
                ("TUNERPOOL_LOG_LEVEL", "warn"),
                ("TUNERPOOL_SYNC_CATALOG_INTERVAL", "6h"),
                ("TUNERPOOL_UPSTREAM_MAX_REDIRECTS", "3"),
                ("TUNERPOOL_PUBLIC_URL", "http://10.0.0.2:8080"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg.log_level, "warn");
        assert_eq!(cfg.sync.catalog_interval, Duration::from_secs(6 * 3600));
        assert_eq!(cfg.upstream.max_redirects, 3);
        assert_eq!(cfg.public_url.as_deref(), Some("http://10.0.0.2:8080"));
    }

    #[test]
    fn empty_env_clears_public_url() {
        let (_dir, path) = file("public_url = \"http://a.example\"\n");
        let cfg = Config::load(Some(&path), env(&[("TUNERPOOL_PUBLIC_URL", "")]), &Overrides::default()).unwrap();
        assert_eq!(cfg.public_url, None);
    }

    #[test]
    fn unrelated_and_reserved_env_vars_are_ignored() {
        let cfg = load_no_file(
            env(&[
                ("PATH", "/usr/bin"),
                ("TUNERPOOL", "x"),
                ("tunerpool_listen", "garbage"),
                ("TUNERPOOL_CONFIG", "/etc/tunerpool.toml"),
                ("TUNERPOOL_PROVIDER_PASSWORD", "secret"),
                ("TUNERPOOL_PROVIDER_URL", "http://p"),
                ("TUNERPOOL_TEST_ANYTHING", "1"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_env_var_is_reported_with_suggestion() {
        let err =
            load_no_file(env(&[("TUNERPOOL_LGO_LEVEL", "debug"), ("TUNERPOOL_BANANA", "1")]), &Overrides::default())
                .unwrap_err();
        assert_eq!(err.problems.len(), 2);
        let p = &err.problems[0];
        assert_eq!(p.source, "env TUNERPOOL_BANANA");
        assert_eq!(p.key, "TUNERPOOL_BANANA");
        let p = &err.problems[1];
        assert_eq!(p.source, "env TUNERPOOL_LGO_LEVEL");
        assert!(p.message.contains("did you mean TUNERPOOL_LOG_LEVEL?"), "{p}");
    }

    #[test]
    fn env_problem_display_matches_docs() {
        let err = load_no_file(env(&[("TUNERPOOL_LOG_LEVEL", "verbose")]), &Overrides::default()).unwrap_err();
        assert_eq!(err.problems[0].key, "log_level");
        assert_eq!(
            err.to_string(),
            "env TUNERPOOL_LOG_LEVEL: \"verbose\" is not a log filter (use error, warn, info, \
             debug, trace, or a filter like tunerpool=debug)"
        );
    }

    #[test]
    fn override_beats_env() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:1234".into()),
            data_dir: Some("/tmp/x".into()),
            log_level: Some("trace".into()),
            set: vec!["log_format=json".into()],
        };
        let cfg = load_no_file(
            env(&[
                ("TUNERPOOL_LISTEN", "0.0.0.0:1"),
                ("TUNERPOOL_DATA_DIR", "/env"),
                ("TUNERPOOL_LOG_LEVEL", "warn"),
                ("TUNERPOOL_LOG_FORMAT", "text"),
            ]),
            &overrides,
        )
        .unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:1234");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.log_level, "trace");
        assert_eq!(cfg.log_format, LogFormat::Json);
    }

    #[test]
    fn flags_beat_set() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:2".into()),
            set: vec!["listen=127.0.0.1:1".into()],
            ..Overrides::default()
        };
        let cfg = load_no_file(no_env(), &overrides).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:2");
    }

    #[test]
    fn set_works_for_nested_keys() {
        let overrides = Overrides {
            set: vec![
                "sync.catalog_interval=6h".into(),
                "upstream.max_redirects = 7".into(),
                "upstream.user_agent=Foo/1 (bar=baz)".into(),
                "sync.details_initial_delay=0".into(),
            ],
            ..Overrides::default()
        };
        let cfg = load_no_file(no_env(), &overrides).unwrap();
        assert_eq!(cfg.sync.catalog_interval, Duration::from_secs(6 * 3600));
        assert_eq!(cfg.upstream.max_redirects, 7);
        assert_eq!(cfg.upstream.user_agent, "Foo/1 (bar=baz)");
        assert_eq!(cfg.sync.details_initial_delay, Duration::ZERO);
    }

    #[test]
    fn set_problems() {
        let overrides = Overrides {
            set: vec![
                "novalue".into(),
                "sync.catalog_intervall=1h".into(),
                "sync=1h".into(),
                "upstream.max_redirects=-1".into(),
            ],
            ..Overrides::default()
        };
        let err = load_no_file(no_env(), &overrides).unwrap_err();
        let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(lines[0], "--set: novalue: expected key=value (e.g. --set sync.catalog_interval=6h)");
        assert_eq!(lines[1], "--set: sync.catalog_intervall: unknown key (did you mean sync.catalog_interval?)");
        assert!(lines[2].starts_with("--set: sync: is a section"), "{}", lines[2]);
        assert_eq!(lines[3], "--set: upstream.max_redirects: -1 is negative (use a whole number from 0 to 20)");
    }

    #[test]
    fn flag_problem_names_flag_and_key() {
        let overrides = Overrides { listen: Some("8080".into()), ..Overrides::default() };
        let err = load_no_file(no_env(), &overrides).unwrap_err();
        assert_eq!(err.to_string(), "--listen: listen: \"8080\" is not an address (use host:port, e.g. 0.0.0.0:8080)");
    }

    #[test]
    fn unknown_key_with_suggestion() {
        let p = one_problem("lgo_level = \"info\"\n");
        assert_eq!(p.key, "lgo_level");
        assert_eq!(p.message, "unknown key (did you mean log_level?)");
        let p = one_problem("[upstream]\nuser_agnet = \"x\"\n");
        assert_eq!(p.key, "upstream.user_agnet");
        assert_eq!(p.message, "unknown key (did you mean upstream.user_agent?)");
        // A key in the wrong place is found by its last part.
        let p = one_problem("timeout = \"5s\"\n");
        assert_eq!(p.message, "unknown key (did you mean upstream.timeout?)");
        let p = one_problem("[upstrem]\ntimeout = \"5s\"\n");
        assert_eq!(p.key, "upstrem");
        assert_eq!(p.message, "unknown key (did you mean upstream?)");
        // Nothing close: list what exists.
        let p = one_problem("[sync]\nzzzzzzzzzz = 1\n");
        assert_eq!(p.key, "sync.zzzzzzzzzz");
        assert!(p.message.starts_with("unknown key (valid keys: sync.catalog_interval,"), "{}", p.message);
    }

    #[test]
    fn bad_duration() {
        let p = one_problem("[sync]\ncatalog_interval = \"12x\"\n");
        assert_eq!(p.key, "sync.catalog_interval");
        assert_eq!(p.message, "\"12x\" is not a duration (use e.g. 30s, 5m, 12h)");
        let p = one_problem("[sync]\ndetails_interval = -5\n");
        assert_eq!(p.key, "sync.details_interval");
        assert!(p.message.contains("negative"), "{}", p.message);
        let p = one_problem("[upstream]\ntimeout = 1.5\n");
        assert_eq!(p.key, "upstream.timeout");
        assert_eq!(p.message, "expected a string like \"30s\" or a whole number of seconds, found the number 1.5");
    }

    #[test]
    fn below_minimum_interval() {
        let p = one_problem("[sync]\ncatalog_interval = \"30s\"\n");
        assert_eq!(p.key, "sync.catalog_interval");
        assert_eq!(p.message, "30s is too short (must be at least 1m)");
        let p = one_problem("[sync]\ndetails_interval = 4\n");
        assert_eq!(p.message, "4s is too short (must be at least 5s)");
        let p = one_problem("[upstream]\ntimeout = \"500ms\"\n");
        assert_eq!(p.key, "upstream.timeout");
        assert_eq!(p.message, "500ms is too short (must be at least 1s)");
    }

    #[test]
    fn bad_address() {
        let p = one_problem("listen = \"8080\"\n");
        assert_eq!(p.key, "listen");
        assert_eq!(p.message, "\"8080\" is not an address (use host:port, e.g. 0.0.0.0:8080)");
        let p = one_problem("listen = \"tv.lan:8080\"\n");
        assert!(p.message.contains("host names are not supported"), "{}", p.message);
        let p = one_problem("listen = 8080\n");
        assert_eq!(p.message, "expected a string like \"0.0.0.0:8080\", found the number 8080");
    }

    #[test]
    fn listen_accepts_ipv6_and_localhost() {
        let (_dir, path) = file("listen = \"[::]:8080\"\n");
        assert_eq!(Config::check_file(&path).unwrap().listen.to_string(), "[::]:8080");
        let (_dir, path) = file("listen = \"localhost:9\"\n");
        assert_eq!(Config::check_file(&path).unwrap().listen.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn bad_log_filter() {
        for bad in ["verbose", "", "info,loud", "tunerpool=loud"] {
            let p = one_problem(&format!("log_level = {bad:?}\n"));
            assert_eq!(p.key, "log_level");
            assert!(p.message.contains("is not a log filter (use error, warn, info"), "{bad}: {}", p.message);
        }
        for good in ["debug", "WARN", "off", "info,tunerpool=debug", "tunerpool::http=trace"] {
            let (_dir, path) = file(&format!("log_level = {good:?}\n"));
            assert_eq!(Config::check_file(&path).unwrap().log_level, good);
        }
    }

    #[test]
    fn bad_log_format() {
        let p = one_problem("log_format = \"xml\"\n");
        assert_eq!(p.key, "log_format");
        assert_eq!(p.message, "\"xml\" is not a log format (use text or json)");
    }

    #[test]
    fn negative_and_out_of_range_integer() {
        let p = one_problem("[upstream]\nmax_redirects = -1\n");
        assert_eq!(p.key, "upstream.max_redirects");
        assert_eq!(p.message, "-1 is negative (use a whole number from 0 to 20)");
        let p = one_problem("[upstream]\nmax_redirects = 21\n");
        assert_eq!(p.message, "21 is out of range (use a whole number from 0 to 20)");
        let p = one_problem("[upstream]\nmax_redirects = 99999999999999999999\n");
        assert_eq!(p.key, "upstream.max_redirects");
        let err =
            load_no_file(env(&[("TUNERPOOL_UPSTREAM_MAX_REDIRECTS", "five")]), &Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "env TUNERPOOL_UPSTREAM_MAX_REDIRECTS: \"five\" is not a whole number (use a whole \
             number from 0 to 20)"
        );
    }

    #[test]
    fn wrong_type() {
        let p = one_problem("[upstream]\nmax_redirects = \"5\"\n");
        assert_eq!(p.key, "upstream.max_redirects");
        assert_eq!(p.message, "expected a number like 20, found the string \"5\" (remove the quotes)");
        let p = one_problem("log_level = true\n");
        assert_eq!(p.key, "log_level");
        assert_eq!(p.message, "expected a string like \"info\", found true");
        let p = one_problem("data_dir = [\"a\"]\n");
        assert_eq!(p.message, "expected a string like \"./tunerpool-data\", found a list");
        let p = one_problem("sync = \"12h\"\n");
        assert_eq!(p.key, "sync");
        assert_eq!(p.message, "expected a table (a [sync] section), found the string \"12h\"");
    }

    #[test]
    fn url_checks() {
        let p = one_problem("public_url = \"tv.example.com\"\n");
        assert_eq!(p.key, "public_url");
        assert!(p.message.contains("has no scheme"), "{}", p.message);
        assert!(p.message.contains("http://tv.example.com"), "{}", p.message);
        let p = one_problem("public_url = \"ftp://tv.example.com\"\n");
        assert!(p.message.contains("use http:// or https://"), "{}", p.message);
        let p = one_problem("public_url = \"http:///x\"\n");
        assert!(p.message.contains("has no host"), "{}", p.message);
        let (_dir, path) = file("public_url = \"HTTP://10.0.0.1:8080/tv/\"\n");
        assert_eq!(Config::check_file(&path).unwrap().public_url.as_deref(), Some("http://10.0.0.1:8080/tv"));
    }

    #[test]
    fn user_agent_checks() {
        let p = one_problem("[upstream]\nuser_agent = \"  \"\n");
        assert_eq!(p.key, "upstream.user_agent");
        assert!(p.message.starts_with("must not be empty"));
        let p = one_problem("[upstream]\nuser_agent = \"a\\nb\"\n");
        assert!(p.message.contains("HTTP header"));
    }

    #[test]
    fn several_problems_all_reported_in_file_order() {
        let (_dir, path) = file(
            r#"lgo_level = "info"
listen = "8080"
log_format = "xml"

[sync]
catalog_interval = "12x"
details_interval = "1s"

[upstream]
max_redirects = -3
timeout = true
"#,
        );
        let err = Config::check_file(&path).unwrap_err();
        let src = path.display().to_string();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "lgo_level",
                "listen",
                "log_format",
                "sync.catalog_interval",
                "sync.details_interval",
                "upstream.max_redirects",
                "upstream.timeout"
            ]
        );
        assert!(err.problems.iter().all(|p| p.source == src));
        let text = err.to_string();
        assert_eq!(text.lines().count(), 7);
        assert!(
            text.contains(&format!("{src}: sync.catalog_interval: \"12x\" is not a duration (use e.g. 30s, 5m, 12h)"))
        );
        assert!(text.contains(&format!("{src}: lgo_level: unknown key (did you mean log_level?)")));
    }

    #[test]
    fn problems_from_all_layers_are_collected() {
        let (_dir, path) = file("listen = \"nope\"\n");
        let overrides = Overrides { log_level: Some("verbose".into()), ..Overrides::default() };
        let err =
            Config::load(Some(&path), env(&[("TUNERPOOL_SYNC_DETAILS_INTERVAL", "soon")]), &overrides).unwrap_err();
        let sources: Vec<&str> = err.problems.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(
            sources,
            [path.display().to_string().as_str(), "env TUNERPOOL_SYNC_DETAILS_INTERVAL", "--log-level"]
        );
    }

    #[test]
    fn toml_syntax_error() {
        let p = one_problem("listen = \"0.0.0.0:8080\"\n[sync\ncatalog_interval = \"1h\"\n");
        assert_eq!(p.key, "");
        assert!(p.message.starts_with("invalid TOML at line 2, column "), "{}", p.message);
        assert!(!p.message.contains('\n'));
        let p = one_problem("listen = \"a\"\nlisten = \"b\"\n");
        assert!(p.message.starts_with("invalid TOML at line 2"), "{}", p.message);
    }

    #[test]
    fn pool_keys_are_validated_and_cross_checked() {
        let cfg = Config::load(
            None::<&Path>,
            vec![("TUNERPOOL_POOL_POLICY".to_string(), "least_loaded".to_string())],
            &Overrides { set: vec!["pool.lease_ttl=30s".into()], ..Default::default() },
        )
        .unwrap();
        assert_eq!((cfg.pool.policy, cfg.pool.lease_ttl), (PoolPolicy::LeastLoaded, Duration::from_secs(30)));
        let err = Config::load(
            None::<&Path>,
            Vec::new(),
            &Overrides {
                set: vec![
                    "pool.ledger=redis".into(),
                    "pool.policy=random".into(),
                    "pool.lease_ttl=1h".into(),
                    "pool.expiry_warning_days=-1".into(),
                ],
                ..Default::default()
            },
        )
        .unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["pool.policy", "pool.lease_ttl", "pool.expiry_warning_days", "pool.redis_url"], "{err}");
        let bad_url = Config::load(
            None::<&Path>,
            Vec::new(),
            &Overrides { set: vec!["pool.redis_url=127.0.0.1:6379".into()], ..Default::default() },
        )
        .unwrap_err();
        assert!(bad_url.problems[0].message.contains("redis://"));
    }

    #[test]
    fn store_url_is_checked_and_its_password_never_shown() {
        let load = |url: &str| {
            Config::load(
                None::<&Path>,
                Vec::new(),
                &Overrides { set: vec![format!("store.url={url}")], ..Default::default() },
            )
        };
        assert_eq!(load("sqlite:").unwrap().store.url, None, "the default: SQLite in the data dir");
        let cfg = load("postgres://tp:s3cret@db.example:5432/tp").unwrap();
        assert_eq!(cfg.store.url.as_deref(), Some("postgres://tp:s3cret@db.example:5432/tp"));
        let shown = cfg.to_toml();
        assert!(!shown.contains("s3cret") && shown.contains("postgres://***:***@db.example:5432/tp"), "{shown}");
        let err = load("mysql://tp:s3cret@db.example/tp").unwrap_err();
        assert_eq!(err.problems[0].key, "store.url");
        assert!(err.problems[0].message.contains("\"mysql\"") && !err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn to_toml_round_trips() {
        let custom = Config {
            listen: "[::1]:9999".parse().unwrap(),
            data_dir: PathBuf::from("C:\\data \"quoted\""),
            log_level: "warn,tunerpool=debug".into(),
            log_format: LogFormat::Json,
            public_url: Some("https://tv.example.com/base".into()),
            store: StoreConfig { url: Some("postgres://db.example:5432/tp".into()) },
            sync: SyncConfig {
                catalog_interval: Duration::from_secs(5400),
                details_interval: Duration::from_secs(5),
                details_initial_delay: Duration::ZERO,
                max_playlist_bytes: 5_000_000,
                max_api_bytes: 3 << 20,
            },
            upstream: UpstreamConfig {
                timeout: Duration::from_millis(1500),
                connect_timeout: Duration::from_secs(3600 * 24 * 400),
                user_agent: "Agent 'x' \"y\"".into(),
                max_redirects: 20,
            },
            pool: PoolConfig {
                policy: PoolPolicy::LeastLoaded,
                expiry_warning_days: 30,
                ledger: LedgerBackend::Redis,
                redis_url: Some("redis://:pw@127.0.0.1:6380/2".into()),
                lease_ttl: Duration::from_secs(20),
                release_cooldown: Duration::from_millis(1500),
                reserved_slots: 2,
                reserved_priority: 40,
                preempt: true,
            },
            relay: RelayConfig {
                linger: Duration::ZERO,
                acquire_wait: Duration::from_secs(10),
                stall_timeout: Duration::from_secs(2),
                buffer_seconds: Duration::from_millis(2500),
                buffer_max: 8 << 20,
                max_switches: 0,
                user_limit_policy: UserLimitPolicy::Refuse,
                max_viewers_per_session: 12,
                warm_linger: Duration::from_secs(300),
                warm_after_starts: 5,
                always_on_yields: false,
                wake_interval: Duration::from_millis(250),
                viewer_stall: Duration::from_secs(90),
            },
            admin: AdminConfig::default(),
            // The secret is never written out: it stays unset here.
            cluster: ClusterConfig {
                secret: None,
                advertise_url: Some("http://10.0.0.5:8080/gw".into()),
                instance_id: Some("node-1".into()),
                ttl: Duration::from_secs(3),
            },
            epg: EpgConfig { refresh: Duration::from_secs(6 * 60 * 60), max_guide_bytes: 2 << 30 },
            outputs: OutputsConfig {
                anonymous_streams: true,
                anonymous_max_connections: 7,
                refusal_clip_live: false,
                refusal_clip_hdhomerun: false,
                refusal_clip_stream: false,
                refusal_clip_file: "/srv/clips/busy \"now\".ts".into(),
                refusal_clip_seconds: Duration::from_secs(30),
            },
            http: HttpConfig {
                trusted_proxies: vec!["127.0.0.1/32".parse().unwrap(), "fd00::/8".parse().unwrap()],
                client_ip_header: ClientIpHeader::Forwarded,
                open_metrics: true,
            },
            lineup: LineupConfig {
                match_streams: false,
                match_groups: vec!["News \"24\"".into(), "Sport, Live".into()],
                auto_create: false,
            },
            quality: QualityConfig {
                policy: QualityPolicy::QualityFirst,
                weight_resolution: 0,
                weight_fps: 100,
                weight_bitrate: 7,
                weight_codec: 0,
                weight_stability: 50,
                weight_start_time: 1,
            },
            transcode: TranscodeConfig {
                ffmpeg: "/opt/ffmpeg/bin/ffmpeg".into(),
                max_running: 9,
                input_args: "-hwaccel vaapi".into(),
                profiles: vec![tunerpool_relay::transcode::Profile {
                    name: "mobile".into(),
                    args: vec!["-c:v".into(), "libx264".into(), "-vf".into(), "scale=-2:360,fps=25".into()],
                    max_running: 2,
                }],
            },
            probe: ProbeConfig {
                auto: true,
                reserve: 0,
                duration: Duration::from_secs(40),
                interval: Duration::ZERO,
                remeasure_after: Duration::from_secs(3600),
            },
            history: HistoryConfig {
                retention: Duration::from_secs(7 * 86_400),
                raw_retention: Duration::from_secs(3 * 3600),
                sample_interval: Duration::from_secs(30),
            },
            alerts: AlertsConfig {
                webhooks: Vec::new(),
                notify_resolved: false,
                retry_for: Duration::from_secs(2 * 3600),
            },
            hdhomerun: HdhomerunConfig {
                root_user: "living-room".into(),
                friendly_name: "Gateway \"TV\"".into(),
                discovery: true,
                discovery_bind: Ipv4Addr::new(192, 168, 1, 10),
                ssdp_port: 1901,
                discovery_port: 65002,
            },
        };
        for cfg in [Config::default(), custom] {
            let text = cfg.to_toml();
            let (_dir, path) = file(&text);
            assert_eq!(Config::check_file(&path).unwrap(), cfg, "{text}");
        }
    }

    #[test]
    fn to_toml_mentions_every_key() {
        let text = Config::default().to_toml();
        for key in Config::keys() {
            let leaf = split_path(key).1;
            assert!(text.contains(&format!("{leaf} = ")), "{key} missing:\n{text}");
        }
    }

    #[test]
    fn to_toml_writes_each_key_once_in_its_section() {
        let admin = Config {
            admin: AdminConfig { token: Some(AdminTokenSetting("0123456789abcdef-token".into())) },
            ..Config::default()
        };
        let urls = Config {
            public_url: Some("http://10.0.0.1:8080".into()),
            pool: PoolConfig { redis_url: Some("redis://127.0.0.1:6379".into()), ..PoolConfig::default() },
            ..Config::default()
        };
        for cfg in [Config::default(), admin, urls] {
            let text = cfg.to_toml();
            // Each key line as its dotted path, commented-out or not.
            let mut section = String::new();
            let mut written = Vec::new();
            for line in text.lines().filter(|l| !l.is_empty()) {
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = format!("{name}.");
                    continue;
                }
                let (leaf, _) = line.trim_start_matches("# ").split_once(" = ").expect(line);
                written.push(format!("{section}{leaf}"));
            }
            let keys: Vec<String> = Config::keys().map(str::to_owned).collect();
            assert_eq!(written, keys, "{text}");
        }
        // Every key is applied to a field of its own: setting each one from
        // the environment changes the config (`env_var_names`), and the
        // sections are exactly the tables that hold keys.
        let mut sections: Vec<&str> = KEYS.iter().filter_map(|k| split_path(k.path).0).collect();
        sections.dedup();
        assert_eq!(sections, SECTIONS);
    }

    #[test]
    fn transcode_profiles_are_checked() {
        let p = one_problem("[transcode]\nprofiles = [\"mobile -c:v libx264\"]\n");
        assert_eq!(p.key, "transcode.profiles");
        assert!(p.message.contains("NAME = ffmpeg options"), "{}", p.message);
        let p = one_problem("[transcode]\nprofiles = [\"x = -i other.ts -c copy\"]\n");
        assert!(p.message.contains("\"-i\""), "{}", p.message);
        let p = one_problem("[transcode]\nprofiles = [\"bad name = -c copy\"]\n");
        assert!(p.message.contains("not a profile name"), "{}", p.message);
        let p = one_problem("[transcode]\nmax_running = 0\n");
        assert_eq!(p.key, "transcode.max_running");
        let (_dir, path) = file("[transcode]\nprofiles = [\"h264-480p@3 = -c:v libx264 -vf scale=-2:480\"]\n");
        let cfg = Config::check_file(&path).unwrap();
        assert_eq!(cfg.transcode.profiles[0].max_running, 3);
        assert_eq!(cfg.transcode.profiles[0].to_string(), "h264-480p@3 = -c:v libx264 -vf scale=-2:480");
    }

    #[test]
    fn probe_keys_are_checked() {
        let p = one_problem("[probe]\nduration = \"1s\"\n");
        assert_eq!(p.key, "probe.duration");
        let p = one_problem("[probe]\nreserve = -1\n");
        assert_eq!(p.key, "probe.reserve");
        let p = one_problem("[probe]\nauto = \"sometimes\"\n");
        assert_eq!(p.key, "probe.auto");
        let (_dir, path) = file("[probe]\nauto = true\nreserve = 0\ninterval = \"0s\"\n");
        let cfg = Config::check_file(&path).unwrap();
        assert!(cfg.probe.auto && cfg.probe.reserve == 0 && cfg.probe.interval.is_zero());
    }

    #[test]
    fn quality_keys_are_checked() {
        let p = one_problem("[quality]\npolicy = \"best\"\n");
        assert_eq!(p.key, "quality.policy");
        assert!(p.message.contains("quality_first"), "{}", p.message);
        let p = one_problem("[quality]\nweight_fps = 101\n");
        assert_eq!(p.key, "quality.weight_fps");
        assert!(p.message.contains("0 to 100"), "{}", p.message);
        let (_dir, path) = file("[quality]\npolicy = \"quality_first\"\nweight_resolution = 0\n");
        let cfg = Config::check_file(&path).unwrap();
        assert_eq!(cfg.quality.policy, QualityPolicy::QualityFirst);
        assert_eq!(cfg.quality.weights().resolution, 0.0);
        assert_eq!(Config::default().quality.weights(), QualityWeights::default(), "one default");
    }

    #[test]
    fn hdhomerun_keys_are_checked_and_discovery_needs_a_root_user() {
        assert_eq!(Config::default().hdhomerun.root_user, "", "off by default");
        assert!(!Config::default().hdhomerun.discovery, "off by default");
        let p = one_problem("[hdhomerun]\ndiscovery = true\n");
        assert_eq!(p.key, "hdhomerun.discovery");
        assert!(p.message.contains("root_user"), "{}", p.message);
        let p = one_problem("[hdhomerun]\nroot_user = \"kim lee\"\n");
        assert_eq!(p.key, "hdhomerun.root_user");
        let p = one_problem("[hdhomerun]\ndiscovery_bind = \"eth0\"\n");
        assert_eq!(p.key, "hdhomerun.discovery_bind");
        assert!(p.message.contains("IPv4"), "{}", p.message);
        let p = one_problem("[hdhomerun]\nssdp_port = 0\n");
        assert_eq!(p.key, "hdhomerun.ssdp_port");
        let p = one_problem(
            "[hdhomerun]\nroot_user = \"kim\"\ndiscovery = true\nssdp_port = 7000\ndiscovery_port = 7000\n",
        );
        assert_eq!(p.key, "hdhomerun.discovery_port");
        let (_dir, path) = file("[hdhomerun]\nroot_user = \"kim\"\ndiscovery = true\ndiscovery_bind = \"10.0.0.2\"\n");
        let cfg = Config::check_file(&path).unwrap();
        assert_eq!(cfg.hdhomerun.root_user, "kim");
        assert_eq!(cfg.hdhomerun.discovery_bind, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((cfg.hdhomerun.ssdp_port, cfg.hdhomerun.discovery_port), (1900, 65001));
    }

    #[test]
    fn env_var_names() {
        assert_eq!(Config::env_var_name("sync.catalog_interval"), "TUNERPOOL_SYNC_CATALOG_INTERVAL");
        // Every key can be set from the environment.
        for key in Config::keys() {
            let value = match key {
                "listen" => "127.0.0.1:1",
                "log_level" => "debug",
                "log_format" => "json",
                "public_url" => "http://x",
                "upstream.max_redirects" => "1",
                "pool.policy" => "least_loaded",
                "pool.expiry_warning_days" => "3",
                // Setting the ledger to redis alone is (rightly) incomplete.
                "pool.ledger" => continue,
                "pool.redis_url" => "redis://127.0.0.1:6379",
                "store.url" => "postgres://tunerpool@127.0.0.1:5432/tunerpool",
                "pool.lease_ttl" => "20s",
                "pool.release_cooldown" => "2s",
                "relay.linger" | "relay.acquire_wait" | "relay.stall_timeout" => "7s",
                "relay.max_switches" => "9",
                "relay.buffer_max" => "9MiB",
                "relay.buffer_seconds" => "3.5",
                "relay.user_limit_policy" => "refuse",
                "relay.max_viewers_per_session" | "relay.warm_after_starts" => "4",
                "relay.warm_linger" => "5m",
                "relay.wake_interval" => "20ms",
                "relay.viewer_stall" => "2m",
                "relay.always_on_yields" | "outputs.refusal_clip_live" | "outputs.refusal_clip_hdhomerun" => "false",
                "outputs.refusal_clip_stream" => "false",
                "outputs.refusal_clip_file" => "/srv/busy.ts",
                "outputs.refusal_clip_seconds" => "20s",
                "pool.reserved_slots" => "1",
                "pool.reserved_priority" => "50",
                "pool.preempt" => "true",
                "admin.token" => "0123456789abcdef-token",
                // The secret alone is (rightly) incomplete: it needs pool.redis_url and cluster.advertise_url.
                "cluster.secret" => continue,
                "cluster.advertise_url" => "http://10.0.0.5:8080",
                "cluster.instance_id" => "node-1",
                "cluster.ttl" => "3s",
                "epg.refresh" => "1h",
                "sync.max_playlist_bytes" | "sync.max_api_bytes" | "epg.max_guide_bytes" => "64MiB",
                "outputs.anonymous_streams" | "http.open_metrics" => "true",
                "outputs.anonymous_max_connections" => "5",
                "http.trusted_proxies" => "127.0.0.1, 10.0.0.0/8",
                "http.client_ip_header" => "forwarded",
                "lineup.match" | "lineup.auto_create" => "false",
                "lineup.match_groups" => "News, Sports",
                "history.retention" => "60days",
                "history.raw_retention" => "3h",
                "history.sample_interval" => "30s",
                "alerts.webhooks" => "ntfy:https://ntfy.sh/topic, json:http://127.0.0.1:9/hook",
                "alerts.notify_resolved" => "false",
                "alerts.retry_for" => "2h",
                // Discovery alone is (rightly) incomplete: it needs a root user.
                "hdhomerun.discovery" => continue,
                "hdhomerun.discovery_bind" => "192.168.1.10",
                "hdhomerun.ssdp_port" | "hdhomerun.discovery_port" => "1234",
                "quality.policy" => "quality_first",
                "probe.auto" => "true",
                "transcode.ffmpeg" => "/usr/local/bin/ffmpeg",
                "transcode.max_running" => "2",
                "transcode.input_args" => "-hwaccel vaapi",
                "transcode.profiles" => "mobile = -c:v libx264 -vf scale=-2:360,fps=25; audio@1 = -c:v copy -c:a aac",
                "probe.reserve" => "0",
                "probe.duration" | "probe.interval" => "30s",
                "probe.remeasure_after" => "2h",
                k if k.starts_with("quality.weight_") => "17",
                k if k.starts_with("sync.") || k.starts_with("upstream.") && k.contains("timeout") => "2m",
                _ => "something",
            };
            let cfg = load_no_file(vec![(Config::env_var_name(key), value.to_owned())], &Overrides::default());
            assert!(cfg.is_ok(), "{key}: {cfg:?}");
            assert_ne!(cfg.unwrap(), Config::default(), "{key} had no effect");
        }
    }

    #[test]
    fn example_file_is_the_defaults() {
        let text = include_str!("../../../tunerpool.example.toml");
        let (_dir, path) = file(text);
        assert_eq!(Config::check_file(&path).unwrap(), Config::default());
        // And it documents every key.
        for key in Config::keys() {
            let leaf = split_path(key).1;
            assert!(text.contains(&format!("{leaf} = ")), "{key} not in example");
        }
    }

    #[test]
    fn alert_webhooks_are_checked_per_entry_and_never_shown() {
        let secret = "https://discord.com/api/webhooks/1/SECRETTOKEN";
        let cfg = load_no_file(
            vec![(Config::env_var_name("alerts.webhooks"), format!("discord:{secret}, ntfy:https://ntfy.sh/topic"))],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg.alerts.webhooks.len(), 2);
        let shown = format!("{cfg:?}\n{}", cfg.to_toml());
        assert!(!shown.contains("SECRETTOKEN") && !shown.contains("topic"), "{shown}");
        assert!(shown.contains("# webhooks = [\"…\"]  (2 set; never shown)"), "{shown}");

        let err = load_no_file(
            no_env(),
            &Overrides {
                set: vec![
                    "alerts.webhooks=json:https://ok.example/h,https://nokind.example/SECRET2,teams:https://t.example"
                        .into(),
                ],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("alerts.webhooks: entry 2: expected `format:url`"), "{err}");
        assert!(err.contains("entry 3: unknown format \"teams\""), "{err}");
        assert!(!err.contains("SECRET2"), "{err}");

        let err = load_no_file(
            no_env(),
            &Overrides {
                set: vec!["history.retention=2h".into(), "history.raw_retention=3h".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("history.raw_retention: 3h is longer than history.retention (2h)"), "{err}");
    }

    #[test]
    fn admin_token_is_checked_and_never_shown() {
        let token = "s3cret-admin-token-1234";
        let cfg = load_no_file(
            vec![(Config::env_var_name("admin.token"), token.to_owned())],
            &Overrides { set: vec![], ..Default::default() },
        )
        .unwrap();
        assert_eq!(cfg.admin.token.as_ref().map(AdminTokenSetting::expose), Some(token));
        let shown = format!("{cfg:?}\n{}", cfg.to_toml());
        assert!(!shown.contains(token), "{shown}");
        let err = load_no_file(
            no_env(),
            &Overrides {
                set: vec!["admin.token=short".into(), "admin.token=has space in it!!".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems.iter().all(|p| p.key == "admin.token"), "{err}");
        assert!(err.problems[0].message.contains("at least 16") && !err.to_string().contains("short\""), "{err}");
        let cleared =
            load_no_file(no_env(), &Overrides { set: vec!["admin.token=".into()], ..Default::default() }).unwrap();
        assert_eq!(cleared.admin.token, None);
    }

    #[test]
    fn the_readme_carries_the_reference_made_from_the_key_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let made = reference();
        assert!(
            readme.contains(&made),
            "README.md's configuration table is not the one the key table makes: put `tunerpool config reference` \
             in its place:\n{made}"
        );
        assert_eq!(made.lines().count(), KEYS.len() + 2);
    }

    #[test]
    fn the_relay_buffer_is_seconds_of_the_bitrate_within_a_size() {
        let set = |kv: &str| load_no_file(no_env(), &Overrides { set: vec![kv.to_owned()], ..Default::default() });
        let relay = Config::default().relay;
        assert_eq!((relay.buffer_seconds, relay.buffer_max), (Duration::from_secs(1), 16 << 20));
        // Seconds: whole, fractions, 0 (the last GOP only); a number, named in every problem.
        assert_eq!(set("relay.buffer_seconds=2.5").unwrap().relay.buffer_seconds, Duration::from_millis(2500));
        assert_eq!(set("relay.buffer_seconds=0").unwrap().relay.buffer_seconds, Duration::ZERO);
        for bad in ["61", "-1", "soon", "NaN", "inf"] {
            let e = set(&format!("relay.buffer_seconds={bad}")).unwrap_err().to_string();
            assert!(e.contains("relay.buffer_seconds") && e.contains("0 to 60"), "{bad}: {e}");
        }
        let p = one_problem("[relay]\nbuffer_seconds = \"4s\"\n");
        assert_eq!(p.key, "relay.buffer_seconds");
        assert!(p.message.contains("remove the quotes"), "{}", p.message);
        // An old file's `buffer_seconds = 4` (then 4 MB whatever the bitrate) loads: now 4 s of the bitrate.
        let (_dir, path) = file("[relay]\nbuffer_seconds = 4\n");
        let (cfg, notes) = Config::check_file_noting(&path).unwrap();
        assert_eq!((cfg.relay.buffer_seconds, notes.len()), (Duration::from_secs(4), 0));
        // The cap: a size.
        assert_eq!(set("relay.buffer_max=12MB").unwrap().relay.buffer_max, 12_000_000);
        let e = set("relay.buffer_max=65MiB").unwrap_err().to_string();
        assert!(e.contains("relay.buffer_max") && e.contains("more than 64MiB"), "{e}");
        assert!(set("relay.buffer_max=100KiB").unwrap_err().to_string().contains("too small"));
        // Its old name still loads, from a file, the environment or --set, with a note saying what it is now.
        let (_dir, path) = file("[relay]\nbuffer_size = \"4MiB\"\n");
        let (cfg, notes) = Config::check_file_noting(&path).unwrap();
        assert_eq!(cfg.relay.buffer_max, 4 << 20);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].key, "relay.buffer_size");
        assert!(notes[0].message.contains("deprecated, read as relay.buffer_max"), "{}", notes[0].message);
        let env = vec![("TUNERPOOL_RELAY_BUFFER_SIZE".to_owned(), "2MiB".to_owned())];
        let (cfg, notes) = Config::load_noting(Some(&path), env, &Overrides::default()).unwrap();
        assert_eq!((cfg.relay.buffer_max, notes.len()), (2 << 20, 2), "{notes:?}");
        let over = Overrides { set: vec!["relay.buffer_size=3MiB".into()], ..Default::default() };
        let (cfg, notes) = Config::load_noting(Some(&path), no_env(), &over).unwrap();
        assert_eq!((cfg.relay.buffer_max, notes.len()), (3 << 20, 2), "{notes:?}");
        // And a bad value under the old name is a problem naming the name that was written.
        assert_eq!(one_problem("[relay]\nbuffer_size = \"1GiB\"\n").key, "relay.buffer_size");
    }

    #[test]
    fn byte_sizes() {
        let set = |v: &str| {
            load_no_file(
                no_env(),
                &Overrides { set: vec![format!("sync.max_playlist_bytes={v}")], ..Default::default() },
            )
        };
        assert_eq!(set("300MB").unwrap().sync.max_playlist_bytes, 300_000_000);
        assert_eq!(set("2 GiB").unwrap().sync.max_playlist_bytes, 2 << 30);
        assert_eq!(set("1048576").unwrap().sync.max_playlist_bytes, 1 << 20);
        let e = set("12 apples").unwrap_err().to_string();
        assert!(e.contains("sync.max_playlist_bytes") && e.contains("is not a size"), "{e}");
        let e = set("10KiB").unwrap_err().to_string();
        assert!(e.contains("too small") && e.contains("1MiB"), "{e}");
        let p = one_problem("[epg]\nmax_guide_bytes = true\n");
        assert_eq!(p.key, "epg.max_guide_bytes");
        assert_eq!(format_bytes(256 << 20), "256MiB");
    }

    #[test]
    fn access_keys_are_checked_and_named() {
        let (_dir, path) = file(
            "[outputs]\nanonymous_streams = true\nanonymous_max_connections = 3\n\
             [http]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"::1\"]\nclient_ip_header = \"Forwarded\"\n",
        );
        let cfg = Config::check_file(&path).unwrap();
        assert!(cfg.outputs.anonymous_streams);
        assert_eq!(cfg.outputs.anonymous_max_connections, 3);
        let nets: Vec<String> = cfg.http.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"], "networks are kept by their prefix");
        assert_eq!(cfg.http.client_ip_header, ClientIpHeader::Forwarded);
        assert!(!cfg.http.open_metrics);

        let p = problems(
            "[outputs]\nanonymous_streams = \"yes\"\nanonymous_max_connections = 0\n\
             [http]\ntrusted_proxies = [\"10.0.0.300\", \"example.org\"]\nclient_ip_header = \"x-real-ip\"\nopen_metrics = 1\n",
        );
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "outputs.anonymous_streams",
                "outputs.anonymous_max_connections",
                "http.trusted_proxies",
                "http.client_ip_header",
                "http.open_metrics"
            ],
            "{p:?}"
        );
        assert!(p[2].message.contains("\"10.0.0.300\", \"example.org\" are not an IP address"), "{}", p[2].message);
        // From the environment: a comma-separated list, and true/false words.
        let cfg = load_no_file(
            env(&[
                ("TUNERPOOL_HTTP_TRUSTED_PROXIES", "127.0.0.1, 192.168.0.0/16"),
                ("TUNERPOOL_HTTP_OPEN_METRICS", "yes"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(cfg.http.trusted_proxies.len(), 2);
        assert!(cfg.http.open_metrics);
    }
}
