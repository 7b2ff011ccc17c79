//! The storage seam on both engines: each test runs on a fresh SQLite file
//! and, when PostgreSQL is available, on a fresh PostgreSQL database.

use api::Store;
use api::store::{Applied, Cancelled, DeadLetter, JobRow, ModelRow};
use scheduler::report::QuoteDoc;
use scheduler::{JobFailure, Lane, ResultEvent, ResultMessage, Stage};

use crate::services;

/// Runs `check` against each engine available.
async fn on_each_engine<F: AsyncFn(Store)>(check: F) {
    on_each_engine_with(2, check).await;
}

/// As `on_each_engine`, with a pool of `connections` (for checks that race
/// transactions against each other).
async fn on_each_engine_with<F: AsyncFn(Store)>(connections: u32, check: F) {
    let dir = tempfile::tempdir().unwrap();
    check(Store::connect(&Store::sqlite_url(dir.path()), connections).await.unwrap()).await;
    if let Some(url) = services::fresh_postgres_database().await {
        check(Store::connect(&url, connections).await.unwrap()).await;
    }
}

async fn seed_job(store: &Store, job_id: &str) {
    store.insert_model(&crate::helpers::model_row("m1", 684)).await.unwrap();
    let job = JobRow::queued(job_id.into(), "m1".into(), "pla".into(), 1, Lane::Fast, 10);
    store.create_job(&job, &format!("{{\"job_id\":\"{job_id}\"}}")).await.unwrap();
}

fn sample_quote() -> QuoteDoc {
    let bytes = mesh::write_binary_stl(&mesh::cuboid([10.0; 3]));
    let request = calculator::QuoteRequest::new("pla", 1);
    scheduler::Pricing::default().price_bytes(&bytes, &request, mesh::AnalysisOptions::default()).unwrap()
}

fn started() -> ResultEvent {
    started_by("w1")
}

fn started_by(worker: &str) -> ResultEvent {
    ResultEvent::Started { worker: worker.into(), deliveries: 0, claim: false }
}

fn progress_of(worker: &str) -> ResultEvent {
    ResultEvent::Progress { stage: Stage::Slicing, percent: 50, worker: worker.into() }
}

/// How long a runner may be silent before another worker may take its job.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Publishes every unsent outbox row, as the relay would.
async fn relay_all(store: &Store, at_ms: i64) -> Vec<String> {
    let mut batch = store.claim_outbox(100).await.unwrap();
    let rows = std::mem::take(&mut batch.rows);
    for row in &rows {
        batch.mark_sent(row.id, at_ms).await.unwrap();
    }
    batch.commit().await.unwrap();
    rows.into_iter().map(|r| r.destination).collect()
}

