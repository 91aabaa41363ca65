//! One egress proxy, as `bulkhead-bench egress` measures it: bound to a
//! Unix socket, served on a current-thread tokio runtime (the runtime
//! `bulkhead run` and `bulkhead mcp wrap` serve a call's proxy on), until
//! stdin closes. Prints `ready` on stdout once the socket is bound, and at
//! the end the log's counts as one line of `key=value` pairs.
//!
//! ```sh
//! cargo build --release -p bulkhead-egress --example bench_proxy
//! target/release/examples/bench_proxy [--threads N] SOCKET HOST[:PORT]...
//! ```
//!
//! `--threads N` (N ≥ 1) serves it on a multi-thread runtime of N workers
//! instead, as the interactive TUI's calls runtime (two threads) does.
//! The bench reads this process's `VmHWM` from `/proc/PID/status`; nothing
//! here allocates beyond what the proxy does.

use std::io::{Read, Write};

use bulkhead_egress::{AllowList, EgressLog, EgressProxy, ProxyConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = 0;
    if args.first().map(String::as_str) == Some("--threads") {
        threads = args
            .get(1)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .ok_or("--threads takes a number of at least 1")?;
        args.drain(..2);
    }
    if args.is_empty() {
        return Err("usage: bench_proxy [--threads N] SOCKET [HOST[:PORT]]...".into());
    }
    let socket = args.remove(0);
    let allow = AllowList::parse(&args)?;
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let log = EgressLog::new();
        let proxy = EgressProxy::bind(&socket, ProxyConfig::new(allow), log.clone())?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "ready")?;
            out.flush()?;
        }
        tokio::task::spawn_blocking(|| {
            let mut sink = [0; 64];
            while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await?;
        proxy.shutdown().await;
        let r = log.report();
        println!(
            "allowed={} refused={} failed={} bytes_up={} bytes_down={}",
            r.allowed, r.refused, r.failed, r.bytes_up, r.bytes_down
        );
        for m in &r.messages {
            eprintln!("bench_proxy: {} (x{})", m.text, m.count);
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
