//! librdkafka's in-process mock cluster, on a thread of its own: the cluster is not `Send` (it
//! wraps a raw pointer), so [`MockHandle`] starts it on a dedicated thread and runs every request
//! there through a channel, which keeps the handle `Send + Sync` without any `unsafe`. Dropping
//! the handle ends the thread and destroys the cluster.

use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub(super) type Mock = MockCluster<'static, DefaultProducerContext>;
type MockJob = Box<dyn FnOnce(&Mock) + Send>;

#[derive(Debug)]
pub(super) struct MockHandle {
    jobs: Option<mpsc::Sender<MockJob>>,
    thread: Option<JoinHandle<()>>,
}

impl MockHandle {
    pub(super) fn start() -> anyhow::Result<(MockHandle, String)> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<MockJob>();
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<String>>();
        let thread = std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("starting mock Kafka cluster: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until the handle drops its sender; then the cluster is destroyed here.
                while let Ok(job) = jobs_rx.recv() {
                    job(&cluster);
                }
            })
            .context("spawning the mock Kafka thread")?;
        let brokers = ready_rx
            .recv()
            .map_err(|_| anyhow!("mock Kafka thread exited during startup"))??;
        Ok((
            MockHandle {
                jobs: Some(jobs_tx),
                thread: Some(thread),
            },
            brokers,
        ))
    }

    pub(super) async fn request<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mock) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .context("mock Kafka cluster already shut down")?
            .send(Box::new(move |cluster| {
                let _ = tx.send(f(cluster));
            }))
            .map_err(|_| anyhow!("mock Kafka thread is gone"))?;
        rx.await
            .map_err(|_| anyhow!("mock Kafka thread dropped the request"))?
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
