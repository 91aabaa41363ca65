//! Resizing: the same state drawn at 80×24, then 40×12, then 200×60 (as a
//! terminal resized twice would draw it) never panics, and the status bar
//! and the running card stay on screen at every size.

use super::snapshots::{frame_at, running_state};

/// The status bar's first figure and the card's tool, both on screen.
fn assert_visible(frame: &str, size: &str) {
    assert!(
        frame.contains(" host "),
        "no status bar at {size}:\n{frame}"
    );
    assert!(frame.contains("shell"), "no card at {size}:\n{frame}");
}

#[test]
fn the_same_state_draws_at_every_size() {
    let mut app = running_state();
    let at_80 = frame_at(&mut app, 80, 24);
    assert_visible(&at_80, "80×24");
    insta::assert_snapshot!("resize_80x24", at_80);
    let at_40 = frame_at(&mut app, 40, 12);
    assert_visible(&at_40, "40×12");
    insta::assert_snapshot!("resize_40x12", at_40);
    let at_200 = frame_at(&mut app, 200, 60);
    assert_visible(&at_200, "200×60");
    assert!(
        at_200.contains("mem 3.0 MiB/1.0 GiB"),
        "the wide frame lost the card's figures:\n{at_200}"
    );
}
