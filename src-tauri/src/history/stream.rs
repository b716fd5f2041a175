//! Writing an answer while it is generated: buffered in memory, flushed on a deadline.
//!
//! Writing every token would cost a database write per token; never writing until the end
//! would lose the whole answer in a crash. [`StreamWriter`] buffers deltas and flushes when
//! the oldest unflushed delta is [`FlushPolicy::interval`] old or the buffer reaches
//! [`FlushPolicy::max_pending_bytes`]. The check runs on every append and on a background
//! thread, so a slow model (one token every few seconds) still gets its text flushed on time.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::Value;

use super::{now_ms, to_json, MessageEnd, MessageId};
use crate::error::{AppError, Result};

/// The time source of the flush deadline; tests drive a fake one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// When buffered text must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// The longest a delta waits in memory. The promise to users is "at most half a second of
    /// an answer is lost in a crash"; the default leaves 100 ms for the write and thread wake-up.
    pub interval: Duration,
    /// Flush sooner once this much text is waiting, so a burst never builds a large write.
    pub max_pending_bytes: usize,
    /// Run the deadline thread. Off only in tests that need every flush to happen inside an
    /// `append` call, at a time their fake clock decides.
    pub background: bool,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(400),
            max_pending_bytes: 16 * 1024,
            background: true,
        }
    }
}

/// Buffers an assistant message's text and thinking and flushes them to the history.
///
/// Made by [`super::History::stream_writer`]; `Send`, so it moves to the generation thread.
/// End it with [`StreamWriter::finish`]. Dropped without `finish` (a panic, an early return),
/// it flushes what it holds and marks the message interrupted. If the process dies instead,
/// the next [`super::History::open`] marks it interrupted with the text of the last flush.
pub struct StreamWriter {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    id: MessageId,
    ended: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    policy: FlushPolicy,
    clock: Arc<dyn Clock>,
}

struct State {
    conn: Connection,
    id: MessageId,
    text: String,
    thinking: String,
    /// When the oldest unflushed delta arrived; `None` while nothing waits.
    pending_since: Option<Instant>,
    /// A failed background flush, handed to the next caller.
    failed: Option<AppError>,
    stop: bool,
    flushes: u64,
}

