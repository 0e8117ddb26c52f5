//! The command line as a user meets it: help for every command, shell
//! completions and man pages, from the real binary.

use std::process::Command;

fn tunerpool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tunerpool")).args(args).output().expect("run tunerpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["demo"],
    &["config", "check"],
    &["config", "show"],
    &["inspect", "m3u"],
    &["provider", "add"],
    &["provider", "list"],
    &["provider", "sync"],
    &["provider", "remove"],
    &["account", "test"],
    &["account", "add"],
    &["account", "list"],
    &["user", "add"],
    &["user", "list"],
    &["user", "remove"],
    &["completions"],
    &["man"],
];

#[test]
fn every_command_has_help_with_global_options_apart() {
    for cmd in COMMANDS {
        let mut args = vec!["help"];
        args.extend_from_slice(cmd);
        let (ok, out, err) = tunerpool(&args);
        assert!(ok, "tunerpool {args:?}: {err}");
        assert!(out.contains("Usage: tunerpool"), "{args:?}:\n{out}");
        let (own, global) = out.split_once("Global options:").unwrap_or_else(|| panic!("{args:?}:\n{out}"));
        assert!(global.contains("--data-dir") && !own.contains("--data-dir"), "{args:?}:\n{out}");
        // No colour codes when stdout is not a terminal.
        assert!(!out.contains('\u{1b}'), "{args:?}");
    }
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (ok, out, err) = tunerpool(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        assert!(out.contains("provider") && out.contains("data-dir"), "{shell}:\n{out}");
    }
    let (ok, _, err) = tunerpool(&["completions", "tcsh"]);
    assert!(!ok && err.contains("tcsh"), "{err}");
}

#[test]
fn man_pages_to_stdout_and_to_a_directory() {
    let (ok, out, err) = tunerpool(&["man"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(".ie") && out.contains(".TH tunerpool 1"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = tunerpool(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(ok, "{err}");
    for page in ["tunerpool.1", "tunerpool-provider-add.1", "tunerpool-user-add.1", "tunerpool-serve.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH NAME"), "{page}");
    }
    let add = std::fs::read_to_string(dir.path().join("tunerpool-provider-add.1")).unwrap();
    assert!(add.contains("Examples") && add.contains("TUNERPOOL_PROVIDER_PASSWORD"), "{add}");
}
