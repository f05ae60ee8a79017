//! Blocking without locks: a waiter spins briefly, then yields, then sleeps on a futex word;
//! a notifier issues the wake system call only when someone sleeps.
//!
//! Protocol (Dekker-style, all on `SeqCst`): a waiter registers in `waiters`, reads `epoch`,
//! re-checks its condition, and sleeps only while `epoch` is unchanged. A notifier first makes
//! its condition true with a `SeqCst` store or read-modify-write, then reads `waiters`; if it is
//! non-zero it bumps `epoch` and wakes. Either the notifier sees the registration, or the waiter's
//! re-check sees the condition: a wake-up cannot be lost.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

const SPINS: u32 = 64;
const IDLE_NAP: Duration = Duration::from_micros(50);
const IDLE_NAPS: u32 = 40;
const YIELDS: u32 = 16;
/// Upper bound of one sleep. Correctness does not depend on it (see the protocol above); it caps
/// the damage of an unforeseen lost wake-up at a latency spike instead of a hang.
const SLEEP_MAX: Duration = Duration::from_millis(200);

#[derive(Default)]
pub(crate) struct Notifier {
    epoch: AtomicU32,
    waiters: AtomicU32,
}

impl Notifier {
    /// Wakes all sleepers, if any. The caller has already made their condition true with a
    /// `SeqCst` operation.
    pub(crate) fn notify(&self) {
        if self.waiters.load(SeqCst) > 0 {
            self.epoch.fetch_add(1, SeqCst);
            futex_wake_all(&self.epoch);
        }
    }

    /// Returns once `ready()` is true. `ready` must read the condition with at least `SeqCst`
    /// loads for the parts a notifier sets.
    pub(crate) fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        if spin_then_yield(&mut ready) {
            return;
        }
        self.sleep_until(ready);
    }

    /// For the writer's idle wait: like [`Notifier::wait_until`], but naps (polling) for up to
    /// about [`IDLE_NAPS`] × [`IDLE_NAP`] before it registers as a sleeper. While the writer
    /// naps, producers see no sleeper and make no wake-up system call; a wake-up per append
    /// would cost more than the append itself. The price is up to one nap of latency after a
    /// short idle period, negligible next to an fdatasync.
    pub(crate) fn idle_until(&self, mut ready: impl FnMut() -> bool) {
        if spin_then_yield(&mut ready) {
            return;
        }
        for _ in 0..IDLE_NAPS {
            std::thread::sleep(IDLE_NAP);
            if ready() {
                return;
            }
        }
        self.sleep_until(ready);
    }

    fn sleep_until(&self, mut ready: impl FnMut() -> bool) {
        loop {
            self.waiters.fetch_add(1, SeqCst);
            let epoch = self.epoch.load(SeqCst);
            if ready() {
                self.waiters.fetch_sub(1, SeqCst);
                return;
            }
            futex_wait(&self.epoch, epoch, SLEEP_MAX);
            self.waiters.fetch_sub(1, SeqCst);
            if ready() {
                return;
            }
        }
    }
}

fn spin_then_yield(ready: &mut impl FnMut() -> bool) -> bool {
    for _ in 0..SPINS {
        if ready() {
            return true;
        }
        std::hint::spin_loop();
    }
    for _ in 0..YIELDS {
        if ready() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Spins, then yields, then naps: for waits that another thread ends without notifying (a
/// producer between its claim and its commit). `ready` is polled.
pub(crate) fn poll_until(mut ready: impl FnMut() -> bool) {
    let mut round: u32 = 0;
    while !ready() {
        if round < SPINS {
            std::hint::spin_loop();
        } else if round < SPINS + YIELDS * 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
        round = round.saturating_add(1);
    }
}

#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; FUTEX_WAIT only reads
    // it. The result is ignored on purpose: EAGAIN (value changed), EINTR and ETIMEDOUT all mean
    // "re-check the condition", which the caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

#[cfg(target_os = "linux")]
fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: as above; FUTEX_WAKE does not access memory beyond the futex key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Portable fallback: nap and let the caller re-check.
#[cfg(not(target_os = "linux"))]
fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
    if word.load(SeqCst) == expected {
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[cfg(not(target_os = "linux"))]
fn futex_wake_all(_word: &AtomicU32) {}
