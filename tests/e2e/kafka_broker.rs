//! A real Kafka-protocol broker for the tests: Tansu (in memory), fetched by
//! `scripts/kafka-broker`, started on 127.0.0.1 on a free port for one test and stopped after.
//! Records go in and come out through librdkafka (the `rdkafka` crate weir itself uses).

use crate::harness::repo_root;
use crate::machine::Share;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The broker binary (fetched once per target folder).
fn broker_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let output = Command::new(repo_root().join("scripts/kafka-broker"))
            .stderr(Stdio::inherit())
            .output();
        match output {
            Ok(o) if o.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            Ok(o) => panic!("scripts/kafka-broker failed: {}", o.status),
            Err(err) => panic!("cannot run scripts/kafka-broker: {err}"),
        }
    })
    .clone()
}

/// A record to produce: partition, key, value, timestamp (ms since the epoch).
pub type Record<'a> = (i32, Option<&'a [u8]>, &'a [u8], Option<i64>);

/// A running broker; dropping it kills it. Like a running weir it holds a share of the
/// machine, so a test that takes the machine alone waits for it to end.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    _share: Share,
}

/// A record read back: key, value, headers, partition, offset.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    /// The value as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

impl Broker {
    /// A free loopback port (for a broker started later with [`Broker::start_on`]).
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|err| panic!("no free port: {err}"))
    }

    /// Starts a broker on a free loopback port and waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_on(Broker::free_port())
    }

    /// Starts a broker on `port` of 127.0.0.1 and waits until it accepts connections.
    pub fn start_on(port: u16) -> Broker {
        Broker::start_at("127.0.0.1", port)
    }

    /// Starts a broker on `address`:`port` (advertised there) and waits until it accepts
    /// connections.
    pub fn start_at(address: &str, port: u16) -> Broker {
        let bin = broker_bin();
        let url = format!("tcp://{address}:{port}");
        let share = Share::take();
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
        let broker = Broker {
            child,
            bootstrap: format!("{address}:{port}"),
            _share: share,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&broker.bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start listening"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        broker
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(broker_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://{}", self.bootstrap),
                "--partitions",
                &partitions.to_string(),
                topic,
            ])
            .stdout(Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "creating topic {topic} failed"
        );
        // Created means listed in metadata with every partition.
        let consumer = self.consumer(None);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .is_ok_and(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == topic
                            && t.error().is_none()
                            && t.partitions().len() == partitions as usize
                    })
                });
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "topic {topic} did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes `topic` and waits until metadata no longer lists it.
    pub fn delete_topic(&self, topic: &str) {
        let status = Command::new(broker_bin())
            .args([
                "topic",
                "delete",
                "--broker",
                &format!("tcp://{}", self.bootstrap),
                topic,
            ])
            .stdout(Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "deleting topic {topic} failed"
        );
        let consumer = self.consumer(None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map_or(true, |m| m.topics().iter().any(|t| t.name() == topic))
        {
            assert!(Instant::now() < deadline, "topic {topic} did not go");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    fn consumer(&self, isolation: Option<&str>) -> BaseConsumer {
        let mut config = self.config();
        config
            .set("group.id", "weir-tests-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", isolation.unwrap_or("read_committed"));
        config
            .create()
            .unwrap_or_else(|err| panic!("cannot create a consumer: {err}"))
    }

    /// An idempotent producer.
    pub fn producer(&self) -> BaseProducer {
        let mut config = self.config();
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "0");
        config
            .create()
            .unwrap_or_else(|err| panic!("cannot create a producer: {err}"))
    }

    /// A transactional producer under `id`, its transactions initialised; a transaction it
    /// leaves open stays open for five minutes before the broker may abort it.
    pub fn transactional_producer(&self, id: &str) -> BaseProducer {
        let mut config = self.config();
        config
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "300000");
        let producer: BaseProducer = config
            .create()
            .unwrap_or_else(|err| panic!("cannot create a transactional producer: {err}"));
        producer
            .init_transactions(Duration::from_secs(30))
            .unwrap_or_else(|err| panic!("cannot initialise transactions: {err}"));
        producer
    }

    /// Produces `(partition, key, value, timestamp ms)` records and waits until all are
    /// acknowledged. Each partition's last record goes alone, after the others are
    /// acknowledged: Tansu 0.6.0 reports a partition's high watermark as its last record
    /// batch's first offset + 1, so the rest of a last batch of several records would stay out
    /// of sight of every reader that reads up to the high watermark (weir's source among them)
    /// until more records arrive.
    pub fn produce(&self, topic: &str, records: &[Record<'_>]) {
        let producer = self.producer();
        let mut last_of_partition: std::collections::HashMap<i32, usize> = Default::default();
        for (i, (partition, ..)) in records.iter().enumerate() {
            last_of_partition.insert(*partition, i);
        }
        let lasts: std::collections::BTreeSet<usize> = last_of_partition.into_values().collect();
        let rest: Vec<usize> = (0..records.len()).filter(|i| !lasts.contains(i)).collect();
        for wave in [rest, lasts.into_iter().collect()] {
            for i in wave {
                let (partition, key, value, ts) = &records[i];
                let mut record: BaseRecord<'_, [u8], [u8]> =
                    BaseRecord::to(topic).partition(*partition).payload(*value);
                if let Some(key) = key {
                    record = record.key(*key);
                }
                if let Some(ts) = ts {
                    record = record.timestamp(*ts);
                }
                let mut pending = record;
                loop {
                    match producer.send(pending) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            producer.poll(Duration::from_millis(50));
                            pending = back;
                        }
                    }
                }
            }
            if let Err(err) = producer.flush(Duration::from_secs(30)) {
                panic!("producing to {topic} failed: {err}");
            }
        }
    }

    /// Every record of `topic` a `read_committed` consumer sees now, in partition and offset
    /// order.
    pub fn read_all(&self, topic: &str) -> Vec<Consumed> {
        let consumer = self.consumer(Some("read_committed"));
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|err| panic!("metadata of {topic}: {err}"));
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Beginning);
        }
        consumer
            .assign(&tpl)
            .unwrap_or_else(|err| panic!("assign {topic}: {err}"));
        let mut at_end = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while at_end.len() < partitions.len() {
            assert!(
                Instant::now() < deadline,
                "reading {topic} did not reach its end"
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    out.push(Consumed {
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers: m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(err)) => panic!("reading {topic}: {err}"),
                None => {}
            }
        }
        out.sort_by_key(|c| (c.partition, c.offset));
        out
    }

    /// The offset `group` has committed for `topic`/`partition`, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let mut config = self.config();
        config.set("group.id", group);
        let consumer: BaseConsumer = config.create().ok()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Invalid)
            .ok()?;
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok()?;
        committed
            .elements()
            .first()
            .and_then(|e| e.offset().to_raw())
    }

    /// Stops the broker's process (SIGSTOP): clients time out as with a broker gone away,
    /// while what it holds in memory stays.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if let Err(err) = nix::sys::signal::kill(pid, signal) {
            panic!("cannot signal the broker: {err}");
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
