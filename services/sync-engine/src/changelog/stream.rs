//! `StreamChanges` and `StreamLifecycleEvents`: a tenant's log entries after a sequence, then
//! live ones. Both logs implement [`Source`]; the pump below serves either.
//!
//! A pump task reads pages from the log and sends them into a bounded channel that the gRPC
//! response drains. When the consumer is slow, HTTP/2 flow control stops tonic from draining
//! the channel, `send` waits, and the pump stops reading: nothing is buffered without bound.
//!
//! Once caught up the pump waits for an append to the tenant's log in this process (a
//! `watch` signalled by [`ChangeLog::append`]). Appends made by other processes — several
//! engines sharing one PostgreSQL database — are not signalled here, so on PostgreSQL the
//! pump also polls every [`StreamOptions::poll_interval`]: they arrive at most that late.
//! While nothing happens it sends a heartbeat (a message without changes, carrying the head
//! sequence) every [`StreamOptions::heartbeat`].

use std::time::Duration;

use syncline_domain::{ApiError, TenantContext, Violation};
use syncline_proto::sync::v1::StreamChangesRequest;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use super::encoded::{EncodedChange, EncodedChanges};
use super::{ChangeFilter, ChangeLog, Head};

/// Changes per message when the request sets no `max_batch_size`.
pub const DEFAULT_BATCH: usize = 100;
/// The largest batch served; larger requests are capped.
pub const MAX_BATCH: usize = 1000;

/// How streams behave.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// A heartbeat is sent after this long without a message.
    pub heartbeat: Duration,
    /// Re-read the log this often while idle, for appends by other processes; `None` relies
    /// on this process's appends only (the embedded SQLite deployment).
    pub poll_interval: Option<Duration>,
    /// Messages buffered between the pump and the response (the backpressure bound).
    pub buffer: usize,
    /// Fired when the service stops: open streams end with `UNAVAILABLE` so that draining
    /// does not wait for them, and consumers resume after their last sequence elsewhere.
    pub stopping: CancellationToken,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            poll_interval: None,
            buffer: 4,
            stopping: CancellationToken::new(),
        }
    }
}

/// The response stream of `StreamChanges`: messages written from the stored encodings.
pub type ChangeStream = ReceiverStream<Result<EncodedChanges, Status>>;

/// `OUT_OF_RANGE` with reason `CURSOR_EXPIRED` and how far the log was pruned.
pub fn cursor_expired(after: u64, pruned_through: u64) -> Status {
    syncline_domain::ApiError::new(
        syncline_domain::ErrorCode::CursorExpired,
        format!(
            "changes after sequence {after} are no longer retained (retained from {}); start again from a backfill",
            pruned_through + 1
        ),
    )
    .with_metadata("pruned_through", pruned_through.to_string())
    .into_status()
}

/// What a stream reads: a per-tenant log with a counter-row head, pages after a sequence, and
/// a notifier of this process's appends. The change log and the lifecycle event log both are.
pub trait Source: Send + Sync + 'static {
    /// An entry of the log, after the stream's filters.
    type Item: Send;
    /// A message of the response stream.
    type Message: Send + 'static;

    /// A receiver that changes whenever this process appends to the tenant's log.
    fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64>;

    /// The tenant's head and retention mark.
    fn head(&self, tenant: &TenantContext) -> impl Future<Output = Result<Head, ApiError>> + Send;

    /// At most `limit` entries with `after < sequence <= through` that pass the stream's
    /// filters, in sequence order.
    fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::Item>, ApiError>> + Send;

    /// The sequence of an entry.
    fn sequence(item: &Self::Item) -> u64;

    /// The messages that carry a page, `head` being the tenant's head when it was read.
    fn messages(&self, page: Vec<Self::Item>, head: u64) -> Vec<Self::Message>;

    /// A message without entries.
    fn heartbeat(&self, head: u64) -> Self::Message;
}

/// The change log filtered for one `StreamChanges` call.
struct Changes {
    log: ChangeLog,
    filter: ChangeFilter,
    tenant: TenantContext,
}

impl Drop for Changes {
    /// The stream is over: when it was the tenant's last in this process, the changes kept
    /// for it are dropped.
    fn drop(&mut self) {
        self.log.stream_ended(&self.tenant);
    }
}

impl Source for Changes {
    type Item = EncodedChange;
    type Message = EncodedChanges;

    fn subscribe(&self, tenant: &TenantContext) -> watch::Receiver<u64> {
        self.log.subscribe(tenant)
    }

