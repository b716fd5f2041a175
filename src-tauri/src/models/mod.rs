//! The model manager's back end: which Qwen3-VL checkpoints exist and which suits this machine
//! ([`catalog`], [`system`]), fetching one into the shared Hugging Face cache ([`download`],
//! [`hub`], [`cache`]), and checking a local folder before it is offered for loading
//! ([`validate`]).
//!
//! Nothing here touches the network unless [`download::Downloader`] is asked to; everything is
//! synchronous, so the Tauri commands run it on a blocking worker and forward
//! [`download::DownloadEvent`]s to a `Channel`. The intended wiring:
//!
//! ```text
//! let hub = HubConfig::from_env(|k| std::env::var(k).ok(), home.as_deref())?;   // once, at start
//! let rec = recommend(&SystemInfo::detect(detect_gpu()), Flavour::Instruct, &Policy::default());
//! // download command: keep the CancelToken in app state so pause/cancel commands can reach it
//! tauri::async_runtime::spawn_blocking(move || {
//!     Downloader::new(hub).download(&repo, "main", &token, &mut |e| { let _ = channel.send(e); })
//! });
//! // then validate(&snapshot) before offering it; validate_found(search(..)) for the list
//! ```

pub mod cache;
pub mod catalog;
pub mod download;
pub mod downloads;
pub mod error;
pub mod hub;
pub mod load_check;
pub mod local;
pub mod manager_state;
pub mod overview;
pub mod system;
pub mod validate;

#[cfg(test)]
pub(crate) mod test_hub;
