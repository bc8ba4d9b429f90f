//! Cluster and topic administration: ApiVersions, Metadata, CreateTopics, DeleteTopics.
//! Weir is a one-broker cluster: node 1 leads every partition. Weir's internal topics are left
//! out of Metadata, and a client cannot create one (INVALID_TOPIC_EXCEPTION).

use std::hash::{Hash, Hasher};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse, ResponseKind,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, INTERNAL_TOPIC_PREFIX, NODE_ID, SUPPORTED, internal, kafka_name, topic_name};
use crate::auth::privileges::{Object, Privilege};
use crate::error::ErrorKind;
use crate::topics::{Topic, TopicConfig, TopicError};

pub fn api_versions() -> ApiVersionsResponse {
    let keys = SUPPORTED
        .iter()
        .map(|(key, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// The answer to an ApiVersions request of a version we do not speak: error 35 and our range.
pub fn api_versions_unsupported() -> ResponseKind {
    let (_, lo, hi) = SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == ApiKey::ApiVersions)
        .copied()
        .unwrap_or((ApiKey::ApiVersions, 0, 0));
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(lo)
                .with_max_version(hi),
        ])
        .into()
}

/// A stable, non-nil id per topic name (Metadata v10+ carries topic ids).
fn topic_id(name: &str) -> uuid::Uuid {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (name, "weir-topic").hash(&mut b);
    uuid::Uuid::from_u128(((a.finish() as u128) << 64) | (b.finish() as u128) | 1)
}

fn describe_topic(topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(kafka_name(topic.name())))
        .with_topic_id(topic_id(topic.name()))
        .with_partitions(partitions)
}

pub fn metadata(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let topics_store = &broker.db.topics;
    let wanted: Option<Vec<String>> = match request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| t.name.as_ref().map(topic_name))
                .collect(),
        ),
    };
    let topics = match wanted {
        // A role sees the topics it has some privilege on.
        None => topics_store
            .list()
            .iter()
            .filter(|t| !internal(t.name()) && broker.db.may_see(&Object::Topic(t.name().into())))
            .map(|t| describe_topic(t))
            .collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                let mut found = match broker.topic(name) {
                    Some(_) if !broker.db.may_see(&Object::Topic(name.clone())) => {
                        Err(ResponseError::TopicAuthorizationFailed)
                    }
                    Some(t) => Ok(t),
                    None => Err(ResponseError::UnknownTopicOrPartition),
                };
                if matches!(found, Err(ResponseError::UnknownTopicOrPartition))
                    && broker.auto_create_topics
                    && request.allow_auto_topic_creation
                {
                    found = create(broker, name, TopicConfig::default())
                        .map_err(|(code, _)| auto_create_error(code));
                }
                match found {
                    Ok(t) => describe_topic(&t),
                    Err(code) => MetadataResponseTopic::default()
                        .with_name(Some(kafka_name(name)))
                        .with_error_code(code.code()),
                }
            })
            .collect(),
    };
    let broker_entry = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(broker.advertised.ip().to_string()))
        .with_port(broker.advertised.port() as i32);
    MetadataResponse::default()
        .with_brokers(vec![broker_entry])
        .with_cluster_id(Some(StrBytes::from_static_str("weir")))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
}

/// Creates a topic (Kafka clients and auto-creation), with the same rules as CREATE TOPIC: the
/// role needs CREATE on the database, and owns the topic; a Kafka client cannot create one of
/// Weir's internal topics. An error is the code and message CreateTopics answers with.
pub fn create(
    broker: &Broker,
    name: &str,
    config: TopicConfig,
) -> Result<std::sync::Arc<Topic>, (ResponseError, String)> {
    if internal(name) {
        return Err((
            ResponseError::InvalidTopicException,
            format!(
                "topic names starting with '{INTERNAL_TOPIC_PREFIX}' are reserved for Weir's \
                 internal topics"
            ),
        ));
    }
    if !broker.db.may(&Object::Database, Privilege::Create) {
        return Err((
            ResponseError::TopicAuthorizationFailed,
            format!(
                "role {} may not create topics (it needs CREATE on the database)",
                crate::auth::current_user()
            ),
        ));
    }
    let partitions = config.partitions;
    let topic = broker
        .db
        .topics
        .create_topic(name, config)
        .map_err(|e| match e {
            TopicError::AlreadyExists(_) => (
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ),
            TopicError::InvalidName(_) => (
                ResponseError::InvalidTopicException,
                format!("invalid topic name '{name}'"),
            ),
            other => (ResponseError::UnknownServerError, other.to_string()),
        })?;
    broker
        .db
        .record_owner(Object::Topic(name.to_string()))
        .map_err(|e| (ResponseError::UnknownServerError, e.message))?;
    tracing::info!(topic = name, partitions, "topic created by a Kafka client");
    Ok(topic)
}