    fn head(&self, tenant: &TenantContext) -> impl Future<Output = Result<Head, ApiError>> + Send {
        self.log.head(tenant)
    }

    fn page(
        &self,
        tenant: &TenantContext,
        after: u64,
        through: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::Item>, ApiError>> + Send {
        self.log
            .page_encoded(tenant, after, through, &self.filter, limit)
    }

    fn sequence(item: &Self::Item) -> u64 {
        item.sequence
    }

    fn messages(&self, page: Vec<Self::Item>, head: u64) -> Vec<Self::Message> {
        vec![EncodedChanges {
            changes: page.into_iter().map(|change| change.bytes).collect(),
            head_sequence: head,
        }]
    }

    fn heartbeat(&self, head: u64) -> Self::Message {
        EncodedChanges {
            changes: Vec::new(),
            head_sequence: head,
        }
    }
}

/// Checks `request`, then starts the pump for `tenant`. Fails before streaming when the
/// resume position is no longer retained.
pub async fn open(
    log: ChangeLog,
    tenant: TenantContext,
    request: StreamChangesRequest,
    options: StreamOptions,
) -> Result<ChangeStream, Status> {
    let batch = match request.max_batch_size {
        n if n < 0 => {
            return Err(ApiError::invalid(vec![Violation::new(
                "max_batch_size",
                "NEGATIVE",
                "must not be negative",
            )])
            .into());
        }
        0 => DEFAULT_BATCH,
        n => usize::try_from(n).unwrap_or(MAX_BATCH).min(MAX_BATCH),
    };
    let empty: Vec<Violation> = request
        .connection_ids
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_empty())
        .map(|(i, _)| Violation::new(format!("connection_ids[{i}]"), "EMPTY", "must not be empty"))
        .chain(
            request
                .objects
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_empty())
                .map(|(i, _)| {
                    Violation::new(format!("objects[{i}]"), "EMPTY", "must not be empty")
                }),
        )
        .collect();
    if !empty.is_empty() {
        return Err(ApiError::invalid(empty).into());
    }
    let filter = ChangeFilter {
        connection_ids: request.connection_ids,
        objects: request.objects,
        include_provider_record: request.include_provider_record,
    };
    start(
        Changes {
            log,
            filter,
            tenant: tenant.clone(),
        },
        tenant,
        request.after_sequence,
        batch,
        options,
    )
    .await
}

/// Starts streaming `source` for `tenant` after `after_sequence` (0 = from the oldest
/// retained entry), `batch` entries per read. Fails before streaming when the resume position
/// is no longer retained.
pub async fn start<S: Source>(
    source: S,
    tenant: TenantContext,
    after_sequence: u64,
    batch: usize,
    options: StreamOptions,
) -> Result<ReceiverStream<Result<S::Message, Status>>, Status> {
    let head = source.head(&tenant).await?;
    let cursor = if after_sequence == 0 {
        head.pruned_through
    } else if after_sequence < head.pruned_through {
        return Err(cursor_expired(after_sequence, head.pruned_through));
    } else {
        after_sequence
    };
    let (tx, rx) = mpsc::channel(options.buffer.max(1));
    let pump = Pump {
        source,
        tenant,
        batch: batch.max(1),
        options,
        tx,
    };
    tokio::spawn(pump.run(cursor).instrument(tracing::Span::current()));
    Ok(ReceiverStream::new(rx))
}

struct Pump<S: Source> {
    source: S,
    tenant: TenantContext,
    batch: usize,
    options: StreamOptions,
    tx: mpsc::Sender<Result<S::Message, Status>>,
}

impl<S: Source> Pump<S> {
    async fn run(self, cursor: u64) {
        if let Err(status) = self.pump(cursor).await {
            // The consumer may be gone already; nothing else to tell.
            let _ = self.tx.send(Err(status)).await;
        }
    }

