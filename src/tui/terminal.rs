//! Entering and leaving the full-screen mode, on every exit path: a normal
//! return, an error, and a panic.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use ratatui::crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, KeyboardEnhancementFlags,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};

// Mouse reporting of button presses and the wheel only (1000) in SGR form
// (1006): no motion events flooding an SSH link, and the terminal keeps its
// own selection with Shift held.
const MOUSE_ON: &str = "\x1b[?1000h\x1b[?1006h";
const MOUSE_OFF: &str = "\x1b[?1006l\x1b[?1000l";

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The alternate screen, before raw mode: the image-protocol query in
/// between needs the alternate screen but sets its own terminal mode.
pub fn enter_alternate_screen() -> io::Result<()> {
    ACTIVE.store(true, Ordering::SeqCst);
    execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
}

/// Raw mode, bracketed paste, wheel reporting and unambiguous keys
/// (Shift+Enter, a prompt Esc) where the terminal supports them.
pub fn enter_raw_mode() -> io::Result<()> {
    enable_raw_mode()?;
    let mut out = io::stdout();
    execute!(out, EnableBracketedPaste)?;
    // Terminals that do not know the kitty keyboard protocol ignore this.
    let _ = execute!(
        out,
        PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
    );
    out.write_all(MOUSE_ON.as_bytes())?;
    out.flush()
}

/// Puts the terminal back as it was. Safe to call more than once and from a
/// panic hook.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    let _ = out.write_all(MOUSE_OFF.as_bytes());
    let _ = execute!(out, PopKeyboardEnhancementFlags);
    let _ = execute!(out, DisableBracketedPaste);
    let _ = disable_raw_mode();
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

static WORKER_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// A panic on the main thread restores the terminal before its message is
/// printed, so the message is readable and the shell usable. A panic on a
/// worker thread (the engine, a decoder) leaves the screen alone: the chat
/// goes on and shows the message as an error line (see [`take_worker_panic`]).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_main = std::thread::current().name() == Some("main");
        if on_main || !ACTIVE.load(Ordering::SeqCst) {
            restore();
            previous(info);
            return;
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = WORKER_PANIC.lock() {
            *slot = Some(format!("{what}{place}"));
        }
    }));
}

/// The message of the last panic on a worker thread, if any.
pub fn take_worker_panic() -> Option<String> {
    WORKER_PANIC.lock().ok().and_then(|mut s| s.take())
}

static TERMINATE: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_termination_signal(sig: libc::c_int) {
    // Only an atomic store: nothing else is safe inside a signal handler.
    TERMINATE.store(sig, Ordering::SeqCst);
}

/// SIGTERM, SIGHUP, SIGINT and SIGQUIT ask the chat to quit through its
/// normal exit, which saves the conversation and restores the terminal,
/// instead of killing it mid-screen. A signal that was ignored when glimpse
/// started stays ignored: under `nohup` a hang-up must not end it.
pub fn install_signal_handlers() {
    #[cfg(unix)]
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
        let handler: extern "C" fn(libc::c_int) = on_termination_signal;
        // SAFETY: sigaction with a null new action only reads the current
        // one; the handler installed only stores to an atomic.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// What the terminal said when the input thread waited on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputWait {
    /// Bytes are waiting to be read.
    Ready,
    /// Nothing arrived in time.
    Quiet,
    /// The terminal hung up or is gone (an SSH link dropped, the window
    /// closed): no input will ever come.
    Closed,
}

/// Waits up to `timeout` for the terminal on standard input.
#[cfg(unix)]
pub fn wait_for_input(timeout: std::time::Duration) -> InputWait {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    if n < 0 {
        return match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::Interrupted => InputWait::Quiet,
            _ => InputWait::Closed,
        };
    }
    if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        InputWait::Closed
    } else if fd.revents & libc::POLLIN != 0 {
        InputWait::Ready
    } else {
        InputWait::Quiet
    }
}

#[cfg(not(unix))]
pub fn wait_for_input(timeout: std::time::Duration) -> InputWait {
    match ratatui::crossterm::event::poll(timeout) {
        Ok(true) => InputWait::Ready,
        Ok(false) => InputWait::Quiet,
        Err(_) => InputWait::Closed,
    }
}

/// The termination signal that arrived, if one did.
pub fn termination_signal() -> Option<i32> {
    match TERMINATE.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Restores the terminal when dropped, whatever way the scope is left.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}
