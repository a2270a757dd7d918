//! One Redis pub/sub channel that every instance publishes to and listens on: what one instance
//! sends reaches the handler of every other one (never its own). The live feed's call events and
//! configuration changes travel this way, on a Redis Cluster too (classic pub/sub reaches every
//! node).
//!
//! Best effort: a message that cannot be sent (Redis away, the queue full) is dropped, and the
//! listener reconnects with a backoff. Users of the relay keep a slower safety net of their own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::redis_client::{Limits, RedisClient, RedisConnection, RedisEndpoint};
use crate::supervise::Supervisor;

/// Messages waiting to be sent before new ones are dropped.
const QUEUE: usize = 1024;

/// What a relay does with a message from another instance. Called on the listener's task: it
/// must not block.
pub type Handler = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Relay {
    /// This instance's id on the channel, so that it skips its own messages coming back.
    origin: String,
    queue: mpsc::Sender<String>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The names the supervisor shows a relay's two tasks under (`/health`).
pub struct TaskNames {
    pub listener: &'static str,
    pub publisher: &'static str,
}

impl Relay {
    /// Subscribes to `channel` and waits (up to a second) until the subscription is made, so an
    /// instance that serves already hears the others. Redis down is not an error here: the
    /// listener keeps trying in the background. Fails only on an unusable endpoint. The
    /// listener and the publisher are watched by `supervisor` (started again after a panic).
    pub async fn start(
        endpoint: &RedisEndpoint,
        channel: &'static str,
        handler: Handler,
        supervisor: &Arc<Supervisor>,
        names: TaskNames,
    ) -> Result<Self, redis::RedisError> {
        let client = RedisClient::open(endpoint, Limits::default())?;
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let (queue, rx) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let listener = {
            let (client, origin) = (client.clone(), origin.clone());
            // Only the first start has anyone waiting for its subscription.
            let ready = Mutex::new(Some(ready_tx));
            supervisor.watch(names.listener, move || {
                tokio::spawn(listen(
                    client.clone(),
                    channel,
                    origin.clone(),
                    handler.clone(),
                    ready.lock().expect("ready lock").take(),
                ))
            })
        };
        let publisher = {
            // A restarted publisher takes the queue over (a panicked one's lock is released).
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            supervisor.watch(names.publisher, move || {
                tokio::spawn(publish(client.clone(), channel, rx.clone()))
            })
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), ready_rx).await;
        Ok(Self {
            origin,
            queue,
            tasks: Mutex::new(vec![listener, publisher]),
        })
    }

    /// Queues `payload` for the other instances; never waits. False: dropped (queue full).
    pub fn send(&self, payload: &str) -> bool {
        self.queue
            .try_send(format!("{}\n{payload}", self.origin))
            .is_ok()
    }

    pub fn stop(&self) {
        for task in self.tasks.lock().expect("relay tasks lock").drain(..) {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The payload of a message from another instance; None for this instance's own.
fn from_others<'m>(origin: &str, message: &'m str) -> Option<&'m str> {
    let (from, payload) = message.split_once('\n')?;
    (from != origin).then_some(payload)
}

/// Listens on the channel, reconnecting with a backoff while Redis is away.
async fn listen(
    client: RedisClient,
    channel: &'static str,
    origin: String,
    handler: Handler,
    mut ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut backoff = Duration::from_millis(500);
    // On a cluster, each attempt tries the next node given, from a random one (so instances
    // spread their subscriptions over the nodes).
    let first: usize = rand::random_range(0..1024);
    for attempt in first.. {
        let subscribed = async {
            let mut pubsub = client.pubsub_client(attempt).get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(500);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(message) = msg.get_payload::<String>()
                        && let Some(payload) = from_others(&origin, &message)
                    {
                        handler(payload);
                    }
                }
                tracing::warn!(channel, "lost the Redis subscription; reconnecting");
            }
            Ok(Err(e)) => tracing::debug!(channel, error = %e, "Redis subscription failed"),
            Err(_) => tracing::debug!(channel, "Redis subscription timed out"),
        }
        // The first attempt failed: start serving without waiting any longer.
        drop(ready.take());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Publishes queued messages; drops them while Redis is away (a connection is tried at most
/// once a second, so a dead Redis costs the queue nothing but the drops).
async fn publish(
    client: RedisClient,
    channel: &'static str,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<String>>>,
) {
    let mut queue = queue.lock().await;
    let mut conn: Option<RedisConnection> = None;
    let mut failed_at: Option<tokio::time::Instant> = None;
    while let Some(message) = queue.recv().await {
        if conn.is_none() {
            if failed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                continue;
            }
            match client.connect(Limits::default()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(channel, error = %e, "Redis unavailable; a message is not relayed");
                    failed_at = Some(tokio::time::Instant::now());
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(&message)
                .query_async::<i64>(c)
                .await
        {
            tracing::debug!(channel, error = %e, "a message was not relayed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_skips_its_own_messages() {
        assert_eq!(from_others("me", "me\np1\n{}"), None);
        assert_eq!(
            from_others("me", "them\np1\n{\"a\":\"b\\nc\"}"),
            Some("p1\n{\"a\":\"b\\nc\"}")
        );
        assert_eq!(from_others("me", "no newline"), None);
    }
}
