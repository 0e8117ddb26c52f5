//! The deployment files (Dockerfile, docker compose files, the systemd unit
//! and the env examples) against the binary and the workspace they deploy,
//! so that they cannot rot silently: every `TUNERPOOL_*` variable they name
//! is one tunerpool knows, every value they set is one it accepts, the
//! placeholder admin tokens are ones it refuses, and the Cargo profile and
//! toolchain the Dockerfile builds with exist. Plain text checks; `.ci/run`
//! parses the YAML and compares the toolchain with the locked dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

/// Every file that names configuration variables, from the workspace root.
const FILES: &[&str] = &[
    "Dockerfile",
    "docker-compose.yml",
    "docker-compose.cluster.yml",
    ".env.example",
    "deploy/tunerpool.service",
    "deploy/tunerpool.env.example",
];

/// Variables the deployment files name ahead of the code, with what they
/// wait for. Each must stay unknown to tunerpool and commented out where it
/// is set (tunerpool refuses unknown `TUNERPOOL_*` variables); once the code
/// knows it, `not_yet_is_still_not_known` fails: drop it from here and
/// switch its line on.
/// (None now: `TUNERPOOL_STORE_URL`, the last, is known since the shared store.)
const NOT_YET: &[(&str, &str)] = &[];

/// The files' placeholder for the admin token: tunerpool must refuse it.
const PLACEHOLDER_TOKEN: &str = "change-me";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs tunerpool with exactly these environment variables, in a directory
/// without a tunerpool.toml.
fn tunerpool(args: &[&str], env: &BTreeMap<String, String>) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tunerpool"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run tunerpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `TUNERPOOL_X` name `text` starts with, if it does (`TUNERPOOL_*`
/// is not one).
fn name_at(text: &str) -> Option<String> {
    let rest = text.strip_prefix("TUNERPOOL_")?;
    let len = rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(rest.len());
    (len > 0).then(|| format!("TUNERPOOL_{}", &rest[..len]))
}

/// Every `TUNERPOOL_X` name in a text.
fn names(text: &str) -> BTreeSet<String> {
    text.match_indices("TUNERPOOL_").filter_map(|(at, _)| name_at(&text[at..])).collect()
}

/// The variables tunerpool knows: every configuration key's, and those its
/// command line reads (`[env: TUNERPOOL_CONFIG=]` in the help, however wrapped).
fn known() -> BTreeSet<String> {
    let (ok, reference, err) = tunerpool(&["config", "reference"], &BTreeMap::new());
    assert!(ok, "config reference: {err}");
    let (ok, help, err) = tunerpool(&["help", "serve"], &BTreeMap::new());
    assert!(ok, "help serve: {err}");
    let mut known = names(&reference);
    known.extend(help.match_indices("[env:").flat_map(|(at, _)| names(help[at..].split(']').next().unwrap_or(""))));
    assert!(known.contains("TUNERPOOL_DATA_DIR") && known.contains("TUNERPOOL_CONFIG"), "{known:?}");
    known
}

/// An assignment of a variable in one of the files.
#[derive(Debug)]
struct Assignment {
    file: &'static str,
    line: usize,
    name: String,
    value: String,
    /// `# NAME: value`: an example, or a variable for later.
    commented: bool,
}

/// `NAME=value` (env files, Dockerfile `ENV`, systemd `Environment=`) and
/// `NAME: value` (compose), commented out or not; mentions in prose are not
/// assignments.
fn assignments(file: &'static str) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (i, line) in read(file).lines().enumerate() {
        let mut rest = line.trim_start();
        let commented = rest.starts_with('#');
        rest = rest.trim_start_matches('#').trim_start();
        for prefix in ["ENV ", "Environment="] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let Some(name) = name_at(rest) else { continue };
        let after = &rest[name.len()..];
        let Some(value) = after.strip_prefix('=').or_else(|| after.strip_prefix(':')) else { continue };
        let value = value.trim().trim_end_matches('\\').trim().trim_matches('"').to_owned();
        out.push(Assignment { file, line: i + 1, name, value, commented });
    }
    out
}

