//! Links from answers open in the system browser, never in the webview, and only when the user
//! clicks "Open" on one: model output can be steered by text inside an image, so the URL is shown
//! first and nothing opens by itself.

use crate::error::{AppError, Result};

/// The schemes a link from an answer may use; anything else (`javascript:`, `file:`, custom
/// handlers that could start programs) is refused.
const ALLOWED: [&str; 3] = ["http", "https", "mailto"];

/// Checks `url` and returns it normalised, or says why it will not be opened.
pub fn checked_link(url: &str) -> Result<tauri::Url> {
    let parsed = tauri::Url::parse(url.trim()).map_err(|e| AppError::LinkRefused {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !ALLOWED.contains(&parsed.scheme()) {
        return Err(AppError::LinkRefused {
            url: url.to_string(),
            reason: format!(
                "`{}:` links are not opened (only http, https and mailto)",
                parsed.scheme()
            ),
        });
    }
    Ok(parsed)
}

/// Opens a link from an answer in the system browser, after the user asked for it.
#[tauri::command]
pub fn open_link(url: String) -> Result<()> {
    let url = checked_link(&url)?;
    open::that_detached(url.as_str()).map_err(|e| AppError::LinkRefused {
        url: url.to_string(),
        reason: format!("the system could not open it: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_and_mail_links_pass() {
        assert_eq!(
            checked_link(" https://example.com/a?b=1 ")
                .unwrap()
                .as_str(),
            "https://example.com/a?b=1"
        );
        assert!(checked_link("mailto:a@example.com").is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "ms-settings:",
            "not a url",
            "data:text/html,x",
        ] {
            let err = checked_link(bad).unwrap_err();
            assert_eq!(err.kind(), "linkRefused", "{bad}");
        }
    }
}
