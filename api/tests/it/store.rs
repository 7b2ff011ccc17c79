//! The storage seam on both engines: each test runs on a fresh SQLite file
//! and, when PostgreSQL is available, on a fresh PostgreSQL database.

use api::Store;
use api::store::{Applied, JobRow, ModelRow};
use scheduler::report::QuoteDoc;
use scheduler::{JobFailure, ResultEvent, ResultMessage};

use crate::services;

/// Runs `check` against each engine available.
async fn on_each_engine<F: AsyncFn(Store)>(check: F) {
    let dir = tempfile::tempdir().unwrap();
    check(Store::connect(&Store::sqlite_url(dir.path()), 2).await.unwrap()).await;
    if let Some(url) = services::fresh_postgres_database().await {
        check(Store::connect(&url, 2).await.unwrap()).await;
    }
}

async fn seed_job(store: &Store, job_id: &str) {
    let model =
        ModelRow { model_id: "m1".into(), size_bytes: 684, triangles: 12, format: "binary".into(), created_at_ms: 1 };
    store.insert_model(&model).await.unwrap();
    let job = JobRow {
        job_id: job_id.into(),
        model_id: "m1".into(),
        material: "pla".into(),
        colour: None,
        quantity: 1,
        status: "queued".into(),
        quote: None,
        error: None,
        created_at_ms: 10,
        updated_at_ms: 10,
    };
    store.create_job(&job, &format!("{{\"job_id\":\"{job_id}\"}}")).await.unwrap();
}

fn sample_quote() -> QuoteDoc {
    let bytes = mesh::write_binary_stl(&mesh::cuboid([10.0; 3]));
    let request = calculator::QuoteRequest::new("pla", 1);
    scheduler::Pricing::default().price_bytes(&bytes, &request, mesh::AnalysisOptions::default()).unwrap()
}

#[tokio::test]
async fn a_model_is_stored_once() {
    on_each_engine(async |store: Store| {
        let model =
            ModelRow { model_id: "abc".into(), size_bytes: 1, triangles: 1, format: "ascii".into(), created_at_ms: 5 };
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
        assert_eq!(store.outbox_backlog().await.unwrap(), 1);

        // A relay that dies before committing (the batch is dropped) leaves
        // the row unsent: a crash between the commit and the publish loses
        // nothing.
        let batch = store.claim_outbox(10).await.unwrap();
        assert_eq!(batch.rows.len(), 1);
        drop(batch);
        assert_eq!(store.outbox_backlog().await.unwrap(), 1);

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
        assert_eq!((row.destination.as_str(), row.payload.as_str()), ("jobs", "{\"job_id\":\"j1\"}"));
        batch.mark_sent(row.id, 20).await.unwrap();
        batch.commit().await.unwrap();
        assert_eq!(store.outbox_backlog().await.unwrap(), 0);
        assert!(store.claim_outbox(10).await.unwrap().rows.is_empty());
    })
    .await;
}

#[tokio::test]
async fn results_apply_once_and_never_move_a_job_backwards() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j2").await;
        let event = |event: ResultEvent, at_ms: i64| ResultMessage { job_id: "j2".into(), event, at_ms };
        let quote = sample_quote();
        assert_eq!(store.apply_result(&event(ResultEvent::Started, 11)).await.unwrap(), Applied::Changed);
        assert_eq!(store.job("j2").await.unwrap().unwrap().status, "running");
        let key = Some("v1|model|pla|1".to_string());
        let done = event(ResultEvent::Succeeded { quote: Box::new(quote.clone()), quote_key: key }, 12);
        assert_eq!(store.apply_result(&done).await.unwrap(), Applied::Changed);
        // Redelivered and late events are stale.
        assert_eq!(store.apply_result(&done).await.unwrap(), Applied::Stale);
        assert_eq!(store.apply_result(&event(ResultEvent::Started, 13)).await.unwrap(), Applied::Stale);
        let failed = event(ResultEvent::Failed { error: JobFailure::new("internal", "late") }, 14);
        assert_eq!(store.apply_result(&failed).await.unwrap(), Applied::Stale);

        let job = store.job("j2").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), job.updated_at_ms, job.error), ("succeeded", 12, None));
        let stored: QuoteDoc = serde_json::from_str(job.quote.as_deref().unwrap()).unwrap();
        assert_eq!(stored, quote);
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
        let mut batch = store.claim_outbox(10).await.unwrap();
        let id = batch.rows[0].id;
        batch.mark_sent(id, 2).await.unwrap();
        batch.commit().await.unwrap();
        let mut job = store.job("j4").await.unwrap().unwrap();
        job.job_id = "j5".into();
        store.create_answered_job(&job, "{\"total\":1}", "key").await.unwrap();
        let answered = store.job("j5").await.unwrap().unwrap();
        assert_eq!((answered.status.as_str(), answered.quote.as_deref()), ("succeeded", Some("{\"total\":1}")));
        assert_eq!(store.outbox_backlog().await.unwrap(), 0, "a cached answer publishes nothing");
        assert_eq!(store.cached_quote("key").await.unwrap().as_deref(), Some("{\"total\":1}"));
    })
    .await;
}

#[tokio::test]
async fn unfinished_jobs_are_requeued_for_a_forgetful_broker() {
    on_each_engine(async |store: Store| {
        seed_job(&store, "j3").await;
        // Its outbox row is still unsent, so nothing more is needed.
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 30).await.unwrap(), 0);
        let mut batch = store.claim_outbox(10).await.unwrap();
        let id = batch.rows[0].id;
        batch.mark_sent(id, 31).await.unwrap();
        batch.commit().await.unwrap();
        // Sent into a queue that was then lost: it gets a fresh row.
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 32).await.unwrap(), 1);
        assert_eq!(store.claim_outbox(10).await.unwrap().rows[0].payload, "j3");
        // A finished job is never requeued.
        let done = ResultMessage {
            job_id: "j3".into(),
            event: ResultEvent::Failed { error: JobFailure::new("invalid_model", "x") },
            at_ms: 33,
        };
        store.apply_result(&done).await.unwrap();
        let mut batch = store.claim_outbox(10).await.unwrap();
        let id = batch.rows[0].id;
        batch.mark_sent(id, 34).await.unwrap();
        batch.commit().await.unwrap();
        assert_eq!(store.requeue_unfinished(|job| job.job_id.clone(), 35).await.unwrap(), 0);
    })
    .await;
}
