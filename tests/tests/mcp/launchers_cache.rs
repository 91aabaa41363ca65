//! Package launchers and bulkhead's cache: a pinned package starts with no
//! network, an unknown launcher runs as before with a note, concurrent cold
//! starts fetch once, and an unreachable registry is a clear error. The
//! helpers and the other launcher tests are in `launchers.rs`.

use bulkhead_tests::launchers::{
    RUN_LIMIT, Scratch, bulkhead_cmd, client_env, entries_starting, inspect_as_client,
    inspect_bare, output_within, package_line, shared_cache, tool_names, wrapped,
};
use bulkhead_tests::peer;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::launchers::*;

/// A fetched package starts again with `--no-fetch` and the registry out of
/// reach, from the version pinned at its fetch; `mcp fetch --json` says
/// which.
#[test]
fn a_pinned_package_starts_offline() {
    let s = Scratch::new();
    let env = client_env(Some(shared_cache()));
    let fetched = fetch_json(&s.home, &env, &npx(EVERYTHING, &[]));
    let pkg = &fetched["package"];
    assert_eq!(pkg["installer"], "npm", "{fetched}");
    assert_eq!(pkg["name"], EVERYTHING, "{fetched}");
    let version = pkg["version"].as_str().expect("version").to_owned();
    let dir = PathBuf::from(pkg["dir"].as_str().expect("dir"));
    assert_eq!(dir.file_name().unwrap().to_str(), Some(version.as_str()));
    assert_cached_npm(&dir, EVERYTHING, &version);
    let pin = dir.parent().unwrap().join("pin");
    assert_eq!(std::fs::read_to_string(&pin).expect("pin").trim(), version);
    let command: Vec<&str> = fetched["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        command[0].starts_with(&dir.display().to_string()),
        "runs from the cache: {fetched}"
    );
    assert!(
        fetched["read"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str() == dir.to_str()),
        "reads its package directory: {fetched}"
    );

    // Asked again: from the cache, the same version.
    let again = fetch_json(&s.home, &env, &npx(EVERYTHING, &[]));
    assert_eq!(again["package"]["fetched_now"], false, "{again}");
    assert_eq!(again["package"]["version"], version.as_str());

    // Offline: --no-fetch, and a registry that cannot be reached.
    let mut offline = env.clone();
    offline.push(("npm_config_registry".into(), "http://127.0.0.1:1/".into()));
    let target = wrapped(&["--no-fetch"], &npx(EVERYTHING, &[]));
    let list = inspect_as_client(&s.home, &offline, &target, &["tools/list"]);
    assert!(tool_names(list.answer()).contains(&"echo".to_owned()));
    let p = package_of(&list, "npm", EVERYTHING);
    assert!(!p.fetched, "{}", list.stderr);
    assert_eq!(
        (p.version.as_str(), p.dir.as_path()),
        (version.as_str(), dir.as_path())
    );
    assert!(
        list.stderr.contains(&format!(
            "(from {}, read-only to the server)",
            dir.display()
        )),
        "{}",
        list.stderr
    );

    // --no-fetch with an empty cache: an error that says what to run.
    let empty = Scratch::new();
    let out = output_within(
        &mut bulkhead_cmd(&empty.home, &client_env(None), &{
            let mut a = vec!["mcp", "wrap", "--no-fetch", "--"];
            a.extend(["npx", "-y", EVERYTHING]);
            a
        }),
        RUN_LIMIT,
        "mcp wrap --no-fetch",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("is not in bulkhead's package cache") && err.contains("bulkhead mcp fetch"),
        "{err}"
    );
    assert!(
        !empty
            .home
            .join(".cache/bulkhead/packages/npm")
            .join("@modelcontextprotocol+server-everything")
            .join(&version)
            .exists()
    );
}

