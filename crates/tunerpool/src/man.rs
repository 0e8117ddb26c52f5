//! Man pages and shell completions generated from the clap definitions, so
//! they never drift from `--help`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Writes `tunerpool.1` to stdout, or, with `dir`, `tunerpool.1` and one page
/// per subcommand (`tunerpool-provider-add.1`, …) into that directory.
pub fn write(dir: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            print(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let written = write_tree(&cmd, "tunerpool", dir)?;
            eprintln!("wrote {written} man pages to {}", dir.display());
        }
    }
    Ok(())
}

/// Writes generated text to stdout; a reader that stops early (`| head`,
/// `| man -l -` quitting) is not an error.
pub fn print(text: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Renders `cmd` as `<name>.1` and recurses into its subcommands; returns the
/// number of pages written.
fn write_tree(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = cmd.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_tree(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
