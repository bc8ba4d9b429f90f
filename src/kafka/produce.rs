//! Produce: record batches from a client are decoded (CRC checked, any compression, at most
//! [`crate::config::KAFKA_BATCH_BYTES_MAX`] once decompressed: `decompress.rs`), appended to the
//! partition's log and acknowledged only once durable — the same fsync rule as INSERT. Keys,
//! headers and timestamps are kept; a null value is stored as an empty one. A partition with a
//! batch past the limit is answered MESSAGE_TOO_LARGE and none of its batches is written.
//!
//! Idempotent producers (InitProducerId) number their batches per partition; a batch whose
//! sequence was already written (a retry) is answered with its original offset and not written
//! again, and a gap in the sequence is refused. The log keeps each such batch's producer id,
//! epoch and sequence (`topics::Partition::append_idempotent`), so this holds across restarts.

use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::records::RecordSet;

use super::decompress::{self, Refused};
use super::{Broker, metadata, topic_name};
use crate::auth::privileges::Privilege;
use crate::config::KAFKA_BATCH_BYTES_MAX;
use crate::topics::{IdempotentAppend, ProducerStamp, Record};

/// Hands out idempotent producer ids. What each producer last wrote is kept by the log
/// itself (stamped batches, `topics::Partition::append_idempotent`), so retries are
/// recognised across restarts.
#[derive(Default)]
pub struct Producers {
    next_id: AtomicI64,
}

pub fn init_producer_id(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // Ids start from the clock so that ids from before a restart are not handed out again.
    let producers = &broker.producers;
    let _ = producers.next_id.compare_exchange(
        0,
        chrono::Utc::now().timestamp_millis() * 1000,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let id = producers.next_id.fetch_add(1, Ordering::SeqCst);
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(0)
}

pub async fn produce(broker: &Broker, request: ProduceRequest) -> ProduceResponse {
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in &request.topic_data {
        let name = topic_name(&topic_data.name);
        let mut topic = broker.topic_for(&name, Privilege::Insert);
        if matches!(topic, Err(ResponseError::UnknownTopicOrPartition)) && broker.auto_create_topics
        {
            topic = metadata::create(broker, &name, Default::default())
                .map_err(|(code, _)| metadata::auto_create_error(code));
        }
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        // Topics Weir writes (sink outputs, generated sources) have one writer: Weir. (Its
        // internal topics are not found at all.)
        let owned_by_weir = topic
            .as_ref()
            .is_ok_and(|t| broker.db.catalog.sole_writer(t.name()).is_some());
        for part in &topic_data.partition_data {
            let response = PartitionProduceResponse::default().with_index(part.index);
            let outcome = match (&topic, part.records.clone()) {
                (Err(code), _) => Err(*code),
                (Ok(_), _) if owned_by_weir => Err(ResponseError::PolicyViolation),
                (Ok(t), _) if part.index < 0 || part.index as u32 >= t.partitions() => {
                    Err(ResponseError::UnknownTopicOrPartition)
                }
                (_, None) => Err(ResponseError::CorruptMessage),
                (Ok(t), Some(raw)) => append(t, part.index as u32, raw),
            };
            partitions.push(match outcome {
                Ok(base_offset) => response
                    .with_base_offset(base_offset as i64)
                    .with_log_start_offset(
                        topic
                            .as_ref()
                            .ok()
                            .and_then(|t| t.log_start(part.index as u32).ok())
                            .unwrap_or(0) as i64,
                    ),
                Err(code) => response.with_error_code(code.code()).with_base_offset(-1),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name.clone())
                .with_partition_responses(partitions),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

/// Decodes the client's batches and appends their records; returns the first offset.
fn append(
    topic: &crate::topics::Topic,
    partition: u32,
    mut raw: Bytes,
) -> Result<u64, ResponseError> {
    let sets = decompress::decode_batches(&mut raw, KAFKA_BATCH_BYTES_MAX).map_err(|e| {
        tracing::debug!(topic = topic.name(), "produce refused: {e}");
        match e {
            Refused::TooLarge => ResponseError::MessageTooLarge,
            Refused::Corrupt(_) => ResponseError::CorruptMessage,
        }
    })?;
    let mut first_offset = None;
    for set in sets {
        let offset = append_batch(topic, partition, set)?;
        first_offset.get_or_insert(offset);
    }
    match first_offset {
        Some(offset) => Ok(offset),
        None => topic
            .end_offset(partition)
            .map_err(|_| ResponseError::UnknownServerError),
    }
}

fn append_batch(
    topic: &crate::topics::Topic,
    partition: u32,
    set: RecordSet,
) -> Result<u64, ResponseError> {
    let Some(first) = set.records.first() else {
        return topic
            .end_offset(partition)
            .map_err(|_| ResponseError::UnknownServerError);
    };
    let stamp = (first.producer_id >= 0).then_some(ProducerStamp {
        producer_id: first.producer_id,
        epoch: first.producer_epoch,
        base_sequence: first.sequence,
    });
    let records: Vec<Record> = set
        .records
        .into_iter()
        .map(|r| Record {
            key: r.key,
            value: r.value.unwrap_or_default(),
            timestamp_ms: r.timestamp,
            headers: r
                .headers
                .into_iter()
                .map(|(name, value)| (name.into_bytes(), value))
                .collect(),
        })
        .collect();
    // The append fsyncs: let the runtime move other tasks off this thread meanwhile.
    let failed = |e: crate::topics::TopicError| {
        tracing::error!(topic = topic.name(), "produce append failed: {e}");
        ResponseError::UnknownServerError
    };
    let Some(stamp) = stamp else {
        return tokio::task::block_in_place(|| topic.append(partition, &records)).map_err(failed);
    };
    let outcome =
        tokio::task::block_in_place(|| topic.append_idempotent(partition, &records, stamp))
            .map_err(failed)?;
    match outcome {
        IdempotentAppend::Written(base) | IdempotentAppend::Retry(base) => Ok(base),
        IdempotentAppend::DuplicateSequence => Err(ResponseError::DuplicateSequenceNumber),
        IdempotentAppend::OutOfOrder => Err(ResponseError::OutOfOrderSequenceNumber),
        IdempotentAppend::StaleEpoch => Err(ResponseError::InvalidProducerEpoch),
    }
}
