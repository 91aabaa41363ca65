//! The real terminal: raw mode and the alternate screen on, and off again
//! on every way out (normal exit, error, panic), and the thread that reads
//! input.

use std::io::{Stdout, Write, stdout};

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

/// Puts the terminal back as it was. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = restore_screen(&mut stdout());
}

/// Writes what takes the screen back out of TUI mode: bracketed paste
/// off, the main screen back, the cursor shown. Raw mode is a termios
/// setting, not a sequence, and [`restore`] turns it off separately.
pub fn restore_screen(out: &mut impl Write) -> std::io::Result<()> {
    execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    )
}

/// The terminal in TUI mode; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, after installing a panic
    /// hook that restores the terminal before the panic message prints.
    pub fn enter() -> std::io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        if let Err(e) = execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal first, then runs the previous hook (which prints
/// the message), so a panic never leaves the user's shell in raw mode.
fn install_panic_hook() {
    install_panic_hook_with(restore);
}

/// The panic hook with its restore step given, so a test can watch what
/// it writes without a real terminal.
fn install_panic_hook_with(restore: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        tracing::error!(panic = %info, "panic");
        previous(info);
    }));
}

/// Reads terminal events on a plain thread (crossterm's `read` blocks) and
/// sends them to the UI. The channel is bounded; when it is full the
/// thread waits, so no key is lost and memory does not grow. The thread
/// ends when the UI drops the receiver or input fails.
pub fn spawn_input_thread(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            loop {
                match crossterm::event::read() {
                    Ok(event) => {
                        if tx.blocking_send(event).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "terminal input failed");
                        return;
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// `ESC [ ? 1049 l` leaves the alternate screen, `ESC [ ? 25 h` shows
    /// the cursor, `ESC [ ? 2004 l` ends bracketed paste.
    const LEAVE_ALTERNATE: &str = "\x1b[?1049l";
    const SHOW_CURSOR: &str = "\x1b[?25h";
    const PASTE_OFF: &str = "\x1b[?2004l";

    #[test]
    fn restore_leaves_the_alternate_screen_and_shows_the_cursor() {
        let mut out = Vec::new();
        restore_screen(&mut out).expect("write to a Vec");
        let text = String::from_utf8_lossy(&out);
        for seq in [LEAVE_ALTERNATE, SHOW_CURSOR, PASTE_OFF] {
            assert!(text.contains(seq), "{seq:?} missing from {text:?}");
        }
    }

    #[test]
    fn a_panic_restores_the_screen_before_the_previous_hook_runs() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let seen_by_previous = Arc::new(Mutex::new(None));
        let original = std::panic::take_hook();
        // The "previous" hook records what had been written when it ran.
        let (w, seen) = (written.clone(), seen_by_previous.clone());
        std::panic::set_hook(Box::new(move |_| {
            let so_far = w.lock().map(|b| b.len()).unwrap_or(0);
            if let Ok(mut s) = seen.lock() {
                *s = Some(so_far);
            }
        }));
        let w = written.clone();
        install_panic_hook_with(move || {
            if let Ok(mut buf) = w.lock() {
                let _ = restore_screen(&mut *buf);
            }
        });
        let result = std::panic::catch_unwind(|| panic!("a bug in the UI"));
        std::panic::set_hook(original);
        assert!(result.is_err());
        let out = written.lock().expect("lock").clone();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains(LEAVE_ALTERNATE) && text.contains(SHOW_CURSOR),
            "{text:?}"
        );
        assert_eq!(
            *seen_by_previous.lock().expect("lock"),
            Some(out.len()),
            "the terminal was not restored before the panic message"
        );
    }
}