#[tokio::test]
async fn a_model_is_stored_once() {
    on_each_engine(async |store: Store| {
        let model = ModelRow {
            model_id: "abc".into(),
            size_bytes: 1,
            triangles: 1,
            format: "ascii".into(),
            created_at_ms: 5,
            owner: None,
            uploader_key_id: None,
        };
        assert!(store.insert_model(&model).await.unwrap());
        assert!(!store.insert_model(&model).await.unwrap());
        assert_eq!(store.model("abc").await.unwrap(), Some(model));
        assert_eq!(store.model("nope").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_job_and_its_outbox_row_are_written_together_and_relayed_once() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j1").await;
        assert_eq!(store.outbox_backlog(15).await.unwrap(), (1, 5), "one row, 5 ms old");

        // A relay that dies before committing (the batch is dropped) leaves
        // the row unsent: a crash between the commit and the publish loses
        // nothing.
        let batch = store.claim_outbox(10).await.unwrap();
        assert_eq!(batch.rows.len(), 1);
        drop(batch);
        assert_eq!(store.outbox_backlog(15).await.unwrap().0, 1);

        // The dropped transaction rolls back asynchronously, and on
        // PostgreSQL its row lock (which SKIP LOCKED honours) lasts until
        // then: wait for the row to be claimable again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut batch = loop {
            let batch = store.claim_outbox(10).await.unwrap();
            if !batch.rows.is_empty() {
                break batch;
            }
            drop(batch);
            assert!(std::time::Instant::now() < deadline, "the abandoned claim never released its row");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let row = batch.rows[0].clone();
        assert_eq!((row.destination.as_str(), row.payload.as_str()), ("jobs.fast", "{\"job_id\":\"j1\"}"));
        batch.mark_sent(row.id, 20).await.unwrap();
        batch.commit().await.unwrap();
        assert_eq!(store.outbox_backlog(30).await.unwrap(), (0, 0));
        assert!(store.claim_outbox(10).await.unwrap().rows.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_job_has_one_runner_until_it_goes_silent() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "r1").await;
        let event = |event: ResultEvent, at_ms: i64| ResultMessage { job_id: "r1".into(), event, at_ms };
        let stale_ms = STALE_AFTER.as_millis() as i64;
        assert_eq!(store.apply_result(&event(started_by("a"), 1_000), STALE_AFTER).await.unwrap(), Applied::Changed);
        assert_eq!(store.apply_result(&event(progress_of("a"), 5_000), STALE_AFTER).await.unwrap(), Applied::Changed);
        // A redelivery to b while a still reports: b waits, nothing changes.
        let b_starts = |at_ms| event(started_by("b"), at_ms);
        let waits = Applied::RunningElsewhere { runner: "a".into() };
        assert_eq!(store.apply_result(&b_starts(5_000 + stale_ms), STALE_AFTER).await.unwrap(), waits);
        let job = store.job("r1").await.unwrap().unwrap();
        assert_eq!((job.worker.as_deref(), job.deliveries, job.heartbeat_at_ms), (Some("a"), 1, Some(5_000)));
        // b's own progress (it had begun before it was told) keeps nobody alive.
        let b_progress = event(progress_of("b"), 6_000);
        let not_b = Applied::NotTheRunner { runner: "a".into() };
        assert_eq!(store.apply_result(&b_progress, STALE_AFTER).await.unwrap(), not_b);
        // Once a is silent past the limit, b takes the job over.
        let later = 5_001 + stale_ms;
        assert_eq!(store.apply_result(&b_starts(later), STALE_AFTER).await.unwrap(), Applied::StartedAgain);
        let job = store.job("r1").await.unwrap().unwrap();
        assert_eq!((job.worker.as_deref(), job.deliveries, job.heartbeat_at_ms), (Some("b"), 2, Some(later)));
        // a comes back: it is told that it is no longer the runner.
        let a_progress = event(progress_of("a"), later + 1);
        assert_eq!(
            store.apply_result(&a_progress, STALE_AFTER).await.unwrap(),
            Applied::NotTheRunner { runner: "b".into() }
        );
        assert_eq!(store.job_events("r1").await.unwrap(), vec!["queued", "started", "started"]);
        // Its result, in; a worker still at it is told to stop.
        seed_job(&store, "r2").await;
        let r2 = |event: ResultEvent, at_ms: i64| ResultMessage { job_id: "r2".into(), event, at_ms };
        store.apply_result(&r2(started_by("a"), 1), STALE_AFTER).await.unwrap();
        let failed = r2(ResultEvent::Failed { error: JobFailure::new(scheduler::FailureKind::Internal, "x") }, 2);
        assert_eq!(store.apply_result(&failed, STALE_AFTER).await.unwrap(), Applied::Changed);
        assert_eq!(store.apply_result(&r2(progress_of("b"), 3), STALE_AFTER).await.unwrap(), Applied::ProgressAfterEnd);
        // A runner that hands the job back lets the next take it at once.
        let released = event(ResultEvent::Released { worker: "b".into() }, later + 1);
        assert_eq!(store.apply_result(&released, STALE_AFTER).await.unwrap(), Applied::Changed);
        assert_eq!(
            store.apply_result(&event(started_by("d"), later + 1), STALE_AFTER).await.unwrap(),
            Applied::StartedAgain
        );
        // The in-process queue's restart forgets the runner with the process
        // it was in: the next start takes over at once.
        relay_all(&store, later + 2).await;
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 10, later + 2).await.unwrap(), (1, 0));
        assert_eq!(
            store.apply_result(&event(started_by("c"), later + 3), STALE_AFTER).await.unwrap(),
            Applied::StartedAgain
        );
    })
    .await;
}

