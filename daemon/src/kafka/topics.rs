//! The topics weir makes for itself (a shared aggregation's changelog and repartition topics):
//! created, when missing, with as many partitions as the topic they follow, and deleted, with
//! the groups' committed offsets, by `weir state reset --topics`.

use super::client_config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Runs `future` (an admin request, which librdkafka answers on a thread of its own) to its
/// end on this thread, or gives up at `deadline`.
pub(super) fn wait_for<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How to reach the broker.
#[derive(Debug, Clone, Copy)]
pub struct Broker<'a> {
    /// `bootstrap.servers`.
    pub servers: &'a str,
    /// The pipeline's librdkafka options (security settings apply here too).
    pub options: &'a BTreeMap<String, String>,
    /// Longest the whole request may take.
    pub timeout: Duration,
}

impl Broker<'_> {
    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, String> {
        client_config(self.servers, self.options, &[])
            .create()
            .map_err(|err| format!("kafka admin client: {err}"))
    }
}

/// Creates topic `name` (the pipeline's `what`: "changelog", "repartition") with as many
/// partitions as topic `like` and the topic settings `config`, unless it exists.
pub fn ensure(
    broker: Broker<'_>,
    what: &str,
    name: &str,
    like: &str,
    config: &[(&str, &str)],
) -> Result<(), String> {
    let deadline = Instant::now() + broker.timeout;
    let admin = broker.admin()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(like), broker.timeout)
        .map_err(|err| format!("reading topic {like}'s partitions: {err}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == like)
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("topic {like} has no partitions"))?;
    let mut topic = NewTopic::new(
        name,
        i32::try_from(partitions).unwrap_or(i32::MAX),
        TopicReplication::Fixed(-1),
    );
    for (key, value) in config {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(broker.timeout));
    let created = wait_for(admin.create_topics([&topic], &options), deadline)
        .ok_or_else(|| format!("creating {what} topic {name}: no answer in time"))?
        .map_err(|err| format!("creating {what} topic {name}: {err}"))?;
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("creating {what} topic {name}: {code}")),
        }
    }
    Ok(())
}

/// Deletes the topics `names`; one that does not exist is not an error. Returns the ones
/// deleted.
pub fn delete(broker: Broker<'_>, names: &[String]) -> Result<Vec<String>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + broker.timeout;
    let admin = broker.admin()?;
    let options = AdminOptions::new().operation_timeout(Some(broker.timeout));
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = wait_for(admin.delete_topics(&wanted, &options), deadline)
        .ok_or_else(|| format!("deleting topics {}: no answer in time", wanted.join(", ")))?
        .map_err(|err| format!("deleting topics {}: {err}", wanted.join(", ")))?;
    let mut deleted = Vec::new();
    for result in results {
        match result {
            Ok(name) => deleted.push(name),
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => return Err(format!("deleting topic {name}: {code}")),
        }
    }
    Ok(deleted)
}

/// Deletes the consumer groups `names` (their committed offsets); one that does not exist is
/// not an error, one that still has members is. Returns the ones deleted.
pub fn delete_groups(broker: Broker<'_>, names: &[String]) -> Result<Vec<String>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + broker.timeout;
    let admin = broker.admin()?;
    let options = AdminOptions::new().operation_timeout(Some(broker.timeout));
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = wait_for(admin.delete_groups(&wanted, &options), deadline)
        .ok_or_else(|| format!("deleting groups {}: no answer in time", wanted.join(", ")))?
        .map_err(|err| format!("deleting groups {}: {err}", wanted.join(", ")))?;
    let mut deleted = Vec::new();
    for result in results {
        match result {
            Ok(name) => deleted.push(name),
            Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => {
                return Err(format!(
                    "consumer group {name} still has members: stop the pipeline on every daemon of the group first"
                ));
            }
            Err((name, code)) => return Err(format!("deleting group {name}: {code}")),
        }
    }
    Ok(deleted)
}
