//! Conversations and answers. Sending returns as soon as the answer has started on its worker
//! thread; its events stream through the `onEvent` channel.

use tauri::ipc::Channel;
use tauri::State;

use crate::chat::run::{lock, SendIds, Sink, Turn};
use crate::chat::{AttachmentRef, ConversationSummary, GenerationEvent, Settings, StoredMessage};
use crate::error::Result;
use crate::history::{ConversationId, MessageId};
use crate::state::AppState;

fn sink(channel: Channel<GenerationEvent>) -> Sink {
    // A closed window drops the channel's receiver; the answer still finishes into history.
    Box::new(move |event| {
        let _ = channel.send(event);
    })
}

#[tauri::command]
pub fn send_message(
    state: State<'_, AppState>,
    conversation_id: i64,
    text: String,
    attachments: Vec<AttachmentRef>,
    settings: Settings,
    on_event: Channel<GenerationEvent>,
) -> Result<SendIds> {
    let turn = Turn::New {
        conversation: ConversationId(conversation_id),
        text,
        attachments,
    };
    state.chat().start(turn, settings, sink(on_event))
}

#[tauri::command]
pub fn regenerate(
    state: State<'_, AppState>,
    conversation_id: i64,
    settings: Settings,
    on_event: Channel<GenerationEvent>,
) -> Result<SendIds> {
    let turn = Turn::Regenerate {
        conversation: ConversationId(conversation_id),
    };
    state.chat().start(turn, settings, sink(on_event))
}

#[tauri::command]
pub fn edit_and_resend(
    state: State<'_, AppState>,
    message_id: i64,
    text: String,
    settings: Settings,
    on_event: Channel<GenerationEvent>,
) -> Result<SendIds> {
    let turn = Turn::Edit {
        message: MessageId(message_id),
        text,
    };
    state.chat().start(turn, settings, sink(on_event))
}

/// Stops the running answer within one token; nothing happens when none runs.
#[tauri::command]
pub fn cancel_generation(state: State<'_, AppState>) -> bool {
    state.slot.cancel()
}

#[tauri::command]
pub fn list_conversations(
    state: State<'_, AppState>,
    search: Option<String>,
) -> Result<Vec<ConversationSummary>> {
    let search = search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let list = lock(&state.history).list_conversations(search)?;
    Ok(list.iter().map(ConversationSummary::from).collect())
}

#[tauri::command]
pub fn create_conversation(
    state: State<'_, AppState>,
    title: Option<String>,
) -> Result<ConversationSummary> {
    let model = lock(&state.model_info).as_ref().map(|m| m.name.clone());
    let conversation = lock(&state.history).create_conversation(
        title.as_deref().unwrap_or("New chat"),
        model.as_deref(),
        &serde_json::json!({}),
    )?;
    Ok(ConversationSummary::from(&conversation))
}

#[tauri::command]
pub fn rename_conversation(state: State<'_, AppState>, id: i64, title: String) -> Result<()> {
    lock(&state.history).rename(ConversationId(id), &title)
}

#[tauri::command]
pub fn delete_conversation(state: State<'_, AppState>, id: i64) -> Result<()> {
    lock(&state.history).delete(ConversationId(id))
}

#[tauri::command]
pub fn conversation_messages(state: State<'_, AppState>, id: i64) -> Result<Vec<StoredMessage>> {
    let messages = lock(&state.history).messages(ConversationId(id))?;
    let budget = state.vision_budget();
    Ok(messages
        .iter()
        .map(|m| StoredMessage::new(m, &state.store, budget))
        .collect())
}

/// `format`: `markdown` or `json`.
#[tauri::command]
pub fn export_conversation(state: State<'_, AppState>, id: i64, format: String) -> Result<String> {
    let history = lock(&state.history);
    match format.as_str() {
        "json" => history.export_json(ConversationId(id)),
        _ => history.export_markdown(ConversationId(id)),
    }
}