#[test]
fn every_variable_the_files_name_is_one_tunerpool_knows() {
    let known = known();
    for file in FILES {
        for name in names(&read(file)) {
            let later = NOT_YET.iter().any(|(n, _)| *n == name);
            assert!(
                known.contains(&name) || later,
                "{file} names {name}, which tunerpool does not know (`tunerpool config reference`); \
                 a variable for a feature to come belongs in NOT_YET"
            );
        }
    }
}

#[test]
fn not_yet_is_still_not_known_and_never_set() {
    let known = known();
    for (name, waits_for) in NOT_YET {
        assert!(
            !known.contains(*name),
            "tunerpool knows {name} now ({waits_for}): take it out of NOT_YET in this test and \
             switch its line on in the deployment files"
        );
    }
    let set: Vec<_> = FILES
        .iter()
        .flat_map(|f| assignments(f))
        .filter(|a| !a.commented && NOT_YET.iter().any(|(n, _)| *n == a.name))
        .collect();
    assert!(set.is_empty(), "tunerpool would refuse to start: {set:?}");
}

/// Each file's assignments, commented examples included, as tunerpool's
/// environment: the values must load, and the placeholder token must not.
#[test]
fn every_value_the_files_set_is_accepted_and_the_placeholder_token_is_refused() {
    let real_token = "0123456789abcdef".repeat(4);
    for file in FILES {
        let mut env = BTreeMap::new();
        for a in assignments(file) {
            if NOT_YET.iter().any(|(n, _)| *n == a.name) || a.value.starts_with("${") {
                // For later, or interpolated by compose from .env (checked there).
                continue;
            }
            env.insert(a.name, a.value);
        }
        // A token in a committed file can only be a placeholder that stops
        // tunerpool, never one it would run with.
        if let Some(token) = env.get("TUNERPOOL_ADMIN_TOKEN") {
            assert_eq!(token, PLACEHOLDER_TOKEN, "{file}: the admin token must be the placeholder");
            let (ok, _, err) = tunerpool(&["config", "show"], &env);
            assert!(
                !ok && err.contains("TUNERPOOL_ADMIN_TOKEN") && err.contains("too short"),
                "{file}: tunerpool must refuse the placeholder token: {err}"
            );
            env.insert("TUNERPOOL_ADMIN_TOKEN".into(), real_token.clone());
        }
        // The cluster secret's placeholder likewise.
        if let Some(secret) = env.get("TUNERPOOL_CLUSTER_SECRET") {
            assert_eq!(secret, PLACEHOLDER_TOKEN, "{file}: the cluster secret must be the placeholder");
            let (ok, _, err) = tunerpool(&["config", "show"], &env);
            assert!(
                !ok && err.contains("TUNERPOOL_CLUSTER_SECRET") && err.contains("too short"),
                "{file}: tunerpool must refuse the placeholder cluster secret: {err}"
            );
            env.insert("TUNERPOOL_CLUSTER_SECRET".into(), real_token.chars().rev().collect());
            // .env.example holds only the secret; the compose file adds the Redis and each instance's URL.
            env.entry("TUNERPOOL_POOL_REDIS_URL".into()).or_insert_with(|| "redis://redis:6379/0".into());
            env.entry("TUNERPOOL_CLUSTER_ADVERTISE_URL".into()).or_insert_with(|| "http://tunerpool-1:8080".into());
        }
        let (ok, _, err) = tunerpool(&["config", "show"], &env);
        assert!(ok, "{file}: tunerpool refuses its settings {env:?}:\n{err}");
    }
}

