//! Handing events to the roomserver and hearing what it decided: each input
//! names a reply inbox, and the roomserver answers there once the event's
//! fate is committed (after its outputs are on their stream).

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use ruma::OwnedEventId;

use super::Bus;
use crate::api::roomserver::{InputRoomEvent, InputVerdict};

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// An event could not be put on the stream: nothing after it was sent.
    #[error("cannot publish the event: {0:#}")]
    Publish(anyhow::Error),
    /// No verdict came in time for some events; they may still be decided.
    #[error("no verdict in time for {0} events")]
    Undecided(usize),
}

impl Bus {
    /// Publishes `inputs` in order and waits for the verdict on each (their
    /// `reply_to` is set here). The verdicts come back in the inputs' order.
    pub async fn submit(
        &self,
        mut inputs: Vec<InputRoomEvent>,
        patience: Duration,
    ) -> Result<Vec<InputVerdict>, SubmitError> {
        let client = self.client();
        let inbox = client.new_inbox();
        // Subscribed before publishing: a verdict can come back at once.
        let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| SubmitError::Publish(e.into()))?;
        client.flush().await.map_err(|e| SubmitError::Publish(e.into()))?;
        let order: Vec<OwnedEventId> = inputs.iter().map(|input| input.event_id.clone()).collect();
        for input in &mut inputs {
            input.reply_to = Some(inbox.clone());
            self.publish(&*input).await.map_err(SubmitError::Publish)?;
        }
        let mut verdicts: HashMap<OwnedEventId, InputVerdict> = HashMap::new();
        let wanted = order.iter().collect::<std::collections::HashSet<_>>().len();
        let wait = async {
            while verdicts.len() < wanted {
                let Some(message) = replies.next().await else { break };
                match serde_json::from_slice::<InputVerdict>(&message.payload) {
                    Ok(verdict) => {
                        let id = match &verdict {
                            InputVerdict::Accepted { event_id }
                            | InputVerdict::SoftFailed { event_id, .. }
                            | InputVerdict::Rejected { event_id, .. } => event_id.clone(),
                        };
                        verdicts.insert(id, verdict);
                    }
                    Err(_) => tracing::warn!("undecodable input verdict"),
                }
            }
        };
        let _ = tokio::time::timeout(patience, wait).await;
        if verdicts.len() < wanted {
            return Err(SubmitError::Undecided(wanted - verdicts.len()));
        }
        Ok(order.iter().map(|id| verdicts[id].clone()).collect())
    }
}
