//! Downloading a checkpoint from the Hub into the shared Hugging Face cache.
//!
//! The transfer is our own (blocking `ureq` on a worker thread) rather than `hf-hub`'s: the app
//! needs to resume an `.incomplete` blob with an HTTP `Range` request after a restart, to stop
//! between chunks when the user cancels or pauses, to report bytes per chunk for a total across
//! files, and to reject a blob whose sha256 differs from the Hub's. `hf-hub` 1.0 offers none of
//! those hooks and pulls in the xet transfer stack. The on-disk layout is the one `hf-hub` and
//! `huggingface_hub` use (see [`super::hub`]), so either can read what Glimpse downloads.
//!
//! Steps of [`Downloader::download`]:
//! 1. list the repository at the revision (`/api/models/{repo}/revision/{rev}?blobs=true`), which
//!    gives the commit and, for every file, its size, blob id and LFS sha256;
//! 2. keep only the files a Qwen3-VL checkpoint needs ([`super::hub::is_needed_file`]);
//! 3. count what is already in the cache (complete blobs, `.incomplete` prefixes) and check the
//!    disk has room for the rest;
//! 4. fetch each missing file into `blobs/<etag>.incomplete`, appending from its current length
//!    with `Range: bytes=<len>-`; a dropped connection is retried a few times from where it broke;
//! 5. verify (sha256 for LFS files, size for all), rename to `blobs/<etag>`, and link
//!    `snapshots/<commit>/<file>` to it; finally write `refs/<revision>`.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cache::{cached_bytes, hex, link_snapshot, partial_len};
pub use super::cache::{discard_partial, sha256_file};
use super::error::{DownloadError, Result};
use super::hub::{is_needed_file, HubConfig, PlannedFile, RepoListing};

/// How often one transfer is retried (from where it broke) when the connection drops.
const MAX_ATTEMPTS_PER_FILE: usize = 3;
const CHUNK: usize = 64 * 1024;

/// Free space on the disk holding a folder. A trait so tests can simulate a full disk.
pub trait FreeSpace: Send + Sync {
    fn available(&self, dir: &Path) -> std::io::Result<u64>;
}

/// The real disk, via `statvfs`/`GetDiskFreeSpaceEx`.
pub struct SystemFreeSpace;

impl FreeSpace for SystemFreeSpace {
    fn available(&self, dir: &Path) -> std::io::Result<u64> {
        fs2::available_space(dir)
    }
}

/// Stops a download between chunks: the engine's token, shared so the app has one kind of
/// cancel. Pausing and cancelling are the same thing here: the partial blob is kept so the next
/// [`Downloader::download`] resumes it; [`discard_partial`] throws it away.
pub use glimpse_models::generation::CancelToken;

/// The files one download will fetch, resolved to a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadPlan {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub files: Vec<PlannedFile>,
}

impl DownloadPlan {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Where a transfer stands. Counts include bytes already in the cache before this run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub file: String,
    pub file_done: u64,
    pub file_size: u64,
    pub total_done: u64,
    pub total_bytes: u64,
    /// Average over this run's transferred bytes (resumed bytes do not inflate it).
    pub bytes_per_sec: f64,
    /// Seconds left at that speed; `None` before the first byte.
    pub eta_secs: Option<f64>,
}