#[tokio::test]
async fn results_apply_once_and_never_move_a_job_backwards() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j2").await;
        let event = |event: ResultEvent, at_ms: i64| ResultMessage { job_id: "j2".into(), event, at_ms };
        let quote = sample_quote();
        assert_eq!(store.apply_result(&event(started(), 11), STALE_AFTER).await.unwrap(), Applied::Changed);
        let progress = event(ResultEvent::Progress { stage: Stage::Slicing, percent: 80, worker: String::new() }, 12);
        assert_eq!(store.apply_result(&progress, STALE_AFTER).await.unwrap(), Applied::Changed);
        let job = store.job("j2").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.stage.as_deref(), job.percent), ("running", Some("slicing"), Some(80)));
        assert_eq!((job.heartbeat_at_ms, job.deliveries, job.worker.as_deref()), (Some(12), 1, Some("w1")));
        // A late heartbeat does not move the clock back.
        let late = event(ResultEvent::Progress { stage: Stage::Parsing, percent: 20, worker: String::new() }, 11);
        assert_eq!(store.apply_result(&late, STALE_AFTER).await.unwrap(), Applied::Stale);
        // The runner's own start again (an answer it did not get) changes nothing.
        assert_eq!(store.apply_result(&event(started(), 12), STALE_AFTER).await.unwrap(), Applied::Changed);

        let key = Some("v1|model|pla|1".to_string());
        let done = event(ResultEvent::Succeeded { quote: Box::new(quote.clone()), quote_key: key }, 13);
        assert_eq!(store.apply_result(&done, STALE_AFTER).await.unwrap(), Applied::Changed);
        // Redelivered and late events are stale.
        assert_eq!(store.apply_result(&done, STALE_AFTER).await.unwrap(), Applied::Stale);
        assert_eq!(
            store.apply_result(&event(started(), 14), STALE_AFTER).await.unwrap(),
            Applied::StartedFinished,
            "its worker must be told to give it up"
        );
        let failed =
            event(ResultEvent::Failed { error: JobFailure::new(scheduler::FailureKind::Internal, "late") }, 15);
        assert_eq!(store.apply_result(&failed, STALE_AFTER).await.unwrap(), Applied::Stale);
        assert_eq!(store.apply_result(&progress, STALE_AFTER).await.unwrap(), Applied::Stale);

        let job = store.job("j2").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.updated_at_ms, job.error), ("succeeded", 13, None));
        assert_eq!((job.started_at_ms, job.finished_at_ms, job.stage), (Some(11), Some(13), None));
        let stored: QuoteDoc = serde_json::from_str(job.quote.as_deref().unwrap()).unwrap();
        assert_eq!(stored, quote);
        // One effect per change: the duplicates and the runner's second word
        // left no trace (a start by another worker would be a row of its own).
        assert_eq!(store.job_events("j2").await.unwrap(), vec!["queued", "started", "succeeded"]);
        // The succeeded job's quote now answers its key, and only its key.
        assert_eq!(store.cached_quote("v1|model|pla|1").await.unwrap(), job.quote);
        assert_eq!(store.cached_quote("v2|model|pla|1").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_job_answered_from_the_cache_is_succeeded_and_queues_nothing() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j4").await;
        relay_all(&store, 2).await;
        let mut job = store.job("j4").await.unwrap().unwrap();
        job.job_id = "j5".into();
        store.create_answered_job(&job, "{\"total\":1}", "key").await.unwrap();
        let answered = store.job("j5").await.unwrap().unwrap();
        assert_eq!((answered.status.as_str(), answered.quote.as_deref()), ("succeeded", Some("{\"total\":1}")));
        assert_eq!(store.outbox_backlog(3).await.unwrap().0, 0, "a cached answer publishes nothing");
        assert_eq!(store.cached_quote("key").await.unwrap().as_deref(), Some("{\"total\":1}"));
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_queued_job_drops_its_unsent_row_and_a_relayed_one_tells_the_workers() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "c1").await;
        assert_eq!(store.cancel_job("c1", "{}", 20).await.unwrap(), Cancelled::Now { was: "queued".into() });
        assert!(relay_all(&store, 21).await.is_empty(), "the job never reaches a worker, so nothing is said");

        seed_job(&store, "c2").await;
        relay_all(&store, 21).await;
        store
            .apply_result(&ResultMessage { job_id: "c2".into(), event: started(), at_ms: 22 }, STALE_AFTER)
            .await
            .unwrap();
        assert_eq!(store.cancel_job("c2", "{}", 23).await.unwrap(), Cancelled::Now { was: "running".into() });
        assert_eq!(relay_all(&store, 24).await, vec!["control"], "a job in a worker's hands gets a broadcast");
        let job = store.job("c2").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.finished_at_ms), ("cancelled", Some(23)));
        // A worker that missed the broadcast and starts it learns again.
        let late = ResultMessage { job_id: "c2".into(), event: started(), at_ms: 25 };
        assert_eq!(store.apply_result(&late, STALE_AFTER).await.unwrap(), Applied::StartedCancelled);
        let done = ResultMessage {
            job_id: "c2".into(),
            event: ResultEvent::Succeeded { quote: Box::new(sample_quote()), quote_key: None },
            at_ms: 26,
        };
        assert_eq!(
            store.apply_result(&done, STALE_AFTER).await.unwrap(),
            Applied::Stale,
            "a cancelled job stays cancelled"
        );
        assert_eq!(
            store.cancel_job("c2", "{}", 27).await.unwrap(),
            Cancelled::AlreadyEnded { status: "cancelled".into() }
        );
        assert_eq!(store.cancel_job("nope", "{}", 27).await.unwrap(), Cancelled::NotFound);
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_is_kept_and_fails_its_job_with_the_reason() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "d1").await;
        let letter = DeadLetter {
            job_id: Some("d1".into()),
            queue: "farm.pricing.jobs.fast".into(),
            reason: "delivery_limit".into(),
            payload: "{}".into(),
        };
        assert_eq!(store.record_dead_letter(&letter, 40).await.unwrap(), Applied::Changed);
        let job = store.job("d1").await.unwrap().unwrap();
        assert_eq!(job.status, api::store::JobStatus::Failed);
        let error = job.error.unwrap();
        assert_eq!(error.kind, scheduler::FailureKind::DeadLettered);
        assert!(error.message.contains("delivery limit"), "{}", error.message);
        // Redelivered from the dead-letter queue: kept twice, applied once.
        assert_eq!(store.record_dead_letter(&letter, 41).await.unwrap(), Applied::Stale);
        assert_eq!(store.dead_letter_counts().await.unwrap(), vec![("delivery_limit".to_string(), 2)]);
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_is_replayed_once_on_each_engine() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "r1").await;
        let letter = DeadLetter {
            job_id: Some("r1".into()),
            queue: "farm.pricing.jobs.fast".into(),
            reason: "delivery_limit".into(),
            payload: "{}".into(),
        };
        store.record_dead_letter(&letter, 40).await.unwrap();
        let id = store.dead_letters(false, 10).await.unwrap()[0].id;
        let api::store::Replay::Queued { job_id } = store.replay_dead_letter(id, 50).await.unwrap() else {
            panic!("the first replay queues a job")
        };
        assert_eq!(
            store.replay_dead_letter(id, 51).await.unwrap(),
            api::store::Replay::AlreadyReplayed { job_id: Some(job_id.clone()) }
        );
        assert_eq!(store.replay_dead_letter(id + 1000, 52).await.unwrap(), api::store::Replay::NotFound);
        assert!(store.dead_letters(false, 10).await.unwrap().is_empty());
        let all = store.dead_letters(true, 10).await.unwrap();
        assert_eq!((all[0].replayed_at_ms, all[0].replay_job_id.as_deref()), (Some(50), Some(job_id.as_str())));
        let job = store.job(&job_id).await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.model_id.as_str()), ("queued", "m1"));
        let batch = store.claim_outbox(100).await.unwrap();
        assert!(batch.rows.iter().any(|row| row.job_id == job_id), "its message leaves through the outbox");
    })
    .await;
}

