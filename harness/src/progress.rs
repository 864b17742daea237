//! Progress on the terminal for long runs (`compare`, `scaling`, every
//! sweep of cells), drawn by `indicatif` on stderr: a bar over the run's
//! cells with the elapsed time and an ETA, and under it a bar for the
//! running phase of the current cell (its seconds and ops/s).
//!
//! The rules, in this order:
//! 1. `WALRUS_QUIET=1` (or `--quiet`, which is [`Settings::quiet`]) silences
//!    everything here: no bars and no per-cell lines. Results still print.
//! 2. When stderr is not a terminal (a pipe, a CI log, `2> file`), nothing
//!    is redrawn; each cell gets one plain line, so logs stay readable.
//! 3. Otherwise the bars draw in place, and the per-cell lines scroll above
//!    them.
//!
//! [`Settings::quiet`]: crate::Settings::quiet

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// `, ETA 3m05s` once a cell is done: the mean time per cell so far times
/// the cells left (this one included); empty before.
fn eta_note(elapsed: Duration, n: usize, total: usize) -> String {
    let done = n.saturating_sub(1);
    if done == 0 {
        return String::new();
    }
    let left = elapsed.as_secs_f64() / done as f64 * (total + 1).saturating_sub(n) as f64;
    let secs = left.round() as u64;
    format!(", ETA {}m{:02}s", secs / 60, secs % 60)
}

/// How often the run bar redraws on its own (its clock and ETA), so that
/// they move while a cell verifies what it wrote.
const STEADY_TICK: Duration = Duration::from_secs(1);

/// Where progress goes. Cheap to clone; clones draw on the same bars.
#[derive(Clone)]
pub struct Progress {
    quiet: bool,
    /// `Some` when bars are drawn (rule 3).
    live: Option<Arc<Bars>>,
    /// When the first cell started: the plain `[n/total]` lines carry an
    /// ETA from it (the bars have their own).
    first_cell: Arc<Mutex<Option<std::time::Instant>>>,
}

struct Bars {
    multi: MultiProgress,
    /// The bar over the run's cells, from the first cell to the last.
    run: Mutex<Option<ProgressBar>>,
    /// The bar of the phase running now, between its first tick and `clear`.
    phase: Mutex<Option<ProgressBar>>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("quiet", &self.quiet)
            .field("live", &self.live.is_some())
            .finish()
    }
}

impl Progress {
    /// Progress for a run; `quiet` is `WALRUS_QUIET` as the settings
    /// resolved it. Bars only when stderr is a terminal.
    pub fn new(quiet: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress::with_target(quiet, terminal.then(ProgressDrawTarget::stderr))
    }

    /// Silent, for tests.
    pub fn silent() -> Progress {
        Progress::with_target(true, None)
    }

    /// `target` is where bars draw, `None` for plain lines; quiet wins.
    fn with_target(quiet: bool, target: Option<ProgressDrawTarget>) -> Progress {
        let live = match target {
            Some(target) if !quiet => Some(Arc::new(Bars {
                multi: MultiProgress::with_draw_target(target),
                run: Mutex::new(None),
                phase: Mutex::new(None),
            })),
            _ => None,
        };
        Progress {
            quiet,
            live,
            first_cell: Arc::default(),
        }
    }

