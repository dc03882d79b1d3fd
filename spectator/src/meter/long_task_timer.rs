//! Long task timer: how many long-running tasks are in flight, and for how long so far.

use super::{push_stat, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Slots per block.
const BLOCK: usize = 64;
/// A slot no task holds.
const FREE: u64 = u64::MAX;

/// Measures tasks while they run (a batch job, a migration, a long poll): each poll reports
/// `statistic=activeTasks` = the tasks started and not yet stopped, and `statistic=duration` =
/// the sum of their running times so far, in seconds (both op Max, both sent even when 0, so
/// that a stuck or missing task is visible as it happens rather than when it ends). A
/// [`Timer`](crate::Timer) only learns about a task when it ends.
///
/// [`start`](LongTaskTimer::start) returns a [`LongTask`]; [`LongTask::stop`] (or dropping it)
/// ends the task. Times come from the registry clock's monotonic time. Lock-free: a task holds
/// one slot (an atomic start time) from start to stop, taken with one compare-and-swap, so a
/// poll sees each task whole; a further block of 64 slots is allocated once when all are busy.
///
/// Spectator Java's `LongTaskTimer` (`com.netflix.spectator.api.patterns`).
///
/// ```
/// use spectator::{ManualClock, Registry};
/// use std::time::Duration;
/// let clock = ManualClock::new(0, 0);
/// let registry = Registry::builder().clock(clock.clone()).build();
/// let migrations = registry.long_task_timer("db.migration", &[]);
/// let task = migrations.start();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(migrations.active_tasks(), 1);
/// assert_eq!(migrations.duration(), Duration::from_secs(30));
/// assert_eq!(task.stop(), Duration::from_secs(30));
/// assert_eq!(migrations.active_tasks(), 0);
/// ```
#[derive(Clone)]
pub struct LongTaskTimer {
    pub(crate) core: Arc<LongTaskTimerCore>,
}

pub(crate) struct LongTaskTimerCore {
    first: Block,
    clock: Arc<dyn Clock>,
}

/// Task slots: each the monotonic start time (ns) of the task holding it, or [`FREE`].
struct Block {
    slots: [AtomicU64; BLOCK],
    next: OnceLock<Box<Block>>,
}

impl Block {
    fn new() -> Block {
        Block {
            slots: std::array::from_fn(|_| AtomicU64::new(FREE)),
            next: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for LongTaskTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongTaskTimer")
            .field("active_tasks", &self.active_tasks())
            .field("duration", &self.duration())
            .finish()
    }
}

impl LongTaskTimerCore {
    /// The blocks allocated so far.
    fn blocks(&self) -> impl Iterator<Item = &Block> {
        std::iter::successors(Some(&self.first), |b| b.next.get().map(|b| &**b))
    }

    /// Tasks running and the sum of their running times (ns) at monotonic time `now`.
    fn running(&self, now: u64) -> (u64, u128) {
        let mut active = 0u64;
        let mut total = 0u128;
        for block in self.blocks() {
            for slot in &block.slots {
                let start = slot.load(Ordering::Acquire);
                if start != FREE {
                    active += 1;
                    total += u128::from(now.saturating_sub(start));
                }
            }
        }
        (active, total)
    }

    /// The slot of a task: block `block`, slot `slot`.
    fn slot(&self, block: usize, slot: usize) -> Option<&AtomicU64> {
        self.blocks().nth(block).map(|b| &b.slots[slot])
    }
}

impl Meter for LongTaskTimerCore {
    fn kind(&self) -> &'static str {
        LongTaskTimer::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let (active, total_ns) = self.running(self.clock.monotonic_time());
        push_stat(out, id, Stat::ActiveTasks, active as f64);
        // Divided, not multiplied by 1e-9: whole seconds stay whole.
        push_stat(out, id, Stat::Duration, total_ns as f64 / 1e9);
        // Active while a task runs (a running task also holds the meter).
        poll.updated_if(active > 0)
    }
}

impl MeterKind for LongTaskTimer {
    const KIND: &'static str = "long task timer";
    type Core = LongTaskTimerCore;
    fn new_core(clock: &Arc<dyn Clock>) -> LongTaskTimerCore {
        LongTaskTimerCore {
            first: Block::new(),
            clock: clock.clone(),
        }
    }
    fn from_core(core: Arc<LongTaskTimerCore>) -> LongTaskTimer {
        LongTaskTimer { core }
    }
}

impl LongTaskTimer {
    /// Starts a task; it runs until the returned [`LongTask`] is stopped or dropped.
    pub fn start(&self) -> LongTask {
        let core = &*self.core;
        // FREE marks an empty slot: a clock at u64::MAX ns (584 years) starts 1 ns earlier.
        let start = core.clock.monotonic_time().min(FREE - 1);
        let mut block = &core.first;
        let mut index = 0;
        loop {
            for (i, slot) in block.slots.iter().enumerate() {
                if slot.load(Ordering::Relaxed) == FREE
                    && slot
                        .compare_exchange(FREE, start, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    return LongTask {
                        core: Some(self.core.clone()),
                        block: index,
                        slot: i,
                        start,
                    };
                }
            }
            block = block.next.get_or_init(|| Box::new(Block::new()));
            index += 1;
        }
    }

    /// Tasks started and not yet stopped.
    pub fn active_tasks(&self) -> u64 {
        self.core.running(self.core.clock.monotonic_time()).0
    }

    /// The sum of the running times of the tasks in flight.
    pub fn duration(&self) -> Duration {
        let (_, ns) = self.core.running(self.core.clock.monotonic_time());
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// One running task of a [`LongTaskTimer`]: it counts as active until [`stop`](LongTask::stop)
/// is called or it is dropped (so a panic or an early return ends it too).
#[must_use = "a long task ends when dropped; dropping it at once measures nothing"]
pub struct LongTask {
    /// `None` once stopped.
    core: Option<Arc<LongTaskTimerCore>>,
    block: usize,
    slot: usize,
    start: u64,
}

impl LongTask {
    /// How long the task has been running.
    pub fn elapsed(&self) -> Duration {
        match &self.core {
            Some(core) => {
                Duration::from_nanos(core.clock.monotonic_time().saturating_sub(self.start))
            }
            None => Duration::ZERO,
        }
    }

    /// Ends the task and returns how long it ran.
    pub fn stop(mut self) -> Duration {
        self.end()
    }

    fn end(&mut self) -> Duration {
        let Some(core) = self.core.take() else {
            return Duration::ZERO;
        };
        let elapsed = core.clock.monotonic_time().saturating_sub(self.start);
        if let Some(slot) = core.slot(self.block, self.slot) {
            slot.store(FREE, Ordering::Release);
        }
        Duration::from_nanos(elapsed)
    }
}

impl Drop for LongTask {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::fmt::Debug for LongTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongTask")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}
