//! The crate's docs are true: every TOML example in a module doc is a
//! config bulkhead accepts, and the limits table of the crate doc lists
//! exactly the keys [`LimitsDef`] reads.

use std::path::Path;

use crate::{Config, LimitsDef};

/// The module docs, by file name.
const DOCS: [(&str, &str); 5] = [
    ("lib.rs", include_str!("lib.rs")),
    ("config_file.rs", include_str!("config_file.rs")),
    ("servers.rs", include_str!("servers.rs")),
    ("agents.rs", include_str!("agents.rs")),
    ("store.rs", include_str!("store.rs")),
];

/// The text of each ```` ```toml ```` block of `source`'s `//!` doc.
fn toml_blocks(source: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines().map_while(|l| l.strip_prefix("//!")) {
        let line = line.strip_prefix(' ').unwrap_or(line);
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```toml block");
    blocks
}

#[test]
fn every_toml_example_in_a_module_doc_is_accepted() {
    let mut seen = 0;
    for (file, source) in DOCS {
        for block in toml_blocks(source) {
            seen += 1;
            if let Err(e) = Config::parse(&block, Path::new(file)) {
                panic!("the example in {file}'s doc is refused: {e}\n{block}");
            }
        }
    }
    assert_eq!(seen, DOCS.len(), "one example per module doc");
}

#[test]
fn the_crate_doc_example_sets_every_table() {
    let block = toml_blocks(include_str!("lib.rs")).remove(0);
    let set = Config::parse(&block, Path::new("lib.rs")).expect("the crate doc's example");
    assert!(set.worker.is_some());
    assert_eq!(set.tool_default, "workspace");
    let research = set.get("research").expect("[policies.research]");
    assert_eq!(research.limits.memory_bytes, Some(512 << 20));
    assert!(set.mcp.servers_file.is_some());
    assert_eq!(
        set.servers["filesystem"].limits.memory.as_deref(),
        Some("256MiB")
    );
    assert!(set.agents.models.contains_key("local"));
    let coder = set.agents.agent(None).expect("[defaults] agent");
    assert_eq!(coder.limits.max_output_bytes, Some(4 << 20));
    assert_eq!(
        set.store.retention().unwrap().max_store_bytes,
        Some(2 << 30)
    );
}

#[test]
fn the_limits_table_lists_exactly_the_limits_keys() {
    let keys: Vec<&str> = include_str!("lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    for key in &keys {
        let value = match *key {
            "pids" | "open_files" => "1",
            "cpu" | "timeout" => "\"1s\"",
            _ => "\"1MiB\"",
        };
        let def: LimitsDef = toml::from_str(&format!("{key} = {value}"))
            .unwrap_or_else(|e| panic!("`{key}` in the crate doc's table: {e}"));
        assert_ne!(def, LimitsDef::default(), "{key}");
        let set = Config::parse(&format!("[servers.x]\n{key} = {value}\n"), Path::new("x"));
        match *key {
            // A server's own keys stand for these (the crate doc says so).
            "timeout" | "output" => assert!(set.is_err(), "{key}"),
            _ => assert_eq!(set.expect(key).servers["x"].limits, def, "{key} inline"),
        }
    }
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}
