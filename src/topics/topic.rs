//! A topic: a name, its configuration and its partitions.
//!
//! A topic's directory holds `meta.json` and one sub-directory per
//! partition. `meta.json` is written last when a topic is created, so its
//! presence means the topic is complete.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::partition::{IdempotentAppend, Partition, Retention};
use super::{PARTITIONS_MAX, Record, TopicConfig, TopicError, corrupt, invalid_input, sync_dir};

/// Name of the file holding a topic's [`TopicConfig`].
pub(super) const META_FILE: &str = "meta.json";

/// Temporary name `meta.json` is written under before being renamed.
const META_TEMP_FILE: &str = "meta.json.tmp";

/// A named, partitioned, durable log. Cheap to share behind an `Arc`; all
/// methods may be called from many threads at once.
pub struct Topic {
    name: String,
    config: TopicConfig,
    partitions: Vec<Partition>,
}

impl Topic {
    /// Creates the files of a new topic in `dir` (which must not exist) and
    /// opens it. Durable before returning, except for the entry of `dir`
    /// in its parent, which the caller syncs.
    pub(super) fn create(dir: &Path, name: &str, config: TopicConfig) -> Result<Topic, TopicError> {
        if config.partitions == 0 || config.partitions > PARTITIONS_MAX {
            return Err(invalid_input(format!(
                "topic {name:?}: partitions must be 1 to {PARTITIONS_MAX}, got {}",
                config.partitions
            ))
            .into());
        }
        fs::create_dir(dir)?;
        let created = write_files(dir, &config).and_then(|()| Topic::open(dir, name));
        if created.is_err() {
            // Best effort: a leftover without meta.json is removed at the
            // next open anyway.
            let _ = fs::remove_dir_all(dir);
        }
        Ok(created?)
    }

    /// Opens the topic stored in `dir`, recovering each partition.
    pub(super) fn open(dir: &Path, name: &str) -> io::Result<Topic> {
        let meta_path = dir.join(META_FILE);
        let config: TopicConfig = serde_json::from_slice(&fs::read(&meta_path)?)
            .map_err(|err| corrupt(format!("{}: {err}", meta_path.display())))?;
        if config.partitions == 0 || config.partitions > PARTITIONS_MAX {
            return Err(corrupt(format!(
                "{}: invalid partition count {}",
                meta_path.display(),
                config.partitions
            )));
        }
        let shared_name: Arc<str> = Arc::from(name);
        let partitions = (0..config.partitions)
            .map(|number| {
                let partition_dir = dir.join(number.to_string());
                Partition::open(
                    &partition_dir,
                    Arc::clone(&shared_name),
                    number,
                    config.segment_bytes_max,
                    Retention {
                        max_age: config.retention_ms.map(std::time::Duration::from_millis),
                        max_bytes: config.retention_bytes,
                        compact: config.compact,
                    },
                )
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Topic {
            name: name.to_string(),
            config,
            partitions,
        })
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration the topic was created with.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.config.partitions
    }

    /// Appends records as one batch; returns the offset of the first.
    /// Returns only after the batch is fsynced (durable). An empty slice
    /// writes nothing and returns the current end offset.
    pub fn append(&self, partition: u32, records: &[Record]) -> Result<u64, TopicError> {
        self.partition(partition)?.append(records)
    }

    /// Appends a batch of an idempotent Kafka producer (see [`Partition::append_idempotent`]).
    pub fn append_idempotent(
        &self,
        partition: u32,
        records: &[Record],
        stamp: super::ProducerStamp,
    ) -> Result<IdempotentAppend, TopicError> {
        self.partition(partition)?.append_idempotent(records, stamp)
    }

    /// Next offset to be written in the partition (= number of records ever
    /// appended and not truncated). Only counts durable records.
    pub fn end_offset(&self, partition: u32) -> Result<u64, TopicError> {
        Ok(self.partition(partition)?.end_offset())
    }

    /// Reads records with offset >= `from`, at most `max_records`, in offset
    /// order, up to `end_offset` at call time. Returns (offset, record)
    /// pairs; empty when `from` is at or past the end.
    pub fn read(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<(u64, Record)>, TopicError> {
        self.partition(partition)?.read(from, max_records)
    }

    /// The first offset the partition still holds (records below it were deleted by
    /// retention).
    pub fn log_start(&self, partition: u32) -> Result<u64, TopicError> {
        Ok(self.partition(partition)?.log_start())
    }

    /// Bytes partition `partition` takes on disk.
    pub fn size_bytes(&self, partition: u32) -> Result<u64, TopicError> {
        Ok(self.partition(partition)?.size_bytes()?)
    }

    /// Deletes the segments of every partition that retention no longer keeps.
    pub fn apply_retention(&self) -> Result<usize, TopicError> {
        let mut deleted = 0;
        for partition in &self.partitions {
            deleted += partition.apply_retention()?;
        }
        Ok(deleted)
    }

    /// Cuts the partition back so that `end_offset` becomes `offset` (drops
    /// records >= `offset`). Used by recovery. Durable before returning. An
    /// `offset` past the end is an `InvalidInput` error.
    pub fn truncate(&self, partition: u32, offset: u64) -> Result<(), TopicError> {
        self.partition(partition)?.truncate(offset)
    }

    /// Number of data fsyncs issued on this topic's segments since it was
    /// opened, over all partitions. With group commit this stays below the
    /// number of appends when appends are concurrent.
    pub fn fsync_count(&self) -> u64 {
        self.partitions.iter().map(Partition::fsync_count).sum()
    }

    /// Makes every later append fail with [`TopicError::NotFound`]; used
    /// when the topic is dropped.
    pub(super) fn close(&self) {
        self.partitions.iter().for_each(Partition::close);
    }

    /// The partition numbered `partition`, or a `BadPartition` error.
    fn partition(&self, partition: u32) -> Result<&Partition, TopicError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| TopicError::BadPartition {
                topic: self.name.clone(),
                partition,
                partitions: self.config.partitions,
            })
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Writes the partition directories and then, as the commit point,
/// `meta.json`, all durably.
fn write_files(dir: &Path, config: &TopicConfig) -> io::Result<()> {
    for partition in 0..config.partitions {
        Partition::create_dir(&dir.join(partition.to_string()))?;
    }
    let json = serde_json::to_vec_pretty(config).map_err(io::Error::other)?;
    let temp_path = dir.join(META_TEMP_FILE);
    let mut temp = File::create(&temp_path)?;
    temp.write_all(&json)?;
    temp.sync_all()?;
    drop(temp);
    fs::rename(&temp_path, dir.join(META_FILE))?;
    sync_dir(dir)
}
