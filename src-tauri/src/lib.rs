//! Glimpse's desktop app: the window, the IPC commands, and (later) the engine behind them.

pub mod attachments;
pub mod commands;
pub mod error;
pub mod history;
pub mod model_search;
pub mod models;

/// Starts the app; returns when the last window closes.
pub fn run() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::app_status])
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start");
}