impl StreamWriter {
    pub(super) fn start(
        conn: Connection,
        id: MessageId,
        policy: FlushPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conn,
                id,
                text: String::new(),
                thinking: String::new(),
                pending_since: None,
                failed: None,
                stop: false,
                flushes: 0,
            }),
            wake: Condvar::new(),
            policy,
            clock,
        });
        let flusher = if policy.background {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("history-flush-{}", id.0))
                .spawn(move || shared.run_deadlines())
                .map_err(AppError::Thread)?;
            Some(handle)
        } else {
            None
        };
        Ok(Self {
            shared,
            flusher,
            id,
            ended: false,
        })
    }

    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Buffers the deltas (either may be empty) and flushes if the policy says so. Returns the
    /// error of a failed flush, including one the background thread ran into; the text stays
    /// buffered and the next flush tries again. [`AppError::MessageNotStreaming`] means the
    /// message was deleted or ended meanwhile: stop generating.
    pub fn append(&mut self, text_delta: &str, thinking_delta: &str) -> Result<()> {
        let mut st = self.shared.lock();
        if let Some(err) = st.failed.take() {
            return Err(err);
        }
        if text_delta.is_empty() && thinking_delta.is_empty() {
            return Ok(());
        }
        st.text.push_str(text_delta);
        st.thinking.push_str(thinking_delta);
        let now = self.shared.clock.now();
        if st.pending_since.is_none() {
            st.pending_since = Some(now);
            // The deadline thread sleeps until something is pending.
            self.shared.wake.notify_one();
        }
        if self.shared.due(&st, now) {
            st.flush()?;
        }
        Ok(())
    }

    /// Writes whatever is buffered now.
    pub fn flush(&mut self) -> Result<()> {
        self.shared.lock().flush()
    }

    /// How many writes this writer has made (for measurements and tests).
    pub fn flush_count(&self) -> u64 {
        self.shared.lock().flushes
    }

    /// Writes the rest of the buffer and ends the message, in one transaction.
    pub fn finish(mut self, end: MessageEnd, stats: Option<&Value>) -> Result<()> {
        self.ended = true;
        self.stop_flusher();
        self.shared.lock().end(&end, stats)
    }

    /// Stands in for the process dying: stops without writing anything more.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        self.ended = true;
        self.stop_flusher();
    }

    fn stop_flusher(&mut self) {
        if let Some(handle) = self.flusher.take() {
            self.shared.lock().stop = true;
            self.shared.wake.notify_one();
            // The thread only flushes and waits; it cannot panic short of a poisoned lock,
            // which `lock` recovers from.
            let _ = handle.join();
        }
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.stop_flusher();
        // Drop cannot return an error. If this write fails the message stays `streaming`
        // with the text of the last flush, and the next `History::open` marks it interrupted:
        // the same outcome as a crash, which is the best left to do.
        let _ = self.shared.lock().end(&MessageEnd::Interrupted, None);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the buffer intact; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn due(&self, st: &State, now: Instant) -> bool {
        match st.pending_since {
            None => false,
            Some(since) => {
                now.saturating_duration_since(since) >= self.policy.interval
                    || st.text.len() + st.thinking.len() >= self.policy.max_pending_bytes
            }
        }
    }

    /// The deadline thread: sleeps until something is pending, then until it is due.
    fn run_deadlines(&self) {
        let mut st = self.lock();
        loop {
            if st.stop {
                return;
            }
            let Some(since) = st.pending_since else {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = self.clock.now();
            if self.due(&st, now) {
                if let Err(err) = st.flush() {
                    st.failed = Some(err);
                    // Retry at the next deadline rather than spin on a failing disk.
                    st.pending_since = Some(now);
                }
                continue;
            }
            let left = self
                .policy
                .interval
                .saturating_sub(now.saturating_duration_since(since));
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl State {
    /// Writes the buffer and ends the message in one transaction.
    fn end(&mut self, end: &MessageEnd, stats: Option<&Value>) -> Result<()> {
        let text = std::mem::take(&mut self.text);
        let thinking = std::mem::take(&mut self.thinking);
        self.pending_since = None;
        let tx = self.conn.transaction()?;
        finish(&tx, self.id, &text, &thinking, end, stats)?;
        tx.commit()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.text.is_empty() && self.thinking.is_empty() {
            self.pending_since = None;
            return Ok(());
        }
        let n = self.conn.execute(
            "UPDATE messages SET content = content || ?2, thinking = thinking || ?3 \
             WHERE id = ?1 AND status = 'streaming'",
            params![self.id.0, self.text, self.thinking],
        )?;
        if n == 0 {
            return Err(AppError::MessageNotStreaming(self.id.0));
        }
        self.text.clear();
        self.thinking.clear();
        self.pending_since = None;
        self.flushes += 1;
        Ok(())
    }
}

/// Appends the last deltas and ends a streaming message; the caller commits.
pub(super) fn finish(
    tx: &rusqlite::Transaction<'_>,
    id: MessageId,
    text: &str,
    thinking: &str,
    end: &MessageEnd,
    stats: Option<&Value>,
) -> Result<()> {
    let (status, error) = match end {
        MessageEnd::Complete => ("complete", None),
        MessageEnd::Interrupted => ("interrupted", None),
        MessageEnd::Error(message) => ("error", Some(message.as_str())),
    };
    let stats = stats.map(|s| to_json("message stats", s)).transpose()?;
    let n = tx.execute(
        "UPDATE messages SET content = content || ?2, thinking = thinking || ?3, status = ?4, \
             error = ?5, stats = ?6 \
         WHERE id = ?1 AND status = 'streaming'",
        params![id.0, text, thinking, status, error, stats],
    )?;
    if n == 0 {
        let exists = tx
            .query_row("SELECT 1 FROM messages WHERE id = ?1", [id.0], |_| Ok(()))
            .map(|_| true)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })?;
        return Err(if exists {
            AppError::MessageNotStreaming(id.0)
        } else {
            AppError::MessageNotFound(id.0)
        });
    }
    tx.execute(
        "UPDATE conversations SET updated_at = ?2 \
         WHERE id = (SELECT conversation_id FROM messages WHERE id = ?1)",
        params![id.0, now_ms()],
    )?;
    Ok(())
}
