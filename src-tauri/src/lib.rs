//! Glimpse's desktop app: the window, the IPC commands, and the engine behind them.

pub mod attachments;
pub mod chat;
pub mod commands;
pub mod error;
pub mod history;
pub mod model_search;
pub mod models;
pub mod state;
pub mod time;
pub mod video;

use tauri::Manager;

/// Starts the app; returns when the last window closes.
pub fn run() {
    tauri::Builder::default()
        .setup(|app| {
            let data_dir = app.path().app_data_dir()?;
            app.manage(state::AppState::open(&data_dir)?);
            let home = app.path().home_dir().ok();
            app.manage(models::manager_state::ManagerState::new(
                &data_dir,
                home.as_deref(),
                |k| std::env::var(k).ok(),
            ));
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_status,
            commands::model::load_model,
            commands::model::loaded_model,
            commands::model::unload_model,
            commands::manager::model_catalog,
            commands::manager::local_models,
            commands::manager::add_model_folder,
            commands::manager::remove_model_folder,
            commands::manager::start_download,
            commands::manager::pause_download,
            commands::manager::cancel_download,
            commands::media::import_attachment,
            commands::media::paste_attachment,
            commands::media::pick_attachments,
            commands::chat::send_message,
            commands::chat::regenerate,
            commands::chat::edit_and_resend,
            commands::chat::cancel_generation,
            commands::chat::list_conversations,
            commands::chat::create_conversation,
            commands::chat::rename_conversation,
            commands::chat::delete_conversation,
            commands::chat::conversation_messages,
            commands::chat::export_conversation,
            commands::link::open_link,
            commands::video::video_plan,
            commands::video::video_frame,
        ])
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start");
}
