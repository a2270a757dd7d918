//! Where Redis is and how to talk to it: one server (`REDIS_URL`) or a Redis Cluster
//! (`SWITCHBOARD_REDIS_CLUSTER_URLS`). Both the lease store and the live feed's relay connect
//! through here, so each works the same on either.
//!
//! On a cluster, every lease-store script names only keys of one bucket (they share its hash
//! tag, hence one slot), and the live feed uses classic pub/sub, which a cluster carries to every
//! node: a subscriber on any node hears a `PUBLISH` sent to any other.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use secrecy::{ExposeSecret, SecretString};

/// The Redis the service shares with its other instances.
#[derive(Debug, Clone)]
pub enum RedisEndpoint {
    Single(SecretString),
    /// The URLs of some (or all) of the cluster's nodes; the rest are found from them.
    Cluster(Vec<SecretString>),
}

/// Time limits for every connection: a dead Redis must cost a page view little.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(500),
            response: Duration::from_millis(500),
        }
    }
}

/// A client for the endpoint; connecting happens later. Fails only on an unusable URL.
#[derive(Clone)]
pub enum RedisClient {
    Single(redis::Client),
    Cluster {
        cluster: Box<ClusterClient>,
        /// One plain client per node given, for pub/sub (tried in turn).
        nodes: Vec<redis::Client>,
    },
}

impl RedisClient {
    pub fn open(endpoint: &RedisEndpoint, limits: Limits) -> RedisResult<Self> {
        Ok(match endpoint {
            RedisEndpoint::Single(url) => Self::Single(redis::Client::open(url.expose_secret())?),
            RedisEndpoint::Cluster(urls) => {
                let exposed: Vec<&str> = urls.iter().map(|u| u.expose_secret()).collect();
                let cluster = ClusterClient::builder(exposed.clone())
                    .connection_timeout(limits.connect)
                    .response_timeout(limits.response)
                    // A dead node fails the page view fast (it shows the default number).
                    .retries(1)
                    .build()?;
                let nodes = exposed
                    .into_iter()
                    .map(redis::Client::open)
                    .collect::<RedisResult<_>>()?;
                Self::Cluster {
                    cluster: Box::new(cluster),
                    nodes,
                }
            }
        })
    }

    /// A connection that reconnects by itself after it is made.
    pub async fn connect(&self, limits: Limits) -> RedisResult<RedisConnection> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(limits.connect))
                    .set_response_timeout(Some(limits.response))
                    .set_number_of_retries(1);
                Ok(RedisConnection::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Self::Cluster { cluster, .. } => Ok(RedisConnection::Cluster(
                cluster.get_async_connection().await?,
            )),
        }
    }

    /// The servers a pub/sub subscription may be made on, the `attempt`-th first.
    pub fn pubsub_client(&self, attempt: usize) -> &redis::Client {
        match self {
            Self::Single(client) => client,
            Self::Cluster { nodes, .. } => &nodes[attempt % nodes.len()],
        }
    }
}

/// One server's connection or a cluster's: both run commands, scripts and pipelines alike.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