#[tokio::test]
async fn unfinished_jobs_are_requeued_for_a_forgetful_broker_until_the_delivery_limit() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j3").await;
        // Its outbox row is still unsent, so nothing more is needed.
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 3, 30).await.unwrap(), (0, 0));
        relay_all(&store, 31).await;
        // Sent into a queue that was then lost: it gets a fresh row.
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 3, 32).await.unwrap(), (1, 0));
        let batch = store.claim_outbox(10).await.unwrap();
        assert_eq!(batch.rows[0].payload, "j3");
        // Ended now: a dropped batch is rolled back only later, and until then
        // PostgreSQL's relay below would skip its locked row.
        batch.commit().await.unwrap();
        relay_all(&store, 33).await;
        // Every start took the process down with it, three times: failed.
        for (n, at) in [(0, 34), (1, 35), (2, 36)] {
            let start = ResultMessage {
                job_id: "j3".into(),
                event: ResultEvent::Started { worker: "w".into(), deliveries: n, claim: false },
                at_ms: at,
            };
            store.apply_result(&start, STALE_AFTER).await.unwrap();
        }
        assert_eq!(store.job("j3").await.unwrap().unwrap().deliveries, 3);
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 3, 37).await.unwrap(), (0, 1));
        let job = store.job("j3").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.error.unwrap().kind.as_str()), ("failed", "dead_lettered"));
        // A finished job is never requeued.
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 3, 38).await.unwrap(), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn ages_and_stale_jobs_are_counted_per_lane() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "a1").await;
        assert_eq!(store.oldest_queued_age(Lane::Fast, 1010).await.unwrap(), 1000);
        assert_eq!(store.oldest_queued_age(Lane::Slow, 1010).await.unwrap(), 0);
        store
            .apply_result(&ResultMessage { job_id: "a1".into(), event: started(), at_ms: 100 }, STALE_AFTER)
            .await
            .unwrap();
        assert_eq!(store.stale_running(50).await.unwrap(), 0);
        assert_eq!(store.stale_running(101).await.unwrap(), 1, "no word since 100");
    })
    .await;
}

