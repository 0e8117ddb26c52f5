//! `barecast`: the bare broadcast server `bench/relay.sh` runs next to tunerpool, so that every
//! relay figure comes with the ratio tunerpool ÷ bare measured in the same run (issue 16). What
//! it does and does not do is in `loadgen::bare`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use loadgen::bare::{Config, Server, BUFFER_CHUNKS, CHUNK_BYTES};

/// `barecast` flags.
#[derive(Parser, Debug)]
#[command(
    name = "barecast",
    version,
    about = "A bare broadcast server of live MPEG-TS: one upstream per channel, fixed 32 KiB chunks to every \
             viewer, nothing else. The floor tunerpool's relay is measured against."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:19579")]
    listen: SocketAddr,

    /// Upstream URL of a channel, `{channel}` replaced by the last path segment of the viewer's
    /// request without `.ts`, e.g. http://127.0.0.1:19577/live/u/p/{channel}.ts
    #[arg(long, value_name = "URL")]
    upstream_template: String,

    /// Chunk size in bytes (default: the relay's, 188 × 174).
    #[arg(long, value_name = "BYTES", default_value_t = CHUNK_BYTES)]
    chunk_bytes: usize,

    /// Chunks each channel's broadcast holds; a viewer further behind skips ahead.
    #[arg(long, value_name = "N", default_value_t = BUFFER_CHUNKS)]
    buffer_chunks: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        upstream_template: args.upstream_template,
        chunk_bytes: args.chunk_bytes,
        buffer_chunks: args.buffer_chunks,
    };
    // The same runtime as tunerpool's: multi-threaded, one worker per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("barecast: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: anyhow::Result<()> = runtime.block_on(async {
        let server = Server::new(config)?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        eprintln!("barecast: listening on {}", listener.local_addr()?);
        server.run(listener).await?;
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("barecast: {e:#}");
            ExitCode::FAILURE
        }
    }
}
