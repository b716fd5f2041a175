//! The model manager's back end: which Qwen3-VL checkpoints exist and which suits this machine
//! ([`catalog`], [`system`]), fetching one into the shared Hugging Face cache ([`download`],
//! [`hub`]), and checking a local folder before it is offered for loading ([`validate`]).
//!
//! Nothing here touches the network unless [`download::Downloader`] is asked to; everything is
//! synchronous so the Tauri commands run it on a blocking worker and forward
//! [`download::DownloadEvent`]s to a `Channel`.

pub mod cache;
pub mod catalog;
pub mod download;
pub mod error;
pub mod hub;
pub mod system;
pub mod validate;

#[cfg(test)]
pub(crate) mod test_hub;
