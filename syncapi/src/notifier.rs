//! Waking long-polling `/sync` and `/events` requests on every syncapi
//! instance: whoever commits new sync data names the users it concerns on a
//! core NATS subject, and each instance wakes its own waiters for those users.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::bus::Bus;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, time::Instant};

/// Longest wait a long-poll may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
struct Wake {
    users: Vec<String>,
}

#[derive(Clone)]
pub struct Notifier {
    bus: Bus,
    subject: String,
    users: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Notifier {
    /// Starts listening for wake-ups; runs until `shutdown`.
    pub async fn start(rt: &common::Runtime) -> anyhow::Result<Notifier> {
        let subject = format!("{}.syncapi.wake", rt.bus.prefix());
        let notifier = Notifier { bus: rt.bus.clone(), subject: subject.clone(), users: Arc::default() };
        let mut wakes = rt.bus.client().subscribe(subject).await?;
        let (this, shutdown) = (notifier.clone(), rt.shutdown.clone());
        rt.spawn("syncapi wake-ups", async move {
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    message = wakes.next() => message,
                };
                let Some(message) = message else { return Ok(()) };
                match serde_json::from_slice::<Wake>(&message.payload) {
                    Ok(wake) => this.wake_here(&wake.users),
                    Err(e) => tracing::warn!(error = %e, "undecodable wake-up"),
                }
            }
        });
        Ok(notifier)
    }

    /// A receiver that changes whenever something new concerns `user_id`.
    /// Take it before reading, so nothing committed after the read is missed.
    pub fn listen(&self, user_id: &str) -> watch::Receiver<u64> {
        let mut users = self.users.lock().expect("notifier lock");
        users.entry(user_id.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// A long-poll for `user_id`: `read`'s first answer that is `ready`, or
    /// its latest once `deadline` has passed. It reads again each time
    /// something new concerns the user, listening before each read so that
    /// nothing committed after it is missed.
    pub async fn poll<T, E, Fut>(
        &self,
        user_id: &str,
        deadline: Instant,
        mut read: impl FnMut() -> Fut,
        ready: impl Fn(&T) -> bool,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut wake = self.listen(user_id);
        loop {
            wake.borrow_and_update();
            let answer = read().await?;
            if ready(&answer) || Instant::now() >= deadline {
                return Ok(answer);
            }
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return Ok(answer) },
                _ = tokio::time::sleep_until(deadline) => return Ok(answer),
            }
        }
    }

    fn wake_here(&self, users: &[String]) {
        let mut map = self.users.lock().expect("notifier lock");
        for user in users {
            if let Some(sender) = map.get(user) {
                if sender.receiver_count() == 0 {
                    map.remove(user);
                } else {
                    sender.send_modify(|n| *n += 1);
                }
            }
        }
    }

    /// Tells every instance, after a commit, that `users` have something new.
    pub async fn wake(&self, users: Vec<String>) {
        if users.is_empty() {
            return;
        }
        let payload = serde_json::to_vec(&Wake { users }).expect("JSON");
        if let Err(e) = self.bus.client().publish(self.subject.clone(), payload.into()).await {
            // Waiters still time out and sync again; they only learn later.
            tracing::warn!(error = %e, "cannot send a wake-up");
        }
    }
}
