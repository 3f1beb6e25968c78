//! Live updates: `GET /events`, a server-sent event stream (the HTML standard's
//! `text/event-stream`) that tells the page of a logged-in user the folders' counts at once
//! and again after every change to the account's mail (a delivery, another client's
//! expunge...), so `static/app.js` can update the unread counts and show new mail without a
//! reload. Pages work without it.
//!
//! A stream waits on the store's change notification for the account (`ChangeNotifier`),
//! at most one event per `EVENT_INTERVAL_MS_MIN`, and ends when the session ends (checked at
//! each event and at least every `SESSION_CHECK_SECONDS`) or the node shuts down, so a
//! graceful shutdown never waits on it. It must not change any state.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tme_store::AccountId;
use tokio::sync::watch;

use crate::WebState;
use crate::current::Current;
use crate::read::folders;
use crate::respond::WebError;

/// The routes of live updates.
pub fn routes() -> Router<WebState> {
    Router::new().route("/events", get(events))
}

/// The least time between two events of one stream: a burst of changes is one event.
pub const EVENT_INTERVAL_MS_MIN: u64 = 500;
/// How often a quiet stream checks that its session still lives.
pub const SESSION_CHECK_SECONDS: u64 = 60;

/// Where a stream is: what it waits on, and for whom.
struct Stream {
    state: WebState,
    current: Current,
    changes: watch::Receiver<u64>,
    first: bool,
}

async fn events(State(state): State<WebState>, current: Current) -> Result<Response, WebError> {
    let changes = state.store.changes.subscribe(current.account.id);
    let stream = Stream {
        state,
        current,
        changes,
        first: true,
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<Event, Infallible>(event), stream))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(25)))
        .into_response())
}

impl Stream {
    /// The next event, or None when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        if !self.first {
            loop {
                tokio::select! {
                    () = self.state.shutdown.cancelled() => return None,
                    changed = self.changes.changed() => {
                        changed.ok()?;
                        break;
                    }
                    () = tokio::time::sleep(Duration::from_secs(SESSION_CHECK_SECONDS)) => {
                        self.session_lives().await?;
                    }
                }
            }
            // Let a burst of changes settle into one event.
            tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                () = tokio::time::sleep(Duration::from_millis(EVENT_INTERVAL_MS_MIN)) => {}
            }
            self.changes.mark_unchanged();
        }
        self.first = false;
        self.session_lives().await?;
        let folders = folders(&self.state, &self.current).await.ok()?;
        let counts: Vec<serde_json::Value> = folders
            .iter()
            .map(|folder| {
                serde_json::json!({
                    "id": folder.mailbox.id,
                    "messages": folder.counts.messages,
                    "unseen": folder.counts.unseen,
                    "uid_next": folder.mailbox.uid_next,
                })
            })
            .collect();
        Some(
            Event::default()
                .event("folders")
                .data(serde_json::json!({ "folders": counts }).to_string()),
        )
    }

    /// Some(()) while the stream's session is live.
    async fn session_lives(&self) -> Option<()> {
        let account: AccountId = self.current.account.id;
        let session = self
            .state
            .store
            .directory
            .web_session_get(&self.current.session.token_hash)
            .await
            .ok()??;
        (session.account_id == account && session.expires_unix > crate::respond::now_unix())
            .then_some(())
    }
}