#[tokio::test]
async fn a_keys_uploads_and_jobs_in_flight_are_counted_for_its_quotas() {
    on_each_engine(async |store: Store| {
        for (id, at, key) in [("q1", 100, "k1"), ("q2", 200, "k1"), ("q3", 300, "k2")] {
            let model = ModelRow {
                model_id: id.into(),
                size_bytes: 1_000,
                triangles: 12,
                format: "binary".into(),
                created_at_ms: at,
                owner: Some("acme".into()),
                uploader_key_id: Some(key.into()),
            };
            assert!(store.insert_model(&model).await.unwrap());
        }
        assert_eq!(store.uploads_since("k1", 0).await.unwrap(), (2, 2_000));
        assert_eq!(store.uploads_since("k1", 150).await.unwrap(), (1, 1_000), "only the window");
        assert_eq!(store.uploads_since("nobody", 0).await.unwrap(), (0, 0));
        let stored = store.model("q1").await.unwrap().unwrap();
        assert_eq!((stored.owner.as_deref(), stored.uploader_key_id.as_deref()), (Some("acme"), Some("k1")));

        let mut job = JobRow::queued("jq".into(), "q1".into(), "pla".into(), 1, Lane::Fast, 10);
        job.owner_key_id = Some("k1".into());
        store.create_job(&job, "{}").await.unwrap();
        assert_eq!(store.jobs_in_flight("k1").await.unwrap(), 1);
        store.cancel_job("jq", "{}", 11).await.unwrap();
        assert_eq!(store.jobs_in_flight("k1").await.unwrap(), 0, "an ended job is not in flight");
    })
    .await;
}

/// A job of a key at its quota of jobs in flight is refused by the
/// transaction that would write it, whatever a check before it said.
#[tokio::test]
async fn the_transaction_writing_a_job_refuses_it_past_the_keys_quota_in_flight() {
    on_each_engine(async |store: Store| {
        store.insert_model(&crate::helpers::model_row("m1", 684)).await.unwrap();
        let job_of = |job_id: &str, key: &str| {
            let mut job = JobRow::queued(job_id.into(), "m1".into(), "pla".into(), 1, Lane::Fast, 10);
            job.owner_key_id = Some(key.into());
            job.in_flight_quota = Some(2);
            job
        };
        for id in ["a1", "a2"] {
            store.create_job(&job_of(id, "ka"), "{}").await.unwrap();
        }
        let refused = store.create_job(&job_of("a3", "ka"), "{}").await.unwrap_err();
        assert!(matches!(refused, api::store::StoreError::OverQuota { in_flight: 2, quota: 2 }), "{refused:?}");
        assert!(store.job("a3").await.unwrap().is_none(), "nothing of the refused job was written");
        assert_eq!(store.jobs_in_flight("ka").await.unwrap(), 2);
        store.create_job(&job_of("b1", "kb"), "{}").await.unwrap();
        let unlimited = JobRow { in_flight_quota: None, ..job_of("a4", "ka") };
        store.create_job(&unlimited, "{}").await.unwrap();
        store.cancel_job("a1", "{}", 11).await.unwrap();
        store.cancel_job("a4", "{}", 11).await.unwrap();
        store.create_job(&job_of("a5", "ka"), "{}").await.unwrap();
        assert_eq!(store.jobs_in_flight("ka").await.unwrap(), 2, "an ended job made room for one more");
    })
    .await;
}

