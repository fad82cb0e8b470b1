//! The cache of step results shared across runs: one file per key under
//! `<out>/.cache/`, written whole by rename so that concurrent runs never
//! see a torn entry, and pruned by age.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::atomic::{write_atomic, TEMP_PREFIX};

/// A cached result: what a template can read of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedReply {
    pub raw: Value,
    pub output: String,
    pub thinking: Option<String>,
    pub json: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    /// Seconds since the Unix epoch.
    created: u64,
    reply: CachedReply,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// What `baton cache stats` reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    pub oldest: Option<u64>,
    pub newest: Option<u64>,
}

impl Cache {
    /// The cache under an output directory.
    pub fn under(out: &Path) -> Cache {
        Cache {
            dir: out.join(".cache"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The entry for `key` if there is one younger than `ttl`.
    pub fn get(&self, key: &str, ttl: Option<Duration>) -> Option<CachedReply> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if entry.key != key {
            return None;
        }
        if let Some(ttl) = ttl {
            if now().saturating_sub(entry.created) > ttl.as_secs() {
                return None;
            }
        }
        Some(entry.reply)
    }

    pub fn put(&self, key: &str, reply: CachedReply) -> std::io::Result<()> {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().expect("entries live in a folder"))?;
        let entry = Entry {
            key: key.to_owned(),
            created: now(),
            reply,
        };
        let bytes = serde_json::to_vec(&entry).expect("cache entries serialize");
        write_atomic(&path, &bytes)
    }

    /// Deletes entries older than `age`; returns how many.
    pub fn prune(&self, age: Duration) -> std::io::Result<u64> {
        let cutoff = now().saturating_sub(age.as_secs());
        let mut removed = 0;
        for (path, created, _) in self.entries()? {
            if created.is_none_or(|c| c < cutoff) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn stats(&self) -> std::io::Result<Stats> {
        let mut stats = Stats::default();
        for (_, created, bytes) in self.entries()? {
            stats.entries += 1;
            stats.bytes += bytes;
            if let Some(c) = created {
                stats.oldest = Some(stats.oldest.map_or(c, |o| o.min(c)));
                stats.newest = Some(stats.newest.map_or(c, |n| n.max(c)));
            }
        }
        Ok(stats)
    }

    /// Every entry file with its creation time (when readable) and size.
    fn entries(&self) -> std::io::Result<Vec<(PathBuf, Option<u64>, u64)>> {
        let mut found = Vec::new();
        let shards = match std::fs::read_dir(&self.dir) {
            Ok(shards) => shards,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for shard in shards.filter_map(|e| e.ok()) {
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.filter_map(|e| e.ok()) {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) || !name.ends_with(".json") {
                    continue;
                }
                let path = file.path();
                let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                let created = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                    .map(|e| e.created);
                found.push((path, created, bytes));
            }
        }
        Ok(found)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> CachedReply {
        CachedReply {
            raw: Value::String(text.into()),
            output: text.into(),
            thinking: None,
            json: None,
        }
    }

    #[test]
    fn stores_reads_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::under(tmp.path());
        let key = crate::hash::sha256_hex(b"k");
        assert!(cache.get(&key, None).is_none());
        cache.put(&key, reply("hello")).unwrap();
        assert_eq!(cache.get(&key, None).unwrap().output, "hello");
        assert_eq!(
            cache
                .get(&key, Some(Duration::from_secs(60)))
                .unwrap()
                .output,
            "hello"
        );
        assert_eq!(cache.stats().unwrap().entries, 1);
        assert_eq!(cache.prune(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(
            cache.prune(Duration::ZERO).unwrap(),
            0,
            "created this second"
        );
    }
}
