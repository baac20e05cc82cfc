//! Contract tests of the etcd backend: create / get / list, commit guards, claim fencing, feed events, lease loss,
//! retention, corrupt documents and an unreachable etcd. Run with `--features etcd`.
#![cfg(feature = "etcd")]

use futures::TryFutureExt;
use std::sync::Arc;
use std::time::Duration;
use taskflow::backend::etcd::{EtcdBackend, EtcdConfig, etcd_client};
use taskflow::backend::{ClaimToken, Commit, Created, FeedEvent, Message, Transition, WorkerSpec};
use taskflow::{
    Backend, BackendError, Route, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskQuery,
    TaskStatus,
};
use taskflow_tests::etcd::{EtcdServer, backend_with, config};
use tokio::sync::mpsc::UnboundedReceiver;

fn task(name: &str, options: TaskOptions, steps: &[(&str, Option<&str>)]) -> Task {
    let info = TaskInfo {
        task_name: name.into(),
        task_type: "contract".into(),
        creator: "tester".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, options);
    for (step, node) in steps {
        let options = StepOptions {
            node: node.map(str::to_owned),
            ..Default::default()
        };
        task.add_step(Step::new(*step, "exec", options));
    }
    task.current_step = task.steps[0].name.clone();
    task
}

fn spec(id: &str, node: &str, queues: &[&str]) -> WorkerSpec {
    WorkerSpec {
        worker_id: id.into(),
        node: node.into(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        executors: vec!["exec".into()],
        callbacks: Vec::new(),
    }
}

/// Stores a one-step task and opens a session serving its queue; asserts that the session's first snapshot holds the
/// task's message, and returns the session, its feed and that message.
async fn serves_a_task(
    backend: &EtcdBackend,
    name: &str,
) -> (
    Arc<dyn taskflow::backend::Session>,
    UnboundedReceiver<FeedEvent>,
    Message,
) {
    let t = task(name, TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(t.clone())).await.unwrap();
    let (session, mut feed) = backend
        .open_session(spec("w", "n", &["default"]))
        .await
        .unwrap();
    let message = Message::of(&t).unwrap();
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::Snapshot(vec![message.clone()])
    );
    (session, feed, message)
}

async fn next(feed: &mut UnboundedReceiver<FeedEvent>) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("no feed event within 10 s")
        .expect("feed closed")
}

async fn quiet(feed: &mut UnboundedReceiver<FeedEvent>) {
    if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
        panic!("unexpected feed event {event:?}");
    }
}