/// Many writers of one key at once: every transaction counts what the others
/// committed, so exactly the quota's worth get in.
#[tokio::test]
async fn writers_racing_for_a_keys_last_jobs_in_flight_admit_exactly_the_quota() {
    const WRITERS: usize = 24;
    const QUOTA: i64 = 5;
    on_each_engine_with(8, async |store: Store| {
        let engine = store.engine();
        store.insert_model(&crate::helpers::model_row("m1", 684)).await.unwrap();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    let mut job = JobRow::queued(format!("r{n}"), "m1".into(), "pla".into(), 1, Lane::Fast, 10);
                    job.owner_key_id = Some("racer".into());
                    job.in_flight_quota = Some(QUOTA);
                    start.wait().await;
                    store.create_job(&job, "{}").await
                })
            })
            .collect();
        let mut admitted = 0;
        for writer in writers {
            match writer.await.unwrap() {
                Ok(()) => admitted += 1,
                Err(api::store::StoreError::OverQuota { .. }) => {}
                Err(other) => panic!("{engine:?}: {other}"),
            }
        }
        assert_eq!(admitted, QUOTA, "{engine:?}");
        assert_eq!(store.jobs_in_flight("racer").await.unwrap(), QUOTA, "{engine:?}");
    })
    .await;
}

#[tokio::test]
async fn the_list_reads_a_priced_orders_facts_without_its_quote_on_each_engine() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "l1").await;
        let order = crate::helpers::new_order("o-list", "m1", 30);
        let job = store.job("l1").await.unwrap().unwrap();
        // An order answered from the quote cache, and one priced by a job.
        let mut quote = sample_quote();
        let answered = api::orders::store::Pricing::Answered {
            job: JobRow { job_id: "l2".into(), ..job.clone() },
            quote: serde_json::to_string(&quote).unwrap(),
            quote_key: "k".into(),
            total: 1.0,
            currency: "EUR".into(),
        };
        store.create_order(&order, answered).await.unwrap();
        let queued =
            api::orders::store::Pricing::Queue { job: JobRow { job_id: "l3".into(), ..job }, payload: "{}".into() };
        store
            .create_order(&api::orders::store::NewOrder { order_id: "o-job".into(), now_ms: 31, ..order }, queued)
            .await
            .unwrap();
        store
            .apply_result(&ResultMessage { job_id: "l3".into(), event: started(), at_ms: 32 }, STALE_AFTER)
            .await
            .unwrap();
        quote.print_time_s += 60.0;
        let done = ResultEvent::Succeeded { quote: Box::new(quote.clone()), quote_key: None };
        store.apply_result(&ResultMessage { job_id: "l3".into(), event: done, at_ms: 33 }, STALE_AFTER).await.unwrap();

        let filter = api::orders::store::OrderFilter::default();
        let listed = store.list_page(&filter, None, 10).await.unwrap();
        let full = store.orders_page(&filter, None, 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        for (row, whole) in listed.iter().zip(&full) {
            assert_eq!(row.quote, None, "the list does not read the quote");
            let facts = api::orders::list_facts::QuoteFacts::read(whole.quote.as_deref().unwrap());
            assert_eq!(row.machine, facts.machine(), "{}", row.order_id);
            assert_eq!(row.size_mm, facts.size_mm(), "{}", row.order_id);
            assert_eq!(row.print_time_s, facts.print_time_s(), "{}", row.order_id);
            assert!(row.machine.is_some() && row.size_mm.is_some() && row.print_time_s.is_some());
            assert_eq!(
                (row.machine.clone(), row.size_mm, row.print_time_s),
                (whole.machine.clone(), whole.size_mm, whole.print_time_s)
            );
        }
        assert_eq!(listed[0].print_time_s, Some(quote.print_time_s), "the job's own quote, not the first");
    })
    .await;
}