/// What a download reports, in order: `Started`, then `Progress`/`FileDone` per file, then
/// `Finished` (absent when stopped or failed). Serialises as `{ "event": "progress", ... }` for a
/// Tauri `Channel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum DownloadEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        repo: String,
        commit: String,
        files: Vec<PlannedFile>,
        total_bytes: u64,
        /// Already in the cache (complete blobs plus `.incomplete` prefixes).
        already_done: u64,
    },
    Progress(Progress),
    FileDone {
        file: String,
    },
    Finished {
        snapshot: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum DownloadOutcome {
    /// Every file is verified and linked; `snapshot` is the folder to load.
    Complete { snapshot: PathBuf },
    /// Cancelled or paused; `kept_bytes` stay in `.incomplete` blobs for the next run.
    #[serde(rename_all = "camelCase")]
    Stopped { kept_bytes: u64 },
}

pub struct Downloader {
    hub: HubConfig,
    agent: ureq::Agent,
    free_space: Arc<dyn FreeSpace>,
    progress_every: Duration,
}

impl Downloader {
    pub fn new(hub: HubConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            // Bounds a stalled transfer; a stall then counts as a dropped connection.
            .timeout_read(Duration::from_secs(30))
            .user_agent(concat!("glimpse/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            hub,
            agent,
            free_space: Arc::new(SystemFreeSpace),
            progress_every: Duration::from_millis(100),
        }
    }

    /// Replaces the free-space probe (tests simulate a full disk with it).
    pub fn with_free_space(mut self, free_space: Arc<dyn FreeSpace>) -> Self {
        self.free_space = free_space;
        self
    }

    /// Minimum time between two `Progress` events of one file (the last one always comes).
    pub fn with_progress_interval(mut self, every: Duration) -> Self {
        self.progress_every = every;
        self
    }

    pub fn hub(&self) -> &HubConfig {
        &self.hub
    }

    /// Asks the Hub which files `repo` at `revision` has and keeps the ones Glimpse needs.
    pub fn plan(&self, repo: &str, revision: &str) -> Result<DownloadPlan> {
        let url = self.hub.listing_url(repo, revision);
        let resp = self.get(&url, None, repo, &format!("{repo} at revision {revision}"))?;
        let listing: RepoListing = serde_json::from_reader(resp.into_reader()).map_err(|e| {
            DownloadError::BadResponse {
                url: url.clone(),
                detail: e.to_string(),
            }
        })?;
        let mut files = Vec::new();
        for s in listing
            .siblings
            .into_iter()
            .filter(|s| is_needed_file(&s.rfilename))
        {
            let lfs_sha = s.lfs.as_ref().map(|l| l.sha256.to_ascii_lowercase());
            let size = s.lfs.as_ref().map(|l| l.size).or(s.size);
            let file = match (lfs_sha, size, s.blob_id) {
                (Some(sha), Some(size), _) => PlannedFile {
                    name: s.rfilename,
                    size,
                    etag: sha.clone(),
                    sha256: Some(sha),
                },
                (None, Some(size), Some(blob)) => PlannedFile {
                    name: s.rfilename,
                    size,
                    etag: blob,
                    sha256: None,
                },
                _ => self.head_file(repo, &listing.sha, s.rfilename)?,
            };
            // The blob name comes from the server and becomes a path: keep it to one plain segment.
            if !is_plain_segment(&file.etag) {
                return Err(DownloadError::BadResponse {
                    url,
                    detail: format!("{} has an unusable ETag {:?}", file.name, file.etag),
                });
            }
            files.push(file);
        }
        for required in ["config.json", "tokenizer.json"] {
            if !files.iter().any(|f| f.name == required) {
                return Err(DownloadError::MissingFile {
                    repo: repo.into(),
                    file: required.into(),
                });
            }
        }
        if !files.iter().any(|f| f.name.ends_with(".safetensors")) {
            return Err(DownloadError::MissingFile {
                repo: repo.into(),
                file: "model weights (*.safetensors)".into(),
            });
        }
        Ok(DownloadPlan {
            repo: repo.into(),
            revision: revision.into(),
            commit: listing.sha,
            files,
        })
    }

    /// Size and ETag from the file's headers, for listings that lack them. As on the Hub, an
    /// `X-Linked-Etag` marks an LFS file and holds its sha256.
    fn head_file(&self, repo: &str, commit: &str, name: String) -> Result<PlannedFile> {
        let url = self.hub.resolve_url(repo, commit, &name);
        let resp = self.send(self.agent.head(&url), &url, repo, &format!("{repo}/{name}"))?;
        let header = |n: &str| resp.header(n).map(unquote);
        let linked = header("x-linked-etag");
        let sha256 = linked.clone().filter(|e| is_sha256(e));
        let etag = linked.or_else(|| header("etag")).filter(|e| !e.is_empty());
        let size = header("x-linked-size")
            .or_else(|| header("content-length"))
            .and_then(|s| s.parse().ok());
        match (etag, size) {
            (Some(etag), Some(size)) => Ok(PlannedFile {
                name,
                size,
                etag,
                sha256,
            }),
            _ => Err(DownloadError::BadResponse {
                url,
                detail: "no ETag or size for the file".into(),
            }),
        }
    }

    /// Plans and fetches `repo` at `revision` (a branch such as `main`, or a commit).
    pub fn download(
        &self,
        repo: &str,
        revision: &str,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(DownloadEvent),
    ) -> Result<DownloadOutcome> {
        let plan = self.plan(repo, revision)?;
        self.download_plan(&plan, cancel, on_event)
    }

    /// Fetches what `plan` lists that the cache lacks.
    pub fn download_plan(
        &self,
        plan: &DownloadPlan,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(DownloadEvent),
    ) -> Result<DownloadOutcome> {
        let repo_dir = self.hub.repo_dir(&plan.repo);
        let blobs = repo_dir.join("blobs");
        let snapshot = repo_dir.join("snapshots").join(&plan.commit);
        for dir in [&blobs, &snapshot] {
            std::fs::create_dir_all(dir).map_err(|e| DownloadError::io(dir, e))?;
        }

        // 3. What is here already, and is there room for the rest?
        let mut done_before = Vec::with_capacity(plan.files.len());
        for f in &plan.files {
            done_before.push(cached_bytes(&blobs, f)?);
        }
        let already_done: u64 = done_before.iter().sum();
        let total_bytes = plan.total_bytes();
        let needed = total_bytes - already_done;
        let available = self
            .free_space
            .available(&blobs)
            .map_err(|e| DownloadError::io(&blobs, e))?;
        if needed > available {
            return Err(DownloadError::NotEnoughSpace {
                dir: blobs,
                needed,
                available,
            });
        }
        on_event(DownloadEvent::Started {
            repo: plan.repo.clone(),
            commit: plan.commit.clone(),
            files: plan.files.clone(),
            total_bytes,
            already_done,
        });

        // 4–5. Fetch, verify, link.
        let mut run = Run {
            started: Instant::now(),
            transferred: 0,
            total_done: already_done,
            total_bytes,
        };
        for f in &plan.files {
            let blob = blobs.join(&f.etag);
            if !blob.is_file() {
                match self.fetch(plan, f, &blobs, &mut run, cancel, on_event)? {
                    Fetched::Complete => {}
                    Fetched::Stopped => {
                        let mut kept = 0;
                        for f in &plan.files {
                            kept += partial_len(&blobs, f);
                        }
                        return Ok(DownloadOutcome::Stopped { kept_bytes: kept });
                    }
                }
            }
            link_snapshot(&snapshot, &f.name, &f.etag)?;
            on_event(DownloadEvent::FileDone {
                file: f.name.clone(),
            });
        }
        // A branch name is written under refs/; one that could climb out of it is not recorded.
        let safe_ref = plan.revision.split('/').all(is_plain_segment);
        if plan.revision != plan.commit && safe_ref {
            let refs = repo_dir.join("refs");
            let path = refs.join(&plan.revision);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
            }
            std::fs::write(&path, &plan.commit).map_err(|e| DownloadError::io(&path, e))?;
        }
        on_event(DownloadEvent::Finished {
            snapshot: snapshot.clone(),
        });
        Ok(DownloadOutcome::Complete { snapshot })
    }

    /// One file into `blobs/<etag>`, resuming and retrying from its `.incomplete` prefix.
    fn fetch(
        &self,
        plan: &DownloadPlan,
        f: &PlannedFile,
        blobs: &Path,
        run: &mut Run,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(DownloadEvent),
    ) -> Result<Fetched> {
        let part = blobs.join(format!("{}.incomplete", f.etag));
        let io = |e| DownloadError::io(&part, e);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&part)
            .map_err(io)?;
        let mut have = file.metadata().map_err(io)?.len();
        let mut hasher = Sha256::new();
        if f.sha256.is_some() && have > 0 {
            file.rewind().map_err(io)?;
            std::io::copy(&mut (&file).take(have), &mut hasher).map_err(io)?;
        }

        let url = self.hub.resolve_url(&plan.repo, &plan.commit, &f.name);
        let mut last_error = None;
        for _attempt in 0..MAX_ATTEMPTS_PER_FILE {
            if have >= f.size {
                break;
            }
            if cancel.is_cancelled() {
                return Ok(Fetched::Stopped);
            }
            let range = (have > 0).then(|| format!("bytes={have}-"));
            let resp = self.get(
                &url,
                range.as_deref(),
                &plan.repo,
                &format!("{}/{}", plan.repo, f.name),
            )?;
            let linked = resp.header("x-linked-etag").map(unquote);
            if let (Some(expected), Some(linked)) = (&f.sha256, linked.filter(|e| is_sha256(e))) {
                if &linked != expected {
                    return Err(DownloadError::BadResponse {
                        url,
                        detail: format!(
                            "{} changed on the hub since it was listed (sha256 {linked}, \
                             listed {expected}); start the download again",
                            f.name
                        ),
                    });
                }
            }
            if resp.status() != 206 && have > 0 {
                // The server ignored the Range: start the file over.
                run.total_done -= have;
                have = 0;
                file.set_len(0).map_err(io)?;
                hasher = Sha256::new();
            }
            let mut body = resp.into_reader();
            let mut buf = vec![0u8; CHUNK];
            let mut last_event = Instant::now() - self.progress_every;
            let outcome = loop {
                if cancel.is_cancelled() {
                    break Some(Fetched::Stopped);
                }
                let n = match body.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(e) => {
                        last_error = Some(e);
                        break None;
                    }
                };
                if have + n as u64 > f.size {
                    drop(file);
                    let _ = std::fs::remove_file(&part);
                    return Err(DownloadError::SizeMismatch {
                        file: f.name.clone(),
                        expected: f.size,
                        actual: have + n as u64,
                    });
                }
                file.write_all(&buf[..n]).map_err(io)?;
                if f.sha256.is_some() {
                    hasher.update(&buf[..n]);
                }
                have += n as u64;
                run.add(n as u64);
                if have == f.size || last_event.elapsed() >= self.progress_every {
                    last_event = Instant::now();
                    on_event(DownloadEvent::Progress(run.progress(f, have)));
                }
            };
            file.flush().map_err(io)?;
            if let Some(stopped) = outcome {
                return Ok(stopped);
            }
        }
        if have < f.size {
            // The connection kept dropping: keep the prefix for the next run.
            let detail = last_error.map_or_else(
                || format!("the connection closed after {have} of {} bytes", f.size),
                |e| e.to_string(),
            );
            return Err(DownloadError::Offline {
                endpoint: self.hub.endpoint.clone(),
                detail: format!("{} was interrupted: {detail}", f.name),
            });
        }
        file.sync_all().map_err(io)?;
        drop(file);

        if let Some(expected) = &f.sha256 {
            let actual = hex(&hasher.finalize());
            if &actual != expected {
                let _ = std::fs::remove_file(&part);
                return Err(DownloadError::ChecksumMismatch {
                    file: f.name.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let blob = blobs.join(&f.etag);
        std::fs::rename(&part, &blob).map_err(|e| DownloadError::io(&blob, e))?;
        Ok(Fetched::Complete)
    }

    fn get(
        &self,
        url: &str,
        range: Option<&str>,
        repo: &str,
        what: &str,
    ) -> Result<ureq::Response> {
        let mut req = self.agent.get(url);
        if let Some(range) = range {
            req = req.set("Range", range);
        }
        self.send(req, url, repo, what)
    }

    fn send(
        &self,
        mut req: ureq::Request,
        url: &str,
        repo: &str,
        what: &str,
    ) -> Result<ureq::Response> {
        if let Some(token) = &self.hub.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        match req.call() {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status @ (401 | 403), _)) => Err(DownloadError::Unauthorized {
                repo: repo.into(),
                status,
                has_token: self.hub.token.is_some(),
            }),
            Err(ureq::Error::Status(404, _)) => Err(DownloadError::NotFound { what: what.into() }),
            Err(ureq::Error::Status(status, _)) => Err(DownloadError::Http {
                status,
                url: url.into(),
            }),
            Err(ureq::Error::Transport(t)) => Err(DownloadError::Offline {
                endpoint: self.hub.endpoint.clone(),
                detail: t.to_string(),
            }),
        }
    }
}

/// One path segment: ASCII letters, digits, `-`, `_`, `.`, and not `.`/`..`.
fn is_plain_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

enum Fetched {
    Complete,
    Stopped,
}

/// Byte counts across the files of one run.
struct Run {
    started: Instant,
    transferred: u64,
    total_done: u64,
    total_bytes: u64,
}

impl Run {
    fn add(&mut self, n: u64) {
        self.transferred += n;
        self.total_done += n;
    }

    fn progress(&self, f: &PlannedFile, file_done: u64) -> Progress {
        let secs = self.started.elapsed().as_secs_f64();
        let bytes_per_sec = if secs > 0.0 {
            self.transferred as f64 / secs
        } else {
            0.0
        };
        let eta_secs = (bytes_per_sec > 0.0)
            .then(|| (self.total_bytes - self.total_done) as f64 / bytes_per_sec);
        Progress {
            file: f.name.clone(),
            file_done,
            file_size: f.size,
            total_done: self.total_done,
            total_bytes: self.total_bytes,
            bytes_per_sec,
            eta_secs,
        }
    }
}

/// `"abc"` and `W/"abc"` -> `abc`.
fn unquote(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