    /// Runs until the consumer goes away (`Ok`) or the stream must end with an error.
    async fn pump(&self, mut cursor: u64) -> Result<(), Status> {
        let mut appended = self.source.subscribe(&self.tenant);
        let mut last_sent = Instant::now();
        loop {
            // Marked seen before reading, so an append after the read wakes the wait below.
            appended.borrow_and_update();
            let head = self.source.head(&self.tenant).await?;
            if head.last_sequence > cursor {
                let page = self
                    .source
                    .page(&self.tenant, cursor, head.last_sequence, self.batch)
                    .await?;
                let full = page.len() == self.batch;
                let after_read = self.source.head(&self.tenant).await?;
                if after_read.pruned_through > cursor {
                    return Err(cursor_expired(cursor, after_read.pruned_through));
                }
                cursor = match (full, page.last()) {
                    (true, Some(last)) => S::sequence(last),
                    // Everything up to the head was scanned, matching or not.
                    _ => head.last_sequence,
                };
                if !page.is_empty() {
                    for message in self.source.messages(page, after_read.last_sequence) {
                        if self.tx.send(Ok(message)).await.is_err() {
                            return Ok(());
                        }
                    }
                    last_sent = Instant::now();
                }
                if full {
                    continue;
                }
            }
            let heartbeat_at = last_sent + self.options.heartbeat;
            let poll = async {
                match self.options.poll_interval {
                    Some(interval) => tokio::time::sleep(interval).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.options.stopping.cancelled() => {
                    return Err(Status::unavailable(
                        "sync-engine is stopping; resume after the last sequence received",
                    ));
                }
                changed = appended.changed() => {
                    if changed.is_err() {
                        // The notifier is gone: the service is stopping.
                        return Ok(());
                    }
                }
                () = poll => {}
                () = self.tx.closed() => return Ok(()),
                () = tokio::time::sleep_until(heartbeat_at) => {
                    let message = self.source.heartbeat(head.last_sequence);
                    if self.tx.send(Ok(message)).await.is_err() {
                        return Ok(());
                    }
                    last_sent = Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::UnboundedSender;
    use tokio_stream::StreamExt;

    /// A log of `last` entries in memory that reports each page read (its `after`).
    struct CountedLog {
        last: u64,
        reads: UnboundedSender<u64>,
        appended: watch::Sender<u64>,
    }

    impl Source for CountedLog {
        type Item = u64;
        type Message = Vec<u64>;

        fn subscribe(&self, _tenant: &TenantContext) -> watch::Receiver<u64> {
            self.appended.subscribe()
        }

        async fn head(&self, _tenant: &TenantContext) -> Result<Head, ApiError> {
            Ok(Head {
                last_sequence: self.last,
                pruned_through: 0,
            })
        }

        async fn page(
            &self,
            _tenant: &TenantContext,
            after: u64,
            through: u64,
            limit: usize,
        ) -> Result<Vec<u64>, ApiError> {
            let _ = self.reads.send(after);
            Ok((after + 1..=through).take(limit).collect())
        }

        fn sequence(item: &u64) -> u64 {
            *item
        }

        fn messages(&self, page: Vec<u64>, _head: u64) -> Vec<Vec<u64>> {
            vec![page]
        }

        fn heartbeat(&self, _head: u64) -> Vec<u64> {
            Vec::new()
        }
    }

    /// With the clock paused, this wait ends with `None` only once every task is idle and
    /// the runtime has moved its clock a minute on: nothing was going to read another page.
    async fn next_read(reads: &mut mpsc::UnboundedReceiver<u64>) -> Option<u64> {
        tokio::time::timeout(Duration::from_secs(60), reads.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_stops_reading_stops_the_pump_reading_the_log() {
        let (reads_tx, mut reads) = mpsc::unbounded_channel();
        let log = CountedLog {
            last: 1_000,
            reads: reads_tx,
            appended: watch::channel(0).0,
        };
        let options = StreamOptions {
            buffer: 2,
            heartbeat: Duration::from_secs(3_600),
            ..StreamOptions::default()
        };
        let tenant = super::super::tests::tenant("p", "acme");
        let mut stream = start(log, tenant, 0, 10, options).await.unwrap();
        // Two messages fill the buffer and a third page waits to be sent; then it stops.
        for after in [0, 10, 20] {
            assert_eq!(next_read(&mut reads).await, Some(after));
        }
        assert_eq!(
            next_read(&mut reads).await,
            None,
            "read on with nobody reading"
        );
        // Each message taken frees one place: exactly one more page is read.
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first, (1..=10).collect::<Vec<u64>>());
        assert_eq!(next_read(&mut reads).await, Some(30));
        assert_eq!(next_read(&mut reads).await, None);
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        assert_eq!(next_read(&mut reads).await, Some(40));
        assert_eq!(next_read(&mut reads).await, Some(50));
        assert_eq!(next_read(&mut reads).await, Some(60));
        assert_eq!(next_read(&mut reads).await, None);
    }
}