/// The parts of one order priced at the same moment: on PostgreSQL their
/// results settle in parallel transactions, and each must see the others,
/// or the order would wait in PRICING with every part priced.
#[tokio::test]
async fn parts_priced_at_the_same_moment_price_their_order() {
    use api::orders::parts::NewPart;
    use api::orders::status::OrderStatus;
    use api::orders::store::Pricing;

    const PARTS: usize = 4;
    const ORDERS: usize = 8;
    let quote = sample_quote();
    let terms = calculator::order::OrderTerms::of(&calculator::PriceBook::builtin());
    on_each_engine_with(PARTS as u32 + 1, async |store: Store| {
        let engine = store.engine();
        store.insert_model(&crate::helpers::model_row("m1", 684)).await.unwrap();
        for n in 0..ORDERS {
            let order_id = format!("o{n}");
            let mut parts = Vec::new();
            for p in 0..PARTS {
                let job = JobRow::queued(format!("o{n}p{p}"), "m1".into(), "pla".into(), 1, Lane::Fast, 10);
                let payload = job.message();
                parts.push(NewPart {
                    model_id: "m1".into(),
                    material: "pla".into(),
                    colour: None,
                    quantity: 1,
                    pricing: Pricing::Queue { job, payload },
                });
            }
            let order = crate::helpers::new_order(&order_id, "m1", 10);
            store.create_order_of_parts(&order, &terms, parts).await.unwrap();
            let results = (0..PARTS).map(|p| {
                let done = ResultMessage {
                    job_id: format!("o{n}p{p}"),
                    event: ResultEvent::Succeeded { quote: Box::new(quote.clone()), quote_key: None },
                    at_ms: 20,
                };
                let store = store.clone();
                tokio::spawn(async move { store.apply_result(&done, STALE_AFTER).await.unwrap() })
            });
            for applied in futures_util::future::join_all(results).await {
                assert_eq!(applied.unwrap(), Applied::Changed);
            }
            let row = store.order(&order_id).await.unwrap().unwrap();
            assert_eq!(row.status, OrderStatus::Priced, "{engine:?}: order {order_id} with every part priced");
            let own: f64 = quote
                .line_items
                .iter()
                .filter(|l| l.label != "setup" && l.label != "minimum order")
                .map(|l| l.amount)
                .sum();
            let book = calculator::PriceBook::builtin();
            let expected = book.rounding.apply((PARTS as f64 * own + book.setup_fee).max(book.minimum_order));
            assert_eq!(row.total, Some(expected), "{engine:?}");
        }
    })
    .await;
}

/// An order of parts, each part's job either priced (`Some`) or failed.
async fn order_of_parts(store: &Store, order_id: &str, terms: &calculator::order::OrderTerms, priced: &[bool]) {
    use api::orders::parts::NewPart;
    use api::orders::store::Pricing;
    let mut parts = Vec::new();
    for p in 0..priced.len() {
        let job = JobRow::queued(format!("{order_id}p{p}"), "m1".into(), "pla".into(), 1, Lane::Fast, 10);
        let payload = job.message();
        let pricing = Pricing::Queue { job, payload };
        parts.push(NewPart { model_id: "m1".into(), material: "pla".into(), colour: None, quantity: 1, pricing });
    }
    store.create_order_of_parts(&crate::helpers::new_order(order_id, "m1", 10), terms, parts).await.unwrap();
    for (p, &ok) in priced.iter().enumerate() {
        let event = if ok {
            ResultEvent::Succeeded { quote: Box::new(sample_quote()), quote_key: None }
        } else {
            ResultEvent::Failed { error: JobFailure::new(scheduler::FailureKind::Internal, "broken") }
        };
        store
            .apply_result(&ResultMessage { job_id: format!("{order_id}p{p}"), event, at_ms: 20 }, STALE_AFTER)
            .await
            .unwrap();
    }
}

