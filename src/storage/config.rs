//! The `[storage]` settings: Hawk skew, open files, durability, batches, purge, quota and
//! the request limits.

use serde::{Deserialize, Serialize};

use crate::config::values::InvalidSetting;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// An acknowledged write survives power loss.
    Full,
    /// Faster; the last writes may be lost on power loss (never corrupted).
    Normal,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Seconds a Hawk timestamp may differ from the server clock.
    pub hawk_max_skew: u64,
    /// Per-user database connections kept open at once.
    pub max_open_databases: usize,
    /// `full` (durable) or `normal` (faster, may lose the last writes on power loss).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Seconds an uncommitted batch lives.
    pub max_batch_ttl: u64,
    /// Seconds a request body may go without sending data before it is refused (408).
    pub body_timeout: u64,
    /// Seconds between background purges of expired records and batches.
    pub purge_interval: u64,
    /// Free space (KiB) in a user file above which the purge runs an incremental vacuum.
    pub vacuum_threshold_kb: u64,
    /// Bytes of payload a user may store (0 = no quota).
    pub quota_bytes: u64,
    pub max_post_records: u64,
    pub max_post_bytes: u64,
    pub max_record_payload_bytes: u64,
    pub max_request_bytes: u64,
    pub max_total_records: u64,
    pub max_total_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            hawk_max_skew: 60,
            max_open_databases: 256,
            sqlite_synchronous: SqliteSynchronous::Full,
            max_batch_ttl: 7200,
            body_timeout: 60,
            purge_interval: 3600,
            vacuum_threshold_kb: 1024,
            quota_bytes: 0,
            max_post_records: 100,
            max_post_bytes: 2_621_440,
            max_record_payload_bytes: 2_621_440,
            max_request_bytes: 2_625_536,
            max_total_records: 10_000,
            max_total_bytes: 262_144_000,
        }
    }
}

impl StorageSettings {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let s = self;
        let positive = [
            ("storage.hawk_max_skew", s.hawk_max_skew),
            ("storage.max_open_databases", s.max_open_databases as u64),
            ("storage.max_batch_ttl", s.max_batch_ttl),
            ("storage.body_timeout", s.body_timeout),
            ("storage.purge_interval", s.purge_interval),
            ("storage.max_post_records", s.max_post_records),
            ("storage.max_post_bytes", s.max_post_bytes),
            (
                "storage.max_record_payload_bytes",
                s.max_record_payload_bytes,
            ),
            ("storage.max_request_bytes", s.max_request_bytes),
            ("storage.max_total_records", s.max_total_records),
            ("storage.max_total_bytes", s.max_total_bytes),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(InvalidSetting::new(key, "expected a positive number"));
            }
        }
        if s.max_request_bytes < s.max_post_bytes {
            return Err(InvalidSetting::new(
                "storage.max_request_bytes",
                "must be at least storage.max_post_bytes",
            ));
        }
        Ok(())
    }
}
