//! Consumer groups, classic protocol: one coordinator (this broker) for every group.
//!
//! A rebalance: members (re)join with JoinGroup, which waits until every known member has
//! joined (or was dropped for missing its session timeout); the coordinator picks a leader and
//! a protocol and bumps the generation; the leader computes the assignment and sends it with
//! SyncGroup, which hands each member its part. Heartbeats answer REBALANCE_IN_PROGRESS while a
//! new round is under way, which makes members rejoin. Committed offsets are kept in the
//! state store, so they survive a restart; group membership is in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, NODE_ID, kafka_name, topic_name};
use crate::auth::privileges::{Object, Privilege};
use crate::state::{StateStore, WriteBatch, keys};

/// How often a JoinGroup or SyncGroup waiting for the rest of the group looks again, in ms.
const GROUP_POLL_INTERVAL_MS: u64 = 10;
/// Longest a JoinGroup waits for the other members to rejoin, in milliseconds.
const GROUP_REBALANCE_WAIT_MS_MAX: u64 = 60_000;

#[derive(Default)]
pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
}

#[derive(Default)]
struct Group {
    generation: i32,
    state: State,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// When the current join round gives up on members that have not rejoined.
    join_deadline: Option<Instant>,
    next_member: u64,
}

#[derive(Default, PartialEq, Eq, Clone, Copy, Debug)]
enum State {
    #[default]
    Empty,
    Joining,
    Syncing,
    Stable,
}

impl State {
    /// The state's name as Kafka reports it.
    fn kafka_name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::Joining => "PreparingRebalance",
            State::Syncing => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

struct Member {
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    last_seen: Instant,
    joined: bool,
    assignment: Option<Bytes>,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Group {
    /// Drops members that missed their session timeout; a drop starts a new round.
    fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.duration_since(m.last_seen) <= m.session_timeout);
        if self.members.len() != before {
            self.start_round(now, Duration::from_millis(GROUP_REBALANCE_WAIT_MS_MAX));
        }
    }

    fn start_round(&mut self, now: Instant, wait: Duration) {
        if self.members.is_empty() {
            self.state = State::Empty;
            self.leader = None;
            return;
        }
        if self.state == State::Joining {
            // A round is under way: members already waiting in JoinGroup stay joined; the round
            // ends as soon as the remaining members have joined.
            self.maybe_complete_join(now);
            return;
        }
        self.state = State::Joining;
        self.join_deadline = Some(now + wait);
        for m in self.members.values_mut() {
            m.joined = false;
            m.assignment = None;
        }
    }

    /// Ends the join round once everyone has joined (or the wait is over).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::Joining {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        if !all_joined && self.join_deadline.is_some_and(|d| now < d) {
            return;
        }
        self.members.retain(|_, m| m.joined);
        if self.members.is_empty() {
            self.state = State::Empty;
            return;
        }
        self.generation += 1;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        // The first protocol of the leader's list that every member supports.
        let leader = &self.members[self.leader.as_ref().expect("leader chosen")];
        self.protocol = leader
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
        self.state = State::Syncing;
    }
}

