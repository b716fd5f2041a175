//! Garbage collection of attachments no message shows any more.
//!
//! Deleting a conversation (or truncating one) only unlinks its attachments, because the same
//! content may be attached elsewhere. [`History::collect_garbage`] later removes attachments
//! that no message links to, plus files on disk with no row at all (an import whose message
//! was never sent, a crash between writing a file and recording it). A grace period protects
//! imports still waiting to be sent: only things untouched for longer than `grace` go.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rusqlite::params;

use super::{now_ms, History};
use crate::attachments::{remove_if_present, AttachmentStore};
use crate::error::Result;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Attachment rows deleted.
    pub rows_removed: usize,
    /// Files deleted (attachments, thumbnails, abandoned temp files).
    pub files_removed: usize,
    pub bytes_freed: u64,
}

impl History {
    /// Removes attachments unused for longer than `grace`; see the module docs. Safe to run
    /// while the app works: rows are deleted in one transaction and only then their files.
    pub fn collect_garbage(
        &mut self,
        store: &AttachmentStore,
        grace: Duration,
    ) -> Result<GcReport> {
        let cutoff_ms = now_ms().saturating_sub(grace.as_millis().min(i64::MAX as u128) as i64);
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = GcReport::default();

        // 1. Unlinked rows past the grace period, and then their files.
        let tx = self.conn().transaction()?;
        let orphans: Vec<(String, Option<String>)> = tx
            .prepare(
                "DELETE FROM attachments \
                 WHERE last_used_at <= ?1 \
                   AND NOT EXISTS (SELECT 1 FROM message_attachments ma \
                                   WHERE ma.attachment_hash = attachments.hash) \
                 RETURNING stored_path, thumbnail_path",
            )?
            .query_map(params![cutoff_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        report.rows_removed = orphans.len();
        for (stored, thumb) in &orphans {
            for rel in std::iter::once(stored.as_str()).chain(thumb.as_deref()) {
                if let Some(freed) = remove_if_present(&store.resolve(rel))? {
                    report.files_removed += 1;
                    report.bytes_freed += freed;
                }
            }
        }

        // 2. Files no row knows, past the grace period.
        let known: HashSet<String> = self
            .conn()
            .prepare("SELECT hash FROM attachments")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (path, hash, modified) in store.files_on_disk()? {
            let unknown = hash.is_none_or(|h| !known.contains(&h));
            if unknown && modified <= cutoff {
                if let Some(freed) = remove_if_present(&path)? {
                    report.files_removed += 1;
                    report.bytes_freed += freed;
                }
            }
        }
        Ok(report)
    }
}
