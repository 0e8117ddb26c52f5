//! The admin API keeps its contract, checked by the tools a client author
//! would use: `openapi-spec-validator` on `/api/v1/openapi.json`, and
//! `schemathesis` running every check against the demo (valid requests
//! accepted, invalid ones refused, every status and body as documented,
//! no server error), with `schemathesis.toml` at the repository root. Both
//! are Python tools (`pip install schemathesis openapi-spec-validator`;
//! `.ci/run` installs them); the test fails, never skips, without them.

mod common;

use std::path::Path;
use std::process::Command;

use common::{start_server, tunerpool};

/// Examples per operation: bounded for CI; a longer run sets
/// `TUNERPOOL_CONTRACT_EXAMPLES` (e.g. 200).
const EXAMPLES: &str = "20";
/// A fixed seed, so that a failure is the same on every run; change it (or
/// set `TUNERPOOL_CONTRACT_SEED`) to explore other inputs.
const SEED: &str = "20261205";

fn tool(name: &str) -> Command {
    let probe = Command::new(name).arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{name} is needed: pip install schemathesis openapi-spec-validator (.ci/run installs them into a venv)"
    );
    Command::new(name)
}

#[test]
fn the_admin_api_keeps_its_openapi_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tunerpool(dir.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let server = start_server(cmd);
    let doc_url = format!("{}/api/v1/openapi.json", server.base);

    let (status, doc) = common::get_text_as(&server.token, &doc_url);
    assert_eq!(status, 200);
    let doc_file = dir.path().join("openapi.json");
    std::fs::write(&doc_file, doc).unwrap();
    let out = tool("openapi-spec-validator").arg(&doc_file).output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemathesis.toml");
    let examples = std::env::var("TUNERPOOL_CONTRACT_EXAMPLES").unwrap_or_else(|_| EXAMPLES.into());
    let seed = std::env::var("TUNERPOOL_CONTRACT_SEED").unwrap_or_else(|_| SEED.into());
    let out = tool("schemathesis")
        // Its example cache (.schemathesis/) goes to the temporary directory, not the checkout.
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &doc_url, "--url", &server.base, "--checks", "all"])
        .args(["--max-examples", &examples, "--seed", &seed, "--no-color"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", server.token))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found contract failures:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really tested the API: every operation, with generated cases.
    assert!(report.contains("Tested:"), "{report}");
    assert!(!report.contains("Tested: 0"), "{report}");
}
