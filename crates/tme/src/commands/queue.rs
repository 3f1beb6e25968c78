//! `tme queue list|show|retry|hold|release|remove`: the operator's view of the outbound
//! queue. Safe beside a running node: each command is one store transaction, and the node
//! sees a retry or a hold at its next pass.

use anyhow::{Context, Result};
use tme_store::{QueueId, QueuedMessage, RecipientState, Store};

use super::admin::{print_json, print_table};
use super::now_unix;
use crate::cli::QueueCommand;
use crate::units::format_bytes;

pub async fn run(store: &Store, command: QueueCommand) -> Result<()> {
    match command {
        QueueCommand::List(list) => {
            let messages = store.queue.list().await.context("cannot list the queue")?;
            if list.json {
                return print_json(&messages);
            }
            let rows = messages.iter().map(row).collect();
            print_table(
                &[
                    "ID",
                    "SENDER",
                    "WAITING",
                    "SIZE",
                    "ATTEMPTS",
                    "NEXT ATTEMPT",
                    "STATE",
                ],
                rows,
            );
            Ok(())
        }
        QueueCommand::Show { id, json } => {
            let message = get(store, id).await?;
            if json {
                return print_json(&message);
            }
            show(&message);
            Ok(())
        }
        QueueCommand::Retry { id } => {
            store
                .queue
                .retry_now(id, now_unix())
                .await
                .with_context(|| format!("cannot retry queued message {id}"))?;
            println!("queued message {id} will be tried again now");
            Ok(())
        }
        QueueCommand::Hold { id } => {
            store
                .queue
                .set_held(id, true)
                .await
                .with_context(|| format!("cannot hold queued message {id}"))?;
            println!("queued message {id} is held");
            Ok(())
        }
        QueueCommand::Release { id } => {
            store
                .queue
                .set_held(id, false)
                .await
                .with_context(|| format!("cannot release queued message {id}"))?;
            println!("queued message {id} is released");
            Ok(())
        }
        QueueCommand::Remove { id } => {
            store
                .queue
                .remove(id)
                .await
                .with_context(|| format!("cannot remove queued message {id}"))?;
            println!("queued message {id} is removed");
            Ok(())
        }
    }
}

async fn get(store: &Store, id: QueueId) -> Result<QueuedMessage> {
    store
        .queue
        .get(id)
        .await
        .with_context(|| format!("cannot show queued message {id}"))
}

fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn sender(message: &QueuedMessage) -> String {
    if message.return_path.is_empty() {
        "<>".to_owned()
    } else {
        message.return_path.clone()
    }
}

fn row(message: &QueuedMessage) -> Vec<String> {
    vec![
        message.id.to_string(),
        sender(message),
        format!(
            "{}/{}",
            message.pending_recipients().count(),
            message.recipients.len()
        ),
        format_bytes(message.size_bytes),
        message.attempts.to_string(),
        when(message.next_attempt_unix),
        if message.held { "held" } else { "queued" }.to_owned(),
    ]
}

fn show(message: &QueuedMessage) {
    println!("id:            {}", message.id);
    println!("sender:        {}", sender(message));
    println!("size:          {}", format_bytes(message.size_bytes));
    println!("queued:        {}", when(message.created_unix));
    println!("expires:       {}", when(message.expires_unix));
    println!("next attempt:  {}", when(message.next_attempt_unix));
    println!("attempts:      {}", message.attempts);
    println!("held:          {}", if message.held { "yes" } else { "no" });
    if let Some(id) = &message.envelope_id {
        println!("envelope id:   {id}");
    }
    println!("recipients:");
    for recipient in &message.recipients {
        let state = match recipient.state {
            RecipientState::Pending => "waiting",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        };
        println!(
            "  {:<40} {:<9} {}",
            recipient.address,
            state,
            recipient.last_reply.as_deref().unwrap_or("")
        );
    }
}