/// The admin token the compose files pass on comes from .env, and
/// .env.example holds it.
#[test]
fn compose_files_read_the_admin_token_from_dot_env() {
    let example: Vec<_> = assignments(".env.example").into_iter().map(|a| a.name).collect();
    assert!(example.contains(&"TUNERPOOL_ADMIN_TOKEN".to_owned()), "{example:?}");
    for file in ["docker-compose.yml", "docker-compose.cluster.yml"] {
        let token: Vec<_> =
            assignments(file).into_iter().filter(|a| a.name == "TUNERPOOL_ADMIN_TOKEN" && !a.commented).collect();
        assert!(!token.is_empty(), "{file}: no admin token");
        for a in token {
            assert!(
                a.value.starts_with("${TUNERPOOL_ADMIN_TOKEN:?"),
                "{}:{}: not from .env: {}",
                a.file,
                a.line,
                a.value
            );
        }
    }
    // Cluster mode: the secret from .env too, never written in the compose file; each instance its own id and
    // advertise URL.
    assert!(assignments(".env.example").iter().any(|a| a.name == "TUNERPOOL_CLUSTER_SECRET"));
    let cluster = assignments("docker-compose.cluster.yml");
    let secret: Vec<_> = cluster.iter().filter(|a| a.name == "TUNERPOOL_CLUSTER_SECRET" && !a.commented).collect();
    assert!(!secret.is_empty(), "docker-compose.cluster.yml: cluster mode is off (no TUNERPOOL_CLUSTER_SECRET)");
    assert!(secret.iter().all(|a| a.value.starts_with("${TUNERPOOL_CLUSTER_SECRET:?")), "{secret:?}");
    for name in ["TUNERPOOL_CLUSTER_INSTANCE_ID", "TUNERPOOL_CLUSTER_ADVERTISE_URL"] {
        let values: std::collections::BTreeSet<_> =
            cluster.iter().filter(|a| a.name == name && !a.commented).map(|a| a.value.clone()).collect();
        assert_eq!(values.len(), 3, "docker-compose.cluster.yml: {name} once per instance: {values:?}");
    }
    assert!(read(".gitignore").lines().any(|l| l.trim() == ".env"), ".env must be git-ignored");
}

fn cargo_toml() -> toml::Table {
    read("Cargo.toml").parse().expect("Cargo.toml")
}

#[test]
fn the_dist_profile_the_dockerfile_and_the_unit_build_with_exists() {
    let cargo = cargo_toml();
    let dist = cargo["profile"]["dist"].as_table().expect("[profile.dist] in Cargo.toml");
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["lto"].as_str(), Some("fat"));
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    // relay::quality and catalog::users catch panics: they need unwinding.
    assert!(dist.get("panic").is_none() && cargo["profile"]["release"].get("panic").is_none());
    assert!(read("Dockerfile").contains("cargo build --locked --profile dist"));
    assert!(read("Dockerfile").contains("target/dist/tunerpool"));
    assert!(read("deploy/tunerpool.service").contains("cargo build --locked --profile dist"));
}

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or_else(|_| panic!("not a version: {v}"))).collect()
}

#[test]
fn the_dockerfile_builds_with_at_least_the_workspace_toolchain() {
    let cargo = cargo_toml();
    let msrv = cargo["workspace"]["package"]["rust-version"].as_str().expect("workspace rust-version");
    let dockerfile = read("Dockerfile");
    let rust = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION= in the Dockerfile");
    assert!(version(rust) >= version(msrv), "the Dockerfile's Rust {rust} is older than rust-version {msrv}");
    assert!(dockerfile.contains("FROM rust:${RUST_VERSION}-bookworm AS builder"));
}

/// The image's data dir is its volume, and its port the one it listens on.
#[test]
fn the_image_keeps_its_data_in_the_volume_and_exposes_its_port() {
    let dockerfile = read("Dockerfile");
    let env: BTreeMap<_, _> = assignments("Dockerfile").into_iter().map(|a| (a.name, a.value)).collect();
    let data = &env["TUNERPOOL_DATA_DIR"];
    assert!(dockerfile.contains(&format!("VOLUME {data}\n")), "VOLUME {data}");
    let port = env["TUNERPOOL_LISTEN"].rsplit(':').next().unwrap().to_owned();
    assert!(dockerfile.contains(&format!("EXPOSE {port}\n")), "EXPOSE {port}");
    for file in ["docker-compose.yml", "docker-compose.cluster.yml"] {
        let compose = read(file);
        assert!(compose.contains(&format!("http://127.0.0.1:{port}/healthz")), "{file}: healthcheck on {port}");
        assert!(compose.contains(&format!(":{data}")), "{file}: a volume on {data}");
    }
}
