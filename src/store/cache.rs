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
        Cache::at(out.join(".cache"))
    }

    /// The cache in `dir`, wherever it is.
    pub fn at(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// `dir` when given, else the cache under `out`.
    pub fn chosen(dir: Option<&Path>, out: &Path) -> Cache {
        dir.map_or_else(|| Cache::under(out), |d| Cache::at(d.to_owned()))
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

    /// Stores `reply` under `key`; an error names the file it concerns.
    pub fn put(&self, key: &str, reply: CachedReply) -> Result<(), super::StoreError> {
        let path = self.path(key);
        let wrap = |source| super::StoreError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("entries live in a folder")).map_err(wrap)?;
        let entry = Entry {
            key: key.to_owned(),
            created: now(),
            reply,
        };
        let bytes = serde_json::to_vec(&entry).expect("cache entries serialize");
        write_atomic(&path, &bytes).map_err(wrap)
    }

    /// Deletes entries older than `age`, and temporary files that a killed
    /// writer left an hour or more ago; returns how many entries went.
    /// Stops at the first file that cannot be removed.
    pub fn prune(&self, age: Duration) -> Result<u64, super::StoreError> {
        let cutoff = now().saturating_sub(age.as_secs());
        let mut removed = 0;
        let listed = self.entries().map_err(|source| super::StoreError::Write {
            path: self.dir.clone(),
            source,
        })?;
        for (path, created, _) in listed.entries {
            if created.is_none_or(|c| c < cutoff) {
                remove(&path)?;
                removed += 1;
            }
        }
        let stale = SystemTime::now() - STALE_TEMP;
        for path in listed.temps {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified());
            if modified.is_ok_and(|m| m < stale) {
                remove(&path)?;
            }
        }
        Ok(removed)
    }

    pub fn stats(&self) -> std::io::Result<Stats> {
        let mut stats = Stats::default();
        for (_, created, bytes) in self.entries()?.entries {
            stats.entries += 1;
            stats.bytes += bytes;
            if let Some(c) = created {
                stats.oldest = Some(stats.oldest.map_or(c, |o| o.min(c)));
                stats.newest = Some(stats.newest.map_or(c, |n| n.max(c)));
            }
        }
        Ok(stats)
    }

    /// Every entry file with its creation time (when readable) and size,
    /// and every temporary file.
    fn entries(&self) -> std::io::Result<Listing> {
        let mut found = Listing::default();
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
                if name.starts_with(TEMP_PREFIX) {
                    found.temps.push(file.path());
                    continue;
                }
                if !name.ends_with(".json") {
                    continue;
                }
                let path = file.path();
                let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                let created = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                    .map(|e| e.created);
                found.entries.push((path, created, bytes));
            }
        }
        Ok(found)
    }
}

/// How old a temporary file must be before `prune` takes it for the
/// leftover of a killed writer rather than a write in progress.
const STALE_TEMP: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Listing {
    entries: Vec<(PathBuf, Option<u64>, u64)>,
    temps: Vec<PathBuf>,
}

/// Removes `path`; one already gone is no error.
fn remove(path: &Path) -> Result<(), super::StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(super::StoreError::Remove {
            path: path.to_owned(),
            source,
        }),
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

    #[test]
    fn prune_removes_old_temporary_files_and_keeps_fresh_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::under(tmp.path());
        let key = crate::hash::sha256_hex(b"k");
        cache.put(&key, reply("hello")).unwrap();
        let shard = cache.path(&key).parent().unwrap().to_owned();
        let old = shard.join(format!("{TEMP_PREFIX}x.json.0badf00d"));
        let fresh = shard.join(format!("{TEMP_PREFIX}y.json.12345678"));
        std::fs::write(&old, "{\"key\"").unwrap();
        std::fs::write(&fresh, "{\"key\"").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(cache.prune(Duration::from_secs(3600)).unwrap(), 0);
        assert!(!old.exists(), "a killed writer's leftover goes");
        assert!(fresh.exists(), "a write that may be in progress stays");
        assert_eq!(cache.stats().unwrap().entries, 1);
    }
}
