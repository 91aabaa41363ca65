//! `bulkhead-worker`: started by the host, never by hand.
//!
//! With no arguments it serves one call on stdin/stdout (see
//! `bulkhead_worker::serve`). `--list-tools` prints the tool catalogue as
//! JSON, which is how `bulkhead tools` learns it without linking tool code.

use bulkhead_worker::{serve, tools};

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--list-tools") => {
            let list: Vec<_> = tools::all()
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "name": t.name(),
                        "description": t.description(),
                        "schema": t.schema(),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        #[cfg(target_os = "linux")]
        Some("--probe-sandbox") => {
            let rows = bulkhead_worker::sandbox::probe::run();
            println!(
                "{}",
                serde_json::to_string(&rows).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            );
        }
        Some("--version") => println!(
            "bulkhead-worker {} (commit {}; target {}; features: {}; linked: {})",
            serve::WORKER_VERSION,
            env!("BULKHEAD_GIT_COMMIT"),
            env!("BULKHEAD_TARGET"),
            if cfg!(feature = "remote") {
                "remote"
            } else {
                "none"
            },
            // `scripts/build-release` links the worker statically (see
            // ARCHITECTURE.md, "The worker's linking"); a plain cargo build
            // does not.
            if cfg!(target_feature = "crt-static") {
                "static"
            } else {
                "dynamic"
            }
        ),
        None => {
            let parent = std::env::var("BULKHEAD_HOST_PID")
                .ok()
                .and_then(|p| p.parse().ok());
            if let Err(e) = serve::serve(parent) {
                eprintln!("bulkhead-worker: {e}");
                std::process::exit(1);
            }
        }
        Some(other) => {
            eprintln!(
                "bulkhead-worker: unknown argument \"{other}\". This program is started by \
                 bulkhead; it takes no arguments except --list-tools, --probe-sandbox and --version."
            );
            std::process::exit(2);
        }
    }
}