/// What a request that would have created a topic answers when it could not: the topic is
/// not there (as before auto-creation), unless the role may not create topics.
pub fn auto_create_error(code: ResponseError) -> ResponseError {
    match code {
        ResponseError::TopicAuthorizationFailed => code,
        _ => ResponseError::UnknownTopicOrPartition,
    }
}

/// A topic's configuration from CreateTopics: its partition count and the configs Weir keeps
/// (`retention.ms`, `retention.bytes`, `segment.bytes`, `cleanup.policy`); others are ignored.
fn requested_config(partitions: u32, t: &CreatableTopic) -> Result<TopicConfig, String> {
    let mut config = TopicConfig {
        partitions,
        ..Default::default()
    };
    for c in &t.configs {
        let name = c.name.as_str();
        if let (true, Some(value)) = (KEPT_CONFIGS.contains(&name), c.value.as_ref()) {
            config.set(name, value.as_str())?;
        }
    }
    Ok(config)
}

/// The topic configs Weir honours; CreateTopics ignores the rest (replication and the like).
const KEPT_CONFIGS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "cleanup.policy",
];

pub fn create_topics(broker: &Broker, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = topic_name(&t.name);
            let partitions = if t.num_partitions < 0 {
                1
            } else {
                t.num_partitions
            };
            let outcome = if partitions == 0 || partitions as u32 > crate::topics::PARTITIONS_MAX {
                Err((
                    ResponseError::InvalidPartitions,
                    format!(
                        "partitions must be from 1 to {}",
                        crate::topics::PARTITIONS_MAX
                    ),
                ))
            } else if request.validate_only && !broker.db.may(&Object::Database, Privilege::Create)
            {
                Err((
                    ResponseError::TopicAuthorizationFailed,
                    "creating topics takes CREATE on the database".to_string(),
                ))
            } else if request.validate_only {
                match broker.topic(&name) {
                    Some(_) => Err((
                        ResponseError::TopicAlreadyExists,
                        format!("topic '{name}' already exists"),
                    )),
                    None => crate::topics::validate_topic_name(&name)
                        .map_err(|e| (ResponseError::InvalidTopicException, e.to_string())),
                }
            } else {
                requested_config(partitions as u32, t)
                    .map_err(|message| (ResponseError::InvalidConfig, message))
                    .and_then(|config| create(broker, &name, config).map(|_| ()))
            };
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result
                    .with_topic_id(topic_id(&name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub fn delete_topics(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<String> = if version >= 6 {
        request
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(topic_name))
            .collect()
    } else {
        request.topic_names.iter().map(topic_name).collect()
    };
    let responses = names
        .iter()
        .map(|name| {
            let result = DeletableTopicResult::default().with_name(Some(kafka_name(name)));
            if broker.topic(name).is_none() {
                return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
            }
            match broker.db.drop_topic(name, false) {
                Ok(_) => result,
                Err(e) => {
                    let code = match e.kind {
                        ErrorKind::InsufficientPrivilege => ResponseError::TopicAuthorizationFailed,
                        _ => ResponseError::PolicyViolation,
                    };
                    let with_message = result.with_error_code(code.code());
                    if version >= 5 {
                        with_message.with_error_message(Some(StrBytes::from_string(e.message)))
                    } else {
                        with_message
                    }
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// A retention limit as Kafka writes it: -1 for none.
fn kafka_limit(limit: Option<u64>) -> String {
    limit.map_or("-1".to_string(), |l| l.to_string())
}

/// Topic configuration as Kafka clients (and admin tools) ask for it; all values are read-only
/// (set when the topic is created).
pub fn describe_configs(
    broker: &Broker,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    const TOPIC: i8 = 2;
    const DEFAULT_CONFIG: i8 = 5;
    let results = request
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if r.resource_type != TOPIC {
                return result.with_configs(vec![]);
            }
            let name = r.resource_name.as_str();
            let topic = match broker.topic(name) {
                None => {
                    return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                }
                Some(_) if !broker.db.may_see(&Object::Topic(name.to_string())) => {
                    return result.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                }
                Some(topic) => topic,
            };
            let all = [
                (
                    "cleanup.policy",
                    topic.config().cleanup_policy().to_string(),
                ),
                ("retention.ms", kafka_limit(topic.config().retention_ms)),
                (
                    "retention.bytes",
                    kafka_limit(topic.config().retention_bytes),
                ),
                (
                    "segment.bytes",
                    topic.config().segment_bytes_max.to_string(),
                ),
                ("max.message.bytes", super::REQUEST_BYTES_MAX.to_string()),
            ];
            let configs = all
                .iter()
                .filter(|(name, _)| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name))
                })
                .map(|(name, value)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                        .with_read_only(true)
                        .with_config_source(DEFAULT_CONFIG)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
