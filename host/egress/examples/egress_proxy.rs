//! Runs one egress proxy on a Unix socket until Ctrl-C (or stdin closes),
//! then prints what it let through and refused.
//!
//! ```sh
//! cargo run -p bulkhead-egress --example egress_proxy -- /tmp/d/egress.sock api.github.com:443 localhost:8080
//! ```

use std::io::Read;

use bulkhead_egress::{AllowList, EgressLog, EgressProxy, ProxyConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .ok_or("usage: egress_proxy SOCKET [HOST[:PORT]]...")?;
    let allow = AllowList::parse(args)?;
    eprintln!(
        "serving {socket}, allowing {:?}",
        allow
            .rules()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let log = EgressLog::new();
    let proxy = EgressProxy::bind(&socket, ProxyConfig::new(allow), log.clone())?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = [0; 64];
        while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
    proxy.shutdown().await;
    let report = log.report();
    eprintln!(
        "allowed {}, refused {}, failed {}, {} bytes up, {} bytes down",
        report.allowed, report.refused, report.failed, report.bytes_up, report.bytes_down
    );
    for message in &report.messages {
        eprintln!("  {} (x{})", message.text, message.count);
    }
    Ok(())
}