async fn server() -> (EtcdServer, EtcdBackend) {
    backend_with(|c| c.lease_ttl(Duration::from_secs(3))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_guards() {
    let (_server, backend) = server().await;
    let t = task("a", TaskOptions::default(), &[("s1", None), ("s2", None)]);
    let revision = backend
        .create(&Arc::new(t.clone()))
        .await
        .unwrap()
        .revision();
    assert!(matches!(
        backend.create(&Arc::new(t.clone())).await,
        Err(BackendError::AlreadyExists(_))
    ));
    let stored = backend.get(&t.task_id).await.unwrap().unwrap();
    assert_eq!(stored.revision, revision);
    assert_eq!(stored.value, t);
    assert!(backend.get("nope").await.unwrap().is_none());

    // A stale revision is a conflict; the right one applies and returns the new revision.
    let mut next = t.clone();
    next.message = "changed".into();
    let first = Message::of(&t);
    let transition = |expected: u64, task: &Task| Transition {
        task: task.clone().into(),
        expected_revision: expected,
        previous: first.as_ref(),
        claim: None,
        release_claim: false,
        cancel: false,
        use_reserve: false,
    };
    assert_eq!(
        backend
            .commit(&transition(revision + 100, &next))
            .await
            .unwrap(),
        Commit::Conflict
    );
    let Commit::Applied { revision: r2 } =
        backend.commit(&transition(revision, &next)).await.unwrap()
    else {
        panic!("commit rejected")
    };
    assert!(r2 > revision);
    assert_eq!(backend.get(&t.task_id).await.unwrap().unwrap().revision, r2);
    // The same commit again (as after an ambiguous failure) reports the revision it was applied at.
    assert_eq!(
        backend.commit(&transition(revision, &next)).await.unwrap(),
        Commit::Applied { revision: r2 }
    );

    // Oversized documents are refused before anything is sent.
    let mut big = task("big", TaskOptions::default(), &[("s", None)]);
    big.common_params
        .insert("blob".into(), "x".repeat(2 * 1024 * 1024));
    assert!(matches!(
        backend.create(&Arc::new(big.clone())).await,
        Err(BackendError::TooLarge { .. })
    ));
}

/// A create under a taken id is a re-send if the stored document has the new one's dispatch fingerprint, even after the
/// task changed (the guard's failure reads the stored document in the same transaction); anything else is refused. The
/// identical document sent again answers `Stored`: the backend re-sends a create itself when a member fails under it,
/// and that call stored it (so a dispatch during a failover is counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_under_a_taken_id_compares_the_dispatch_fingerprint() {
    let (_server, backend) = server().await;
    let mut t = task("a", TaskOptions::default(), &[("s1", None)]);
    t.dispatch_fingerprint = Some("1".repeat(32).parse().unwrap());
    let created = backend.create(&Arc::new(t.clone())).await.unwrap();
    assert!(matches!(created, Created::Stored { .. }), "{created:?}");
    // The identical document sent again (as the backend does itself when a member fails under the create): the
    // stored document is byte for byte this one, so this call stored it.
    assert_eq!(backend.create(&Arc::new(t.clone())).await.unwrap(), created);
    // The same task with other bytes (another dispatch of it, at another time): a re-send, nothing stored.
    let mut later = t.clone();
    later.last_update = Some(chrono::Utc::now());
    assert_eq!(
        backend.create(&Arc::new(later)).await.unwrap(),
        Created::Existing {
            revision: created.revision()
        }
    );
    let mut changed = t.clone();
    changed.status = TaskStatus::Running;
    let first = Message::of(&t);
    let transition = Transition {
        task: Arc::new(changed),
        expected_revision: created.revision(),
        previous: first.as_ref(),
        claim: None,
        release_claim: false,
        cancel: false,
        use_reserve: false,
    };
    let Commit::Applied { revision } = backend.commit(&transition).await.unwrap() else {
        panic!("commit rejected")
    };

    // The same task sent again: nothing is written, the current revision is returned.
    assert_eq!(
        backend.create(&Arc::new(t.clone())).await.unwrap(),
        Created::Existing { revision }
    );
    let stored = backend.get(&t.task_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.revision, stored.value.status),
        (revision, TaskStatus::Running)
    );

    // Another task under the same id, or one without a fingerprint, is refused.
    for fingerprint in [Some("2".repeat(32).parse().unwrap()), None] {
        let mut other = t.clone();
        other.dispatch_fingerprint = fingerprint;
        assert!(matches!(
            backend.create(&Arc::new(other)).await,
            Err(BackendError::AlreadyExists(id)) if id == t.task_id
        ));
    }
    assert_eq!(
        backend.get(&t.task_id).await.unwrap().unwrap().revision,
        revision
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_claims_fencing_and_cancel() {
    let (_server, backend) = server().await;
    let early = task(
        "early",
        TaskOptions::default(),
        &[("s1", None), ("s2", None)],
    );
    backend.create(&Arc::new(early.clone())).await.unwrap();
    let (w1, mut f1) = backend
        .open_session(spec("w1", "n1", &["default"]))
        .await
        .unwrap();
    let (w2, mut f2) = backend
        .open_session(spec("w2", "n2", &["default"]))
        .await
        .unwrap();
    let m1 = Message::of(&early).unwrap();
    assert_eq!(next(&mut f1).await, FeedEvent::Snapshot(vec![m1.clone()]));
    assert_eq!(next(&mut f2).await, FeedEvent::Snapshot(vec![m1.clone()]));

    // A new task is announced to both.
    let t = task(
        "t",
        TaskOptions::default(),
        &[("s1", None), ("s2", Some("n2"))],
    );
    let r0 = backend
        .create(&Arc::new(t.clone()))
        .await
        .unwrap()
        .revision();
    let m = Message::of(&t).unwrap();
    assert_eq!(next(&mut f1).await, FeedEvent::Upsert(m.clone()));
    assert_eq!(next(&mut f2).await, FeedEvent::Upsert(m.clone()));

    // One claim wins; the other session gets nothing, and nobody hears of the claim.
    let claimed = w1.claim(&m).await.unwrap().expect("first claim");
    assert!(w2.claim(&m).await.unwrap().is_none());
    assert_eq!(claimed.task.as_ref().unwrap().revision, r0);
    quiet(&mut f1).await;

    // Commit the first step under the claim and release it: the message moves to node n2.
    let mut done = t.clone();
    done.steps[0].status = taskflow::StepStatus::Success;
    done.current_step = "s2".into();
    let commit = |task: &Task, expected: u64, token, release| Transition {
        task: task.clone().into(),
        expected_revision: expected,
        previous: Some(&m),
        claim: Some(token),
        release_claim: release,
        cancel: false,
        use_reserve: false,
    };
    // A wrong fence is rejected.
    let wrong = ClaimToken {
        task_id: t.task_id.clone(),
        fence: claimed.token.fence + 1,
    };
    assert_eq!(
        backend
            .commit(&commit(&done, r0, &wrong, true))
            .await
            .unwrap(),
        Commit::Conflict
    );
    let Commit::Applied { revision: r1 } = backend
        .commit(&commit(&done, r0, &claimed.token, true))
        .await
        .unwrap()
    else {
        panic!("commit rejected")
    };
    let m2 = Message::of(&done).unwrap();
    assert_eq!(m2.route, Route::Node("n2".into()));
    assert_eq!(
        next(&mut f1).await,
        FeedEvent::Remove {
            task_id: t.task_id.clone()
        }
    );
    assert_eq!(
        next(&mut f2).await,
        FeedEvent::Remove {
            task_id: t.task_id.clone()
        }
    );
    assert_eq!(next(&mut f2).await, FeedEvent::Upsert(m2.clone()));
    quiet(&mut f1).await;

    // A stale holder (the released token) cannot commit any more.
    let mut late = done.clone();
    late.message = "late".into();
    let stale = Transition {
        previous: Some(&m2),
        ..commit(&late, r1, &claimed.token, true)
    };
    assert_eq!(backend.commit(&stale).await.unwrap(), Commit::Conflict);

    // w2 claims, releases without committing: the message is announced again; a re-claim gets a larger fence.
    let c2 = w2.claim(&m2).await.unwrap().expect("claim on n2");
    assert!(c2.token.fence > claimed.token.fence);
    w2.release(&c2.token).await.unwrap();
    assert_eq!(next(&mut f2).await, FeedEvent::Upsert(m2.clone()));
    let c3 = w2.claim(&m2).await.unwrap().expect("re-claim");
    assert!(c3.token.fence > c2.token.fence);
    let old = Transition {
        previous: Some(&m2),
        ..commit(&late, r1, &c2.token, false)
    };
    assert_eq!(
        backend.commit(&old).await.unwrap(),
        Commit::Conflict,
        "fenced by the newer claim"
    );

    // A client cancel reaches every session; the message is gone.
    let mut revoked = done.clone();
    revoked.status = TaskStatus::Revoked;
    let cancel = Transition {
        task: revoked.into(),
        expected_revision: r1,
        previous: Some(&m2),
        claim: None,
        release_claim: false,
        cancel: true,
        use_reserve: false,
    };
    assert!(matches!(
        backend.commit(&cancel).await.unwrap(),
        Commit::Applied { .. }
    ));
    assert_eq!(
        next(&mut f2).await,
        FeedEvent::Remove {
            task_id: t.task_id.clone()
        }
    );
    assert_eq!(
        next(&mut f2).await,
        FeedEvent::Cancel {
            task_id: t.task_id.clone()
        }
    );
    assert_eq!(
        next(&mut f1).await,
        FeedEvent::Cancel {
            task_id: t.task_id.clone()
        }
    );

    // Closing a session releases its claims at once: the other session hears of the message again.
    let c_early = w1.claim(&m1).await.unwrap().expect("claim early");
    let _ = c_early;
    w1.close().await.unwrap();
    assert_eq!(next(&mut f2).await, FeedEvent::Upsert(m1.clone()));
    assert!(matches!(
        w1.claim(&m1).await,
        Err(BackendError::SessionClosed(_))
    ));
    w2.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_exact_and_nodes_private() {
    let (_server, backend) = server().await;
    let (_a, mut fa) = backend
        .open_session(spec("wa", "node", &["a"]))
        .await
        .unwrap();
    assert_eq!(next(&mut fa).await, FeedEvent::Snapshot(Vec::new()));
    for queue in ["ab", "b", "a"] {
        let options = TaskOptions {
            queue: Some(queue.into()),
            ..Default::default()
        };
        backend
            .create(&Arc::new(task(queue, options, &[("s", None)])))
            .await
            .unwrap();
    }
    let options = TaskOptions {
        node: Some("nodeX".into()),
        ..Default::default()
    };
    backend
        .create(&Arc::new(task("n", options, &[("s", None)])))
        .await
        .unwrap();
    let options = TaskOptions {
        node: Some("node".into()),
        ..Default::default()
    };
    backend
        .create(&Arc::new(task("mine", options, &[("s", None)])))
        .await
        .unwrap();
    let FeedEvent::Upsert(first) = next(&mut fa).await else {
        panic!("expected an upsert")
    };
    assert_eq!(first.route, Route::Queue("a".into()));
    let FeedEvent::Upsert(second) = next(&mut fa).await else {
        panic!("expected an upsert")
    };
    assert_eq!(second.route, Route::Node("node".into()));
    quiet(&mut fa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lease_is_reported_and_the_session_recovers() {
    let (_server, backend) = server().await;
    let t = task("t", TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(t.clone())).await.unwrap();
    let m = Message::of(&t).unwrap();
    let (w, mut feed) = backend
        .open_session(spec("lost", "n", &["default"]))
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, FeedEvent::Snapshot(vec![m.clone()]));
    let claimed = w.claim(&m).await.unwrap().unwrap();
    // Revoke the session's lease behind its back (as if it expired).
    let mut client = backend.client();
    let worker = client
        .get(backend.keys().worker("lost"), None)
        .await
        .unwrap();
    let lease = worker.kvs()[0].lease();
    client.lease_revoke(lease).await.unwrap();
    // The claim dies with the lease (its message may be announced again), the loss is reported, and the session
    // registers again and resyncs: the message is claimable again.
    let mut lost = None;
    loop {
        match next(&mut feed).await {
            FeedEvent::Lost(reason) => lost = Some(reason),
            FeedEvent::Snapshot(messages) if lost.is_some() => {
                assert_eq!(messages, vec![m.clone()]);
                break;
            }
            FeedEvent::Upsert(message) if message == m => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(lost.unwrap().contains("lease"));
    let mut done = t.clone();
    done.message = "late".into();
    let late = Transition {
        task: done.into(),
        expected_revision: claimed.task.as_ref().unwrap().revision,
        previous: Some(&m),
        claim: Some(&claimed.token),
        release_claim: true,
        cancel: false,
        use_reserve: false,
    };
    assert_eq!(
        backend.commit(&late).await.unwrap(),
        Commit::Conflict,
        "the lost claim fences the late commit"
    );
    let again = w
        .claim(&m)
        .await
        .unwrap()
        .expect("claim with the new lease");
    assert!(again.token.fence > claimed.token.fence);
    assert!(
        backend
            .workers()
            .await
            .unwrap()
            .iter()
            .any(|s| s.worker_id == "lost")
    );
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_documents() {
    let (_server, backend) = server().await;
    let t = task("t", TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(t.clone())).await.unwrap();
    let mut client = backend.client();
    client
        .put(backend.keys().task(&t.task_id), "{ not json", None)
        .await
        .unwrap();
    assert!(matches!(
        backend.get(&t.task_id).await,
        Err(BackendError::Corrupt { .. })
    ));
    let (w, mut feed) = backend
        .open_session(spec("w", "n", &["default"]))
        .await
        .unwrap();
    let FeedEvent::Snapshot(messages) = next(&mut feed).await else {
        panic!("expected a snapshot")
    };
    let claimed = w.claim(&messages[0]).await.unwrap().unwrap();
    let corrupt = claimed.task.expect_err("the document does not parse");
    assert_eq!(corrupt.raw, "{ not json");
    w.close().await.unwrap();
}

/// A message whose task document does not exist (e.g. the document deleted by hand) is deleted, once, by the worker
/// that tries to claim it. (It was claimed and released in a hot loop: each release announced the message again,
/// about 1000 etcd writes a second, forever.) The window ends with events: the message's deletion, then the end of a
/// task served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_its_document_is_deleted_not_claimed_in_a_loop() {
    let (_server, backend) = server().await;
    let ghost = task("ghost", TaskOptions::default(), &[("s", None)]);
    let message = Message::of(&ghost).unwrap();
    let message_key = backend.keys().message(&message.route, &ghost.task_id);
    let claim_key = backend.keys().claim(&ghost.task_id);
    let mut client = backend.client();
    let put = client
        .put(
            message_key.clone(),
            serde_json::to_vec(&message).unwrap(),
            None,
        )
        .await
        .unwrap();
    // Every message and claim change from then on.
    let (start, end) = backend.keys().feed_range();
    let options = etcd_client::WatchOptions::new()
        .with_range(end)
        .with_start_revision(put.header().unwrap().revision() + 1);
    let mut changes = client.watch(start, Some(options)).await.unwrap();
    let engine = taskflow::Engine::builder()
        .backend(backend.clone())
        .without_inventory()
        .step(taskflow::step_fn("exec", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();

    let mut ghost_claims = 0;
    let deleted = async {
        loop {
            let response = changes.message().await.unwrap().expect("the watch goes on");
            for event in response.events() {
                let kv = event.kv().expect("an event has a key");
                let put = event.event_type() == etcd_client::EventType::Put;
                if kv.key() == claim_key.as_bytes() && put {
                    ghost_claims += 1;
                    assert!(
                        ghost_claims <= 1,
                        "claimed {ghost_claims} times, the message still there"
                    );
                }
                if kv.key() == message_key.as_bytes() {
                    assert!(!put, "the message was written again");
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), deleted)
        .await
        .expect("the message without a document is deleted");

    // Nothing more happens to it while the worker serves another task, to its end.
    let served = task("served", TaskOptions::default(), &[("s", None)]);
    let served_message = Message::of(&served).unwrap();
    let served_key = backend
        .keys()
        .message(&served_message.route, &served.task_id);
    let id = engine.dispatch(served).await.unwrap();
    let ended = async {
        loop {
            let response = changes.message().await.unwrap().expect("the watch goes on");
            for event in response.events() {
                let kv = event.kv().expect("an event has a key");
                assert!(
                    kv.key() != message_key.as_bytes() && kv.key() != claim_key.as_bytes(),
                    "the missing task's keys changed again: {event:?}"
                );
                if kv.key() == served_key.as_bytes()
                    && event.event_type() == etcd_client::EventType::Delete
                {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the served task ends");
    let done = engine.wait(&id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert!(backend.get(&ghost.task_id).await.unwrap().is_none());
    worker.shutdown().await;
}

/// The contract of the case above: a claim of a message whose document does not exist claims nothing and deletes the
/// message (the feed says `Remove`); a task created under that id afterwards is claimed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_a_message_without_its_document_deletes_it() {
    let (_server, backend) = server().await;
    let ghost = task("ghost", TaskOptions::default(), &[("s", None)]);
    let message = Message::of(&ghost).unwrap();
    let message_key = backend.keys().message(&message.route, &ghost.task_id);
    let json = serde_json::to_vec(&message).unwrap();
    backend
        .client()
        .put(message_key.clone(), json, None)
        .await
        .unwrap();
    let (w, mut feed) = backend
        .open_session(spec("w", "n", &["default"]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::Snapshot(vec![message.clone()])
    );
    assert!(w.claim(&message).await.unwrap().is_none());
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::Remove {
            task_id: ghost.task_id.clone()
        }
    );
    let left = backend.client().get(message_key, None).await.unwrap();
    assert!(left.kvs().is_empty(), "the message is deleted");

    backend.create(&Arc::new(ghost.clone())).await.unwrap();
    assert_eq!(next(&mut feed).await, FeedEvent::Upsert(message.clone()));
    let claimed = w.claim(&message).await.unwrap().expect("claimed");
    assert_eq!(claimed.task.unwrap().value.task_id, ghost.task_id);
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_wait_change() {
    let (_server, backend) = server().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut t = created_at(
            task(&format!("t{i:02}"), TaskOptions::default(), &[("s", None)]),
            i,
        );
        t.task_index = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        backend.create(&Arc::new(t.clone())).await.unwrap();
        ids.push(t.task_id.clone());
    }
    let page = backend
        .list(&TaskQuery::default().index("even").page(2, 5))
        .await
        .unwrap();
    assert_eq!(page.total, 13);
    let names: Vec<_> = page.items.iter().map(|t| t.task_name.clone()).collect();
    assert_eq!(names, ["t20", "t18", "t16", "t14", "t12"]);
    let all = backend
        .list(
            &TaskQuery::default()
                .status(TaskStatus::Initializing)
                .page(0, 100),
        )
        .await
        .unwrap();
    assert_eq!(all.total, 25);
    assert_eq!(
        backend
            .list(&TaskQuery::default().status(TaskStatus::Success))
            .await
            .unwrap()
            .total,
        0
    );

    // wait_change wakes on the next commit.
    let stored = backend.get(&ids[0]).await.unwrap().unwrap();
    let waiter = {
        let backend = backend.clone();
        let id = ids[0].clone();
        tokio::spawn(async move { backend.wait_change(&id, stored.revision).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut done = stored.value.clone();
    done.status = TaskStatus::Success;
    let previous = Message::of(&stored.value);
    let transition = Transition {
        previous: previous.as_ref(),
        task: done.into(),
        expected_revision: stored.revision,
        claim: None,
        release_claim: false,
        cancel: false,
        use_reserve: false,
    };
    let Commit::Applied { revision } = backend.commit(&transition).await.unwrap() else {
        panic!("rejected")
    };
    let changed = waiter.await.unwrap().unwrap().unwrap();
    assert_eq!(changed.revision, revision);
    // The summary followed the status.
    let success = backend
        .list(&TaskQuery::default().status(TaskStatus::Success))
        .await
        .unwrap();
    assert_eq!(success.total, 1);
    assert_eq!(success.items[0].task_id, ids[0]);
}

/// The task created `i` seconds after a fixed time (chrono is not a dependency of the tests package).
fn created_at(task: Task, i: u32) -> Task {
    let mut value = serde_json::to_value(&task).unwrap();
    value["createdAt"] = serde_json::json!(format!("2026-01-01T00:00:{i:02}Z"));
    serde_json::from_value(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_tasks_are_deleted_after_the_retention_by_an_elected_worker() {
    let (_server, backend) = backend_with(|c| {
        c.retention(Some(Duration::from_secs(1)))
            .retention_interval(Duration::from_millis(200))
    })
    .await;
    let ended = |name: &str| {
        let mut t = task(name, TaskOptions::default(), &[("s", None)]);
        t.status = TaskStatus::Success;
        t.steps[0].status = taskflow::StepStatus::Success;
        // Ended "now": the end time comes from the document's JSON (chrono is not a dependency here).
        let mut value = serde_json::to_value(&t).unwrap();
        value["end"] = value["createdAt"].clone();
        serde_json::from_value::<Task>(value).unwrap()
    };
    let old = ended("old");
    backend.create(&Arc::new(old.clone())).await.unwrap();
    let running = task("running", TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(running.clone())).await.unwrap();
    let summary = backend.keys().summary(&old.task_id);
    let mut client = backend.client();
    assert_eq!(
        client.get(summary.clone(), None).await.unwrap().kvs().len(),
        1
    );
    // Two sessions: one of them is elected and deletes the expired task.
    let (a, _fa) = backend
        .open_session(spec("a", "n", &["default"]))
        .await
        .unwrap();
    let (b, _fb) = backend
        .open_session(spec("b", "n", &["default"]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while backend.get(&old.task_id).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the expired task was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client.get(summary, None).await.unwrap().kvs().is_empty(),
        "its summary is gone too"
    );
    assert!(
        backend.get(&running.task_id).await.unwrap().is_some(),
        "a running task is kept"
    );
    let leader = client
        .get(backend.keys().retention_leader(), None)
        .await
        .unwrap();
    let leader = leader.kvs()[0].value_str().unwrap().to_owned();
    assert!(leader == "a" || leader == "b", "{leader}");
    // A task that ends now is kept until its retention passed.
    let fresh = ended("fresh");
    backend.create(&Arc::new(fresh.clone())).await.unwrap();
    assert_eq!(backend.purge_expired().await.unwrap(), 0);
    assert!(backend.get(&fresh.task_id).await.unwrap().is_some());
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A server and backend for [`change_in_a_compacted_gap`]: sessions wait 3 s to reconnect a broken watch (and keep
/// their leases meanwhile).
async fn gap_server() -> (EtcdServer, EtcdBackend) {
    backend_with(|c| {
        c.lease_ttl(Duration::from_secs(30))
            .reconnect_delay(Duration::from_secs(3))
    })
    .await
}

/// Restarts etcd under the sessions (their watches break) and, while they wait to reconnect, makes `change` (retried
/// until etcd is back) and compacts the store past it: no session can resume its watch from where it was.
async fn change_in_a_compacted_gap<F, Fut>(
    server: &mut EtcdServer,
    backend: &EtcdBackend,
    mut change: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), BackendError>>,
{
    server.restart();
    let started = std::time::Instant::now();
    while let Err(e) = change().await {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "etcd did not come back: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = backend.client();
    let revision = client
        .put(backend.keys().root().to_owned() + "/unrelated", "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client.compact(revision, None).await.unwrap();
}

/// The retention cleaner reads its entries in pages from the oldest, past those it must keep: more than a page of
/// ended tasks whose callback has still to run (its workers are down) does not keep later tasks forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_kept_for_their_callback_do_not_hold_up_the_retention_of_others() {
    let (_server, backend) = backend_with(|c| {
        c.retention(Some(Duration::from_millis(1)))
            .retention_interval(Duration::from_millis(100))
    })
    .await;
    let ended_at = |end: chrono::DateTime<chrono::Utc>, callback: Option<&str>| {
        let options = TaskOptions {
            callback: callback.map(str::to_owned),
            ..Default::default()
        };
        let mut t = task("ended", options, &[("s", None)]);
        t.status = TaskStatus::Revoked;
        t.end = Some(end);
        t
    };
    let long_ago = chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(10_000);
    let waiting: Vec<Arc<Task>> = (0..300)
        .map(|_| Arc::new(ended_at(long_ago, Some("cb"))))
        .collect();
    let created = waiting.iter().map(|t| backend.create(t).map_ok(drop));
    futures::future::try_join_all(created).await.unwrap();
    let settled = ended_at(long_ago + chrono::Duration::seconds(1), None);
    let revision = backend
        .create(&Arc::new(settled.clone()))
        .await
        .unwrap()
        .revision();
    let (session, _feed) = backend
        .open_session(spec("w", "n", &["default"]))
        .await
        .unwrap();
    let gone = tokio::time::timeout(
        Duration::from_secs(30),
        backend.wait_change(&settled.task_id, revision),
    )
    .await
    .expect("the settled task is deleted")
    .unwrap();
    assert_eq!(gone, None);
    for t in &waiting {
        assert!(
            backend.get(&t.task_id).await.unwrap().is_some(),
            "a task whose callback has still to run is kept"
        );
    }
    session.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_behind_a_compaction_resyncs_with_a_snapshot() {
    let (mut server, backend) = gap_server().await;
    let (w, mut feed, m1) = serves_a_task(&backend, "first").await;
    let second = task("second", TaskOptions::default(), &[("s", None)]);
    change_in_a_compacted_gap(&mut server, &backend, || async {
        backend.create(&Arc::new(second.clone())).await.map(drop)
    })
    .await;
    let m2 = Message::of(&second).unwrap();
    match next(&mut feed).await {
        FeedEvent::Snapshot(mut messages) => {
            messages.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            let mut expected = vec![m1, m2];
            expected.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            assert_eq!(messages, expected);
        }
        other => panic!("expected a snapshot after the compaction, got {other:?}"),
    }
    w.close().await.unwrap();
}

/// A cancel whose watch event a session missed (compacted away while its watch was down) still reaches it: after the
/// snapshot, the resync sends the live cancellation signals of the runs claimed before them, so the step of a cancelled
/// run stops, even when its task was retried meanwhile. A run claimed after the signal (a retried task's) is left
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_missed_in_a_compacted_gap_still_reaches_the_session() {
    let (mut server, backend) = gap_server().await;
    let (w, mut feed, running) = serves_a_task(&backend, "running").await;
    let _running = w.claim(&running).await.unwrap().expect("claimed");
    // Claimed now; cancelled and retried in the gap.
    let rerun = task("rerun", TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(rerun.clone())).await.unwrap();
    let rerun_message = Message::of(&rerun).unwrap();
    assert_eq!(
        next(&mut feed).await,
        FeedEvent::Upsert(rerun_message.clone())
    );
    let _rerun = w.claim(&rerun_message).await.unwrap().expect("claimed");
    // Cancelled and retried before the gap, then claimed: its run is not the cancelled one.
    let retried = task("retried", TaskOptions::default(), &[("s", None)]);
    backend.create(&Arc::new(retried.clone())).await.unwrap();
    revoke(&backend, &retried.task_id).await.unwrap();
    requeue(&backend, &retried).await.unwrap();
    let retried_message = Message::of(&retried).unwrap();
    let mut cancel_heard = false;
    loop {
        match next(&mut feed).await {
            FeedEvent::Cancel { task_id } if task_id == retried.task_id => cancel_heard = true,
            FeedEvent::Upsert(message) if cancel_heard && message == retried_message => break,
            _ => {}
        }
    }
    let _retried = w.claim(&retried_message).await.unwrap().expect("claimed");
    change_in_a_compacted_gap(&mut server, &backend, || async {
        backend.get(&running.task_id).await?;
        revoke(&backend, &running.task_id).await.unwrap();
        revoke(&backend, &rerun.task_id).await.unwrap();
        requeue(&backend, &rerun).await.unwrap();
        Ok(())
    })
    .await;
    let after_the_gap = loop {
        match next(&mut feed).await {
            FeedEvent::Snapshot(messages) => break messages,
            _ => continue,
        }
    };
    assert_eq!(after_the_gap, Vec::new(), "every message is claimed");
    let mut cancels = vec![next(&mut feed).await, next(&mut feed).await];
    cancels.sort_by_key(|event| format!("{event:?}"));
    let mut expected = [&running.task_id, &rerun.task_id].map(|task_id| FeedEvent::Cancel {
        task_id: task_id.clone(),
    });
    expected.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(cancels, expected);
    quiet(&mut feed).await;
    w.close().await.unwrap();
}

/// Queues a task again from its first state, as a client's retry does.
async fn requeue(backend: &EtcdBackend, task: &Task) -> Result<(), BackendError> {
    let stored = backend
        .get(&task.task_id)
        .await?
        .expect("the task is stored");
    let retry = Transition {
        task: Arc::new(task.clone()),
        expected_revision: stored.revision,
        previous: None,
        claim: None,
        release_claim: false,
        cancel: false,
        use_reserve: false,
    };
    match backend.commit(&retry).await? {
        Commit::Applied { .. } => Ok(()),
        Commit::Conflict => panic!("nothing else changes the task"),
    }
}

/// Cancels a task as a client does: REVOKED, its message dropped, a cancellation signal to the workers.
async fn revoke(backend: &EtcdBackend, task_id: &str) -> Result<(), BackendError> {
    let stored = backend.get(task_id).await?.expect("the task is stored");
    let mut revoked = stored.value.clone();
    revoked.status = TaskStatus::Revoked;
    let previous = Message::of(&stored.value);
    let cancel = Transition {
        task: Arc::new(revoked),
        expected_revision: stored.revision,
        previous: previous.as_ref(),
        claim: None,
        release_claim: false,
        cancel: true,
        use_reserve: false,
    };
    match backend.commit(&cancel).await? {
        Commit::Applied { .. } => Ok(()),
        Commit::Conflict => panic!("nothing else changes the task"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_a_clear_error_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let result = taskflow::backend::etcd::EtcdConfig::new([format!("http://127.0.0.1:{port}")])
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await;
    match result {
        Err(BackendError::Unavailable { reason, source }) => {
            assert!(reason.contains("cannot reach etcd"), "{reason}");
            assert!(reason.contains(&port.to_string()), "{reason}");
            // The client's error stays reachable (e.g. for `anyhow`'s chain or a downcast).
            let source = source.expect("the etcd-client error is kept as the source");
            assert!(
                source.downcast_ref::<etcd_client::Error>().is_some(),
                "{source:?}"
            );
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_authentication() {
    let (_server, backend) = server().await;
    let mut admin = backend.client();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let endpoint = backend.config().get_endpoints()[0].clone();
    let prefix = backend.config().get_prefix().to_owned();
    let config = || EtcdConfig::new([endpoint.clone()]).prefix(prefix.clone());
    // Without credentials etcd refuses the requests; with them everything works, the feed included.
    assert!(config().connect().await.is_err());
    let authed = config().user("root", "rootpw").connect().await.unwrap();
    let (w, _feed, message) = serves_a_task(&authed, "auth").await;
    let claimed = w.claim(&message).await.unwrap();
    assert!(claimed.is_some());
    w.close().await.unwrap();
}

/// A user whose role may only read and write the backend's namespace connects and serves a task (no read outside the
/// namespace: etcd 3.6 also refuses such a user the maintenance status, which the search for the leader then does
/// without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_the_namespace_connects_and_serves_a_task() {
    use etcd_client::Permission;
    let (_server, backend) = server().await;
    let root = backend.keys().root().to_owned();
    let mut admin = backend.client();
    admin.role_add("app").await.unwrap();
    let namespace = Permission::read_write(format!("{root}/")).with_range_end(format!("{root}0"));
    admin.role_grant_permission("app", namespace).await.unwrap();
    admin.user_add("app", "apppw", None).await.unwrap();
    admin.user_grant_role("app", "app").await.unwrap();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let endpoint = backend.config().get_endpoints()[0].clone();
    let config = EtcdConfig::new([endpoint]).prefix(backend.config().get_prefix());
    let app = config.user("app", "apppw").connect().await.unwrap();
    let (w, _feed, message) = serves_a_task(&app, "limited").await;
    assert!(w.claim(&message).await.unwrap().is_some());
    w.close().await.unwrap();
}

/// Closing a session whose lease etcd no longer knows (revoked by an attempt whose answer was lost, or expired) is a
/// success: the lease is gone either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_whose_lease_is_gone_succeeds() {
    let (_server, backend) = server().await;
    let (w, _feed, _) = serves_a_task(&backend, "gone").await;
    let mut client = backend.client();
    let registration = client.get(backend.keys().worker("w"), None).await.unwrap();
    let lease = registration.kvs()[0].lease();
    client.lease_revoke(lease).await.unwrap();
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_are_claimed_and_committed_in_batches() {
    let (_server, backend) = server().await;
    let noop = taskflow::step_fn("exec", |_ctx| async { Ok(()) });
    let engine = taskflow::Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(noop)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut t = task(
            &format!("big{i}"),
            TaskOptions::default(),
            &[("s1", None), ("s2", None)],
        );
        t.common_params
            .insert("blob".into(), "x".repeat(1024 * 1024));
        ids.push(engine.dispatch(t).await.unwrap());
    }
    // Twelve 1 MiB documents claimed at once: the batched answers are far above tonic's 4 MiB default.
    let worker = engine.worker().concurrency(64).start().await.unwrap();
    for id in &ids {
        let done = engine
            .wait_timeout(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    }
    let page = engine
        .list(&TaskQuery::default().page(0, 100))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 12);
    worker.shutdown().await;
}

#[cfg(feature = "etcd-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls() {
    use taskflow::backend::etcd::etcd_client::{Certificate, TlsOptions};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcd_tls");
    let server = EtcdServer::start_tls(fixtures.join("server.pem"), fixtures.join("server.key"));
    assert!(server.endpoint().starts_with("https://"));
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    let backend = taskflow_tests::etcd::config(&server)
        .tls(tls)
        .connect()
        .await
        .unwrap();
    let (w, _feed, _) = serves_a_task(&backend, "tls").await;
    w.close().await.unwrap();
    // Without TLS the server does not answer.
    let plain = EtcdConfig::new([server.endpoint().replace("https://", "http://")])
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await;
    assert!(plain.is_err());
}

/// A lease TTL under etcd's minimum is refused on every way of connecting (review finding: `EtcdBackend::connect`
/// skipped the check, and a TTL under 1 s made the session count its lease lost right after every registration, a
/// hot loop of grants and revokes), before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ttl_under_the_minimum_is_refused_on_every_connect() {
    let etcd = EtcdServer::start();
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(900),
        Duration::from_millis(1_900),
    ] {
        let short = || config(&etcd).lease_ttl(ttl);
        for result in [short().connect().await, EtcdBackend::connect(short()).await] {
            match result {
                Err(BackendError::Other(reason)) => {
                    assert!(reason.contains("lease TTL"), "{reason}")
                }
                Err(other) => panic!("unexpected error {other}"),
                Ok(_) => panic!("a lease TTL of {ttl:?} was accepted"),
            }
        }
    }
}
