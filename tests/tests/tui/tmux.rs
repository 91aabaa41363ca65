//! The TUI in a real terminal (tmux): a search too big for the output cap
//! ends as a truncated card, `!yes` killed with the kill key ends as a
//! killed card, both with their figures; Ctrl-D quits, and the session is
//! in the store.

use std::time::Duration;

use bulkhead_store::Store;
use bulkhead_tests::bin;
use bulkhead_tests::tmux::{Tmux, tui_env};

/// Generous: CI machines are slow and loaded; the test polls, so a fast
/// machine does not wait this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// 200 files × 400 matching lines × ~70 bytes: about 6 MiB of matches,
/// far over the default 1 MiB output cap.
fn big_tree(root: &std::path::Path) {
    for d in 0..10 {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..20 {
            let text: String = (0..400)
                .map(|i| format!("line {i}: a needle in a haystack, padded to be long enough\n"))
                .collect();
            std::fs::write(dir.join(format!("f{f}.txt")), text).expect("write");
        }
    }
}

#[test]
fn truncated_and_killed_cards_then_quit_and_the_session_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    big_tree(&tree);
    let bulkhead = bin("bulkhead").display().to_string();
    let env = tui_env(dir.path());
    let t = Tmux::start(dir.path(), &[bulkhead], &env);
    t.wait_for("the empty state", DEADLINE, |s| s.contains("direct mode"));

    t.line(&format!("/search needle {}", tree.display()));
    let screen = t.wait_for("the truncated card", DEADLINE, |s| {
        s.contains("truncated: kept 1.0 MiB of")
    });
    assert!(
        screen.contains("search_files_content needle in"),
        "{screen}"
    );
    assert!(
        screen.contains("peak ") && screen.contains("/1.0 GiB") && screen.contains("/1.0 MiB"),
        "figures missing:\n{screen}"
    );

    // A cap `yes` will not reach soon, so the kill key ends it.
    t.line("/limits output=50G");
    t.wait_for("the new limits", DEADLINE, |s| {
        s.contains("output 50.0 GiB")
    });
    t.line("!yes");
    t.wait_for("yes running with live figures", DEADLINE, |s| {
        s.lines()
            .any(|l| l.contains("mem ") && l.contains("/50.0 GiB") && !l.contains("out 0 B"))
    });
    t.keys(&["C-k"]);
    let screen = t.wait_for("the killed card", DEADLINE, |s| {
        s.contains("killed: cancelled")
    });
    assert!(
        screen
            .lines()
            .any(|l| l.contains("peak ") && l.contains("/50.0 GiB")),
        "figures missing:\n{screen}"
    );

    // Enter on the selected card opens its output, read from the store.
    t.keys(&["Enter"]);
    t.wait_for("the pager", DEADLINE, |s| {
        s.contains("kept of") && s.contains("q/Esc closes")
    });
    t.keys(&["q"]);

    assert_eq!(t.quit(DEADLINE), 0, "{}", t.screen());

    let store = Store::open(dir.path().join("sessions.db")).expect("store");
    let sessions = store.list_sessions(None, 10).expect("list");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let items = store.last_items(sessions[0].id, 20, 200).expect("items");
    let results: Vec<_> = items.iter().filter_map(|i| i.result.as_ref()).collect();
    let statuses: Vec<_> = results.iter().map(|r| r.status.as_deref()).collect();
    assert_eq!(
        statuses,
        vec![Some("truncated"), Some("killed")],
        "{items:?}"
    );
    assert!(
        items.iter().any(|i| i.text == "!yes"),
        "the typed line is recorded"
    );
}
