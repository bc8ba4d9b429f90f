//! The topic store: the catalogue of topics in one data directory.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing::warn;

use super::topic::{META_FILE, Topic};
use super::{TopicConfig, TopicError, read_lock, sync_dir, validate_topic_name, write_lock};

/// Owns a data directory with one sub-directory per topic. Shared between
/// threads behind an `Arc`; every method takes `&self`.
pub struct TopicStore {
    dir: PathBuf,
    /// Open topics by name; a `BTreeMap` so that [`TopicStore::list`] is
    /// sorted. Creates and drops hold the write lock for their whole I/O,
    /// which keeps them from racing on the same directory.
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
}

impl TopicStore {
    /// Opens the store in `dir`, creating the directory if needed, and
    /// reopens every topic in it. Each partition's last segment loses any
    /// torn tail (logged as a warning). A topic directory without
    /// `meta.json` is an interrupted create or drop and is removed.
    pub fn open(dir: &Path) -> Result<TopicStore, TopicError> {
        fs::create_dir_all(dir)?;
        let mut topics = BTreeMap::new();
        let mut removed_any = false;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = match entry.file_name().into_string() {
                Ok(name) if validate_topic_name(&name).is_ok() => name,
                _ => {
                    warn!(path = %path.display(), "ignoring directory that is not a topic");
                    continue;
                }
            };
            if !path.join(META_FILE).try_exists()? {
                warn!(path = %path.display(), "removing incomplete topic directory");
                fs::remove_dir_all(&path)?;
                removed_any = true;
                continue;
            }
            let topic = Topic::open(&path, &name)?;
            topics.insert(name, Arc::new(topic));
        }
        if removed_any {
            sync_dir(dir)?;
        }
        Ok(TopicStore {
            dir: dir.to_path_buf(),
            topics: RwLock::new(topics),
        })
    }

    /// Creates a topic. Its files, including the directory entries, are
    /// durable before this returns.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        let mut topics = write_lock(&self.topics);
        if topics.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let path = self.dir.join(name);
        let topic = Arc::new(Topic::create(&path, name, config)?);
        if let Err(err) = sync_dir(&self.dir) {
            // Best effort: keep disk and catalogue in agreement.
            let _ = fs::remove_dir_all(&path);
            return Err(err.into());
        }
        topics.insert(name.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    /// The topic named `name`, if it exists.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read_lock(&self.topics).get(name).cloned()
    }

    /// Drops a topic and removes its files. Handles to it that are still
    /// held fail later appends with [`TopicError::NotFound`].
    ///
    /// Removing `meta.json` is the durable commit point; if the rest of the
    /// removal is interrupted, the next open finishes it.
    pub fn drop_topic(&self, name: &str) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        let mut topics = write_lock(&self.topics);
        let Some(topic) = topics.get(name).cloned() else {
            return Err(TopicError::NotFound(name.to_string()));
        };
        let path = self.dir.join(name);
        fs::remove_file(path.join(META_FILE))?;
        sync_dir(&path)?;
        topic.close();
        topics.remove(name);
        fs::remove_dir_all(&path)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Applies every topic's retention (deletes the segments it no longer keeps); returns how
    /// many segments went. Appends do this when they roll a segment; this covers topics that
    /// age without being written.
    pub fn apply_retention(&self) -> Result<usize, TopicError> {
        let mut deleted = 0;
        for topic in self.list() {
            if topic.config().has_retention() {
                deleted += topic.apply_retention()?;
            }
        }
        Ok(deleted)
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        read_lock(&self.topics).values().cloned().collect()
    }
}

impl fmt::Debug for TopicStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
