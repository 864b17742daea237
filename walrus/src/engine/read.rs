//! The engine's side of a read: a topic's entries collected by its
//! [`Reader`] (under the topic's reader mutex), and the cursor persisted as
//! the consistency mode asks before a consuming read returns.

use super::background::release_consumed;
use super::{Inner, TopicInfo};
use crate::read::Reader;
use crate::store::{validate_topic, Entry, Result};
use crate::topic::Topic;
use std::sync::Arc;

impl Inner {
    /// Reads up to `max_entries` entries totalling at most `max_bytes` of
    /// payload (at least one entry when any is available).
    pub(super) fn read(
        &self,
        topic_name: &str,
        max_bytes: usize,
        max_entries: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        validate_topic(topic_name)?;
        let Some(topic) = self.topics.read().get(topic_name).cloned() else {
            return Ok(Vec::new());
        };
        self.read_from(&topic, max_bytes, max_entries, checkpoint)
    }

    /// [`read`](Self::read) from a topic already looked up.
    pub(super) fn read_from(
        &self,
        topic: &Arc<Topic>,
        max_bytes: usize,
        max_entries: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        let mut r = topic.reader.lock();
        let mut batch = r.collect(topic, max_bytes, max_entries)?;
        let entries = std::mem::take(&mut batch.entries);
        if checkpoint && !entries.is_empty() {
            self.persist_cursor(topic, &mut r, batch.next_seq, entries.len() as u64)?;
            r.consume(batch);
        }
        r.let_go_of_large_frame();
        Ok(entries)
    }

    /// Where a topic's cursor and tail are; `None` for an unknown topic.
    pub(super) fn topic_info(&self, topic: &str) -> Option<TopicInfo> {
        let topic = self.topics.read().get(topic).cloned()?;
        let next_to_append = topic.writer.lock().next_seq;
        let next_to_read = topic.reader.lock().seq();
        Some(TopicInfo {
            next_to_read,
            next_to_append,
        })
    }

    /// Persists a consuming read's new cursor as the consistency mode asks,
    /// before the read returns. On error the in-memory cursor is unchanged.
    pub(super) fn persist_cursor(
        &self,
        topic: &Topic,
        r: &mut Reader,
        seq: u64,
        consumed: u64,
    ) -> Result<()> {
        if !self.consistency.persist_due(r.unpersisted(), consumed) {
            r.note_unpersisted(consumed);
            return Ok(());
        }
        self.cursors.persist(&topic.name, seq, true)?;
        r.mark_persisted();
        for segment in release_consumed(topic, seq) {
            self.delete_segment(&segment);
        }
        Ok(())
    }

    pub(super) fn persist_pending_cursors(&self) -> Result<()> {
        let topics: Vec<_> = self.topics.read().values().cloned().collect();
        let mut any = false;
        for topic in topics {
            let mut r = topic.reader.lock();
            if r.unpersisted() > 0 {
                self.cursors.persist(&topic.name, r.seq(), false)?;
                r.mark_persisted();
                any = true;
            }
        }
        if any {
            self.cursors.sync()?;
        }
        Ok(())
    }
}