    /// Whether bars are drawn (not quiet, stderr a terminal).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// One line of the run's log (a note, a failed cell). Above the bars
    /// when they are drawn.
    pub fn line(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(bars) => {
                if bars.multi.println(msg.as_ref()).is_err() {
                    eprintln!("{}", msg.as_ref());
                }
            }
            None => eprintln!("{}", msg.as_ref()),
        }
    }

    /// Cell `n` of `total` (1-based) starts: logs `[n/total] what` and
    /// moves the run bar to it. The bar's ETA comes from the cells done.
    pub fn cell(&self, n: usize, total: usize, what: impl AsRef<str>) {
        let eta = {
            let mut first = lock(&self.first_cell);
            let started = *first.get_or_insert_with(std::time::Instant::now);
            eta_note(started.elapsed(), n, total)
        };
        self.line(format!("[{n}/{total}] {}{eta}", what.as_ref()));
        let Some(bars) = &self.live else {
            return;
        };
        let mut run = lock(&bars.run);
        let bar = run.get_or_insert_with(|| {
            let bar = bars.multi.insert(0, ProgressBar::new(total as u64));
            bar.set_style(run_style());
            bar.enable_steady_tick(STEADY_TICK);
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(n.saturating_sub(1) as u64);
    }

    /// The cell announced last has ended (run or failed). After the last
    /// cell the run bar goes away, so the tables print on a clean screen.
    pub fn cell_done(&self) {
        let Some(bars) = &self.live else {
            return;
        };
        let mut run = lock(&bars.run);
        if let Some(bar) = run.as_ref() {
            bar.inc(1);
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.finish_and_clear();
                bars.multi.remove(bar);
                *run = None;
            }
        }
    }

    /// Redraws the bar of a running phase: `elapsed` of `total`, at the
    /// rate `ops` gives.
    pub fn tick(&self, label: &str, elapsed: Duration, total: Duration, ops: u64) {
        let Some(bars) = &self.live else {
            return;
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        let message = format!(
            "{label:<13} {:>5.1}s / {:.1}s {:>12} ops/s",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            crate::format::group_digits((ops as f64 / secs) as u64),
        );
        let length = total.as_millis() as u64;
        let position = (elapsed.as_millis() as u64).min(length);
        let mut phase = lock(&bars.phase);
        match phase.as_ref() {
            // The message first: each setter may redraw.
            Some(bar) => {
                bar.set_message(message);
                bar.set_length(length);
                bar.set_position(position);
            }
            None => {
                let bar = ProgressBar::new(length)
                    .with_style(phase_style())
                    .with_message(message)
                    .with_position(position);
                let bar = bars.multi.add(bar);
                bar.tick(); // draw now, not at the next update
                *phase = Some(bar);
            }
        }
    }

    /// Removes the phase bar once a phase ends.
    pub fn clear(&self) {
        if let Some(bars) = &self.live {
            if let Some(bar) = lock(&bars.phase).take() {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `[00:01:23] [#######>-------] 12/40 cells, ETA 3m 05s`. The ETA reads
/// `?` until a cell has finished: before that there is no rate to go by.
fn run_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "[{elapsed_precise}] [{bar:30}] {pos}/{len} cells, ETA {eta_or_unknown}",
    )
    .expect("the run bar's template parses")
    .with_key(
        "eta_or_unknown",
        |state: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = if state.pos() == 0 {
                w.write_str("?")
            } else {
                write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
            };
        },
    )
    .progress_chars("#>-")
}

fn phase_style() -> ProgressStyle {
    ProgressStyle::with_template("  [{bar:30}] {msg}")
        .expect("the phase bar's template parses")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::io;

    /// A terminal that keeps what was written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        fn text(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            let mut t = self.0.lock().unwrap();
            t.push_str(s);
            t.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn on_screen(quiet: bool) -> (Progress, Screen) {
        let screen = Screen::default();
        // A high rate so that every update draws.
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 200);
        (Progress::with_target(quiet, Some(target)), screen)
    }

    #[test]
    fn a_run_draws_cells_an_eta_and_the_phase() {
        let (p, screen) = on_screen(false);
        assert!(p.is_live());
        p.cell(1, 4, "walrus-fd write threads=1");
        p.tick(
            "write",
            Duration::from_millis(1500),
            Duration::from_secs(3),
            3000,
        );
        std::thread::sleep(Duration::from_millis(20));
        p.clear();
        p.cell_done();
        p.cell(2, 4, "raw write threads=1");
        std::thread::sleep(Duration::from_millis(20));
        p.tick("write", Duration::from_secs(1), Duration::from_secs(3), 10);
        let text = screen.text();
        assert!(text.contains("[1/4] walrus-fd write threads=1"), "{text}");
        assert!(text.contains("[2/4] raw write threads=1"), "{text}");
        assert!(text.contains("0/4 cells, ETA ?"), "{text}");
        assert!(text.contains("1/4 cells, ETA "), "{text}");
        assert!(!text.contains("1/4 cells, ETA ?"), "{text}");
        assert!(text.contains("1.5s / 3.0s        2,000 ops/s"), "{text}");
    }

    #[test]
    fn the_run_bar_goes_after_the_last_cell() {
        let (p, _screen) = on_screen(false);
        p.cell(1, 1, "only");
        p.cell_done();
        let bars = p.live.as_ref().unwrap();
        assert!(lock(&bars.run).is_none());
        // A second run starts a fresh bar.
        p.cell(1, 2, "again");
        assert_eq!(lock(&bars.run).as_ref().unwrap().length(), Some(2));
    }

    #[test]
    fn quiet_draws_nothing_even_on_a_terminal() {
        let (p, screen) = on_screen(true);
        assert!(!p.is_live());
        p.cell(1, 2, "walrus-fd");
        p.tick("write", Duration::from_secs(1), Duration::from_secs(2), 5);
        p.clear();
        p.cell_done();
        assert_eq!(screen.text(), "");
        assert!(!Progress::silent().is_live());
    }

    #[test]
    fn without_a_terminal_there_are_no_bars() {
        // What `new` does when stderr is not a terminal (as under `cargo test`
        // with captured output, or any pipe).
        let p = Progress::with_target(false, None);
        assert!(!p.is_live());
        p.tick("write", Duration::from_secs(1), Duration::from_secs(2), 5);
        p.clear();
        p.cell_done();
    }

    #[test]
    fn plain_lines_carry_an_eta_from_the_cells_done() {
        assert_eq!(eta_note(Duration::from_secs(5), 1, 10), "");
        // 2 cells in 20 s: 10 s each, 8 left including the third.
        assert_eq!(eta_note(Duration::from_secs(20), 3, 10), ", ETA 1m20s");
        assert_eq!(eta_note(Duration::from_secs(20), 10, 10), ", ETA 0m02s");
    }
}