/// One quote never silently mixes two price books: parts priced under a
/// book other than the order's terms make the quote say "mixed", which the
/// reprice of orders under other books takes up, and a retry under new
/// terms prices such parts again with the failed ones.
#[tokio::test]
async fn an_order_of_parts_is_never_priced_under_two_books_unnoticed() {
    use api::orders::status::{OrderEvent, OrderStatus};
    use api::orders::store::{CrmEvent, CrmOutcome, Transitioned};
    on_each_engine(async |store: Store| {
        store.insert_model(&crate::helpers::model_row("m1", 684)).await.unwrap();
        let book = calculator::PriceBook::builtin();
        let current = calculator::order::OrderTerms::of(&book);
        let older = calculator::order::OrderTerms { price_book_version: "older-book".into(), ..current.clone() };

        // Placed under the older book, priced by workers of the current one.
        order_of_parts(&store, "mixed", &older, &[true, true]).await;
        let row = store.order("mixed").await.unwrap().unwrap();
        assert_eq!(row.status, OrderStatus::Priced);
        let quote: serde_json::Value = serde_json::from_str(row.quote.as_deref().unwrap()).unwrap();
        let version = quote["price_book_version"].as_str().unwrap();
        assert_eq!(version, format!("mixed: {}, older-book", book.version));
        let stale = store.orders_priced_under_other_books(&book.version, 10).await.unwrap();
        assert_eq!(stale.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["mixed"]);
        // Nor is such a price approved: it is no book's.
        let approval = |order_id: &str| CrmEvent {
            event_id: format!("approve-{order_id}"),
            order_id: order_id.into(),
            approve: true,
            version: None,
            occurred_at_ms: 40,
        };
        let refused = store.apply_crm_event(&approval("mixed"), 40).await.unwrap();
        assert!(
            matches!(&refused, CrmOutcome::Illegal { error, .. } if error.why.contains("different price books")),
            "{refused:?}"
        );

        // One book throughout: not listed.
        order_of_parts(&store, "same", &current, &[true, true]).await;
        let row = store.order("same").await.unwrap().unwrap();
        let quote: serde_json::Value = serde_json::from_str(row.quote.as_deref().unwrap()).unwrap();
        assert_eq!(quote["price_book_version"], book.version.as_str());
        let approved = store.apply_crm_event(&approval("same"), 40).await.unwrap();
        assert!(matches!(approved, CrmOutcome::Applied(_)), "{approved:?}");

        // A retry under the same book prices the failed part only; under a
        // new book, the part priced under the old one too.
        let jobs = |order: &str| -> Vec<(i64, JobRow)> {
            (1..=2)
                .map(|p| (p, JobRow::queued(format!("{order}-again{p}"), "m1".into(), "pla".into(), 1, Lane::Fast, 30)))
                .collect()
        };
        for (order, terms, requeued) in [("retry-same", &current, 1), ("retry-new", &older, 2)] {
            order_of_parts(&store, order, &current, &[true, false]).await;
            assert_eq!(store.order(order).await.unwrap().unwrap().status, OrderStatus::PricingFailed);
            let (moved, queued) = store
                .price_parts_again(order, OrderEvent::RetryPricing, terms, &jobs(order), "test", 30)
                .await
                .unwrap();
            assert!(matches!(moved, Transitioned::Done(_)), "{moved:?}");
            assert_eq!(queued.len(), requeued, "{order}: {queued:?}");
        }
    })
    .await;
}

/// One statement, on one connection, run first with a NULL float and then
/// with numbers: sqlx prepares it once with the types of its first run, and
/// a NULL typed `float4` there makes every later number fail on PostgreSQL
/// (the swap `api::store::column::Float` works around). This fails the day
/// sqlx mends the swap, when `Float` must go back to a plain `Option<f64>`.
#[tokio::test]
async fn a_nullable_float_binds_as_null_and_as_a_number_on_one_connection() {
    use api::store::column::Float;
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![Store::sqlite_url(dir.path())];
    urls.extend(services::fresh_postgres_database().await);
    for url in urls {
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE floats (n INTEGER, x DOUBLE PRECISION)").execute(&pool).await.unwrap();
        for (n, x) in [(1, None), (2, Some(2.5)), (3, None), (4, Some(0.25))] {
            let insert = sqlx::query("INSERT INTO floats (n, x) VALUES ($1, $2)").bind(n).bind(Float(x));
            insert.execute(&pool).await.unwrap_or_else(|e| panic!("{url}: row {n}: {e}"));
        }
        let rows = sqlx::query("SELECT x FROM floats ORDER BY n").fetch_all(&pool).await.unwrap();
        let read: Vec<Option<f64>> = rows.iter().map(|r| r.try_get("x").unwrap()).collect();
        assert_eq!(read, [None, Some(2.5), None, Some(0.25)], "{url}");
    }
}
