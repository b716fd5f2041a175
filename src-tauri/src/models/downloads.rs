//! The downloads running now, so pause and cancel commands can reach them, and what happens when
//! one stops: pausing keeps the `.incomplete` blobs for a resume, cancelling deletes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::download::{discard_partial, CancelToken, DownloadEvent, DownloadOutcome, Downloader};
use super::error::{DownloadError, Result};
use super::hub::HubConfig;
use super::validate::validate;

#[derive(Clone)]
struct Running {
    cancel: CancelToken,
    discard: Arc<AtomicBool>,
}

type Map = Arc<Mutex<HashMap<String, Running>>>;

/// Shared handles: clones see the same downloads.
#[derive(Default, Clone)]
pub struct ActiveDownloads {
    running: Map,
}

/// One repository's download slot; dropping it frees the slot.
pub struct Ticket {
    owner: Map,
    repo: String,
    running: Running,
}

impl Ticket {
    pub fn repo(&self) -> &str {
        &self.repo
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.owner).remove(&self.repo);
    }
}

fn lock(map: &Map) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
    // A panic elsewhere cannot leave the map half-updated: every change is one insert/remove.
    map.lock().unwrap_or_else(|p| p.into_inner())
}

impl ActiveDownloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        lock(&self.running)
    }

    /// Claims `repo`; `None` if it is already downloading.
    pub fn begin(&self, repo: &str) -> Option<Ticket> {
        let mut map = self.lock();
        if map.contains_key(repo) {
            return None;
        }
        let running = Running {
            cancel: CancelToken::new(),
            discard: Arc::new(AtomicBool::new(false)),
        };
        map.insert(repo.to_string(), running.clone());
        Some(Ticket {
            owner: self.running.clone(),
            repo: repo.to_string(),
            running,
        })
    }

    pub fn is_running(&self, repo: &str) -> bool {
        self.lock().contains_key(repo)
    }

    /// Stops `repo` keeping what arrived. False if it was not downloading.
    pub fn pause(&self, repo: &str) -> bool {
        self.stop(repo, false)
    }

    /// Stops `repo` and has its partial files deleted. False if it was not downloading.
    pub fn cancel(&self, repo: &str) -> bool {
        self.stop(repo, true)
    }

    fn stop(&self, repo: &str, discard: bool) -> bool {
        match self.lock().get(repo) {
            Some(r) => {
                if discard {
                    r.discard.store(true, Ordering::SeqCst);
                }
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// Runs one download under `ticket`: a cancel (as opposed to a pause) deletes the partial blobs
/// once the transfer has stopped, and reports nothing kept.
pub fn run_download(
    downloader: &Downloader,
    ticket: &Ticket,
    on_event: &mut dyn FnMut(DownloadEvent),
) -> Result<DownloadOutcome> {
    let outcome = downloader.download(&ticket.repo, "main", &ticket.running.cancel, on_event)?;
    if matches!(outcome, DownloadOutcome::Stopped { .. })
        && ticket.running.discard.load(Ordering::SeqCst)
    {
        discard_download(downloader.hub(), &ticket.repo)?;
        return Ok(DownloadOutcome::Stopped { kept_bytes: 0 });
    }
    Ok(outcome)
}

/// Throws away an unfinished download of `repo`: its `.incomplete` blobs, every snapshot that is
/// not a usable checkpoint, and the blobs no remaining snapshot links to; the repository's folder
/// goes when no snapshot is left. A complete snapshot (an earlier download) stays. Returns the
/// bytes freed.
pub fn discard_download(hub: &HubConfig, repo: &str) -> Result<u64> {
    let mut freed = discard_partial(hub, repo)?;
    let repo_dir = hub.repo_dir(repo);
    let io = |path: &std::path::Path, e| DownloadError::io(path, e);
    let snapshots = repo_dir.join("snapshots");
    let mut kept = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if validate(&dir).is_usable() {
                kept.push(dir);
            } else {
                std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
            }
        }
    }
    // The blobs the kept snapshots link to (`snapshots/<commit>/<file> -> ../../blobs/<etag>`).
    let mut linked = std::collections::HashSet::new();
    for dir in &kept {
        for file in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
            if let Some(name) = std::fs::read_link(file.path())
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_owned()))
            {
                linked.insert(name);
            }
        }
    }
    let blobs = repo_dir.join("blobs");
    if let Ok(entries) = std::fs::read_dir(&blobs) {
        for entry in entries.flatten() {
            if !linked.contains(&entry.file_name()) {
                freed += entry.metadata().map_or(0, |m| m.len());
                std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
            }
        }
    }
    if kept.is_empty() && repo_dir.exists() {
        std::fs::remove_dir_all(&repo_dir).map_err(|e| io(&repo_dir, e))?;
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::hub::HubConfig;
    use crate::models::local::partial_downloads_in;
    use crate::models::test_hub::TestHub;
    use std::path::Path;
    use std::time::Duration;

    const REPO: &str = "Qwen/Qwen3-VL-2B-Instruct";

    fn setup() -> (TestHub, tempfile::TempDir, Downloader) {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/grounding");
        let hub = TestHub::serve(REPO, &fixture);
        let cache = tempfile::tempdir().unwrap();
        let d = Downloader::new(HubConfig {
            endpoint: hub.endpoint.clone(),
            cache_dir: cache.path().to_path_buf(),
            token: None,
        })
        .with_progress_interval(Duration::ZERO);
        (hub, cache, d)
    }

    /// Stops the transfer (pause or cancel) at its first progress event.
    fn stop_midway(active: &ActiveDownloads, d: &Downloader, discard: bool) -> DownloadOutcome {
        let ticket = active.begin(REPO).unwrap();
        assert!(
            active.begin(REPO).is_none(),
            "a second download of one repo"
        );
        let mut stopped = false;
        let out = run_download(d, &ticket, &mut |e| {
            if matches!(e, DownloadEvent::Progress(_)) && !stopped {
                stopped = true;
                assert!(if discard {
                    active.cancel(REPO)
                } else {
                    active.pause(REPO)
                });
            }
        })
        .unwrap();
        drop(ticket);
        assert!(!active.is_running(REPO));
        out
    }

    #[test]
    fn pause_keeps_the_partial_and_a_second_run_resumes_it() {
        let (_hub, cache, d) = setup();
        let active = ActiveDownloads::default();
        let out = stop_midway(&active, &d, false);
        let DownloadOutcome::Stopped { kept_bytes } = out else {
            panic!("{out:?}")
        };
        assert!(kept_bytes > 0);
        let partial = partial_downloads_in(cache.path()).unwrap();
        assert_eq!(partial[0].repo, REPO);
        assert_eq!(partial[0].kept_bytes, kept_bytes);

        let ticket = active.begin(REPO).unwrap();
        let mut already = None;
        let out = run_download(&d, &ticket, &mut |e| {
            if let DownloadEvent::Started { already_done, .. } = e {
                already = Some(already_done);
            }
        })
        .unwrap();
        assert!(matches!(out, DownloadOutcome::Complete { .. }), "{out:?}");
        assert!(already.unwrap() >= kept_bytes);
        assert!(partial_downloads_in(cache.path()).unwrap().is_empty());
    }

    #[test]
    fn cancel_deletes_everything_the_download_left() {
        let (_hub, cache, d) = setup();
        let active = ActiveDownloads::default();
        let out = stop_midway(&active, &d, true);
        assert_eq!(out, DownloadOutcome::Stopped { kept_bytes: 0 });
        assert!(partial_downloads_in(cache.path()).unwrap().is_empty());
        // Not even the small files that had completed: nothing half-made is listed afterwards.
        assert!(!d.hub().repo_dir(REPO).exists());
    }

    #[test]
    fn discarding_keeps_a_complete_earlier_snapshot_and_its_blobs() {
        let (_hub, cache, d) = setup();
        let active = ActiveDownloads::default();
        let ticket = active.begin(REPO).unwrap();
        let DownloadOutcome::Complete { snapshot } =
            run_download(&d, &ticket, &mut |_| {}).unwrap()
        else {
            panic!("not complete")
        };
        drop(ticket);
        // A second, unfinished snapshot beside it, with an orphan blob and a partial.
        let repo_dir = d.hub().repo_dir(REPO);
        let other = repo_dir.join("snapshots/feed");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(repo_dir.join("blobs/orphan"), b"x").unwrap();
        std::fs::write(repo_dir.join("blobs/half.incomplete"), b"yy").unwrap();
        assert_eq!(discard_download(d.hub(), REPO).unwrap(), 3);
        assert!(!other.exists());
        assert!(validate(&snapshot).is_usable());
        assert!(partial_downloads_in(cache.path()).unwrap().is_empty());
    }

    #[test]
    fn stopping_what_is_not_running_says_so() {
        let active = ActiveDownloads::default();
        assert!(!active.pause(REPO));
        assert!(!active.cancel(REPO));
    }
}