/// A launcher bulkhead does not know runs as it is, with a note, and
/// nothing fetched.
#[test]
fn an_unknown_launcher_runs_as_before_with_a_note() {
    let s = Scratch::new();
    let env = client_env(None);
    let node = peer("MCP_NODE");
    let everything = peer("MCP_EVERYTHING");
    let line = format!("exec '{node}' '{everything}' stdio");
    let server = strings(&["sh", "-c", &line]);
    let peers = peer("MCP_PEERS_DIR");
    let target = wrapped(&["--allow-read", &peers], &server);

    let list = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    let listed = list.answer().clone();
    assert_eq!(package_line(&list.stderr), None, "{}", list.stderr);
    let bare = inspect_bare(
        &s.bare_home,
        &env,
        &[node, everything, "stdio".into()],
        &["tools/list"],
    );
    assert_eq!(tool_names(&listed), tool_names(&bare));
    let call = [
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "message=as before",
    ];
    let through = inspect_as_client(&s.home, &env, &target, &call);
    assert_eq!(first_text(through.answer()), "Echo: as before");

    let plan = fetch_json(&s.home, &env, &server);
    assert_eq!(plan["package"], Value::Null, "{plan}");
    assert_eq!(plan["read"], serde_json::json!([]), "{plan}");
    let command = plan["command"].as_array().expect("command");
    assert_eq!(command.len(), 3, "{plan}");
    assert!(command[0].as_str().unwrap().ends_with("/sh"), "{plan}");
    assert_eq!(
        command[2],
        line.as_str(),
        "the arguments as they were: {plan}"
    );
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("unknown launcher sh") && notes.contains("--allow-read"),
        "{plan}"
    );
    assert!(
        !s.home.join(".cache/bulkhead").exists(),
        "nothing to fetch, no cache"
    );
}

/// Two starts of the same package at once, from an empty cache (two
/// clients opening their configs together): one fetches, the other waits
/// for it and runs what it fetched, with no second lookup.
#[test]
fn cold_concurrent_starts_fetch_once() {
    let s = Scratch::new();
    let env = client_env(None);
    let spawn = || {
        let home = s.home.clone();
        let env = env.clone();
        std::thread::spawn(move || {
            let mut args = vec!["mcp", "fetch", "--json", "--"];
            args.extend(["npx", "-y", EVERYTHING]);
            let out = output_within(
                &mut bulkhead_cmd(&home, &env, &args),
                RUN_LIMIT,
                "mcp fetch",
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
        })
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.join().expect("first"), b.join().expect("second"));
    assert_eq!(a["package"]["version"], b["package"]["version"]);
    assert_eq!(a["package"]["dir"], b["package"]["dir"]);
    let fetched = [&a, &b]
        .iter()
        .filter(|v| v["package"]["fetched_now"] == true)
        .count();
    assert_eq!(fetched, 1, "exactly one of them fetched:\n{a}\n{b}");
    let root = s
        .home
        .join(".cache/bulkhead/packages/npm/@modelcontextprotocol+server-everything");
    let versions: Vec<String> = entries_starting(&root, "")
        .into_iter()
        .filter(|n| !n.starts_with('.') && n != "pin")
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_no_scratch_left(&root);
    assert_no_user_caches(&s.home);
}

/// A registry that cannot be reached: `mcp fetch` and `mcp wrap` end
/// promptly with an error that names the step and the connection that
/// failed, and leave nothing in the cache.
#[test]
fn an_unreachable_registry_is_a_clear_error() {
    let s = Scratch::new();
    let mut env = client_env(None);
    // Straight to the registry named here: no other registry, no proxy.
    env.retain(|(k, _)| {
        !k.starts_with("npm_config_") && !k.to_ascii_lowercase().ends_with("_proxy")
    });
    // Port 1 on loopback: refused at once. npm's own retries (two, with
    // back-off: about 70 s here) are turned off to keep the test short; the
    // bound below is about bulkhead, not npm's patience.
    env.push(("npm_config_registry".into(), "http://127.0.0.1:1/".into()));
    env.push(("npm_config_fetch_retries".into(), "0".into()));
    let limit = Duration::from_secs(120);

    let started = Instant::now();
    let mut args = vec!["mcp", "fetch", "--"];
    args.extend(["npx", "-y", EVERYTHING]);
    let out = output_within(&mut bulkhead_cmd(&s.home, &env, &args), limit, "mcp fetch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(started.elapsed() < limit);
    for needle in [
        &format!("fetching {EVERYTHING}"),
        "npm view",
        "egress to 127.0.0.1:1 failed",
        "Connection refused",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    let root = s
        .home
        .join(".cache/bulkhead/packages/npm/@modelcontextprotocol+server-everything");
    assert!(
        !root.join("pin").exists(),
        "a failed fetch pinned a version"
    );
    assert_no_scratch_left(&root);
    let versions: Vec<String> = entries_starting(&root, "")
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(versions.is_empty(), "a failed fetch left {versions:?}");

    // What a client sees: the server ends before initialize, and bulkhead's
    // stderr (which the client shows or logs) says why.
    let target = wrapped(&[], &npx(EVERYTHING, &[]));
    let run = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr
            .contains(&format!("bulkhead: fetching {EVERYTHING}"))
            && run.stderr.contains("egress to 127.0.0.1:1 failed"),
        "{}",
        run.stderr
    );
}
