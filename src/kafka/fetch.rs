//! Fetch and ListOffsets: consumers read a partition's records from an offset. A fetch with
//! nothing new waits up to the client's `max_wait_ms` (long polling) before answering empty.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use kafka_protocol::records::{
    Compression, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record as KafkaRecord, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

use kafka_protocol::protocol::StrBytes;

use super::{Broker, topic_name};
use crate::auth::privileges::Privilege;
use crate::topics::Topic;

/// How often a long-polling fetch looks for new records, in milliseconds.
const FETCH_POLL_INTERVAL_MS: u64 = 5;
/// Longest wait a fetch may ask for, in milliseconds.
const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Records read from the log per step while filling a fetch.
const FETCH_READ_RECORDS: usize = 4096;

pub async fn fetch(broker: &Broker, request: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = Instant::now() + wait;
    loop {
        let (response, bytes) = fetch_once(broker, &request);
        if bytes as i64 >= request.min_bytes.max(1) as i64 || Instant::now() >= deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(FETCH_POLL_INTERVAL_MS)).await;
    }
}

/// One pass over the requested partitions; returns the response and how many record bytes it holds.
fn fetch_once(broker: &Broker, request: &FetchRequest) -> (FetchResponse, usize) {
    let mut total = 0usize;
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = topic_name(&t.topic);
        let topic = broker.topic_for(&name, Privilege::Select);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_aborted_transactions(Some(vec![]));
            let topic = match &topic {
                Ok(t) if p.partition >= 0 && (p.partition as u32) < t.partitions() => t,
                found => {
                    let code = found
                        .as_ref()
                        .err()
                        .unwrap_or(&ResponseError::UnknownTopicOrPartition);
                    partitions.push(data.with_error_code(code.code()).with_high_watermark(-1));
                    continue;
                }
            };
            let partition = p.partition as u32;
            let end = high_watermark(broker, topic, partition).unwrap_or(0) as i64;
            let log_start = topic.log_start(partition).unwrap_or(0) as i64;
            let data = data
                .with_high_watermark(end)
                .with_last_stable_offset(end)
                .with_log_start_offset(log_start);
            // Below the log start: retention deleted those records (the consumer resets).
            if p.fetch_offset < log_start || p.fetch_offset > end {
                partitions.push(data.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let budget =
                (p.partition_max_bytes.max(1) as usize).min(max_bytes.saturating_sub(total).max(1));
            match encode_records(topic, partition, p.fetch_offset as u64, end as u64, budget) {
                Ok(records) => {
                    total += records.len();
                    partitions.push(data.with_records(Some(records.freeze())));
                }
                Err(e) => {
                    tracing::error!(topic = name, "fetch failed: {e}");
                    partitions.push(data.with_error_code(ResponseError::UnknownServerError.code()));
                }
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(topics), total)
}

/// How far consumers may read a partition: its log end, or for a sink's topic the end of
/// the last committed epoch (records past it may still be taken back).
fn high_watermark(
    broker: &Broker,
    topic: &Topic,
    partition: u32,
) -> Result<u64, crate::topics::TopicError> {
    let log_end = topic.end_offset(partition)?;
    let committed = broker.db.catalog.readable_end(topic.name(), partition);
    Ok(committed.map_or(log_end, |c| c.min(log_end)))
}

/// Records from `from` up to (not including) `end` as one v2 batch, up to about `budget`
/// bytes (at least one record).
fn encode_records(
    topic: &Topic,
    partition: u32,
    from: u64,
    end: u64,
    budget: usize,
) -> Result<BytesMut, String> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut next = from;
    'read: loop {
        let want = (end.saturating_sub(next) as usize).min(FETCH_READ_RECORDS);
        if want == 0 {
            break;
        }
        let chunk = topic
            .read(partition, next, want)
            .map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            break;
        }
        for (offset, r) in chunk {
            let size = r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 16;
            if !records.is_empty() && bytes + size > budget {
                break 'read;
            }
            bytes += size;
            next = offset + 1;
            records.push(KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: offset as i64,
                // (offset - sequence) constant keeps the records in one batch.
                sequence: (offset - from) as i32 - 1,
                timestamp: r.timestamp_ms,
                key: r.key,
                value: Some(r.value),
                headers: r
                    .headers
                    .into_iter()
                    .filter_map(|(name, value)| StrBytes::from_utf8(name).ok().map(|n| (n, value)))
                    .collect(),
            });
        }
    }
    let mut out = BytesMut::new();
    if !records.is_empty() {
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The first offset whose record timestamp is at or after `timestamp_ms` (a scan of the
/// partition), or the end offset when there is none.
fn offset_for_time(topic: &Topic, partition: u32, timestamp_ms: i64) -> Result<(i64, i64), String> {
    let mut from = 0;
    loop {
        let chunk = topic
            .read(partition, from, FETCH_READ_RECORDS)
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = chunk.last() else { break };
        let next = last + 1;
        if let Some((offset, r)) = chunk
            .into_iter()
            .find(|(_, r)| r.timestamp_ms >= timestamp_ms)
        {
            return Ok((offset as i64, r.timestamp_ms));
        }
        from = next;
    }
    Ok((
        topic.end_offset(partition).map_err(|e| e.to_string())? as i64,
        -1,
    ))
}

pub fn list_offsets(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topic_for(&topic_name(&t.name), Privilege::Select);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let topic = match &topic {
                        Ok(t)
                            if p.partition_index >= 0
                                && (p.partition_index as u32) < t.partitions() =>
                        {
                            t
                        }
                        found => {
                            let code = found
                                .as_ref()
                                .err()
                                .unwrap_or(&ResponseError::UnknownTopicOrPartition);
                            return response.with_error_code(code.code());
                        }
                    };
                    let partition = p.partition_index as u32;
                    let found = match p.timestamp {
                        -2 | -4 => topic
                            .log_start(partition)
                            .map(|start| (start as i64, -1))
                            .map_err(|e| e.to_string()),
                        -1 | -3 | -5 => high_watermark(broker, topic, partition)
                            .map(|end| (end as i64, -1))
                            .map_err(|e| e.to_string()),
                        ts => offset_for_time(topic, partition, ts),
                    };
                    match found {
                        Ok((offset, timestamp)) => {
                            let r = response.with_offset(offset).with_timestamp(timestamp);
                            if version >= 4 {
                                r.with_leader_epoch(0)
                            } else {
                                r
                            }
                        }
                        Err(e) => {
                            tracing::error!("list offsets failed: {e}");
                            response.with_error_code(ResponseError::UnknownServerError.code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