impl Groups {
    pub async fn join(&self, request: JoinGroupRequest, version: i16) -> JoinGroupResponse {
        let group_id = request.group_id.0.to_string();
        let error = |code: ResponseError| {
            JoinGroupResponse::default()
                .with_error_code(code.code())
                .with_generation_id(-1)
        };
        let member_id = {
            let mut groups = self.groups.lock().expect("groups lock");
            let group = groups.entry(group_id.clone()).or_default();
            let now = Instant::now();
            group.expire(now);
            let mut member_id = request.member_id.to_string();
            if member_id.is_empty() {
                group.next_member += 1;
                // The clock makes ids from before a restart differ from new ones.
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                member_id = format!("weir-member-{stamp:x}-{}", group.next_member);
            } else if !group.members.contains_key(&member_id) {
                return error(ResponseError::UnknownMemberId);
            }
            if group.members.is_empty() {
                group.protocol_type = request.protocol_type.to_string();
            } else if group.protocol_type != request.protocol_type.as_str() {
                return error(ResponseError::InconsistentGroupProtocol);
            }
            let session_timeout = Duration::from_millis(request.session_timeout_ms.max(1) as u64);
            let wait = Duration::from_millis(
                (request
                    .rebalance_timeout_ms
                    .max(request.session_timeout_ms)
                    .max(1) as u64)
                    .min(GROUP_REBALANCE_WAIT_MS_MAX),
            );
            let protocols = request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect();
            let member = Member {
                protocols,
                session_timeout,
                last_seen: now,
                joined: false,
                assignment: None,
            };
            group.members.insert(member_id.clone(), member);
            if group.state != State::Joining {
                group.start_round(now, wait);
            }
            if let Some(m) = group.members.get_mut(&member_id) {
                m.joined = true;
            }
            member_id
        };
        loop {
            {
                let mut groups = self.groups.lock().expect("groups lock");
                let group = groups.entry(group_id.clone()).or_default();
                let now = Instant::now();
                group.maybe_complete_join(now);
                if !group.members.contains_key(&member_id) {
                    return error(ResponseError::UnknownMemberId);
                }
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.last_seen = now;
                }
                if group.state == State::Syncing || group.state == State::Stable {
                    let leader = group.leader.clone().unwrap_or_default();
                    let Some(protocol) = group.protocol.clone() else {
                        return error(ResponseError::InconsistentGroupProtocol);
                    };
                    let members = if leader == member_id {
                        group
                            .members
                            .iter()
                            .map(|(id, m)| {
                                let metadata = m
                                    .protocols
                                    .iter()
                                    .find(|(n, _)| *n == protocol)
                                    .map(|(_, b)| b.clone())
                                    .unwrap_or_default();
                                JoinGroupResponseMember::default()
                                    .with_member_id(text(id))
                                    .with_metadata(metadata)
                            })
                            .collect()
                    } else {
                        vec![]
                    };
                    let response = JoinGroupResponse::default()
                        .with_generation_id(group.generation)
                        .with_protocol_name(Some(text(&protocol)))
                        .with_leader(text(&leader))
                        .with_member_id(text(&member_id))
                        .with_members(members);
                    return if version >= 7 {
                        response.with_protocol_type(Some(text(&group.protocol_type)))
                    } else {
                        response
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(GROUP_POLL_INTERVAL_MS)).await;
        }
    }

    pub async fn sync(&self, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let error = |code: ResponseError| SyncGroupResponse::default().with_error_code(code.code());
        loop {
            {
                let mut groups = self.groups.lock().expect("groups lock");
                let Some(group) = groups.get_mut(&group_id) else {
                    return error(ResponseError::UnknownMemberId);
                };
                if !group.members.contains_key(&member_id) {
                    return error(ResponseError::UnknownMemberId);
                }
                if request.generation_id != group.generation {
                    return error(ResponseError::IllegalGeneration);
                }
                if group.state == State::Joining {
                    return error(ResponseError::RebalanceInProgress);
                }
                if group.state == State::Syncing
                    && group.leader.as_deref() == Some(member_id.as_str())
                {
                    for a in &request.assignments {
                        if let Some(m) = group.members.get_mut(a.member_id.as_str()) {
                            m.assignment = Some(a.assignment.clone());
                        }
                    }
                    for m in group.members.values_mut() {
                        m.assignment.get_or_insert_with(Bytes::new);
                    }
                    group.state = State::Stable;
                }
                if group.state == State::Stable {
                    let m = group.members.get_mut(&member_id).expect("member checked");
                    m.last_seen = Instant::now();
                    let response = SyncGroupResponse::default()
                        .with_assignment(m.assignment.clone().unwrap_or_default());
                    return if version >= 5 {
                        response
                            .with_protocol_type(Some(text(&group.protocol_type)))
                            .with_protocol_name(group.protocol.as_deref().map(text))
                    } else {
                        response
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(GROUP_POLL_INTERVAL_MS)).await;
        }
    }

    pub fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let mut groups = self.groups.lock().expect("groups lock");
        let code = match groups.get_mut(request.group_id.0.as_str()) {
            None => ResponseError::UnknownMemberId.code(),
            Some(group) => {
                let now = Instant::now();
                group.expire(now);
                group.maybe_complete_join(now);
                match group.members.get_mut(request.member_id.as_str()) {
                    None => ResponseError::UnknownMemberId.code(),
                    Some(m) => {
                        m.last_seen = now;
                        if group.state == State::Joining {
                            ResponseError::RebalanceInProgress.code()
                        } else if request.generation_id != group.generation {
                            ResponseError::IllegalGeneration.code()
                        } else {
                            0
                        }
                    }
                }
            }
        };
        HeartbeatResponse::default().with_error_code(code)
    }

    pub fn leave(&self, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let ids: Vec<String> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect()
        } else {
            vec![request.member_id.to_string()]
        };
        let mut groups = self.groups.lock().expect("groups lock");
        let mut codes = Vec::new();
        if let Some(group) = groups.get_mut(request.group_id.0.as_str()) {
            for id in &ids {
                let code = if group.members.remove(id).is_some() {
                    0
                } else {
                    ResponseError::UnknownMemberId.code()
                };
                codes.push((id.clone(), code));
            }
            group.start_round(
                Instant::now(),
                Duration::from_millis(GROUP_REBALANCE_WAIT_MS_MAX),
            );
        } else {
            codes.extend(
                ids.iter()
                    .map(|id| (id.clone(), ResponseError::UnknownMemberId.code())),
            );
        }
        let response = LeaveGroupResponse::default();
        if version >= 3 {
            response.with_members(
                codes
                    .into_iter()
                    .map(|(id, code)| {
                        MemberResponse::default()
                            .with_member_id(text(&id))
                            .with_error_code(code)
                    })
                    .collect(),
            )
        } else {
            response.with_error_code(codes.first().map(|(_, c)| *c).unwrap_or(0))
        }
    }
}

impl Groups {
    pub fn list(&self, version: i16) -> ListGroupsResponse {
        let groups = self.groups.lock().expect("groups lock");
        let listed = groups
            .iter()
            .map(|(id, g)| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(text(id)))
                    .with_protocol_type(text(&g.protocol_type));
                if version >= 4 {
                    listed.with_group_state(text(g.state.kafka_name()))
                } else {
                    listed
                }
            })
            .collect();
        ListGroupsResponse::default().with_groups(listed)
    }

    pub fn describe(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let groups = self.groups.lock().expect("groups lock");
        let described = request
            .groups
            .iter()
            .map(|id| {
                let described = DescribedGroup::default().with_group_id(id.clone());
                match groups.get(id.0.as_str()) {
                    None => described.with_group_state(text("Dead")),
                    Some(g) => {
                        let protocol = g.protocol.clone().unwrap_or_default();
                        let members = g
                            .members
                            .iter()
                            .map(|(member_id, m)| {
                                let metadata = m
                                    .protocols
                                    .iter()
                                    .find(|(n, _)| *n == protocol)
                                    .map(|(_, b)| b.clone());
                                DescribedGroupMember::default()
                                    .with_member_id(text(member_id))
                                    .with_member_metadata(metadata.unwrap_or_default())
                                    .with_member_assignment(
                                        m.assignment.clone().unwrap_or_default(),
                                    )
                            })
                            .collect();
                        described
                            .with_group_state(text(g.state.kafka_name()))
                            .with_protocol_type(text(&g.protocol_type))
                            .with_protocol_data(text(&protocol))
                            .with_members(members)
                    }
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(described)
    }
}

pub fn find_coordinator(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = text(&broker.advertised.ip().to_string());
    let port = broker.advertised.port() as i32;
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(host.clone())
                    .with_port(port)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(host)
            .with_port(port)
    }
}

/// Committed offsets: `<group> 0 <topic> 0 <partition BE>` → `<offset i64 BE><metadata>`.
fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = vec![keys::GROUP_OFFSETS];
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// One committed consumer-group offset, as `/metrics` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Every committed offset of every consumer group (one scan of the groups' keys).
pub fn committed_offsets(store: &dyn StateStore) -> crate::error::Result<Vec<CommittedOffset>> {
    let mut out = Vec::new();
    for (key, value) in store.scan_prefix(&[keys::GROUP_OFFSETS])? {
        let mut parts = key[1..].splitn(3, |&b| b == 0);
        let (Some(group), Some(topic), Some(partition)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(partition), Some(offset)) = (
            <[u8; 4]>::try_from(partition),
            value.get(..8).and_then(|v| <[u8; 8]>::try_from(v).ok()),
        ) else {
            continue;
        };
        out.push(CommittedOffset {
            group: String::from_utf8_lossy(group).into_owned(),
            topic: String::from_utf8_lossy(topic).into_owned(),
            partition: i32::from_be_bytes(partition),
            offset: i64::from_be_bytes(offset),
        });
    }
    Ok(out)
}

/// Whether the client's role may read `topic` (and so keep a position in it); Weir's internal
/// topics are not for Kafka clients.
fn readable(broker: &Broker, topic: &str) -> bool {
    !super::internal(topic)
        && broker
            .db
            .may(&Object::Topic(topic.to_string()), Privilege::Select)
}

pub fn offset_commit(broker: &Broker, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let mut batch = WriteBatch::default();
    // Committing a consumer's position takes SELECT on the topic, as consuming does.
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|t| readable(broker, &topic_name(&t.name)))
        .collect();
    for (t, _) in request.topics.iter().zip(&readable).filter(|(_, r)| **r) {
        for p in &t.partitions {
            let mut value = p.committed_offset.to_be_bytes().to_vec();
            value.extend_from_slice(p.committed_metadata.as_deref().unwrap_or("").as_bytes());
            batch.put(
                offset_key(&group, &topic_name(&t.name), p.partition_index),
                value,
            );
        }
    }
    let code = match broker.db.store.commit(batch) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(group, "offset commit failed: {e}");
            ResponseError::UnknownServerError.code()
        }
    };
    let topics = request
        .topics
        .iter()
        .zip(readable)
        .map(|(t, readable)| {
            let code = if readable {
                code
            } else {
                ResponseError::TopicAuthorizationFailed.code()
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub fn offset_fetch(broker: &Broker, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = request.group_id.0.to_string();
    let wanted: Vec<(String, Vec<i32>)> = match &request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (topic_name(&t.name), t.partition_indexes.clone()))
            .collect(),
        None => broker
            .db
            .topics
            .list()
            .iter()
            .filter(|t| readable(broker, t.name()))
            .map(|t| (t.name().to_string(), (0..t.partitions() as i32).collect()))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let allowed = readable(broker, &topic);
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    if !allowed {
                        return OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let stored = broker
                        .db
                        .store
                        .get(&offset_key(&group, &topic, p))
                        .ok()
                        .flatten();
                    let (offset, metadata) = match stored {
                        Some(v) if v.len() >= 8 => (
                            i64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
                            String::from_utf8_lossy(&v[8..]).to_string(),
                        ),
                        _ => (-1, String::new()),
                    };
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(text(&metadata)))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(kafka_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}
