//! The feed view: what a session knows of the messages it hears of and of the claims, kept current from the watch
//! and turned into [`FeedEvent`]s as the memory backend would send them.

use crate::backend::etcd::Inner;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::keys::FeedKey;
use crate::backend::etcd::range_prefix;
use crate::backend::{FeedEvent, Message, WorkerSpec};
use etcd_client::EventType;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The messages of a session's routes with their mod revisions, shared by the feed (which keeps it current) and the
/// claims (which are guarded by the revision the feed saw).
pub(super) type Known = Arc<std::sync::Mutex<HashMap<String, (Message, i64)>>>;

pub(super) fn known(known: &Known) -> std::sync::MutexGuard<'_, HashMap<String, (Message, i64)>> {
    crate::sync::lock(known)
}

/// What the feed knows: the messages of the session's routes and every claim.
pub(super) struct View {
    routes: HashSet<String>,
    messages: Known,
    claims: ClaimSet,
}

/// The tasks whose message is claimed (as far as the feed knows), shared like [`Known`].
pub(super) type ClaimSet = Arc<std::sync::Mutex<HashSet<String>>>;

pub(super) fn claimed(claimed: &ClaimSet) -> std::sync::MutexGuard<'_, HashSet<String>> {
    crate::sync::lock(claimed)
}

impl View {
    pub(super) fn new(spec: &WorkerSpec, messages: Known, claims: ClaimSet) -> Self {
        Self {
            routes: spec.routes().iter().map(crate::model::Route::key).collect(),
            messages,
            claims,
        }
    }

    /// Reads the messages this session hears of (see [`View::hears`]) and every claim at one revision; returns it,
    /// with each claim's create revision by task id.
    pub(super) async fn load(
        &mut self,
        inner: &Inner,
    ) -> Result<(i64, HashMap<String, i64>), Fail> {
        let keys = &inner.keys;
        let (claims, revision) = range_prefix(inner, &keys.claims(), 0, true).await?;
        let mut claim_revisions = HashMap::new();
        let mut loaded = HashMap::new();
        for kv in &claims {
            if let Ok(FeedKey::Claim(task_id)) = kv.key_str().map(|k| keys.parse_feed(k)) {
                claim_revisions.insert(task_id.to_owned(), kv.create_revision());
            }
        }
        let (messages, _) = range_prefix(inner, &keys.all_messages(), revision, false).await?;
        for kv in &messages {
            let Ok(FeedKey::Message { route, .. }) = kv.key_str().map(|k| keys.parse_feed(k))
            else {
                continue;
            };
            if let Ok(message) = serde_json::from_slice::<Message>(kv.value())
                && self.hears(route, &message)
            {
                loaded.insert(message.task_id.clone(), (message, kv.mod_revision()));
            }
        }
        *known(&self.messages) = loaded;
        *claimed(&self.claims) = claim_revisions.keys().cloned().collect();
        Ok((revision, claim_revisions))
    }

    /// Whether this session hears of a message on `route` (a route key): it serves the route, or the message has a
    /// deadline (every session hears of those, so that some worker times the task out even when none serves it).
    fn hears(&self, route: &str, message: &Message) -> bool {
        message.deadline.is_some() || self.routes.contains(route)
    }

    pub(super) fn claimable(&self) -> Vec<Message> {
        let claims = claimed(&self.claims);
        known(&self.messages)
            .values()
            .filter(|(m, _)| !claims.contains(&m.task_id))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Applies one watched change; returns what the worker must hear (as the memory backend would say it).
    pub(super) fn apply(
        &mut self,
        inner: &Inner,
        event_type: EventType,
        kv: &etcd_client::KeyValue,
        key: &str,
        out: &mut Vec<FeedEvent>,
    ) {
        let value = kv.value();
        match inner.keys.parse_feed(key) {
            FeedKey::Cancel(task_id) => {
                if event_type == EventType::Put {
                    out.push(FeedEvent::Cancel {
                        task_id: task_id.to_owned(),
                    });
                }
            }
            FeedKey::Claim(task_id) => match event_type {
                EventType::Put => {
                    claimed(&self.claims).insert(task_id.to_owned());
                }
                EventType::Delete => {
                    claimed(&self.claims).remove(task_id);
                    if let Some((message, _)) = known(&self.messages).get(task_id) {
                        out.push(FeedEvent::Upsert(message.clone()));
                    }
                }
            },
            FeedKey::Message { route, task_id } => {
                let message = match event_type {
                    EventType::Put => match serde_json::from_slice::<Message>(value) {
                        Ok(message) => Some(message),
                        Err(_) if self.routes.contains(route) => {
                            tracing::warn!(key, "ignoring a message that does not parse");
                            return;
                        }
                        Err(_) => return,
                    },
                    EventType::Delete => None,
                };
                // A message this session does not hear of is as good as gone (it may have heard of an earlier one).
                let message = message.filter(|message| self.hears(route, message));
                match message {
                    Some(message) => {
                        let old = known(&self.messages)
                            .insert(task_id.to_owned(), (message.clone(), kv.mod_revision()));
                        if old.is_some_and(|(old, _)| old != message) {
                            out.push(FeedEvent::Remove {
                                task_id: task_id.to_owned(),
                            });
                        }
                        if !claimed(&self.claims).contains(task_id) {
                            out.push(FeedEvent::Upsert(message));
                        }
                    }
                    None => {
                        let removed = known(&self.messages).remove(task_id);
                        if removed.is_some() {
                            out.push(FeedEvent::Remove {
                                task_id: task_id.to_owned(),
                            });
                        }
                    }
                }
            }
            FeedKey::Other => {}
        }
    }
}

/// The tasks whose cancellation signal is alive at `revision` and whose claim then (`claims`: create revisions by task
/// id, read at `revision`) was taken before the signal: the runs the signal was meant to stop. (A signal outlives a
/// retry of its task until its lease ends: a run claimed after the signal is a retried one, not to be stopped.)
pub(super) async fn cancelled_at(
    inner: &Inner,
    revision: i64,
    claims: &HashMap<String, i64>,
) -> Result<Vec<String>, Fail> {
    let (signals, _) = range_prefix(inner, &inner.keys.cancels(), revision, true).await?;
    Ok(signals
        .iter()
        .filter_map(|signal| {
            let FeedKey::Cancel(task_id) = inner.keys.parse_feed(signal.key_str().ok()?) else {
                return None;
            };
            let claimed = *claims.get(task_id)?;
            (claimed < signal.mod_revision()).then(|| task_id.to_owned())
        })
        .collect())
}
